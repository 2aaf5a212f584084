"""Tests for metrics.py: hand-computed cases, the documented edge cases, and cross-checks on random
data against scipy and scikit-learn, and for tagging against seqeval (test-only dependencies in
requirements-test.txt)."""
import math
import warnings
from itertools import chain

import numpy as np
import pytest

import metrics


# ---------------------------------------------------------------------------
# Hand-computed cases.
# ---------------------------------------------------------------------------

# A binary confusion matrix: TP=3 (1,1), FN=1 (1,0), FP=2 (0,1), TN=4 (0,0); 10 examples.
BINARY_LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
BINARY_PREDICTIONS = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]


def test_accuracy():
    # Correct: the 3 TP and the 4 TN.
    assert metrics.accuracy(BINARY_LABELS, BINARY_PREDICTIONS) == pytest.approx(7 / 10)
    assert metrics.accuracy(np.array([2, 0, 1]), np.array([2, 0, 1])) == 1.0


def test_f1_binary():
    # precision 3/5, recall 3/4, F1 = 2PR/(P+R) = 2TP/(2TP+FP+FN) = 6/9.
    assert metrics.f1(BINARY_LABELS, BINARY_PREDICTIONS) == pytest.approx(6 / 9)
    # Class 0 as the positive one: TP=4, FP=1, FN=2 -> 8/11.
    assert metrics.f1(BINARY_LABELS, BINARY_PREDICTIONS, positive=0) == pytest.approx(8 / 11)


def test_f1_without_positives_is_zero():
    # No positive label, no positive prediction: precision and recall are 0/0; defined as 0.0.
    assert metrics.f1([0, 0, 0], [0, 0, 0]) == 0.0
    # Positives exist but none is predicted: recall 0 -> F1 0.
    assert metrics.f1([1, 0], [0, 0]) == 0.0


