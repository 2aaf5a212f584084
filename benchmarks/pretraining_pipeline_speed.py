"""create_pretraining_data.py on Apache Beam's local runner against its one-machine path: MB/s as a
ratio, and the peak memory of the Beam pipeline's processes for two input sizes.

    python3 benchmarks/pretraining_pipeline_speed.py                  # MB/s, Beam vs one machine
    python3 benchmarks/pretraining_pipeline_speed.py --memory 10,200  # peak memory, two sizes

Throughput: the same command line on the same input (real English, then demo-corpus documents;
benchmarks/pretraining_data_speed.py's `write_corpus`), `--dupe_factor=5 --max_seq_length=128`,
timed from start to exit as a user sees it: the one-machine path with `--num_workers` processes,
and the Beam pipeline with `--runner=DirectRunner` (Beam's FnApiRunner) in this process and with
`--direct_num_workers` SDK worker processes (`--direct_running_mode=multi_processing`).

Why the local runner is slower than the one-machine path (it is there to run the cluster's
pipeline on a laptop, not to be fast): a fixed cost of seconds (importing Beam, pickling every step
with the project's modules and compressing it, starting worker processes); in process, one core
for everything; with worker processes, every element of each step crosses between the runner
process and a worker (encoded, sent over gRPC on this machine, decoded), and the runner process,
which holds the shuffled data, competes with the workers for the same cores. The work per
document is the same code as the one-machine path's.

Memory: the Beam pipeline with worker processes, sampling every process's resident memory every
0.1 s; prints the peak of the runner process (the driver, which on the local runner also holds
the data of both shuffles: the documents grouped by group, the pieces' names grouped by output
file) and the largest peak of a worker process (reading, tokenizing, making and encoding records,
writing). On a cluster the shuffles are the service's (Dataflow Shuffle), so what must not grow
with the input is a worker's peak. It stays flat because the pipeline's local runner hands a
worker each group by reference, read through Beam's State API one group at a time
(pretraining_pipeline.runner_of); Beam's default FnApiRunner would send each worker its whole
share of the shuffle at once (input size / workers).
"""
import os
import subprocess
import time

import _setup  # noqa: F401,E402  (first: environment and sys.path)

import pretraining_data_speed  # noqa: E402
from pretraining_data_speed import (  # noqa: E402
    count_records, ours_command, process_tree_rss_kb, timed, write_corpus)


def beam_command(corpus, output, num_workers):
    """The one-machine command line with --runner: the in-process runner, with `num_workers`
    worker processes if more than one."""
    command = [arg for arg in ours_command(corpus, output, 1)
               if not arg.startswith("--num_workers=")] + ["--runner=DirectRunner"]
    if num_workers > 1:
        command += ["--direct_num_workers=%d" % num_workers,
                    "--direct_running_mode=multi_processing"]
    return command


def throughput(args, workdir):
    corpus = os.path.join(workdir, "corpus.txt")
    size = write_corpus(corpus, args.size_mb)
    output = os.path.join(workdir, "out.tfrecord")
    print("input: %.2f MB, dupe_factor 5, max_seq_length 128" % (size / 1e6))
    rows = []
    for name, command in (
            ("one machine, %d processes" % args.num_workers,
             ours_command(corpus, output, args.num_workers)),
            ("Beam, in process", beam_command(corpus, output, 1)),
            ("Beam, %d workers" % args.num_workers,
             beam_command(corpus, output, args.num_workers))):
        seconds, _ = timed(command)
        instances = count_records(output)
        rows.append((name, size / 1e6 / seconds))
        print("%-26s %7.1f s  %6.2f MB/s  (%d instances)"
              % (name, seconds, size / 1e6 / seconds, instances), flush=True)
    for name, mb_per_s in rows[1:]:
        print("ratio (MB/s, %s / one machine): %.2fx" % (name, mb_per_s / rows[0][1]))


def peak_memory(command):
    """(seconds, peak KB of the root process, largest peak KB of another process) of `command`."""
    start = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    peaks = {}
    while proc.poll() is None:
        for pid, kb in process_tree_rss_kb(proc.pid).items():
            peaks[pid] = max(peaks.get(pid, 0), kb)
        time.sleep(0.1)
    err = proc.stderr.read()
    if proc.returncode:
        raise RuntimeError(err[-3000:])
    workers = [kb for pid, kb in peaks.items() if pid != proc.pid]
    return time.time() - start, peaks.get(proc.pid, 0), max(workers, default=0)


def memory(args, workdir):
    for size_mb in (float(s) for s in args.memory.split(",")):
        corpus = os.path.join(workdir, "corpus-%g.txt" % size_mb)
        size = write_corpus(corpus, size_mb, seed=int(size_mb))
        output = os.path.join(workdir, "out.tfrecord")
        seconds, runner, worker = peak_memory(beam_command(corpus, output, args.num_workers))
        print("input %7.1f MB: peak memory %6.0f MB per worker process (largest of %d), runner "
              "process %6.0f MB; %.1f s, %.2f MB/s" % (
                  size / 1e6, worker / 1024, args.num_workers, runner / 1024, seconds,
                  size / 1e6 / seconds), flush=True)
        os.remove(corpus)
        os.remove(output)


def main():
    pretraining_data_speed.run(__doc__.splitlines()[0], throughput, memory)


if __name__ == "__main__":
    main()
