r"""The fine-tuning grid of the compact BERT models, best by dev score, as one resumable command.

The 24 smaller BERT models (Turc et al., 2019, "Well-Read Students Learn Better") were evaluated
with one protocol: for each task, fine-tune for 4 epochs with every batch size in
{8, 16, 32, 64, 128} and every learning rate in {3e-4, 1e-4, 5e-5, 3e-5}, and report the model
with the best dev score. That is:

  python3 sweep.py --script=run_classifier.py --output_dir=/tmp/sst2_sweep -- \
    --task_name=SST-2 --data_dir=$GLUE_DIR/SST-2 --vocab_file=$BERT_MINI_DIR/vocab.txt \
    --bert_config_file=$BERT_MINI_DIR/bert_config.json \
    --init_checkpoint=$BERT_MINI_DIR/bert_model.ckpt --max_seq_length=128 --do_predict=true

--batch_sizes and --learning_rates (comma-separated) default to that grid. After `--` come the
script's own flags, passed to every trial, with --num_train_epochs=4 unless given; the sweep sets
each trial's --train_batch_size, --learning_rate and --output_dir (giving them after `--` is an
error) and its modes: --do_train and --do_eval (run_classifier.py, run_ner.py) or --do_train and
--do_predict on a --predict_file with answers (run_squad.py, whose dev evaluation is its
prediction). The script runs as a command (`python3 <script>` in this directory), never imported.

Outputs in --output_dir:
  bs<B>_lr<R>/           one trial (bs32_lr5e-05): the script's usual outputs (checkpoints,
                         eval_results.txt, ...), sweep_log.txt (the script's output, appended on
                         each attempt) and sweep_trial.json (the sweep's record of the finished
                         trial).
  sweep.db               the Optuna study (SQLite), unless --storage names another database.
  sweep_results.tsv      one row per trial: trial, train_batch_size, learning_rate, best ("yes"
                         for the best trial), the task's main dev metric (its name heads the
                         fifth column), then every other value of the trial's results file.
  sweep_results.md       the main metric as a Markdown table, batch sizes by learning rates, the
                         best in bold; also printed at the end.
  sweep_results.png      the same as a heatmap.
  best/                  the best trial's checkpoint (model.ckpt-<step> with its `checkpoint`
                         state file, restorable as --init_checkpoint=<output_dir>/best or with
                         checkpoints.restore), its eval_results.txt, label_list.txt or
                         tag_list.txt (and SQuAD's predictions.json, nbest_predictions.json,
                         null_odds.json), sweep_best.json naming the trial; with --do_predict
                         (run_classifier.py, run_ner.py) also the test predictions and GLUE
                         submission file, written by a last run of the script on this checkpoint.

The main metric is the one run_classifier.py keeps its best checkpoint by (the task's first:
accuracy, F1 for MRPC/QQP, MCC for CoLA, Pearson for STS-B, ...; classifier_data.main_metric),
entity F1 for run_ner.py (token accuracy for tags that are not entities;
metrics.tagging_main_metric) and F1 for run_squad.py. A trial's score is its eval_results.txt
after the last step, as in the paper, and its checkpoint the last one; with --eval_every_steps it
is the trial's best evaluation (its best/eval_results.txt) and that checkpoint. Ties go to the trial
listed first (batch sizes, then learning rates, in the order given).

Why test predictions come from the best trial only: the protocol chooses the model on the dev set
alone, so the test set is predicted once, by the chosen model, not by every trial (that would cost
a test pass per trial and invite choosing by test results). So trials run without --do_predict;
after the grid, the script runs once more with --do_predict on <output_dir>/best.

Resuming, and several machines: the grid is an Optuna study (GridSampler) in an RDB storage:
<output_dir>/sweep.db for one machine, or --storage=postgresql://... (any SQLAlchemy URL) shared by
the same command on several machines, whose --output_dir is then one shared directory (a network
file system) so that every trial's directory and best/ land in one place. Each worker takes the
next grid point nobody has finished or is running (sweep_study.py: how two workers never run the
same point, and how a dead worker's trial is taken over). A finished trial is never run again (its
record in the storage, or sweep_trial.json in its directory); an interrupted one runs again in its
directory, where the script resumes from its newest checkpoint. When the grid is complete, the
worker that finished the last trial writes the results and best/; run the command again at any
time to finish a grid, or to rewrite them.

Not done: pruning clearly losing trials early on their --eval_every_steps scores, which Optuna
could do; the paper's protocol runs every trial to the end.

Bad input (an unknown --script, an empty grid, a flag the sweep sets given after `--`, a storage
holding another sweep) is one `ERROR:` line before anything runs; a trial whose script fails stops
this worker with one `ERROR:` line quoting the script's own and naming its log. Needs optuna and
matplotlib: pip install -r requirements-sweep.txt.
"""
import dataclasses
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Tuple

