"""tagging_features.py: windows as records (padded, parsed back unchanged), training records in a
fixed shuffled order, and caches rebuilt exactly when what they were made from changes."""
import os

import numpy as np
import pytest
import tensorflow as tf

import tagging_data
import tagging_features
from test_tagging_data import PIECES, sentence

SEQ = 8
TAGS = ["O", "B-LOC", "B-PER"]


@pytest.fixture()
def settings(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(PIECES) + "\n")
    return tagging_features.FeatureSettings(str(tmp_path / "vocab.txt"), True, SEQ, 2)


def tagged(n=6):
    long = sentence("Ada lives in Riverton near Ashford and the mill .",
                    "B-PER O O B-LOC O B-LOC O O O O")
    return tagging_data.TaggedFile("x.txt", [sentence("Ada lives in Riverton .",
                                                      "B-PER O O B-LOC O")] * (n - 1) + [long])


def read_records(path):
    dataset = tagging_features.dataset(path, SEQ, batch_size=100)
    return {name: value.numpy() for name, value in next(iter(dataset)).items()}


def test_records_hold_the_windows_padded(settings, tmp_path):
    data = tagged()
    path = str(tmp_path / "eval.tf_record")
    stats = tagging_features.cached_features(path, data, TAGS, settings, is_training=False)
    windows = list(tagging_data.windows(settings.tokenizer, data.sentences, TAGS,
                                        settings.layout, False))
    assert stats["windows"] == len(windows) > len(data.sentences)
    records = read_records(path)
    for row, w in enumerate(windows):
        n = len(w.input_ids)
        assert records["input_ids"][row].tolist() == w.input_ids + [0] * (SEQ - n)
        assert records["input_mask"][row].tolist() == [1] * n + [0] * (SEQ - n)
        assert records["label_ids"][row].tolist() == w.label_ids + [0] * (SEQ - n)
        assert records["word_index"][row].tolist() == w.word_index + [-1] * (SEQ - n)
        assert records["sentence_index"][row] == w.sentence_index
    assert not records["segment_ids"].any()
    with pytest.raises(ValueError, match="does not fit"):
        tagging_features.serialize(windows[0], 3)


def test_training_records_are_shuffled_the_same_way_every_time(settings, tmp_path):
    data = tagging_data.TaggedFile("x.txt", [
        sentence(" ".join(["mill"] * k), " ".join(["O"] * k)) for k in range(1, 6)])
    paths = [str(tmp_path / f"train{i}.tf_record") for i in range(2)]
    for path in paths:
        tagging_features.cached_features(path, data, TAGS, settings, is_training=True)
    first, second = (read_records(p) for p in paths)
    np.testing.assert_array_equal(first["input_ids"], second["input_ids"])
    lengths = first["input_mask"].sum(1).tolist()
    assert sorted(lengths) == [3, 4, 5, 6, 7] and lengths != sorted(lengths)


def test_caches_are_rebuilt_when_their_inputs_change(settings, tmp_path):
    path = str(tmp_path / "train.tf_record")

    def build(data=None, tags=TAGS, changed=settings):
        tagging_features.cached_features(path, data or tagged(), tags, changed, True)
        stat = os.stat(path)
        return stat.st_ino, stat.st_mtime_ns

    first = build()
    assert build() == first
    changes = [dict(tags=TAGS + ["I-PER"]), dict(data=tagged(5)),
               dict(changed=tagging_features.FeatureSettings(settings.vocab_file, True, SEQ, 3)),
               dict(changed=tagging_features.FeatureSettings(settings.vocab_file, False, SEQ, 2))]
    for change in changes:
        before = build()
        assert build(**change) != before, change
    # Another vocabulary with the same name.
    before = build()
    with open(settings.vocab_file, "a") as f:
        f.write("extra\n")
    assert build(changed=tagging_features.FeatureSettings(settings.vocab_file, True, SEQ, 2)) \
        != before
    assert tf.io.gfile.exists(path + ".json")
