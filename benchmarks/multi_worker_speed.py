"""Training speed of one worker against two workers on loopback, and the all-reduce's share.

Usage, from the repository root:

    python benchmarks/multi_worker_speed.py [--batch_size=32] [--seq_length=128] [--steps=20]
        [--steps_per_loop=5] [--small]

What runs: pretraining (`BertPretrainer`, `pretraining_loss`, the original AdamW through
`training.Runner.train`, dropout 0.1) of a small BERT (L=4, H=256, A=4, I=1024, vocab 30522) on
random full-length sequences, for the same global batch (--batch_size examples per step):

- "1 worker": one process on one device (`OneDeviceStrategy`), what a single machine runs;
- "2 workers": two processes on 127.0.0.1 with `MultiWorkerMirroredStrategy` (TF_CONFIG, ports
  from the OS), --batch_size / 2 examples each per step, gradients all-reduced over gRPC each step
  as `--distribution_strategy=multi_worker_mirrored` does.

Each worker is a child process of its own (TF_CONFIG must be set before TensorFlow starts). A run
makes --steps_per_loop steps to warm up (tracing), then --steps timed ones; examples/s are
timed from the runner's progress reports, as benchmarks/train_throughput.py times them.

The all-reduce: after training, the two workers all-reduce tensors of the model's trainable
variables' shapes (the gradients' shapes) exactly as the runner's training step does
(`ReplicaContext.all_reduce(MEAN, ...)` over the sorted gradients, in a `tf.function` loop of
--steps_per_loop), --steps times, with nothing else to do. Its time per step against the time of a
whole two-worker training step is the share of each step spent communicating (the runner does not
overlap the all-reduce with the backward pass, so the two add up).

On this 2-core development machine the two workers share the same cores, so "2 workers" cannot be
faster than one and the ratio says little about real machines; the all-reduce share is the figure
to read (loopback gRPC: a lower bound on what a network costs). The parent flags runs during which
other processes used more than 10% of the CPUs. `--small` (L=2, H=64, vocab 1000, batch 8 x 32)
checks the harness in a minute.
"""

import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback

import _setup  # noqa: F401,E402  (first: environment and sys.path)

from absl import app, flags, logging  # noqa: E402
from _machine import busy_cpu_seconds, busy_note, other_cpu_share, print_cpu  # noqa: E402
from _random_batches import pretraining_batch  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Global batch: examples per step over all workers.")
flags.DEFINE_integer("seq_length", 128, "Tokens per sequence.")
flags.DEFINE_integer("max_predictions", 20, "Masked-LM positions per sequence.")
flags.DEFINE_integer("steps", 20, "Timed training steps (and timed all-reduces).")
flags.DEFINE_integer("steps_per_loop", 5, "Steps per runner loop (the warm-up is one loop).")
flags.DEFINE_bool("small", False, "A tiny model and batch, to check the harness quickly.")

MODEL = dict(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=1024)
SMALL = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=256)


def settings():
    """(model shape, global batch, sequence length, masked positions) from the flags."""
    if FLAGS.small:
        return SMALL, 8, 32, 5
    return MODEL, FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions


def train_speed(runner, batch_size, steps, steps_per_loop):
    """(examples/s, this process's CPU seconds per example) of `runner` training `steps` steps
    after one warm-up loop (see the module docstring)."""
    import tensorflow as tf
    import modeling
    import optimization
    import training
    shape, _, seq_length, max_predictions = settings()
    times = {}

    class TimedProgress(training.Progress):
        def update(self, step, steps_done, loss, lr):
            times[step] = (time.perf_counter(), time.process_time())

    def dataset_fn(ctx):
        batch = pretraining_batch(ctx.get_per_replica_batch_size(batch_size), seq_length,
                             max_predictions, shape["vocab_size"], seed=ctx.input_pipeline_id)
        return tf.data.Dataset.from_tensors(batch).repeat()

    total = steps_per_loop + steps
    runner.train(training.TrainConfig(num_train_steps=total, train_batch_size=batch_size,
                                      iterations_per_loop=steps_per_loop,
                                      save_checkpoints_steps=10**9),
                 modeling.pretraining_loss, dataset_fn,
                 optimization.create_optimizer(1e-4, 10**6, 10), progress=TimedProgress)
    (start, cpu_start), (end, cpu_end) = times[steps_per_loop], times[total]
    return steps * batch_size / (end - start), (cpu_end - cpu_start) / (steps * batch_size)


