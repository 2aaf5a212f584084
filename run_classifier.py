r"""Fine-tunes BERT for sentence (pair) classification or regression: the original run_classifier.py.

The GLUE tasks (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI, AX), XNLI, and a generic
task for your own TSV/CSV/JSON files (classifier_data.py reads them), on the shared runner
(training.py: any tf.distribute strategy, bfloat16, gradient accumulation, resume). The command
line of the original README runs unchanged:

  python run_classifier.py \
    --task_name=MRPC \
    --do_train=true \
    --do_eval=true \
    --data_dir=$GLUE_DIR/MRPC \
    --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
    --max_seq_length=128 \
    --train_batch_size=32 \
    --learning_rate=2e-5 \
    --num_train_epochs=3.0 \
    --output_dir=/tmp/mrpc_output/

Model: BertModel plus `output_weights` [num_labels, H] / `output_bias` over the pooled output
(dropout 0.1 in training), the original names; loss: softmax cross entropy, or mean squared error
for regression (STS-B; one output), or sigmoid cross entropy for multi-label tasks. Training starts
from --init_checkpoint (bert/* is loaded, cls/* is left unused, the classifier is new) and resumes
from the newest checkpoint in --output_dir; num_train_steps = int(train examples /
train_batch_size * num_train_epochs), of which --warmup_proportion warm up, as the original.

Outputs in --output_dir:
  eval_results.txt       (--do_eval) eval_accuracy, eval_loss, global_step, loss and the task's
                         metrics as eval_<name> (eval_f1 for MRPC/QQP, eval_mcc for CoLA,
                         eval_pearson / eval_spearman and no accuracy for STS-B, eval_f1_micro /
                         eval_exact_match for multi-label). eval_loss is the mean over examples,
                         loss the mean over batches (as Estimator reported them).
                         MNLI: eval_results.txt is dev_matched, eval_results_mismatched.txt
                         dev_mismatched, with the same keys.
  test_results.tsv       (--do_predict) one line per test example, in file order: the class
                         probabilities, tab-separated (sigmoid probabilities for multi-label;
                         the predicted value for regression). MNLI: also
                         test_results_mismatched.tsv.
  <submission file>      (--do_predict) the GLUE submission file of each test set, e.g. MRPC.tsv,
                         MNLI-m.tsv and MNLI-mm.tsv ("index<TAB>prediction"); test_predictions.tsv
                         for the generic task.
  label_list.txt         the class names in the model's output order, one per line; later runs
                         (eval, predict, resume) read the labels from it.
  train.tf_record, eval.tf_record, predict.tf_record (+ _mismatched for MNLI)
                         the features, built once and reused (see "Feature caches").
  best/                  (--eval_every_steps) the best checkpoint so far (see below).
  soft_labels.jsonl      (--do_label_transfer) the model's logits on the transfer set, for
                         distilling a student (see "Distillation"; soft_labels.py: the format).
  distillation_results.txt  (--teacher_soft_labels) teacher_agreement, the share of transfer
                         examples where student and teacher predict the same (for regression
                         teacher_mse), after training and, as teacher_agreement_at_start, before.

New flags: the generic task's --text_a_column, --text_b_column, --label_column, --index_column,
--file_format, --has_header, --labels, --multi_label, --label_separator, --regression;
--multi_label_threshold; --xnli_language; --eval_every_steps; --do_label_transfer,
--transfer_file, --teacher_soft_labels, --distill_temperature, --gold_label_weight.

Evaluation during training: --eval_every_steps=N (0 = off) evaluates on the dev set (MNLI:
dev_matched) after every N steps and after the last step. When the task's main metric (the first
of its metrics: accuracy, f1, mcc, pearson, f1_micro, ...; higher is better) beats the best so far,
<output_dir>/best/ gets the model's weights and global_step as model.ckpt-<step> (no optimizer
slots: it is for evaluation, prediction or --init_checkpoint, not for resuming), its `checkpoint`
state file, eval_results.txt (the keys of the main eval_results.txt) and label_list.txt; the
previous best is deleted. A resumed run continues from the best recorded there. Each evaluation
also goes to TensorBoard under <output_dir>/eval. --do_eval and --do_predict after training use
the final weights, as the original; to predict with the best ones run
`--do_predict --init_checkpoint=<output_dir>/best --output_dir=<another directory>`.

Distillation (Turc et al., 2019, "Well-Read Students Learn Better"): a compact pretrained
student learns the output distribution of a larger fine-tuned teacher on a transfer set of
unlabelled examples. Three runs, each with its own model's --vocab_file and --bert_config_file:
  1. fine-tune the teacher as usual (--do_train);
  2. the teacher pass, `--do_label_transfer --transfer_file=a.tsv[,b.tsv...]` with the teacher
     in --output_dir (or --init_checkpoint): the transfer files are laid out as the task's
     training file (for the generic task: its columns and file formats), their labels optional;
     --data_dir is not needed. It writes <output_dir>/soft_labels.jsonl: every example's guid
     (transfer-<n>; transfer<k>-<n> with several files), texts, gold label (or null) and logits;
  3. the student pass, `--do_train --teacher_soft_labels=<teacher dir>/soft_labels.jsonl` with
     the student's --init_checkpoint: it trains on the examples of that file (not on the task's
     training file; epochs count transfer examples), tokenized with the student's own
     vocabulary, against the teacher's outputs: softmax cross entropy to the teacher's
     distribution at --distill_temperature T (both logits divided by T, the loss times T^2;
     sigmoid for multi-label), the squared error to the teacher's value for regression. With
     --gold_label_weight=w, an example that has a gold label gets (1 - w) x that loss + w x the
     usual loss on its label. Both default to the paper's setting (T = 1, w = 0). The
     records are written in a fixed random order (distill.tf_record). --do_eval and --do_predict
     work as for any classifier; distillation_results.txt says how far the student follows the
     teacher on the first 10,000 transfer examples.
A soft-label file whose example count differs from its header's, or whose classes are not the
task's (a different order is fine: the logits are reordered by class name), or which comes from
a regression teacher for a classification student, is an error naming the file.

Feature caches: train.tf_record etc. are written under a temporary name and renamed, with a
fingerprint <name>.json next to each: a sha256 of the examples read (guids, texts, labels, so any
change of the input file or of the column options shows), the vocabulary file's sha256,
--do_lower_case, --max_seq_length, the label list and the kind of task. A cache whose fingerprint
differs is rebuilt. Sequences longer than --max_seq_length are truncated as the original
(tokenization.encode_pair) and counted: one warning per file. classifier_features.py writes and
checks them.

Evaluation and prediction keep every example: the last batch may be smaller (the original padded
with fake examples for TPUs). On TPU, TPUStrategy runs that last, smaller batch through its
dynamic padder (tf.distribute.RunOptions.experimental_enable_dynamic_batch_size, on by default),
so no example is dropped or duplicated.

Bad input fails before training with a message naming the file and line (classifier_data.DataError
or FileNotFoundError), printed as one `ERROR:` line (common_flags.run): a row with the wrong number
of columns, an unknown label in a dev set, an empty file, a missing file for the requested mode.
Everything written (results, submissions,
caches, checkpoints) is written atomically.
"""

