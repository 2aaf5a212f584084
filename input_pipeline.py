"""The input side of the training scripts: TFRecord files of tf.train.Example, and feature caches.

Input pipeline. run_pretraining.py reads create_pretraining_data.py's files this way, and
run_classifier.py / run_squad.py read their own feature files the same way. A script builds
`name_to_features` ({name: tf.io.FixedLenFeature}) from its flags, expands --input_file with
`file_io.expand_patterns`, checks the files once with `check_tfrecord_features`, and hands
`tfrecord_dataset` (wrapped as dataset_fn(input_context)) to `training.Runner.train`, or calls it
without an input context for `Runner.evaluate` / `Runner.predict`. Any dataset_fn, TFRecord or not,
sizes its batches with `per_replica_batch_size`.

Feature caches: TFRecord files built once and reused while their inputs are unchanged. The
fine-tuning scripts (run_classifier.py, run_squad.py) turn text into TFRecord features once and
keep them in --output_dir, as the original did (train.tf_record, eval.tf_record, ...). Next to each
cache, `<cache>.json` holds the fingerprint of what it was built from (the script decides what goes
in: hashes of the examples and the vocabulary, the flags that shape the features) and the
statistics the build reported. A cache is reused only if both files exist and the fingerprint is
equal; files are written under temporary names and renamed.
"""

import hashlib
import json

import numpy as np
import tensorflow as tf
from absl import logging

from errors import InputError
import file_io

# -- Input pipeline --------------------------------------------------------------------------------


def per_replica_batch_size(input_context, global_batch_size):
    """The batch size one replica's dataset must produce."""
    if input_context is None:
        return global_batch_size
    return input_context.get_per_replica_batch_size(global_batch_size)


# tf.train.Feature's `kind` for each dtype a FixedLenFeature can have.
_FEATURE_KINDS = {tf.int64: "int64_list", tf.float32: "float_list", tf.string: "bytes_list"}


def check_tfrecord_features(input_files, name_to_features, expected_by=None):
    """Reads the first record of every file and checks it against `name_to_features`.

    Each FixedLenFeature without a default must be present, of the right kind (int64, float or
    bytes list) and have as many values as its shape holds. Runs eagerly, before any pipeline is
    built, so a file written with other settings fails here with a message naming the file rather
    than deep inside a training step.

    Args:
      input_files: file paths (see file_io.expand_patterns).
      name_to_features: {name: tf.io.FixedLenFeature}.
      expected_by: optional {name: the flag that sets its length, e.g. "--max_seq_length=128"},
        quoted in the error message.
    Returns:
      The files that hold at least one record (empty files are logged and skipped).
    Raises:
      InputError naming the file and, for a mismatch, the feature, what was found and what was
      expected; also for a file that is not a readable TFRecord file of tf.train.Example, and when
      no file holds a record.
    """
    expected_by = expected_by or {}
    non_empty = []
    for path in input_files:
        record = _first_record(path)
        if record is None:
            logging.warning("%s: no records; skipping it", path)
            continue
        example = tf.train.Example()
        try:
            example.ParseFromString(record)
        except Exception:  # google.protobuf.message.DecodeError
            raise InputError(f"{path}: the first record is not a tf.train.Example") from None
        for name, spec in name_to_features.items():
            problem = _feature_problem(name, spec, example.features.feature, expected_by.get(name))
            if problem:
                raise InputError(f"{path}: {problem}")
        non_empty.append(path)
    if not non_empty:
        raise InputError("no input file holds a record: " + ", ".join(input_files))
    return non_empty


def _first_record(path):
    """The serialized first record of a TFRecord file, or None if it has none."""
    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            return record.numpy()
    except tf.errors.OpError as e:
        raise InputError(f"{path}: not a readable TFRecord file ({e.message.strip()})") from None
    return None


def _feature_problem(name, spec, found, expected_by):
    """What is wrong with feature `name` of one tf.train.Example (None if nothing is)."""
    if name not in found:
        if spec.default_value is not None:
            return None
        return (f"feature {name!r} is missing; the record has "
                f"{', '.join(sorted(found)) or 'no features'}")
    kind = found[name].WhichOneof("kind")
    expected_kind = _FEATURE_KINDS[tf.as_dtype(spec.dtype)]
    if kind != expected_kind:
        return (f"feature {name!r} is {'an' if kind == 'int64_list' else 'a'} {kind or 'empty'} "
                f"but {spec.dtype.name} values ({expected_kind}) were expected")
    count = len(getattr(found[name], kind).value)
    expected = int(np.prod(spec.shape, dtype=np.int64))
    if count != expected:
        wanted = (f"{expected_by} expects {expected}" if expected_by
                  else f"{expected} were expected (shape {list(spec.shape)})")
        return f"{name} has {count} values but {wanted}"
    return None


