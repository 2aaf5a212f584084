r"""Fine-tunes BERT for token classification: named entities (CoNLL-2003), chunks, parts of speech.

The original BERT never shipped a tagging script; its README says how to do it, and this is that
recipe in the style of run_classifier.py, on the shared runner (training.py: any tf.distribute
strategy, bfloat16, gradient accumulation, resume). CoNLL-2003 NER as distributed:

  python run_ner.py \
    --do_train=true \
    --do_eval=true \
    --do_predict=true \
    --data_dir=$CONLL_DIR \
    --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
    --do_lower_case=false \
    --max_seq_length=128 \
    --train_batch_size=32 \
    --learning_rate=5e-5 \
    --num_train_epochs=3.0 \
    --output_dir=/tmp/conll_output/

Data (tagging_data.py): train, dev (or valid) and test files in --data_dir: CoNLL column files
(one word per line, whitespace-separated columns, blank lines between sentences, -DOCSTART-
lines skipped; the word in --word_column, the tag in --tag_column, default the last) or JSON Lines
({"tokens": [...], "tags": [...]}), by extension. Tags in any of IOB1, IOB2 (BIO) and IOBES; the
tag set is the training data's (or --tags), saved as tag_list.txt.

Alignment, as the original README describes: each word is tokenized on its own; its first
WordPiece carries the word's tag and is scored, later pieces are ignored by the loss and the
metrics. Sentences longer than --max_seq_length are split into overlapping windows every
--doc_stride pieces; in training every window is trained on, and each word is predicted from the
window where it has the most context, so every word gets exactly one predicted tag.

Model: BertModel plus `output_weights` [L, H] / `output_bias` [L] (run_classifier's names, here
applied to every token after dropout 0.1; HF BertForTokenClassification's `classifier.*` convert
to them); loss: softmax cross entropy averaged over the scored tokens. Training starts from
--init_checkpoint (bert/* is loaded, the head is new) and resumes from the newest checkpoint in
--output_dir; num_train_steps = int(training windows / train_batch_size * num_train_epochs) (a
window is a sentence unless it is long), of which --warmup_proportion warm up.

Outputs in --output_dir:
  eval_results.txt       (--do_eval) on the dev set: eval_precision, eval_recall, eval_f1 (entity
                         level, exact span and type, as conlleval), eval_<type>_precision /
                         _recall / _f1 / _support per entity type of the tag set,
                         eval_gold_entities / eval_predicted_entities / eval_correct_entities,
                         eval_accuracy (per word), eval_loss (mean over words), global_step.
                         Tags that are not chunk tags (O, B-/I-/E-/S-<type>), say parts of
                         speech, give accuracy and loss only.
  dev_predictions.txt    (--do_eval) the dev set word by word: `word gold predicted`,
                         space-separated, a blank line after each sentence, in input order.
  test_predictions.txt   (--do_predict) the test set in the same layout (`word predicted` when
                         the test file has no tags).
  test_results.txt       (--do_predict, a test file with tags) its metrics, as eval_results.txt
                         with the prefix test_.
  tag_list.txt           the tags in the model's output order, one per line; later runs (eval,
                         predict, resume) read the tags from it.
  train.tf_record, eval.tf_record, predict.tf_record   the windows, built once and reused while
                         the file, the columns, the vocabulary, --do_lower_case,
                         --max_seq_length, --doc_stride and the tags are the same
                         (tagging_features.py).
  best/                  (--eval_every_steps) the best checkpoint so far by dev entity F1 (token
                         accuracy for other tags), as in run_classifier.py: model.ckpt-<step>,
                         eval_results.txt and tag_list.txt; evaluations go to TensorBoard under
                         <output_dir>/eval.

Bad input fails before training with one `ERROR:` line naming the file and line: a line with
another number of columns than the file's first, a dev or test tag outside the tag set, an empty
file, a missing file. Everything written is written atomically.
"""
import dataclasses
import os
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf
from absl import flags, logging

import checkpoints
import common_flags
from errors import InputError
import file_io
import metrics
import modeling
import tagging_data
import tagging_features
import training

FLAGS = flags.FLAGS

common_flags.DEFINE_string("data_dir", None,
                           "The input data dir: train, dev (or valid) and test files, e.g. "
                           "CoNLL-2003's train.txt, valid.txt and test.txt, or .jsonl files.")
common_flags.define_model_flags(max_seq_length=128)
common_flags.define_runner_flags(save_checkpoints_steps=1000)
common_flags.define_train_flags(train_batch_size=32, eval_batch_size=8, learning_rate=5e-5)
common_flags.define_epoch_flags()
common_flags.DEFINE_bool("do_predict", False,
                         "Whether to run the model in inference mode on the test set.")
