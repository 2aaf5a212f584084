"""Pretraining throughput of this project against HuggingFace `transformers` on `torch`.

Usage, from the repository root:

    python benchmarks/train_throughput.py [--steps 5] [--repeats 3] [--dtypes float32,bfloat16]

Both sides train the same BERT pretraining model (default L=4, H=512, A=8, I=2048, vocab 30522,
batch 32, sequence 128, dropout 0.1, masked LM at 20 positions per sequence + next sentence) from
the same initial weights on the same random batches, with the same optimizer hyperparameters
(AdamW, lr 1e-4 with a linear warm-up / decay schedule, weight decay 0.01 except on LayerNorm and
bias, epsilon 1e-6, gradients clipped to global norm 1.0). Each prints examples/s; the table at the
end gives the ratio ours / peer in float32 and in bfloat16 mixed precision.

Isolation (benchmarks/_side_by_side.py): each framework runs in its own worker process (started
once, kept for all runs), and the parent process only sends "run" commands and collects timings.
In one process the two frameworks' thread pools (TensorFlow's Eigen and inter-op pools, torch's
OpenMP team) would share the two cores and slow each other down, which would flatter whichever
side is measured second. While one worker runs, the other waits on its pipe. The parent also
measures how much CPU other processes used during each run (from /proc/stat) and flags runs where
that exceeded 10%.

How "ours" is measured: through the real training path, `training.Runner.train` with
`optimization.create_optimizer`, on a OneDeviceStrategy. Each run is one `train()` call for
`warmup_steps + steps` more steps with `save_checkpoints_steps` out of reach, so it writes a
checkpoint only at its very end. The runner reports progress after every `iterations_per_loop`
steps; the benchmark passes it a `training.Progress` that also takes a timestamp, and times from
the report that ends the warm-up steps to the last report. So the time counted covers everything
`train()` does per loop (the compiled loop, reading the loss and the step, logging, summaries) and
leaves out what happens once per call: tracing the loop (which falls in the warm-up steps),
restoring the previous run's checkpoint at the start and writing the final one.

How the peer is measured: `transformers.BertForPreTraining` (attention "sdpa" by default) in
`model.train()` mode, `torch.optim.AdamW` (its fused CPU kernel when available), and
`torch.nn.utils.clip_grad_norm_`, with torch's default thread settings; bfloat16 is
`torch.autocast("cpu", dtype=torch.bfloat16)` around the forward pass and loss. By default the
peer's masked-LM head is applied only at the 20 masked positions (`model.bert(...)`, a gather,
`model.cls.predictions(...)`), which is what ours does, so the comparison is like for like
(`--peer_mlm=gathered`). `--peer_mlm=full` instead calls the model the usual HuggingFace way,
`model(..., labels=..., next_sentence_label=...)` with -100 on the unmasked positions, which
projects all 128 positions onto the vocabulary. The timed interval is `steps` steps after
`warmup_steps` untimed ones.

Runs alternate (ours float32, peer float32, ours bfloat16, peer bfloat16) `repeats` times so that
drifts in machine speed hit both sides alike; the table reports the median of each, and the best
run of each (the least disturbed one on a shared machine).

Memory allocator (`--malloc`, same for both workers): torch's CPU allocator hands its large
tensors to glibc, which by default mmaps and unmaps each one, so every torch step page-faults in
over a gigabyte of fresh pages. What that costs depends on the kernel's state: torch was up to ~20%
slower right after the TensorFlow worker had run than when run alone, which would flatter ours.
By default both workers therefore run with MALLOC_MMAP_MAX_=0 and a 1 TiB MALLOC_TRIM_THRESHOLD_
(glibc keeps freed memory in its heap and reuses it): torch then runs steadily at its best (in
bfloat16 ~10% faster than with glibc's defaults even when alone), and ours is unaffected within
noise. `--malloc=default` measures both with glibc's defaults.
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
from _machine import busy_note, print_cpu  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 5, "Timed training steps per run.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps at the start of each run.")
flags.DEFINE_integer("repeats", 3, "Runs per framework and dtype; the table shows the median.")
flags.DEFINE_integer("batch_size", 32, "Sequences per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per sequence.")
flags.DEFINE_integer("max_predictions", 20, "Masked-LM positions per sequence.")
flags.DEFINE_integer("layers", 4, "Transformer layers.")
flags.DEFINE_integer("hidden", 512, "Hidden size (heads = hidden / 64, intermediate = 4 x).")
flags.DEFINE_integer("vocab_size", 30522, "Vocabulary size.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Precisions to compare.")
flags.DEFINE_list("frameworks", ["ours", "peer"], "Which sides to run.")
flags.DEFINE_integer("iterations_per_loop", 1,
                     "Runner steps per tf.function call (must divide --steps and --warmup_steps).")
flags.DEFINE_enum("jit_compile", "default", ["default", "on", "off"],
                  "XLA for our train step: TrainConfig's default, or forced on / off.")
flags.DEFINE_string("peer_attn", "sdpa", "HuggingFace attn_implementation of the peer.")
flags.DEFINE_enum("peer_mlm", "gathered", ["gathered", "full"],
                  "gathered: the peer's MLM head only at the masked positions (as ours); "
                  "full: HuggingFace's usual labels=... call (logits at every position).")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate of both.")
flags.DEFINE_enum("malloc", "heap", ["heap", "default"],
                  "heap: both workers run with MALLOC_MMAP_MAX_=0 and a large "
                  "MALLOC_TRIM_THRESHOLD_, so glibc reuses freed memory instead of mmapping (and "
                  "page-faulting) big tensors afresh every step; default: glibc's defaults. See "
                  "the module docstring.")

LR_WARMUP, LR_TOTAL = 10, 100000    # schedule shape; only the values, not the speed, depend on it
LAYER_NORM_EPSILON = 1e-12          # modeling.LAYER_NORM_EPSILON (the peer must not import TF)
TARGETS = {"float32": 1.0, "bfloat16": 1.3}


def model_shape():
    h = FLAGS.hidden
    return dict(vocab_size=FLAGS.vocab_size, hidden_size=h, num_hidden_layers=FLAGS.layers,
                num_attention_heads=max(1, h // 64), intermediate_size=4 * h, hidden_act="gelu",
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                max_position_embeddings=max(512, FLAGS.seq_length), type_vocab_size=2,
                initializer_range=0.02)


def learning_rate_factor(step):
    """optimization.learning_rate_schedule(1.0, LR_TOTAL, LR_WARMUP), in plain Python."""
    if step < LR_WARMUP:
        return step / LR_WARMUP
    return 1.0 - min(step, LR_TOTAL) / LR_TOTAL


def make_data(num_batches=4, seed=0):
    """num_batches x batch_size pretraining examples, full length, as numpy arrays."""
    rng = np.random.RandomState(seed)
    n, s, p, v = (num_batches * FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions,
                  FLAGS.vocab_size)
    segment_ids = np.zeros((n, s), np.int64)
    segment_ids[:, s // 2:] = 1
    positions = np.sort(np.stack([rng.choice(np.arange(1, s), p, replace=False)
                                  for _ in range(n)]), axis=1)
    # Word pieces from id 1000 up (past BERT's special and unused ids); a vocabulary of 1000 or
    # fewer ids (a quick check of the harness) uses its top 90%.
    low = 1000 if v > 1000 else v // 10
    return dict(
        input_ids=rng.randint(low, v, (n, s)).astype(np.int64),
        input_mask=np.ones((n, s), np.int64),
        segment_ids=segment_ids,
        masked_lm_positions=positions.astype(np.int64),
        masked_lm_ids=rng.randint(low, v, (n, p)).astype(np.int64),
        masked_lm_weights=np.ones((n, p), np.float32),
        next_sentence_labels=rng.randint(0, 2, (n,)).astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------------
# Ours: training.Runner.train (runs in the "ours" worker process only)


class Ours:
    def __init__(self, dtype, data, initial):
        import tensorflow as tf
        import modeling
        import input_pipeline
        import optimization
        import training
        self.tf, self.training, self.modeling = tf, training, modeling
        self.input_pipeline = input_pipeline
        self.dtype = dtype
        self.data = data
        self.dir = tempfile.mkdtemp(prefix=f"bench_ours_{dtype}_")
        self.strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        self.runner = training.Runner(
            self.strategy,
            lambda: modeling.BertPretrainer(modeling.BertConfig(**model_shape()), dtype),
            self.dir)
        for name, value in initial.items():
            self.runner.model_variables[name].assign(value)
        self.optimizer = optimization.create_optimizer(FLAGS.learning_rate, LR_TOTAL, LR_WARMUP)
        self.step = 0
        self.loss = None

    def dataset_fn(self, ctx):
        batch = self.input_pipeline.per_replica_batch_size(ctx, FLAGS.batch_size)
        return self.tf.data.Dataset.from_tensor_slices(self.data).repeat().batch(
            batch, drop_remainder=True)

    def run(self, warmup, steps):
        training = self.training
        stamps = {}

        class TimedProgress(training.Progress):
            """The runner's progress report, plus a timestamp per report."""

            def update(self, step, steps_done, loss, lr):
                stamps[step] = time.perf_counter()
                super().update(step, steps_done, loss, lr)

        kwargs = {}
        if FLAGS.jit_compile != "default":
            kwargs["jit_compile"] = FLAGS.jit_compile == "on"
        config = training.TrainConfig(
            num_train_steps=self.step + warmup + steps, train_batch_size=FLAGS.batch_size,
            iterations_per_loop=FLAGS.iterations_per_loop, save_checkpoints_steps=10**9,
            keep_checkpoint_max=1, **kwargs)
        self.loss = self.runner.train(config, self.modeling.pretraining_loss, self.dataset_fn,
                                      self.optimizer, progress=TimedProgress)
        start, end = stamps[self.step + warmup], stamps[self.step + warmup + steps]
        self.step += warmup + steps
        return steps * FLAGS.batch_size / (end - start)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def initial_weights():
    """A fresh model of ours: {checkpoint name: array}, copied into every model of both sides."""
    import checkpoints
    import modeling
    model = modeling.BertPretrainer(modeling.BertConfig(**model_shape()))
    return {n: v.numpy() for n, v in checkpoints.named_variables(model).items()}


