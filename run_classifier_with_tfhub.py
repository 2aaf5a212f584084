r"""Fine-tunes a TF Hub-format BERT encoder for sentence (pair) classification: the original
run_classifier_with_tfhub.py, for TF2 encoders.

  python run_classifier_with_tfhub.py \
    --task_name=MRPC \
    --do_train=true \
    --do_eval=true \
    --data_dir=$GLUE_DIR/MRPC \
    --bert_hub_module_handle=/models/bert_en_uncased_L-12_H-768_A-12 \
    --max_seq_length=128 \
    --train_batch_size=32 \
    --learning_rate=2e-5 \
    --num_train_epochs=3.0 \
    --output_dir=/tmp/mrpc_output/

--bert_hub_module_handle is a TF2 SavedModel directory, local or gs://, holding a BERT encoder in
TF Hub's format: one exported by `export_saved_model.py --export_type=encoder`, by TF Model
Garden's export_tfhub, or downloaded from TF Hub / Kaggle Models beforehand (this script
downloads nothing). The vocabulary and the casing come from the module (its `vocab_file` asset and
`do_lower_case` variable, as the original read its `tokenization_info`); --vocab_file is used only
for a module that carries none, and a --do_lower_case against the module's is an error.
hub_encoders.py says what a module must provide.

Every other flag, every mode (--do_eval, --do_predict, --eval_every_steps, the generic task,
distillation) and every output (checkpoints, eval_results.txt, test_results.tsv, submission
files, label_list.txt, task.json, feature caches) is run_classifier.py's: see its docstring. The
model is the module's encoder plus run_classifier's `output_weights` / `output_bias` head over its
pooled_output (dropout 0.1 in training); the encoder's variables are trained with the head, with
dropout on (the module is called with training=True). Checkpoints name the encoder's variables
as the module does: for an encoder exported by this project they are the original
`bert/...` names, so the fine-tuned checkpoint is also a run_classifier.py checkpoint (export it
with export_saved_model.py --export_type=classifier). --init_checkpoint, if given, initialises
variables of the same names (for example from another run of this script); the module's own
weights are the starting point otherwise. The module computes in the precision it was saved
with: --precision=bfloat16 is an error, and so is --gradient_checkpointing (the module's graph is
fixed).
"""

import tensorflow as tf
from absl import flags, logging

import common_flags
from errors import InputError
import hub_encoders
import training

FLAGS = flags.FLAGS

common_flags.define_classifier_flags()
common_flags.DEFINE_string("bert_hub_module_handle", None,
                           "Handle for the BERT TF Hub module: a TF2 SavedModel directory, local "
                           "or gs://, in TF Hub's BERT encoder format.")


def tokenization(encoder, f):
    """(vocab_file, do_lower_case) for the features: the module's (see the docstring)."""
    vocab_file, do_lower_case = hub_encoders.tokenization_info(encoder)
    handle = f.bert_hub_module_handle
    if vocab_file is None and not f.vocab_file:
        raise InputError(f"--bert_hub_module_handle={handle} carries no vocab_file asset: give "
                         "--vocab_file")
    if vocab_file is not None and f.vocab_file:
        raise InputError(f"--vocab_file: the vocabulary comes from --bert_hub_module_handle="
                         f"{handle} ({vocab_file})")
    if do_lower_case is not None and f["do_lower_case"].present \
            and f.do_lower_case != do_lower_case:
        raise InputError(f"--do_lower_case={f.do_lower_case}, but --bert_hub_module_handle="
                         f"{handle} has do_lower_case={do_lower_case}")
    return vocab_file or f.vocab_file, f.do_lower_case if do_lower_case is None \
        else do_lower_case


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    common_flags.check_classifier_flags(f, dict(
        bert_hub_module_handle=f.bert_hub_module_handle, output_dir=f.output_dir,
        data_dir=f.data_dir))
    if f.bert_config_file:
        raise InputError("--bert_config_file does not apply: the model is the module's")
    if f.precision != "float32":
        raise InputError(f"--precision={f.precision}: a TF Hub module computes in the precision "
                         "it was saved with")
    if f.gradient_checkpointing:
        raise InputError("--gradient_checkpointing: a TF Hub module's layers are one saved graph, "
                         "which cannot recompute them layer by layer")
    strategy = common_flags.strategy_from_flags(f)
    common_flags.seed_from_flags(f)
    with strategy.scope():
        encoder = hub_encoders.load_encoder(f.bert_hub_module_handle)
    hidden_size = hub_encoders.probe(encoder, f.bert_hub_module_handle, f.max_seq_length)
    vocab_file, do_lower_case = tokenization(encoder, f)
    logging.info("Encoder %s: hidden size %d, vocabulary %s, do_lower_case=%s",
                 f.bert_hub_module_handle, hidden_size, vocab_file, do_lower_case)
    if training.is_chief(strategy):  # the other workers of a multi-worker job write nothing
        tf.io.gfile.makedirs(f.output_dir)

    common_flags.run_classification(
        f, strategy, lambda num_labels: hub_encoders.HubClassifier(encoder, num_labels,
                                                                   hidden_size),
        vocab_file, do_lower_case)
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("task_name")
    flags.mark_flag_as_required("bert_hub_module_handle")
    flags.mark_flag_as_required("output_dir")
    common_flags.run(main)
