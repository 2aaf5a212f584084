"""sweep.py, sweep_study.py and sweep_report.py: the fine-tuning grid with best-by-dev.

The sweeps run sweep.py as its command line does (a subprocess, which runs run_classifier.py as
subprocesses) on a tiny model and a small part of the bundled classification task: one 2 x 2 grid
killed during its third trial, then resumed by two sweep processes started at once on the same
storage (resumption, two workers sharing a grid, then the results, best/ and the predictions).
Every subprocess has a hang guard and is killed with its whole process group in a finally, also
when a test fails.
"""
import contextlib
import glob
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import modeling
import sweep
import sweep_report
import sweep_study
import tokenization
from errors import InputError
from script_main import error_line, read_results
from test_modeling import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo_classification")
SWEEP = os.path.join(ROOT, "sweep.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
# Seconds a sweep process may take before the test gives up on it: each of the fixture's two
# sweeps took about 2 minutes on this 2-core machine busy with other jobs (load 5 to 7; a
# trial 40 to 50 s, against 12 s idle): five times that; the bad-input runs (about 1 s)
# get BAD_INPUT_GUARD.
HANG_GUARD = 600
BAD_INPUT_GUARD = 120
GRID = ("--batch_sizes=8,16", "--learning_rates=1e-3,1e-4")
TRIALS = ["bs8_lr1e-03", "bs8_lr1e-04", "bs16_lr1e-03", "bs16_lr1e-04"]   # grid order
POINTS = dict(zip(TRIALS, [(8, 1e-3), (8, 1e-4), (16, 1e-3), (16, 1e-4)]))
SIZES = {"train.tsv": 64, "dev.tsv": 32, "test.tsv": 16}


# -- The task, the model and running sweeps -------------------------------------------------------

@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """The first rows of data/demo_classification (SST-2 layout), a vocabulary of their words and
    a tiny bert_config.json (random weights: no init checkpoint)."""
    root = tmp_path_factory.mktemp("task")
    words = set()
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    for name, rows in SIZES.items():
        with open(os.path.join(DEMO, name), encoding="utf-8") as f:
            lines = f.read().splitlines()[:rows + 1]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        text_column = 1 if name == "test.tsv" else 0
        for line in lines[1:]:
            words.update(basic.tokenize(line.split("\t")[text_column]))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = tiny_config(vocab_size=len(vocab))
    config.to_json_file(str(root / "bert_config.json"))
    script_args = ["--task_name=SST-2", f"--data_dir={root}", f"--vocab_file={root}/vocab.txt",
                   f"--bert_config_file={root}/bert_config.json", "--max_seq_length=32",
                   "--num_train_epochs=1", "--eval_batch_size=32", "--predict_batch_size=32",
                   "--save_checkpoints_steps=1", "--iterations_per_loop=1"]
    return types.SimpleNamespace(root=root, config=config, script_args=script_args)


def sweep_command(output_dir, script_args, *sweep_flags):
    return ([sys.executable, SWEEP, "--script=run_classifier.py", f"--output_dir={output_dir}",
             *GRID, *sweep_flags, "--"] + list(script_args))


@contextlib.contextmanager
def started(command, output_path):
    """The command running in a process group of its own, its output going to `output_path`;
    the group (the sweep and the script it runs) is killed when the block ends."""
    with open(output_path, "w", encoding="utf-8") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env=ENV, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until(condition, process, what):
    """Waits (at most HANG_GUARD seconds) until condition() holds while `process` runs."""
    deadline = time.time() + HANG_GUARD
    while not condition():
        assert process.poll() is None, (f"the sweep ended (status {process.returncode}) while "
                                         f"waiting for {what}")
        if time.time() > deadline:
            pytest.fail(f"hang: waited {HANG_GUARD} s for {what}")
        time.sleep(0.05)


def trial_dirs(output_dir):
    return sorted(glob.glob(os.path.join(output_dir, "bs*_lr*")))


def third_trial_training(output_dir):
    """Two trials are finished and a third has saved a checkpoint (and is still running)."""
    dirs = trial_dirs(output_dir)
    done = [d for d in dirs if os.path.exists(os.path.join(d, sweep.TRIAL_RECORD))]
    return len(done) == 2 and any(os.path.exists(os.path.join(d, "checkpoint"))
                                  for d in dirs if d not in done)


def modification_times(directory):
    return {path: os.stat(path).st_mtime_ns
            for path in glob.glob(os.path.join(directory, "**"), recursive=True)}


def ran(output):
    """The trials a sweep's output says it ran."""
    return re.findall(r"^sweep: trial (\S+): running", output, re.MULTILINE)


def stored_trials(output_dir):
    """{state name: [(batch size, learning rate)]} of the trials in the sweep's storage; a trial
    a worker gave up for another's (sweep_study: FAIL with the `skipped` attribute) is SKIPPED."""
    import optuna  # pylint: disable=import-outside-toplevel
    study = optuna.load_study(study_name="sweep",
                              storage=f"sqlite:///{os.path.join(output_dir, 'sweep.db')}")
    states = {}
    for trial in study.get_trials(deepcopy=False):
        state = ("SKIPPED" if sweep_study.SKIPPED_ATTR in trial.user_attrs
                 else trial.state.name)
        states.setdefault(state, []).append(sweep_study.point_of(trial))
    return states


@pytest.fixture(scope="module")
def resumed(task, tmp_path_factory):
    """A 2 x 2 sweep with --do_predict, killed (with its script) while the third trial trains,
    then resumed by two sweep processes started at once on the same storage, run to their end.

    The two workers share the half of the grid the killed sweep left (the trial it was running
    and the one it never started): a fresh grid for them would cost four more trials (some 30 s
    on an idle machine) and show nothing more."""
    output_dir = str(tmp_path_factory.mktemp("resumed") / "sweep")
    command = sweep_command(output_dir, task.script_args + ["--do_predict"])
    with started(command, output_dir + ".first.txt") as first:
        wait_until(lambda: third_trial_training(output_dir), first,
                   "a checkpoint of the third trial")
        os.killpg(first.pid, signal.SIGKILL)   # as a machine that stops: no clean-up at all
        first.wait()
    with open(output_dir + ".first.txt", encoding="utf-8") as f:
        first_output = f.read()
    done = [d for d in trial_dirs(output_dir)
            if os.path.exists(os.path.join(d, sweep.TRIAL_RECORD))]
    times = {d: modification_times(d) for d in done}
    paths = [f"{output_dir}.second_{worker}.txt" for worker in "ab"]
    with started(command, paths[0]) as a, started(command, paths[1]) as b:
        statuses = (a.wait(HANG_GUARD), b.wait(HANG_GUARD))
    second = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            second.append(f.read())
    assert statuses == (0, 0), [output[-3000:] for output in second]
    return types.SimpleNamespace(output_dir=output_dir, first=first_output, second=second,
                                 done_first=[os.path.basename(d) for d in done], times=times)


# -- A killed sweep resumes -----------------------------------------------------------------------

def test_a_killed_sweep_resumes_and_never_retrains_a_finished_trial(resumed):
    assert len(ran(resumed.first)) == 3 and sorted(ran(resumed.first)[:2]) == resumed.done_first
    interrupted = ran(resumed.first)[2]
    # The resumed sweep runs only the interrupted trial and the one never started.
    resumed_runs = [name for output in resumed.second for name in ran(output)]
    assert sorted(resumed_runs) == sorted(set(TRIALS) - set(resumed.done_first))
    assert interrupted in resumed_runs
    for directory, times in resumed.times.items():
        assert modification_times(directory) == times, directory
    # The interrupted trial continued from its checkpoint in its own directory.
    with open(os.path.join(resumed.output_dir, interrupted, sweep.LOG_FILE),
              encoding="utf-8") as f:
        attempts = f.read().split("=== sweep.py")
    assert len(attempts) == 3 and "Resuming from" in attempts[2]
    # The storage: every point completed once; the killed trial failed (its worker gone), and
    # any other failed trial is one a worker gave up for another's (a collision on a point).
    stored = stored_trials(resumed.output_dir)
    assert sorted(stored["COMPLETE"]) == sorted(POINTS.values())
    assert stored["FAIL"] == [POINTS[interrupted]]


def test_two_sweeps_started_at_once_share_the_grid(resumed):
    """Each worker runs one of the two trials left, neither runs the other's, and only the one
    that finished the grid's last trial writes the results (and predicts)."""
    runs = [ran(output) for output in resumed.second]
    assert sorted(map(len, runs)) == [1, 1], resumed.second
    assert sorted(runs[0] + runs[1]) == sorted(set(TRIALS) - set(resumed.done_first))
    with open(os.path.join(resumed.output_dir, "sweep_results.md"), encoding="utf-8") as f:
        table = f.read()
    assert sum(table in output for output in resumed.second) == 1, resumed.second
    assert sum("sweep: predicting with the best trial" in output
               for output in resumed.second) == 1


def test_the_results_name_every_trial_and_the_best_by_the_main_metric(resumed):
    out = resumed.output_dir
    with open(os.path.join(out, "sweep_results.tsv"), encoding="utf-8") as f:
        rows = [line.split("\t") for line in f.read().splitlines()]
    header, rows = rows[0], rows[1:]
    assert header[:5] == ["trial", "train_batch_size", "learning_rate", "best", "eval_accuracy"]
    assert [row[0] for row in rows] == TRIALS
    dev = {name: read_results(os.path.join(out, name, "eval_results.txt")) for name in TRIALS}
    for row in rows:
        assert float(row[4]) == dev[row[0]]["eval_accuracy"]
        assert float(row[header.index("eval_loss")]) == pytest.approx(dev[row[0]]["eval_loss"])
    accuracies = [dev[name]["eval_accuracy"] for name in TRIALS]
    best = TRIALS[accuracies.index(max(accuracies))]   # the first of equals
    assert [row[0] for row in rows if row[3] == "yes"] == [best]
    assert read_results(os.path.join(out, "best", "eval_results.txt")) == dev[best]
    with open(os.path.join(out, "best", sweep.BEST_RECORD), encoding="utf-8") as f:
        assert json.load(f)["trial"] == best
    # The Markdown table (also printed) and the heatmap.
    with open(os.path.join(out, "sweep_results.md"), encoding="utf-8") as f:
        table = f.read()
    assert any(table in output for output in resumed.second)
    assert "| batch size | 1e-03 | 1e-04 |" in table and f"best: {best}" in table
    bold = re.findall(r"\*\*([0-9.]+)\*\*", table)
    assert bold == [f"{max(accuracies):.4f}"]
    with open(os.path.join(out, "sweep_results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_best_is_restorable_and_alone_predicts_the_test_set(resumed, task):
    out = resumed.output_dir
    with open(os.path.join(out, "best", sweep.BEST_RECORD), encoding="utf-8") as f:
        best = json.load(f)
    model = modeling.BertClassifier(task.config, 2)
    variables = checkpoints.named_variables(model)
    loaded, missing, _ = checkpoints.restore(variables, os.path.join(out, "best"))
    assert not missing and len(loaded) == len(variables)
    source = tf.train.load_checkpoint(os.path.join(out, best["trial"], best["checkpoint"]))
    for name in ("output_weights", "bert/embeddings/word_embeddings"):
        np.testing.assert_array_equal(variables[name].numpy(), source.get_tensor(name))
    # Only the best trial predicted: the test predictions and the GLUE submission are in best/.
    with open(os.path.join(out, "best", "test_results.tsv"), encoding="utf-8") as f:
        assert len(f.read().splitlines()) == SIZES["test.tsv"]
    with open(os.path.join(out, "best", "SST-2.tsv"), encoding="utf-8") as f:
        assert len(f.read().splitlines()) == SIZES["test.tsv"] + 1
    for name in TRIALS:
        assert not glob.glob(os.path.join(out, name, "test_results*"))
        assert not glob.glob(os.path.join(out, name, "SST-2.tsv"))


# -- The claim: one point, one trial --------------------------------------------------------------

def grid_study(url, worker=None):
    grid = sweep_study.open_study(url, "sweep", [8, 16], [1e-3], {"script": "s", "flags": []})
    if worker is not None:
        grid.worker = worker
    return grid


def dead_pid():
    """The id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_two_workers_claiming_one_point_at_once_leave_it_to_one(tmp_path):
    url = f"sqlite:///{tmp_path}/sweep.db"
    first, second = grid_study(url), grid_study(url)
    point = (16, 1e-3)
    params = {sweep_study.BATCH_SIZE: point[0], sweep_study.LEARNING_RATE: point[1]}
    first.study.enqueue_trial(params)
    second.study.enqueue_trial(params)
    # Both record the point, then the second reads first: it sees the first's trial and gives up;
    # the first then reads and keeps it. (Whoever reads second sees the other.)
    real = first.study.get_trials
    second_claim = []

    def reads_after_the_second(*args, **kwargs):
        if not second_claim:
            second_claim.append(second._claim(first.points))
        return real(*args, **kwargs)

    first.study.get_trials = reads_after_the_second
    claimed = first._claim(first.points)
    assert claimed is not None and claimed[1] == point
    assert second_claim == [None]
    states = {t.number: (t.state.name, t.user_attrs.get(sweep_study.SKIPPED_ATTR))
              for t in second.study.get_trials()}
    assert states[claimed[0].number] == ("RUNNING", None)
    assert [s for n, s in states.items() if n != claimed[0].number] == [
        ("FAIL", f"trials [{claimed[0].number}] hold the point")]


def test_a_dead_workers_trial_is_failed_and_its_point_taken_again(tmp_path):
    url = f"sqlite:///{tmp_path}/sweep.db"
    gone = sweep_study.Worker(sweep_study.Worker.this_process().host, dead_pid())
    trial, point = grid_study(url, worker=gone).next_trial()
    live = grid_study(url)
    assert live.view()[point].todo   # its worker is gone: the point is to do again
    taken = {}
    while True:
        claimed = live.next_trial()
        if claimed is None:
            break
        taken[claimed[1]] = claimed[0].number
        live.complete(claimed[0], 0.5, {})
    assert sorted(taken) == sorted(live.points) and taken[point] != trial.number
    states = {t.number: t.state.name for t in live.study.get_trials()}
    assert states[trial.number] == "FAIL"
    assert [t.number for t in live.finished()] == [taken[p] for p in live.points]
    assert live.finished_last([max(taken.values())])


def test_a_point_taken_again_completes_while_another_trial_runs(tmp_path):
    """The dead worker's point, queued again, completes while the other point's trial still runs
    (GridSampler.after_trial then reads the queued trial's grid_id: it must have one)."""
    url = f"sqlite:///{tmp_path}/sweep.db"
    gone = sweep_study.Worker(sweep_study.Worker.this_process().host, dead_pid())
    dead, point = grid_study(url, worker=gone).next_trial()
    other = grid_study(url)
    running, other_point = other.next_trial()
    assert other_point != point
    live = grid_study(url)
    again, again_point = live.next_trial()
    assert again_point == point and again.number > running.number
    live.complete(again, 0.5, {})
    other.complete(running, 0.25, {})
    states = {t.number: t.state.name for t in live.study.get_trials()}
    assert states == {dead.number: "FAIL", running.number: "COMPLETE", again.number: "COMPLETE"}
    assert live.next_trial() is None


def test_two_workers_failing_a_dead_workers_trial_at_once(tmp_path):
    """The second of two workers that both saw the dead worker's trial RUNNING finds it failed
    when it updates it (Study.tell checks, then updates): not an error."""
    url = f"sqlite:///{tmp_path}/sweep.db"
    gone = sweep_study.Worker(sweep_study.Worker.this_process().host, dead_pid())
    trial, _ = grid_study(url, worker=gone).next_trial()
    first, second = grid_study(url), grid_study(url)
    storage = second.study._storage  # pylint: disable=protected-access
    real = storage.set_trial_state_values

    def first_gets_there_in_between(*args, **kwargs):
        first.fail_dead_trials()
        return real(*args, **kwargs)

    storage.set_trial_state_values = first_gets_there_in_between
    second.fail_dead_trials()
    assert second.study.get_trials()[trial.number].state.name == "FAIL"


def test_a_storage_holding_another_sweep_is_an_error(tmp_path):
    url = f"sqlite:///{tmp_path}/sweep.db"
    grid_study(url)
    with pytest.raises(InputError, match="is another sweep .* use another --study_name"):
        sweep_study.open_study(url, "sweep", [8], [1e-3], {"script": "s", "flags": ["--x=1"]})


# -- The script's flags and the report ------------------------------------------------------------

def test_script_flags_are_passed_on_and_those_the_sweep_reads_are_read():
    args = sweep.parse_script_args(["--data_dir", "/d", "--do_predict", "--task_name", "MRPC",
                                    "--foo=3", "--nouse_tpu", "--num_train_epochs=2"])
    assert args.passed == ("--data_dir", "/d", "--foo=3", "--nouse_tpu")
    assert args.given == {"do_predict": True, "task_name": "MRPC", "num_train_epochs": 2.0}
    spec = sweep.SCRIPTS["run_classifier.py"]
    flags = sweep.trial_flags(spec, args)
    assert flags == ["--data_dir", "/d", "--foo=3", "--nouse_tpu", "--num_train_epochs=2.0",
                     "--task_name=MRPC", "--do_train=true", "--do_eval=true",
                     "--do_predict=false"]
    assert "--num_train_epochs=4" in sweep.trial_flags(spec, sweep.parse_script_args([]))
    assert spec.main_metric(args.given, None) == "eval_f1"
    for owned in ("--train_batch_size=8", "--learning_rate", "--output_dir=/x"):
        with pytest.raises(InputError, match="the sweep sets each trial's"):
            sweep.parse_script_args(["--task_name=MRPC", owned, "1e-4"])
    with pytest.raises(InputError, match="--predict_file"):
        sweep.check_script_args("run_squad.py", sweep.parse_script_args(["--do_train"]))
    with pytest.raises(InputError, match="--do_eval=false"):
        sweep.check_script_args("run_ner.py", sweep.parse_script_args(["--nodo_eval"]))


def test_the_main_metric_of_run_ner_and_run_squad(tmp_path):
    """run_ner.py's trials are scored by entity F1 (the key its BestCheckpoint keeps: eval_f1),
    or token accuracy for tags that are not entities, read from the trial's tag_list.txt;
    run_squad.py's by the official F1."""
    ner = sweep.SCRIPTS["run_ner.py"]
    with pytest.raises(sweep.TrialError, match="no tag_list.txt"):
        ner.main_metric({}, str(tmp_path))
    (tmp_path / "tag_list.txt").write_text("B-PER\nI-PER\nO\n", encoding="utf-8")
    assert ner.main_metric({}, str(tmp_path)) == "eval_f1"
    (tmp_path / "tag_list.txt").write_text("NOUN\nVERB\n", encoding="utf-8")
    assert ner.main_metric({}, str(tmp_path)) == "eval_accuracy"
    assert ner.trial_modes == ("--do_train=true", "--do_eval=true", "--do_predict=false")
    squad = sweep.SCRIPTS["run_squad.py"]
    assert squad.main_metric({}, str(tmp_path)) == "f1"
    assert squad.trial_modes == ("--do_train=true", "--do_predict=true")


def test_a_trial_is_scored_after_its_last_step_or_by_its_best_evaluation(tmp_path):
    """Without --eval_every_steps: the trial's eval_results.txt and its last checkpoint; with it:
    best/ (BestCheckpoint's evaluation and checkpoint)."""
    spec = sweep.SCRIPTS["run_classifier.py"]
    for directory, step, accuracy in ((tmp_path, 12, 0.5), (tmp_path / "best", 8, 0.75)):
        directory.mkdir(exist_ok=True)
        (directory / "eval_results.txt").write_text(
            f"eval_accuracy = {accuracy}\neval_loss = 0.6\nglobal_step = {step}\n")
        (directory / f"model.ckpt-{step}.index").write_bytes(b"")
    last = sweep.collect(spec, sweep.parse_script_args(["--task_name=SST-2"]), str(tmp_path))
    assert last == dict(metrics={"eval_accuracy": 0.5, "eval_loss": 0.6, "global_step": 12.0},
                        main_metric="eval_accuracy", source="", checkpoint="model.ckpt-12")
    best = sweep.collect(spec, sweep.parse_script_args(["--task_name=SST-2",
                                                        "--eval_every_steps=4"]), str(tmp_path))
    assert (best["source"], best["checkpoint"], best["metrics"]["eval_accuracy"]) == (
        "best", "model.ckpt-8", 0.75)
    os.remove(tmp_path / "model.ckpt-12.index")
    with pytest.raises(sweep.TrialError, match="model.ckpt-12: the scored checkpoint is missing"):
        sweep.collect(spec, sweep.parse_script_args(["--task_name=SST-2"]), str(tmp_path))
    with pytest.raises(sweep.TrialError, match="has no eval_f1"):
        sweep.collect(spec, sweep.parse_script_args(["--task_name=MRPC"]), str(tmp_path))


def test_grid_flags():
    assert sweep.parse_grid("8,16,32,64,128", "3e-4,1e-4,5e-5,3e-5") == (
        [8, 16, 32, 64, 128], [3e-4, 1e-4, 5e-5, 3e-5])
    for sizes, rates, match in ((" , ", "1e-4", "--batch_sizes is empty"),
                                ("8", "", "--learning_rates is empty"),
                                ("8,x", "1e-4", "not a list of ints"),
                                ("8,8", "1e-4", "given once"), ("8", "-1e-4", "positive")):
        with pytest.raises(InputError, match=match):
            sweep.parse_grid(sizes, rates)


def test_trial_names_read_back_exactly():
    assert [sweep_report.trial_name(32, lr) for lr in (5e-5, 3e-4, 1e-4, 1.5e-5, 0.1)] == [
        "bs32_lr5e-05", "bs32_lr3e-04", "bs32_lr1e-04", "bs32_lr1.5e-05", "bs32_lr1e-01"]
    for lr in (3e-5, 2.5e-5, 1 / 3):
        assert float(sweep_report.lr_text(lr)) == lr


def result(batch_size, lr, value, **others):
    return sweep_report.TrialResult(batch_size, lr, {"eval_mcc": value, **others}, "eval_mcc")


def test_the_best_is_the_highest_nan_lowest_the_first_of_equals():
    results = [result(8, 1e-4, math.nan), result(8, 3e-5, 0.25), result(16, 1e-4, 0.5),
               result(16, 3e-5, 0.5)]
    assert sweep_report.best_trial(results) is results[2]
    assert sweep_report.best_trial(results[:1]) is results[0]


def test_tsv_and_markdown_tables():
    results = [result(8, 1e-4, 0.25, eval_loss=0.5, global_step=10), result(16, 1e-4, 0.75)]
    best = results[1]
    assert sweep_report.tsv_text(results, best) == (
        "trial\ttrain_batch_size\tlearning_rate\tbest\teval_mcc\teval_loss\tglobal_step\n"
        "bs8_lr1e-04\t8\t1e-04\t\t0.25\t0.5\t10\n"
        "bs16_lr1e-04\t16\t1e-04\tyes\t0.75\t\t\n")
    assert sweep_report.markdown_text(results, best, [8, 16], [1e-4, 3e-5], "CoLA") == (
        "Dev eval_mcc of CoLA by batch size (rows) and learning rate (columns); best: "
        "bs16_lr1e-04, eval_mcc = 0.7500 (bold).\n\n"
        "| batch size | 1e-04 | 3e-05 |\n|---:|---:|---:|\n"
        "| 8 | 0.2500 | - |\n| 16 | **0.7500** | - |\n")


# -- Bad input: one ERROR line before anything runs -----------------------------------------------

@pytest.mark.parametrize("extra, script_args, expected", [
    ((), ["--task_name=SST-2", "--learning_rate=1e-4"], "--learning_rate after `--`: the sweep "
                                                        "sets each trial's"),
    (("--batch_sizes=",), ["--task_name=SST-2"], "--batch_sizes is empty"),
])
def test_bad_input_is_one_error_line(extra, script_args, expected, tmp_path):
    result_ = subprocess.run(sweep_command(tmp_path / "out", script_args, *extra), cwd=ROOT,
                             env=ENV, capture_output=True, text=True, timeout=BAD_INPUT_GUARD,
                             check=False)
    assert result_.returncode == 1, result_.stderr[-3000:]
    assert expected in error_line(result_.stdout, result_.stderr)
    assert not os.path.exists(tmp_path / "out")


def test_a_missing_optional_package_is_named(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None; "
            f"sys.argv = {sweep_command(tmp_path / 'out', ['--task_name=SST-2'])[1:]!r}; "
            "import runpy; runpy.run_path(sys.argv[0], run_name='__main__')")
    result_ = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                             capture_output=True, text=True, timeout=BAD_INPUT_GUARD,
                             check=False)
    assert result_.returncode == 1, result_.stderr[-3000:]
    assert error_line(result_.stdout, result_.stderr) == (
        "ERROR: sweep.py needs the package 'optuna': pip install -r requirements-sweep.txt")
