"""The training runner that replaces TPUEstimator, on `tf.distribute`.

A task plugs in as plain functions; the runner knows nothing about BERT:
  build_fn()                          -> tf.Module holding the model and its heads (variables
                                         carrying their original checkpoint names)
  loss_fn(model, features, training)  -> scalar float32 loss, the mean over the replica's batch
  dataset_fn(input_context)           -> tf.data.Dataset of this replica's batches (training;
                                         input_pipeline.py builds them from TFRecord files)
  metric_fn(model, features)          -> {name: (sum, count)} for evaluation
  predict_fn(model, features)         -> {name: tensor [B, ...]} for prediction

What it does for every script: picks the strategy from the original TPU flags or
`--distribution_strategy`; runs `iterations_per_loop` steps per `tf.function` call; accumulates
gradients over micro-batches; clips them to global norm 1.0 and applies the optimizer; writes
name-based checkpoints (original names) every `save_checkpoints_steps` and at the end, keeping the
last few; resumes from the newest checkpoint in the output directory; prints a progress line and
writes TensorBoard summaries under the output directory.
"""

import dataclasses
import os
import time
from typing import Callable

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

import checkpoints
from errors import InputError
import file_io
import optimization

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def make_strategy(distribution_strategy="auto", use_tpu=False, tpu_name=None, tpu_zone=None,
                  gcp_project=None, master=None, num_tpu_cores=8):
    """The `tf.distribute.Strategy` the flags ask for.

    `--use_tpu` (the original flag) means the TPU strategy; `auto` picks mirrored when several GPUs
    are visible and one device otherwise. `multi_worker_mirrored` reads the cluster from TF_CONFIG.
    `num_tpu_cores` is informational: the TPU system reports its own topology.
    """
    if distribution_strategy not in STRATEGIES:
        raise InputError(f"--distribution_strategy={distribution_strategy!r}; expected one of "
                         f"{', '.join(STRATEGIES)}")
    if use_tpu or distribution_strategy == "tpu":
        tpu = tpu_name or master or ""
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu, zone=tpu_zone, project=gcp_project)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
        if num_tpu_cores and strategy.num_replicas_in_sync != num_tpu_cores:
            logging.warning("--num_tpu_cores=%d but the TPU has %d cores; using %d", num_tpu_cores,
                            strategy.num_replicas_in_sync, strategy.num_replicas_in_sync)
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if distribution_strategy == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribution_strategy == "mirrored" or (distribution_strategy == "auto" and len(gpus) > 1):
        return mirrored_strategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def mirrored_strategy(devices=None):
    """A `tf.distribute.MirroredStrategy` whose collective keys no earlier strategy used.

    TensorFlow resolves collective all-reduces by (group key, instance key) once per process, and
    every new MirroredStrategy numbers its keys from the same start: a second strategy in one process
    (a notebook running two scripts' `main`, a test suite) then meets the first one's cached shapes
    and fails with "Shape mismatch in the collective instance". Moving each strategy's key base past
    the last one keeps them apart, as TensorFlow's own tests do.
    """
    tf.distribute.MirroredStrategy._collective_key_base += _COLLECTIVE_KEY_STRIDE
    return tf.distribute.MirroredStrategy(devices)


_COLLECTIVE_KEY_STRIDE = 100000


@dataclasses.dataclass
class TrainConfig:
    """How long and how to train; every field is one of the scripts' flags."""
    num_train_steps: int
    train_batch_size: int                 # examples per optimizer step, over all replicas
    iterations_per_loop: int = 1000
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    gradient_accumulation_steps: int = 1
    clip_norm: float = 1.0
    init_checkpoint: str = None
    # Compile each step's forward and backward pass with XLA (the gradient all-reduce and the
    # optimizer update stay outside: MirroredStrategy cannot synchronise inside a compiled
    # function). Off by default: on CPU, XLA's matrix products are slower than oneDNN's (about
    # 1.1x slower in float32 and 2x in bfloat16 for BERT), which outweighs its op fusion.
    jit_compile: bool = False


@dataclasses.dataclass
class StepCallback:
    """`fn(step)` called by Runner.train after steps every_steps, 2 * every_steps, ... and after
    the last step (when `at_end`), once that step's checkpoint (if any) is saved.

    A training loop ends at each of these steps, so `fn` sees the weights of exactly that step
    (run_classifier.py evaluates on the dev set there and keeps the best checkpoint).
    """
    every_steps: int
    fn: Callable[[int], None]
    at_end: bool = True

    def due(self, step, last_step):
        return step % self.every_steps == 0 or (self.at_end and step >= last_step)


