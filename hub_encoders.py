"""TF Hub-format BERT encoders (TF2 SavedModels) as fine-tunable models (run_classifier_with_tfhub).

The original run_classifier_with_tfhub.py fine-tuned a TF1 `hub.Module` and read the vocabulary
and casing from its `tokenization_info` signature. TF2 encoders in TF Hub's format (TF Hub's BERT
collection, TF Model Garden's export_tfhub, saved_models.export_encoder here) are Reusable
SavedModels, loaded with tf.saved_model.load (no download: a local or gs:// directory) and used
as they are:

  encoder(dict(input_word_ids, input_mask, input_type_ids) int32 [B, S], training=bool)
      -> dict with pooled_output float32 [B, H] (and sequence_output, encoder_outputs, default)
  encoder.variables / encoder.trainable_variables: what fine-tuning checkpoints / trains
  encoder.vocab_file (an Asset: its file in the SavedModel's assets/), encoder.do_lower_case
      (a bool Variable): the tokenization the encoder expects.

What differs between exporters, and is handled here: a Keras-saved encoder (TF Hub's own, Model
Garden) restores a `__call__(inputs, training=None, mask=None)` and lists do_lower_case among its
variables; this project's restores `__call__(inputs, training=False)`. Variable names are the
exporter's (`bert/encoder/layer_0/...` here, so a fine-tuned checkpoint reads like
run_classifier.py's; Keras layer paths elsewhere, which may repeat): HubClassifier gives every
variable a distinct checkpoint name, stable for a given SavedModel, so training resumes.
Anything without the calling convention above (a TF1 hub.Module, a SavedModel of something else)
is an InputError naming the path.
"""

import os
from typing import NamedTuple

import tensorflow as tf
from absl import logging

import checkpoints
from errors import InputError
import modeling


class HeadConfig(NamedTuple):
    """What modeling.ClassifierHead reads of a BertConfig."""
    hidden_size: int
    initializer_range: float = 0.02


def load_encoder(handle):
    """The loaded encoder at `handle` (a SavedModel directory, local or gs://); InputError when
    it is not one in TF Hub's TF2 format. Load it under the strategy's scope that trains it."""
    if handle.startswith(("http://", "https://")):
        raise InputError(f"--bert_hub_module_handle={handle}: give a local or gs:// SavedModel "
                         "directory (nothing is downloaded; fetch the model first)")
    if not tf.io.gfile.exists(os.path.join(handle, "saved_model.pb")):
        raise InputError(f"--bert_hub_module_handle={handle}: no saved_model.pb there (expected "
                         "a TF2 SavedModel directory)")
    try:
        encoder = tf.saved_model.load(handle)
    except (tf.errors.OpError, ValueError) as e:
        raise InputError(f"--bert_hub_module_handle={handle}: cannot load the SavedModel "
                         f"({str(e).strip().splitlines()[0]})") from None
    missing = [name for name in ("__call__", "variables", "trainable_variables")
               if not hasattr(encoder, name)]
    if missing or not callable(encoder):
        raise InputError(f"--bert_hub_module_handle={handle}: not a TF2 encoder in TF Hub's "
                         f"format (no {', '.join(missing) or '__call__'}; a TF1 hub.Module "
                         "cannot be fine-tuned here)")
    return encoder


def tokenization_info(encoder):
    """(vocab_file path or None, do_lower_case or None) as the encoder carries them."""
    asset = getattr(encoder, "vocab_file", None)
    vocab_file = asset.asset_path.numpy().decode("utf-8") if asset is not None else None
    variable = getattr(encoder, "do_lower_case", None)
    do_lower_case = bool(variable.numpy()) if variable is not None else None
    return vocab_file, do_lower_case


def encode(encoder, input_ids, input_mask, segment_ids, training):
    """The encoder's output dict for int [B, S] features (TF Hub's names, int32)."""
    inputs = dict(input_word_ids=tf.cast(input_ids, tf.int32),
                  input_mask=tf.cast(input_mask, tf.int32),
                  input_type_ids=tf.cast(segment_ids, tf.int32))
    return encoder(inputs, training=training)


def probe(encoder, handle, max_seq_length):
    """The width H of the encoder's pooled_output, from one call on a [1, max_seq_length] batch;
    InputError when it cannot take that length or has no pooled_output."""
    ones = tf.ones([1, max_seq_length], tf.int32)
    try:
        outputs = encode(encoder, ones, ones, tf.zeros_like(ones), False)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise InputError(f"--bert_hub_module_handle={handle}: the encoder fails on inputs of "
                         f"--max_seq_length={max_seq_length} tokens (is it longer than the "
                         f"encoder's position embeddings?): {str(e).strip().splitlines()[0]}"
                         ) from None
    if not isinstance(outputs, dict) or "pooled_output" not in outputs:
        raise InputError(f"--bert_hub_module_handle={handle}: the encoder's outputs have no "
                         "pooled_output (expected TF Hub's BERT encoder outputs)")
    return int(outputs["pooled_output"].shape[-1])


def distinct_names(variables):
    """{checkpoint name: variable}: each variable's name without ":0", a repeated one with
    "_1", "_2", ... in the order given."""
    named = {}
    for variable in variables:
        base = variable.name.split(":")[0]
        name, k = base, 0
        while name in named:
            k += 1
            name = f"{base}_{k}"
        named[name] = variable
    return named


class HubClassifier(tf.Module):
    """A TF Hub encoder plus run_classifier's head: `output_weights` [L, H] / `output_bias` [L]
    over the dropped-out pooled_output. Called as modeling.BertClassifier: features (input_ids,
    input_mask, segment_ids int [B, S]) -> logits float32 [B, L]."""

    def __init__(self, encoder, num_labels, hidden_size):
        super().__init__(name=None)
        self.encoder = encoder
        self.classifier = modeling.ClassifierHead(HeadConfig(hidden_size), num_labels)
        self._encoder_names = distinct_names(encoder.variables)
        listed = {id(v) for v in encoder.trainable_variables}
        flagged = {id(v) for v in encoder.variables if v.trainable}
        if listed != flagged:
            logging.warning("The encoder lists %d trainable variables but %d are trainable; "
                            "training those marked trainable", len(listed), len(flagged))

    def named_variables(self):
        """The checkpoint names (checkpoints.named_variables): the encoder's (distinct_names)
        and the head's original ones."""
        head = checkpoints.named_variables(self.classifier)
        clash = sorted(set(head) & set(self._encoder_names))
        if clash:
            raise ValueError(f"encoder variables named like the classifier's: {clash}")
        return dict(self._encoder_names, **head)

    def __call__(self, features, training=False):
        outputs = encode(self.encoder, features["input_ids"], features["input_mask"],
                         features["segment_ids"], training)
        return self.classifier(outputs["pooled_output"], training)
