"""The paper's three losses, as plain functions of tensors.

All take a batch and return a scalar: the mean over the batch of a per-video loss.
"""

from __future__ import annotations

import keras
from keras import ops

PREDICTION_LOSSES = ("mse", "bce")

_EPSILON = 1e-7


def classification_loss(labels, predictions):
    """Multi-label binary cross-entropy L_CE, mean over classes and videos.

    Args:
        labels: `(batch, num_classes)` multi-hot targets.
        predictions: `(batch, num_classes)` sigmoid probabilities.
    """
    return ops.mean(keras.losses.binary_crossentropy(labels, predictions))


def representation_loss(teacher_embedding, student_embedding):
    """L_rep = ||E_T - E_S||^2: squared L2 distance per video, mean over videos.

    Args:
        teacher_embedding: `(batch, dim)`.
        student_embedding: `(batch, dim)` (already projected to the teacher's width).
    """
    return ops.mean(ops.sum(ops.square(teacher_embedding - student_embedding), axis=-1))


def prediction_loss(teacher_predictions, student_predictions, kind: str = "bce"):
    """L_pred, a distance between the teacher's and the student's probabilities.

    Args:
        teacher_predictions: `(batch, num_classes)` probabilities P_T (soft targets).
        student_predictions: `(batch, num_classes)` probabilities P_S.
        kind: ``"mse"``: mean squared difference over classes; ``"bce"``: binary
            cross-entropy of P_S against the soft targets P_T, mean over classes.
    """
    if kind == "mse":
        return ops.mean(ops.square(teacher_predictions - student_predictions))
    if kind == "bce":
        p = ops.clip(student_predictions, _EPSILON, 1.0 - _EPSILON)
        t = teacher_predictions
        return ops.mean(-(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p)))
    raise ValueError(f"Unknown prediction loss {kind!r}. Expected one of {PREDICTION_LOSSES}.")
