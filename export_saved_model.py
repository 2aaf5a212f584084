r"""Exports SavedModels for serving and reuse: a fine-tuned classifier, a TF Hub-format encoder, or
the matching text preprocessor.

  # A classifier fine-tuned by run_classifier.py (its --output_dir: the newest checkpoint, with
  # the label_list.txt and task.json beside it), for TF Serving or tf.saved_model.load:
  python export_saved_model.py --export_type=classifier \
    --init_checkpoint=/tmp/mrpc_output/ \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --export_dir=/tmp/mrpc_saved_model

  # A pretrained checkpoint (the original layout, e.g. a released bert_model.ckpt) as a TF Hub
  # TF2 BERT encoder, for run_classifier_with_tfhub.py or anyone's TF Hub code:
  python export_saved_model.py --export_type=encoder \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --vocab_file=$BERT_BASE_DIR/vocab.txt --do_lower_case=true \
    --export_dir=/tmp/bert_encoder

  # The TF Hub preprocessor for that encoder (strings -> encoder inputs):
  python export_saved_model.py --export_type=preprocessor \
    --vocab_file=$BERT_BASE_DIR/vocab.txt --do_lower_case=true --export_dir=/tmp/bert_preprocess

The layouts and signatures are in saved_models.py's docstring. A classifier export takes its task
(kind, labels, text pairs) from the run's files; --do_lower_case and --max_seq_length default to
what the run recorded (task.json), and a --do_lower_case against it is an error. --export_dir
must not exist; the SavedModel is written under a temporary name and renamed when complete. The
classifier's raw-text signature and the preprocessor tokenize in the graph (tf_tokenization.py),
which needs tensorflow-text (pip install -r requirements-export.txt), and so does loading them
(`import tensorflow_text` before tf.saved_model.load).
"""

from absl import flags, logging

import common_flags
from errors import InputError
import modeling
import saved_models

FLAGS = flags.FLAGS
EXPORT_TYPES = ("classifier", "encoder", "preprocessor")

common_flags.define_checkpoint_flags()
common_flags.DEFINE_integer("max_seq_length", None,
                            "classifier: the sequence length of the raw-text signature (longer "
                            "texts are truncated as in training); default: the run's (task.json), "
                            "else 128 (at most the config's max_position_embeddings). "
                            "preprocessor: its default seq_length (default 128).")
common_flags.DEFINE_enum("export_type", "classifier", list(EXPORT_TYPES),
                         "classifier: a run_classifier.py checkpoint with its task; encoder: a "
                         "checkpoint in the original layout as a TF Hub BERT encoder; "
                         "preprocessor: the TF Hub text preprocessor of --vocab_file.")
common_flags.DEFINE_string("export_dir", None,
                           "Where to write the SavedModel; must not exist.")


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    saved_models.check_export_dir(f.export_dir)
    if not f.vocab_file:
        raise InputError("--vocab_file is required")
    if f.max_seq_length is not None and f.max_seq_length < 3:
        raise InputError(f"--max_seq_length={f.max_seq_length} must be at least 3")
    if f.export_type == "preprocessor":
        saved_models.export_preprocessor(f.export_dir, f.vocab_file, f.do_lower_case,
                                         f.max_seq_length or 128)
        return 0
    if not f.bert_config_file:
        raise InputError("--bert_config_file is required")
    if not f.init_checkpoint:
        raise InputError("--init_checkpoint is required")
    config = modeling.BertConfig.from_json_file(f.bert_config_file)
    if f.export_type == "encoder":
        saved_models.export_encoder(f.export_dir, config, f.init_checkpoint, f.vocab_file,
                                    f.do_lower_case)
    else:
        saved_models.export_classifier(
            f.export_dir, config, f.init_checkpoint, f.vocab_file,
            f.do_lower_case if f["do_lower_case"].present else None, f.max_seq_length)
    return 0


if __name__ == "__main__":
    common_flags.run(main)