common_flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
common_flags.DEFINE_integer("doc_stride", 64,
                            "A sentence longer than --max_seq_length is split into windows that "
                            "start this many WordPieces apart.")
common_flags.DEFINE_integer("word_column", 0,
                            "Column files: the 0-based column of the word (negative: from the "
                            "end).")
common_flags.DEFINE_integer("tag_column", -1,
                            "Column files: the 0-based column of the tag (negative: from the "
                            "end; -1, the last, is CoNLL-2003's entity column; 1 its part of "
                            "speech, 2 its chunk).")
common_flags.DEFINE_string("tags", None,
                           "The tag set, comma-separated, in output order (default: the tags of "
                           "the training file, O first; saved as tag_list.txt). Needed when a "
                           "dev or test file has tags the training file lacks.")
common_flags.DEFINE_integer("eval_every_steps", 0,
                            "With --do_train: evaluate on the dev set every this many steps (and "
                            "at the end) and keep the best checkpoint by entity F1 (token "
                            "accuracy for other tags) in <output_dir>/best/. 0 = off.")

BEST_DIR = "best"
CACHES = {"train": "train.tf_record", "dev": "eval.tf_record", "test": "predict.tf_record"}


@dataclasses.dataclass(frozen=True)
class Modes:
    """What the run does: --do_train, --do_eval, --do_predict, --eval_every_steps (0 = off)."""
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    eval_every_steps: int = 0

    @property
    def splits(self):
        """The files the run reads."""
        return tuple(split for split, needed in (
            ("train", self.do_train), ("dev", self.do_eval or self.eval_every_steps),
            ("test", self.do_predict)) if needed)


def check_flags(modes, paths, max_seq_length, doc_stride):
    """The flag combinations the script refuses; `paths`: {flag name: value} for --vocab_file,
    --bert_config_file, --output_dir and --data_dir."""
    if not (modes.do_train or modes.do_eval or modes.do_predict):
        raise InputError("At least one of `do_train`, `do_eval` or `do_predict' must be True.")
    for name, value in paths.items():
        if not value:
            raise InputError(f"--{name} is required")
    if modes.eval_every_steps < 0 or (modes.eval_every_steps and not modes.do_train):
        raise InputError(f"--eval_every_steps={modes.eval_every_steps} needs --do_train and must "
                         "be at least 0")
    if max_seq_length < 3:
        raise InputError(f"--max_seq_length={max_seq_length} leaves no room for a word between "
                         "[CLS] and [SEP]")
    if doc_stride < 1:
        raise InputError(f"--doc_stride={doc_stride} must be at least 1")


# -- Data and tags --------------------------------------------------------------------------------

def settle_tags(tags_flag, files, model_dirs):
    """The tag set: --tags, else tag_list.txt in `model_dirs` (the model continued or evaluated;
    () for a fresh training run), else the training file's. Every file's tags must be in it."""
    tags = [t.strip() for t in tags_flag.split(",") if t.strip()] if tags_flag else None
    if tags is None:
        tags = tagging_data.read_tag_list(*model_dirs)
    if tags is None and "train" in files:
        tags = tagging_data.tag_list(files["train"].sentences)
    if not tags:
        raise InputError("the tags of the model are not known: train first in this "
                         "--output_dir, or pass --tags")
    if len(set(tags)) != len(tags):
        raise InputError(f"--tags={tags_flag}: a tag is named twice")
    for tagged in files.values():
        tagging_data.check_tags(tagged, tags)
    return tags


def check_tags_match(tags, output_dir, has_checkpoint, is_chief=True):
    """Saves tag_list.txt (the chief); a model already trained with other tags is an error."""
    saved = tagging_data.read_tag_list(output_dir)
    if saved is not None and saved != tags:
        if has_checkpoint:
            raise InputError(f"the tags {tags} differ from those of the model in --output_dir="
                             f"{output_dir} ({tagging_data.TAG_LIST_FILE}: {saved}); use another "
                             "--output_dir")
        logging.warning("Replacing %s (%s): no checkpoint uses it", tagging_data.TAG_LIST_FILE,
                        saved)
    if saved != tags and is_chief:
        file_io.write_text_atomically(os.path.join(output_dir, tagging_data.TAG_LIST_FILE),
                                      tagging_data.tag_list_text(tags))