def all_reduce_seconds(runner, steps, steps_per_loop):
    """Seconds per step of the training step's all-reduce alone: MEAN over the workers of one
    tensor per trainable variable, sorted by name, as Runner's replica_step reduces gradients."""
    import tensorflow as tf
    strategy, names = runner.strategy, sorted(runner.trainable)

    def replica_fn(scale):
        ctx = tf.distribute.get_replica_context()
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.MEAN,
                                 [runner.trainable[n] * scale for n in names])
        return tf.add_n([tf.reshape(t, [-1])[0] for t in reduced])  # uses every result

    @tf.function
    def loop(n):
        total = tf.constant(0.0)
        for i in tf.range(n):  # like the training loop: a step, then its loss reduced
            per_replica = strategy.run(replica_fn, args=(tf.cast(i, tf.float32),))
            total += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return total

    float(loop(tf.constant(steps_per_loop)))  # traces and warms up
    start = time.perf_counter()
    for _ in range(steps // steps_per_loop):
        float(loop(tf.constant(steps_per_loop)))
    return (time.perf_counter() - start) / (steps // steps_per_loop * steps_per_loop)


def worker(conn, argv, tf_config, batch_size, log_path):
    """One worker process: sends {examples_per_s, cpu_s_per_example, all_reduce_s (None for one
    worker), parameters}, or {error: traceback}. TensorFlow's own messages go to `log_path`."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 2)
    if tf_config:
        os.environ["TF_CONFIG"] = tf_config
    FLAGS(argv)
    logging.set_verbosity(logging.WARNING)
    try:
        conn.send(measure(tf_config, batch_size))
    except Exception:  # pylint: disable=broad-except
        conn.send({"error": traceback.format_exc()})


def measure(tf_config, batch_size):
    """What `worker` sends, measured in this process."""
    import tensorflow as tf
    import modeling
    import training
    # The strategy first: MultiWorkerMirroredStrategy must come before TensorFlow runs any op.
    strategy = (training.multi_worker_strategy(collective_timeout_seconds=600) if tf_config
                else tf.distribute.OneDeviceStrategy("/cpu:0"))
    shape = settings()[0]
    config = modeling.BertConfig(**shape, max_position_embeddings=512, type_vocab_size=2)
    tf.random.set_seed(0)
    with tempfile.TemporaryDirectory(prefix="multi_worker_speed_") as output_dir:
        runner = training.Runner(strategy, lambda: modeling.BertPretrainer(config), output_dir)
        speed, cpu = train_speed(runner, batch_size, FLAGS.steps, FLAGS.steps_per_loop)
        reduce_s = (all_reduce_seconds(runner, FLAGS.steps, FLAGS.steps_per_loop)
                    if tf_config else None)
    return dict(examples_per_s=speed, cpu_s_per_example=cpu, all_reduce_s=reduce_s,
                parameters=sum(v.shape.num_elements() for v in runner.trainable.values()))


def os_ports(n):
    """n ports on 127.0.0.1 that the OS calls free now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(num_workers, batch_size, log_dir):
    """The workers' results ([dict]; see worker), the CPU share other processes took, seconds."""
    context = multiprocessing.get_context("spawn")
    ports = os_ports(num_workers) if num_workers > 1 else []
    pipes, child_ends, processes = [], [], []
    for index in range(num_workers):
        tf_config = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index}}) if ports else None
        parent_end, child_end = context.Pipe()
        pipes.append(parent_end)
        child_ends.append(child_end)
        log_path = os.path.join(log_dir, f"{num_workers}-workers-{index}.log")
        processes.append(context.Process(target=worker, daemon=True, args=(
            child_end, list(sys.argv), tf_config, batch_size, log_path)))
    busy0, t0, c0 = busy_cpu_seconds(), time.perf_counter(), os.times()
    for process, child_end in zip(processes, child_ends):
        process.start()
        child_end.close()  # the child's copy remains: recv() then fails if the child dies
    results = []
    for pipe in pipes:  # on a failure, exit: the other (daemon) workers end with this process
        try:
            results.append(pipe.recv())
        except EOFError:
            sys.exit(f"a worker died (its TensorFlow log is in {log_dir})")
        if "error" in results[-1]:
            sys.exit(f"a worker failed (its TensorFlow log is in {log_dir}):\n"
                     f"{results[-1]['error']}")
    for process in processes:
        process.join()
    seconds, c1 = time.perf_counter() - t0, os.times()
    own = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return results, other_cpu_share(busy0, busy_cpu_seconds(), own, seconds), seconds


def main(argv):
    del argv
    shape, batch_size, seq_length, max_predictions = settings()
    if batch_size % 2:
        raise app.UsageError("--batch_size must be even (two workers share it)")
    print_cpu()
    print(f"model: L={shape['num_hidden_layers']} H={shape['hidden_size']} "
          f"A={shape['num_attention_heads']} I={shape['intermediate_size']} "
          f"V={shape['vocab_size']}, float32; global batch {batch_size} x {seq_length} "
          f"({max_predictions} masked); {FLAGS.steps_per_loop} warm-up + {FLAGS.steps} timed "
          f"steps", flush=True)
    speeds = {}
    log_dir = tempfile.mkdtemp(prefix="multi_worker_speed_logs_")
    for num_workers in (1, 2):
        results, share, seconds = run_workers(num_workers, batch_size, log_dir)
        speeds[num_workers] = results[0]["examples_per_s"]
        cpu = sum(r["cpu_s_per_example"] for r in results)  # each worker's share of the batch
        print(f"{num_workers} worker{'s' if num_workers > 1 else ''}: "
              f"{speeds[num_workers]:8.2f} examples/s  {cpu * 1000:.1f} ms CPU per example (all "
              f"workers)  (run took {seconds:.0f} s){busy_note(share)}", flush=True)
    reduce_s, parameters = results[0]["all_reduce_s"], results[0]["parameters"]
    step_s = batch_size / speeds[2]
    print(f"2 workers / 1 worker: {speeds[2] / speeds[1]:.2f}x examples/s (both workers on the "
          f"same {os.cpu_count()} CPUs here)")
    print(f"all-reduce of the gradients ({parameters / 1e6:.2f} M float32 values, "
          f"{parameters * 4 / 2**20:.1f} MB): {reduce_s * 1000:.1f} ms per step of "
          f"{step_s * 1000:.1f} ms: {reduce_s / step_s:.0%} of a two-worker training step")
    shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
