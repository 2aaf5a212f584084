"""input_pipeline.py: the TFRecord checks, the training and evaluation pipelines, and the feature
caches. The records are in the pretraining format of create_pretraining_data.py (random but valid
examples); tests/test_run_pretraining.py reads them through run_pretraining.py."""
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import input_pipeline

SEQ, PRED = 32, 5
FILE_SIZES = (12, 9)  # 21 examples: with eval batches of 4 the last holds one (a replica idles)


# -- Test data ------------------------------------------------------------------------------------

def make_examples(n, seq=SEQ, pred=PRED, seed=0, first_id=0):
    """{feature: array [n, ...]} of valid masked-LM / next-sentence examples (vocab 99)."""
    rng = np.random.RandomState(seed)
    out = {k: [] for k in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                           "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")}
    for _ in range(n):
        length = rng.randint(seq // 2, seq + 1)
        ids = np.zeros(seq, np.int64)
        ids[:length] = rng.randint(5, 99, length)
        ids[0] = 2  # [CLS]
        mask = (np.arange(seq) < length).astype(np.int64)
        segments = ((np.arange(seq) >= rng.randint(2, length - 1)) & (mask > 0)).astype(np.int64)
        k = rng.randint(1, pred + 1)
        positions = np.sort(rng.choice(np.arange(1, length), k, replace=False))
        labels = ids[positions].copy()
        ids[positions] = 4  # [MASK]
        pad = pred - k
        out["input_ids"].append(ids)
        out["input_mask"].append(mask)
        out["segment_ids"].append(segments)
        out["masked_lm_positions"].append(np.pad(positions, (0, pad)))
        out["masked_lm_ids"].append(np.pad(labels, (0, pad)))
        out["masked_lm_weights"].append(np.array([1.0] * k + [0.0] * pad, np.float32))
        out["next_sentence_labels"].append(np.array([rng.randint(2)], np.int64))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["example_id"] = np.arange(first_id, first_id + n, dtype=np.int64)[:, None]
    return arrays


def write_records(path, arrays, with_id=False, drop=(), as_int=()):
    """Writes arrays as tf.train.Example records (optionally an example_id feature, or a feature
    left out / written as int64)."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(len(arrays["input_ids"])):
            feature = {}
            for name, values in arrays.items():
                if name in drop or (name == "example_id" and not with_id):
                    continue
                if values.dtype == np.float32 and name not in as_int:
                    feature[name] = tf.train.Feature(
                        float_list=tf.train.FloatList(value=values[i].tolist()))
                else:
                    feature[name] = tf.train.Feature(
                        int64_list=tf.train.Int64List(value=values[i].astype(np.int64).tolist()))
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


def spec_of(arrays, without=()):
    """{name: FixedLenFeature} of make_examples' arrays (float32 arrays are float features)."""
    return {name: tf.io.FixedLenFeature(values.shape[1:],
                                        tf.float32 if values.dtype == np.float32 else tf.int64)
            for name, values in arrays.items() if name not in without}


# -- check_tfrecord_features ----------------------------------------------------------------------

def test_check_names_the_file_and_what_is_wrong(tmp_path):
    arrays = make_examples(2)
    features = spec_of(arrays, without=("example_id",))
    good = write_records(tmp_path / "good.tfrecord", arrays)
    assert input_pipeline.check_tfrecord_features([good], features) == [good]
    as_int = write_records(tmp_path / "int_weights.tfrecord", arrays, as_int=("masked_lm_weights",))
    with pytest.raises(ValueError, match=r"int_weights.tfrecord: feature 'masked_lm_weights' is "
                                         r"an int64_list but float32"):
        input_pipeline.check_tfrecord_features([good, as_int], features)
    missing = write_records(tmp_path / "no_nsp.tfrecord", arrays, drop=("next_sentence_labels",))
    with pytest.raises(ValueError, match=r"no_nsp.tfrecord: feature 'next_sentence_labels' is "
                                         r"missing; the record has input_ids"):
        input_pipeline.check_tfrecord_features([missing], features)
    # A feature with a default may be missing.
    optional = dict(features, next_sentence_labels=tf.io.FixedLenFeature([1], tf.int64, [0]))
    assert input_pipeline.check_tfrecord_features([missing], optional) == [missing]
    short = write_records(tmp_path / "seq16.tfrecord", make_examples(2, seq=16))
    with pytest.raises(ValueError, match=r"seq16.tfrecord: input_ids has 16 values but 32 were "
                                         r"expected \(shape \[32\]\)"):
        input_pipeline.check_tfrecord_features([short], features)
    with pytest.raises(ValueError, match=r"input_ids has 16 values but --max_seq_length=32 "
                                         r"expects 32"):
        input_pipeline.check_tfrecord_features([short], features,
                                               {"input_ids": "--max_seq_length=32"})


def test_check_unreadable_files_and_files_without_records(tmp_path, caplog):
    features = spec_of(make_examples(1))
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(b"this is not a TFRecord file, just some text\n" * 4)
    with pytest.raises(ValueError, match=r"corrupt.tfrecord: not a readable TFRecord file"):
        input_pipeline.check_tfrecord_features([str(corrupt)], features)
    not_example = str(tmp_path / "not_example.tfrecord")
    with tf.io.TFRecordWriter(not_example) as writer:
        writer.write(b"garbage")
    with pytest.raises(ValueError, match=r"not_example.tfrecord: the first record is not a "
                                         r"tf.train.Example"):
        input_pipeline.check_tfrecord_features([not_example], features)
    empty = str(tmp_path / "empty.tfrecord")
    with tf.io.TFRecordWriter(empty):
        pass
    good = write_records(tmp_path / "good.tfrecord", make_examples(2), with_id=True)
    assert input_pipeline.check_tfrecord_features([empty, good], features) == [good]
    assert "empty.tfrecord: no records; skipping it" in caplog.text
    with pytest.raises(ValueError, match="no input file holds a record: .*empty.tfrecord"):
        input_pipeline.check_tfrecord_features([empty], features)


# -- tfrecord_dataset ------------------------------------------------------------------------------

def id_features():
    return spec_of(make_examples(1))


@pytest.fixture(scope="module")
def id_files(tmp_path_factory):
    """The two files again, with an example_id feature to tell the records apart."""
    root = tmp_path_factory.mktemp("with_ids")
    return [write_records(root / f"ids-{i}.tfrecord",
                          make_examples(n, seed=i, first_id=sum(FILE_SIZES[:i])), with_id=True)
            for i, n in enumerate(FILE_SIZES)]


def ids_of(dataset, batches):
    return np.concatenate([b["example_id"][:, 0].numpy() for b in dataset.take(batches)])


def test_training_pipeline_shapes_dtypes_and_repeat(id_files):
    dataset = input_pipeline.tfrecord_dataset(id_files, id_features(), 8, is_training=True)
    spec = dataset.element_spec
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert spec[name].shape == [8, SEQ] and spec[name].dtype == tf.int32, name
    assert spec["masked_lm_positions"].shape == [8, PRED]
    assert spec["masked_lm_ids"].dtype == tf.int32
    assert spec["masked_lm_weights"].shape == [8, PRED]
    assert spec["masked_lm_weights"].dtype == tf.float32
    assert spec["next_sentence_labels"].shape == [8, 1]
    # 320 examples from 21 records: it repeats, and sees them all. Records are drawn at random from
    # a buffer of 100, so a given record is missed with probability about (20/21)^320 < 2e-7 (at 80
    # examples it was about 2%, and a record went missing in one CI run out of a few).
    ids = ids_of(dataset, 40)
    assert len(ids) == 320 and set(ids) == set(range(sum(FILE_SIZES)))
    per_replica = input_pipeline.tfrecord_dataset(
        id_files, id_features(), 8, is_training=True,
        input_context=tf.distribute.InputContext(1, 0, num_replicas_in_sync=2))
    assert per_replica.element_spec["input_ids"].shape == [4, SEQ]


@pytest.mark.parametrize("use_both_files", [True, False])
def test_training_pipelines_read_disjoint_data(id_files, use_both_files):
    """Two input pipelines: each reads one file (2 files), or every other record (1 file)."""
    files = id_files if use_both_files else id_files[:1]
    seen = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index,
                                             num_replicas_in_sync=2)
        dataset = input_pipeline.tfrecord_dataset(files, id_features(), 8, True, context)
        seen.append(set(ids_of(dataset, 12)))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(FILE_SIZES[0] if not use_both_files
                                          else sum(FILE_SIZES)))