class Runner:
    """Holds a model built under a strategy and trains, evaluates or predicts with it."""

    def __init__(self, strategy, build_fn, output_dir):
        self.strategy = strategy
        self.output_dir = output_dir
        with strategy.scope():
            self.model = build_fn()
            self.global_step = tf.Variable(
                0, dtype=tf.int64, name="global_step", trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.model_variables = checkpoints.named_variables(self.model)
        self.trainable = {n: v for n, v in self.model_variables.items() if v.trainable}
        self._predict_steps = {}

    # -- checkpoints ------------------------------------------------------------------------------

    def _manager(self, optimizer, keep):
        variables = dict(self.model_variables, global_step=self.global_step)
        variables.update(optimizer.slot_variables() if optimizer else {})
        return checkpoints.CheckpointManager(self.output_dir, variables, max_to_keep=keep)

    def restore_for_inference(self, init_checkpoint=None):
        """Loads the model from the newest checkpoint in output_dir, else from init_checkpoint."""
        latest = tf.train.latest_checkpoint(self.output_dir) if self.output_dir else None
        source = latest or init_checkpoint
        if not source:
            raise checkpoints.CheckpointError(
                f"no checkpoint in --output_dir={self.output_dir} and no --init_checkpoint")
        logging.info("Loading weights from %s", source)
        checkpoints.restore(self.model_variables, source)
        return source

    def restore_for_evaluation(self, init_checkpoint=None):
        """restore_for_inference, with global_step set to the checkpoint's step (0 for one
        without a step, such as a released bert_model.ckpt). Returns the step."""
        source = checkpoints.resolve(self.restore_for_inference(init_checkpoint))
        step = checkpoints.step_of(source) or 0
        self.global_step.assign(step)
        return step

    # -- training ---------------------------------------------------------------------------------

    def train(self, config, loss_fn, dataset_fn, optimizer, callbacks=(), progress=None):
        """Trains to `config.num_train_steps`, resuming from output_dir when it has a checkpoint.

        `callbacks`: StepCallbacks, called after their steps (see StepCallback).
        `progress`: what reports progress, made as progress(output_dir, train_batch_size,
          num_train_steps, start_step) with the interface of `Progress` (the default).
        Returns the mean loss of the last loop (None if there was nothing left to do).
        """
        for callback in callbacks:
            if callback.every_steps < 1:
                raise ValueError(f"StepCallback.every_steps={callback.every_steps} must be >= 1")
        with self.strategy.scope():
            optimizer.build(self.trainable)
        manager = self._manager(optimizer, config.keep_checkpoint_max)
        resumed = manager.restore_latest()
        if resumed:
            logging.info("Resuming from %s (step %d)", resumed, int(self.global_step.numpy()))
        elif config.init_checkpoint:
            logging.info("Initialising from %s", config.init_checkpoint)
            checkpoints.restore(self.model_variables, config.init_checkpoint)
        step = int(self.global_step.numpy())
        if step >= config.num_train_steps:
            logging.info("Already at step %d of %d; nothing to train", step,
                         config.num_train_steps)
            return None
        loop = self._train_loop_fn(config, loss_fn, optimizer)
        iterator = iter(self.strategy.distribute_datasets_from_function(dataset_fn))
        progress = (progress or Progress)(self.output_dir, config.train_batch_size,
                                          config.num_train_steps, step)
        loss = None
        while step < config.num_train_steps:
            n = _steps_this_loop(step, config, callbacks)
            loss = float(loop(iterator, tf.constant(n, tf.int32)))
            if not np.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {step + n}; not saving")
            step = int(self.global_step.numpy())
            lr = float(optimizer.learning_rate(self.global_step))
            progress.update(step, n, loss, lr)
            if step % config.save_checkpoints_steps == 0 or step >= config.num_train_steps:
                logging.info("Saved %s", manager.save(step))
            due = [c for c in callbacks if c.due(step, config.num_train_steps)]
            for callback in due:
                callback.fn(step)
            if due:  # examples/s counts training time only (the ETA includes the callbacks)
                progress.resume()
        progress.close()
        return loss

    def _train_loop_fn(self, config, loss_fn, optimizer):
        strategy, k = self.strategy, config.gradient_accumulation_steps
        if config.train_batch_size % (k * strategy.num_replicas_in_sync):
            raise InputError(
                f"--train_batch_size={config.train_batch_size} must be divisible by "
                f"--gradient_accumulation_steps={k} x {strategy.num_replicas_in_sync} replica(s)")

        def gradients(features):
            return self._gradients(loss_fn, features, k)

        if config.jit_compile:
            gradients = tf.function(gradients, jit_compile=True)

        def replica_step(features):
            loss, grads = gradients(features)
            ctx = tf.distribute.get_replica_context()
            if ctx.num_replicas_in_sync > 1:
                names = sorted(grads)
                reduced = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [grads[n] for n in names])
                grads = dict(zip(names, reduced))
            grads, _ = optimization.clip_by_global_norm(grads, config.clip_norm)
            optimizer.apply_gradients(grads, self.trainable, self.global_step)
            self.global_step.assign_add(1)
            return loss

        @tf.function
        def loop(iterator, steps):
            total = tf.constant(0.0)
            for _ in tf.range(steps):
                per_replica = strategy.run(replica_step, args=(next(iterator),))
                total += strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)
            return total / tf.cast(steps, tf.float32)

        return loop

    def _gradients(self, loss_fn, features, k):
        """Mean loss and {name: dense gradient} over `k` equal micro-batches of `features`.

        Variables the loss does not reach (the pooler under a span loss, say) get no gradient and
        so no update, as with the original optimizer.
        """
        def one(batch):
            with tf.GradientTape() as tape:
                loss = loss_fn(self.model, batch, True)
            grads = tape.gradient(loss, self.trainable)
            return loss, {n: tf.convert_to_tensor(g) for n, g in grads.items() if g is not None}

        if k == 1:
            return one(features)
        micro = tf.nest.map_structure(
            lambda t: tf.reshape(t, tf.concat([[k, -1], tf.shape(t)[1:]], 0)), features)
        loss, grads = one(tf.nest.map_structure(lambda t: t[0], micro))
        for i in tf.range(1, k):
            loss_i, grads_i = one(tf.nest.map_structure(lambda t: t[i], micro))
            loss += loss_i
            grads = {n: g + grads_i[n] for n, g in grads.items()}
        return loss / k, {n: g / k for n, g in grads.items()}

    # -- evaluation and prediction ------------------------------------------------------------------

    def evaluate(self, metric_fn, dataset, max_steps=None):
        """{name: sum / count} of `metric_fn` over a globally batched `dataset`."""
        strategy = self.strategy

        @tf.function(reduce_retracing=True)
        def step(batch):
            per_replica = strategy.run(lambda f: metric_fn(self.model, f), args=(batch,))
            return tf.nest.map_structure(
                lambda t: strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None), per_replica)

        totals = {}
        for i, batch in enumerate(strategy.experimental_distribute_dataset(dataset)):
            if max_steps is not None and i >= max_steps:
                break
            for name, (total, count) in step(batch).items():
                t, c = totals.get(name, (0.0, 0.0))
                totals[name] = (t + float(total), c + float(count))
        return {name: t / c if c else float("nan") for name, (t, c) in totals.items()}

    def predict(self, predict_fn, dataset):
        """Yields {name: numpy array [B, ...]} per batch of `dataset`, in the dataset's order."""
        strategy = self.strategy
        # One tf.function per predict_fn, kept, so that calling predict again (evaluation every N
        # training steps) does not trace it again.
        step = self._predict_steps.get(predict_fn)
        if step is None:
            @tf.function(reduce_retracing=True)
            def step(batch):
                return strategy.run(lambda f: predict_fn(self.model, f), args=(batch,))
            self._predict_steps[predict_fn] = step

        for batch in strategy.experimental_distribute_dataset(dataset):
            outputs = step(batch)
            yield {name: np.concatenate([t.numpy() for t in
                                         strategy.experimental_local_results(value)])
                   for name, value in outputs.items()}


