r"""Fine-tunes BERT for extractive question answering on SQuAD 1.1 / 2.0: the original run_squad.py.

On the shared runner (training.py: any tf.distribute strategy, bfloat16, gradient accumulation,
resume). The original README's command lines run unchanged, for example SQuAD 1.1:

  python run_squad.py \
    --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
    --do_train=True \
    --train_file=$SQUAD_DIR/train-v1.1.json \
    --do_predict=True \
    --predict_file=$SQUAD_DIR/dev-v1.1.json \
    --train_batch_size=12 \
    --learning_rate=3e-5 \
    --num_train_epochs=2.0 \
    --max_seq_length=384 \
    --doc_stride=128 \
    --output_dir=/tmp/squad_base/

and SQuAD 2.0 with --version_2_with_negative=True (then --null_score_diff_threshold, default 0.0,
decides between the null answer and the best span).

Data (squad_data.py, the original algorithm): contexts split on whitespace, answers mapped to
WordPiece positions and tightened to the tokenized answer text, documents longer than a window
split into overlapping windows every --doc_stride tokens, each token scored in the window where it
has the most context, questions cut to --max_query_length tokens. Training answers outside a window
and SQuAD 2.0 impossible questions point at [CLS]. Answers whose offsets do not match their text
are skipped, counted and reported (one warning). num_train_steps = int(training questions /
--train_batch_size * --num_train_epochs), as the original.

Model: BertModel plus `cls/squad/output_weights` [2, H] / `cls/squad/output_bias` [2] (start and end
logits per token); loss: the mean of the start and end cross entropies.

Outputs in --output_dir (--do_predict):
  predictions.json         {question id: answer text} ("" = no answer, SQuAD 2.0)
  nbest_predictions.json   {question id: [{text, probability, start_logit, end_logit}, ...]}
  null_odds.json           (SQuAD 2.0) {question id: null score - best non-null score}
  eval_results.txt         when --predict_file holds answers (a dev set): the official SQuAD
                           metrics, computed here (squad_metrics.py): exact_match and f1 for 1.1;
                           for 2.0 exact, f1, the HasAns_* / NoAns_* breakdown and best_exact /
                           best_f1 with the --null_score_diff_threshold that reaches them
                           (best_*_thresh); plus global_step. Printed too.
  train.tf_record, eval.tf_record (+ eval.tf_record.features.jsonl: what post-processing needs of
                           each window) the features, cached: rebuilt when the input file, the
                           vocabulary, --do_lower_case, --max_seq_length, --doc_stride,
                           --max_query_length or --version_2_with_negative change.
Everything is written atomically (a temporary name, then a rename).
"""
import dataclasses
import functools
import json
import os
import random

import tensorflow as tf
from absl import app, flags, logging

import common_flags
import file_io
import input_pipeline
import modeling
import optimization
import records
import squad_data
import squad_metrics
import tokenization
import training

FLAGS = flags.FLAGS

# The original flags, with their defaults.
common_flags.define_model_flags(max_seq_length=384)
common_flags.define_runner_flags(save_checkpoints_steps=1000)
common_flags.define_train_flags(train_batch_size=32, eval_batch_size=None, learning_rate=5e-5)
common_flags.define_epoch_flags()
common_flags.DEFINE_string("train_file", None,
                           "SQuAD json for training. E.g., train-v1.1.json")
common_flags.DEFINE_string("predict_file", None,
                           "SQuAD json for predictions. E.g., dev-v1.1.json or test-v1.1.json. "
                           "When it holds answers, the official metrics go to eval_results.txt.")
common_flags.DEFINE_integer("doc_stride", 128,
                            "When splitting up a long document into chunks, how much stride to "
                            "take between chunks.")
common_flags.DEFINE_integer("max_query_length", 64,
                            "The maximum number of tokens for the question. Questions longer "
                            "than this will be truncated to this length.")
common_flags.DEFINE_bool("do_predict", False, "Whether to run eval on the dev set.")
common_flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predictions.")
common_flags.DEFINE_integer("n_best_size", 20,
                            "The total number of n-best predictions to generate in the "
                            "nbest_predictions.json output file.")
