"""SQuAD features: the windows of squad_data.py as tf.train.Example records, in cached TFRecords.

run_squad.py writes the windows of a SQuAD file once (train.tf_record, eval.tf_record) and reuses
them while nothing they were made from has changed. Next to each cache, `<cache>.json` holds its
fingerprint (`FeatureSettings.fingerprint`): the sha256 of the input file and of the vocabulary,
do_lower_case, max_seq_length, doc_stride, max_query_length, version_2_with_negative and whether
the records are for training; a cache whose fingerprint differs is rebuilt.

Records (`name_to_features`, the original's feature names): unique_ids, input_ids, input_mask,
segment_ids [max_seq_length], and for training start_positions, end_positions, is_impossible.
Prediction also needs what the records do not hold, to turn logits back into answer texts: each
window's tokens, token_to_orig_map and token_is_max_context, kept in
`<cache>.features.jsonl` (`write_window_file`), one JSON object per line.

A module of its own rather than part of squad_data.py: the reader and post-processing there are
pure Python and numpy and import no TensorFlow; the records need TensorFlow.
"""
import dataclasses
import functools
import json

import tensorflow as tf
from absl import logging

import file_io
import input_pipeline
import records
import squad_data
import tokenization

CACHE_FORMAT = 1  # bump when the record layout or the features file changes


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    """What the windows depend on besides the input file."""
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
    """The records' format; also the model's feature keys (and the loss's, for training)."""
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
    """One window (squad_data.InputFeatures) as a serialized tf.train.Example."""
    values = {"unique_ids": [feature.unique_id], "input_ids": feature.input_ids,
              "input_mask": feature.input_mask, "segment_ids": feature.segment_ids}
    if is_training:
        values.update(start_positions=[feature.start_position],
                      end_positions=[feature.end_position],
                      is_impossible=[int(feature.is_impossible)])
    return tf.train.Example(features=tf.train.Features(
        feature={k: records.int64_feature(v) for k, v in values.items()})).SerializeToString()


def features_path(records_path):
    """The window file next to a prediction cache."""
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
    """The windows of write_window_file, as squad_data.InputFeatures without ids."""
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


def cached_features(path, input_file, examples, settings, is_training, wait_seconds=None):
    """Builds (or reuses) the TFRecord cache `path` of `examples`' windows.

    Returns the windows (squad_data.InputFeatures) for prediction, where post-processing needs
    them (read back from the features file when the cache is reused), else None.
    `wait_seconds` (not None: a multi-worker job's worker other than the chief) waits for the
    chief to build the cache (input_pipeline.cached_tfrecord).
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

    statistics, reused = input_pipeline.cached_tfrecord(
        path, settings.fingerprint(input_file, is_training), write_records,
        # Prediction needs the windows too: the records alone are not enough.
        companions=() if is_training else (features_path(path),), wait_seconds=wait_seconds)
    logging.info("%s %s: %s windows of %d questions from %s (%s)",
                 "Reused" if reused else "Wrote", path, statistics.get("features", "?"),
                 len(examples), input_file, statistics)
    if is_training:
        return None
    return read_window_file(features_path(path)) if reused else built