# ---------------------------------------------------------------------------------------------------
# Peer: transformers.BertForPreTraining on torch (runs in the "peer" worker process only)


def hf_state_dict(initial, torch):
    """Our initial weights under HuggingFace's parameter names (Linear kernels transposed)."""
    sd = {}
    for name, value in initial.items():
        if name.startswith("bert/encoder/layer_"):
            parts = name.split("/")
            i, rest = parts[2].split("_")[1], "/".join(parts[3:])
            rest = rest.replace("attention/self/", "attention.self.").replace(
                "attention/output/", "attention.output.").replace(
                "intermediate/", "intermediate.").replace("output/", "output.")
            key = f"bert.encoder.layer.{i}.{rest}"
        elif name == "cls/predictions/output_bias":
            key = "cls.predictions.bias"
        elif name.startswith("cls/seq_relationship/"):
            key = "cls.seq_relationship." + ("weight" if name.endswith("weights") else "bias")
        else:
            key = name
        key = key.replace("/", ".").replace(".kernel", ".weight").replace(".gamma", ".weight") \
            .replace(".beta", ".bias")
        if key.endswith("_embeddings"):
            key += ".weight"
        sd[key] = torch.from_numpy(np.ascontiguousarray(value.T if name.endswith("/kernel")
                                                        else value))
    return sd