def build_caches(files, tags, settings, output_dir, wait_seconds=None):
    """{split: (cache path, windows' stats)} for each file read, built or reused (or, with
    `wait_seconds`, built by the chief: tagging_features.cached_features)."""
    caches = {}
    for split, tagged in files.items():
        path = os.path.join(output_dir, CACHES[split])
        caches[split] = (path, tagging_features.cached_features(
            path, tagged, tags, settings, split == "train", wait_seconds))
    return caches


# -- Model, loss and predictions ------------------------------------------------------------------

def scored(features):
    """1 where a position is scored (its word_index is a word's), else 0: [B, S]."""
    return tf.cast(features["word_index"] >= 0, tf.float32)


def loss_fn(model, features, training):
    loss, _ = modeling.token_classification_loss(model(features, training),
                                                 features["label_ids"], scored(features))
    return loss


def predict_fn(model, features):
    logits = model(features, False)
    _, per_token = modeling.token_classification_loss(logits, features["label_ids"],
                                                      scored(features))
    return {"predicted": tf.argmax(logits, axis=-1, output_type=tf.int32),
            "per_token_loss": per_token, "word_index": features["word_index"],
            "sentence_index": features["sentence_index"]}


@dataclasses.dataclass
class Predictions:
    """The tags predicted for every word of a file, and the mean loss over its words."""
    tags: list          # one list of tags per sentence
    loss: float
    global_step: int


def predict_file(runner, tagged, tags, cache, max_seq_length, batch_size):
    """Runs the model over a file's windows and maps the predictions back to its words."""
    dataset = tagging_features.dataset(cache, max_seq_length, batch_size)
    parts = list(runner.predict(predict_fn, dataset))
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    ids = tagging_data.word_predictions([len(s.words) for s in tagged.sentences],
                                        arrays["sentence_index"], arrays["word_index"],
                                        arrays["predicted"])
    return Predictions([[tags[i] for i in sentence] for sentence in ids],
                       float(np.sum(arrays["per_token_loss"]) / tagged.num_words),
                       int(runner.global_step.numpy()))


def results(tagged, predictions, tags, prefix):
    """The metrics of `predictions` against the gold tags of `tagged`, keys prefixed."""
    values = metrics.tagging_metrics([s.tags for s in tagged.sentences], predictions.tags, tags)
    values["loss"] = predictions.loss
    out = {f"{prefix}{name}": value for name, value in values.items()}
    out["global_step"] = predictions.global_step
    return out


class Evaluator:
    """Predicts the dev file with the runner's current weights, once per step."""

    def __init__(self, runner, tags, dev, cache, max_seq_length, batch_size):
        self.tags, self.dev = tags, dev
        self.predictions = training.once_per_step(runner, lambda _: predict_file(
            runner, dev, tags, cache, max_seq_length, batch_size))

    def results(self):
        return results(self.dev, self.predictions("dev"), self.tags, DEV_OUTPUTS.prefix)


class Outputs(NamedTuple):
    """The files written for one set: per-word predictions, and metrics (keys prefixed)."""
    predictions_file: str
    results_file: str
    prefix: str


DEV_OUTPUTS = Outputs("dev_predictions.txt", "eval_results.txt", "eval_")
TEST_OUTPUTS = Outputs("test_predictions.txt", "test_results.txt", "test_")


def write_outputs(output_dir, tagged, predictions, tags, outputs):
    """The predictions file, and the results file when `tagged` has gold tags (the chief's
    job: call it on the chief only)."""
    file_io.write_text_atomically(os.path.join(output_dir, outputs.predictions_file),
                                  tagging_data.predictions_text(tagged.sentences,
                                                                predictions.tags))
    logging.info("Wrote %s (%d sentences)", outputs.predictions_file, len(tagged.sentences))
    if tagged.labelled:
        logging.info("***** %s *****", outputs.results_file)
        training.write_results(os.path.join(output_dir, outputs.results_file),
                               results(tagged, predictions, tags, outputs.prefix))


# -- Training -------------------------------------------------------------------------------------

def train_callbacks(eval_every_steps, output_dir, runner, evaluator):
    """[the --eval_every_steps callback keeping the best checkpoint], or [] when it is off."""
    if not eval_every_steps:
        return []
    best = training.BestCheckpoint(
        runner, os.path.join(output_dir, BEST_DIR),
        f"eval_{metrics.tagging_main_metric(evaluator.tags)}",
        {tagging_data.TAG_LIST_FILE: tagging_data.tag_list_text(evaluator.tags)})
    return [training.eval_callback(evaluator.results, best, eval_every_steps, output_dir)]