common_flags.DEFINE_integer("max_answer_length", 30,
                            "The maximum length of an answer that can be generated. This is "
                            "needed because the start and end predictions are not conditioned "
                            "on one another.")
common_flags.DEFINE_bool("verbose_logging", False,
                         "If true, all of the warnings related to data processing will be "
                         "printed.")
common_flags.DEFINE_bool("version_2_with_negative", False,
                         "If true, the SQuAD examples contain some that do not have an answer.")
common_flags.DEFINE_float("null_score_diff_threshold", 0.0,
                          "If null_score - best_non_null is greater than the threshold predict "
                          "null.")

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
NULL_ODDS_FILE = "null_odds.json"
EVAL_RESULTS_FILE = "eval_results.txt"
CACHE_FORMAT = 1  # bump when the record layout or the features file changes


def check_flags(f):
    """The original's flag checks, plus the files each mode needs."""
    if not f.do_train and not f.do_predict:
        raise ValueError("At least one of `do_train` or `do_predict` must be True.")
    for name in ("vocab_file", "bert_config_file", "output_dir"):
        if not getattr(f, name):
            raise ValueError(f"--{name} is required")
    if f.do_train and not f.train_file:
        raise ValueError("If `do_train` is True, then `train_file` must be specified.")
    if f.do_predict and not f.predict_file:
        raise ValueError("If `do_predict` is True, then `predict_file` must be specified.")
    if f.max_seq_length <= f.max_query_length + 3:
        raise ValueError(f"The max_seq_length ({f.max_seq_length}) must be greater than "
                         f"max_query_length ({f.max_query_length}) + 3")
    if f.doc_stride < 1:
        raise ValueError(f"--doc_stride={f.doc_stride} must be at least 1")
    if f.n_best_size < 1 or f.max_answer_length < 1:
        raise ValueError("--n_best_size and --max_answer_length must be at least 1")


# -- Features: TFRecord caches --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    """What the features depend on besides the input file."""
    vocab_file: str
    do_lower_case: bool
    max_seq_length: int
    doc_stride: int
    max_query_length: int
    version_2_with_negative: bool

    @functools.cached_property
    def tokenizer(self):
        return tokenization.FullTokenizer(self.vocab_file, self.do_lower_case)

    def fingerprint(self, input_file, is_training):
        values = dataclasses.asdict(self)
        values.update(format=CACHE_FORMAT, is_training=is_training,
                      vocab_file=input_pipeline.file_sha256(self.vocab_file),
                      input_file=input_pipeline.file_sha256(input_file))
        return values


def name_to_features(max_seq_length, is_training):
    s = [max_seq_length]
    spec = {"unique_ids": tf.io.FixedLenFeature([], tf.int64),
            "input_ids": tf.io.FixedLenFeature(s, tf.int64),
            "input_mask": tf.io.FixedLenFeature(s, tf.int64),
            "segment_ids": tf.io.FixedLenFeature(s, tf.int64)}
    if is_training:
        spec.update(start_positions=tf.io.FixedLenFeature([], tf.int64),
                    end_positions=tf.io.FixedLenFeature([], tf.int64),
                    is_impossible=tf.io.FixedLenFeature([], tf.int64))
    return spec


def serialize(feature, is_training):
    """One window as a tf.train.Example, with the original's feature names."""
    values = {"unique_ids": [feature.unique_id], "input_ids": feature.input_ids,
              "input_mask": feature.input_mask, "segment_ids": feature.segment_ids}
    if is_training:
        values.update(start_positions=[feature.start_position],
                      end_positions=[feature.end_position],
                      is_impossible=[int(feature.is_impossible)])
    return tf.train.Example(features=tf.train.Features(
        feature={k: records.int64_feature(v) for k, v in values.items()})).SerializeToString()


def features_path(records_path):
    return records_path + ".features.jsonl"


