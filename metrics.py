"""Evaluation metrics for classification, regression, multi-label and tagging tasks (numpy only).

The metrics GLUE reports: accuracy, binary F1, Matthews correlation (CoLA), Pearson and Spearman
correlation (STS-B), plus macro F1 and the multi-label pair (micro F1, exact match) for the generic
task. `compute` evaluates the metrics a task names (`classifier_data.Task.metric_names`).

Tagging (run_ner.py): entity-level precision, recall and F1, overall and per entity type, as
conlleval reports them (an entity counts when its span and type are exactly right), and token
accuracy; `tagging_metrics` gives them for sentences of tags (see "Entities" below).

Inputs are sequences or numpy arrays of equal length. For classification both `labels` and
`predictions` are class indices (any hashable values work for accuracy, MCC and macro F1); for
regression they are numbers; for multi-label they are 0/1 matrices [examples, classes].

Conventions where a metric is undefined (the values scikit-learn returns by default, so numbers
agree with published tables):

* empty input, or inputs of different lengths: ValueError;
* F1 with no true positives, false positives or false negatives (no positive label and no positive
  prediction): 0.0; a class's F1 in `f1_macro` likewise;
* Matthews correlation when labels or predictions are all one class: 0.0 (the denominator is 0);
* Pearson and Spearman when labels or predictions are constant: 0.0 (scipy returns NaN there; 0.0
  keeps "no correlation shown" comparable when picking the best checkpoint);
* Pearson and Spearman when an input holds NaN or infinity (a diverged model): NaN, so the number is
  visible in the results instead of an exception ending the run.
"""
from typing import Callable, Dict, Optional, Sequence

import numpy as np


def _pair(labels, predictions, *, numeric=False):
    """Both inputs as 1-D arrays of one length; ValueError when empty or mismatched."""
    dtype = np.float64 if numeric else None
    labels = np.asarray(labels, dtype=dtype)
    predictions = np.asarray(predictions, dtype=dtype)
    if labels.ndim != 1 or predictions.ndim != 1:
        raise ValueError(f"expected 1-D labels and predictions, got shapes {labels.shape} and "
                         f"{predictions.shape}")
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if len(labels) == 0:
        raise ValueError("no examples: labels and predictions are empty")
    return labels, predictions


def _f1_from_counts(tp, fp, fn) -> float:
    """2TP / (2TP + FP + FN), the harmonic mean of precision and recall; 0.0 when all are 0."""
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def accuracy(labels, predictions) -> float:
    """Share of examples whose prediction equals the label."""
    labels, predictions = _pair(labels, predictions)
    return float(np.mean(labels == predictions))


def f1(labels, predictions, positive=1) -> float:
    """Binary F1 of the class `positive` (MRPC and QQP: class 1, "is a paraphrase/duplicate").

    0.0 when there is no positive label and no positive prediction (see the module docstring).
    """
    labels, predictions = _pair(labels, predictions)
    is_label, is_prediction = labels == positive, predictions == positive
    tp = np.sum(is_label & is_prediction)
    fp = np.sum(~is_label & is_prediction)
    fn = np.sum(is_label & ~is_prediction)
    return _f1_from_counts(tp, fp, fn)


def _confusion(labels, predictions, num_classes=None):
    """Confusion matrix C[true, predicted] over the classes seen (or 0..num_classes-1)."""
    if num_classes is None:
        classes, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
        size = len(classes)
    else:
        codes = np.concatenate([labels, predictions]).astype(np.int64)
        if codes.min() < 0 or codes.max() >= num_classes:
            raise ValueError(f"class indices must be in [0, {num_classes}), got "
                             f"{codes.min()}..{codes.max()}")
        size = num_classes
    n = len(labels)
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (codes[:n], codes[n:]), 1)
    return matrix


def f1_macro(labels, predictions, num_classes=None) -> float:
    """Unweighted mean of the per-class F1 scores.

    The classes are 0..num_classes-1 when `num_classes` is given (a class that never occurs counts
    with F1 0.0), else the classes that occur in labels or predictions.
    """
    labels, predictions = _pair(labels, predictions)
    matrix = _confusion(labels, predictions, num_classes)
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    return float(np.mean([_f1_from_counts(*counts) for counts in zip(tp, fp, fn)]))


