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

New flags: the generic task's --text_a_column, --text_b_column, --label_column, --index_column,
--file_format, --has_header, --labels, --multi_label, --label_separator, --regression;
--multi_label_threshold; --xnli_language; --eval_every_steps.

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
import metrics
import modeling
import optimization
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

GENERIC_OPTIONS = ("text_a_column", "text_b_column", "label_column", "index_column", "file_format",
                   "has_header", "labels", "multi_label", "label_separator", "regression")
LABEL_LIST_FILE = "label_list.txt"
EVAL_RESULTS_FILE = "eval_results.txt"
BEST_DIR = "best"
CLASSIFICATION, REGRESSION, MULTI_LABEL = "classification", "regression", "multi_label"


# -- Flags ----------------------------------------------------------------------------------------

def check_flags(f):
    if not (f.do_train or f.do_eval or f.do_predict):
        raise ValueError("At least one of `do_train`, `do_eval` or `do_predict' must be True.")
    for name in ("data_dir", "task_name", "vocab_file", "bert_config_file", "output_dir"):
        if not getattr(f, name):
            raise ValueError(f"--{name} is required")
    if f.eval_every_steps < 0 or (f.eval_every_steps and not f.do_train):
        raise ValueError(f"--eval_every_steps={f.eval_every_steps} needs --do_train and must be "
                         "at least 0")
    given = [name for name in GENERIC_OPTIONS if getattr(f, name) is not None]
    if given and _task_key(f.task_name) != "generic":
        raise ValueError(f"--{', --'.join(given)} only apply to --task_name=generic")
    if f.xnli_language and _task_key(f.task_name) != "xnli":
        raise ValueError("--xnli_language only applies to --task_name=xnli")


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
    task = classifier_data.get_task(f.task_name, **task_options(f, saved))
    data = TaskData(task)
    if f.do_train:
        data.train = task.train_examples(f.data_dir)
        common_flags.fine_tuning_steps(len(data.train), f.train_batch_size, f.num_train_epochs, f.warmup_proportion)
    if eval_needed:
        data.dev = task.dev_sets(f.data_dir)
        if not data.dev:
            raise ValueError(f"task {task.name!r} has no dev set to evaluate on")
    if f.do_predict:
        data.test = task.test_sets(f.data_dir)
    if not task.is_regression and task.labels is None:
        raise ValueError(f"the labels of task {task.name!r} are not known: train first in this "
                         f"--output_dir, or pass --labels")
    check_labels_match(f, task, has_checkpoint)
    return data


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


def name_to_features(max_seq_length, kind, num_labels):
    """The cache's record format; also the model's feature keys."""
    s = [max_seq_length]
    label = {CLASSIFICATION: tf.io.FixedLenFeature([], tf.int64),
             REGRESSION: tf.io.FixedLenFeature([], tf.float32),
             MULTI_LABEL: tf.io.FixedLenFeature([num_labels], tf.int64)}[kind]
    return {"input_ids": tf.io.FixedLenFeature(s, tf.int64),
            "input_mask": tf.io.FixedLenFeature(s, tf.int64),
            "segment_ids": tf.io.FixedLenFeature(s, tf.int64),
            "label_ids": label}