def write_window_file(path, features):
    """What post-processing needs of each window (tokens, token_to_orig_map,
    token_is_max_context, ids), one JSON object per line; the token ids live in the records."""
    lines = []
    for x in features:
        lines.append(json.dumps({
            "unique_id": x.unique_id, "example_index": x.example_index,
            "doc_span_index": x.doc_span_index, "tokens": x.tokens,
            "token_to_orig_map": sorted(x.token_to_orig_map.items()),
            "token_is_max_context": sorted(x.token_is_max_context.items())}) + "\n")
    file_io.write_text_atomically(path, "".join(lines))


def read_window_file(path):
    features = []
    with file_io.open_file(path, "rb") as f:
        for line in f:
            d = json.loads(line)
            features.append(squad_data.InputFeatures(
                unique_id=d["unique_id"], example_index=d["example_index"],
                doc_span_index=d["doc_span_index"], tokens=d["tokens"],
                token_to_orig_map={int(k): v for k, v in d["token_to_orig_map"]},
                token_is_max_context={int(k): v for k, v in d["token_is_max_context"]},
                input_ids=[], input_mask=[], segment_ids=[]))
    return features


def cached_features(path, input_file, examples, settings, is_training):
    """Builds (or reuses) the TFRecord cache `path` of `examples`' windows.

    Returns the windows (squad_data.InputFeatures) for prediction, where post-processing needs
    them (read back from the features file when the cache is reused), else None.
    """
    built = []

    def write_records(writer):
        statistics = {}
        # Streamed: SQuAD 1.1's training set makes ~88,000 windows, ~1 GB as Python objects.
        for feature in squad_data.iter_features(
                examples, settings.tokenizer, settings.max_seq_length, settings.doc_stride,
                settings.max_query_length, is_training, statistics):
            writer.write(serialize(feature, is_training))
            if not is_training:  # post-processing needs the windows
                built.append(feature)
        if not is_training:
            write_window_file(features_path(path), built)
        return statistics

    if not is_training and not file_io.isfile(features_path(path)):
        file_io.remove_quietly(path + ".json")  # the records alone are not enough: rebuild
    statistics, reused = input_pipeline.cached_tfrecord(
        path, settings.fingerprint(input_file, is_training), write_records)
    logging.info("%s %s: %s windows of %d questions from %s (%s)",
                 "Reused" if reused else "Wrote", path, statistics.get("features", "?"),
                 len(examples), input_file, statistics)
    if is_training:
        return None
    return read_window_file(features_path(path)) if reused else built


def read_examples(path, is_training, version_2_with_negative):
    examples, statistics = squad_data.read_squad_examples(
        path, is_training, version_2_with_negative, open_fn=file_io.open_file)
    logging.info("%s: %d questions (%s)", path, len(examples), statistics)
    return examples


# -- Model and loss -------------------------------------------------------------------------------

def loss_fn(model, features, training):
    start_logits, end_logits = model(features, training)
    loss, _ = modeling.span_loss(start_logits, end_logits, features["start_positions"],
                                 features["end_positions"])
    return loss


def predict_fn(model, features):
    start_logits, end_logits = model(features, False)
    return {"unique_ids": features["unique_ids"], "start_logits": start_logits,
            "end_logits": end_logits}


# -- Training -------------------------------------------------------------------------------------

def train(runner, f, settings):
    examples = read_examples(f.train_file, True, f.version_2_with_negative)
    # The original shuffles the questions before writing them: the windows of one paragraph
    # would otherwise sit together, and the reader's 100-record shuffle buffer cannot mix them.
    random.Random(12345).shuffle(examples)
    train_file = os.path.join(f.output_dir, "train.tf_record")
    cached_features(train_file, f.train_file, examples, settings, is_training=True)
    num_train_steps, num_warmup_steps = common_flags.fine_tuning_steps(
        len(examples), f.train_batch_size, f.num_train_epochs, f.warmup_proportion)
    logging.info("***** Running training *****  %d questions, batch size %d, %d steps (%d "
                 "warm-up)", len(examples), f.train_batch_size, num_train_steps,
                 num_warmup_steps)
    spec = name_to_features(f.max_seq_length, is_training=True)

    def dataset_fn(input_context=None):
        return input_pipeline.tfrecord_dataset([train_file], spec, f.train_batch_size,
                                               is_training=True, input_context=input_context)

    runner.train(common_flags.train_config_from_flags(f, num_train_steps), loss_fn, dataset_fn,
                 optimization.create_optimizer(f.learning_rate, num_train_steps,
                                               num_warmup_steps, f.optimizer))


