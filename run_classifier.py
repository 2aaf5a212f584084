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
(tokenization.encode_pair) and counted: one warning per file.

Evaluation and prediction keep every example: the last batch may be smaller (the original padded
with fake examples for TPUs). On TPU, TPUStrategy runs that last, smaller batch through its
dynamic padder (tf.distribute.RunOptions.experimental_enable_dynamic_batch_size, on by default),
so no example is dropped or duplicated.

Bad input fails before training with a message naming the file and line (classifier_data.DataError
or FileNotFoundError): a row with the wrong number of columns, an unknown label in a dev set, an
empty file, a missing file for the requested mode. Everything written (results, submissions,
caches, checkpoints) is written atomically.
"""

import dataclasses
import functools
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import checkpoints
import classifier_data
import common_flags
import file_io
import input_pipeline
import metrics
import modeling
import optimization
import records
import soft_labels
import tokenization
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
EVAL_RESULTS_FILE = "eval_results.txt"
SOFT_LABELS_FILE = "soft_labels.jsonl"
DISTILLATION_RESULTS_FILE = "distillation_results.txt"
AGREEMENT_EXAMPLES = 10000   # teacher agreement is measured on this many transfer examples
BEST_DIR = "best"
CLASSIFICATION, REGRESSION, MULTI_LABEL = "classification", "regression", "multi_label"


# -- Flags ----------------------------------------------------------------------------------------

def check_flags(f):
    if not (f.do_train or f.do_eval or f.do_predict or f.do_label_transfer):
        raise ValueError("At least one of `do_train`, `do_eval`, `do_predict' or "
                         "`do_label_transfer` must be True.")
    needed = ("task_name", "vocab_file", "bert_config_file", "output_dir") + (
        ("data_dir",) if f.do_eval or f.do_predict or f.eval_every_steps
        or (f.do_train and not f.teacher_soft_labels) else ())
    for name in needed:
        if not getattr(f, name):
            raise ValueError(f"--{name} is required")
    check_distillation_flags(f)
    if f.eval_every_steps < 0 or (f.eval_every_steps and not f.do_train):
        raise ValueError(f"--eval_every_steps={f.eval_every_steps} needs --do_train and must be "
                         "at least 0")
    given = [name for name in GENERIC_OPTIONS if getattr(f, name) is not None]
    if given and _task_key(f.task_name) != "generic":
        raise ValueError(f"--{', --'.join(given)} only apply to --task_name=generic")
    if f.xnli_language and _task_key(f.task_name) != "xnli":
        raise ValueError("--xnli_language only applies to --task_name=xnli")


def check_distillation_flags(f):
    if bool(f.do_label_transfer) != bool(f.transfer_file):
        raise ValueError("--do_label_transfer and --transfer_file go together")
    if f.teacher_soft_labels and not f.do_train:
        raise ValueError("--teacher_soft_labels is for training a student: it needs --do_train")
    if not f.teacher_soft_labels and (f.distill_temperature != 1.0 or f.gold_label_weight):
        raise ValueError("--distill_temperature and --gold_label_weight need "
                         "--teacher_soft_labels")
    if not f.distill_temperature > 0:
        raise ValueError(f"--distill_temperature={f.distill_temperature} must be positive")
    if not 0 <= f.gold_label_weight <= 1:
        raise ValueError(f"--gold_label_weight={f.gold_label_weight} must be in [0, 1]")


def _task_key(task_name):
    return str(task_name).strip().lower().replace("_", "-")


def task_options(f, labels=None):
    """get_task options from the flags: the generic task's (those given) or XNLI's language."""
    key = _task_key(f.task_name)
    if key == "xnli":
        return {"language": f.xnli_language} if f.xnli_language else {}
    if key != "generic":
        return {}
    options = {name: getattr(f, name) for name in GENERIC_OPTIONS if getattr(f, name) is not None}
    if f.labels is not None:
        options["labels"] = [label.strip() for label in f.labels.split(",") if label.strip()]
    if labels is not None:
        options["labels"] = labels
    return options


def kind_of(task):
    return REGRESSION if task.is_regression else MULTI_LABEL if task.multi_label \
        else CLASSIFICATION


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
        return kind_of(self.task)


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


def write_label_list(directory, labels):
    file_io.write_text_atomically(os.path.join(directory, LABEL_LIST_FILE),
                                   "".join(f"{label}\n" for label in labels))


def saved_labels(f, has_checkpoint):
    """The label list saved with the model this run continues from or evaluates (None if none).

    A training run that starts afresh takes its labels from the flags or the data instead.
    """
    if f.do_train and not has_checkpoint:
        return None
    init_dir = None
    if f.init_checkpoint:
        init_dir = f.init_checkpoint if tf.io.gfile.isdir(f.init_checkpoint) \
            else os.path.dirname(f.init_checkpoint)
    return read_label_list(f.output_dir, init_dir)


def load_task_data(f, has_checkpoint, eval_needed):
    """Reads the example sets the modes need, so that bad data fails before anything runs."""
    key = _task_key(f.task_name)
    saved = saved_labels(f, has_checkpoint) if key == "generic" and f.labels is None else None
    soft = soft_labels.read(f.teacher_soft_labels) if f.teacher_soft_labels else None
    if saved is None and soft is not None and key == "generic" and f.labels is None:
        saved = soft.labels   # the student's classes are the teacher's
    task = classifier_data.get_task(f.task_name, **task_options(f, saved))
    data = TaskData(task)
    if soft is not None:
        data.soft = student_soft_labels(soft, task, f)
        data.train = data.soft.examples
    elif f.do_train:
        data.train = task.train_examples(f.data_dir)
    if f.do_train:
        common_flags.fine_tuning_steps(len(data.train), f.train_batch_size, f.num_train_epochs,
                                       f.warmup_proportion)
    if eval_needed:
        data.dev = task.dev_sets(f.data_dir)
        if not data.dev:
            raise ValueError(f"task {task.name!r} has no dev set to evaluate on")
    if f.do_predict:
        data.test = task.test_sets(f.data_dir)
    if f.do_label_transfer:
        data.transfer = transfer_examples(task, f.transfer_file)
    if not task.is_regression and task.labels is None:
        raise ValueError(f"the labels of task {task.name!r} are not known: train first in this "
                         f"--output_dir, or pass --labels")
    check_labels_match(f, task, has_checkpoint)
    return data


def student_soft_labels(soft, task, f):
    """The teacher's soft labels, checked against the student's task, logits in its label order."""
    path = f.teacher_soft_labels
    if soft.kind != kind_of(task):
        raise soft_labels.SoftLabelsError(
            f"{path}: the teacher is a {soft.kind} model, the student's task {task.name!r} is "
            f"{kind_of(task)}")
    if task.is_regression and f.distill_temperature != 1.0:
        raise ValueError("--distill_temperature applies to classification; regression distils "
                         "with the squared error to the teacher's value")
    if soft.header.get("task") not in (None, task.name):
        logging.warning("%s was written for task %r; the student's task is %r", path,
                        soft.header.get("task"), task.name)
    soft = soft.ordered_as(task.labels, path) if task.labels is not None else soft
    logging.info("%d transfer examples with the soft labels of %s (step %s) from %s",
                 len(soft.examples), soft.header.get("teacher"), soft.header.get("global_step"),
                 path)
    return soft


def transfer_examples(task, transfer_file):
    """The examples of the comma-separated transfer files: guids transfer-<n> for one file,
    transfer<k>-<n> (k = 1, 2, ...) for several."""
    paths = [path.strip() for path in transfer_file.split(",") if path.strip()]
    if not paths:
        raise ValueError(f"--transfer_file={transfer_file!r} names no file")
    examples = []
    for k, path in enumerate(paths, 1):
        examples += task.transfer_examples(path, "transfer" if len(paths) == 1
                                           else f"transfer{k}")
    return examples


def check_labels_match(f, task, has_checkpoint):
    """Saves label_list.txt; a model already trained with other labels is an error."""
    if task.is_regression:
        return
    saved = read_label_list(f.output_dir)
    if saved is not None and saved != task.labels:
        if has_checkpoint:
            raise ValueError(
                f"the labels {task.labels} differ from those of the model in --output_dir="
                f"{f.output_dir} ({LABEL_LIST_FILE}: {saved}); use another --output_dir")
        logging.warning("Replacing %s (%s): no checkpoint uses it", LABEL_LIST_FILE, saved)
    if saved != task.labels:
        write_label_list(f.output_dir, task.labels)


# -- Features: TFRecord caches --------------------------------------------------------------------

CACHE_FORMAT = 1  # bump when the record layout changes


def name_to_features(max_seq_length, kind, num_labels, distillation=False):
    """The cache's record format; also the model's feature keys. Distillation records add the
    teacher's logits and whether the example has a gold label (else label_ids is 0)."""
    s = [max_seq_length]
    label = {CLASSIFICATION: tf.io.FixedLenFeature([], tf.int64),
             REGRESSION: tf.io.FixedLenFeature([], tf.float32),
             MULTI_LABEL: tf.io.FixedLenFeature([num_labels], tf.int64)}[kind]
    spec = {"input_ids": tf.io.FixedLenFeature(s, tf.int64),
            "input_mask": tf.io.FixedLenFeature(s, tf.int64),
            "segment_ids": tf.io.FixedLenFeature(s, tf.int64),
            "label_ids": label}
    if distillation:
        spec["teacher_logits"] = tf.io.FixedLenFeature([num_labels], tf.float32)
        spec["has_label"] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def encode_example(tokenizer, task, example, max_seq_length, teacher_logits=None):
    """(serialized tf.train.Example, whether the text was truncated) for one InputExample.

    An unlabelled (test) example gets label 0, as the original's test features did. With
    `teacher_logits` [L], a distillation record (see name_to_features).
    """
    pair = tokenization.encode_pair(tokenizer, example.text_a, example.text_b, max_seq_length)
    kind = kind_of(task)
    if example.label is None:
        label = [0.0] if kind == REGRESSION else [0] * (task.num_labels if kind == MULTI_LABEL
                                                        else 1)
    else:
        label = task.label_id(example.label)
        label = label if isinstance(label, list) else [label]
    label_feature = (records.float_feature(label) if kind == REGRESSION
                     else records.int64_feature(label))
    features = {"input_ids": records.int64_feature(pair.input_ids),
                "input_mask": records.int64_feature(pair.input_mask),
                "segment_ids": records.int64_feature(pair.segment_ids), "label_ids": label_feature}
    if teacher_logits is not None:
        features["teacher_logits"] = records.float_feature(teacher_logits)
        features["has_label"] = records.int64_feature([int(example.label is not None)])
    record = tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
    return record, pair.truncated