def _int64s(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def encode_example(tokenizer, task, example, max_seq_length):
    """(serialized tf.train.Example, whether the text was truncated) for one InputExample.

    An unlabelled (test) example gets label 0, as the original's test features did.
    """
    pair = tokenization.encode_pair(tokenizer, example.text_a, example.text_b, max_seq_length)
    kind = kind_of(task)
    if example.label is None:
        label = [0.0] if kind == REGRESSION else [0] * (task.num_labels if kind == MULTI_LABEL
                                                        else 1)
    else:
        label = task.label_id(example.label)
        label = label if isinstance(label, list) else [label]
    label_feature = (tf.train.Feature(float_list=tf.train.FloatList(value=label))
                     if kind == REGRESSION else _int64s(label))
    features = {"input_ids": _int64s(pair.input_ids), "input_mask": _int64s(pair.input_mask),
                "segment_ids": _int64s(pair.segment_ids), "label_ids": label_feature}
    record = tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
    return record, pair.truncated


def encode_examples(writer, tokenizer, task, examples, max_seq_length, source):
    """Writes the examples' features with `writer`; returns {"truncated": count}.

    `source` (the data set) is named in errors."""
    truncated = 0
    for example in examples:
        try:
            record, was_truncated = encode_example(tokenizer, task, example, max_seq_length)
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
        return training.file_sha256(self.vocab_file)

    @functools.cached_property
    def tokenizer(self):
        return tokenization.FullTokenizer(self.vocab_file, self.do_lower_case)


def fingerprint(examples, task, settings):
    """Everything a feature cache depends on (see the module docstring)."""
    return {"format": CACHE_FORMAT, "examples_sha256": examples_sha256(examples),
            "num_examples": len(examples), "vocab_sha256": settings.vocab_sha256,
            "do_lower_case": settings.do_lower_case, "max_seq_length": settings.max_seq_length,
            "kind": kind_of(task), "labels": task.labels}


def cached_features(path, examples, task, settings, source):
    """Builds the TFRecord cache `path` unless it is up to date; warns about truncation."""
    statistics, reused = training.cached_tfrecord(
        path, fingerprint(examples, task, settings),
        lambda writer: encode_examples(writer, settings.tokenizer, task, examples,
                                       settings.max_seq_length, source))
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


def build_caches(output_dir, data_dir, data, settings):
    """{(mode, split): cache path} for every example set in `data` (mode: train, eval,
    predict: the original's file names)."""
    caches = {}
    sets = [("train", {"train": data.train} if data.train is not None else {}),
            ("eval", data.dev), ("predict", data.test)]
    for mode, splits in sets:
        for split, examples in splits.items():
            path = os.path.join(output_dir, f"{mode}{set_suffix(split, splits)}.tf_record")
            caches[mode, split] = cached_features(path, examples, data.task, settings,
                                                  f"{data_dir} ({data.task.name} {split} set)")
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
    """predict_fn(model, features) for Runner.predict: outputs, per-example loss and labels."""
    def fn(model, features):
        _, per_example, outputs = head_outputs(kind, model(features, False),
                                               features["label_ids"])
        return {"outputs": outputs, "per_example_loss": per_example,
                "label_ids": features["label_ids"]}
    return fn


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
            dataset = training.tfrecord_dataset([self.caches["eval", split]], self.feature_spec,
                                                self.batch_size, is_training=False)
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
        dataset = training.tfrecord_dataset([caches["predict", split]], feature_spec,
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
    num_train_steps, num_warmup_steps = common_flags.fine_tuning_steps(len(data.train), f.train_batch_size,
                                                    f.num_train_epochs, f.warmup_proportion)
    logging.info("***** Running training *****  %d examples, batch size %d, %d steps (%d warm-up)",
                 len(data.train), f.train_batch_size, num_train_steps, num_warmup_steps)
    train_file = caches["train", "train"]

    def dataset_fn(input_context=None):
        return training.tfrecord_dataset([train_file], feature_spec, f.train_batch_size,
                                         is_training=True, input_context=input_context)

    runner.train(common_flags.train_config_from_flags(f, num_train_steps), loss_fn(data.kind),
                 dataset_fn, optimization.create_optimizer(f.learning_rate, num_train_steps,
                                                           num_warmup_steps, f.optimizer),
                 callbacks)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    check_flags(f)
    common_flags.warn_if_case_mismatch(f)
    bert_config = common_flags.bert_config_from_flags(f)
    tf.io.gfile.makedirs(f.output_dir)
    has_checkpoint = tf.train.latest_checkpoint(f.output_dir) is not None
    if not (f.do_train or has_checkpoint or f.init_checkpoint):
        raise ValueError(f"nothing to evaluate: no checkpoint in --output_dir={f.output_dir} "
                         "and no --init_checkpoint")
    data = load_task_data(f, has_checkpoint, eval_needed=f.do_eval or f.eval_every_steps > 0)
    settings = FeatureSettings(f.vocab_file, f.do_lower_case, f.max_seq_length)
    caches = build_caches(f.output_dir, f.data_dir, data, settings)
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
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("data_dir")
    flags.mark_flag_as_required("task_name")
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    app.run(main)
