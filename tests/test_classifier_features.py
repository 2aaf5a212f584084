"""classifier_features: the records of classifier examples, and their cache's fingerprint."""
import json
import logging
import os
import random
import shutil

import numpy as np
import pytest
import tensorflow as tf

import classifier_data
import classifier_features
import tokenization
import input_pipeline

SEQ = 32
WORDS = ("the a cat dog bird fish horse sat ran flew swam slept on under near by mat tree river "
         "road hill red blue green big small old young quickly slowly and then is was").split()


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "de"] + WORDS)
                    + "\n")
    return str(path)


def sentence(rng, n=None):
    return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(3, 8))) + " ."


def cache_inputs(vocab_file, tmp_path, texts=None, **settings):
    """(examples, task, FeatureSettings) for a training file in the SST-2 layout."""
    rng = random.Random(3)
    texts = texts or [sentence(rng) for _ in range(6)]
    with open(tmp_path / "train.tsv", "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    task = classifier_data.get_task("sst-2")
    settings = dict(dict(vocab_file=vocab_file, do_lower_case=True, max_seq_length=SEQ),
                    **settings)
    return (task.train_examples(str(tmp_path)), task,
            classifier_features.FeatureSettings(**settings))


def build(path, examples, task, settings):
    return classifier_features.cached_features(str(path), examples, task, settings, "train set")


def identity(path):
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns


def assert_nothing_half_written(directory):
    leftovers = [name for name in os.listdir(directory) if ".tmp" in name]
    assert not leftovers, leftovers


def parse(cache, spec):
    return input_pipeline.parse_examples(tf.stack(list(tf.data.TFRecordDataset(str(cache)))), spec)


@pytest.mark.parametrize("change", ["max_seq_length", "vocab", "do_lower_case", "text", "labels"])
def test_feature_cache_is_reused_and_rebuilt_when_an_input_changes(vocab_file, tmp_path, change):
    examples, task, settings = cache_inputs(vocab_file, tmp_path)
    cache = tmp_path / "train.tf_record"
    build(cache, examples, task, settings)
    first = identity(cache)
    build(cache, examples, task, classifier_features.FeatureSettings(vocab_file, True, SEQ))
    assert identity(cache) == first  # same inputs: reused
    if change == "max_seq_length":
        settings = classifier_features.FeatureSettings(vocab_file, True, 16)
    elif change == "vocab":
        vocab = tmp_path / "vocab.txt"
        shutil.copy(vocab_file, vocab)
        build(cache, examples, task, classifier_features.FeatureSettings(str(vocab), True, SEQ))
        assert identity(cache) == first  # a copy: the same contents
        with open(vocab, "a") as f:
            f.write("extra\n")
        settings = classifier_features.FeatureSettings(str(vocab), True, SEQ)
    elif change == "do_lower_case":
        settings = classifier_features.FeatureSettings(vocab_file, False, SEQ)
    elif change == "text":
        examples[2].text_a += " again"
    else:
        task = classifier_data.get_task("generic", text_a_column="sentence",
                                        label_column="label", labels=["1", "0"])
    build(cache, examples, task, settings)
    assert identity(cache) != first
    parsed = parse(cache, classifier_features.name_to_features(
        settings.max_seq_length, "classification", 2))
    assert parsed["input_ids"].shape == [len(examples), settings.max_seq_length]
    assert_nothing_half_written(tmp_path)


def test_overlong_sequences_are_truncated_and_counted(vocab_file, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(4)
    texts = [sentence(rng, 40), sentence(rng, 3), sentence(rng, 31), sentence(rng, 29)]
    examples, task, settings = cache_inputs(vocab_file, tmp_path, texts)
    cache = tmp_path / "train.tf_record"
    build(cache, examples, task, settings)
    # 40 and 31 words plus "." exceed 32 - 2 tokens; 29 + "." fits exactly.
    assert "train set: 2 of 4 examples are longer than --max_seq_length=32" in caplog.text
    with open(str(cache) + ".json") as f:
        assert json.load(f)["statistics"] == {"truncated": 2}
    caplog.clear()
    build(cache, examples, task, settings)  # reused: the warning again, from the fingerprint
    assert "2 of 4 examples are longer" in caplog.text
    parsed = parse(cache, classifier_features.name_to_features(SEQ, "classification", 2))
    ids = parsed["input_ids"].numpy()
    assert ids[0, 0] == 2 and ids[0, -1] == 3 and parsed["input_mask"].numpy()[0].all()
    assert ids[3, 31] == 3 and ids[1, 5] == 3 and parsed["input_mask"].numpy()[1].sum() == 6


# -- Records --------------------------------------------------------------------------------------

def generic(**options):
    return classifier_data.get_task("generic", text_a_column=0, label_column=1, **options)


@pytest.mark.parametrize("task, label, expected", [
    (generic(labels=["b", "a"]), "a", [1]),
    (generic(labels=["b", "a"]), None, [0]),          # unlabelled (test) examples get 0
    (generic(regression=True), 2.5, [2.5]),
    (generic(regression=True), None, [0.0]),
    (generic(multi_label=True, labels=["x", "y", "z"]), ["z", "x"], [1, 0, 1]),
    (generic(multi_label=True, labels=["x", "y", "z"]), None, [0, 0, 0]),
])
def test_a_record_holds_the_pair_and_the_label_of_its_kind(vocab_file, task, label, expected):
    tokenizer = tokenization.FullTokenizer(vocab_file, True)
    example = classifier_data.InputExample("train-0", "the cat sat .", "a dog", label)
    record, truncated = classifier_features.encode_example(tokenizer, task, example, 12)
    parsed = input_pipeline.parse_examples(tf.constant([record]), classifier_features.name_to_features(
        12, task.kind, task.num_labels))
    pair = tokenization.encode_pair(tokenizer, example.text_a, example.text_b, 12)
    assert not truncated and parsed["input_ids"].numpy()[0].tolist() == pair.input_ids
    assert parsed["segment_ids"].numpy()[0].tolist() == pair.segment_ids
    assert parsed["input_mask"].numpy()[0].tolist() == pair.input_mask
    assert np.reshape(parsed["label_ids"].numpy()[0], [-1]).tolist() == expected
    assert parsed["label_ids"].dtype == (tf.float32 if task.is_regression else tf.int32)


def test_distillation_records_carry_the_teachers_logits_in_a_fixed_shuffled_order(vocab_file,
                                                                                  tmp_path):
    task = generic(labels=["b", "a"])
    examples = [classifier_data.InputExample(f"transfer-{i}", sentence(random.Random(i)),
                                             label="a" if i % 3 == 0 else None)
                for i in range(8)]
    logits = np.arange(16, dtype=np.float32).reshape(8, 2)
    settings = classifier_features.FeatureSettings(vocab_file, True, SEQ)
    paths = [classifier_features.cached_features(str(tmp_path / name), examples, task, settings,
                                                 "transfer.tsv", logits)
             for name in ("one.tf_record", "two.tf_record")]
    spec = classifier_features.name_to_features(SEQ, task.kind, 2, distillation=True)
    first, second = parse(paths[0], spec), parse(paths[1], spec)
    order = (first["teacher_logits"].numpy()[:, 0] // 2).astype(int)
    assert sorted(order) == list(range(8)) and list(order) != list(range(8))
    np.testing.assert_array_equal(first["teacher_logits"].numpy(), logits[order])
    np.testing.assert_array_equal(second["teacher_logits"].numpy(), logits[order])
    assert first["has_label"].numpy().tolist() == [int(i % 3 == 0) for i in order]
    assert first["label_ids"].numpy().tolist() == [1 if i % 3 == 0 else 0 for i in order]
    # The teacher's logits are part of the fingerprint.
    before = identity(paths[0])
    classifier_features.cached_features(paths[0], examples, task, settings, "transfer.tsv",
                                        logits + 1)
    assert identity(paths[0]) != before


def test_an_unknown_label_names_the_set_line_and_example(vocab_file, tmp_path):
    task = generic(labels=["b", "a"])
    examples = [classifier_data.InputExample("dev-0", "the cat .", label="a", line=2),
                classifier_data.InputExample("dev-1", "the dog .", label="c", line=3)]
    settings = classifier_features.FeatureSettings(vocab_file, True, SEQ)
    with pytest.raises(classifier_data.DataError, match=r"dev\.tsv, line 3 \(example dev-1\): "
                                                        r"unknown label 'c'"):
        classifier_features.cached_features(str(tmp_path / "eval.tf_record"), examples, task,
                                            settings, "dev.tsv")
    assert not (tmp_path / "eval.tf_record").exists()
    assert_nothing_half_written(tmp_path)


def test_build_caches_names_each_set_after_its_mode_and_split(vocab_file, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    task = generic(labels=["b", "a"])
    one = [classifier_data.InputExample("x-0", "the cat .", label="a")]
    sets = [classifier_features.ExampleSets("train", {"train": one}, "data ({split} set)"),
            classifier_features.ExampleSets("eval", {"dev_matched": one, "dev_mismatched": one},
                                            "data ({split} set)")]
    caches = classifier_features.build_caches(
        str(tmp_path), task, classifier_features.FeatureSettings(vocab_file, True, SEQ), sets)
    assert caches == {
        ("train", "train"): str(tmp_path / "train.tf_record"),
        ("eval", "dev_matched"): str(tmp_path / "eval.tf_record"),
        ("eval", "dev_mismatched"): str(tmp_path / "eval_mismatched.tf_record")}
    assert all(os.path.exists(path) for path in caches.values())
    assert "from data (dev_mismatched set)" in caplog.text
