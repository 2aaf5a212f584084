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
                           --max_query_length or --version_2_with_negative change
                           (squad_features.py).
Everything is written atomically (a temporary name, then a rename).
"""
import dataclasses
import json
import os
import random

from absl import flags, logging

import common_flags
from errors import InputError
import file_io
import input_pipeline
import modeling
import squad_data
import squad_features
import squad_metrics
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
TRAIN_RECORDS, PREDICT_RECORDS = "train.tf_record", "eval.tf_record"


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
    """How answers are read off the logits: --n_best_size, --max_answer_length,
    --null_score_diff_threshold (SQuAD 2.0) and --verbose_logging."""
    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
    verbose_logging: bool = False


def check_flags(do_train, do_predict, files, settings, answers):
    """The original's flag checks, plus the files each mode needs. `files`: {flag name: value}
    for --vocab_file, --bert_config_file, --output_dir, --train_file and --predict_file;
    `settings`: squad_features.FeatureSettings; `answers`: AnswerSettings."""
    if not do_train and not do_predict:
        raise InputError("At least one of `do_train` or `do_predict` must be True.")
    for name in ("vocab_file", "bert_config_file", "output_dir"):
        if not files[name]:
            raise InputError(f"--{name} is required")
    if do_train and not files["train_file"]:
        raise InputError("If `do_train` is True, then `train_file` must be specified.")
    if do_predict and not files["predict_file"]:
        raise InputError("If `do_predict` is True, then `predict_file` must be specified.")
    if settings.max_seq_length <= settings.max_query_length + 3:
        raise InputError(f"The max_seq_length ({settings.max_seq_length}) must be greater than "
                         f"max_query_length ({settings.max_query_length}) + 3")
    if settings.doc_stride < 1:
        raise InputError(f"--doc_stride={settings.doc_stride} must be at least 1")
    if answers.n_best_size < 1 or answers.max_answer_length < 1:
        raise InputError("--n_best_size and --max_answer_length must be at least 1")


def read_examples(path, is_training, version_2_with_negative):
    examples, statistics = squad_data.read_squad_examples(
        path, is_training, version_2_with_negative, open_fn=file_io.open_file)
    logging.info("%s: %d questions (%s)", path, len(examples), statistics)
    return examples


def read_training_examples(path, version_2_with_negative):
    """The training questions, shuffled as the original: the windows of one paragraph would
    otherwise sit together, and the reader's 100-record shuffle buffer cannot mix them."""
    examples = read_examples(path, True, version_2_with_negative)
    random.Random(12345).shuffle(examples)
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

def train(runner, fine_tuning, examples, input_file, settings, output_dir, wait_seconds=None):
    """Trains on `examples` (read from `input_file`), through the cache train.tf_record in
    `output_dir` (`wait_seconds`: see squad_features.cached_features). `fine_tuning`:
    common_flags.FineTuning."""
    train_file = os.path.join(output_dir, TRAIN_RECORDS)
    squad_features.cached_features(train_file, input_file, examples, settings, is_training=True,
                                   wait_seconds=wait_seconds)
    config = fine_tuning.config
    logging.info("***** Running training *****  %d questions, batch size %d, %d steps (%d "
                 "warm-up)", len(examples), config.train_batch_size, config.num_train_steps,
                 fine_tuning.num_warmup_steps)
    spec = squad_features.name_to_features(settings.max_seq_length, is_training=True)

    def dataset_fn(input_context=None):
        return input_pipeline.tfrecord_dataset([train_file], spec, config.train_batch_size,
                                         is_training=True, input_context=input_context)

    runner.train(config, loss_fn, dataset_fn, fine_tuning.optimizer)


# -- Prediction and evaluation --------------------------------------------------------------------

def raw_results(runner, records_path, max_seq_length, batch_size):
    """squad_data.RawResult per window, in file order."""
    dataset = input_pipeline.tfrecord_dataset(
        [records_path], squad_features.name_to_features(max_seq_length, False), batch_size,
        is_training=False)
    results = []
    for batch in runner.predict(predict_fn, dataset):
        for unique_id, start, end in zip(batch["unique_ids"], batch["start_logits"],
                                         batch["end_logits"]):
            results.append(squad_data.RawResult(int(unique_id), start, end))
    return results


def write_json(path, value):
    file_io.write_text_atomically(path, json.dumps(value, indent=4) + "\n")


