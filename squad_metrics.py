"""SQuAD v1.1 and v2.0 evaluation (exact match and token F1), in-process and in pure Python.

Gives the numbers the official evaluate-v1.1.py / evaluate-v2.0.py print, so `run_squad.py` needs
no subprocess. Inputs: the SQuAD JSON's "data" list (articles -> "paragraphs" -> "qas" with "id"
and "answers") and a dict qid -> predicted text, "" meaning "no answer". As officially, answers are
compared after `normalize_answer`; a question scores its best value over its gold answers; dataset
scores are means over the questions, in percent. v2.0 splits them into "HasAns_*" / "NoAns_*" by
whether the answers list is empty ("is_impossible" is not read, as officially), and with `na_probs`
(qid -> no-answer score, such as run_squad's null_odds.json: null score minus best span score)
takes "no answer" for questions scoring above `na_prob_thresh` and searches the best threshold.

Where the official scripts leave a gap, this module decides:

* F1 with an empty token list is 1.0 if both are empty, else 0.0 (the v2.0 rule, used for v1.1
  too; v1.1 differs only for a gold answer that normalizes to nothing, such as "The").
* A question without a prediction scores 0 in both versions, also when its gold is "no answer" (a
  missing prediction is not an abstention). It counts in the totals, is logged as a warning, and
  the result carries "missing": <count>, a key present only when the count is above 0, so that a
  complete prediction file gives exactly the official keys.
* In v1.1 a question with an empty answers list (SQuAD 2.0 data read as 1.1) is left out of the
  scores and totals, with a warning giving the count (the official v1.1 script fails on it).
* Broken input raises ValueError: a question without "id", "answers" missing or not a list, an
  answer without a "text" string, a question id given twice, a prediction that is not a string,
  `na_probs` given for v1.1 or lacking a predicted question, nothing to score.
"""
import collections
import logging
import re
import string
from typing import NamedTuple

logger = logging.getLogger(__name__)

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: "The  Cat!" -> "cat".

    The order matters and is the official one: punctuation goes before articles, so "a.k.a." becomes
    "aka" and stays; an article is replaced by a space (not deleted) so that it still separates the
    characters around it.
    """
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, gold: str) -> int:
    """1 when the two strings are equal after normalization, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 of the normalized strings; 1.0 when both are empty (a correct "no answer")."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted)
    recall = overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def gold_answers(qa: dict, version_2_with_negative: bool) -> list[str]:
    """The texts a prediction for this "qas" entry is compared against.

    v1.1: every answer text. v2.0: the texts that do not normalize to nothing, or [""] when none is
    left, so that only an empty prediction matches an unanswerable question.
    """
    answers = qa.get("answers")
    if not isinstance(answers, list):
        raise ValueError(f"question {qa.get('id')!r}: 'answers' must be a list, got "
                         f"{type(answers).__name__}")
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise ValueError(f"question {qa.get('id')!r}: every answer needs a 'text' string, "
                             f"got {answer!r}")
    texts = [answer["text"] for answer in answers]
    if not version_2_with_negative:
        return texts
    return [text for text in texts if normalize_answer(text)] or [""]


def _questions(dataset):
    """Every "qas" entry of the "data" list, in file order; ValueError for one without an id."""
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if "id" not in qa:
                    raise ValueError(f"a question in article {article.get('title', '?')!r} has "
                                     f"no 'id': {qa.get('question', qa)!r}")
                yield qa


def has_answers(dataset: list, version_2_with_negative: bool) -> bool:
    """Whether any question carries a gold label, i.e. whether the dataset can be evaluated.

    A label is a non-empty answers list, or in v2.0 also "is_impossible": true (a set of only
    unanswerable questions is still labelled). A test file without answers gives False.
    """
    return any(qa.get("answers") or (version_2_with_negative and qa.get("is_impossible"))
               for qa in _questions(dataset))


class _Scores(NamedTuple):
    """Per-question scores before any threshold, keyed by qid in dataset order."""
    exact: dict          # qid -> 0 or 1
    f1: dict             # qid -> float in [0, 1]
    has_ans: dict        # qid -> whether the dataset gives an answer
    missing: list        # qids without a prediction (scored 0)
    unlabelled: int      # v1.1 questions left out for lack of answers


def _score_questions(dataset, predictions, version_2_with_negative) -> _Scores:
    """Each question's best exact match and F1 over its gold answers (0 without a prediction)."""
    exact, f1, has_ans, missing, unlabelled = {}, {}, {}, [], 0
    seen = set()
    for qa in _questions(dataset):
        qid, golds = qa["id"], gold_answers(qa, version_2_with_negative)
        if qid in seen:
            raise ValueError(f"question id {qid!r} occurs more than once in the dataset")
        seen.add(qid)
        if not golds:  # v1.1 only: v2.0 gives [""]
            unlabelled += 1
            continue
        has_ans[qid] = bool(qa["answers"])
        if qid not in predictions:
            missing.append(qid)
            exact[qid], f1[qid] = 0, 0.0
            continue
        prediction = predictions[qid]
        if not isinstance(prediction, str):
            raise ValueError(f"the prediction for question {qid!r} must be a string, got "
                             f"{type(prediction).__name__}")
        exact[qid] = max(exact_match_score(prediction, gold) for gold in golds)
        f1[qid] = max(f1_score(prediction, gold) for gold in golds)
    return _Scores(exact, f1, has_ans, missing, unlabelled)


