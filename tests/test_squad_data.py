"""Tests for squad_data.py: reading SQuAD JSON, windowing into features, and predictions from
crafted logits, on a tiny vocabulary. No model, no TensorFlow."""
import io
import json
import logging
import math

import numpy as np
import pytest

import squad_data
import tokenization
from squad_data import RawResult, SquadError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "she", "moved", "to", "riverton", ".", "then", "left", "where", "did", "go", "?",
    "the", "leader", "was", "john", "smith", "(", "1895", "-", "1943", ")", "what", "year",
    "born", "number", "is", "it", "japanese", "industry", "country", "run", "##ning", "##s",
    "steve", "'", "s", "cafe", "a", "b",
] + [str(n) for n in range(1, 41)]

RIVERTON = "She moved to Riverton.  Then   she left."
LONG_CONTEXT = " ".join(str(n) for n in range(1, 31))   # 30 words, one token each


@pytest.fixture(name="tokenizer")
def fixture_tokenizer(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(token + "\n" for token in SPECIAL + WORDS), encoding="utf-8")
    return tokenization.FullTokenizer(str(path), do_lower_case=True)


def _qa(qas_id, question, answer=None, answer_start=None, **extra):
    answers = [] if answer is None else [{"text": answer, "answer_start": answer_start}]
    return {"id": qas_id, "question": question, "answers": answers, **extra}


def _at(context, answer, occurrence=0):
    """(answer, its character offset in context)."""
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    return answer, start


def _write_squad(tmp_path, paragraphs, name="squad.json"):
    """Writes [(context, [qa, ...]), ...] as a one-article SQuAD file."""
    data = {"version": "test", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas} for context, qas in paragraphs]}]}
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return str(path)


def _read(tmp_path, paragraphs, is_training=True, v2=False):
    return squad_data.read_squad_examples(_write_squad(tmp_path, paragraphs), is_training, v2)


def _features(examples, tokenizer, is_training=True, max_seq_length=24, doc_stride=8,
              max_query_length=10):
    return squad_data.convert_examples_to_features(examples, tokenizer, max_seq_length,
                                                   doc_stride, max_query_length, is_training)


def _answer_tokens(feature):
    return feature.tokens[feature.start_position:feature.end_position + 1]


# ---------------------------------------------------------------------------
# Reading.
# ---------------------------------------------------------------------------


def test_split_context_words_and_char_offsets():
    words, offsets = squad_data.split_context("  ab  c\nd ")
    assert words == ["ab", "c", "d"]
    # Whitespace maps to the word before it; -1 before the first word.
    assert offsets == [-1, -1, 0, 0, 0, 0, 1, 1, 2, 2]
    # The original's whitespace set: " \t\r\n" and U+202F; U+00A0 stays inside a word.
    words, _ = squad_data.split_context("x\ty\r\nz\u202fw\u00a0v")
    assert words == ["x", "y", "z", "w\u00a0v"]


def test_read_training_maps_answers_to_words(tmp_path):
    qas = [_qa("q1", "Where did she go?", *_at(RIVERTON, "Riverton")),
           _qa("q2", "What then?", *_at(RIVERTON, "she left")),
           _qa("q3", "Spaces?", "Riverton.  Then", RIVERTON.index("Riverton"))]
    examples, stats = _read(tmp_path, [(RIVERTON, qas)])
    assert [e.qas_id for e in examples] == ["q1", "q2", "q3"]
    assert examples[0].doc_tokens == ["She", "moved", "to", "Riverton.", "Then", "she", "left."]
    assert all(e.doc_tokens is examples[0].doc_tokens for e in examples)   # shared per paragraph
    # "Riverton" lies inside the word "Riverton.": the word span is kept (the original's check is
    # a substring test).
    assert (examples[0].start_position, examples[0].end_position) == (3, 3)
    assert examples[0].orig_answer_text == "Riverton"
    assert (examples[1].start_position, examples[1].end_position) == (5, 6)
    assert (examples[2].start_position, examples[2].end_position) == (3, 4)
    assert stats["questions"] == 3 and stats["examples"] == 3
    assert stats["skipped_answer_mismatch"] == 0