def predict(runner, examples, input_file, settings, answers, batch_size, output_dir,
            wait_seconds=None):
    """Writes predictions.json, nbest_predictions.json (and null_odds.json) for `examples`, the
    questions of `input_file`, to `output_dir`; evaluates when the file has answers. Every worker
    of a multi-worker job predicts, the chief writes (`wait_seconds`: see
    squad_features.cached_features)."""
    records = os.path.join(output_dir, PREDICT_RECORDS)
    features = squad_features.cached_features(records, input_file, examples, settings,
                                              is_training=False, wait_seconds=wait_seconds)
    logging.info("***** Running predictions *****  %d questions, %d windows, batch size %d",
                 len(examples), len(features), batch_size)
    results = raw_results(runner, records, settings.max_seq_length, batch_size)
    if not runner.is_chief:
        return
    v2 = settings.version_2_with_negative
    predictions, nbest, null_odds = squad_data.compute_predictions(
        examples, features, results, answers.n_best_size, answers.max_answer_length,
        settings.do_lower_case, v2, answers.null_score_diff_threshold, answers.verbose_logging)
    write_json(os.path.join(output_dir, PREDICTIONS_FILE), predictions)
    write_json(os.path.join(output_dir, NBEST_FILE), nbest)
    if v2:
        write_json(os.path.join(output_dir, NULL_ODDS_FILE), null_odds)
    logging.info("Wrote %s and %s%s to %s", PREDICTIONS_FILE, NBEST_FILE,
                 f" and {NULL_ODDS_FILE}" if v2 else "", output_dir)
    evaluate(input_file, predictions, null_odds if v2 else None,
             answers.null_score_diff_threshold, int(runner.global_step.numpy()), output_dir)


def evaluate(predict_file, predictions, null_odds, null_score_diff_threshold, global_step,
             output_dir):
    """The official metrics into eval_results.txt, when `predict_file` carries answers;
    `null_odds` is None for SQuAD 1.1."""
    with file_io.open_file(predict_file, "rb") as reader:
        dataset = json.loads(reader.read().decode("utf-8"))["data"]
    v2 = null_odds is not None
    if not squad_metrics.has_answers(dataset, v2):
        logging.info("%s holds no answers: no evaluation", predict_file)
        return None
    results = squad_metrics.evaluate(dataset, predictions, null_odds,
                                     null_score_diff_threshold, v2)
    results["global_step"] = global_step
    logging.info("***** Eval results (%s) *****", predict_file)
    training.write_results(os.path.join(output_dir, EVAL_RESULTS_FILE), results)
    return results


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    settings = squad_features.FeatureSettings(f.vocab_file, f.do_lower_case, f.max_seq_length,
                                              f.doc_stride, f.max_query_length,
                                              f.version_2_with_negative)
    answers = AnswerSettings(f.n_best_size, f.max_answer_length, f.null_score_diff_threshold,
                             f.verbose_logging)
    check_flags(f.do_train, f.do_predict,
                dict(vocab_file=f.vocab_file, bert_config_file=f.bert_config_file,
                     output_dir=f.output_dir, train_file=f.train_file,
                     predict_file=f.predict_file), settings, answers)
    strategy = common_flags.strategy_from_flags(f)
    common_flags.seed_from_flags(f)
    chief = training.is_chief(strategy)  # the other workers of a multi-worker job write nothing
    wait_seconds = common_flags.cache_wait_from_flags(f, chief)
    bert_config = common_flags.start_fine_tuning(f, chief)
    # Bad data, and too few training questions for one step, fail before the model is built.
    predict_examples = (read_examples(f.predict_file, False, f.version_2_with_negative)
                        if f.do_predict else None)
    if f.do_train:
        train_examples = read_training_examples(f.train_file, f.version_2_with_negative)
        fine_tuning = common_flags.fine_tuning_from_flags(f, len(train_examples))
    compute_dtype = common_flags.compute_dtype_from_flags(f)
    runner = training.Runner(
        strategy,
        lambda: modeling.BertQuestionAnswering(bert_config, compute_dtype, f.use_tpu,
                                               gradient_checkpointing=f.gradient_checkpointing),
        f.output_dir)
    if f.do_train:
        train(runner, fine_tuning, train_examples, f.train_file, settings, f.output_dir,
              wait_seconds)
    else:
        runner.restore_for_evaluation(f.init_checkpoint)
    if f.do_predict:
        predict(runner, predict_examples, f.predict_file, settings, answers,
                f.predict_batch_size, f.output_dir, wait_seconds)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    common_flags.run(main)
