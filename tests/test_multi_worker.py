"""Training on several workers (--distribution_strategy=multi_worker_mirrored), proven on this
machine: two worker processes on 127.0.0.1 run the real command line with TF_CONFIG.

- run_pretraining.py on two workers, one of them killed with SIGKILL as soon as the chief has
  written its first checkpoint: the other stops with one ERROR line within KILL_NOTICE_SECONDS;
  the same command run again on both resumes from the chief's newest checkpoint and ends at
  exactly --num_train_steps, with the weights (and Adam slots, and global_step) of one
  uninterrupted process training two replicas (MirroredStrategy over the two logical CPUs of
  tests/conftest.py) on the same global batches, to 1e-5; its evaluation is that process's.
- run_classifier.py on two workers: the same weights as one process with two replicas; its
  evaluation (during and after training) and predictions are those of one process.
- Only the chief writes into --output_dir: the two-worker runs leave exactly the chief's files
  (TensorBoard files named by the chief's process id; run_pretraining's other worker logs no
  results), and run_classifier.py, run_squad.py and run_ner.py run in this process as a worker
  that is not the chief (training.is_chief patched) change nothing in an --output_dir.

The same global batches, provably: every record of input file i is the same example, and the
input is sharded one file per worker (run_pretraining) or every other record (run_classifier's
single cache file, whose rows alternate between two examples), so worker i's batches hold copies
of example i whatever the shuffling, before and after a restart; the reference gives replica i
the same batch of example i. Dropout is off in the config; run_classifier's head keeps the
original's fixed dropout of 0.1, so its workers and the reference draw the head's mask from one
fixed key (FIXED_DROPOUT_KEY).

Ports come from the OS (bind to port 0, close, pass in TF_CONFIG); when another process takes one
in between, the job is started again on new ports. Every worker is killed at HANG_GUARD_SECONDS,
and after each test, passed or failed (_kill_every_worker_left).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classification
import classifier_features
import input_pipeline
import modeling
import optimization
import run_classifier
import run_ner
import run_pretraining
import run_squad
import training
from script_main import error_line, read_results, run_script_main
from test_input_pipeline import PRED, SEQ, make_examples, write_records
from test_modeling import tiny_config, tiny_pretrained_model
from test_run_classifier import read_rows, write_tsv
import test_run_ner
import test_run_squad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# A worker process never runs longer than this: several times a slow run (about 100 s) on a busy
# 2-core machine.
HANG_GUARD_SECONDS = 600
# --collective_timeout_seconds of the workers: far above what the chief alone does between two
# steps here (a checkpoint of a tiny model, an evaluation), even beside another CPU-heavy job.
COLLECTIVE_TIMEOUT = 60
# A hang guard, not a speed claim: the survivor of a kill stops within this (issue 17: "within a
# time you choose and state"), because the collective timeout bounds its wait in the next
# all-reduce. Measured: under a second in one run, 4 s in another (its connection to the dead
# worker is reset, or the coordination service sees its heartbeats stop, long before the timeout).
KILL_NOTICE_SECONDS = 2 * COLLECTIVE_TIMEOUT
FIXED_DROPOUT_KEY = 20261201
TOLERANCE = 1e-5


# -- Worker processes on loopback -----------------------------------------------------------------

def free_ports(n):
    """n ports the OS reports free now (they may be taken before the workers bind them)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