def test_read_prediction_keeps_every_question_without_answers(tmp_path):
    qas = [_qa("q1", "Where?", "not in the text", 0),
           {"id": "q2", "question": "Two answers?", "answers": [
               {"text": "She", "answer_start": 0}, {"text": "moved", "answer_start": 4}]},
           {"id": "q3", "question": "No answers key?"}]
    examples, stats = _read(tmp_path, [(RIVERTON, qas)], is_training=False)
    assert [e.qas_id for e in examples] == ["q1", "q2", "q3"]
    assert all(e.start_position is None and e.orig_answer_text is None for e in examples)
    assert stats["skipped_answer_mismatch"] == 0


def test_read_v2_impossible_questions(tmp_path):
    qas = [_qa("q1", "Where did she go?", *_at(RIVERTON, "Riverton"), is_impossible=False),
           {"id": "q2", "question": "Why?", "answers": [], "is_impossible": True,
            "plausible_answers": [{"text": "left", "answer_start": 35}]}]
    examples, stats = _read(tmp_path, [(RIVERTON, qas)], v2=True)
    assert not examples[0].is_impossible and examples[0].start_position == 3
    impossible = examples[1]
    assert impossible.is_impossible
    assert (impossible.start_position, impossible.end_position) == (-1, -1)
    assert impossible.orig_answer_text == ""
    assert stats["impossible"] == 1


def test_answer_mismatch_and_outside_context_are_skipped_and_counted(tmp_path, caplog):
    qas = [_qa("good", "Where?", *_at(RIVERTON, "Riverton")),
           _qa("wrong_offset", "Where?", "Riverton", 0),          # "She" is there
           _qa("outside", "Where?", "Riverton", 1000),
           _qa("negative", "Where?", "She", -3)]
    with caplog.at_level(logging.WARNING, logger="squad_data"):
        examples, stats = _read(tmp_path, [(RIVERTON, qas)])
    assert [e.qas_id for e in examples] == ["good"]
    assert stats["skipped_answer_mismatch"] == 3
    assert stats["skipped_answer_outside_context"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3 of 4" in warnings[0] and "wrong_offset, outside, negative" in warnings[0]


def test_training_needs_exactly_one_answer(tmp_path):
    qa = {"id": "two", "question": "Which?", "answers": [
        {"text": "She", "answer_start": 0}, {"text": "moved", "answer_start": 4}]}
    path = _write_squad(tmp_path, [(RIVERTON, [qa])])
    with pytest.raises(SquadError, match=r"squad\.json: question 'two': .*exactly 1 answer"):
        squad_data.read_squad_examples(path, True, False)


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "data": [\n    {"paragraphs": [}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(SquadError, match=r"bad\.json: not valid JSON: .* line 3, column 21"):
        squad_data.read_squad_examples(str(path), False, False)


def test_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"data": [{"paragraphs": [{"context": "caf\xe9"}]}]}'.encode("latin-1"))
    with pytest.raises(SquadError, match=r"latin1\.json: not valid UTF-8 .*line 1"):
        squad_data.read_squad_examples(str(path), False, False)


@pytest.mark.parametrize("data, message", [
    ({"version": "1.1"}, r"the top level: missing 'data'"),
    ({"data": []}, r"no questions in .*squad\.json"),
    ({"data": [{"paragraphs": [{"context": "x", "qas": []}]}]}, r"no questions in"),
    ({"data": [{"title": "t"}]}, r"article 0: missing 'paragraphs'"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, r"article 0, paragraph 0: missing 'context'"),
    ({"data": [{"paragraphs": [{"context": "x", "qas": [{"question": "?"}]}]}]},
     r"article 0, paragraph 0, question 0: missing 'id'"),
    ({"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q7"}]}]}]},
     r"question 'q7': missing 'question'"),
    ({"data": [{"paragraphs": [{"context": "x", "qas": [
        {"id": "q1", "question": "?"}, {"id": "q1", "question": "?"}]}]}]},
     r"question 'q1': duplicate question id"),
])
def test_malformed_squad_errors(tmp_path, data, message):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SquadError, match=message):
        squad_data.read_squad_examples(str(path), False, False)


