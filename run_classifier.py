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
  task.json              (--do_train) what the model outputs, for export_saved_model.py: the
                         task, its kind (classification, multi_label, regression), labels,
                         whether its examples are text pairs, the multi-label threshold, and
                         --do_lower_case / --max_seq_length (classification.py).
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
state file, eval_results.txt (the keys of the main eval_results.txt), label_list.txt and
task.json; the previous best is deleted. A resumed run continues from the best recorded there.
Each evaluation also goes to TensorBoard under <output_dir>/eval. --do_eval and --do_predict
after training use the final weights, as the original; to predict with the best ones run
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

from absl import flags, logging

import common_flags
import modeling
import training

FLAGS = flags.FLAGS

common_flags.define_classifier_flags()


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    common_flags.check_classifier_flags(f, dict(
        vocab_file=f.vocab_file, bert_config_file=f.bert_config_file, output_dir=f.output_dir,
        data_dir=f.data_dir))
    strategy = common_flags.strategy_from_flags(f)
    common_flags.seed_from_flags(f)
    # The other workers of a multi-worker job write nothing.
    bert_config = common_flags.start_fine_tuning(f, training.is_chief(strategy))
    compute_dtype = common_flags.compute_dtype_from_flags(f)

    common_flags.run_classification(
        f, strategy,
        lambda num_labels: modeling.BertClassifier(
            bert_config, num_labels, compute_dtype, f.use_tpu,
            gradient_checkpointing=f.gradient_checkpointing),
        f.vocab_file, f.do_lower_case)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("task_name")
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    common_flags.run(main)