def test_eval_pipeline_reads_every_record_once_in_file_order(id_files):
    dataset = input_pipeline.tfrecord_dataset(id_files, id_features(), 8, is_training=False)
    sizes = [len(b["example_id"]) for b in dataset]
    assert sizes == [8, 8, 5]  # no repeat, the remainder kept
    np.testing.assert_array_equal(ids_of(dataset, 3), np.arange(sum(FILE_SIZES)))
    batches = list(input_pipeline.tfrecord_dataset(id_files, id_features(), 8, is_training=False,
                                                   drop_remainder=True))
    assert len(batches) == 2


def test_per_replica_batch_size():
    assert input_pipeline.per_replica_batch_size(None, 32) == 32
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=4)
    assert input_pipeline.per_replica_batch_size(context, 32) == 8


# -- Feature caches -------------------------------------------------------------------------------

def test_file_sha256(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(3 << 20))  # several of the 1 MB blocks it reads
    assert input_pipeline.file_sha256(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def cache_writer(values, calls):
    def write_records(writer):
        calls.append(values)
        for value in values:
            writer.write(value)
        return {"records": len(values)}
    return write_records


def read_cache(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def test_cached_tfrecord_is_reused_only_for_the_same_fingerprint(tmp_path):
    path, calls = str(tmp_path / "train.tf_record"), []
    build = input_pipeline.cached_tfrecord
    assert build(path, {"vocab": "abc", "shape": (1, 2)}, cache_writer([b"a", b"b"], calls)) \
        == ({"records": 2}, False)
    # Compared as stored in JSON: the tuple came back as a list, and is still the same.
    assert build(path, {"vocab": "abc", "shape": [1, 2]}, cache_writer([b"x"], calls)) \
        == ({"records": 2}, True)
    assert read_cache(path) == [b"a", b"b"] and len(calls) == 1
    with open(path + ".json") as f:
        assert json.load(f) == {"fingerprint": {"vocab": "abc", "shape": [1, 2]},
                                "statistics": {"records": 2}}
    assert build(path, {"vocab": "abd", "shape": [1, 2]}, cache_writer([b"x"], calls)) \
        == ({"records": 1}, False)
    assert read_cache(path) == [b"x"]
    os.remove(path)  # the records gone, the fingerprint left: rebuilt
    assert build(path, {"vocab": "abd", "shape": [1, 2]}, cache_writer([b"y"], calls))[1] is False
    assert read_cache(path) == [b"y"] and sorted(os.listdir(tmp_path)) == [
        "train.tf_record", "train.tf_record.json"]


def test_an_interrupted_build_is_not_trusted(tmp_path):
    path = str(tmp_path / "train.tf_record")
    input_pipeline.cached_tfrecord(path, "v1", cache_writer([b"old"], []))

    def failing(writer):
        writer.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        input_pipeline.cached_tfrecord(path, "v2", failing)
    # The old records are left, but without their fingerprint: the next run rebuilds them.
    assert sorted(os.listdir(tmp_path)) == ["train.tf_record"]
    assert read_cache(path) == [b"old"]
    assert input_pipeline.cached_tfrecord(path, "v1", cache_writer([b"new"], [])) \
        == ({"records": 1}, False)