# -- Prediction and evaluation --------------------------------------------------------------------

def raw_results(runner, records_path, max_seq_length, batch_size):
    """squad_data.RawResult per window, in file order."""
    dataset = input_pipeline.tfrecord_dataset(
        [records_path], name_to_features(max_seq_length, False), batch_size, is_training=False)
    results = []
    for batch in runner.predict(predict_fn, dataset):
        for unique_id, start, end in zip(batch["unique_ids"], batch["start_logits"],
                                         batch["end_logits"]):
            results.append(squad_data.RawResult(int(unique_id), start, end))
    return results


def write_json(path, value):
    file_io.write_text_atomically(path, json.dumps(value, indent=4) + "\n")


def predict(runner, f, settings, examples):
    """Writes predictions.json, nbest_predictions.json (and null_odds.json) for the predict
    file's `examples`; evaluates when the file has answers."""
    records = os.path.join(f.output_dir, "eval.tf_record")
    features = cached_features(records, f.predict_file, examples, settings, is_training=False)
    logging.info("***** Running predictions *****  %d questions, %d windows, batch size %d",
                 len(examples), len(features), f.predict_batch_size)
    results = raw_results(runner, records, f.max_seq_length, f.predict_batch_size)
    predictions, nbest, null_odds = squad_data.compute_predictions(
        examples, features, results, f.n_best_size, f.max_answer_length, f.do_lower_case,
        f.version_2_with_negative, f.null_score_diff_threshold, f.verbose_logging)
    write_json(os.path.join(f.output_dir, PREDICTIONS_FILE), predictions)
    write_json(os.path.join(f.output_dir, NBEST_FILE), nbest)
    if f.version_2_with_negative:
        write_json(os.path.join(f.output_dir, NULL_ODDS_FILE), null_odds)
    logging.info("Wrote %s and %s%s to %s", PREDICTIONS_FILE, NBEST_FILE,
                 f" and {NULL_ODDS_FILE}" if f.version_2_with_negative else "", f.output_dir)
    evaluate(f, predictions, null_odds, int(runner.global_step.numpy()))


def evaluate(f, predictions, null_odds, global_step):
    """The official metrics into eval_results.txt, when the predict file carries answers."""
    with file_io.open_file(f.predict_file, "rb") as reader:
        dataset = json.loads(reader.read().decode("utf-8"))["data"]
    if not squad_metrics.has_answers(dataset, f.version_2_with_negative):
        logging.info("%s holds no answers: no evaluation", f.predict_file)
        return None
    v2 = f.version_2_with_negative
    results = squad_metrics.evaluate(dataset, predictions, null_odds if v2 else None,
                                     f.null_score_diff_threshold, v2)
    results["global_step"] = global_step
    logging.info("***** Eval results (%s) *****", f.predict_file)
    training.write_results(os.path.join(f.output_dir, EVAL_RESULTS_FILE), results)
    return results


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    check_flags(f)
    bert_config = common_flags.start_fine_tuning(f)
    settings = FeatureSettings(f.vocab_file, f.do_lower_case, f.max_seq_length, f.doc_stride,
                               f.max_query_length, f.version_2_with_negative)
    # Bad prediction data fails before training, not after.
    predict_examples = (read_examples(f.predict_file, False, f.version_2_with_negative)
                        if f.do_predict else None)
    runner = training.Runner(
        common_flags.strategy_from_flags(f),
        lambda: modeling.BertQuestionAnswering(
            bert_config, common_flags.compute_dtype_from_flags(f), f.use_tpu),
        f.output_dir)
    if f.do_train:
        train(runner, f, settings)
    else:
        runner.restore_for_evaluation(f.init_checkpoint)
    if f.do_predict:
        predict(runner, f, settings, predict_examples)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    app.run(main)
