"""Tests for squad_metrics.py: hand-computed cases for normalization, the two scores, v1.1 and v2.0
aggregation, the no-answer threshold and its search, and the documented edge cases."""
import logging

import pytest

import squad_metrics


def _dataset(*qas):
    """A SQuAD "data" list holding the given "qas" entries in one paragraph."""
    return [{"title": "Test", "paragraphs": [{"context": "...", "qas": list(qas)}]}]


def _qa(qid, *texts, is_impossible=None):
    qa = {"id": qid, "question": f"question {qid}?",
          "answers": [{"text": text, "answer_start": 0} for text in texts]}
    if is_impossible is not None:
        qa["is_impossible"] = is_impossible
    return qa


# ---------------------------------------------------------------------------
# Normalization and the per-answer scores.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("The  Cat!", "cat"),                   # case, article, punctuation, double space
    ("an apple a day", "apple day"),        # all three articles are whole words here
    ("theater", "theater"),                 # "the" inside a word stays
    ("Anna and a banana", "anna and banana"),
    ("\tHello,\n  world ", "hello world"),  # any whitespace run becomes one space
    ("U.S.A.", "usa"),                      # punctuation goes first ...
    ("a.k.a.", "aka"),                      # ... so "a." is not an article any more
    ("The", ""),
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert squad_metrics.normalize_answer(text) == expected


def test_exact_match():
    assert squad_metrics.exact_match_score("the Denver Broncos", "Denver Broncos!") == 1
    assert squad_metrics.exact_match_score("Broncos", "Denver Broncos") == 0
    assert squad_metrics.exact_match_score("", "") == 1
    assert squad_metrics.exact_match_score("", "the") == 1  # both normalize to ""


def test_f1_partial_overlap():
    # [big, red, barn] vs [red, barn, door]: 2 shared; p = 2/3, r = 2/3, F1 = 2/3.
    assert squad_metrics.f1_score("the big red barn", "red barn door") == pytest.approx(2 / 3)
    # [red, barn] vs [red, barn, door]: p = 1, r = 2/3, F1 = 2 * (2/3) / (5/3) = 4/5.
    assert squad_metrics.f1_score("red barn", "red barn door") == pytest.approx(0.8)
    assert squad_metrics.f1_score("Red barn.", "the red barn") == 1.0
    assert squad_metrics.f1_score("cow", "red barn") == 0.0


def test_f1_counts_repeated_tokens_as_a_bag():
    # {x: 2, y: 1} & {x: 1, y: 2} = {x: 1, y: 1}: 2 shared of 3 each side; F1 = 2/3.
    assert squad_metrics.f1_score("x x y", "x y y") == pytest.approx(2 / 3)
    # {x: 3} & {x: 1}: 1 shared; p = 1/3, r = 1, F1 = 2 * (1/3) / (4/3) = 1/2.
    assert squad_metrics.f1_score("x x x", "x") == pytest.approx(0.5)


def test_f1_empty_answers_follow_the_v2_rule():
    assert squad_metrics.f1_score("", "") == 1.0       # correct "no answer"
    assert squad_metrics.f1_score("the", "") == 1.0    # normalizes to nothing, as ""
    assert squad_metrics.f1_score("", "Paris") == 0.0
    assert squad_metrics.f1_score("Paris", "") == 0.0


def test_gold_answers():
    qa = _qa("q", "The Cat", "the", "cat!")
    assert squad_metrics.gold_answers(qa, False) == ["The Cat", "the", "cat!"]
    assert squad_metrics.gold_answers(qa, True) == ["The Cat", "cat!"]  # "the" normalizes to ""
    assert squad_metrics.gold_answers(_qa("q", "a"), True) == [""]
    assert squad_metrics.gold_answers(_qa("q", is_impossible=True), True) == [""]
    assert squad_metrics.gold_answers(_qa("q"), False) == []


# ---------------------------------------------------------------------------
# SQuAD v1.1.
# ---------------------------------------------------------------------------

