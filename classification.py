"""Fine-tuning a sentence (pair) classifier end to end: run_classifier.py's machinery, as a library.

run_classifier.py and run_classifier_with_tfhub.py differ only in where the encoder, the vocabulary
and the casing come from (a BERT checkpoint and its files, or a TF Hub-format SavedModel); the
rest is here and shared: the task and its labels, the feature caches, the runner's plug-in
functions (loss, prediction, distillation), evaluation (also every N steps, keeping the best
checkpoint), the output files and the teacher's soft labels. `run` is a whole run; the scripts'
docstrings describe what it writes.

Besides the original outputs a training run writes `task.json` (TASK_FILE) next to
label_list.txt, so that what the model outputs is known to whoever uses it later
(export_saved_model.py): the task's name, its kind (classification, multi_label, regression),
its labels, whether its examples are text pairs, the multi-label threshold and label separator,
and the tokenization the model was trained with (do_lower_case, max_seq_length).
"""

import dataclasses
import functools
import json
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

import checkpoints
import classifier_data
import classifier_features
from errors import InputError
import file_io
import input_pipeline
import metrics
import modeling
import soft_labels
import training

GENERIC_OPTIONS = ("text_a_column", "text_b_column", "label_column", "index_column", "file_format",
                   "has_header", "labels", "multi_label", "label_separator", "regression")
LABEL_LIST_FILE = "label_list.txt"
SOFT_LABELS_FILE = "soft_labels.jsonl"
DISTILLATION_RESULTS_FILE = "distillation_results.txt"
AGREEMENT_EXAMPLES = 10000   # teacher agreement is measured on this many transfer examples
BEST_DIR = "best"
TASK_FILE = "task.json"
CLASSIFICATION, REGRESSION, MULTI_LABEL = (classifier_data.CLASSIFICATION,
                                           classifier_data.REGRESSION, classifier_data.MULTI_LABEL)


# -- Settings and their checks --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Modes:
    """What the run does: --do_train, --do_eval, --do_predict, --do_label_transfer and
    --eval_every_steps (0 = off)."""
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    do_label_transfer: bool = False
    eval_every_steps: int = 0

    @property
    def needs_dev_sets(self):
        return bool(self.do_eval or self.eval_every_steps > 0)


@dataclasses.dataclass(frozen=True)
class Distillation:
    """A student's training: --teacher_soft_labels (None: not a student), --distill_temperature
    and --gold_label_weight."""
    soft_labels_file: Optional[str] = None
    temperature: float = 1.0
    gold_label_weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class TaskFlags:
    """How to read the task: --task_name, --xnli_language, and the generic task's options that
    were given ({flag name: value}, GENERIC_OPTIONS)."""
    task_name: Optional[str]
    xnli_language: Optional[str] = None
    generic: Dict[str, Any] = dataclasses.field(default_factory=dict)


def check_flags(modes, distillation, task_flags, paths, transfer_file):
    """The flag combinations the scripts refuse; `paths`: {flag name: value} of the files the
    script needs (run_classifier.py: --vocab_file, --bert_config_file, --output_dir) and
    --data_dir, needed only by the modes that read it."""
    if not (modes.do_train or modes.do_eval or modes.do_predict or modes.do_label_transfer):
        raise InputError("At least one of `do_train`, `do_eval`, `do_predict' or "
                         "`do_label_transfer` must be True.")
    reads_data_dir = (modes.do_eval or modes.do_predict or modes.eval_every_steps
                      or (modes.do_train and not distillation.soft_labels_file))
    values = dict(paths, task_name=task_flags.task_name)
    for name in ["task_name"] + [name for name in paths if name != "data_dir"] + (
            ["data_dir"] if reads_data_dir else []):
        if not values[name]:
            raise InputError(f"--{name} is required")
    check_distillation_flags(modes, distillation, transfer_file)
    if modes.eval_every_steps < 0 or (modes.eval_every_steps and not modes.do_train):
        raise InputError(f"--eval_every_steps={modes.eval_every_steps} needs --do_train and must "
                         "be at least 0")
    key = _task_key(task_flags.task_name)
    if task_flags.generic and key != "generic":
        raise InputError(f"--{', --'.join(task_flags.generic)} only apply to --task_name=generic")
    if task_flags.xnli_language and key != "xnli":
        raise InputError("--xnli_language only applies to --task_name=xnli")