class Peer:
    def __init__(self, dtype, data, initial):
        import torch
        import transformers
        self.torch = torch
        self.dtype = dtype
        hf_config = transformers.BertConfig(layer_norm_eps=LAYER_NORM_EPSILON, **model_shape())
        hf_config._attn_implementation = FLAGS.peer_attn
        self.model = transformers.BertForPreTraining(hf_config)
        missing, unexpected = self.model.load_state_dict(hf_state_dict(initial, torch),
                                                         strict=False)
        # Only the tied decoder weights and the id buffers come from elsewhere.
        assert not unexpected and all(
            "decoder" in k or k.endswith("_ids") for k in missing), (missing, unexpected)
        self.model.train()
        decay = [p for n, p in self.model.named_parameters()
                 if not any(s in n for s in ("LayerNorm", "bias"))]
        no_decay = [p for n, p in self.model.named_parameters()
                    if any(s in n for s in ("LayerNorm", "bias"))]
        groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
        try:
            self.optimizer = torch.optim.AdamW(groups, lr=FLAGS.learning_rate, betas=(0.9, 0.999),
                                               eps=1e-6, fused=True)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.AdamW(groups, lr=FLAGS.learning_rate, betas=(0.9, 0.999),
                                               eps=1e-6, foreach=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, learning_rate_factor)
        b = FLAGS.batch_size
        self.batches = [{k: torch.from_numpy(v[i:i + b]) for k, v in data.items()}
                        for i in range(0, len(data["input_ids"]), b)]
        self.next = 0
        self.loss = None

    def _loss(self, f):
        torch = self.torch
        F = torch.nn.functional
        if FLAGS.peer_mlm == "full":
            labels = torch.full_like(f["input_ids"], -100)
            labels.scatter_(1, f["masked_lm_positions"], f["masked_lm_ids"])
            out = self.model(input_ids=f["input_ids"], attention_mask=f["input_mask"],
                             token_type_ids=f["segment_ids"], labels=labels,
                             next_sentence_label=f["next_sentence_labels"])
            return out.loss
        out = self.model.bert(input_ids=f["input_ids"], attention_mask=f["input_mask"],
                              token_type_ids=f["segment_ids"])
        seq, pooled = out.last_hidden_state, out.pooler_output
        rows = torch.arange(seq.shape[0])[:, None]
        logits = self.model.cls.predictions(seq[rows, f["masked_lm_positions"]])   # [B, P, V]
        nsp_logits = self.model.cls.seq_relationship(pooled)
        per_position = F.cross_entropy(logits.float().flatten(0, 1),
                                       f["masked_lm_ids"].flatten(), reduction="none")
        w = f["masked_lm_weights"].flatten()
        mlm = (per_position * w).sum() / (w.sum() + 1e-5)
        return mlm + F.cross_entropy(nsp_logits.float(), f["next_sentence_labels"])

    def train_step(self):
        torch = self.torch
        f = self.batches[self.next % len(self.batches)]
        self.next += 1
        if self.dtype == "bfloat16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = self._loss(f)
        else:
            loss = self._loss(f)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    def run(self, warmup, steps):
        for _ in range(warmup):
            self.train_step()
        start = time.perf_counter()
        for _ in range(steps):
            loss = self.train_step()
        self.loss = loss.item()   # also waits for the last step (a no-op on CPU)
        return steps * FLAGS.batch_size / (time.perf_counter() - start)

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------------
# Worker processes and the parent