class Job:
    """The worker processes of one multi-worker run, logging to files in `log_dir`."""
    started_jobs = []  # every Job of this module: _kill_every_worker_left ends what still runs

    def __init__(self, command, log_dir, ports):
        self.command, self.log_dir, self.ports = command, log_dir, ports
        os.makedirs(log_dir, exist_ok=True)
        self.procs, self.ended = [], {}
        Job.started_jobs.append(self)
        for index in range(len(ports)):
            with open(self.log_path(index), "w") as log:
                self.procs.append(subprocess.Popen(
                    command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                             TF_CONFIG=tf_config(ports, index))))
        self.started = time.monotonic()

    def log_path(self, index):
        return os.path.join(self.log_dir, f"worker-{index}.log")

    def log(self, index):
        with open(self.log_path(index), encoding="utf-8", errors="replace") as f:
            return f.read()

    def poll(self):
        """Records when each worker ended; True when all have."""
        for index, proc in enumerate(self.procs):
            if index not in self.ended and proc.poll() is not None:
                self.ended[index] = time.monotonic()
        return len(self.ended) == len(self.procs)

    def port_taken(self):
        """Whether a worker could not listen on its port (taken since free_ports)."""
        return any(i in self.ended and "cannot listen on" in self.log(i)
                   for i in range(len(self.procs)))

    def wait(self, until=None, within=None):
        """Waits until every worker ended, `until()` is true, or a port was taken; the hang guard
        kills what is left. With `within` (seconds from now): False, after killing what is left,
        if that came first; else True."""
        deadline = None if within is None else time.monotonic() + within
        while not self.poll() and not self.port_taken() and not (until and until()):
            if time.monotonic() - self.started > HANG_GUARD_SECONDS:
                self.kill()
                pytest.fail(f"a worker ran longer than {HANG_GUARD_SECONDS} s: {self.log_dir}")
            if deadline is not None and time.monotonic() > deadline:
                self.kill()
                return False
            time.sleep(0.02)
        return True

    def kill(self, index=None):
        for i, proc in enumerate(self.procs):
            if (index is None or i == index) and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        self.poll()

    def returncodes(self):
        return [proc.returncode for proc in self.procs]


def kill_every_worker_left():
    while Job.started_jobs:
        Job.started_jobs.pop().kill()


@pytest.fixture(autouse=True)
def _kill_every_worker_left():
    """After each test, passed or failed, no worker process it started is left running (a module
    fixture's workers have all ended before its first test runs)."""
    yield
    kill_every_worker_left()


@pytest.fixture(autouse=True, scope="module")
def _kill_every_worker_left_in_the_module():
    """The same at the module's end: a module fixture whose set-up failed runs before the first
    test's own fixtures are set up, so those do not tear down after it."""
    yield
    kill_every_worker_left()


def command_line(script, flag_values, fixed_dropout=False):
    """The command of `script` with --name=value flags; `fixed_dropout` runs it with every dropout
    mask drawn from FIXED_DROPOUT_KEY (see the module docstring)."""
    flag_args = [f"--{name}={value}" for name, value in flag_values.items()]
    if not fixed_dropout:
        return [sys.executable, os.path.join(ROOT, script)] + flag_args
    program = ("import runpy, sys\n"
               "import tensorflow as tf\n"
               "import kernels\n"
               f"kernels.new_dropout_key = lambda: tf.constant({FIXED_DROPOUT_KEY}, tf.int64)\n"
               f"sys.argv[0] = {os.path.join(ROOT, script)!r}\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    return [sys.executable, "-c", program] + flag_args


def run_job(command, log_dir, ports=None, until=None, attempts=3):
    """Runs two workers of `command` until they end (or `until()`); returns the Job. A port taken
    between free_ports and the workers' start means another try on new ports (`ports`, when
    given, are tried first: the same command again)."""
    for attempt in range(attempts):
        job = Job(command, os.path.join(log_dir, f"attempt-{attempt}"),
                  ports if ports and attempt == 0 else free_ports(2))
        try:
            job.wait(until)
        except BaseException:
            job.kill()
            raise
        if not job.port_taken():
            return job
        job.kill()
    pytest.fail(f"ports taken {attempts} times in a row: {log_dir}")


def assert_succeeded(job):
    assert job.returncodes() == [0, 0], "\n\n".join(job.log(i)[-4000:] for i in range(2))


def files_under(directory):
    """Every file below `directory`, as paths relative to it."""
    return sorted(os.path.relpath(os.path.join(folder, name), directory)
                  for folder, _, names in os.walk(directory) for name in names)


def assert_same_variables(directory, reference):
    """The newest checkpoints of both directories hold the same names and values (to
    TOLERANCE): weights, Adam slots and global_step."""
    ours, theirs = checkpoints.read(str(directory)), checkpoints.read(str(reference))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        difference = np.max(np.abs(ours[name].astype(np.float64) - theirs[name]))
        assert difference <= TOLERANCE, (name, difference)


# -- The reference: one process, two replicas -----------------------------------------------------

def reference_training(output_dir, build_fn, loss_fn, replica_batches, config, optimizer):
    """Trains in this process with MirroredStrategy over the two logical CPUs, replica i getting
    replica_batches[i] ({feature: tensor [B/2, ...]}) at every step."""
    def dataset_fn(input_context):
        del input_context  # one pipeline, whose consecutive elements go to replicas 0, 1
        batches = tf.data.Dataset.from_tensors(replica_batches[0])
        for batch in replica_batches[1:]:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(batch))
        return batches.repeat()

    runner = training.Runner(training.mirrored_strategy(["/cpu:0", "/cpu:1"]), build_fn,
                             str(output_dir))
    runner.train(config, loss_fn, dataset_fn, optimizer)
    return runner