def check_distillation_flags(modes, distillation, transfer_file):
    if bool(modes.do_label_transfer) != bool(transfer_file):
        raise InputError("--do_label_transfer and --transfer_file go together")
    if distillation.soft_labels_file and not modes.do_train:
        raise InputError("--teacher_soft_labels is for training a student: it needs --do_train")
    if not distillation.soft_labels_file and (distillation.temperature != 1.0
                                              or distillation.gold_label_weight):
        raise InputError("--distill_temperature and --gold_label_weight need "
                         "--teacher_soft_labels")
    if not distillation.temperature > 0:
        raise InputError(f"--distill_temperature={distillation.temperature} must be positive")
    if not 0 <= distillation.gold_label_weight <= 1:
        raise InputError(f"--gold_label_weight={distillation.gold_label_weight} must be in [0, 1]")


def _task_key(task_name):
    return str(task_name).strip().lower().replace("_", "-")


def task_options(task_flags, labels=None):
    """get_task's options: the generic task's (those given, `labels` replacing --labels) or XNLI's
    language."""
    key = _task_key(task_flags.task_name)
    if key == "xnli":
        return {"language": task_flags.xnli_language} if task_flags.xnli_language else {}
    if key != "generic":
        return {}
    options = dict(task_flags.generic)
    if "labels" in options:
        options["labels"] = [label.strip() for label in options["labels"].split(",")
                             if label.strip()]
    if labels is not None:
        options["labels"] = labels
    return options


# -- Data and labels ------------------------------------------------------------------------------

@dataclasses.dataclass
class TaskData:
    """A task with its labels settled, and the example sets the requested modes need."""
    task: classifier_data.Task
    train: list = None                                   # [InputExample]
    dev: dict = dataclasses.field(default_factory=dict)  # {split: [InputExample]}, first = main
    test: dict = dataclasses.field(default_factory=dict)
    soft: soft_labels.SoftLabels = None   # a student's training set: train = soft.examples
    transfer: list = None                 # [InputExample] a teacher labels (--do_label_transfer)

    @property
    def kind(self):
        return self.task.kind


def read_label_list(*directories):
    """The labels of the first directory holding label_list.txt, or None."""
    for directory in directories:
        path = os.path.join(directory, LABEL_LIST_FILE) if directory else None
        if path and tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                labels = [line.rstrip("\n") for line in f if line.rstrip("\n")]
            logging.info("Labels from %s: %s", path, labels)
            return labels
    return None


def label_list_text(labels):
    """label_list.txt's text: one class name a line, in the model's output order."""
    return "".join(f"{label}\n" for label in labels)


def write_label_list(directory, labels):
    file_io.write_text_atomically(os.path.join(directory, LABEL_LIST_FILE),
                                   label_list_text(labels))


def model_directories(output_dir, init_checkpoint):
    """Where the model this run continues from or evaluates keeps its label_list.txt: the output
    directory, then the --init_checkpoint's."""
    return output_dir, checkpoints.directory_of(init_checkpoint)


def settle_task(task_flags, soft, model_dirs):
    """The task, with the generic task's labels from --labels, else from label_list.txt in
    `model_dirs` (the model continued or evaluated; () for a fresh training run), else the
    teacher's (a student of `soft`), else from its training data."""
    labels = None
    if _task_key(task_flags.task_name) == "generic" and "labels" not in task_flags.generic:
        labels = read_label_list(*model_dirs)
        if labels is None and soft is not None:
            labels = soft.labels   # the student's classes are the teacher's
    return classifier_data.get_task(task_flags.task_name, **task_options(task_flags, labels))


def load_task_data(task_flags, modes, distillation, data_dir, transfer_file, model_dirs):
    """Reads the example sets the modes need, so that bad data fails before anything runs.
    `model_dirs`: see settle_task."""
    soft = (soft_labels.read(distillation.soft_labels_file) if distillation.soft_labels_file
            else None)
    task = settle_task(task_flags, soft, model_dirs)
    data = TaskData(task)
    if soft is not None:
        data.soft = student_soft_labels(soft, task, distillation)
        data.train = data.soft.examples
    elif modes.do_train:
        data.train = task.train_examples(data_dir)
    if modes.needs_dev_sets:
        data.dev = task.dev_sets(data_dir)
        if not data.dev:
            raise InputError(f"task {task.name!r} has no dev set to evaluate on")
    if modes.do_predict:
        data.test = task.test_sets(data_dir)
    if modes.do_label_transfer:
        data.transfer = transfer_examples(task, transfer_file)
    if not task.is_regression and task.labels is None:
        raise InputError(f"the labels of task {task.name!r} are not known: train first in this "
                         f"--output_dir, or pass --labels")
    return data