V1_DATASET = _dataset(_qa("q1", "Denver Broncos", "Broncos"),
                      _qa("q2", "1955"),
                      _qa("q3", "red barn door"))
V1_PREDICTIONS = {"q1": "the Denver Broncos",   # EM 1, F1 1
                  "q2": "1955.",                # EM 1, F1 1
                  "q3": "the big red barn",     # EM 0, F1 2/3 (see test_f1_partial_overlap)
                  "other": "ignored"}           # not in the dataset: ignored, as official


def test_evaluate_v1():
    # exact = 100 * 2/3 = 66.67; f1 = 100 * (1 + 1 + 2/3) / 3 = 800/9 = 88.89
    results = squad_metrics.evaluate(V1_DATASET, V1_PREDICTIONS)
    assert results == {"exact_match": pytest.approx(200 / 3), "f1": pytest.approx(800 / 9),
                       "total": 3}
    assert round(results["exact_match"], 2) == 66.67
    assert isinstance(results["total"], int)


def test_evaluate_takes_the_best_gold_answer():
    dataset = _dataset(_qa("q", "red barn door", "barn"))
    # EM 0 against both; F1 4/5 against the first, 2/3 against "barn": the maximum is 4/5.
    assert squad_metrics.evaluate(dataset, {"q": "red barn"}) == \
        {"exact_match": 0.0, "f1": pytest.approx(80.0), "total": 1}
    dataset = _dataset(_qa("q", "red barn door", "Red Barn!"))
    assert squad_metrics.evaluate(dataset, {"q": "red barn"})["exact_match"] == 100.0


def test_missing_predictions_score_zero(caplog):
    predictions = {"q1": "Broncos", "q2": "1955"}  # no q3
    with caplog.at_level(logging.WARNING, logger="squad_metrics"):
        results = squad_metrics.evaluate(V1_DATASET, predictions)
    # q1 and q2 score 1, q3 scores 0: 200/3 for both; q3 still counts in the total.
    assert results == {"exact_match": pytest.approx(200 / 3), "f1": pytest.approx(200 / 3),
                       "total": 3, "missing": 1}
    assert "1 of 3 question(s) have no prediction" in caplog.text and "'q3'" in caplog.text


def test_v1_questions_without_answers_are_left_out(caplog):
    dataset = _dataset(_qa("q1", "Broncos"), _qa("q2"))  # q2: answers == [] (SQuAD 2.0 data)
    with caplog.at_level(logging.WARNING, logger="squad_metrics"):
        results = squad_metrics.evaluate(dataset, {"q1": "Broncos", "q2": ""})
    assert results == {"exact_match": 100.0, "f1": 100.0, "total": 1}
    assert "1 question(s) have no gold answer" in caplog.text


# ---------------------------------------------------------------------------
# SQuAD v2.0.
# ---------------------------------------------------------------------------

V2_DATASET = _dataset(_qa("q1", "Paris"),
                      _qa("q2", "the Eiffel Tower"),
                      _qa("q3", is_impossible=True),
                      _qa("q4", is_impossible=True))
V2_PREDICTIONS = {"q1": "Paris",    # raw EM 1, F1 1
                  "q2": "Eiffel",   # raw EM 0, F1: [eiffel] vs [eiffel, tower]: p 1, r 1/2 -> 2/3
                  "q3": "",         # no answer, correctly: 1, 1
                  "q4": "London"}   # an answer where there is none: 0, 0
V2_NA_PROBS = {"q1": 0.1, "q2": 0.7, "q3": 0.9, "q4": 0.8}


def test_evaluate_v2_breakdown():
    results = squad_metrics.evaluate(V2_DATASET, V2_PREDICTIONS, version_2_with_negative=True)
    # exact = 100 * (1 + 0 + 1 + 0) / 4 = 50; f1 = 100 * (1 + 2/3 + 1 + 0) / 4 = 200/3
    # HasAns (q1, q2): exact 50, f1 100 * (1 + 2/3) / 2 = 250/3; NoAns (q3, q4): 50, 50
    assert results == {"exact": 50.0, "f1": pytest.approx(200 / 3), "total": 4,
                       "HasAns_exact": 50.0, "HasAns_f1": pytest.approx(250 / 3),
                       "HasAns_total": 2,
                       "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2}
    assert list(results) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                             "NoAns_exact", "NoAns_f1", "NoAns_total"]