def first_batch(dataset):
    return next(iter(dataset))


# -- run_pretraining.py ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretraining(tmp_path_factory):
    """Two files of 8 copies of one example each, a tiny config without dropout and an init
    checkpoint; the flags of a PRETRAINING_STEPS-step run, a checkpoint after every step."""
    root = tmp_path_factory.mktemp("pretraining")
    files = []
    for i in range(2):
        one = make_examples(1, seed=10 + i)
        files.append(write_records(root / f"part-{i}.tfrecord",
                                   {k: np.repeat(v, 8, axis=0) for k, v in one.items()}))
    config = tiny_config(**NO_DROPOUT)
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(1)
    checkpoints.save(str(root / "init.ckpt"),
                     checkpoints.named_variables(modeling.BertPretrainer(config)))
    # A checkpoint (and a loop) per step: the steps after the first checkpoint take long enough
    # (about 1 s in all) for the test to kill a worker while both still train.
    flag_values = dict(input_file=",".join(files), bert_config_file=root / "bert_config.json",
                       init_checkpoint=root / "init.ckpt", max_seq_length=SEQ,
                       max_predictions_per_seq=PRED, do_train=True, train_batch_size=8,
                       learning_rate=1e-3, num_train_steps=PRETRAINING_STEPS,
                       num_warmup_steps=2, save_checkpoints_steps=1, iterations_per_loop=1)
    return types.SimpleNamespace(root=root, files=files, config=config, flags=flag_values)


PRETRAINING_STEPS = 20


@pytest.fixture(scope="module")
def pretraining_job(pretraining):
    """The two-worker run with evaluation (batches of 12 and 4: the 16 records), worker 1 killed
    with SIGKILL as soon as the chief has written its first checkpoint; then the same command
    again on both workers, which resume from the newest checkpoint, finish and evaluate."""
    out = pretraining.root / "two_workers"
    command = command_line("run_pretraining.py", dict(
        pretraining.flags, output_dir=out, do_eval=True, eval_batch_size=12,
        distribution_strategy="multi_worker_mirrored",
        collective_timeout_seconds=COLLECTIVE_TIMEOUT))
    first = run_job(command, str(pretraining.root / "first"),
                    until=lambda: bool(tf.io.gfile.glob(str(out / "model.ckpt-*.index"))))
    both_training = not first.ended
    try:
        first.kill(1)
        survivor_stopped = first.wait(within=KILL_NOTICE_SECONDS)
    finally:
        first.kill()
    latest = tf.train.latest_checkpoint(str(out))  # the newest when the survivor stopped
    latest_step = checkpoints.step_of(latest)  # (read now: the run again rotates it away)
    again = run_job(command, str(pretraining.root / "again"), ports=first.ports)
    return types.SimpleNamespace(out=out, first=first, both_training=both_training,
                                 survivor_stopped=survivor_stopped, latest=latest,
                                 latest_step=latest_step, again=again)


def test_a_killed_worker_stops_the_other_with_a_clear_error(pretraining_job):
    """Worker 0 stops with one ERROR line naming the checkpoint to resume from within
    KILL_NOTICE_SECONDS (measured: 4 s at most)."""
    job = pretraining_job
    assert job.both_training, [job.first.log(i)[-3000:] for i in range(2)]
    assert job.first.procs[0].returncode == 1, job.first.log(0)[-4000:]
    assert job.survivor_stopped, (
        "hang: the survivor still ran %d s after the kill" % KILL_NOTICE_SECONDS)
    line = error_line("", job.first.log(0))
    assert "another worker of the job stopped" in line and job.latest in line, line
    assert "Run the same command again on every worker" in line
    assert 1 <= job.latest_step < PRETRAINING_STEPS


