"""The YouTube-8M metrics on whole prediction and label matrices (numpy): GAP@k, mAP, Hit@1, PERR.

These are the definitions; the streaming Keras metrics (`kdzoo.metrics.streaming`) give
the same numbers over batches. Conventions (positives, tie-breaking): `kdzoo.metrics`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gap", "mean_average_precision", "hit_at_one", "perr", "evaluate"]


def _validate(predictions, labels):
    """Returns ``(float64 predictions, float64 0/1 labels)`` after shape checks."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 2:
        raise ValueError(
            "predictions must be a 2-D array of shape (num_videos, num_classes); "
            f"got shape {predictions.shape}"
        )
    if labels.shape != predictions.shape:
        raise ValueError(
            "labels must have the same shape as predictions "
            f"(num_videos, num_classes); got labels {labels.shape} vs "
            f"predictions {predictions.shape}"
        )
    return predictions.astype(np.float64), (labels > 0).astype(np.float64)


def _check_top_k(top_k):
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer; got {top_k!r}")
    return int(top_k)


def _descending_order(x, axis=-1):
    """Stable descending argsort: equal values keep their original order."""
    return np.argsort(-x, axis=axis, kind="stable")


def gap(predictions, labels, top_k=20):
    """Global Average Precision at ``top_k`` (the YouTube-8M GAP).

    For every video its ``top_k`` highest predictions are kept as
    ``(prediction, is_positive)`` pairs (``top_k`` is clipped to ``num_classes``).
    The pairs of all videos are pooled and sorted by prediction, descending, and

        GAP = sum_i precision@i * is_positive_i / num_positives

    where ``precision@i`` is the fraction of positives among the first ``i``
    pooled pairs and ``num_positives`` is the total number of positive labels in
    the whole dataset, including those that fell outside every top-k (as the
    starter code's ``EvaluationMetrics`` does).  Returns 0.0 when there are no
    positive labels.  Tie-breaking: see the module docstring (lower class index
    first inside a video, pooled order among equal pooled predictions).

    Args:
        predictions: ``(num_videos, num_classes)`` array of scores.
        labels: ``(num_videos, num_classes)`` multi-hot array.
        top_k: positive int, number of predictions kept per video.

    Returns:
        float.
    """
    top_k = _check_top_k(top_k)
    p, y = _validate(predictions, labels)
    k = min(top_k, p.shape[1])
    idx = _descending_order(p, axis=1)[:, :k]
    pooled_p = np.take_along_axis(p, idx, axis=1).ravel()
    pooled_y = np.take_along_axis(y, idx, axis=1).ravel()
    num_positives = y.sum()
    if num_positives == 0 or pooled_p.size == 0:
        return 0.0
    sorted_y = pooled_y[_descending_order(pooled_p)]
    precision = np.cumsum(sorted_y) / np.arange(1, sorted_y.size + 1)
    return float(np.sum(precision * sorted_y) / num_positives)


def _class_average_precision(scores, positives):
    """sklearn-style AP of one class: sum_n (R_n - R_{n-1}) P_n, ties grouped."""
    order = _descending_order(scores)
    s = scores[order]
    t = positives[order]
    tps = np.cumsum(t)
    # The last element of every group of equal scores is a threshold.
    is_threshold = np.r_[s[1:] != s[:-1], True]
    tp_at = tps[is_threshold]
    n_at = np.arange(1, s.size + 1)[is_threshold]
    recall = tp_at / tps[-1]
    precision = tp_at / n_at
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(predictions, labels):
    """Mean (over classes) average precision.

    Per class, AP follows sklearn's ``average_precision_score``::

        AP = sum_n (R_n - R_{n-1}) * P_n

    over the distinct prediction thresholds in descending order, where ``P_n``
    and ``R_n`` are precision and recall when every video scoring ``>=`` the
    n-th threshold is predicted positive (so tied scores form one step and
    the result does not depend on tie order).  The mean is a macro average over
    the classes that have at least one positive label; classes without
    positives are excluded (the starter code instead counts them as AP 0).
    Returns 0.0 when no class has a positive label.

    Args:
        predictions: ``(num_videos, num_classes)`` array of scores.
        labels: ``(num_videos, num_classes)`` multi-hot array.

    Returns:
        float.
    """
    p, y = _validate(predictions, labels)
    aps = [
        _class_average_precision(p[:, c], y[:, c])
        for c in range(p.shape[1])
        if y[:, c].sum() > 0
    ]
    return float(np.mean(aps)) if aps else 0.0


def hit_at_one(predictions, labels):
    """Fraction of videos whose top-1 prediction is a positive label.

    Ties take the lowest class index (``np.argmax``).  Returns 0.0 for zero videos.
    """
    p, y = _validate(predictions, labels)
    if p.shape[0] == 0:
        return 0.0
    top1 = np.argmax(p, axis=1)
    return float(np.mean(y[np.arange(p.shape[0]), top1]))


def perr(predictions, labels):
    """Precision at equal recall rate, averaged over all videos.

    For a video with ``n`` positive labels this is the fraction of positives
    among its top-``n`` predictions (ties: lower class index first).  Videos
    without positive labels contribute 0 but still count in the average, as in
    the starter code.  Returns 0.0 for zero videos.
    """
    p, y = _validate(predictions, labels)
    if p.shape[0] == 0:
        return 0.0
    sorted_y = np.take_along_axis(y, _descending_order(p, axis=1), axis=1)
    n = y.sum(axis=1)
    in_top_n = np.arange(p.shape[1])[None, :] < n[:, None]
    hits = np.sum(sorted_y * in_top_n, axis=1)
    per_video = np.where(n > 0, hits / np.maximum(n, 1), 0.0)
    return float(np.mean(per_video))


def evaluate(predictions, labels, top_k=20):
    """All four metrics: ``{"gap", "map", "hit_at_one", "perr"}`` -> float."""
    _validate(predictions, labels)
    return {
        "gap": gap(predictions, labels, top_k=top_k),
        "map": mean_average_precision(predictions, labels),
        "hit_at_one": hit_at_one(predictions, labels),
        "perr": perr(predictions, labels),
    }
