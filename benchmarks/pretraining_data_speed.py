"""create_pretraining_data.py throughput against a port of the original, and its peak memory.

    python3 benchmarks/pretraining_data_speed.py                  # throughput, ours vs original
    python3 benchmarks/pretraining_data_speed.py --memory 50,400  # peak memory for two input sizes

Throughput: both run as separate processes on the same ~4.4 MB input with `--dupe_factor=5
--max_seq_length=128` and are timed from start to exit (start-up included, as a user sees it).
The peer is `_reference_pretraining_data.py`: the original's way of working (whole corpus in
memory, one core, the direct-port tokenizer, `tf.train.Example` + `tf.io.TFRecordWriter`). Targets:
at least 1.2 MB/s and 8x the peer on 2 cores.

Memory: ours on inputs of the given sizes (MB); prints the peak resident memory of the whole process
tree (main process plus workers, sampled every 0.1 s). Bounded memory means the peak does not grow
with the input.

The input is real English (the pydoc help topics and standard-library docstrings, one sentence per
line, one document per topic or docstring), followed by documents from the demo corpus generator
with fresh seeds until the size is reached.
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

from _setup import HERE as _HERE, REPO as _ROOT  # noqa: E402  (first: environment, sys.path)
sys.path.insert(0, os.path.join(_ROOT, "data"))

import make_demo_corpus  # noqa: E402
import tokenization_speed  # noqa: E402
from _machine import print_cpu  # noqa: E402
from real_model import real_vocab_file  # noqa: E402

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def real_documents():
    """Documents of real English, each a list of sentences."""
    from pydoc_data.topics import topics  # pylint: disable=import-outside-toplevel
    import importlib  # pylint: disable=import-outside-toplevel
    texts = [topics[k] for k in sorted(topics)]
    for name in tokenization_speed.CORPUS_MODULES:
        texts.extend(tokenization_speed._docstrings(importlib.import_module(name)))  # noqa
    documents = []
    for text in dict.fromkeys(texts):
        sentences = [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]
        if sentences:
            documents.append(sentences)
    return documents


def write_corpus(path, size_mb, seed=0):
    """Writes about `size_mb` MB: real documents first, then generated ones."""
    budget = int(size_mb * 1e6)
    r = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        for sentences in real_documents():
            if written >= budget:
                break
            written += f.write("\n".join(sentences) + "\n\n")
        while written < budget:
            written += f.write("\n".join(make_demo_corpus.document(r)) + "\n\n")
    return os.path.getsize(path)


def ours_command(corpus, output, num_workers):
    return [sys.executable, os.path.join(_ROOT, "create_pretraining_data.py"),
            "--input_file=%s" % corpus, "--output_file=%s" % output,
            "--vocab_file=%s" % real_vocab_file(), "--dupe_factor=5", "--max_seq_length=128",
            "--num_workers=%d" % num_workers]


def reference_command(corpus, output):
    code = ("import sys; sys.path[:0] = [%r, %r]; import _reference_pretraining_data as r; "
            "print(len(r.run([%r], [%r], %r, dupe_factor=5, max_seq_length=128)))"
            % (_ROOT, _HERE, corpus, output, real_vocab_file()))
    return [sys.executable, "-c", code]


def timed(command):
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.time() - start
    if proc.returncode:
        raise RuntimeError("%s failed:\n%s" % (command[:3], proc.stderr[-3000:]))
    return seconds, proc


def count_records(path):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return sum(1 for _ in tf.data.TFRecordDataset(path))


def throughput(args, workdir):
    corpus = os.path.join(workdir, "corpus.txt")
    size = write_corpus(corpus, args.size_mb)
    print("input: %.2f MB, dupe_factor 5, max_seq_length 128, %d worker(s)"
          % (size / 1e6, args.num_workers))
    rows = []
    for name, command, output in (
            ("ours", ours_command, os.path.join(workdir, "ours.tfrecord")),
            ("original (port)", None, os.path.join(workdir, "reference.tfrecord"))):
        cmd = (ours_command(corpus, output, args.num_workers) if command
               else reference_command(corpus, output))
        seconds, _ = timed(cmd)
        instances = count_records(output)
        rows.append((name, seconds, instances))
        print("%-16s %7.1f s  %6.2f MB/s  %8.0f instances/s  (%d instances)"
              % (name, seconds, size / 1e6 / seconds, instances / seconds, instances), flush=True)
    ratio = rows[1][1] / rows[0][1]
    print("ratio (MB/s, ours / original): %.1fx   targets: >= 8x and >= 1.2 MB/s" % ratio)


def process_tree_rss_kb(root_pid):
    """{pid: resident memory in KB} of `root_pid` and all its descendants, from /proc."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/statm" % entry) as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return {p: rss[p] for p in tree if p in rss}


def _tree_rss_kb(root_pid):
    """Resident memory of `root_pid` and all its descendants."""
    return sum(process_tree_rss_kb(root_pid).values())


def memory(args, workdir):
    for size_mb in (float(s) for s in args.memory.split(",")):
        corpus = os.path.join(workdir, "corpus-%g.txt" % size_mb)
        size = write_corpus(corpus, size_mb, seed=int(size_mb))
        output = os.path.join(workdir, "out.tfrecord")
        start = time.time()
        proc = subprocess.Popen(ours_command(corpus, output, args.num_workers),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kb(proc.pid))
            time.sleep(0.1)
        err = proc.stderr.read()
        if proc.returncode:
            raise RuntimeError(err[-3000:])
        seconds = time.time() - start
        print("input %7.1f MB: peak memory %6.0f MB (main + workers), %.1f s, %.2f MB/s"
              % (size / 1e6, peak / 1024, seconds, size / 1e6 / seconds), flush=True)
        os.remove(corpus)
        os.remove(output)


def run(description, throughput_fn, memory_fn):
    """The command line of this benchmark and of pretraining_pipeline_speed.py: `throughput_fn`
    or, with --memory, `memory_fn`, each given (args, a temporary directory)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size_mb", type=float, default=4.4, help="throughput input size")
    parser.add_argument("--num_workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--memory", default=None,
                        help="comma-separated input sizes in MB: measure peak memory instead")
    args = parser.parse_args()
    print_cpu()
    with tempfile.TemporaryDirectory() as workdir:
        if args.memory:
            memory_fn(args, workdir)
        else:
            throughput_fn(args, workdir)


def main():
    run(__doc__.splitlines()[0], throughput, memory)


if __name__ == "__main__":
    main()
