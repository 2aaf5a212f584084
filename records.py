"""tf.train.Example records and TFRecord framing, in one place; importing it does not import
TensorFlow.

Two ways to make records:
  * `int64_feature`, `float_feature`, `bytes_feature` build `tf.train.Feature` protos for scripts
    that assemble one `tf.train.Example` at a time (run_classifier.py, run_squad.py,
    extract_features.py). TensorFlow is imported on their first call.
  * The wire format by hand, without TensorFlow, for create_pretraining_data.py's worker processes
    (importing TensorFlow would cost each of them seconds): `varint` / `varint_rows` (protobuf
    varints, one value or the packed rows of an array), `feature_prefix` (the bytes of one
    feature's map entry in front of its packed values), `example_bytes` (the Example around its
    entries), and `tfrecord_frames` with `crc32c_many` (the TFRecord file format).

The wire format: an Example is `features` (field 1) holding one map entry (field 1) per feature:
key (1) and a Feature (2) whose bytes_list (1), float_list (2) or int64_list (3) holds the packed
values (field 1). tests/test_records.py checks the bytes against tf.train.Example and
tf.io.TFRecordWriter.
"""
import struct

import numpy as np

# Feature's fields float_list (2) and int64_list (3) as tag bytes (field number << 3 | 2:
# length-delimited).
FLOAT_LIST, INT64_LIST = b"\x12", b"\x1a"


# -- tf.train.Feature protos ----------------------------------------------------------------------


def _tf_train():
    # No functools.cache: a cached function is pickled by name, which would tie the modules
    # pretraining_pipeline.py ships to Beam workers by value to an importable `records`. After
    # the first call the import is a lookup in sys.modules.
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (see the module docstring)
    return tf.train


def int64_feature(values):
    """An int64_list `tf.train.Feature` of `values` (a sequence of ints)."""
    train = _tf_train()
    return train.Feature(int64_list=train.Int64List(value=values))


def float_feature(values):
    """A float_list `tf.train.Feature` of `values` (anything numpy turns into float32 [n]).

    Parsed from its packed wire format (field 1, length-delimited, little-endian floats): about
    30x faster than adding the floats one by one, and the same proto.
    """
    train = _tf_train()
    data = np.ascontiguousarray(values, "<f4").tobytes()
    return train.Feature(float_list=train.FloatList.FromString(
        b"\x0a" + varint(len(data)) + data))


def bytes_feature(values):
    """A bytes_list `tf.train.Feature` of `values` (a sequence of bytes)."""
    train = _tf_train()
    return train.Feature(bytes_list=train.BytesList(value=values))


# -- The wire format by hand ----------------------------------------------------------------------


def varint(value):
    """The protobuf varint of a non-negative int: 7 bits per byte, low bits first, the high bit
    set on every byte but the last."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_rows(values):
    """int [N, C] (0 <= v < 2**28) -> (the rows' packed varints as one bytes, end offsets list).

    Row i is bytes[ends[i - 1]:ends[i]]: the packed values of an int64_list, for all the records
    of a block at once.
    """
    v = values.astype(np.uint32)
    if v.size and int(v.max()) >= 1 << 28:
        raise ValueError("ids must be below 2**28")
    size = 1 + (v >= 1 << 7).astype(np.uint8) + (v >= 1 << 14) + (v >= 1 << 21)   # [N, C]
    parts = np.empty(v.shape + (4,), np.uint8)                                     # [N, C, 4]
    for j in range(4):
        parts[..., j] = ((v >> 7 * j) & 0x7F).astype(np.uint8) | (size > j + 1).astype(
            np.uint8) << 7
    packed = parts[np.arange(4) < size[..., None]]
    return packed.tobytes(), np.cumsum(size.sum(1, dtype=np.int64)).tolist()


def feature_prefix(name, kind, num_bytes):
    """The bytes of a Features map entry for feature `name` that come before its `num_bytes` bytes
    of packed values; `kind` is INT64_LIST or FLOAT_LIST.

    Everything in it depends only on the name and the size of the values, so an encoder whose
    features have fixed sizes computes it once per size (pretraining_data.ExampleEncoder).
    """
    values = b"\x0a" + varint(num_bytes)                      # Int64List/FloatList.value
    feature = kind + varint(len(values) + num_bytes)          # Feature.int64_list/float_list
    name_field = b"\x0a" + varint(len(name)) + name.encode()  # the entry's key
    value_size = len(feature) + len(values) + num_bytes
    entry_size = len(name_field) + 1 + len(varint(value_size)) + value_size
    return (b"\x0a" + varint(entry_size) + name_field + b"\x12" + varint(value_size)
            + feature + values)


def example_bytes(entries):
    """A serialized tf.train.Example from the bytes of its map entries (prefixes and values)."""
    return b"\x0a" + varint(len(entries)) + entries


def _crc32c_table(bits):
    """CRC-32C of `bits` bit-steps on each register value below 2**bits."""
    crc = np.arange(2 ** bits, dtype=np.uint32)
    for _ in range(bits):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(0x82F63B78), crc >> 1).astype(np.uint32)
    return crc


_CRC32C_BYTE, _CRC32C_PAIR = _crc32c_table(8), _crc32c_table(16)


def crc32c_many(datas):
    """CRC-32C (Castagnoli) of each bytes object in `datas`, as a uint32 array.

    Pure Python would cost ~100 ns per byte; here one numpy step advances every record by two
    bytes (a 64K-entry table: the bits above the low 16 only shift down in 16 steps), so the cost
    of a step is shared by all the records of a block.
    """
    n = len(datas)
    lengths = np.fromiter(map(len, datas), np.int64, n)
    order = np.argsort(-lengths, kind="stable")
    lengths = lengths[order]  # longest first: the records still running are a prefix
    width = int(lengths[0]) + 1 & ~1 if n else 0
    data = np.zeros((n, width), np.uint8)
    data[np.arange(width) < lengths[:, None]] = np.frombuffer(
        b"".join(datas[i] for i in order), np.uint8)
    words = np.ascontiguousarray(data.view("<u2").T).astype(np.uint32)  # [width / 2, n]
    running = n - np.cumsum(np.bincount(lengths, minlength=width + 1))  # rows longer than i
    crc = np.full(n, 0xFFFFFFFF, np.uint32)
    for step in range(width // 2):
        both, first = running[2 * step + 1], running[2 * step]  # rows with both bytes, with one
        c = crc[:both]
        crc[:both] = _CRC32C_PAIR[(c ^ words[step, :both]) & 0xFFFF] ^ (c >> 16)
        if first > both:  # the last byte of odd-length records
            c = crc[both:first]
            crc[both:first] = _CRC32C_BYTE[(c ^ words[step, both:first]) & 0xFF] ^ (c >> 8)
    result = np.empty(n, np.uint32)
    result[order] = crc ^ np.uint32(0xFFFFFFFF)
    return result


def _masked_crc(crc):
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)


def tfrecord_frames(records):
    """Each record framed as TFRecord: length, masked CRC of the length, data, masked CRC."""
    headers = [struct.pack("<Q", len(r)) for r in records]
    header_crcs = _masked_crc(crc32c_many(headers)).tolist()
    data_crcs = _masked_crc(crc32c_many(records)).tolist()
    return [h + struct.pack("<I", hc) + r + struct.pack("<I", dc)
            for h, hc, r, dc in zip(headers, header_crcs, records, data_crcs)]
