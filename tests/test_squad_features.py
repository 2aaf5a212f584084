"""squad_features: SQuAD windows as records, the window file, and the cache's fingerprint."""
import json
import logging
import os

import pytest
import tensorflow as tf

import squad_data
import squad_features
import input_pipeline

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "did", "she", "go", "?", "who",
         "left", "to", "riverton", "."] + [str(n) for n in range(1, 41)]
CONTEXT = "She went to Riverton . " + " ".join(str(n) for n in range(1, 31))


@pytest.fixture(name="vocab_file")
def fixture_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(token + "\n" for token in WORDS))
    return str(path)


def squad_file(path, context=CONTEXT):
    qas = [{"id": "q1", "question": "Where did she go?",
            "answers": [{"text": "Riverton", "answer_start": context.index("Riverton")}]},
           {"id": "q2", "question": "Who left?", "answers": [{"text": "She", "answer_start": 0}]}]
    path.write_text(json.dumps({"version": "1.1", "data": [
        {"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}))
    return str(path)


def settings(vocab_file, **overrides):
    values = dict(vocab_file=vocab_file, do_lower_case=True, max_seq_length=24, doc_stride=8,
                  max_query_length=10, version_2_with_negative=False)
    return squad_features.FeatureSettings(**{**values, **overrides})


def windows(settings_, path, is_training):
    examples, _ = squad_data.read_squad_examples(path, is_training, False)
    features, _ = squad_data.convert_examples_to_features(
        examples, settings_.tokenizer, settings_.max_seq_length, settings_.doc_stride,
        settings_.max_query_length, is_training)
    return examples, features


def parse(path, spec):
    return input_pipeline.parse_examples(tf.stack(list(tf.data.TFRecordDataset(path))), spec)


@pytest.mark.parametrize("is_training", [True, False])
def test_records_hold_each_windows_ids_and_training_positions(vocab_file, tmp_path,
                                                              is_training):
    s = settings(vocab_file)
    path = squad_file(tmp_path / "squad.json")
    examples, features = windows(s, path, is_training)
    assert len(features) > len(examples)  # the long context makes several windows
    records = str(tmp_path / "r.tf_record")
    assert (squad_features.cached_features(records, path, examples, s, is_training) is None) \
        == is_training
    parsed = parse(records, squad_features.name_to_features(24, is_training))
    assert parsed["unique_ids"].numpy().tolist() == [f.unique_id for f in features]
    for key in ("input_ids", "input_mask", "segment_ids"):
        assert parsed[key].numpy().tolist() == [getattr(f, key) for f in features]
    if is_training:
        assert parsed["start_positions"].numpy().tolist() == [f.start_position for f in features]
        assert parsed["end_positions"].numpy().tolist() == [f.end_position for f in features]
        assert set(parsed["is_impossible"].numpy().tolist()) == {0}
    else:
        assert set(parsed) == {"unique_ids", "input_ids", "input_mask", "segment_ids"}


def test_window_file_round_trip_keeps_what_post_processing_needs(vocab_file, tmp_path):
    _, features = windows(settings(vocab_file), squad_file(tmp_path / "squad.json"), False)
    path = str(tmp_path / "windows.jsonl")
    squad_features.write_window_file(path, features)
    back = squad_features.read_window_file(path)
    keep = ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
            "token_is_max_context")
    assert [[getattr(f, k) for k in keep] for f in back] == \
        [[getattr(f, k) for k in keep] for f in features]


def test_prediction_cache_is_reused_and_rebuilt(vocab_file, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = squad_file(tmp_path / "squad.json")
    records = str(tmp_path / "eval.tf_record")
    s = settings(vocab_file)
    examples, _ = windows(s, path, False)
    built = squad_features.cached_features(records, path, examples, s, False)
    stamp = os.stat(records).st_mtime_ns
    reused = squad_features.cached_features(records, path, examples, s, False)
    assert "Reused" in caplog.text and os.stat(records).st_mtime_ns == stamp
    assert [f.tokens for f in reused] == [f.tokens for f in built]
    # Without its window file the cache cannot serve prediction: rebuilt.
    os.remove(squad_features.features_path(records))
    assert [f.tokens for f in squad_features.cached_features(
        records, path, examples, s, False)] == [f.tokens for f in built]
    assert os.stat(records).st_mtime_ns != stamp
    # Another stride, another input file: other windows, rebuilt.
    stride = squad_features.cached_features(records, path, examples,
                                            settings(vocab_file, doc_stride=4), False)
    assert len(stride) > len(built)
    other = squad_file(tmp_path / "other.json", CONTEXT + " 31")
    examples, _ = windows(s, other, False)
    changed = squad_features.cached_features(records, other, examples, s, False)
    assert changed[-1].tokens[-2] == "31"
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]