def test_missing_answer_field_in_training_names_question(tmp_path):
    qa = {"id": "q9", "question": "?", "answers": [{"text": "She"}]}
    with pytest.raises(SquadError, match=r"question 'q9': missing 'answer_start'"):
        _read(tmp_path, [(RIVERTON, [qa])])


def test_open_fn_is_used(tmp_path):
    data = json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "q", "question": "?"}]}]}]}).encode("utf-8")
    opened = []

    def open_fn(path, mode):
        opened.append((path, mode))
        return io.BytesIO(data)

    examples, _ = squad_data.read_squad_examples("gs://bucket/dev.json", False, False, open_fn)
    assert opened == [("gs://bucket/dev.json", "rb")]
    assert examples[0].doc_tokens == ["a", "b"]


# ---------------------------------------------------------------------------
# Features.
# ---------------------------------------------------------------------------


def test_feature_layout_and_punctuation_answer(tokenizer, tmp_path):
    examples, _ = _read(tmp_path, [(RIVERTON, [_qa("q1", "Where did she go?",
                                                    *_at(RIVERTON, "Riverton"))])])
    features, stats = _features(examples, tokenizer)
    assert len(features) == 1 and stats["features"] == 1
    f = features[0]
    query = ["where", "did", "she", "go", "?"]
    doc = ["she", "moved", "to", "riverton", ".", "then", "she", "left", "."]
    assert f.tokens == ["[CLS]"] + query + ["[SEP]"] + doc + ["[SEP]"]
    assert f.unique_id == 1000000000 and f.example_index == 0 and f.doc_span_index == 0
    n = len(f.tokens)
    assert f.input_ids == tokenizer.convert_tokens_to_ids(f.tokens) + [0] * (24 - n)
    assert f.input_mask == [1] * n + [0] * (24 - n)
    assert f.segment_ids == [0] * 7 + [1] * 10 + [0] * (24 - n)
    assert f.token_to_orig_map == {7: 0, 8: 1, 9: 2, 10: 3, 11: 3, 12: 4, 13: 5, 14: 6, 15: 6}
    assert all(f.token_is_max_context.values()) and sorted(f.token_is_max_context) == \
        list(range(7, 16))
    # The word is "Riverton.", but the improved span drops the "." token.
    assert _answer_tokens(f) == ["riverton"] and (f.start_position, f.end_position) == (10, 10)
    assert stats["answers_out_of_span"] == 0


def test_improve_answer_span_finds_the_exact_sub_token(tokenizer, tmp_path):
    context = "The leader was John Smith (1895-1943)."
    qas = [_qa("born", "What year?", *_at(context, "1895")),
           _qa("died", "What year?", *_at(context, "1943"))]
    examples, _ = _read(tmp_path, [(context, qas)])
    assert examples[0].start_position == examples[0].end_position == 5   # "(1895-1943)."
    features, _ = _features(examples, tokenizer)
    assert _answer_tokens(features[0]) == ["1895"]
    assert _answer_tokens(features[1]) == ["1943"]


def test_answer_inside_a_token_keeps_the_word(tokenizer, tmp_path):
    # The original's own example: "Japan" inside "Japanese" cannot be isolated.
    context = "The Japanese industry"
    examples, _ = _read(tmp_path, [(context, [_qa("q", "What country?",
                                                  *_at(context, "Japan"))])])
    features, _ = _features(examples, tokenizer)
    assert _answer_tokens(features[0]) == ["japanese"]