from absl import flags, logging

import classifier_data
import common_flags
from errors import InputError
import file_io
import metrics
import sweep_report
import sweep_study
import tagging_data

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.abspath(__file__))

common_flags.DEFINE_string("script", None,
                           "The fine-tuning script each trial runs: run_classifier.py, "
                           "run_ner.py or run_squad.py.")
common_flags.DEFINE_string("batch_sizes", "8,16,32,64,128",
                           "The grid's training batch sizes, comma-separated.")
common_flags.DEFINE_string("learning_rates", "3e-4,1e-4,5e-5,3e-5",
                           "The grid's learning rates, comma-separated.")
common_flags.define_output_dir("Where the trials' directories, the results and best/ go (a "
                               "local or network-mounted directory).")
common_flags.DEFINE_string("storage", None,
                           "The Optuna storage (an SQLAlchemy database URL) that workers on "
                           "several machines share. Default: sqlite:///<output_dir>/sweep.db.")
common_flags.DEFINE_string("study_name", "sweep", "The study's name in the storage.")

DEFAULT_EPOCHS = 4
EVAL_RESULTS = "eval_results.txt"
LOG_FILE = "sweep_log.txt"
TRIAL_RECORD = "sweep_trial.json"
BEST_DIR = "best"
BEST_RECORD = "sweep_best.json"
RESULTS = "sweep_results"      # .tsv, .md, .png
STOP_SECONDS = 30              # how long an interrupted script gets to exit before it is killed


class TrialError(InputError):
    """A trial's script failed or wrote no usable results."""


# -- The scripts ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ScriptSpec:
    """What the sweep knows of a fine-tuning script."""
    trial_modes: Tuple[str, ...]   # the mode flags of every trial
    best_files: Tuple[str, ...]    # copied to best/ with the checkpoint, where they exist
    predicts_after: bool           # --do_predict: the best trial predicts, in best/, at the end
    main_metric: Callable[[Dict[str, Any], str], str]  # (flags given, results dir) -> results key


def _classifier_metric(given, results_dir):
    del results_dir
    return "eval_" + classifier_data.main_metric(given.get("task_name"),
                                                 bool(given.get("regression")),
                                                 bool(given.get("multi_label")))


def _tagging_metric(given, results_dir):
    del given
    tags = tagging_data.read_tag_list(results_dir)
    if tags is None:
        raise TrialError(f"{results_dir}: no {tagging_data.TAG_LIST_FILE}")
    return "eval_" + metrics.tagging_main_metric(tags)


SCRIPTS = {
    "run_classifier.py": ScriptSpec(("--do_train=true", "--do_eval=true", "--do_predict=false"),
                                    (EVAL_RESULTS, "label_list.txt"), True, _classifier_metric),
    "run_ner.py": ScriptSpec(("--do_train=true", "--do_eval=true", "--do_predict=false"),
                             (EVAL_RESULTS, tagging_data.TAG_LIST_FILE), True, _tagging_metric),
    "run_squad.py": ScriptSpec(("--do_train=true", "--do_predict=true"),
                               (EVAL_RESULTS, "predictions.json", "nbest_predictions.json",
                                "null_odds.json"), False, lambda given, results_dir: "f1"),
}


def script_spec(script):
    name = os.path.basename(script or "")
    if name not in SCRIPTS:
        raise InputError(f"--script={script!r}: the sweep runs one of {', '.join(SCRIPTS)}")
    return SCRIPTS[name]


# -- The script's flags ---------------------------------------------------------------------------

SWEEP_SETS = ("train_batch_size", "learning_rate", "output_dir")   # per trial
MODES = ("do_train", "do_eval", "do_predict")                       # ScriptSpec.trial_modes
TRAINING_ONLY = ("eval_every_steps", "teacher_soft_labels", "distill_temperature",
                 "gold_label_weight", "num_train_epochs")          # left out when predicting


def _reader():
    """The flags the sweep reads from the script's flags (the scripts' names and types)."""
    values = flags.FlagValues()
    for name in ("train_batch_size", "eval_every_steps"):
        flags.DEFINE_integer(name, None, "", flag_values=values)
    for name in ("learning_rate", "num_train_epochs", "distill_temperature",
                 "gold_label_weight"):
        flags.DEFINE_float(name, None, "", flag_values=values)
    for name in ("output_dir", "task_name", "teacher_soft_labels", "predict_file"):
        flags.DEFINE_string(name, None, "", flag_values=values)
    for name in MODES + ("regression", "multi_label"):
        flags.DEFINE_bool(name, None, "", flag_values=values)
    return values