def encode_examples(writer, tokenizer, task, examples, max_seq_length, source, logits=None):
    """Writes the examples' features with `writer`; returns {"truncated": count}.

    `source` (the data set) is named in errors. With `logits` [N, L] (a teacher's), distillation
    records, in a fixed random order (the transfer files may come one after the other, and the
    training pipeline only shuffles within a buffer of 100)."""
    truncated = 0
    order = range(len(examples)) if logits is None else \
        np.random.default_rng(12345).permutation(len(examples))
    for i in order:
        example = examples[i]
        try:
            record, was_truncated = encode_example(tokenizer, task, example, max_seq_length,
                                                   None if logits is None else logits[i])
        except ValueError as e:  # an unknown label
            raise classifier_data.DataError(
                f"{source}, line {example.line} (example {example.guid}): {e}") from None
        writer.write(record)
        truncated += was_truncated
    return {"truncated": truncated}


def examples_sha256(examples):
    """A hash of what the features are made of: each example's guid, texts and label."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.guid, e.text_a, e.text_b, e.label]).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    """What the features depend on besides the examples; the tokenizer is built when needed."""
    vocab_file: str
    do_lower_case: bool
    max_seq_length: int

    @functools.cached_property
    def vocab_sha256(self):
        return input_pipeline.file_sha256(self.vocab_file)

    @functools.cached_property
    def tokenizer(self):
        return tokenization.FullTokenizer(self.vocab_file, self.do_lower_case)


def fingerprint(examples, task, settings, logits=None):
    """Everything a feature cache depends on (see the module docstring)."""
    values = {"format": CACHE_FORMAT, "examples_sha256": examples_sha256(examples),
              "num_examples": len(examples), "vocab_sha256": settings.vocab_sha256,
              "do_lower_case": settings.do_lower_case, "max_seq_length": settings.max_seq_length,
              "kind": kind_of(task), "labels": task.labels}
    if logits is not None:
        values["teacher_logits_sha256"] = hashlib.sha256(
            np.ascontiguousarray(logits, np.float32).tobytes()).hexdigest()
    return values


def cached_features(path, examples, task, settings, source, logits=None):
    """Builds the TFRecord cache `path` unless it is up to date; warns about truncation."""
    statistics, reused = input_pipeline.cached_tfrecord(
        path, fingerprint(examples, task, settings, logits),
        lambda writer: encode_examples(writer, settings.tokenizer, task, examples,
                                       settings.max_seq_length, source, logits))
    logging.info("%s %s: %d examples from %s", "Reused" if reused else "Wrote", path,
                 len(examples), source)
    truncated = statistics.get("truncated", 0)
    if truncated:
        logging.warning("%s: %d of %d examples are longer than --max_seq_length=%d tokens and "
                        "were truncated", source, truncated, len(examples),
                        settings.max_seq_length)
    return path


def set_suffix(split, splits):
    """"" for the first (main) set of a task, else "_" + the split without "dev_"/"test_"."""
    if split == next(iter(splits)):
        return ""
    return "_" + split.split("_", 1)[-1]


def build_caches(f, data, settings):
    """{(mode, split): cache path} for every example set in `data` (mode: train, eval,
    predict: the original's file names; distill: a student's transfer set with the teacher's
    logits; transfer: the set a teacher labels)."""
    caches = {}
    train = {"train": data.train} if data.train is not None else {}
    sets = [("distill", train) if data.soft else ("train", train), ("eval", data.dev),
            ("predict", data.test), ("transfer", {"transfer": data.transfer} if data.transfer
                                      else {})]
    sources = {"distill": f.teacher_soft_labels, "transfer": f.transfer_file}
    for mode, splits in sets:
        for split, examples in splits.items():
            path = os.path.join(f.output_dir, f"{mode}{set_suffix(split, splits)}.tf_record")
            source = sources.get(mode) or f"{f.data_dir} ({data.task.name} {split} set)"
            caches[mode, split] = cached_features(
                path, examples, data.task, settings, source,
                data.soft.logits if mode == "distill" else None)
    return caches


# -- Model, loss and outputs ----------------------------------------------------------------------
#
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

    def __init__(self, runner, f, data, cache, feature_spec):
        self.runner, self.kind, self.threshold = runner, data.kind, f.multi_label_threshold
        self.path = os.path.join(f.output_dir, DISTILLATION_RESULTS_FILE)
        # Batches of the training batch size: they fit, and are faster than --eval_batch_size's.
        batches = -(-AGREEMENT_EXAMPLES // f.train_batch_size)
        self.dataset = input_pipeline.tfrecord_dataset([cache], feature_spec, f.train_batch_size,
                                                       is_training=False).take(batches)
        self.num_examples = min(AGREEMENT_EXAMPLES, len(data.train))
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


def label_transfer_set(runner, data, caches, feature_spec, f):
    """The teacher pass: <output_dir>/soft_labels.jsonl with the model's logits on the transfer
    examples (soft_labels.py has the format)."""
    dataset = input_pipeline.tfrecord_dataset([caches["transfer", "transfer"]], feature_spec,
                                              f.predict_batch_size, is_training=False)
    logits = run_predictions(runner, data.kind, dataset)["logits"]
    if len(logits) != len(data.transfer):
        raise RuntimeError(f"{len(logits)} predictions for {len(data.transfer)} examples")
    teacher = tf.train.latest_checkpoint(f.output_dir) or checkpoints.resolve(f.init_checkpoint)
    head = soft_labels.header(data.task.name, data.kind, data.task.labels, len(data.transfer),
                              teacher, int(runner.global_step.numpy()),
                              [p.strip() for p in f.transfer_file.split(",") if p.strip()])
    path = os.path.join(f.output_dir, SOFT_LABELS_FILE)
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
    if kind_of(task) == CLASSIFICATION and "accuracy" not in names:
        names = ("accuracy",) + names
    return names


def eval_results(task, arrays, global_step, threshold=0.5):
    """The eval_results.txt entries for the predictions over a dev set."""
    kind = kind_of(task)
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

    def __init__(self, runner, task, caches, feature_spec, batch_size, threshold):
        self.runner, self.task, self.caches = runner, task, caches
        self.feature_spec, self.batch_size, self.threshold = feature_spec, batch_size, threshold
        self._last = {}

    def __call__(self, split):
        step = int(self.runner.global_step.numpy())
        if self._last.get(split, (None,))[0] != step:
            dataset = input_pipeline.tfrecord_dataset(
                [self.caches["eval", split]], self.feature_spec, self.batch_size,
                is_training=False)
            arrays = run_predictions(self.runner, kind_of(self.task), dataset)
            self._last[split] = (step, eval_results(self.task, arrays, step, self.threshold))
        return self._last[split][1]


def write_eval_results(output_dir, evaluator, splits):
    """eval_results.txt for the main dev set, eval_results_<suffix>.txt for the others."""
    for split in splits:
        logging.info("***** Eval results (%s) *****", split)
        name = f"eval_results{set_suffix(split, splits)}.txt"
        training.write_results(os.path.join(output_dir, name), evaluator(split))


def write_test_results(path, kind, outputs):
    """One line per example: tab-separated probabilities, or the predicted value (regression)."""
    if kind == REGRESSION:
        lines = [f"{float(value)}\n" for value in outputs]
    else:
        lines = ["\t".join(str(float(p)) for p in row) + "\n" for row in outputs]
    file_io.write_text_atomically(path, "".join(lines))


def predict_test_sets(runner, data, caches, feature_spec, f):
    """test_results.tsv and the submission file of each test set."""
    kind = data.kind
    for split, examples in data.test.items():
        dataset = input_pipeline.tfrecord_dataset([caches["predict", split]], feature_spec,
                                                  f.predict_batch_size, is_training=False)
        outputs = run_predictions(runner, kind, dataset)["outputs"]
        if len(outputs) != len(examples):
            raise RuntimeError(f"{len(outputs)} predictions for {len(examples)} examples")
        name = f"test_results{set_suffix(split, data.test)}.tsv"
        write_test_results(os.path.join(f.output_dir, name), kind, outputs)
        submission = os.path.join(f.output_dir, data.task.submission_file(split))
        data.task.write_submission(submission, examples,
                                   list(predicted(kind, outputs, f.multi_label_threshold)))
        logging.info("Wrote %s and %s (%d examples)", name, submission, len(examples))


# -- The best checkpoint --------------------------------------------------------------------------

class BestCheckpoint:
    """Keeps the weights with the best main metric in <output_dir>/best/ (see the docstring)."""

    def __init__(self, runner, directory, metric, labels):
        self.runner, self.directory, self.key = runner, directory, f"eval_{metric}"
        self.labels = labels
        self.best = self._recorded()

    def _recorded(self):
        """The best value recorded by an earlier run, if its checkpoint is there too."""
        path = os.path.join(self.directory, EVAL_RESULTS_FILE)
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
        training.write_results(os.path.join(self.directory, EVAL_RESULTS_FILE), results)
        if self.labels is not None:
            write_label_list(self.directory, self.labels)
        logging.info("New best %s = %.4f (was %s): %s", self.key, value, self.best, prefix)
        self.best = value
        return True


def train_callbacks(f, runner, evaluator, data):
    """[the --eval_every_steps callback on the main dev set], or [] when it is off."""
    if not f.eval_every_steps:
        return []
    best = BestCheckpoint(runner, os.path.join(f.output_dir, BEST_DIR), data.task.main_metric,
                          data.task.labels)
    return [eval_callback(evaluator, next(iter(data.dev)), best, f.eval_every_steps,
                          f.output_dir)]


def eval_callback(evaluator, split, best, every_steps, output_dir):
    """The StepCallback of --eval_every_steps: evaluate, log to TensorBoard, keep the best."""
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "eval"))

    def fn(step):
        results = evaluator(split)
        with writer.as_default(step=step):
            training.write_scalars({k: v for k, v in results.items() if k != "global_step"})
        writer.flush()
        best.update(results)
    return training.StepCallback(every_steps, fn)


# -- Training -------------------------------------------------------------------------------------

def train(runner, f, data, caches, feature_spec, callbacks):
    """Fine-tunes on the training set, or (--teacher_soft_labels) distils on the transfer set."""
    num_train_steps, num_warmup_steps = common_flags.fine_tuning_steps(
        len(data.train), f.train_batch_size, f.num_train_epochs, f.warmup_proportion)
    logging.info("***** Running %s *****  %d examples, batch size %d, %d steps (%d warm-up)",
                 "distillation" if data.soft else "training", len(data.train), f.train_batch_size,
                 num_train_steps, num_warmup_steps)
    if data.soft:
        train_file = caches["distill", "train"]
        feature_spec = name_to_features(f.max_seq_length, data.kind, data.task.num_labels, True)
        fn = distillation_loss_fn(data.kind, f.distill_temperature, f.gold_label_weight)
        agreement = AgreementLog(runner, f, data, train_file, feature_spec)
        if tf.train.latest_checkpoint(f.output_dir) is None:
            agreement.measure_start(f.init_checkpoint)
    else:
        train_file, fn = caches["train", "train"], loss_fn(data.kind)

    def dataset_fn(input_context=None):
        return input_pipeline.tfrecord_dataset([train_file], feature_spec, f.train_batch_size,
                                               is_training=True, input_context=input_context)

    runner.train(common_flags.train_config_from_flags(f, num_train_steps), fn, dataset_fn,
                 optimization.create_optimizer(f.learning_rate, num_train_steps,
                                               num_warmup_steps, f.optimizer),
                 callbacks)
    if data.soft:
        agreement.write()


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    check_flags(f)
    bert_config = common_flags.start_fine_tuning(f)
    has_checkpoint = tf.train.latest_checkpoint(f.output_dir) is not None
    if not (f.do_train or has_checkpoint or f.init_checkpoint):
        raise ValueError(f"nothing to evaluate: no checkpoint in --output_dir={f.output_dir} "
                         "and no --init_checkpoint")
    data = load_task_data(f, has_checkpoint, eval_needed=f.do_eval or f.eval_every_steps > 0)
    settings = FeatureSettings(f.vocab_file, f.do_lower_case, f.max_seq_length)
    caches = build_caches(f, data, settings)
    feature_spec = name_to_features(f.max_seq_length, data.kind, data.task.num_labels)
    runner = training.Runner(
        common_flags.strategy_from_flags(f),
        lambda: modeling.BertClassifier(bert_config, data.task.num_labels,
                               common_flags.compute_dtype_from_flags(f), f.use_tpu),
        f.output_dir)
    evaluator = Evaluator(runner, data.task, caches, feature_spec, f.eval_batch_size,
                          f.multi_label_threshold)
    if f.do_train:
        train(runner, f, data, caches, feature_spec, train_callbacks(f, runner, evaluator, data))
    else:
        runner.restore_for_evaluation(f.init_checkpoint)
    if f.do_eval:
        write_eval_results(f.output_dir, evaluator, data.dev)
    if f.do_predict:
        predict_test_sets(runner, data, caches, feature_spec, f)
    if f.do_label_transfer:
        label_transfer_set(runner, data, caches, feature_spec, f)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("task_name")
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    app.run(main)