def test_word_pieces_map_to_their_words(tokenizer, tmp_path):
    context = "running runs"
    examples, _ = _read(tmp_path, [(context, [_qa("q", "What?", *_at(context, "runs"))])])
    f = _features(examples, tokenizer)[0][0]
    assert f.tokens[4:8] == ["run", "##ning", "run", "##s"]   # after [CLS] what ? [SEP]
    assert f.token_to_orig_map == {4: 0, 5: 0, 6: 1, 7: 1}
    assert _answer_tokens(f) == ["run", "##s"]


def test_doc_spans_follow_the_original_loop():
    spans = squad_data.doc_spans
    assert spans(30, 10, 4) == [(0, 10), (4, 10), (8, 10), (12, 10), (16, 10), (20, 10)]
    assert spans(10, 10, 4) == [(0, 10)]
    assert spans(11, 10, 4) == [(0, 10), (4, 7)]
    assert spans(25, 10, 20) == [(0, 10), (10, 10), (20, 5)]   # the stride is capped by a window
    assert spans(0, 10, 4) == []


def _reference_max_context(spans, span_index, position):
    """The max-context rule written directly from its definition, for one (window, token)."""
    scores = []
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if start <= position <= end:
            scores.append((min(position - start, end - position) + 0.01 * length, -index))
    return max(scores)[1] == -span_index


def test_long_context_windows(tokenizer, tmp_path):
    qas = [_qa("q", "what number?", *_at(LONG_CONTEXT, "25 26"))]
    examples, _ = _read(tmp_path, [(LONG_CONTEXT, qas)])
    assert (examples[0].start_position, examples[0].end_position) == (24, 25)
    # 16 = [CLS] + 3 question tokens + [SEP] + 10 context tokens + [SEP]
    features, stats = _features(examples, tokenizer, max_seq_length=16, doc_stride=4)
    spans = squad_data.doc_spans(30, 10, 4)
    assert len(features) == len(spans) == stats["max_windows_per_example"] == 6
    assert [f.unique_id for f in features] == list(range(1000000000, 1000000006))
    assert [f.doc_span_index for f in features] == list(range(6))
    max_context_count = [0] * 30
    containing = 0
    for f, (start, length) in zip(features, spans):
        assert f.tokens[:5] == ["[CLS]", "what", "number", "?", "[SEP]"] and len(f.input_ids) == 16
        assert f.token_to_orig_map == {5 + i: start + i for i in range(length)}
        for position, is_max in f.token_is_max_context.items():
            word = f.token_to_orig_map[position]
            assert is_max == _reference_max_context(spans, f.doc_span_index, word)
            max_context_count[word] += is_max
        if start <= 24 and 25 <= start + length - 1:
            containing += 1
            assert _answer_tokens(f) == ["25", "26"]
        else:
            assert (f.start_position, f.end_position) == (0, 0)
    assert max_context_count == [1] * 30   # every token is max context in exactly one window
    assert containing == 2 and stats["answers_out_of_span"] == 4


def test_v2_impossible_features(tokenizer, tmp_path):
    qas = [{"id": "q", "question": "what number?", "answers": [], "is_impossible": True}]
    examples, _ = _read(tmp_path, [(LONG_CONTEXT, qas)], v2=True)
    features, stats = _features(examples, tokenizer, max_seq_length=16, doc_stride=4)
    assert len(features) == 6
    assert all(f.is_impossible and (f.start_position, f.end_position) == (0, 0)
               for f in features)
    assert stats["answers_out_of_span"] == 0


def test_question_truncation(tokenizer, tmp_path):
    qas = [_qa("long", "what number is it?", *_at(LONG_CONTEXT, "3")),
           _qa("short", "what", *_at(LONG_CONTEXT, "3"))]
    examples, _ = _read(tmp_path, [(LONG_CONTEXT, qas)])
    features, stats = _features(examples, tokenizer, max_seq_length=40, max_query_length=2)
    assert stats["truncated_questions"] == 1
    assert features[0].tokens[:4] == ["[CLS]", "what", "number", "[SEP]"]
    assert features[1].tokens[:3] == ["[CLS]", "what", "[SEP]"]
    assert _answer_tokens(features[0]) == ["3"] and features[0].start_position == 6