@dataclasses.dataclass(frozen=True)
class ScriptArgs:
    """The script's flags as given after `--`: those the sweep reads (`given`: {name: value};
    `written`: {name: their --flag form}) and the others, passed on as they are."""
    passed: Tuple[str, ...]
    given: Dict[str, Any]
    written: Dict[str, str]

    def flags(self, leave_out=()):
        return list(self.passed) + [text for name, text in self.written.items()
                                    if name not in leave_out]


def parse_script_args(args):
    """ScriptArgs of the arguments after `--` (absl's parsing: --name=value, --name value,
    --name / --noname for booleans)."""
    values = _reader()
    passed = values(["sweep.py"] + list(args), known_only=True)[1:]
    given = {name: values[name].value for name in values if values[name].present}
    owned = [f"--{name}" for name in SWEEP_SETS if name in given]
    if owned:
        raise InputError(f"{', '.join(owned)} after `--`: the sweep sets each trial's "
                         "--train_batch_size, --learning_rate and --output_dir (use "
                         "--batch_sizes, --learning_rates and --output_dir)")
    return ScriptArgs(tuple(passed), given,
                      {name: values[name].serialize() for name in given})


def check_script_args(script, args):
    """The script flags a sweep cannot run with."""
    given = args.given
    if given.get("do_train") is False:
        raise InputError("--do_train=false after `--`: every trial trains")
    if script == "run_squad.py":
        if given.get("do_predict") is False or not given.get("predict_file"):
            raise InputError("run_squad.py's trials are scored on their predictions: give "
                             "--predict_file=<a dev set with answers> after `--`")
    elif given.get("do_eval") is False:
        raise InputError("--do_eval=false after `--`: every trial is scored on the dev set")


def parse_grid(batch_sizes, learning_rates):
    """([batch size], [learning rate]) of the comma-separated flags, each a positive number
    given once."""
    def values(text, flag, kind):
        items = [item.strip() for item in (text or "").split(",") if item.strip()]
        if not items:
            raise InputError(f"--{flag} is empty: give comma-separated values")
        try:
            parsed = [kind(item) for item in items]
        except ValueError:
            raise InputError(f"--{flag}={text}: not a list of {kind.__name__}s") from None
        if any(not value > 0 for value in parsed) or len(set(parsed)) != len(parsed):
            raise InputError(f"--{flag}={text}: each value must be positive and given once")
        return parsed
    return values(batch_sizes, "batch_sizes", int), values(learning_rates, "learning_rates", float)


def trial_flags(spec, args):
    """The flags every trial gets (then its own --train_batch_size, --learning_rate,
    --output_dir)."""
    common = args.flags(leave_out=MODES) + list(spec.trial_modes)
    if "num_train_epochs" not in args.given:
        common.append(f"--num_train_epochs={DEFAULT_EPOCHS}")
    return common


def script_command(script, script_flags):
    return [sys.executable, os.path.join(ROOT, os.path.basename(script))] + list(script_flags)


# -- Running a trial ------------------------------------------------------------------------------