def student_soft_labels(soft, task, distillation):
    """The teacher's soft labels, checked against the student's task, logits in its label order."""
    path = distillation.soft_labels_file
    if soft.kind != task.kind:
        raise soft_labels.SoftLabelsError(
            f"{path}: the teacher is a {soft.kind} model, the student's task {task.name!r} is "
            f"{task.kind}")
    if task.is_regression and distillation.temperature != 1.0:
        raise InputError("--distill_temperature applies to classification; regression distils "
                         "with the squared error to the teacher's value")
    if soft.header.get("task") not in (None, task.name):
        logging.warning("%s was written for task %r; the student's task is %r", path,
                        soft.header.get("task"), task.name)
    soft = soft.ordered_as(task.labels, path) if task.labels is not None else soft
    logging.info("%d transfer examples with the soft labels of %s (step %s) from %s",
                 len(soft.examples), soft.header.get("teacher"), soft.header.get("global_step"),
                 path)
    return soft


def transfer_files(transfer_file):
    """The paths of the comma-separated --transfer_file."""
    return [path.strip() for path in transfer_file.split(",") if path.strip()]


def transfer_examples(task, transfer_file):
    """The examples of the comma-separated transfer files: guids transfer-<n> for one file,
    transfer<k>-<n> (k = 1, 2, ...) for several."""
    paths = transfer_files(transfer_file)
    if not paths:
        raise InputError(f"--transfer_file={transfer_file!r} names no file")
    examples = []
    for k, path in enumerate(paths, 1):
        examples += task.transfer_examples(path, "transfer" if len(paths) == 1
                                           else f"transfer{k}")
    return examples


def check_labels_match(task, output_dir, has_checkpoint):
    """Saves label_list.txt; a model already trained with other labels is an error."""
    if task.is_regression:
        return
    saved = read_label_list(output_dir)
    if saved is not None and saved != task.labels:
        if has_checkpoint:
            raise InputError(
                f"the labels {task.labels} differ from those of the model in --output_dir="
                f"{output_dir} ({LABEL_LIST_FILE}: {saved}); use another --output_dir")
        logging.warning("Replacing %s (%s): no checkpoint uses it", LABEL_LIST_FILE, saved)
    if saved != task.labels:
        write_label_list(output_dir, task.labels)



def task_info(data, features, threshold):
    """What task.json records about the model a training run of `data` (TaskData) makes, with
    `features` (classifier_features.FeatureSettings) and --multi_label_threshold."""
    task = data.task
    return {"task": task.name, "kind": task.kind, "labels": task.labels,
            "text_pairs": any(example.text_b is not None for example in data.train),
            "multi_label_threshold": threshold, "label_separator": task.label_separator,
            "do_lower_case": bool(features.do_lower_case),
            "max_seq_length": int(features.max_seq_length)}


def task_file_text(info):
    """task.json's text (TASK_FILE) of what `info` records."""
    return json.dumps(info, indent=2, sort_keys=True) + "\n"


def write_task_file(directory, info):
    """<directory>/task.json (TASK_FILE), written atomically."""
    file_io.write_text_atomically(os.path.join(directory, TASK_FILE), task_file_text(info))


def read_task_file(directory):
    """The task.json of `directory` as a dict, or None when there is none (a run from before
    the file existed, or a released checkpoint's directory)."""
    path = os.path.join(directory, TASK_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: "
                         f"{e.msg})") from None

# -- Feature caches -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Records:
    """The run's feature caches ({(mode, split): path}, classifier_features.build_caches) and
    what their record format depends on."""
    caches: Dict[Tuple[str, str], str]
    max_seq_length: int
    kind: str
    num_labels: int

    def feature_spec(self, mode):
        return classifier_features.name_to_features(self.max_seq_length, self.kind,
                                                    self.num_labels, mode == "distill")

    def dataset(self, mode, split, batch_size, is_training=False, input_context=None):
        """The records of one example set: in file order, unless `is_training`."""
        return input_pipeline.tfrecord_dataset([self.caches[mode, split]], self.feature_spec(mode),
                                         batch_size, is_training, input_context)