def test_the_same_command_again_resumes_and_ends_at_num_train_steps(pretraining_job):
    job = pretraining_job
    assert_succeeded(job.again)
    for index in range(2):  # every worker restores the chief's newest checkpoint
        assert f"Resuming from {job.latest} (step {job.latest_step})" in job.again.log(index)
    final = tf.train.latest_checkpoint(str(job.out))
    assert final.endswith(f"model.ckpt-{PRETRAINING_STEPS}")
    names = [name for name, _ in checkpoints.list_variables(final)]
    for name in ("bert/encoder/layer_0/attention/self/query/kernel",
                 "bert/encoder/layer_0/attention/self/query/kernel/adam_m",
                 "cls/predictions/output_bias", "cls/seq_relationship/output_weights",
                 "global_step"):
        assert name in names, name
    assert int(checkpoints.read(str(job.out))["global_step"]) == PRETRAINING_STEPS


def test_two_workers_pretrain_as_one_process_with_two_replicas(pretraining, pretraining_job,
                                                                tmp_path):
    """The killed and resumed two-worker run ends where one uninterrupted process with two
    replicas ends on the same batches: every variable (weights, Adam slots, global_step)."""
    p = pretraining
    spec = run_pretraining.name_to_features(SEQ, PRED)
    batches = [first_batch(input_pipeline.tfrecord_dataset([f], spec, 4, False)) for f in p.files]
    runner = reference_training(
        tmp_path, lambda: modeling.BertPretrainer(p.config), modeling.pretraining_loss, batches,
        training.TrainConfig(num_train_steps=PRETRAINING_STEPS, train_batch_size=8,
                             iterations_per_loop=10, save_checkpoints_steps=PRETRAINING_STEPS,
                             init_checkpoint=str(p.root / "init.ckpt")),
        optimization.create_optimizer(1e-3, PRETRAINING_STEPS, 2))
    assert_same_variables(pretraining_job.out, tmp_path)
    # Each worker read its own file, in batches of half the global batch.
    for index in range(2):
        log = pretraining_job.again.log(index)
        assert f"Worker {index} of 2" in log
        assert f"Input pipeline {index} of 2: batches of 4 per replica" in log
    # Evaluation across the workers, each taking half of every batch: the 16 records in file
    # order in batches of 12 and 4, so that the halves differ (6 of the first example; 2 of the
    # first and 4 of the second; 2 and 2) and a half lost or counted twice would show.
    expected = runner.evaluate(modeling.pretraining_metrics,
                               input_pipeline.tfrecord_dataset(p.files, spec, 12, False))
    results = read_results(pretraining_job.out / "eval_results.txt")
    assert results.pop("global_step") == PRETRAINING_STEPS
    assert results == pytest.approx(expected, rel=1e-4)


def test_pretraining_workers_leave_only_the_chief_s_files(pretraining_job):
    job = pretraining_job
    names = files_under(job.out)
    # TensorBoard's event files end in <host>.<pid>.<n>.v2: one per run, the chief's.
    events = [n for n in names if n.startswith("events.out.tfevents.")]
    assert sorted(int(n.split(".")[-3]) for n in events) == sorted(
        [job.first.procs[0].pid, job.again.procs[0].pid]), (events, names)
    kept = range(PRETRAINING_STEPS - 4, PRETRAINING_STEPS + 1)  # --keep_checkpoint_max=5
    assert sorted(set(names) - set(events)) == sorted(
        ["checkpoint", "eval_results.txt"]
        + [f"model.ckpt-{step}.{part}" for step in kept
           for part in ("data-00000-of-00001", "index")])
    # Worker 1 evaluated too but wrote no results (eval_results.txt is the chief's).
    assert "***** Running evaluation *****" in job.again.log(1)
    assert "***** Eval results *****" in job.again.log(0)
    assert "***** Eval results *****" not in job.again.log(1)


# -- run_classifier.py ----------------------------------------------------------------------------