def train(runner, fine_tuning, cache, max_seq_length, callbacks):
    """Fine-tunes on the training windows of `cache` (path, stats)."""
    config = fine_tuning.config
    path, stats = cache
    logging.info("***** Running training *****  %d sentences (%d windows), batch size %d, %d "
                 "steps (%d warm-up)", stats["sentences"], stats["windows"],
                 config.train_batch_size, config.num_train_steps, fine_tuning.num_warmup_steps)

    def dataset_fn(input_context=None):
        return tagging_features.dataset(path, max_seq_length, config.train_batch_size,
                                        is_training=True, input_context=input_context)

    runner.train(config, loss_fn, dataset_fn, fine_tuning.optimizer, callbacks)


@dataclasses.dataclass(frozen=True)
class Run:
    """What main() settled before building the model."""
    files: dict                       # {split: tagging_data.TaggedFile}
    tags: list
    caches: dict                      # {split: (path, stats)}
    fine_tuning: Optional[common_flags.FineTuning]


def prepare(f, modes, is_chief=True):
    """Reads the files, settles the tags and builds the caches (the chief; the other workers of a
    multi-worker job wait for its caches): bad data fails here, before any model is built."""
    has_checkpoint = tf.train.latest_checkpoint(f.output_dir) is not None
    if not (modes.do_train or has_checkpoint or f.init_checkpoint):
        raise InputError(f"nothing to evaluate: no checkpoint in --output_dir={f.output_dir} "
                         "and no --init_checkpoint")
    columns = tagging_data.Columns(f.word_column, f.tag_column)
    files = {split: tagging_data.read_split(f.data_dir, split, columns) for split in modes.splits}
    # The model continued or evaluated keeps its tags in its directory; a fresh run has none.
    tags = settle_tags(f.tags, files, () if modes.do_train and not has_checkpoint
                       else (f.output_dir, checkpoints.directory_of(f.init_checkpoint)))
    check_tags_match(tags, f.output_dir, has_checkpoint, is_chief)
    settings = tagging_features.FeatureSettings(f.vocab_file, f.do_lower_case, f.max_seq_length,
                                                f.doc_stride)
    caches = build_caches(files, tags, settings, f.output_dir,
                          common_flags.cache_wait_from_flags(f, is_chief))
    fine_tuning = (common_flags.fine_tuning_from_flags(f, caches["train"][1]["windows"])
                   if modes.do_train else None)
    return Run(files, tags, caches, fine_tuning)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    modes = Modes(f.do_train, f.do_eval, f.do_predict, f.eval_every_steps)
    check_flags(modes, dict(vocab_file=f.vocab_file, bert_config_file=f.bert_config_file,
                            output_dir=f.output_dir, data_dir=f.data_dir),
                f.max_seq_length, f.doc_stride)
    strategy = common_flags.strategy_from_flags(f)
    common_flags.seed_from_flags(f)
    chief = training.is_chief(strategy)  # the other workers of a multi-worker job write nothing
    bert_config = common_flags.start_fine_tuning(f, chief)
    run = prepare(f, modes, chief)
    compute_dtype = common_flags.compute_dtype_from_flags(f)
    runner = training.Runner(
        strategy,
        lambda: modeling.BertTokenClassifier(bert_config, len(run.tags), compute_dtype,
                                             f.use_tpu,
                                             gradient_checkpointing=f.gradient_checkpointing),
        f.output_dir)
    evaluator = (Evaluator(runner, run.tags, run.files["dev"], run.caches["dev"][0],
                           f.max_seq_length, f.eval_batch_size) if "dev" in run.files else None)
    if modes.do_train:
        train(runner, run.fine_tuning, run.caches["train"], f.max_seq_length, train_callbacks(
            f.eval_every_steps, f.output_dir, runner, evaluator))
    else:
        runner.restore_for_evaluation(f.init_checkpoint)
    # Every worker evaluates and predicts (collectives need them all), the chief writes.
    if modes.do_eval:
        predictions = evaluator.predictions("dev")
        if chief:
            write_outputs(f.output_dir, run.files["dev"], predictions, run.tags, DEV_OUTPUTS)
    if modes.do_predict:
        predictions = predict_file(runner, run.files["test"], run.tags, run.caches["test"][0],
                                   f.max_seq_length, f.predict_batch_size)
        if chief:
            write_outputs(f.output_dir, run.files["test"], predictions, run.tags, TEST_OUTPUTS)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    flags.mark_flag_as_required("data_dir")
    common_flags.run(main)