def test_mcc_binary_matches_the_textbook_formula():
    tp, fn, fp, tn = 3, 1, 2, 4
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    # = (12 - 2) / sqrt(5 * 4 * 6 * 5) = 10 / sqrt(600) = 0.408248...
    assert expected == pytest.approx(0.4082482904638631)
    assert metrics.matthews_corrcoef(BINARY_LABELS, BINARY_PREDICTIONS) == pytest.approx(expected)
    # Perfect and perfectly inverted predictions.
    assert metrics.matthews_corrcoef([0, 1, 1, 0], [0, 1, 1, 0]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([0, 1, 1, 0], [1, 0, 0, 1]) == pytest.approx(-1.0)


def test_mcc_multiclass_by_hand():
    # Confusion matrix C[true][pred] over classes 0, 1, 2:
    #        pred 0  1  2
    # true 0    [2, 1, 0]    t0 = 3
    # true 1    [0, 2, 1]    t1 = 3
    # true 2    [1, 0, 2]    t2 = 3
    #     p =    3  3  3,   c = 6 correct, s = 9
    # MCC = (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    #     = (54 - 27) / sqrt((81 - 27)(81 - 27)) = 27 / 54 = 0.5
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    predictions = [0, 0, 1, 1, 1, 2, 2, 2, 0]
    assert metrics.matthews_corrcoef(labels, predictions) == pytest.approx(0.5)


def test_mcc_multiclass_unbalanced_by_hand():
    # labels      [0, 0, 1, 2, 2, 2], predictions [0, 1, 1, 2, 2, 0]
    # C = [[1,1,0],[0,1,0],[1,0,2]]; t = (2,1,3), p = (2,2,2), c = 4, s = 6
    # numerator = 4*6 - (2*2 + 2*1 + 2*3) = 24 - 12 = 12
    # denominator = sqrt((36 - 12) * (36 - 14)) = sqrt(24 * 22) = sqrt(528)
    expected = 12 / math.sqrt(528)
    assert metrics.matthews_corrcoef([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]) == \
        pytest.approx(expected)


def test_mcc_constant_predictions_is_zero():
    assert metrics.matthews_corrcoef([0, 1, 1, 0], [1, 1, 1, 1]) == 0.0
    assert metrics.matthews_corrcoef([1, 1, 1], [1, 1, 1]) == 0.0


def test_f1_macro_by_hand():
    # Per class (same labels/predictions as the multiclass MCC case):
    #   class 0: TP=2, FP=1 (from true 2), FN=1 -> 4/6
    #   class 1: TP=2, FP=1, FN=1 -> 4/6
    #   class 2: TP=2, FP=1, FN=1 -> 4/6
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    predictions = [0, 0, 1, 1, 1, 2, 2, 2, 0]
    assert metrics.f1_macro(labels, predictions) == pytest.approx(4 / 6)
    # Binary case: mean of the class-1 F1 (6/9) and class-0 F1 (8/11).
    assert metrics.f1_macro(BINARY_LABELS, BINARY_PREDICTIONS) == \
        pytest.approx((6 / 9 + 8 / 11) / 2)
    # A class that never occurs counts with F1 0 when num_classes says it exists.
    assert metrics.f1_macro([0, 1], [0, 1], num_classes=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="class indices"):
        metrics.f1_macro([0, 5], [0, 1], num_classes=3)


def test_pearson_by_hand():
    # x = (1, 2, 3), y = (1, 3, 2): centred (-1, 0, 1) and (-1, 1, 0); r = 1 / sqrt(2 * 2) = 0.5
    assert metrics.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_with_ties_by_hand():
    # labels [1, 2, 2, 3] -> average ranks [1, 2.5, 2.5, 4]
    # predictions [10, 20, 30, 30] -> ranks [1, 2, 3.5, 3.5]
    # centred (mean 2.5): a = (-1.5, 0, 0, 1.5), b = (-1.5, -0.5, 1, 1)
    # a.b = 2.25 + 0 + 0 + 1.5 = 3.75; |a|^2 = 4.5; |b|^2 = 2.25 + 0.25 + 1 + 1 = 4.5
    # rho = 3.75 / 4.5 = 0.8333...
    assert metrics.spearman([1, 2, 2, 3], [10, 20, 30, 30]) == pytest.approx(3.75 / 4.5)
    # Monotonic but non-linear: Spearman 1, Pearson below 1.
    x = [1, 2, 3, 4, 5]
    y = [1, 8, 27, 64, 125]
    assert metrics.spearman(x, y) == pytest.approx(1.0)
    assert metrics.pearson(x, y) < 0.99


def test_average_ranks():
    np.testing.assert_allclose(metrics._average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])),
                               [4.0, 1.0, 4.0, 2.0, 4.0])  # the three 3s span ranks 3, 4, 5


def test_constant_inputs_give_zero_correlation():
    assert metrics.pearson([1, 2, 3], [2, 2, 2]) == 0.0
    assert metrics.pearson([2, 2, 2], [1, 2, 3]) == 0.0
    assert metrics.spearman([1, 2, 3], [0.5, 0.5, 0.5]) == 0.0


def test_non_finite_predictions_give_nan():
    assert math.isnan(metrics.pearson([1, 2, 3], [1, float("nan"), 3]))
    assert math.isnan(metrics.spearman([1, 2, 3], [1, float("inf"), 3]))


def test_multi_label_by_hand():
    labels = [[1, 0, 1],
              [0, 1, 0],
              [0, 0, 0]]
    predictions = [[1, 0, 0],   # TP 1, FN 1
                   [0, 1, 0],   # TP 1  (exact)
                   [0, 0, 0]]   # nothing (exact)
    # pooled TP=2, FP=0, FN=1 -> F1 = 4/5; exact rows 2 of 3
    result = metrics.multi_label(labels, predictions)
    assert result == {"f1_micro": pytest.approx(0.8), "exact_match": pytest.approx(2 / 3)}
    assert metrics.multi_label(np.zeros((2, 3)), np.zeros((2, 3))) == \
        {"f1_micro": 0.0, "exact_match": 1.0}
    result = metrics.multi_label(np.array(labels, dtype=bool), np.array(predictions, dtype=bool))
    assert result["f1_micro"] == pytest.approx(0.8)