def test_prediction_features_have_no_positions(tokenizer, tmp_path):
    examples, _ = _read(tmp_path, [(RIVERTON, [_qa("q", "Where?")])], is_training=False)
    features, stats = _features(examples, tokenizer, is_training=False)
    assert features[0].start_position is None and "answers_out_of_span" not in stats
    with pytest.raises(ValueError, match="'q' has no answer position"):
        _features(examples, tokenizer, is_training=True)


def test_shared_context_is_tokenized_once(tokenizer, tmp_path):
    calls = []

    class Counting:
        vocab = tokenizer.vocab

        def tokenize(self, text):
            calls.append(text)
            return tokenizer.tokenize(text)

    qas = [_qa(f"q{i}", "Where did she go?", *_at(RIVERTON, "Riverton")) for i in range(3)]
    examples, _ = _read(tmp_path, [(RIVERTON, qas)])
    features, _ = _features(examples, Counting())
    assert calls.count("Riverton.") == 1   # context words once; questions and answers each time
    # Separate (equal) word lists give the same features as the shared one.
    copies = [squad_data.SquadExample(**{**vars(e), "doc_tokens": list(e.doc_tokens)})
              for e in examples]
    alone = [_features([e], tokenizer)[0][0] for e in copies]
    for shared, single in zip(features, alone):
        assert (shared.tokens, shared.input_ids, shared.start_position) == \
            (single.tokens, single.input_ids, single.start_position)


def test_no_room_for_the_context_is_an_error(tokenizer, tmp_path):
    examples, _ = _read(tmp_path, [(RIVERTON, [_qa("q", "Where did she go?")])],
                        is_training=False)
    with pytest.raises(ValueError, match="'q': max_seq_length 8 leaves no room"):
        _features(examples, tokenizer, is_training=False, max_seq_length=8)


# ---------------------------------------------------------------------------
# Predictions.
# ---------------------------------------------------------------------------

# In RIVERTON's single window: [CLS] where did she go ? [SEP] she(7) moved(8) to(9)
# riverton(10) .(11) then(12) she(13) left(14) .(15) [SEP](16)


def _predict_setup(tokenizer, tmp_path, context=RIVERTON, question="Where did she go?",
                   **kwargs):
    examples, _ = _read(tmp_path, [(context, [_qa("q", question)])], is_training=False)
    features, _ = _features(examples, tokenizer, is_training=False, **kwargs)
    return examples, features


def _result(feature, starts, ends, base=-10.0, length=24, dtype=np.float32):
    start_logits = np.full(length, base, dtype=dtype)
    end_logits = np.full(length, base, dtype=dtype)
    for position, value in starts.items():
        start_logits[position] = value
    for position, value in ends.items():
        end_logits[position] = value
    return RawResult(feature.unique_id, start_logits, end_logits)


def _predict(examples, features, results, n_best_size=5, max_answer_length=30, v2=False,
             threshold=0.0, do_lower_case=True):
    return squad_data.compute_predictions(examples, features, results, n_best_size,
                                          max_answer_length, do_lower_case, v2, threshold)