def _steps_this_loop(step, config, callbacks=()):
    """Steps until the next loop end, checkpoint, callback or the last step, whichever is first."""
    def to_next(every):
        return every - step % every
    return max(1, min([config.iterations_per_loop, to_next(config.save_checkpoints_steps),
                       config.num_train_steps - step]
                      + [to_next(c.every_steps) for c in callbacks]))


class Progress:
    """The progress line and the TensorBoard summaries of a training run.

    Runner.train makes one per call and calls `update` after every loop, `resume` after the
    StepCallbacks that ran at a loop's end, and `close` at the end. A subclass can add to what a
    report does (benchmarks/train_throughput.py takes a timestamp per report) and is passed to
    Runner.train as `progress`.
    """

    def __init__(self, output_dir, batch_size, total_steps, start_step):
        """`batch_size`: examples per step; `start_step`: the step training starts (or resumes)
        from; summaries go to `output_dir` (none if it is empty)."""
        self.batch_size, self.total_steps = batch_size, total_steps
        self.start_step, self.start_time = start_step, None
        self.last_time = time.time()
        self.writer = tf.summary.create_file_writer(output_dir) if output_dir else None

    def update(self, step, steps_done, loss, lr):
        """Reports the loop of `steps_done` steps that ended at `step`: its mean `loss` and the
        learning rate `lr` now; examples/s over the time since the previous report (or resume)."""
        now = time.time()
        rate = steps_done * self.batch_size / max(now - self.last_time, 1e-9)
        if self.start_time is None:  # the first loop includes tracing; time from its end
            self.start_time, self.start_step = now, step
            eta = "?"
        else:
            per_step = (now - self.start_time) / max(step - self.start_step, 1)
            eta = _format_seconds(per_step * (self.total_steps - step))
        self.last_time = now
        logging.info("step %d/%d  loss %.4f  lr %.3g  %.1f examples/s  ETA %s", step,
                     self.total_steps, loss, lr, rate, eta)
        if self.writer:
            with self.writer.as_default(step=step):
                write_scalars({"loss": loss, "learning_rate": lr, "examples_per_second": rate})

    def resume(self):
        """Training resumes now: the time since the last report (callbacks) is not training."""
        self.last_time = time.time()

    def close(self):
        if self.writer:
            self.writer.flush()