import dataclasses
import functools
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import flags, logging

import checkpoints
import classifier_data
import classifier_features
import common_flags
from errors import InputError
import file_io
import input_pipeline
import metrics
import modeling
import soft_labels
import training

FLAGS = flags.FLAGS

# The original flags, with their defaults.
common_flags.DEFINE_string("data_dir", None,
                           "The input data dir. Should contain the .tsv files (or other data "
                           "files) for the task.")
common_flags.DEFINE_string("task_name", None,
                           "The name of the task to train: " + ", ".join(classifier_data.TASK_NAMES)
                           + " (case-insensitive).")
common_flags.define_model_flags(max_seq_length=128)
common_flags.define_runner_flags(save_checkpoints_steps=1000)
common_flags.define_train_flags(train_batch_size=32, eval_batch_size=8, learning_rate=5e-5)
common_flags.define_epoch_flags()
common_flags.DEFINE_bool("do_predict", False,
                         "Whether to run the model in inference mode on the test set.")
common_flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
# New: the generic task (classifier_data.GenericTask); None = the task's default.
common_flags.DEFINE_string("text_a_column", None,
                           "generic: column of the first text: a header name / JSON key, or a "
                           "0-based position.")
common_flags.DEFINE_string("text_b_column", None, "generic: column of the second text, if any.")
common_flags.DEFINE_string("label_column", None, "generic: column of the label.")
common_flags.DEFINE_string("index_column", None,
                           "generic: column of the test file whose values name the rows of the "
                           "submission file (default: 0, 1, ...).")
