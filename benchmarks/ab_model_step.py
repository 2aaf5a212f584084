"""In-process A/B of two versions of the model code: the same training step, old against new.

Usage, from the repository root:

    python benchmarks/ab_model_step.py [--old=97d18c1] [--new=<rev>] [--precision=float32,bfloat16]
        [--rounds=7] [--steps=5] [--warmup_steps=2] [--tiny]

What is compared: `modeling.py` and `optimization.py` as of git revision --old against the same
files of --new (default: the working tree), each with the project modules they import (such as
`kernels.py` and `file_io.py`), as that version has them. Both versions are loaded into this one
process side by side: each file is executed from its own path (a revision's files are written to a
temporary directory by `git show`) as a module object with a name of its own
(`ab_old_modeling`, `ab_new_kernels`, ...), and while a version's module runs its top-level code,
the names it imports (`import kernels`) are pointed at that version's modules. Imports made later,
inside functions, are not redirected (the model code has none).

The step is the training benchmark's (benchmarks/train_throughput.py): BertPretrainer with L=4,
H=512, A=8, I=2048, vocab 30522, batch 32 x 128, 20 masked positions, dropout 0.1;
`pretraining_loss`, the gradients, clipping to global norm 1.0 and the original AdamW update
(`optimization.create_optimizer`), `--steps` steps per call of one `tf.function` reading a
tf.data iterator (as `training.Runner` does with `iterations_per_loop`), without a distribution
strategy. Both models start from the same weights (the new one's are copied from the old one's)
and read the same batches; before timing, the harness checks that both give the same loss on the
same batch with dropout off, so it compares like with like.

Timing: after `--warmup_steps` untimed steps each (tracing and XLA compilation), `--rounds`
rounds each run `--steps` steps of old and of new, the order alternating between rounds so that a
drift in machine speed hits both alike. Printed: examples/s of every run, the median of each
version, the ratio of medians new / old, and the median of the rounds' ratios; runs where other
processes took more than 10% of the CPUs are flagged (busy machine: treat with care). An A/A run
(`--old= --new=`: the working tree against itself) shows how far apart equal code lands.

`--tiny` (L=2, H=128, vocab 1000, batch 4 x 32) checks the harness in a minute, e.g.
`--tiny --rounds=3 --steps=2 --warmup_steps=1`; its figures say nothing about speed.
"""

import ast
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _setup import REPO  # noqa: E402  (first: environment and sys.path)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from _machine import (busy_cpu_seconds, busy_note, other_cpu_share,  # noqa: E402
                      print_cpu, process_cpu_seconds)

FLAGS = flags.FLAGS
flags.DEFINE_string("old", "97d18c1", "Git revision of the old version.")
flags.DEFINE_string("new", "", "Git revision of the new version; empty: the working tree.")
flags.DEFINE_list("precision", ["float32", "bfloat16"], "Compute dtypes to compare, in turn.")
flags.DEFINE_integer("rounds", 7, "Timed runs per version and precision.")
flags.DEFINE_integer("steps", 5, "Training steps per timed run.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps per version before the rounds.")
flags.DEFINE_bool("tiny", False, "A tiny model and batch, to check the harness quickly.")

# The files each version brings; the project modules they import come with them.
ROOTS = ("modeling", "optimization")
LEARNING_RATE, LR_WARMUP, LR_TOTAL = 1e-4, 10, 100000    # as benchmarks/train_throughput.py
FULL = dict(layers=4, hidden=512, vocab_size=30522, batch_size=32, seq_length=128,
            max_predictions=20)
TINY = dict(layers=2, hidden=128, vocab_size=1000, batch_size=4, seq_length=32, max_predictions=5)


# ---------------------------------------------------------------------------------------------------
# Two versions of the code in one process


def _git(*args):
    return subprocess.run(["git", "-C", REPO, *args], check=True, capture_output=True,
                          text=True).stdout


def _project_modules(directory):
    return {name[:-3] for name in os.listdir(directory) if name.endswith(".py")}