def tfrecord_dataset(input_files, name_to_features, batch_size, is_training, input_context=None,
                     shuffle_buffer_size=100, max_cycle_length=8, drop_remainder=None, seed=None):
    """Batches of parsed tf.train.Example records: {name: tensor [B, ...]}, int64 cast to int32.

    Training (`is_training=True`): endless; the file list is shuffled every pass, up to
    `max_cycle_length` files are read at once (interleaved, not deterministic), records are shuffled
    in a buffer of `shuffle_buffer_size` (100, as the original) and every batch is full
    (`drop_remainder` defaults to True).

    Evaluation / prediction (`is_training=False`): one pass over the files in the given order, no
    shuffling; the last batch may be smaller (`drop_remainder` defaults to False), which
    Runner.evaluate and Runner.predict accept.

    Records are batched before parsing (one tf.io.parse_example per batch, faster than parsing one
    record at a time), and batches are prefetched.

    Args:
      input_files: file paths (see file_io.expand_patterns).
      name_to_features: {name: tf.io.FixedLenFeature}.
      batch_size: the global batch size; this pipeline produces batches of
        per_replica_batch_size(input_context, batch_size).
      is_training: see above.
      input_context: the tf.distribute.InputContext that Runner.train passes to dataset_fn, or None
        for one pipeline. With several input pipelines each reads a disjoint part of the data:
        every n-th file when there are at least as many files as pipelines, else every n-th
        record of each file.
    """
    files = list(input_files)
    if not files:
        raise ValueError("tfrecord_dataset: no input files")
    num_pipelines, index = ((input_context.num_input_pipelines, input_context.input_pipeline_id)
                            if input_context else (1, 0))
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines
    if shard_files:
        files = files[index::num_pipelines]
    shard_records = num_pipelines > 1 and not shard_files

    def read(path):
        records = tf.data.TFRecordDataset(path)
        return records.shard(num_pipelines, index) if shard_records else records

    if is_training:
        d = tf.data.Dataset.from_tensor_slices(tf.constant(files))
        d = d.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
        d = d.interleave(read, cycle_length=min(len(files), max_cycle_length),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        if shuffle_buffer_size and shuffle_buffer_size > 1:
            d = d.shuffle(shuffle_buffer_size, seed=seed)
    else:
        d = tf.data.Dataset.from_tensor_slices(tf.constant(files)).flat_map(read)
    d = d.batch(per_replica_batch_size(input_context, batch_size),
                drop_remainder=is_training if drop_remainder is None else drop_remainder)
    d = d.map(lambda records: parse_examples(records, name_to_features),
              num_parallel_calls=tf.data.AUTOTUNE)
    return d.prefetch(tf.data.AUTOTUNE)


def parse_examples(records, name_to_features):
    """tf.io.parse_example of a batch of serialized records, with int64 features cast to int32.

    int32 because TPUs support only int32 and the model casts ids anyway.
    """
    features = tf.io.parse_example(records, name_to_features)
    return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t
            for name, t in features.items()}

# -- Feature caches --------------------------------------------------------------------------------


def file_sha256(path):
    """The sha256 hex digest of a file's bytes (any tf.io.gfile path)."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path):
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except (tf.errors.NotFoundError, ValueError):
        return None


def cached_tfrecord(path, fingerprint, write_records):
    """Builds the TFRecord file `path` unless `<path>.json` records the same fingerprint.

    Args:
      path: the cache file.
      fingerprint: a JSON-serialisable value describing everything the records depend on.
      write_records: write_records(writer) writes the records with `writer.write(bytes)` and
        returns a JSON-serialisable dict of statistics (say, how many examples were truncated).
    Returns:
      (statistics, reused): the statistics of the build that wrote the cache, and whether the
      cache was reused.
    """
    meta_path = path + ".json"
    # Compare through JSON, as stored (tuples become lists).
    wanted = json.loads(json.dumps(fingerprint))
    meta = _read_json(meta_path)
    if isinstance(meta, dict) and meta.get("fingerprint") == wanted and tf.io.gfile.exists(path):
        return meta.get("statistics", {}), True
    # Removed first, written last: a cache is trusted only once its records are complete.
    if tf.io.gfile.exists(meta_path):
        tf.io.gfile.remove(meta_path)
    tmp = file_io.temp_name(path)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            statistics = write_records(writer) or {}
        file_io.rename(tmp, path)
    finally:
        file_io.remove_quietly(tmp)
    file_io.write_text_atomically(
        meta_path, json.dumps({"fingerprint": wanted, "statistics": statistics}, indent=1) + "\n")
    return statistics, False