def matthews_corrcoef(labels, predictions) -> float:
    """Matthews correlation coefficient (CoLA's metric), binary or multiclass.

    With the confusion matrix C over K classes, c = trace(C) (correct), s = sum(C) (examples),
    t_k = row sums (true counts), p_k = column sums (predicted counts), Gorodkin's (2004) form is

        MCC = (c*s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) * (s^2 - sum_k t_k^2)),

    which for two classes equals (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    0.0 when the denominator is 0 (all labels or all predictions one class).
    """
    labels, predictions = _pair(labels, predictions)
    matrix = _confusion(labels, predictions).astype(np.float64)  # float: s^2 can overflow int64
    t = matrix.sum(axis=1)
    p = matrix.sum(axis=0)
    c = np.trace(matrix)
    s = matrix.sum()
    denominator = np.sqrt((s * s - np.dot(p, p)) * (s * s - np.dot(t, t)))
    if denominator == 0:
        return 0.0
    return float((c * s - np.dot(p, t)) / denominator)


def pearson(labels, predictions) -> float:
    """Pearson correlation; 0.0 if either input is constant, NaN if either is not finite."""
    labels, predictions = _pair(labels, predictions, numeric=True)
    if not (np.all(np.isfinite(labels)) and np.all(np.isfinite(predictions))):
        return float("nan")
    x = labels - labels.mean()
    y = predictions - predictions.mean()
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if denominator == 0:
        return 0.0
    # Rounding can put |r| a hair above 1.
    return float(np.clip(np.dot(x, y) / denominator, -1.0, 1.0))