def test_multi_label_rejects_bad_input():
    with pytest.raises(ValueError, match="0/1"):
        metrics.multi_label([[0, 2]], [[0, 1]])
    with pytest.raises(ValueError, match="shape"):
        metrics.multi_label([[0, 1]], [[0, 1, 0]])
    with pytest.raises(ValueError, match="shape"):
        metrics.multi_label([0, 1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        metrics.multi_label(np.zeros((0, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize("function", [metrics.accuracy, metrics.f1, metrics.f1_macro,
                                      metrics.matthews_corrcoef, metrics.pearson, metrics.spearman])
def test_empty_and_mismatched_inputs_raise(function):
    with pytest.raises(ValueError, match="empty"):
        function([], [])
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        function([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="1-D"):
        function([[1, 0]], [[1, 0]])


def test_compute_and_metric_names():
    results = metrics.compute(("mcc", "accuracy"), BINARY_LABELS, BINARY_PREDICTIONS)
    assert list(results) == ["mcc", "accuracy"]
    assert results["accuracy"] == pytest.approx(0.7)
    assert results["mcc"] == pytest.approx(10 / math.sqrt(600))
    results = metrics.compute(("f1_micro", "exact_match"), [[1, 0]], [[1, 1]])
    assert results == {"f1_micro": pytest.approx(2 / 3), "exact_match": 0.0}
    results = metrics.compute(("accuracy", "f1_macro"), [0, 1], [0, 1], num_classes=4)
    assert results == {"accuracy": 1.0, "f1_macro": pytest.approx(0.5)}
    assert all(isinstance(value, float) for value in results.values())
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.compute(("bleu",), [0], [0])


def test_every_task_metric_name_is_known():
    import classifier_data  # the tasks name metrics that compute must understand
    options = {"generic": {"text_a_column": "a", "label_column": "b"}}
    for name in classifier_data.TASK_NAMES:
        task = classifier_data.get_task(name, **options.get(name, {}))
        assert set(task.metric_names) <= set(metrics.METRICS), name
        assert task.main_metric in task.metric_names, name


# ---------------------------------------------------------------------------
# Cross-checks against independent implementations.
# ---------------------------------------------------------------------------


def test_against_scipy_on_random_data():
    from scipy import stats  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(2, 200))
        x = rng.normal(size=n)
        y = 0.5 * x + rng.normal(size=n)
        if trial % 2:  # heavy ties: scores on a 0..5 grid as in STS-B
            x, y = np.round(np.clip(x + 2.5, 0, 5)), np.round(np.clip(y + 2.5, 0, 5))
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
        assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)
        np.testing.assert_allclose(metrics._average_ranks(x), stats.rankdata(x))


def test_against_sklearn_on_random_data():
    from sklearn import metrics as skm  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(1)
    for trial in range(20):
        num_classes = 2 + trial % 4
        n = int(rng.integers(1, 100))
        labels = rng.integers(0, num_classes, size=n)
        predictions = np.where(rng.random(n) < 0.6, labels, rng.integers(0, num_classes, size=n))
        assert metrics.accuracy(labels, predictions) == \
            pytest.approx(skm.accuracy_score(labels, predictions))
        assert metrics.matthews_corrcoef(labels, predictions) == \
            pytest.approx(skm.matthews_corrcoef(labels, predictions), abs=1e-9)
        assert metrics.f1_macro(labels, predictions, num_classes=num_classes) == pytest.approx(
            skm.f1_score(labels, predictions, average="macro", labels=list(range(num_classes)),
                         zero_division=0))
        if num_classes == 2:
            assert metrics.f1(labels, predictions) == \
                pytest.approx(skm.f1_score(labels, predictions, zero_division=0))
        matrix_labels = rng.integers(0, 2, size=(n, num_classes))
        matrix_predictions = rng.integers(0, 2, size=(n, num_classes))
        result = metrics.multi_label(matrix_labels, matrix_predictions)
        assert result["f1_micro"] == pytest.approx(
            skm.f1_score(matrix_labels, matrix_predictions, average="micro", zero_division=0))
        assert result["exact_match"] == \
            pytest.approx(skm.accuracy_score(matrix_labels, matrix_predictions))


# ---------------------------------------------------------------------------
# Tagging: entities as conlleval reads them, against seqeval (a test-only oracle).
# ---------------------------------------------------------------------------

def seqeval_entities(sentences, scheme=None):
    """{(sentence, type, first, last)} as seqeval finds them: its default (conlleval) mode, or
    strict mode for `scheme`."""
    from seqeval import scheme as schemes
    from seqeval.metrics.sequence_labeling import get_entities
    if scheme is None:
        spans = set()
        for k, tags in enumerate(sentences):
            spans.update((k, *span) for span in get_entities(list(tags)))
        return spans
    entities = schemes.Entities([list(s) for s in sentences], getattr(schemes, scheme))
    return {(e.sent_id, e.tag, e.start, e.end - 1) for e in chain(*entities.entities)}


def ours(sentences, scheme=None):
    return {(k, *span) for k, tags in enumerate(sentences)
            for span in metrics.entity_spans(tags, scheme)}


def seqeval_scores(gold, predicted, scheme=None):
    """seqeval's overall micro scores and its per-type report."""
    from seqeval import scheme as schemes
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    options = {} if scheme is None else dict(mode="strict", scheme=getattr(schemes, scheme))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its undefined-metric warnings: 0.0, as ours
        report = classification_report(gold, predicted, output_dict=True, zero_division=0,
                                       **options)
        overall = {"precision": precision_score(gold, predicted, zero_division=0, **options),
                   "recall": recall_score(gold, predicted, zero_division=0, **options),
                   "f1": f1_score(gold, predicted, zero_division=0, **options)}
    per_type = {name: values for name, values in report.items() if not name.endswith(" avg")}
    return overall, per_type


def assert_scores_match_seqeval(gold, predicted, scheme=None):
    ours_ = metrics.entity_scores(gold, predicted, scheme)
    overall, per_type = seqeval_scores(gold, predicted, scheme)
    for name, value in overall.items():
        assert ours_[name] == pytest.approx(value, abs=1e-12), (name, gold, predicted)
    assert set(ours_["per_type"]) == set(per_type)
    for type_, values in per_type.items():
        mine = ours_["per_type"][type_]
        assert mine["support"] == values["support"]
        for name in ("precision", "recall"):
            assert mine[name] == pytest.approx(values[name], abs=1e-12), (type_, name)
        assert mine["f1"] == pytest.approx(values["f1-score"], abs=1e-12), type_


# Hand-made sentences: IOB1 (entities starting with I-), IOB2, IOBES, type changes inside a run,
# entities at the edges, lone E- and I- tags.
HAND_GOLD = [
    ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O"],          # IOB1: Ada Moss / Riverton / Ashford
    ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG"],       # IOB2, entity at the end
    ["S-PER", "O", "B-ORG", "I-ORG", "E-ORG", "S-LOC"],       # IOBES
    ["O", "O", "O"],
    ["B-MISC"],
]
HAND_PREDICTED = [
    ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "O"],          # first right, two LOCs merged
    ["I-PER", "I-PER", "O", "B-ORG", "I-LOC", "I-ORG"],       # type change splits the ORG
    ["B-PER", "O", "B-ORG", "I-ORG", "E-ORG", "E-LOC"],       # B- alone, lone E- starts one
    ["O", "I-PER", "O"],                                       # a spurious I- entity
    ["B-MISC"],
]


def test_entity_spans_by_hand():
    spans = metrics.entity_spans
    assert spans(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O"]) == [
        ("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4)]
    assert spans(["B-ORG", "I-LOC", "I-ORG"]) == [("ORG", 0, 0), ("LOC", 1, 1), ("ORG", 2, 2)]
    assert spans(["B-ORG", "I-ORG", "E-ORG", "E-ORG", "S-LOC", "I-LOC"]) == [
        ("ORG", 0, 2), ("ORG", 3, 3), ("LOC", 4, 4), ("LOC", 5, 5)]
    assert spans(["O"] * 3) == [] and spans([]) == []
    # Strict: an I- without its B-, and an IOBES entity without its E-, are not entities.
    assert spans(["I-PER", "I-PER", "O", "B-LOC", "I-LOC"], "IOB2") == [("LOC", 3, 4)]
    assert spans(["B-PER", "I-PER", "O", "S-LOC", "B-ORG", "E-ORG", "E-ORG"], "IOBES") == [
        ("LOC", 3, 3), ("ORG", 4, 5)]
    with pytest.raises(ValueError, match="not an IOB2 tag"):
        spans(["S-PER"], "IOB2")
    with pytest.raises(ValueError, match="not a chunk tag"):
        spans(["NN"])


def test_entity_scores_by_hand_and_as_seqeval():
    scores = metrics.entity_scores(HAND_GOLD, HAND_PREDICTED)
    # Gold: PER LOC LOC | PER ORG | PER ORG LOC | - | MISC = 9 entities. Predicted: PER LOC |
    # PER ORG LOC ORG | PER ORG LOC | PER | MISC = 11. Correct: PER | PER | PER ORG LOC | - | MISC
    # = 6 (a lone B-PER is an entity in conlleval's reading; E-LOC after E-ORG starts one).
    assert (scores["gold"], scores["predicted"], scores["correct"]) == (9, 11, 6)
    assert scores["precision"] == pytest.approx(6 / 11) and scores["recall"] == pytest.approx(6 / 9)
    assert scores["f1"] == pytest.approx(12 / 20)
    assert scores["per_type"]["PER"] == pytest.approx(
        dict(precision=3 / 4, recall=3 / 3, f1=6 / 7, support=3))
    assert scores["per_type"]["ORG"] == pytest.approx(
        dict(precision=1 / 3, recall=1 / 2, f1=2 / 5, support=2))
    assert_scores_match_seqeval(HAND_GOLD, HAND_PREDICTED)
    iob2 = (1, 3, 4)   # the sentences without E- and S- tags
    assert_scores_match_seqeval([HAND_GOLD[k] for k in iob2], [HAND_PREDICTED[k] for k in iob2],
                                "IOB2")


def test_nothing_found_or_nothing_to_find_scores_zero():
    scores = metrics.entity_scores([["O", "O"]], [["O", "O"]])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
    scores = metrics.entity_scores([["B-PER", "O"]], [["O", "O"]], types=["LOC", "PER"])
    assert scores["recall"] == 0.0 and scores["per_type"]["LOC"]["support"] == 0
    with pytest.raises(ValueError, match="2 gold tags but 1 predicted"):
        metrics.entity_scores([["O", "O"]], [["O"]])


def random_sentences(rng, prefixes, types, n):
    return [[("O" if p == "O" else f"{p}-{rng.choice(types)}")
             for p in rng.choice(list(prefixes), size=rng.integers(1, 12))] for _ in range(n)]


@pytest.mark.parametrize("prefixes, scheme", [
    ("BIO", None), ("BIOO", "IOB2"), ("IO", None), ("BIOES", None), ("BIOESO", "IOBES")])
def test_entities_and_scores_match_seqeval_on_random_tags(prefixes, scheme):
    """Random tags in each scheme (with I- starts, type changes, broken IOBES entities); gold and
    predictions from one distribution, the predictions partly copied from the gold tags."""
    rng = np.random.default_rng(len(prefixes) + 10 * (scheme is None))
    types = ["PER", "LOC", "ORG"]
    for _ in range(20):
        gold = random_sentences(rng, prefixes, types, 30)
        predicted = [g if rng.random() < 0.3 else s
                     for g, s in zip(gold, random_sentences(rng, prefixes, types, 30))]
        predicted = [(p + ["O"] * len(g))[:len(g)] for g, p in zip(gold, predicted)]
        assert ours(gold, scheme) == seqeval_entities(gold, scheme)
        assert_scores_match_seqeval(gold, predicted, scheme)


def test_tagging_metrics_for_entities_and_for_other_tags():
    tags = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    results = metrics.tagging_metrics([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "B-LOC"]],
                                      tags)
    assert results == pytest.approx(dict(
        accuracy=2 / 3, precision=0.5, recall=1.0, f1=2 / 3, gold_entities=1,
        predicted_entities=2, correct_entities=1, LOC_precision=0.0, LOC_recall=0.0, LOC_f1=0.0,
        LOC_support=0, PER_precision=1.0, PER_recall=1.0, PER_f1=1.0, PER_support=1))
    assert metrics.tagging_main_metric(tags) == "f1"
    # Parts of speech: no entities, token accuracy only.
    assert metrics.tagging_metrics([["NN", "VB"]], [["NN", "NN"]], ["NN", "VB"]) == {
        "accuracy": 0.5}
    assert metrics.tagging_main_metric(["NN", "VB"]) == "accuracy"