def example_sets(data, data_dir, soft_labels_file, transfer_file):
    """What the caches hold for `data`: [classifier_features.ExampleSets] (train.tf_record, or
    distill.tf_record for a student; eval*, predict*, transfer.tf_record)."""
    in_data_dir = f"{data_dir} ({data.task.name} {{split}} set)"
    sets = []
    if data.soft:
        sets.append(classifier_features.ExampleSets("distill", {"train": data.train},
                                                    soft_labels_file, data.soft.logits))
    elif data.train is not None:
        sets.append(classifier_features.ExampleSets("train", {"train": data.train}, in_data_dir))
    sets += [classifier_features.ExampleSets("eval", data.dev, in_data_dir),
             classifier_features.ExampleSets("predict", data.test, in_data_dir)]
    if data.transfer:
        sets.append(classifier_features.ExampleSets("transfer", {"transfer": data.transfer},
                                                    transfer_file))
    return sets


def build_records(data, settings, output_dir, sets):
    """Records of the caches of `sets` (example_sets) in `output_dir`, built or reused."""
    caches = classifier_features.build_caches(output_dir, data.task, settings, sets)
    return Records(caches, settings.max_seq_length, data.kind, data.task.num_labels)


# -- Model, loss and outputs ----------------------------------------------------------------------

def head_outputs(kind, logits, labels):
    """(loss, per_example_loss [B], outputs) for logits [B, L]: outputs are the class
    probabilities [B, L] (softmax; sigmoid for multi-label) or the predicted value [B]."""
    if kind == REGRESSION:
        predictions = logits[:, 0]
        loss, per_example = modeling.regression_loss(predictions, labels)
        return loss, per_example, predictions
    if kind == MULTI_LABEL:
        loss, per_example = modeling.multi_label_loss(logits, labels)
        return loss, per_example, tf.sigmoid(logits)
    loss, per_example = modeling.classification_loss(logits, labels)
    return loss, per_example, tf.nn.softmax(logits, axis=-1)


@functools.cache
def loss_fn(kind):
    """loss_fn(model, features, training) for Runner.train."""
    def fn(model, features, training):
        loss, _, _ = head_outputs(kind, model(features, training), features["label_ids"])
        return loss
    return fn


@functools.cache
def predict_fn(kind):
    """predict_fn(model, features) for Runner.predict: outputs, logits, per-example loss and
    labels (and the teacher's logits in distillation records)."""
    def fn(model, features):
        logits = model(features, False)
        _, per_example, outputs = head_outputs(kind, logits, features["label_ids"])
        results = {"outputs": outputs, "logits": tf.cast(logits, tf.float32),
                   "per_example_loss": per_example, "label_ids": features["label_ids"]}
        if "teacher_logits" in features:
            results["teacher_logits"] = features["teacher_logits"]
        return results
    return fn


# -- Distillation ---------------------------------------------------------------------------------

def soft_loss(kind, logits, teacher_logits, temperature):
    """(loss, per_example [B]) of the student's logits [B, L] against the teacher's."""
    if kind == REGRESSION:
        return modeling.regression_loss(logits[:, 0], teacher_logits[:, 0])
    if kind == MULTI_LABEL:
        return modeling.soft_multi_label_loss(logits, teacher_logits, temperature)
    return modeling.soft_classification_loss(logits, teacher_logits, temperature)


@functools.cache
def distillation_loss_fn(kind, temperature, gold_label_weight):
    """loss_fn for a student: the distillation loss, mixed with the loss on the gold label
    (weight w) on the examples that have one: (1 - w) x soft + w x gold."""
    def fn(model, features, training):
        logits = model(features, training)
        loss, per_example = soft_loss(kind, logits, features["teacher_logits"], temperature)
        if not gold_label_weight:
            return loss
        _, gold, _ = head_outputs(kind, logits, features["label_ids"])
        w = gold_label_weight * tf.cast(features["has_label"], tf.float32)
        return tf.reduce_mean((1.0 - w) * per_example + w * gold)
    return fn