def _imported(path, project):
    """The project modules that the file at `path` imports (at any depth), sorted."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return sorted(names & project)


def source_directory(rev):
    """A directory holding the top-level .py files of `rev` (the repository for the working tree)."""
    if not rev:
        return REPO
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    directory = tempfile.mkdtemp(prefix=f"ab_{commit[:8]}_")
    for name in _git("ls-tree", "--name-only", commit).split():
        if name.endswith(".py"):
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(_git("show", f"{commit}:{name}"))
    return directory


def load_version(label, directory, roots=ROOTS):
    """{name: module} for `roots` and the project modules they import, executed from `directory`
    as modules named ab_<label>_<name>, each seeing this version's modules under the plain names."""
    project = _project_modules(directory)
    loaded = {}

    def load(name):
        if name not in loaded:
            path = os.path.join(directory, f"{name}.py")
            dependencies = [d for d in _imported(path, project) if d != name]
            for dependency in dependencies:
                load(dependency)
            spec = importlib.util.spec_from_file_location(f"ab_{label}_{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            saved = {d: sys.modules.get(d) for d in dependencies}
            sys.modules.update({d: loaded[d] for d in dependencies})
            try:
                spec.loader.exec_module(module)
            finally:
                for d, previous in saved.items():
                    if previous is None:
                        sys.modules.pop(d, None)
                    else:
                        sys.modules[d] = previous
            loaded[name] = module
        return loaded[name]

    for root in roots:
        load(root)
    return loaded


# ---------------------------------------------------------------------------------------------------
# The model, the data and the training step


def model_config(shape):
    h = shape["hidden"]
    return dict(vocab_size=shape["vocab_size"], hidden_size=h, num_hidden_layers=shape["layers"],
                num_attention_heads=max(1, h // 64), intermediate_size=4 * h, hidden_act="gelu",
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                max_position_embeddings=max(512, shape["seq_length"]), type_vocab_size=2,
                initializer_range=0.02)


def make_data(shape, num_batches=4, seed=0):
    """num_batches x batch_size full-length pretraining examples, as numpy arrays."""
    rng = np.random.RandomState(seed)
    n, s, p, v = (num_batches * shape["batch_size"], shape["seq_length"],
                  shape["max_predictions"], shape["vocab_size"])
    segment_ids = np.zeros((n, s), np.int32)
    segment_ids[:, s // 2:] = 1
    positions = np.sort(np.stack([rng.choice(np.arange(1, s), p, replace=False)
                                  for _ in range(n)]), axis=1)
    return dict(input_ids=rng.randint(v // 10, v, (n, s)).astype(np.int32),
                input_mask=np.ones((n, s), np.int32), segment_ids=segment_ids,
                masked_lm_positions=positions.astype(np.int32),
                masked_lm_ids=rng.randint(v // 10, v, (n, p)).astype(np.int32),
                masked_lm_weights=np.ones((n, p), np.float32),
                next_sentence_labels=rng.randint(0, 2, (n, 1)).astype(np.int32))


def named_variables(model):
    """{checkpoint name: variable}, defined here because an old revision may keep named_variables
    elsewhere (it moved from modeling.py to checkpoints.py)."""
    return {v.name.split(":")[0]: v for v in model.variables}


class Trainer:
    """One version's BertPretrainer, optimizer and compiled training loop over `data`."""

    def __init__(self, version, config, dtype, data, batch_size):
        modeling, optimization = version["modeling"], version["optimization"]
        self.model = modeling.BertPretrainer(modeling.BertConfig(**config), dtype)
        self.variables = named_variables(self.model)
        self.loss_fn = modeling.pretraining_loss
        trainable = {n: v for n, v in self.variables.items() if v.trainable}
        optimizer = optimization.create_optimizer(LEARNING_RATE, LR_TOTAL, LR_WARMUP)
        optimizer.build(trainable)
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batches = tf.data.Dataset.from_tensor_slices(data).batch(batch_size,
                                                                       drop_remainder=True)
        self.iterator = iter(self.batches.repeat())

        def train_step(features):
            with tf.GradientTape() as tape:
                loss = self.loss_fn(self.model, features, True)
            grads = tape.gradient(loss, trainable)
            grads = {n: tf.convert_to_tensor(g) for n, g in grads.items() if g is not None}
            grads, _ = optimization.clip_by_global_norm(grads, 1.0)
            optimizer.apply_gradients(grads, trainable, step)
            step.assign_add(1)
            return loss

        @tf.function
        def loop(iterator, steps):
            total = tf.constant(0.0)
            for _ in tf.range(steps):
                total += train_step(next(iterator))
            return total / tf.cast(steps, tf.float32)

        self._loop = loop

    def eval_loss(self):
        """The loss on the first batch with dropout off (traced, as the training step is)."""
        loss = tf.function(lambda features: self.loss_fn(self.model, features, False))
        return float(loss(next(iter(self.batches))))

    def run(self, steps):
        """Trains `steps` steps; returns (seconds, mean loss)."""
        start = time.perf_counter()
        loss = float(self._loop(self.iterator, tf.constant(steps)))
        return time.perf_counter() - start, loss


# ---------------------------------------------------------------------------------------------------
# Running the rounds


def build_pair(versions, config, dtype, data, batch_size):
    """{label: Trainer} with identical initial weights; raises unless both give the same loss
    with dropout off."""
    trainers = {label: Trainer(v, config, dtype, data, batch_size) for label, v in versions.items()}
    old, new = trainers["old"].variables, trainers["new"].variables
    if sorted(old) != sorted(new):
        raise ValueError("the versions' variables differ: "
                         f"{sorted(set(old) ^ set(new))[:10]}")
    for name, variable in new.items():
        variable.assign(old[name])
    losses = {label: t.eval_loss() for label, t in trainers.items()}
    print(f"  loss with dropout off, same batch: old {losses['old']:.7f}  new {losses['new']:.7f}",
          flush=True)
    if not np.isclose(losses["new"], losses["old"], rtol=1e-5, atol=0):
        raise ValueError("the two versions compute different losses; the A/B would not compare "
                         "like with like")
    return trainers


def timed_run(trainer, steps, batch_size):
    """(examples/s, loss, note on other processes' CPU use) of one run."""
    busy0, cpu0 = busy_cpu_seconds(), process_cpu_seconds()
    seconds, loss = trainer.run(steps)
    busy1, own = busy_cpu_seconds(), process_cpu_seconds() - cpu0
    note = busy_note(other_cpu_share(busy0, busy1, own, seconds))
    return steps * batch_size / seconds, loss, note


def compare(trainers, rounds, steps, batch_size):
    """Alternating timed runs; returns {label: [examples/s per round]}."""
    rates = {label: [] for label in trainers}
    for r in range(rounds):
        for label in (("old", "new") if r % 2 == 0 else ("new", "old")):
            rate, loss, note = timed_run(trainers[label], steps, batch_size)
            rates[label].append(rate)
            print(f"  round {r + 1}/{rounds}  {label}  {rate:8.2f} examples/s  loss {loss:.4f}"
                  f"{note}", flush=True)
    return rates


def main(argv):
    del argv
    print_cpu()
    directories = {"old": source_directory(FLAGS.old), "new": source_directory(FLAGS.new)}
    try:
        versions = {label: load_version(label, d) for label, d in directories.items()}
        run_all(versions)
    finally:  # the revisions' files, kept until here for tracebacks and AutoGraph's source reads
        for directory in directories.values():
            if directory != REPO:
                shutil.rmtree(directory, ignore_errors=True)


def run_all(versions):
    shape = TINY if FLAGS.tiny else FULL
    config = model_config(shape)
    for label, rev in (("old", FLAGS.old), ("new", FLAGS.new)):
        print(f"{label}: {rev or 'working tree'} ({', '.join(sorted(versions[label]))})")
    print(f"tensorflow {tf.__version__}")
    print(f"model: L={config['num_hidden_layers']} H={config['hidden_size']} "
          f"A={config['num_attention_heads']} I={config['intermediate_size']} "
          f"V={config['vocab_size']}; batch {shape['batch_size']} x {shape['seq_length']}, "
          f"{shape['max_predictions']} masked positions; {FLAGS.warmup_steps} warm-up steps, "
          f"then {FLAGS.rounds} rounds of {FLAGS.steps} steps per version", flush=True)
    data = make_data(shape)
    results = {}
    for precision in FLAGS.precision:
        print(f"{precision}:", flush=True)
        trainers = build_pair(versions, config, tf.as_dtype(precision), data, shape["batch_size"])
        for trainer in trainers.values():
            trainer.run(FLAGS.warmup_steps)
        results[precision] = compare(trainers, FLAGS.rounds, FLAGS.steps, shape["batch_size"])
        del trainers
    print()
    print(f"{'precision':10s} {'old':>9s} {'new':>9s} {'new/old':>8s} {'rounds':>8s}   (median "
          "examples/s; rounds: median of the rounds' new/old)")
    for precision, rates in results.items():
        old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
        paired = statistics.median(n / o for n, o in zip(rates["new"], rates["old"]))
        print(f"{precision:10s} {old:9.2f} {new:9.2f} {new / old:7.3f}x {paired:7.3f}x")


if __name__ == "__main__":
    app.run(main)