CLASSIFIER_WORDS = "the a cat dog sat ran on under mat tree big small red and".split()
TEXTS = ("the cat sat on the mat .", "a dog ran under the tree .")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """SST-2 files: 16 training rows alternating between two examples (one per worker), varied
    dev (10) and test (7) rows; a tiny model without dropout and an init checkpoint holding the
    classifier too, so that both sides start from the same weights."""
    root = tmp_path_factory.mktemp("classifier")
    rng = np.random.RandomState(0)

    def sentence():
        return " ".join(rng.choice(CLASSIFIER_WORDS, rng.randint(3, 9))) + " ."

    data = root / "data"
    write_tsv(str(data / "train.tsv"), ["sentence", "label"],
              [[TEXTS[i % 2], i % 2] for i in range(16)])
    write_tsv(str(data / "dev.tsv"), ["sentence", "label"],
              [[sentence(), i % 2] for i in range(10)])
    write_tsv(str(data / "test.tsv"), ["index", "sentence"], [[i, sentence()] for i in range(7)])
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + CLASSIFIER_WORDS
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = tiny_config(vocab_size=len(vocab), **NO_DROPOUT)
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(2)
    checkpoints.save(str(root / "init.ckpt"),
                     checkpoints.named_variables(modeling.BertClassifier(config, 2)))
    flag_values = dict(task_name="SST-2", data_dir=data, vocab_file=root / "vocab.txt",
                       bert_config_file=root / "bert_config.json",
                       init_checkpoint=root / "init.ckpt", max_seq_length=16,
                       train_batch_size=8, eval_batch_size=4, predict_batch_size=4,
                       learning_rate=1e-3, num_train_epochs=2.0, save_checkpoints_steps=2,
                       iterations_per_loop=2)
    return types.SimpleNamespace(root=root, config=config, flags=flag_values)


@pytest.fixture(scope="module")
def classifier_job(classifier):
    """The two-worker run: 4 steps (16 examples / 8 x 2 epochs), the dev set evaluated every 2
    steps (the best checkpoint kept), then --do_eval and --do_predict."""
    out = classifier.root / "two_workers"
    job = run_job(command_line("run_classifier.py", dict(
        classifier.flags, output_dir=out, do_train=True, do_eval=True, do_predict=True,
        eval_every_steps=2, distribution_strategy="multi_worker_mirrored",
        collective_timeout_seconds=COLLECTIVE_TIMEOUT), fixed_dropout=True),
        str(classifier.root / "logs"))
    assert_succeeded(job)
    return types.SimpleNamespace(out=out, job=job)


def test_two_workers_fine_tune_as_one_process_with_two_replicas(classifier, classifier_job,
                                                                 tmp_path, monkeypatch):
    out = classifier_job.out
    # The reference's replica i gets the records worker i reads: every other record of the
    # chief's train.tf_record (the same example each time), in batches of 4.
    spec = classifier_features.name_to_features(16, "classification", 2)
    batches = [first_batch(input_pipeline.tfrecord_dataset(
        [str(out / "train.tf_record")], spec, 8, False,
        tf.distribute.InputContext(2, index, 2))) for index in range(2)]
    assert [b["label_ids"].numpy().tolist() for b in batches] == [[0] * 4, [1] * 4]
    monkeypatch.setattr("kernels.new_dropout_key",
                        lambda: tf.constant(FIXED_DROPOUT_KEY, tf.int64))
    reference_training(
        tmp_path / "reference", lambda: modeling.BertClassifier(classifier.config, 2),
        classification.loss_fn("classification"), batches,
        training.TrainConfig(num_train_steps=4, train_batch_size=8, iterations_per_loop=2,
                             save_checkpoints_steps=2,
                             init_checkpoint=str(classifier.root / "init.ckpt")),
        optimization.create_optimizer(1e-3, 4, 0))
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 4
    assert_same_variables(out, tmp_path / "reference")


def test_classifier_workers_evaluate_and_predict_as_one_process(classifier, classifier_job,
                                                               tmp_path):
    """--do_eval and --do_predict in one process, from the two workers' final checkpoint, give
    their eval_results.txt, test_results.tsv and SST-2.tsv (every example, in order)."""
    out = classifier_job.out
    alone = tmp_path / "one_process"
    shutil.copytree(out, alone, ignore=shutil.ignore_patterns(
        "eval_results.txt", "test_results.tsv", "SST-2.tsv", "best", "eval", "events.*"))
    run_script_main(run_classifier, **dict(classifier.flags, output_dir=alone, do_eval=True,
                                           do_predict=True))
    expected = read_results(alone / "eval_results.txt")
    assert read_results(out / "eval_results.txt") == pytest.approx(expected, rel=1e-5)
    ours = np.array(read_rows(out / "test_results.tsv"), np.float64)
    assert ours.shape == (7, 2)
    np.testing.assert_allclose(ours, np.array(read_rows(alone / "test_results.tsv"), np.float64),
                               rtol=1e-5)
    assert read_rows(out / "SST-2.tsv") == read_rows(alone / "SST-2.tsv")