def test_evaluate_v2_leaves_out_an_empty_part():
    dataset = _dataset(_qa("q1", "Paris"))
    results = squad_metrics.evaluate(dataset, {"q1": "Paris"}, version_2_with_negative=True)
    assert results == {"exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0,
                       "HasAns_f1": 100.0, "HasAns_total": 1}


def test_evaluate_v2_gold_that_normalizes_to_nothing():
    # As official: the question has an answer (HasAns), but its only gold text "The" is dropped,
    # so the gold is [""] and the empty prediction scores 1.
    dataset = _dataset(_qa("q1", "The"))
    results = squad_metrics.evaluate(dataset, {"q1": ""}, version_2_with_negative=True)
    assert results["HasAns_exact"] == 100.0 and results["HasAns_total"] == 1


def test_threshold_and_best_threshold_search():
    results = squad_metrics.evaluate(V2_DATASET, V2_PREDICTIONS, na_probs=V2_NA_PROBS,
                                     na_prob_thresh=0.5, version_2_with_negative=True)
    # Above 0.5 (no answer taken): q2 (0.7, has an answer -> 0), q4 (0.8 -> 1), q3 (0.9 -> 1).
    # q1 (0.1) keeps its raw 1. exact = f1 = 100 * 3/4 = 75.
    # HasAns: q1 1, q2 0 -> 50; NoAns: q3 1, q4 1 -> 100.
    #
    # Search, starting with "no answer" everywhere: q3 + q4 = 2, threshold 0.0. In na_prob order:
    #   F1:    q1 +1 -> 3 (best, 0.1); q2 +2/3 -> 11/3 (best, 0.7); q4 "London" -1 -> 8/3;
    #          q3 "" +0 -> 8/3.   best_f1 = 100 * (11/3) / 4 = 275/3 at 0.7
    #   exact: q1 +1 -> 3 (best, 0.1); q2 +0 -> 3 (not better); q4 -1 -> 2; q3 +0 -> 2.
    #          best_exact = 100 * 3/4 = 75 at 0.1
    assert results == {"exact": 75.0, "f1": 75.0, "total": 4,
                       "HasAns_exact": 50.0, "HasAns_f1": 50.0, "HasAns_total": 2,
                       "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 2,
                       "best_exact": 75.0, "best_exact_thresh": 0.1,
                       "best_f1": pytest.approx(275 / 3), "best_f1_thresh": V2_NA_PROBS["q2"]}
    # The best threshold, applied, gives the best score.
    at_best = squad_metrics.evaluate(V2_DATASET, V2_PREDICTIONS, na_probs=V2_NA_PROBS,
                                     na_prob_thresh=results["best_f1_thresh"],
                                     version_2_with_negative=True)
    assert at_best["f1"] == pytest.approx(results["best_f1"])


def test_threshold_on_null_score_differences():
    # run_squad's null_odds: null score minus best span score, often negative.
    dataset = _dataset(_qa("q1", "Paris"), _qa("q2", is_impossible=True))
    predictions = {"q1": "Paris", "q2": "Lyon"}
    null_odds = {"q1": -2.5, "q2": 1.5}
    results = squad_metrics.evaluate(dataset, predictions, na_probs=null_odds,
                                     version_2_with_negative=True)
    # Threshold 0.0: q1 answered (1), q2 taken as no answer (1). Without null_odds: q2 scores 0.
    assert results["exact"] == 100.0 and results["f1"] == 100.0
    assert squad_metrics.evaluate(dataset, predictions, version_2_with_negative=True)["exact"] == 50
    # Search: start 1 (q2); q1 +1 -> 2 (best, -2.5); q2 "Lyon" -1 -> 1.
    assert results["best_exact"] == 100.0 and results["best_exact_thresh"] == -2.5


