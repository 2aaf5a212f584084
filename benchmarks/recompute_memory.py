"""Memory and speed of activation recomputation (`--gradient_checkpointing`), against none.

Usage, from the repository root:

    python benchmarks/recompute_memory.py [--batch_size=8] [--seq_length=512] [--steps=3]
        [--precision=float32] [--small]

What runs: pretraining (`BertPretrainer`, `pretraining_loss`, the original AdamW through
`training.Runner.train` on one device, dropout 0.1) at BERT-Base sizes (L=12, H=768, A=12, I=3072,
vocab 30522) on random full-length sequences with --max_predictions masked positions, once with
`gradient_checkpointing=False` ("plain") and once with True ("recompute"), at --batch_size and at
half of it. Each of the four runs is a child process of its own, one after the other, so that
their peaks cannot mix. A run makes one training step to warm up (tracing, XLA compilation), then
--steps timed ones (--steps 1 at half the batch: those runs measure memory only), and stops before
the runner writes its final checkpoint.

How activations are told apart from weights and optimizer slots: TensorFlow's CPU allocator counts
the bytes of every tensor it hands out, which `tf.config.experimental.get_memory_info("CPU:0")`
reports on CPU too ("current" and "peak"; XLA's and oneDNN's scratch space come from the same
allocator). After the warm-up step the peak is reset; "held" is what is allocated then (weights,
optimizer slots, the input pipeline's buffers), "step peak" the peak during the timed steps minus
"held": what a training step allocates on top, which is the activations kept for the backward
pass, the gradients (one float32 copy of the weights, the same both ways) and temporaries. The
activations alone are the part that grows with the batch: (step peak at the batch - step peak at
half of it) / (half the batch) is the activation memory per example, which the ratio compares.
The peak resident memory of each whole process (VmHWM: everything, TensorFlow's runtime, compiled
code and the allocator's slack included) is printed beside it, to show what fits in RAM.

Speed: examples/s over the timed steps of the full-batch runs, from the runner's progress reports
(as benchmarks/train_throughput.py times them), and the CPU time the run's process used per example
over the same steps (all its threads), which depends much less on what else the machine runs. The
parent measures how much CPU other processes took during each run (from /proc/stat) and flags runs
where that exceeded 10% (busy machine: wall-clock ratios then say little). Every run starts from
the same seed, so plain and recompute print the same loss at each batch size.

Targets (issue 21): activation memory at least 3x smaller, at most 40% slower per example.
`--small` (L=2, H=128, vocab 1000, batch 8 x 128) checks the harness in a minute or two; its
figures say little.
"""

import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import _setup  # noqa: F401,E402  (first: environment and sys.path)

from absl import app, flags, logging  # noqa: E402
from _machine import busy_cpu_seconds, busy_note, other_cpu_share, print_cpu  # noqa: E402
from _random_batches import pretraining_batch  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 8, "Sequences per step (the half-batch runs use half).")
flags.DEFINE_integer("seq_length", 512, "Tokens per sequence.")
flags.DEFINE_integer("max_predictions", 80, "Masked-LM positions per sequence.")
flags.DEFINE_integer("steps", 3, "Timed training steps of the full-batch runs.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute dtype.")
flags.DEFINE_bool("small", False, "A tiny model and batch, to check the harness quickly.")

BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072)
SMALL = dict(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=512)
MB = 2.0 ** 20
TARGET_MEMORY_RATIO, TARGET_SLOWDOWN = 3.0, 0.40


def settings():
    """(model shape, batch size, sequence length, masked positions) from the flags."""
    if FLAGS.small:
        return SMALL, 8, 128, 20
    return BASE, FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions


def peak_rss_mb():
    """This process's peak resident memory (VmHWM) in MB, or None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class _Measured(Exception):
    """Ends Runner.train after the last timed step, before its final checkpoint is written."""


def measure(gradient_checkpointing, batch_size, steps):
    """One run, in a child process: {weights_mb, held_mb, step_peak_mb, peak_rss_mb,
    examples_per_s, cpu_s_per_example, loss} (see the module docstring)."""
    import tensorflow as tf
    import modeling
    import optimization
    import training
    shape, _, seq_length, max_predictions = settings()
    tf.random.set_seed(0)  # the same weights and dropout masks in every run: the same losses
    config = modeling.BertConfig(**shape, max_position_embeddings=max(512, seq_length),
                                 type_vocab_size=2)
    batch = pretraining_batch(batch_size, seq_length, max_predictions, config.vocab_size)
    output_dir = tempfile.mkdtemp(prefix="recompute_memory_")
    runner = training.Runner(
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        lambda: modeling.BertPretrainer(config, tf.as_dtype(FLAGS.precision),
                                        gradient_checkpointing=gradient_checkpointing),
        output_dir)
    seen = {}

    class MeasuringProgress(training.Progress):
        """Instead of the progress line: a timestamp and the allocator's figures per step."""

        def update(self, step, steps_done, loss, lr):
            if step == 1:  # warmed up: count from here
                tf.config.experimental.reset_memory_stats("CPU:0")
            seen[step] = (time.perf_counter(), time.process_time(),
                          tf.config.experimental.get_memory_info("CPU:0"))
            seen["loss"] = loss
            if step == 1 + steps:
                raise _Measured()

    def dataset_fn(ctx):
        del ctx
        return tf.data.Dataset.from_tensor_slices(batch).repeat().batch(batch_size)

    train_config = training.TrainConfig(num_train_steps=1 + steps, train_batch_size=batch_size,
                                        iterations_per_loop=1, save_checkpoints_steps=10**9)
    try:
        runner.train(train_config, modeling.pretraining_loss, dataset_fn,
                     optimization.create_optimizer(1e-4, 10**6, 10), progress=MeasuringProgress)
    except _Measured:
        pass
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    (start, cpu_start, held), (end, cpu_end, last) = seen[1], seen[1 + steps]
    weights = sum(v.shape.num_elements() for v in runner.trainable.values()) * 4
    return dict(weights_mb=weights / MB, held_mb=held["current"] / MB,
                step_peak_mb=(last["peak"] - held["current"]) / MB, peak_rss_mb=peak_rss_mb(),
                examples_per_s=steps * batch_size / (end - start),
                cpu_s_per_example=(cpu_end - cpu_start) / (steps * batch_size), loss=seen["loss"])


