"""records.py: the hand-written wire format and TFRecord framing against tf.train.Example and
tf.io.TFRecordWriter, the tf.train.Feature helpers, and an import without TensorFlow."""
import os
import random
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import records

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 1 to 5 bytes as varints.
VALUES = [0, 1, 127, 128, 300, 2**14 - 1, 2**14, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**35]


def packed_int64s(values):
    """The packed values of an Int64List as TensorFlow writes them (after tag and length)."""
    data = tf.train.Int64List(value=values).SerializeToString()
    assert data[0] == 0x0A and data[1] < 0x80, "tests keep the packed length below 128"
    return data[2:]


def test_varint_matches_protobuf():
    for value in VALUES:
        assert records.varint(value) == packed_int64s([value]), value


def test_varint_rows_are_the_packed_int64_lists_of_the_rows():
    rng = np.random.default_rng(0)
    exponents = rng.integers(0, 28, (7, 20))
    values = (rng.random((7, 20)) * 2.0 ** exponents).astype(np.int64)  # below 2**28
    values[0, :4] = [0, 127, 128, 2**28 - 1]
    data, ends = records.varint_rows(values)
    starts = [0] + ends[:-1]
    for row, start, end in zip(values.tolist(), starts, ends):
        assert data[start:end] == packed_int64s(row)
    assert ends[-1] == len(data)
    with pytest.raises(ValueError, match="below 2\\*\\*28"):
        records.varint_rows(np.array([[2**28]]))


def one_feature_example(name, feature):
    return tf.train.Example(features=tf.train.Features(feature={name: feature}))


def test_feature_prefix_and_example_bytes_match_tensorflow():
    ids = [101, 7592, 2088, 102, 0, 0]
    packed = b"".join(map(records.varint, ids))
    ours = records.example_bytes(
        records.feature_prefix("input_ids", records.INT64_LIST, len(packed)) + packed)
    theirs = one_feature_example("input_ids", tf.train.Feature(
        int64_list=tf.train.Int64List(value=ids)))
    assert ours == theirs.SerializeToString()  # one map entry: the bytes are determined

    weights = [1.0, 1.0, 0.5, 0.0]
    floats = struct.pack("<4f", *weights)
    ours = records.example_bytes(
        records.feature_prefix("masked_lm_weights", records.FLOAT_LIST, len(floats)) + floats)
    theirs = one_feature_example("masked_lm_weights", tf.train.Feature(
        float_list=tf.train.FloatList(value=weights)))
    assert ours == theirs.SerializeToString()

    # Several entries, a long name and values longer than 127 bytes (two-byte lengths).
    long_ids = list(range(1000, 1100))
    long_packed = b"".join(map(records.varint, long_ids))
    name = "a_feature_name_" * 10
    ours = records.example_bytes(
        records.feature_prefix("input_ids", records.INT64_LIST, len(packed)) + packed
        + records.feature_prefix(name, records.INT64_LIST, len(long_packed)) + long_packed)
    expected = tf.train.Example(features=tf.train.Features(feature={
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        name: tf.train.Feature(int64_list=tf.train.Int64List(value=long_ids))}))
    assert tf.train.Example.FromString(ours) == expected


def test_crc32c_known_values():
    crcs = records.crc32c_many([b"123456789", b"", b"a", b"\x00" * 32])
    assert crcs.tolist() == [0xE3069283, 0x00000000, 0xC1D04330, 0x8A9136AA]


def assert_framed_as_tfrecord_writer_frames(data, tmp_path):
    """records.tfrecord_frames(data) is the file tf.io.TFRecordWriter writes, byte for byte."""
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(b"".join(records.tfrecord_frames(data)))
    theirs = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for record in data:
            writer.write(record)
    assert ours.read_bytes() == theirs.read_bytes()


def test_tfrecord_frames_are_byte_identical_to_tfrecord_writer(tmp_path):
    rng = random.Random(0)
    data = [b"", b"a", b"ab", b"abc"] + [rng.randbytes(rng.randrange(2000)) for _ in range(40)]
    assert_framed_as_tfrecord_writer_frames(data, tmp_path)
    assert records.tfrecord_frames([]) == []


def test_feature_helpers_build_the_same_protos():
    assert records.int64_feature([1, 2**40, 0]) == tf.train.Feature(
        int64_list=tf.train.Int64List(value=[1, 2**40, 0]))
    assert records.int64_feature(np.array([3, 4]).tolist()) == tf.train.Feature(
        int64_list=tf.train.Int64List(value=[3, 4]))
    for values in ([0.1, -2.5, 1e30], np.array([0.1, -2.5, 1e30]), [], [3]):
        assert records.float_feature(values) == tf.train.Feature(
            float_list=tf.train.FloatList(value=list(np.asarray(values, np.float64)))), values
    assert records.bytes_feature([b"a", b"", "é".encode()]) == tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[b"a", b"", "é".encode()]))


def test_importing_and_encoding_does_not_import_tensorflow():
    code = ("import sys, numpy as np, records; "
            "entries = records.feature_prefix('x', records.INT64_LIST, 1) + records.varint(5); "
            "records.tfrecord_frames([records.example_bytes(entries)]); "
            "records.varint_rows(np.zeros((2, 3), np.int64)); "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=_ROOT, timeout=60, check=True)
    assert result.stdout.strip() == "False"
