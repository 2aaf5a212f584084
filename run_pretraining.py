r"""Pretrains BERT on masked-LM and next-sentence prediction: the original run_pretraining.py.

Reads the TFRecord files that create_pretraining_data.py writes, trains `BertPretrainer` (BERT plus
the `cls/predictions` and `cls/seq_relationship` heads) on the shared runner (training.py, any
tf.distribute strategy) and evaluates masked-LM and next-sentence accuracy and loss. The command
line of the original README runs unchanged:

  python run_pretraining.py \
    --input_file=/tmp/tf_examples.tfrecord \
    --output_dir=/tmp/pretraining_output \
    --do_train=True \
    --do_eval=True \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
    --train_batch_size=32 \
    --max_seq_length=128 \
    --max_predictions_per_seq=20 \
    --num_train_steps=20 \
    --num_warmup_steps=10 \
    --learning_rate=2e-5

--input_file takes comma-separated globs; the first record of every file is checked against
--max_seq_length and --max_predictions_per_seq before anything runs. Training resumes from the
newest `model.ckpt-<step>` in --output_dir, else starts from --init_checkpoint (a released
bert_model.ckpt, or a checkpoint written here; optimizer slots and global_step are not loaded from
it). Checkpoints carry the original names (`bert/...`, `cls/predictions/...`,
`cls/seq_relationship/...`, `.../adam_m`, `global_step`). --do_eval evaluates at most
--max_eval_steps batches of --eval_batch_size from --input_file, in file order, with the weights
just trained, else the newest checkpoint in --output_dir, else --init_checkpoint, and writes
`eval_results.txt` to --output_dir. The progress line and TensorBoard summaries come from the
runner (training.py).
"""

import os

import tensorflow as tf
from absl import flags, logging

import common_flags
from errors import InputError
import file_io
import input_pipeline
import modeling
import optimization
import training

FLAGS = flags.FLAGS

common_flags.DEFINE_string("input_file", None,
                           "Input TF example files (can be a glob or comma separated).")
common_flags.define_model_flags(max_seq_length=128)
common_flags.DEFINE_integer("max_predictions_per_seq", 20,
                            "Maximum number of masked LM predictions per sequence. "
                            "Must match data generation.")
common_flags.define_runner_flags(save_checkpoints_steps=1000)
common_flags.define_train_flags(train_batch_size=32, eval_batch_size=8, learning_rate=5e-5)
common_flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")
common_flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
common_flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")

EVAL_RESULTS_FILE = "eval_results.txt"


def name_to_features(max_seq_length, max_predictions_per_seq):
    """The TFRecord format of create_pretraining_data.py; also BertPretrainer's feature keys."""
    s, p = [max_seq_length], [max_predictions_per_seq]
    return {
        "input_ids": tf.io.FixedLenFeature(s, tf.int64),
        "input_mask": tf.io.FixedLenFeature(s, tf.int64),
        "segment_ids": tf.io.FixedLenFeature(s, tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature(p, tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature(p, tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature(p, tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def length_flags(max_seq_length, max_predictions_per_seq):
    """{feature: the flag that sets its length}, for the input check's error messages."""
    seq, pred = f"--max_seq_length={max_seq_length}", \
        f"--max_predictions_per_seq={max_predictions_per_seq}"
    return {"input_ids": seq, "input_mask": seq, "segment_ids": seq,
            "masked_lm_positions": pred, "masked_lm_ids": pred, "masked_lm_weights": pred}


def check_flags(do_train, do_eval, input_file, bert_config_file, output_dir, max_eval_steps):
    if not do_train and not do_eval:
        raise InputError("At least one of `do_train` or `do_eval` must be True.")
    if do_eval and max_eval_steps < 1:
        raise InputError(f"--max_eval_steps={max_eval_steps} must be at least 1")
    for name, value in (("input_file", input_file), ("bert_config_file", bert_config_file),
                        ("output_dir", output_dir)):
        if not value:
            raise InputError(f"--{name} is required")


def find_input_files(input_file, max_seq_length, max_predictions_per_seq):
    """Expands --input_file and checks each file's first record against the flags."""
    files = file_io.expand_patterns(input_file, flag="--input_file")
    logging.info("*** Input Files (%d) ***", len(files))
    for path in files[:20]:
        logging.info("  %s", path)
    return input_pipeline.check_tfrecord_features(
        files, name_to_features(max_seq_length, max_predictions_per_seq),
        length_flags(max_seq_length, max_predictions_per_seq))


def make_dataset_fn(input_files, max_seq_length, max_predictions_per_seq, batch_size,
                    is_training):
    """dataset_fn(input_context) for Runner.train (call it with None for evaluation)."""
    features = name_to_features(max_seq_length, max_predictions_per_seq)

    def dataset_fn(input_context=None):
        return input_pipeline.tfrecord_dataset(input_files, features, batch_size, is_training,
                                               input_context)
    return dataset_fn


def evaluate(runner, dataset, max_eval_steps, output_dir):
    """Evaluates the runner's current weights; returns the eval results, which the chief
    writes."""
    results = runner.evaluate(modeling.pretraining_metrics, dataset, max_steps=max_eval_steps)
    results["global_step"] = int(runner.global_step.numpy())
    if runner.is_chief:
        logging.info("***** Eval results *****")
        training.write_results(os.path.join(output_dir, EVAL_RESULTS_FILE), results)
    return results


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    check_flags(f.do_train, f.do_eval, f.input_file, f.bert_config_file, f.output_dir,
                f.max_eval_steps)
    config = common_flags.bert_config_from_flags(f)
    strategy = common_flags.strategy_from_flags(f)
    common_flags.seed_from_flags(f)
    if training.is_chief(strategy):  # the other workers of a multi-worker job write nothing
        tf.io.gfile.makedirs(f.output_dir)
    input_files = find_input_files(f.input_file, f.max_seq_length, f.max_predictions_per_seq)
    compute_dtype = common_flags.compute_dtype_from_flags(f)
    runner = training.Runner(
        strategy,
        lambda: modeling.BertPretrainer(config, compute_dtype, use_one_hot_embeddings=f.use_tpu,
                                        gradient_checkpointing=f.gradient_checkpointing),
        f.output_dir)
    if f.do_train:
        logging.info("***** Running training *****  batch size %d, %d steps", f.train_batch_size,
                     f.num_train_steps)
        runner.train(common_flags.train_config_from_flags(f, f.num_train_steps),
                     modeling.pretraining_loss,
                     make_dataset_fn(input_files, f.max_seq_length, f.max_predictions_per_seq,
                                     f.train_batch_size, is_training=True),
                     optimization.create_optimizer(f.learning_rate, f.num_train_steps,
                                                   f.num_warmup_steps, f.optimizer))
    if f.do_eval:
        logging.info("***** Running evaluation *****  batch size %d, at most %d steps",
                     f.eval_batch_size, f.max_eval_steps)
        if not f.do_train:
            runner.restore_for_evaluation(f.init_checkpoint)
        evaluate(runner,
                 make_dataset_fn(input_files, f.max_seq_length, f.max_predictions_per_seq,
                                 f.eval_batch_size, is_training=False)(),
                 f.max_eval_steps, f.output_dir)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("input_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    common_flags.run(main)