class Side(_side_by_side.Side):
    """One framework's benches, Ours or Peer per dtype; serves "initial_weights", "setup" and
    "run"."""
    classes = {"ours": Ours, "peer": Peer}

    def __init__(self, framework):
        super().__init__(framework, FLAGS.dtypes)
        logging.set_verbosity(logging.WARNING)
        self.data = make_data()

    def initial_weights(self):
        """A fresh model of ours, {checkpoint name: array} (asked of the "ours" worker only)."""
        return initial_weights()

    def setup(self, initial):
        """Builds the benches from the `initial` weights; returns this side's description."""
        self.build(self.data, initial)
        return _side_by_side.describe(self.framework, f"attention {FLAGS.peer_attn!r}")

    def run(self, dtype):
        """(examples/s, final loss) of one run: --warmup_steps untimed steps, --steps timed."""
        bench = self.benches[dtype]
        rate = bench.run(FLAGS.warmup_steps, FLAGS.steps)
        return rate, bench.loss


def check_flags():
    ipl = FLAGS.iterations_per_loop
    if FLAGS.steps % ipl or FLAGS.warmup_steps % ipl or FLAGS.warmup_steps < ipl:
        raise app.UsageError("--iterations_per_loop must divide --steps and --warmup_steps "
                             "(and warm-up must cover at least one loop)")
    unknown = set(FLAGS.frameworks) - {"ours", "peer"}
    if unknown:
        raise app.UsageError(f"--frameworks: unknown {sorted(unknown)}; use ours and/or peer")