def test_classifier_workers_leave_only_the_chief_s_files(classifier_job):
    names = files_under(classifier_job.out)
    for folder in ("", "eval/"):  # one writer of each summary directory: the chief (its pid)
        events = [n for n in names if n.startswith(folder + "events.out.tfevents.")]
        assert [int(n.split(".")[-3]) for n in events] == [classifier_job.job.procs[0].pid], names
    best = tf.train.latest_checkpoint(str(classifier_job.out / "best"))
    best_step = checkpoints.step_of(best)
    assert sorted(n for n in names if "events.out" not in n) == sorted(
        ["checkpoint", "label_list.txt", "task.json", "eval_results.txt", "test_results.tsv",
         "SST-2.tsv"]
        + [f"{cache}.tf_record{suffix}" for cache in ("train", "eval", "predict")
           for suffix in ("", ".json")]
        + [f"model.ckpt-{step}.{part}" for step in (2, 4)
           for part in ("data-00000-of-00001", "index")]
        + [f"best/{name}" for name in ("checkpoint", "eval_results.txt", "label_list.txt",
                                       "task.json",
                                       f"model.ckpt-{best_step}.data-00000-of-00001",
                                       f"model.ckpt-{best_step}.index")])
    # The non-chief kept count of the best without writing it, and wrote no results.
    assert "saved by the chief" in classifier_job.job.log(1)
    assert "Eval results" not in classifier_job.job.log(1)


# -- A worker that is not the chief writes nothing (each script, in this process) ------------------

def snapshot(directory):
    """{relative path: (size, mtime)} of every file below `directory`."""
    return {name: (os.stat(directory / name).st_size, os.stat(directory / name).st_mtime_ns)
            for name in files_under(directory)}


def run_as_another_worker(module, out, flag_values):
    """module.main() in this process as a worker that is not the chief runs it (training.is_chief
    false), asserting that it leaves `out` as it was, file for file."""
    before = snapshot(out)
    assert before
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "is_chief", lambda strategy: False)
        # A cache the chief had not built would fail within the timeout, not hang.
        run_script_main(module, **dict(flag_values, output_dir=out,
                                       collective_timeout_seconds=COLLECTIVE_TIMEOUT))
    assert snapshot(out) == before, module.__name__


def test_another_worker_changes_nothing_in_a_classifier_output_dir(classifier, classifier_job,
                                                                   tmp_path):
    """In a copy of the two-worker run's --output_dir, training further (with evaluation and the
    best checkpoint), evaluating and predicting as a worker that is not the chief writes
    nothing. (run_pretraining's only writes of its own, eval_results.txt, are checked in its
    worker's log: test_pretraining_workers_leave_only_the_chief_s_files.)"""
    shutil.copytree(classifier_job.out, tmp_path / "classifier")
    run_as_another_worker(run_classifier, tmp_path / "classifier", dict(
        classifier.flags, do_train=True, do_eval=True, do_predict=True, eval_every_steps=2,
        num_train_epochs=3.0))


def squad_flags(tmp_path):
    """run_squad's flags (tests/test_run_squad.py's tiny model) with every output."""
    (tmp_path / "model").mkdir()
    env = test_run_squad.model_files(tmp_path / "model")
    squad = test_run_squad.squad_file(tmp_path / "squad.json", 4, version_2=True)
    return test_run_squad.base_flags(env, "", do_train=True, train_file=squad, do_predict=True,
                                     predict_file=squad, version_2_with_negative=True)


def ner_flags(tmp_path):
    """run_ner's flags (tests/test_run_ner.py's tiny model) with every output."""
    env = types.SimpleNamespace(**tiny_pretrained_model(tmp_path / "model", test_run_ner.VOCAB))
    test_run_ner.write_data(tmp_path / "data", n_train=16, n_dev=4)
    return test_run_ner.base_flags(env, tmp_path / "data", "", do_train=True, do_eval=True,
                                   do_predict=True, num_train_epochs=1.0)


@pytest.mark.parametrize("module, make_flags", [(run_squad, squad_flags), (run_ner, ner_flags)],
                         ids=["run_squad", "run_ner"])
def test_another_worker_changes_nothing_in_the_output_dir(module, make_flags, tmp_path):
    """The script once as the chief (it writes its outputs and caches), then as another worker
    would run it, training further, evaluating and predicting: nothing written."""
    flag_values = make_flags(tmp_path)
    out = tmp_path / "out"
    run_script_main(module, **dict(flag_values, output_dir=out))
    run_as_another_worker(module, out, dict(
        flag_values, num_train_epochs=flag_values["num_train_epochs"] + 1.0))
