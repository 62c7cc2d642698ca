"""Offline evaluation of a kdzoo model on TFRecords: predictions in, the paper's metrics out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from kdzoo import metrics
from kdzoo.data import get_spec, make_dataset
from kdzoo.data.errors import data_errors
from kdzoo.models import frame_shape


def predict_dataset(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    student: bool | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `model` over a `make_dataset` dataset; returns ``(predictions, labels)``.

    Args:
        model: a kdzoo model.
        dataset: batches ``(inputs, labels)``; a student's batches must hold
            ``"student_frames"``/``"student_mask"`` (``make_dataset(k=k)``).
        student: feed the student view (default: when the batches have one).
    """
    forward = tf.function(lambda x: model(x, training=False)["predictions"], reduce_retracing=True)
    preds, labels = [], []
    for inputs, y in tqdm(dataset, desc=f"predict {model.name}", disable=not progress, unit="batch"):
        use_student = ("student_frames" in inputs) if student is None else student
        if use_student:
            x = {"frames": inputs["student_frames"], "mask": inputs["student_mask"]}
        else:
            x = {"frames": inputs["frames"], "mask": inputs["mask"]}
        preds.append(forward(x).numpy())
        labels.append(y.numpy())
    if not preds:
        raise ValueError("The dataset yielded no videos to evaluate.")
    return np.concatenate(preds), np.concatenate(labels)


def evaluate_model(model: keras.Model, files: str | Sequence[str], spec: Any, **options: Any) -> dict[str, float]:
    """GAP@20, mAP, Hit@1 and PERR of `model` on TFRecords.

    `predict_files` with the same arguments (``k``, ``sampler``, ``batch_size``, ``take``,
    ``progress``), then `score`. Returns ``{"gap", "map", "hit_at_one", "perr", "videos"}``.
    """
    spec = get_spec(spec)
    return score(*predict_files(model, files, spec, **options), spec.num_classes)


def predict_files(
    model: keras.Model,
    files: str | Sequence[str],
    spec: Any,
    *,
    k: int | None = None,
    sampler: str = "uniform",
    batch_size: int = 512,
    take: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(predictions, labels)`` of `model` on TFRecords, in file order.

    Args:
        model: a kdzoo model.
        files: a glob, list or comma-separated string of TFRecord files (local or gs://).
        spec: a `kdzoo.data.DatasetSpec` or preset name ("audioset", "yt8m").
        k: a student's frame count (sampled deterministically with `sampler`); None
            feeds every frame (teachers). Defaults to the model's own frame count when it
            is smaller than the dataset's.
        take: only the first `take` videos.
        progress: a progress bar over the batches.
    """
    spec = get_spec(spec)
    num_frames, _ = frame_shape(model)
    if k is None and num_frames is not None and num_frames < spec.max_frames:
        k = num_frames
    dataset = make_dataset(files, spec, batch_size, k=k, sampler=sampler, take=take)
    with data_errors():
        return predict_dataset(model, dataset, student=k is not None, progress=progress)


def score(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """``{"gap", "map", "hit_at_one", "perr", "videos"}`` of predictions against labels."""
    result = metrics.evaluate(predictions, labels, top_k=min(20, num_classes))
    result = {key: float(value) for key, value in result.items()}
    result["videos"] = int(len(labels))
    return result