def print_model():
    shape = model_shape()
    print(f"model: L={shape['num_hidden_layers']} H={shape['hidden_size']} "
          f"A={shape['num_attention_heads']} I={shape['intermediate_size']} "
          f"V={shape['vocab_size']}; batch {FLAGS.batch_size} x {FLAGS.seq_length}, "
          f"{FLAGS.max_predictions} masked positions; {FLAGS.warmup_steps} warm-up + "
          f"{FLAGS.steps} timed steps per run, {FLAGS.repeats} runs; {os.cpu_count()} CPUs",
          flush=True)


def set_up(workers):
    """Builds the benches of --frameworks (at the same time) from the initial weights that ours'
    worker makes; prints what each runs on. Returns the frameworks, ours first."""
    initial = workers.call(("ours",), "initial_weights")["ours"]
    running = [fw for fw in ("ours", "peer") if fw in FLAGS.frameworks]
    for fw, description in workers.call(running, "setup", initial).items():
        print(f"{fw}: {description}", flush=True)
    return running


def timed_rounds(workers, running):
    """--repeats rounds, each a run per dtype of each framework in `running`, in turn; returns
    {(framework, dtype): [examples/s per round]}."""
    rates = {}
    for r in range(FLAGS.repeats):
        for dtype in FLAGS.dtypes:
            for fw in running:
                (rate, loss), seconds, share = workers.run(fw, dtype)
                rates.setdefault((fw, dtype), []).append(rate)
                print(f"run {r + 1}/{FLAGS.repeats}  {fw:4s} {dtype:8s}  {rate:7.2f} "
                      f"examples/s  loss {loss:.4f}  (run took {seconds:.1f} s){busy_note(share)}",
                      flush=True)
    return rates


def _fmt(x, w=9):
    return f"{x:{w}.2f}" if x is not None else f"{'-':>{w}s}"


def table_row(dtype, ours_runs, peer_runs):
    """Medians, their ratio against the target, and the best runs (ratio and best only where
    both sides ran)."""
    ours = statistics.median(ours_runs) if ours_runs else None
    peer = statistics.median(peer_runs) if peer_runs else None
    if not (ours and peer):
        return f"{dtype:9s} {_fmt(ours)} {_fmt(peer)} {'-':>10s}"
    target = TARGETS.get(dtype)
    ratio = ours / peer
    met = ("yes" if ratio >= target else "no ") if target else " - "
    best = f"| best: {max(ours_runs):7.2f} {max(peer_runs):7.2f} " \
           f"{max(ours_runs) / max(peer_runs):5.2f}x"
    return f"{dtype:9s} {_fmt(ours)} {_fmt(peer)} {ratio:9.2f}x {target or 0:7.1f}x  {met}  {best}"


def print_table(rates):
    print()
    print(f"Examples/s over {FLAGS.repeats} runs each (peer's MLM logits: "
          + ("at the masked positions only, as ours" if FLAGS.peer_mlm == "gathered"
             else "at all positions, HuggingFace's labels=... call")
          + f"; malloc: {FLAGS.malloc})")
    header = (f"{'dtype':9s} {'ours':>9s} {'peer':>9s} {'ours/peer':>10s} {'target':>8s}  met  "
              f"| best: {'ours':>7s} {'peer':>7s} {'ratio':>6s}")
    print(f"{'':9s} {'(median)':>9s} {'(median)':>9s}")
    print(header)
    print("-" * len(header))
    for dtype in FLAGS.dtypes:
        print(table_row(dtype, rates.get(("ours", dtype)), rates.get(("peer", dtype))))


def main(argv):
    del argv
    check_flags()
    print_cpu()
    # Ours' worker also makes the shared initial weights, so it starts even with --frameworks=peer.
    frameworks = [fw for fw in ("ours", "peer") if fw in FLAGS.frameworks or fw == "ours"]
    with _side_by_side.Workers(Side, frameworks, malloc=FLAGS.malloc) as workers:
        print_model()
        running = set_up(workers)
        rates = timed_rounds(workers, running)
    print_table(rates)


if __name__ == "__main__":
    app.run(main)