common_flags.DEFINE_enum("file_format", None, list(classifier_data.FILE_FORMATS),
                         "generic: format of train/dev/test files (default: from the extension).")
common_flags.DEFINE_bool("has_header", None, "generic: whether TSV/CSV files have a header line "
                         "(default true).")
common_flags.DEFINE_string("labels", None,
                           "generic: the class names, comma-separated, in output order (default: "
                           "those of the training file, sorted; saved as label_list.txt).")
common_flags.DEFINE_bool("multi_label", None,
                         "generic: each example has a set of labels (sigmoid outputs).")
common_flags.DEFINE_string("label_separator", None,
                           "generic, multi-label: separator between the labels of a cell "
                           "(default ',').")
common_flags.DEFINE_bool("regression", None, "generic: the label is a number (one output, MSE).")
common_flags.DEFINE_float("multi_label_threshold", 0.5,
                          "Multi-label: a label is predicted when its probability is at least "
                          "this.")
common_flags.DEFINE_string("xnli_language", None, "xnli: the language (default zh, as the "
                           "original).")
# New: evaluation during training.
common_flags.DEFINE_integer("eval_every_steps", 0,
                            "With --do_train: evaluate on the dev set every this many steps (and "
                            "at the end) and keep the best checkpoint by the task's main metric "
                            "in <output_dir>/best/. 0 = off.")
# New: distillation (see "Distillation" in the docstring).
common_flags.DEFINE_bool("do_label_transfer", False,
                         "Teacher pass: predict the examples of --transfer_file with the model "
                         "(the newest checkpoint in --output_dir, else --init_checkpoint) and write "
                         "their logits to <output_dir>/soft_labels.jsonl.")
common_flags.DEFINE_string("transfer_file", None,
                           "With --do_label_transfer: the transfer set, one or more "
                           "comma-separated files laid out as the task's training file; labels "
                           "are optional (kept as gold labels where present).")
common_flags.DEFINE_string("teacher_soft_labels", None,
                           "Student pass: with --do_train, train on the examples of this "
                           "soft_labels.jsonl (a teacher's --do_label_transfer) against the "
                           "teacher's outputs, instead of on the training file.")
common_flags.DEFINE_float("distill_temperature", 1.0,
                          "Student pass: temperature of the teacher's and the student's softmax "
                          "(sigmoid); the loss is scaled by its square. 1 = plain cross entropy.")
common_flags.DEFINE_float("gold_label_weight", 0.0,
                          "Student pass: on transfer examples with a gold label the loss is (1 - w)"
                          " x distillation loss + w x the task's loss on the gold label. 0 = "
                          "distil only.")

GENERIC_OPTIONS = ("text_a_column", "text_b_column", "label_column", "index_column", "file_format",
                   "has_header", "labels", "multi_label", "label_separator", "regression")