def _average_ranks(values):
    """Ranks 1..n, ties sharing the mean of the ranks they span ("average" in scipy's rankdata)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)             # last rank of each distinct value
    mean_ranks = ends - (counts - 1) / 2.0
    return mean_ranks[inverse.reshape(-1)]


def spearman(labels, predictions) -> float:
    """Spearman rank correlation: Pearson of the average ranks (ties share their mean rank)."""
    labels, predictions = _pair(labels, predictions, numeric=True)
    if not (np.all(np.isfinite(labels)) and np.all(np.isfinite(predictions))):
        return float("nan")
    return pearson(_average_ranks(labels), _average_ranks(predictions))


def multi_label(labels_matrix, predictions_matrix) -> Dict[str, float]:
    """Multi-label metrics over 0/1 matrices [examples, classes].

    "f1_micro": F1 of all (example, class) decisions pooled, 0.0 when no cell is positive in either;
    "exact_match": share of examples whose whole row of predictions equals the labels' row.
    """
    labels = np.asarray(labels_matrix)
    predictions = np.asarray(predictions_matrix)
    if labels.ndim != 2 or labels.shape != predictions.shape:
        raise ValueError(f"expected two 0/1 matrices of one shape [examples, classes], got shapes "
                         f"{labels.shape} and {predictions.shape}")
    if labels.shape[0] == 0:
        raise ValueError("no examples: labels and predictions are empty")
    for name, matrix in (("labels", labels), ("predictions", predictions)):
        if not np.all((matrix == 0) | (matrix == 1)):
            raise ValueError(f"multi-label {name} must be 0/1 (or boolean) matrices")
    labels, predictions = labels.astype(bool), predictions.astype(bool)
    tp = np.sum(labels & predictions)
    fp = np.sum(~labels & predictions)
    fn = np.sum(labels & ~predictions)
    return {"f1_micro": _f1_from_counts(tp, fp, fn),
            "exact_match": float(np.mean(np.all(labels == predictions, axis=1)))}


def _f1_micro(labels_matrix, predictions_matrix) -> float:
    return multi_label(labels_matrix, predictions_matrix)["f1_micro"]


def _exact_match(labels_matrix, predictions_matrix) -> float:
    return multi_label(labels_matrix, predictions_matrix)["exact_match"]


# Name -> function(labels, predictions), for the names in `classifier_data.Task.metric_names`.
# "f1_micro" and "exact_match" take 0/1 matrices; the others take 1-D inputs.
METRICS: Dict[str, Callable] = {
    "accuracy": accuracy,
    "f1": f1,
    "f1_macro": f1_macro,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
    "f1_micro": _f1_micro,
    "exact_match": _exact_match,
}


def compute(metric_names: Sequence[str], labels, predictions,
            num_classes: Optional[int] = None) -> Dict[str, float]:
    """{name: value} for each name in `metric_names` (keys of METRICS), in that order.

    `num_classes`, if given, is passed to "f1_macro" so that every class of the task counts.
    """
    unknown = [name for name in metric_names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    results = {}
    for name in metric_names:
        if name == "f1_macro" and num_classes is not None:
            results[name] = f1_macro(labels, predictions, num_classes=num_classes)
        else:
            results[name] = METRICS[name](labels, predictions)
    return results


# -- Entities in tag sequences ----------------------------------------------------------------------
#
# A chunk tag is "O" or <prefix>-<type> with the prefix B, I, E or S. conlleval (the CoNLL shared
# tasks' scorer, which seqeval's default mode follows) reads entities off the tags with rules that
# serve IOB1, IOB2 (BIO) and IOBES alike: an entity starts at B- or S-, at an I- or E- after O, E-
# or S-, or where the type changes; it ends before B-, S- or O after B- or I-, after E- or S-, or
# where the type changes. So "I-PER I-PER" (IOB1, or an IOB2 tagger's slip) is one PER entity, and
# "I-PER B-PER" two. Strict mode (`scheme="IOB2"` or "IOBES", seqeval's mode="strict") counts only
# well-formed entities: B-X I-X..., and for IOBES S-X or B-X (I-X...) E-X; a tag of another prefix
# is a ValueError there.

OUTSIDE = "O"
CHUNK_PREFIXES = "BIES"
STRICT_SCHEMES = {"IOB2": "BIO", "IOBES": "BIOES"}   # scheme -> the prefixes it allows


def is_chunk_tag(tag) -> bool:
    return tag == OUTSIDE or (len(tag) > 2 and tag[0] in CHUNK_PREFIXES and tag[1] == "-")


def _split_tag(tag):
    """(prefix, type): ("O", "") for O, ("B", "PER") for B-PER."""
    if not is_chunk_tag(tag):
        raise ValueError(f"{tag!r} is not a chunk tag (O, or B-, I-, E-, S- and a type)")
    return (OUTSIDE, "") if tag == OUTSIDE else (tag[0], tag[2:])


def _chunk_ends(prev, prefix, prev_type, type_):
    """conlleval's endOfChunk: an entity ended at the previous tag."""
    return (prev in "ES" or (prev in "BI" and prefix in "BSO")
            or (prev != OUTSIDE and prev_type != type_))


def _chunk_starts(prev, prefix, prev_type, type_):
    """conlleval's startOfChunk: an entity starts at this tag."""
    return (prefix in "BS" or (prev in "ESO" and prefix in "EI")
            or (prefix != OUTSIDE and prev_type != type_))


def _conlleval_spans(parsed):
    spans, prev, prev_type, start = [], OUTSIDE, "", 0
    for i, (prefix, type_) in enumerate(parsed + [(OUTSIDE, "")]):
        if _chunk_ends(prev, prefix, prev_type, type_):
            spans.append((prev_type, start, i - 1))
        if _chunk_starts(prev, prefix, prev_type, type_):
            start = i
        prev, prev_type = prefix, type_
    return spans


def _strict_spans(parsed, scheme):
    """seqeval's strict mode: B-X then a run of I-X (IOBES: ending in E-X), or S-X."""
    inside = "I" if scheme == "IOB2" else "IE"
    spans, i = [], 0
    while i < len(parsed):
        prefix, type_ = parsed[i]
        if prefix == "S":
            spans.append((type_, i, i))
        if prefix != "B":
            i += 1
            continue
        j = i + 1   # the run continues until a tag of another type or prefix, or after an E-
        while (j < len(parsed) and parsed[j][1] == type_ and parsed[j][0] in inside
               and parsed[j - 1][0] != "E"):
            j += 1
        if scheme == "IOB2" or parsed[j - 1][0] == "E":
            spans.append((type_, i, j - 1))
        i = j
    return spans