def _child(conn, argv, *args):
    FLAGS(argv)
    logging.set_verbosity(logging.WARNING)
    conn.send(measure(*args))


def run_child(gradient_checkpointing, batch_size, steps):
    """measure(...) in a fresh process: (its result, the share of the CPUs other processes took
    meanwhile or None without /proc/stat, the run's seconds)."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_child, args=(child_end, list(sys.argv),
                                                   gradient_checkpointing, batch_size, steps))
    busy0, t0, c0 = busy_cpu_seconds(), time.perf_counter(), os.times()
    process.start()
    result = parent_end.recv()
    process.join()
    seconds, c1 = time.perf_counter() - t0, os.times()
    own = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return result, other_cpu_share(busy0, busy_cpu_seconds(), own, seconds), seconds


def main(argv):
    del argv
    shape, batch_size, seq_length, max_predictions = settings()
    half = batch_size // 2
    print_cpu()
    print(f"model: L={shape['num_hidden_layers']} H={shape['hidden_size']} "
          f"A={shape['num_attention_heads']} I={shape['intermediate_size']} "
          f"V={shape['vocab_size']}, {FLAGS.precision}; sequences of {seq_length} with "
          f"{max_predictions} masked positions; batch {batch_size} (1 warm-up + {FLAGS.steps} "
          f"timed steps) and {half} (1 + 1, memory only)", flush=True)
    print(f"{'run':10s} {'batch':>5s} {'held MB':>8s} {'step peak MB':>13s} "
          f"{'peak RSS MB':>12s} {'examples/s':>11s} {'CPU s/ex.':>10s} {'loss':>7s}")
    runs = {}
    for batch, steps in ((batch_size, FLAGS.steps), (half, 1)):
        for checkpointing in (False, True):
            r, share, seconds = run_child(checkpointing, batch, steps)
            runs[checkpointing, batch] = r
            rss = f"{r['peak_rss_mb']:12.0f}" if r["peak_rss_mb"] is not None else f"{'-':>12s}"
            speed = (f"{r['examples_per_s']:11.3f} {r['cpu_s_per_example']:10.3g}"
                     if batch == batch_size else f"{'-':>11s} {'-':>10s}")
            print(f"{'recompute' if checkpointing else 'plain':10s} {batch:5d} "
                  f"{r['held_mb']:8.0f} {r['step_peak_mb']:13.0f} {rss} {speed} "
                  f"{r['loss']:7.3f}  (run took {seconds:.0f} s){busy_note(share)}", flush=True)
    summarize(runs, batch_size, half)


def summarize(runs, batch_size, half):
    """The ratios against the targets."""
    def per_example(checkpointing):
        grown = runs[checkpointing, batch_size]["step_peak_mb"] \
            - runs[checkpointing, half]["step_peak_mb"]
        return grown / (batch_size - half)

    plain, recompute = per_example(False), per_example(True)
    ratio = plain / recompute
    print()
    print(f"activation memory per example (step peak growth from batch {half} to {batch_size}): "
          f"plain {plain:.1f} MB, recompute {recompute:.1f} MB: {ratio:.1f}x smaller (target "
          f"{TARGET_MEMORY_RATIO:.0f}x: {'met' if ratio >= TARGET_MEMORY_RATIO else 'NOT met'})")
    full = {c: runs[c, batch_size] for c in (False, True)}
    print(f"step peak at batch {batch_size}: plain {full[False]['step_peak_mb']:.0f} MB, "
          f"recompute {full[True]['step_peak_mb']:.0f} MB "
          f"({full[False]['step_peak_mb'] / full[True]['step_peak_mb']:.1f}x smaller), of which "
          f"activations {plain * batch_size:.0f} and {recompute * batch_size:.0f} MB; the rest "
          f"is the gradients (the weights: {full[False]['weights_mb']:.0f} MB) and temporaries")
    slower = full[False]["examples_per_s"] / full[True]["examples_per_s"] - 1
    more_cpu = full[True]["cpu_s_per_example"] / full[False]["cpu_s_per_example"] - 1
    print(f"examples/s at batch {batch_size}: plain {full[False]['examples_per_s']:.3f}, "
          f"recompute {full[True]['examples_per_s']:.3f}: {slower:.0%} more time per example "
          f"(target at most {TARGET_SLOWDOWN:.0%}: "
          f"{'met' if slower <= TARGET_SLOWDOWN else 'NOT met'}); {more_cpu:.0%} more CPU time "
          f"per example")


if __name__ == "__main__":
    app.run(main)