def teacher_agreement(runner, kind, dataset, threshold):
    """How closely the student follows the teacher on distillation records: {teacher_agreement:
    the share of examples where both predict the same (the same class; the same set of labels),
    or for regression teacher_mse: the mean squared difference of their values}."""
    arrays = run_predictions(runner, kind, dataset)
    teacher = arrays["teacher_logits"]
    if kind == REGRESSION:
        return {"teacher_mse": float(np.mean((arrays["outputs"] - teacher[:, 0]) ** 2))}
    teacher_outputs = (1 / (1 + np.exp(-teacher)) if kind == MULTI_LABEL else teacher)
    same = predicted(kind, arrays["outputs"], threshold) == predicted(kind, teacher_outputs,
                                                                       threshold)
    return {"teacher_agreement": float(np.mean(same if same.ndim == 1 else same.all(axis=-1)))}


class AgreementLog:
    """distillation_results.txt: the student's agreement with the teacher when training starts
    (a fresh run) and after it, measured on the first AGREEMENT_EXAMPLES distillation records."""

    def __init__(self, runner, kind, threshold, records, batch_size, num_examples, output_dir):
        """`records`: the distillation records; `batch_size`: the training batch size (it fits,
        and is faster than --eval_batch_size)."""
        self.runner, self.kind, self.threshold = runner, kind, threshold
        self.path = os.path.join(output_dir, DISTILLATION_RESULTS_FILE)
        self.dataset = records.dataset("distill", "train", batch_size).take(
            -(-AGREEMENT_EXAMPLES // batch_size))
        self.num_examples = min(AGREEMENT_EXAMPLES, num_examples)
        self.at_start = {}

    def measure_start(self, init_checkpoint):
        """The agreement of the model training starts from: --init_checkpoint's encoder and a
        new classifier (what Runner.train will start from)."""
        if init_checkpoint:
            checkpoints.restore(self.runner.model_variables, init_checkpoint)
        values = teacher_agreement(self.runner, self.kind, self.dataset, self.threshold)
        self.at_start = {f"{name}_at_start": value for name, value in values.items()}
        logging.info("Before training: %s", self.at_start)

    def write(self):
        results = teacher_agreement(self.runner, self.kind, self.dataset, self.threshold)
        results.update(self.at_start or self._recorded_start())
        results["num_examples"] = self.num_examples
        results["global_step"] = int(self.runner.global_step.numpy())
        logging.info("***** Agreement with the teacher *****")
        training.write_results(self.path, results)

    def _recorded_start(self):
        """The at-start values of the run this one resumes, if it wrote them."""
        if not tf.io.gfile.exists(self.path):
            return {}
        with tf.io.gfile.GFile(self.path) as f:
            pairs = (line.rstrip("\n").split(" = ", 1) for line in f if " = " in line)
            return {k: float(v) for k, v in pairs if k.endswith("_at_start")}


def label_transfer_set(runner, data, records, batch_size, output_dir, init_checkpoint,
                       transfer_file):
    """The teacher pass: <output_dir>/soft_labels.jsonl with the model's logits on the transfer
    examples (soft_labels.py has the format). The header names the teacher: the newest
    checkpoint in `output_dir`, else `init_checkpoint`."""
    dataset = records.dataset("transfer", "transfer", batch_size)
    logits = run_predictions(runner, data.kind, dataset)["logits"]
    if len(logits) != len(data.transfer):
        raise RuntimeError(f"{len(logits)} predictions for {len(data.transfer)} examples")
    teacher = tf.train.latest_checkpoint(output_dir) or checkpoints.resolve(init_checkpoint)
    head = soft_labels.header(data.task.name, data.kind, data.task.labels, len(data.transfer),
                              teacher, int(runner.global_step.numpy()),
                              transfer_files(transfer_file))
    path = os.path.join(output_dir, SOFT_LABELS_FILE)
    soft_labels.write(path, head, data.transfer, logits)
    logging.info("Wrote %s: the soft labels of %d transfer examples", path, len(data.transfer))


# -- Evaluation and prediction --------------------------------------------------------------------

def run_predictions(runner, kind, dataset):
    """{outputs, per_example_loss, label_ids: numpy arrays over all examples, batch_loss: the
    mean loss of each batch}."""
    parts, batch_losses = [], []
    for batch in runner.predict(predict_fn(kind), dataset):
        parts.append(batch)
        batch_losses.append(float(np.mean(batch["per_example_loss"])))
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    arrays["batch_loss"] = np.array(batch_losses)
    return arrays


def predicted(kind, outputs, threshold=0.5):
    """What the model predicts from its outputs: class indices [N], values [N], or 0/1 [N, L]."""
    if kind == REGRESSION:
        return outputs
    if kind == MULTI_LABEL:
        return (outputs >= threshold).astype(np.int64)
    return np.argmax(outputs, axis=-1)


def metric_names(task):
    """The task's metrics, with accuracy always there for (single-label) classification."""
    names = tuple(task.metric_names)
    if task.kind == CLASSIFICATION and "accuracy" not in names:
        names = ("accuracy",) + names
    return names


def eval_results(task, arrays, global_step, threshold=0.5):
    """The eval_results.txt entries for the predictions over a dev set."""
    kind = task.kind
    values = metrics.compute(metric_names(task), arrays["label_ids"],
                             predicted(kind, arrays["outputs"], threshold),
                             num_classes=None if kind == REGRESSION else task.num_labels)
    results = {f"eval_{name}": value for name, value in values.items()}
    results["eval_loss"] = float(np.mean(arrays["per_example_loss"]))
    results["loss"] = float(np.mean(arrays["batch_loss"]))
    results["global_step"] = global_step
    return results


class Evaluator:
    """Evaluates the runner's current weights on dev sets, remembering the last results."""

    def __init__(self, runner, task, records, batch_size, threshold):
        self.runner, self.task, self.records = runner, task, records
        self.batch_size, self.threshold = batch_size, threshold
        self._results = training.once_per_step(runner, self._evaluate)

    def __call__(self, split):
        return self._results(split)

    def _evaluate(self, split):
        dataset = self.records.dataset("eval", split, self.batch_size)
        arrays = run_predictions(self.runner, self.task.kind, dataset)
        return eval_results(self.task, arrays, int(self.runner.global_step.numpy()),
                            self.threshold)


def write_eval_results(output_dir, evaluator, splits):
    """eval_results.txt for the main dev set, eval_results_<suffix>.txt for the others."""
    for split in splits:
        logging.info("***** Eval results (%s) *****", split)
        name = f"eval_results{classifier_data.set_suffix(split, splits)}.txt"
        training.write_results(os.path.join(output_dir, name), evaluator(split))


def write_test_results(path, kind, outputs):
    """One line per example: tab-separated probabilities, or the predicted value (regression)."""
    if kind == REGRESSION:
        lines = [f"{float(value)}\n" for value in outputs]
    else:
        lines = ["\t".join(str(float(p)) for p in row) + "\n" for row in outputs]
    file_io.write_text_atomically(path, "".join(lines))


def predict_test_sets(runner, data, records, batch_size, threshold, output_dir):
    """test_results.tsv and the submission file of each test set."""
    kind = data.kind
    for split, examples in data.test.items():
        outputs = run_predictions(runner, kind, records.dataset("predict", split,
                                                                batch_size))["outputs"]
        if len(outputs) != len(examples):
            raise RuntimeError(f"{len(outputs)} predictions for {len(examples)} examples")
        name = f"test_results{classifier_data.set_suffix(split, data.test)}.tsv"
        write_test_results(os.path.join(output_dir, name), kind, outputs)
        submission = os.path.join(output_dir, data.task.submission_file(split))
        data.task.write_submission(submission, examples,
                                   list(predicted(kind, outputs, threshold)))
        logging.info("Wrote %s and %s (%d examples)", name, submission, len(examples))


# -- The best checkpoint --------------------------------------------------------------------------

def train_callbacks(eval_every_steps, output_dir, runner, evaluator, data, info=None):
    """[the --eval_every_steps callback on the main dev set, keeping the best checkpoint by the
    task's main metric], or [] when it is off (0). `info`: what task.json records, kept beside
    the best checkpoint with its label list."""
    if not eval_every_steps:
        return []
    labels = data.task.labels
    files = {} if labels is None else {LABEL_LIST_FILE: label_list_text(labels)}
    if info is not None:
        files[TASK_FILE] = task_file_text(info)
    best = training.BestCheckpoint(runner, os.path.join(output_dir, BEST_DIR),
                                   f"eval_{data.task.main_metric}", files)
    split = next(iter(data.dev))
    return [training.eval_callback(lambda: evaluator(split), best, eval_every_steps, output_dir)]


# -- Training -------------------------------------------------------------------------------------

def train(runner, fine_tuning, data, records, distillation, callbacks, threshold, output_dir):
    """Fine-tunes on the training set, or (a student) distils on the transfer set.

    `fine_tuning`: common_flags.FineTuning; `threshold`: --multi_label_threshold, for the
    student's agreement with the teacher."""
    config = fine_tuning.config
    logging.info("***** Running %s *****  %d examples, batch size %d, %d steps (%d warm-up)",
                 "distillation" if data.soft else "training", len(data.train),
                 config.train_batch_size, config.num_train_steps, fine_tuning.num_warmup_steps)
    mode = "distill" if data.soft else "train"
    if data.soft:
        fn = distillation_loss_fn(data.kind, distillation.temperature,
                                  distillation.gold_label_weight)
        agreement = AgreementLog(runner, data.kind, threshold, records, config.train_batch_size,
                                 len(data.train), output_dir)
        if tf.train.latest_checkpoint(output_dir) is None:
            agreement.measure_start(config.init_checkpoint)
    else:
        fn = loss_fn(data.kind)

    def dataset_fn(input_context=None):
        return records.dataset(mode, "train", config.train_batch_size, is_training=True,
                               input_context=input_context)

    runner.train(config, fn, dataset_fn, fine_tuning.optimizer, callbacks)
    if data.soft:
        agreement.write()


# -- A whole run ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """What a run does and where, beyond the model and its tokenization: run_classifier.py's flags
    as plain values (common_flags.classifier_settings_from_flags)."""
    modes: Modes
    distillation: Distillation
    task: TaskFlags
    output_dir: str
    data_dir: Optional[str] = None
    transfer_file: Optional[str] = None
    init_checkpoint: Optional[str] = None
    eval_batch_size: int = 8
    predict_batch_size: int = 8
    multi_label_threshold: float = 0.5


def run(settings, features, make_runner, fine_tuning_fn):
    """Trains, evaluates, predicts and labels a transfer set as `settings.modes` ask, writing the
    outputs to settings.output_dir (which exists).

    `features`: classifier_features.FeatureSettings (the model's vocabulary, casing, sequence
    length); `make_runner(num_labels)` -> a training.Runner whose model maps a batch of features
    to logits [B, num_labels]; `fine_tuning_fn(num_train_examples)` -> common_flags.FineTuning
    (called with --do_train only). Bad input fails before anything is written."""
    s, modes = settings, settings.modes
    has_checkpoint = tf.train.latest_checkpoint(s.output_dir) is not None
    if not (modes.do_train or has_checkpoint or s.init_checkpoint):
        raise InputError(f"nothing to evaluate: no checkpoint in --output_dir={s.output_dir} "
                         "and no --init_checkpoint")
    data = load_task_data(s.task, modes, s.distillation, s.data_dir, s.transfer_file,
                          () if modes.do_train and not has_checkpoint
                          else model_directories(s.output_dir, s.init_checkpoint))
    fine_tuning = fine_tuning_fn(len(data.train)) if modes.do_train else None
    check_labels_match(data.task, s.output_dir, has_checkpoint)
    records = build_records(data, features, s.output_dir, example_sets(
        data, s.data_dir, s.distillation.soft_labels_file, s.transfer_file))
    runner = make_runner(data.task.num_labels)
    evaluator = Evaluator(runner, data.task, records, s.eval_batch_size, s.multi_label_threshold)
    if modes.do_train:
        info = task_info(data, features, s.multi_label_threshold)
        write_task_file(s.output_dir, info)
        train(runner, fine_tuning, data, records, s.distillation,
              train_callbacks(modes.eval_every_steps, s.output_dir, runner, evaluator, data, info),
              s.multi_label_threshold, s.output_dir)
    else:
        runner.restore_for_evaluation(s.init_checkpoint)
    if modes.do_eval:
        write_eval_results(s.output_dir, evaluator, data.dev)
    if modes.do_predict:
        predict_test_sets(runner, data, records, s.predict_batch_size, s.multi_label_threshold,
                          s.output_dir)
    if modes.do_label_transfer:
        label_transfer_set(runner, data, records, s.predict_batch_size, s.output_dir,
                           s.init_checkpoint, s.transfer_file)