def entity_spans(tags, scheme=None):
    """[(type, first, last)] of the entities in one sentence's tags (`last` inclusive), in order.

    scheme None: conlleval's reading (any of IOB1, IOB2, IOBES); "IOB2" or "IOBES": strict.
    """
    parsed = [_split_tag(tag) for tag in tags]
    if scheme is None:
        return _conlleval_spans(parsed)
    allowed = STRICT_SCHEMES[scheme]
    for tag, (prefix, _) in zip(tags, parsed):
        if prefix not in allowed:
            raise ValueError(f"{tag!r} is not an {scheme} tag")
    return _strict_spans(parsed, scheme)


def _check_sentences(gold, predicted):
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for k, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {k}: {len(g)} gold tags but {len(p)} predicted")


def _scores(correct, predicted, gold):
    """precision, recall, F1 (each 0.0 where undefined, as conlleval and seqeval report)."""
    return {"precision": correct / predicted if predicted else 0.0,
            "recall": correct / gold if gold else 0.0,
            "f1": _f1_from_counts(correct, predicted - correct, gold - correct)}


def entity_scores(gold, predicted, scheme=None, types=None):
    """Entity-level scores of predicted tags against gold tags.

    gold, predicted: sentences, each a sequence of chunk tags (equal lengths). An entity is
    correct when one of the same type spans exactly the same words in the gold tags. Returns
    {precision, recall, f1, gold, predicted, correct (entity counts), per_type: {type:
    {precision, recall, f1, support (gold entities)}}} with the types of `types` (default: those
    found in gold or predicted tags), sorted.
    """
    _check_sentences(gold, predicted)
    found = {}
    for side, sentences in (("gold", gold), ("predicted", predicted)):
        found[side] = {(k, *span) for k, tags in enumerate(sentences)
                       for span in entity_spans(tags, scheme)}
    correct = found["gold"] & found["predicted"]
    results = dict(_scores(len(correct), len(found["predicted"]), len(found["gold"])),
                   gold=len(found["gold"]), predicted=len(found["predicted"]),
                   correct=len(correct))
    if types is None:
        types = {span[1] for spans in found.values() for span in spans}

    def count(spans, type_):
        return sum(span[1] == type_ for span in spans)

    results["per_type"] = {
        type_: dict(_scores(count(correct, type_), count(found["predicted"], type_),
                            count(found["gold"], type_)), support=count(found["gold"], type_))
        for type_ in sorted(types)}
    return results


def token_accuracy(gold, predicted) -> float:
    """The share of words whose predicted tag is the gold tag, over all sentences."""
    _check_sentences(gold, predicted)
    return accuracy([t for s in gold for t in s], [t for s in predicted for t in s])


def tagging_main_metric(tags) -> str:
    """What picks the best tagging checkpoint: entity F1 for chunk tags, else token accuracy."""
    return "f1" if all(is_chunk_tag(tag) for tag in tags) else "accuracy"


def tagging_metrics(gold, predicted, tags) -> Dict[str, float]:
    """run_ner.py's metrics for sentences of gold and predicted tags from the tag set `tags`:
    accuracy, and for chunk tags precision, recall, f1, gold_entities, predicted_entities,
    correct_entities and per entity type of the tag set <type>_precision, _recall, _f1,
    _support."""
    results = {"accuracy": token_accuracy(gold, predicted)}
    if tagging_main_metric(tags) != "f1":
        return results
    types = {_split_tag(tag)[1] for tag in tags if tag != OUTSIDE}
    scores = entity_scores(gold, predicted, types=types)
    results.update({name: scores[name] for name in ("precision", "recall", "f1")})
    results.update({f"{name}_entities": scores[name]
                    for name in ("gold", "predicted", "correct")})
    for type_, values in scores["per_type"].items():
        results.update({f"{type_}_{name}": value for name, value in values.items()})
    return results