def _percent(values, qids) -> float:
    return 100.0 * sum(values[qid] for qid in qids) / len(qids)


def _apply_threshold(raw, na_probs, has_ans, missing, thresh):
    """Scores with "no answer" taken for the predicted questions whose na_prob is above `thresh`."""
    scores = dict(raw)
    for qid in raw:
        if qid not in missing and na_probs[qid] > thresh:
            scores[qid] = float(not has_ans[qid])
    return scores


def _best_threshold(raw, predictions, na_probs, has_ans):
    """(best mean score in percent, threshold reaching it), the official way.

    Start from "no answer" everywhere (a no-answer question scores 1, the others 0), then raise the
    threshold through the na_probs in ascending order, answering one question more each step:
    the running score gains that question's raw score if it has an answer, and loses 1 if it has
    none and the prediction is not "". Two official quirks are kept so the numbers agree: a
    prediction that normalizes to nothing (such as "the") still counts as an answer here, and the
    "no answer everywhere" start reports threshold 0.0 even when some na_probs are below 0.
    Questions without a prediction score 0 at every threshold.
    """
    score = sum(1 for qid in raw if not has_ans[qid] and qid in predictions)
    best, best_thresh = score, 0.0
    for qid in sorted(na_probs, key=na_probs.get):  # stable: ties keep na_probs' order
        if qid not in raw or qid not in predictions:
            continue
        if has_ans[qid]:
            score += raw[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, best_thresh = score, na_probs[qid]
    return 100.0 * best / len(raw), float(best_thresh)


def _evaluate_v2(scores, predictions, na_probs, na_prob_thresh):
    """The v2.0 result dict, in the official key order."""
    exact, f1 = scores.exact, scores.f1
    if na_probs is not None:
        missing = set(scores.missing)
        unscored = [qid for qid in exact if qid not in missing and qid not in na_probs]
        if unscored:
            raise ValueError(f"na_probs has no score for {len(unscored)} predicted question(s), "
                             f"such as {unscored[0]!r}")
        exact = _apply_threshold(exact, na_probs, scores.has_ans, missing, na_prob_thresh)
        f1 = _apply_threshold(f1, na_probs, scores.has_ans, missing, na_prob_thresh)
    results = {"exact": _percent(exact, exact), "f1": _percent(f1, f1), "total": len(exact)}
    for prefix, wanted in (("HasAns_", True), ("NoAns_", False)):
        qids = [qid for qid, has_ans in scores.has_ans.items() if has_ans == wanted]
        if qids:
            results.update({prefix + "exact": _percent(exact, qids),
                            prefix + "f1": _percent(f1, qids), prefix + "total": len(qids)})
    if na_probs is not None:
        for name, raw in (("exact", scores.exact), ("f1", scores.f1)):
            best, thresh = _best_threshold(raw, predictions, na_probs, scores.has_ans)
            results.update({f"best_{name}": best, f"best_{name}_thresh": thresh})
    return results


def evaluate(dataset: list, predictions: dict, na_probs: dict | None = None,
             na_prob_thresh: float = 0.0, version_2_with_negative: bool = False) -> dict:
    """The official SQuAD scores of `predictions` (qid -> text, "" = no answer) on `dataset`.

    v1.1: {"exact_match", "f1", "total"}. v2.0: {"exact", "f1", "total", "HasAns_*", "NoAns_*"},
    "exact"/"f1" after `na_prob_thresh` when `na_probs` is given, plus "best_exact",
    "best_exact_thresh", "best_f1", "best_f1_thresh". Scores are percentages, totals counts,
    thresholds na_probs values; "missing" is added when some questions have no prediction. See the
    module docstring for the rules where the official scripts leave a gap.
    """
    if na_probs is not None and not version_2_with_negative:
        raise ValueError("na_probs only applies to SQuAD 2.0 (version_2_with_negative=True)")
    scores = _score_questions(dataset, predictions, version_2_with_negative)
    if scores.unlabelled:
        logger.warning("%d question(s) have no gold answer and are left out of the v1.1 scores "
                       "(SQuAD 2.0 data? set version_2_with_negative)", scores.unlabelled)
    if not scores.exact:
        raise ValueError("no question with a gold answer to evaluate (a test file? see "
                         "has_answers)")
    if scores.missing:
        logger.warning("%d of %d question(s) have no prediction and score 0, such as %r",
                       len(scores.missing), len(scores.exact), scores.missing[0])
    if version_2_with_negative:
        results = _evaluate_v2(scores, predictions, na_probs, na_prob_thresh)
    else:
        results = {"exact_match": _percent(scores.exact, scores.exact),
                   "f1": _percent(scores.f1, scores.f1), "total": len(scores.exact)}
    if scores.missing:
        results["missing"] = len(scores.missing)
    return results