def test_best_span_projected_to_original_text(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    result = _result(features[0], {10: 5.0, 7: 1.0}, {10: 5.0, 11: 4.0})
    predictions, nbest, null_odds = _predict(examples, features, [result])
    # The word is "Riverton."; get_final_text keeps only the characters of "riverton".
    assert predictions == {"q": "Riverton"}
    assert null_odds == {}
    entries = nbest["q"]
    assert [list(e) for e in entries] == [["text", "probability", "start_logit", "end_logit"]] * \
        len(entries)
    assert entries[0] == {"text": "Riverton", "probability": entries[0]["probability"],
                          "start_logit": 5.0, "end_logit": 5.0}
    assert entries[1]["text"] == "Riverton." and entries[1]["end_logit"] == 4.0
    probabilities = [e["probability"] for e in entries]
    assert math.isclose(sum(probabilities), 1.0) and probabilities == sorted(probabilities,
                                                                            reverse=True)
    assert len({e["text"] for e in entries}) == len(entries) <= 5
    assert all(type(e[k]) is float for e in entries for k in ("probability", "start_logit",
                                                               "end_logit"))
    json.dumps([predictions, nbest])


def test_whole_sentence_span(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    result = _result(features[0], {7: 5.0}, {15: 5.0})
    predictions, _, _ = _predict(examples, features, [result])
    assert predictions["q"] == "She moved to Riverton. Then she left."   # runs of spaces: one


def test_max_answer_length_and_order_rules(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    # Scores: 7..15 (9 tokens) 18, 7..10 (4 tokens) 12, 10..15 (6 tokens) 12, 10..10 6.
    result = _result(features[0], {7: 9.0, 10: 3.0}, {15: 9.0, 10: 3.0})
    assert _predict(examples, features, [result], max_answer_length=3)[0]["q"] == "Riverton"
    assert _predict(examples, features, [result], max_answer_length=5)[0]["q"] == \
        "She moved to Riverton"
    assert _predict(examples, features, [result], max_answer_length=9)[0]["q"] == \
        "She moved to Riverton. Then she left."
    # End before start is never a span, however high its logits.
    result = _result(features[0], {12: 9.0, 10: 2.0}, {8: 9.0, 10: 2.0})
    assert _predict(examples, features, [result])[0]["q"] == "Riverton"
    # Spans in the question, [CLS] or [SEP] are not answers.
    result = _result(features[0], {0: 20.0, 2: 20.0, 16: 20.0, 10: 1.0},
                     {0: 20.0, 3: 20.0, 16: 20.0, 10: 1.0})
    assert _predict(examples, features, [result])[0]["q"] == "Riverton"


def test_no_valid_span_gives_the_placeholder(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    # With n_best_size 2 only question positions are tried.
    result = _result(features[0], {1: 9.0, 2: 8.0}, {1: 9.0, 2: 8.0})
    predictions, nbest, _ = _predict(examples, features, [result], n_best_size=2)
    assert predictions["q"] == "empty"
    assert nbest["q"] == [{"text": "empty", "probability": 1.0, "start_logit": 0.0,
                           "end_logit": 0.0}]
    predictions, nbest, null_odds = _predict(examples, features, [result], n_best_size=2, v2=True)
    # SQuAD 2.0: only "" survives (the original crashed); "empty" (score 0) is added, where its
    # score keeps the list sorted, so there is a non-null entry to compare the null score with.
    assert null_odds["q"] == -20.0 and predictions["q"] == "empty"   # null -20 < "empty" 0
    assert [e["text"] for e in nbest["q"]] == ["empty", ""]
    result = _result(features[0], {0: 1.0, 1: 9.0, 2: 8.0}, {0: 1.0, 1: 9.0, 2: 8.0})
    predictions, nbest, null_odds = _predict(examples, features, [result], n_best_size=2, v2=True)
    assert null_odds["q"] == 2.0 and predictions["q"] == ""
    assert [e["text"] for e in nbest["q"]] == ["", "empty"]


@pytest.mark.parametrize("null_logit, threshold, expected", [
    (4.0, 0.0, "Riverton"),    # null 8 vs span 10: diff -2 <= 0
    (4.0, -3.0, ""),           # diff -2 > -3
    (6.0, 0.0, ""),            # null 12: diff 2 > 0
    (6.0, 3.0, "Riverton"),    # diff 2 <= 3
    (5.0, 0.0, "Riverton"),    # diff 0 is not > 0
])
def test_v2_null_against_best_span(tokenizer, tmp_path, null_logit, threshold, expected):
    examples, features = _predict_setup(tokenizer, tmp_path)
    result = _result(features[0], {0: null_logit, 10: 5.0}, {0: null_logit, 10: 5.0})
    predictions, nbest, null_odds = _predict(examples, features, [result], v2=True,
                                             threshold=threshold)
    assert predictions["q"] == expected
    assert null_odds["q"] == 2 * null_logit - 10.0
    texts = [e["text"] for e in nbest["q"]]
    assert "" in texts and "Riverton" in texts
    scores = [e["start_logit"] + e["end_logit"] for e in nbest["q"]]
    assert scores == sorted(scores, reverse=True)
    assert math.isclose(sum(e["probability"] for e in nbest["q"]), 1.0)


def test_v2_null_is_listed_even_outside_the_top_n(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    result = _result(features[0], {0: -5.0, 10: 5.0, 7: 4.0}, {0: -5.0, 10: 5.0, 11: 4.0})
    _, nbest, _ = _predict(examples, features, [result], n_best_size=2, v2=True)
    assert [e["text"] for e in nbest["q"]] == ["Riverton", "Riverton.", ""]
    assert nbest["q"][-1]["start_logit"] == -5.0


def test_windows_max_context_and_min_null(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path, context=LONG_CONTEXT,
                                        question="what number?", max_seq_length=16, doc_stride=4)
    assert len(features) == 6
    # Window 0 scores word 8 ("9") highest, but "9" has max context in window 1, so that span
    # is rejected; word 1 ("2") is only in window 0. Window positions: word w at 5 + w - start.
    results = [_result(features[0], {5 + 8: 10.0, 5 + 1: 3.0, 0: 2.0},
                       {5 + 8: 10.0, 5 + 1: 3.0, 0: 2.0}, length=16)]
    results += [_result(f, {0: 1.0}, {0: 0.5}, length=16) for f in features[1:]]
    # max_answer_length 3 rules out 6..13 ("2" to "9"), which starts at a max-context token.
    predictions, _, _ = _predict(examples, features, results, max_answer_length=3)
    assert predictions["q"] == "2"
    predictions, nbest, null_odds = _predict(examples, features, results, max_answer_length=3,
                                             v2=True, threshold=100.0)
    assert predictions["q"] == "2"
    assert null_odds["q"] == 1.5 - 6.0   # the lowest null score over the windows
    null = [e for e in nbest["q"] if e["text"] == ""][0]
    assert (null["start_logit"], null["end_logit"]) == (1.0, 0.5)


def test_missing_result_is_an_error(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    with pytest.raises(ValueError, match="unique_id 1000000000 .*'q'"):
        _predict(examples, features, [RawResult(1, [0.0] * 24, [0.0] * 24)])


def test_list_and_float32_logits_agree(tokenizer, tmp_path):
    examples, features = _predict_setup(tokenizer, tmp_path)
    result = _result(features[0], {10: 5.1, 7: 1.3}, {10: 4.7, 11: 4.2}, base=-1.7)
    as_lists = RawResult(result.unique_id, [float(x) for x in result.start_logits],
                         [float(x) for x in result.end_logits])
    assert _predict(examples, features, [result], v2=True) == \
        _predict(examples, features, [as_lists], v2=True)


@pytest.mark.parametrize("pred, orig, lower, expected", [
    ("steve smith", "Steve Smith's", True, "Steve Smith"),
    ("riverton", "Riverton.", True, "Riverton"),
    ("Riverton", "Riverton.", False, "Riverton"),
    ("cafe", "Café.", True, "Café"),                  # accents stripped when lower-casing
    ("1895", "(1895-1943).", True, "1895"),
    ("london", "Riverton.", True, "Riverton."),       # not found: the original text
    ("a b", "a\u00a0b.", True, "a\u00a0b."),         # U+00A0: lengths differ, the original text
])
def test_get_final_text(pred, orig, lower, expected):
    assert squad_data.get_final_text(pred, orig, lower) == expected


def test_get_final_text_logs_only_when_verbose(caplog):
    with caplog.at_level(logging.INFO, logger="squad_data"):
        squad_data.get_final_text("london", "Riverton.", True)
        assert not caplog.records
        squad_data.get_final_text("london", "Riverton.", True, verbose_logging=True)
    assert "Unable to find text" in caplog.records[0].getMessage()
