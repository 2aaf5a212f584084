"""Tagging features: the windows of tagging_data.py as tf.train.Example records, in cached
TFRecords.

run_ner.py writes each set's windows once (train.tf_record, eval.tf_record, predict.tf_record)
and reuses them while nothing they were made from has changed. Next to each cache,
`<cache>.json` holds its fingerprint (`FeatureSettings.fingerprint`): a sha256 of the sentences
read (words and tags, so a change of the file or of --word_column / --tag_column shows), the
vocabulary's sha256, do_lower_case, max_seq_length, doc_stride, the tag set and whether the
records are for training; a cache whose fingerprint differs is rebuilt.

Records (`name_to_features`): input_ids, input_mask, segment_ids (all 0), label_ids (the tag id of
the word a position scores, 0 elsewhere) and word_index (that word's index in its sentence; -1
where nothing is scored: [CLS], [SEP], padding, a word's later pieces and, outside training, the
windows where a word does not have its most context), all [max_seq_length]; sentence_index, the
window's sentence in its file. So the records alone map predictions back to words
(tagging_data.word_predictions). Training records are written in a fixed random order: the
training pipeline shuffles within a buffer of 100 records only, and files come in document order.

A module of its own rather than part of tagging_data.py: the readers and windows there are pure
Python and import no TensorFlow; the records need TensorFlow.
"""
import dataclasses
import functools
import hashlib
import json

import numpy as np
import tensorflow as tf
from absl import logging

import classifier_features
import input_pipeline
import records
import tagging_data

CACHE_FORMAT = 1  # bump when the record layout changes
SHUFFLE_SEED = 12345


def name_to_features(max_seq_length):
    """The records' format; also the model's and the loss's feature keys."""
    s = [max_seq_length]
    spec = {name: tf.io.FixedLenFeature(s, tf.int64) for name in (
        "input_ids", "input_mask", "segment_ids", "label_ids", "word_index")}
    spec["sentence_index"] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def serialize(window, max_seq_length):
    """One tagging_data.Window, padded to max_seq_length, as a serialized tf.train.Example."""
    n = len(window.input_ids)
    pad = max_seq_length - n
    if pad < 0:
        raise ValueError(f"a window of {n} tokens does not fit max_seq_length {max_seq_length}")
    values = {"input_ids": window.input_ids + [0] * pad, "input_mask": [1] * n + [0] * pad,
              "segment_ids": [0] * max_seq_length, "label_ids": window.label_ids + [0] * pad,
              "word_index": window.word_index + [-1] * pad,
              "sentence_index": [window.sentence_index]}
    return tf.train.Example(features=tf.train.Features(
        feature={k: records.int64_feature(v) for k, v in values.items()})).SerializeToString()


def sentences_sha256(sentences):
    """A hash of what the records are made of: each sentence's words and tags."""
    digest = hashlib.sha256()
    for s in sentences:
        digest.update(json.dumps([s.words, s.tags]).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class FeatureSettings(classifier_features.FeatureSettings):
    """What the windows depend on besides the sentences and the tag set: the classifier's
    settings (vocabulary, casing, max_seq_length; the tokenizer built when needed) and the
    stride of the windows."""
    doc_stride: int

    @functools.cached_property
    def layout(self):
        return tagging_data.Layout.of(self.tokenizer, self.max_seq_length, self.doc_stride)

    def fingerprint(self, sentences, tags, is_training):
        values = dataclasses.asdict(self)
        values.update(format=CACHE_FORMAT, is_training=is_training, tags=list(tags),
                      vocab_file=self.vocab_sha256, sentences_sha256=sentences_sha256(sentences),
                      num_sentences=len(sentences))
        return values


def write_records(writer, settings, sentences, tags, is_training):
    """Writes the windows of `sentences` with `writer`; returns tagging_data.windows' stats."""
    stats = {}
    serialized = [serialize(w, settings.max_seq_length) for w in tagging_data.windows(
        settings.tokenizer, sentences, tags, settings.layout, is_training, stats)]
    order = (np.random.default_rng(SHUFFLE_SEED).permutation(len(serialized)) if is_training
             else range(len(serialized)))
    for i in order:
        writer.write(serialized[i])
    return stats


def cached_features(path, tagged, tags, settings, is_training):
    """Builds the TFRecord cache `path` of the sentences of `tagged` (a tagging_data.TaggedFile)
    unless it is up to date. Returns the windows' statistics."""
    stats, reused = input_pipeline.cached_tfrecord(
        path, settings.fingerprint(tagged.sentences, tags, is_training),
        lambda writer: write_records(writer, settings, tagged.sentences, tags, is_training))
    logging.info("%s %s: %d windows of %d sentences from %s", "Reused" if reused else "Wrote",
                 path, stats["windows"], stats["sentences"], tagged.path)
    if stats["split_sentences"]:
        logging.info("%s: %d sentences longer than --max_seq_length=%d are split into "
                     "overlapping windows (at most %d)", tagged.path, stats["split_sentences"],
                     settings.max_seq_length, stats["max_windows"])
    if stats["empty_words"]:
        logging.warning("%s: %d words have no WordPiece (only characters the tokenizer drops) "
                        "and are read as [UNK]", tagged.path, stats["empty_words"])
    return stats


def dataset(path, max_seq_length, batch_size, is_training=False, input_context=None):
    """The records of one cache: in file order, unless `is_training`."""
    return input_pipeline.tfrecord_dataset([path], name_to_features(max_seq_length), batch_size,
                                           is_training, input_context)
