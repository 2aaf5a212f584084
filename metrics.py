"""Evaluation metrics for classification, regression and multi-label tasks (numpy only).

The metrics GLUE reports: accuracy, binary F1, Matthews correlation (CoLA), Pearson and Spearman
correlation (STS-B), plus macro F1 and the multi-label pair (micro F1, exact match) for the generic
task. `compute` evaluates the metrics a task names (`classifier_data.Task.metric_names`).

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