LABEL_LIST_FILE = "label_list.txt"
SOFT_LABELS_FILE = "soft_labels.jsonl"
DISTILLATION_RESULTS_FILE = "distillation_results.txt"
AGREEMENT_EXAMPLES = 10000   # teacher agreement is measured on this many transfer examples
BEST_DIR = "best"
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
    """The flag combinations the script refuses; `paths`: {flag name: value} for --vocab_file,
    --bert_config_file, --output_dir and --data_dir."""
    if not (modes.do_train or modes.do_eval or modes.do_predict or modes.do_label_transfer):
        raise InputError("At least one of `do_train`, `do_eval`, `do_predict' or "
                         "`do_label_transfer` must be True.")
    reads_data_dir = (modes.do_eval or modes.do_predict or modes.eval_every_steps
                      or (modes.do_train and not distillation.soft_labels_file))
    values = dict(paths, task_name=task_flags.task_name)
    for name in ("task_name", "vocab_file", "bert_config_file", "output_dir") + (
            ("data_dir",) if reads_data_dir else ()):
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

def train_callbacks(eval_every_steps, output_dir, runner, evaluator, data):
    """[the --eval_every_steps callback on the main dev set, keeping the best checkpoint by the
    task's main metric], or [] when it is off (0)."""
    if not eval_every_steps:
        return []
    labels = data.task.labels
    best = training.BestCheckpoint(
        runner, os.path.join(output_dir, BEST_DIR), f"eval_{data.task.main_metric}",
        {} if labels is None else {LABEL_LIST_FILE: label_list_text(labels)})
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


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    modes = Modes(f.do_train, f.do_eval, f.do_predict, f.do_label_transfer, f.eval_every_steps)
    distillation = Distillation(f.teacher_soft_labels, f.distill_temperature, f.gold_label_weight)
    task_flags = TaskFlags(f.task_name, f.xnli_language, {
        name: f[name].value for name in GENERIC_OPTIONS if f[name].value is not None})
    check_flags(modes, distillation, task_flags,
                dict(vocab_file=f.vocab_file, bert_config_file=f.bert_config_file,
                     output_dir=f.output_dir, data_dir=f.data_dir), f.transfer_file)
    bert_config = common_flags.start_fine_tuning(f)
    has_checkpoint = tf.train.latest_checkpoint(f.output_dir) is not None
    if not (modes.do_train or has_checkpoint or f.init_checkpoint):
        raise InputError(f"nothing to evaluate: no checkpoint in --output_dir={f.output_dir} "
                         "and no --init_checkpoint")
    data = load_task_data(task_flags, modes, distillation, f.data_dir, f.transfer_file,
                          () if modes.do_train and not has_checkpoint
                          else model_directories(f.output_dir, f.init_checkpoint))
    fine_tuning = common_flags.fine_tuning_from_flags(f, len(data.train)) if modes.do_train \
        else None
    check_labels_match(data.task, f.output_dir, has_checkpoint)
    settings = classifier_features.FeatureSettings(f.vocab_file, f.do_lower_case, f.max_seq_length)
    records = build_records(data, settings, f.output_dir, example_sets(
        data, f.data_dir, f.teacher_soft_labels, f.transfer_file))
    compute_dtype = common_flags.compute_dtype_from_flags(f)
    runner = training.Runner(
        common_flags.strategy_from_flags(f),
        lambda: modeling.BertClassifier(bert_config, data.task.num_labels, compute_dtype,
                                        f.use_tpu,
                                        gradient_checkpointing=f.gradient_checkpointing),
        f.output_dir)
    evaluator = Evaluator(runner, data.task, records, f.eval_batch_size, f.multi_label_threshold)
    if modes.do_train:
        train(runner, fine_tuning, data, records, distillation,
              train_callbacks(f.eval_every_steps, f.output_dir, runner, evaluator, data),
              f.multi_label_threshold, f.output_dir)
    else:
        runner.restore_for_evaluation(f.init_checkpoint)
    if modes.do_eval:
        write_eval_results(f.output_dir, evaluator, data.dev)
    if modes.do_predict:
        predict_test_sets(runner, data, records, f.predict_batch_size, f.multi_label_threshold,
                          f.output_dir)
    if modes.do_label_transfer:
        label_transfer_set(runner, data, records, f.predict_batch_size, f.output_dir,
                           f.init_checkpoint, f.transfer_file)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("task_name")
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    common_flags.run(main)