def write_scalars(values):
    """TensorBoard scalars through the default writer, without the tensorboard package.

    `tf.summary.scalar` needs tensorboard installed; the core `tf.summary.write` op with the
    scalars plugin's metadata writes the same event records.
    """
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    for tag, value in values.items():
        tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


def _format_seconds(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# -- Evaluation during training: the best checkpoint ---------------------------------------------

def once_per_step(runner, fn):
    """fn(key), computed again only once the runner's global step has moved on: an evaluation
    every N steps and the one after training, at the same step, share one pass."""
    last = {}

    def call(key):
        step = int(runner.global_step.numpy())
        if last.get(key, (None,))[0] != step:
            last[key] = (step, fn(key))
        return last[key][1]
    return call


class BestCheckpoint:
    """Keeps the runner's weights with the best value of one result in a directory of their own
    (the fine-tuning scripts' --eval_every_steps, in <output_dir>/best/).

    `update(results)` ({name: value} holding `key` and global_step; higher is better, and any
    value beats NaN) saves, when results[key] beats the best so far, model.ckpt-<step> (the
    model's weights and global_step, no optimizer slots: it is for evaluation, prediction or
    --init_checkpoint, not for resuming) with its `checkpoint` state file, RESULTS_FILE (the
    results) and `extra_files` ({file name: text}, say the label list the outputs follow), and
    deletes the previous best. A new BestCheckpoint on the same directory continues from the best
    recorded there, if its checkpoint is there too (a resumed run).
    """
    RESULTS_FILE = "eval_results.txt"

    def __init__(self, runner, directory, key, extra_files=None):
        self.runner, self.directory, self.key = runner, directory, key
        self.extra_files = dict(extra_files or {})
        self.best = self._recorded()

    def _recorded(self):
        """The best value recorded by an earlier run, if its checkpoint is there too."""
        path = os.path.join(self.directory, self.RESULTS_FILE)
        latest = tf.train.latest_checkpoint(self.directory) if tf.io.gfile.isdir(
            self.directory) else None
        if not latest or not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            results = dict(line.rstrip("\n").split(" = ", 1) for line in f if " = " in line)
        if self.key not in results or int(results.get("global_step", -1)) != \
                int(latest.rsplit("-", 1)[-1]):
            return None
        return float(results[self.key])

    def update(self, results):
        """Saves the runner's weights if results[key] beats the best so far; returns whether."""
        value = results[self.key]
        if self.best is not None and not (value > self.best or np.isnan(self.best)):
            logging.info("%s = %.4f at step %d; the best is still %.4f", self.key, value,
                         results["global_step"], self.best)
            return False
        variables = dict(self.runner.model_variables, global_step=self.runner.global_step)
        prefix = checkpoints.CheckpointManager(self.directory, variables, max_to_keep=1).save(
            results["global_step"])
        write_results(os.path.join(self.directory, self.RESULTS_FILE), results)
        for name, text in self.extra_files.items():
            file_io.write_text_atomically(os.path.join(self.directory, name), text)
        logging.info("New best %s = %.4f (was %s): %s", self.key, value, self.best, prefix)
        self.best = value
        return True


def eval_callback(evaluate, best, every_steps, output_dir):
    """The StepCallback of --eval_every_steps: `evaluate()` -> results ({name: value} with
    global_step), written to TensorBoard under <output_dir>/eval and offered to `best` (a
    BestCheckpoint)."""
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "eval"))

    def fn(step):
        results = evaluate()
        with writer.as_default(step=step):
            write_scalars({k: v for k, v in results.items() if k != "global_step"})
        writer.flush()
        best.update(results)
    return StepCallback(every_steps, fn)


def write_results(path, results):
    """Writes `key = value` lines sorted by key (the original eval_results.txt), atomically."""
    file_io.write_text_atomically(path, "".join(f"{key} = {results[key]}\n"
                                                for key in sorted(results)))
    for key in sorted(results):
        logging.info("  %s = %s", key, results[key])