def test_best_threshold_when_no_answer_everywhere_is_best():
    dataset = _dataset(_qa("q1", "Paris"), _qa("q2", is_impossible=True),
                       _qa("q3", is_impossible=True))
    predictions = {"q1": "Rome", "q2": "Lyon", "q3": "Nice"}
    results = squad_metrics.evaluate(dataset, predictions, na_probs={"q1": 0.2, "q2": 0.4,
                                                                     "q3": 0.6},
                                     version_2_with_negative=True)
    # Start 2 (q2, q3); q1 +0 -> 2; q2 -1 -> 1; q3 -1 -> 0. Never better than the start, so the
    # official threshold 0.0 is reported: 100 * 2/3.
    assert results["best_exact"] == pytest.approx(200 / 3)
    assert results["best_exact_thresh"] == 0.0


def test_v2_missing_prediction_scores_zero_even_without_an_answer():
    predictions = {"q1": "Paris", "q2": "Eiffel", "q4": "London"}  # no q3 (a no-answer question)
    na_probs = {"q1": 0.1, "q2": 0.7, "q4": 0.8}                    # none needed for q3
    results = squad_metrics.evaluate(V2_DATASET, predictions, na_probs=na_probs,
                                     na_prob_thresh=0.5, version_2_with_negative=True)
    # As test_threshold_and_best_threshold_search, but q3 scores 0: exact = f1 = 100 * 2/4.
    assert results["exact"] == 50.0 and results["NoAns_exact"] == 50.0
    assert results["total"] == 4 and results["missing"] == 1
    # Search: start 1 (q4 only); F1: q1 +1 -> 2 (0.1); q2 +2/3 -> 8/3 (0.7); q4 -1 -> 5/3.
    assert results["best_f1"] == pytest.approx(100 * (8 / 3) / 4)
    assert results["best_f1_thresh"] == 0.7


# ---------------------------------------------------------------------------
# has_answers and broken input.
# ---------------------------------------------------------------------------


def test_has_answers():
    test_file = _dataset({"id": "q1", "question": "?"}, {"id": "q2", "question": "?"})
    assert not squad_metrics.has_answers(test_file, False)
    assert not squad_metrics.has_answers(test_file, True)
    assert squad_metrics.has_answers(V1_DATASET, False)
    only_impossible = _dataset(_qa("q1", is_impossible=True))
    assert squad_metrics.has_answers(only_impossible, True)
    assert not squad_metrics.has_answers(only_impossible, False)
    assert not squad_metrics.has_answers(_dataset(_qa("q1", is_impossible=False)), True)


@pytest.mark.parametrize("dataset, predictions, match", [
    (_dataset({"question": "Who?", "answers": []}), {}, "no 'id'.*Who"),
    (_dataset({"id": "q9", "answers": "Paris"}), {}, "'q9'.*must be a list"),
    (_dataset({"id": "q9"}), {}, "'q9'.*must be a list"),
    (_dataset({"id": "q9", "answers": [{"answer_start": 0}]}), {}, "'q9'.*'text' string"),
    (_dataset(_qa("q9", "x"), _qa("q9", "y")), {}, "'q9' occurs more than once"),
    (_dataset(_qa("q9", "x")), {"q9": ["x", "y"]}, "'q9' must be a string"),
    (_dataset(), {}, "no question with a gold answer"),
])
def test_broken_input_raises(dataset, predictions, match):
    with pytest.raises(ValueError, match=match):
        squad_metrics.evaluate(dataset, predictions, version_2_with_negative=True)


def test_na_probs_must_cover_predictions_and_only_for_v2():
    with pytest.raises(ValueError, match="no score for 1 predicted question.*'q4'"):
        squad_metrics.evaluate(V2_DATASET, V2_PREDICTIONS, na_probs={"q1": 0, "q2": 0, "q3": 0},
                               version_2_with_negative=True)
    with pytest.raises(ValueError, match="only applies to SQuAD 2.0"):
        squad_metrics.evaluate(V1_DATASET, V1_PREDICTIONS, na_probs={})