def _stop(process):
    """Ends `process` if it still runs: SIGTERM, then SIGKILL after STOP_SECONDS."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_logged(command, directory):
    """Runs `command`, its output appended to <directory>/sweep_log.txt after a line naming the
    command; returns its exit status. An interruption (Ctrl-C, SIGTERM) stops it too."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, LOG_FILE), "a", encoding="utf-8") as log:
        log.write(f"=== sweep.py, {time.strftime('%Y-%m-%d %H:%M:%S')}, pid {os.getpid()}: "
                  f"{shlex.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            return process.wait()
        finally:
            _stop(process)


def failure(name, script, status, directory):
    """TrialError for a script that exited with `status`: its own ERROR line (or last line)."""
    path = os.path.join(directory, LOG_FILE)
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f.read().split("\n=== sweep.py")[-1].splitlines()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    said = errors[-1] if errors else next((line for line in reversed(lines) if line), "")
    return TrialError(f"trial {name}: {script} exited with status {status} ({said}); its "
                      f"output is in {path}")


def read_results(path):
    """{key: value} of a `key = value` results file (eval_results.txt): numbers as floats."""
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if " = " in line:
                key, value = line.rstrip("\n").split(" = ", 1)
                try:
                    results[key] = float(value)
                except ValueError:
                    results[key] = value
    return results


def collect(spec, args, directory):
    """The outcome of a trial that ran in `directory`: {metrics, main_metric, source (the
    subdirectory with the scored checkpoint: "best" with --eval_every_steps, else ""),
    checkpoint (its name)}."""
    source = "best" if args.given.get("eval_every_steps") else ""
    results_dir = os.path.join(directory, source)
    path = os.path.join(results_dir, EVAL_RESULTS)
    if not os.path.isfile(path):
        raise TrialError(f"{path} is missing: the trial wrote no dev results")
    results = read_results(path)
    key = spec.main_metric(args.given, results_dir)
    if key not in results or "global_step" not in results:
        raise TrialError(f"{path} has no {key} or global_step")
    checkpoint = f"model.ckpt-{int(results['global_step'])}"
    if not os.path.isfile(os.path.join(results_dir, checkpoint + ".index")):
        raise TrialError(f"{os.path.join(results_dir, checkpoint)}: the scored checkpoint is "
                         "missing")
    return dict(metrics=results, main_metric=key, source=source, checkpoint=checkpoint)


def trial_outcome(script, spec, args, point, output_dir):
    """The outcome of the trial of `point` (collect's): its record if it finished before (the
    storage did not record it: the sweep stopped in between, or the storage is new), else from
    running the script."""
    name = sweep_report.trial_name(*point)
    directory = os.path.join(output_dir, name)
    common = trial_flags(spec, args)
    record_path = os.path.join(directory, TRIAL_RECORD)
    if os.path.isfile(record_path):
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
        if record["flags"] != common:
            raise InputError(f"{directory} holds a trial run with other flags "
                             f"({' '.join(record['flags'])}): use another --output_dir")
        print(f"sweep: trial {name} finished before: {record_path}", flush=True)
        return record
    command = script_command(script, common + [
        f"--train_batch_size={point[0]}", f"--learning_rate={point[1]!r}",
        f"--output_dir={directory}"])
    start = time.time()
    print(f"sweep: trial {name}: running {os.path.basename(script)} (its output: "
          f"{os.path.join(directory, LOG_FILE)})", flush=True)
    status = run_logged(command, directory)
    if status:
        raise failure(name, os.path.basename(script), status, directory)
    outcome = dict(collect(spec, args, directory), flags=common)
    file_io.write_text_atomically(record_path, json.dumps(outcome, indent=1) + "\n")
    print(f"sweep: trial {name} finished in {time.time() - start:.0f} s: "
          f"{outcome['main_metric']} = {outcome['metrics'][outcome['main_metric']]:.4f}",
          flush=True)
    return outcome


def run_trials(script, spec, args, grid, output_dir):
    """Runs grid points until none is left to take; returns the numbers of the trials run."""
    ran = []
    while True:
        claimed = grid.next_trial()
        if claimed is None:
            return ran
        trial, point = claimed
        with sweep_study.Heartbeat(grid, trial):
            try:
                outcome = trial_outcome(script, spec, args, point, output_dir)
            except BaseException:  # a failure, or an interruption: the point is taken again
                grid.fail(trial)
                raise
        grid.complete(trial, outcome["metrics"][outcome["main_metric"]], outcome)
        ran.append(trial.number)


# -- The best trial -------------------------------------------------------------------------------

def copy_best(output_dir, best, outcome, spec):
    """<output_dir>/best/: the best trial's scored checkpoint, with a `checkpoint` state file
    naming it, and its spec.best_files; replaced whole."""
    source = os.path.join(output_dir, best.name, outcome["source"])
    checkpoint = outcome["checkpoint"]
    with file_io.atomic_directory(os.path.join(output_dir, BEST_DIR), overwrite=True) as temp:
        os.makedirs(temp)
        for path in glob.glob(os.path.join(glob.escape(source), checkpoint + ".*")):
            shutil.copy2(path, temp)
        for name in spec.best_files:
            if os.path.isfile(os.path.join(source, name)):
                shutil.copy2(os.path.join(source, name), temp)
        # The state file tf.train.latest_checkpoint reads (checkpoints.CheckpointManager's).
        file_io.write_text_atomically(
            os.path.join(temp, "checkpoint"), f'model_checkpoint_path: "{checkpoint}"\n'
            f'all_model_checkpoint_paths: "{checkpoint}"\n')


def predict_with_best(script, args, output_dir):
    """Runs the script with --do_predict on <output_dir>/best (its checkpoint, label or tag list),
    writing the test predictions there."""
    best_dir = os.path.join(output_dir, BEST_DIR)
    command = script_command(script, args.flags(leave_out=MODES + TRAINING_ONLY) + [
        "--do_train=false", "--do_eval=false", "--do_predict=true", f"--output_dir={best_dir}"])
    print(f"sweep: predicting with the best trial's checkpoint in {best_dir}", flush=True)
    status = run_logged(command, best_dir)
    if status:
        raise failure(BEST_DIR, os.path.basename(script), status, best_dir)


def finish_best(script, spec, args, output_dir, best, outcome):
    """best/ for the best trial, unless it is there already (sweep_best.json names it)."""
    record = dict(trial=best.name, train_batch_size=best.batch_size,
                  learning_rate=best.learning_rate, main_metric=best.main_metric,
                  value=best.value, checkpoint=outcome["checkpoint"],
                  predicted=bool(spec.predicts_after and args.given.get("do_predict")))
    path = os.path.join(output_dir, BEST_DIR, BEST_RECORD)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if json.load(f) == record:
                return
    copy_best(output_dir, best, outcome, spec)
    if record["predicted"]:
        predict_with_best(script, args, output_dir)
    file_io.write_text_atomically(path, json.dumps(record, indent=1) + "\n")


def write_report(script, args, grid, output_dir):
    """The results files and best/ of a complete grid; prints the Markdown table."""
    results, outcomes = [], {}
    for trial in grid.finished():
        outcome = trial.user_attrs[sweep_study.OUTCOME_ATTR]
        result = sweep_report.TrialResult(*sweep_study.point_of(trial), outcome["metrics"],
                                          outcome["main_metric"])
        results.append(result)
        outcomes[result.name] = outcome
    best = sweep_report.best_trial(results)
    what = os.path.basename(script) + (f" {args.given['task_name']}"
                                       if args.given.get("task_name") else "")
    base = os.path.join(output_dir, RESULTS)
    file_io.write_text_atomically(base + ".tsv", sweep_report.tsv_text(results, best))
    table = sweep_report.markdown_text(results, best, grid.batch_sizes, grid.learning_rates, what)
    file_io.write_text_atomically(base + ".md", table)
    sweep_report.write_heatmap(base + ".png", results, best, grid.batch_sizes,
                               grid.learning_rates, what)
    finish_best(script, SCRIPTS[os.path.basename(script)], args, output_dir, best,
                outcomes[best.name])
    print(f"\n{table}\nsweep: {len(results)} trials; results in {base}.tsv, .md, .png; the "
          f"best trial's checkpoint in {os.path.join(output_dir, BEST_DIR)}", flush=True)


# -- main -----------------------------------------------------------------------------------------

def _interrupt(signum, frame):
    del signum, frame
    raise KeyboardInterrupt


def open_grid(script, spec, args, grid, output_dir, storage, study_name):
    """The sweep's GridStudy over `grid` ([batch size], [learning rate]) in `storage` (default:
    <output_dir>/sweep.db)."""
    url = storage or "sqlite:///" + os.path.join(output_dir, "sweep.db")
    config = {"script": os.path.basename(script), "flags": trial_flags(spec, args)}
    return sweep_study.open_study(url, study_name, *grid, config)


def main(argv):
    logging.set_verbosity(logging.WARNING)   # the library modules' notes; the sweep prints its own
    script = FLAGS.script
    spec = script_spec(script)
    batch_sizes_and_rates = parse_grid(FLAGS.batch_sizes, FLAGS.learning_rates)
    if not FLAGS.output_dir:
        raise InputError("--output_dir is required")
    if file_io.is_remote(FLAGS.output_dir):
        raise InputError(f"--output_dir={FLAGS.output_dir}: the sweep needs a local or "
                         "network-mounted directory")
    args = parse_script_args(argv[1:])
    check_script_args(os.path.basename(script), args)
    for name in ("optuna", "matplotlib"):  # before any trial runs
        sweep_study.import_optional(name)
    output_dir = os.path.abspath(FLAGS.output_dir)
    os.makedirs(output_dir, exist_ok=True)
    grid = open_grid(script, spec, args, batch_sizes_and_rates, output_dir, FLAGS.storage,
                     FLAGS.study_name)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ran = run_trials(script, spec, args, grid, output_dir)
    except KeyboardInterrupt:
        print("sweep: interrupted; run the same command again to resume", file=sys.stderr,
              flush=True)
        return 130
    done = len(grid.finished())
    if done < len(grid.points):
        print(f"sweep: {done} of {len(grid.points)} trials finished, the rest are running in "
              "other workers: the last to finish writes the results (or run this command again "
              "once they are done)", flush=True)
    elif not ran or grid.finished_last(ran):
        write_report(script, args, grid, output_dir)
    else:
        print("sweep: the grid is complete; the worker that finished its last trial writes the "
              "results", flush=True)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("script")
    common_flags.run(main)
