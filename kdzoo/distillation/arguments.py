"""The checks of a `Distiller`'s arguments: every bad combination is refused before anything is built."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kdzoo import sampling
from kdzoo.distillation import losses as kd_losses
from kdzoo.models import frame_shape

MODES = ("serial", "parallel")
METRICS = ("gap", "hit_at_one", "perr", "map")


def check_arguments(
    teacher: keras.Model | None,
    student: keras.Model,
    k: int | None,
    sampler: str,
    train_sampler: str | None,
    train_k: Sequence[int] | None,
    mode: str,
    prediction_loss: str,
    intermediate_weight: float,
    metrics: Sequence[str],
) -> tuple[tuple[int, int] | None, int]:
    """Raises a ValueError saying what was expected for any bad argument (see `Distiller`).

    Returns ``(train_k as a tuple or None, the frames' feature size)``.
    """
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k <= 0):
        raise ValueError(f"Expected a positive integer frame count k. Received: k={k!r}")
    for name, value in (("sampler", sampler), ("train_sampler", train_sampler or sampler)):
        if value not in sampling.SAMPLERS:
            raise ValueError(f"Unknown {name} {value!r}. Expected one of {sampling.SAMPLERS}.")
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}. Expected one of {MODES}.")
    if prediction_loss not in kd_losses.PREDICTION_LOSSES:
        raise ValueError(
            f"Unknown prediction loss {prediction_loss!r}. Expected one of {kd_losses.PREDICTION_LOSSES}."
        )
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}. Expected names from {METRICS}.")
    student_num_frames, feature_size = frame_shape(student)
    if train_k is not None:
        train_k = tuple(train_k)
        if (
            len(train_k) != 2
            or any(not isinstance(v, int) or isinstance(v, bool) for v in train_k)
            or not 1 <= train_k[0] <= train_k[1]
        ):
            raise ValueError(f"Expected train_k=(low, high) with 1 <= low <= high. Received: train_k={train_k!r}")
        if student_num_frames is not None and k is not None:
            raise ValueError(
                f"An elastic student (train_k={train_k}) must be built with num_frames=None; "
                f"this one was built for {student_num_frames} frames."
            )
    if student_num_frames is not None and k is not None and student_num_frames != k:
        raise ValueError(
            f"The student was built for {student_num_frames} frames but the Distiller samples "
            f"k={k}. Build the student with num_frames={k} or num_frames=None."
        )
    if float(intermediate_weight) < 0:
        raise ValueError(f"Expected intermediate_weight >= 0. Received: intermediate_weight={intermediate_weight!r}")
    if teacher is not None and float(intermediate_weight) > 0:
        for role, model in (("teacher", teacher), ("student", student)):
            if "intermediate" not in model.output:
                raise ValueError(
                    f"intermediate_weight={intermediate_weight} needs an 'intermediate' output, but the {role} "
                    f"{model.name!r} has only {sorted(model.output)}. Build it with 'intermediate': True."
                )
    if teacher is not None:
        teacher_num_frames, teacher_features = frame_shape(teacher)
        if teacher_features != feature_size:
            raise ValueError(
                f"Teacher and student expect different frame widths: teacher {teacher_features}, "
                f"student {feature_size}."
            )
        if teacher_num_frames is not None and k is not None and k > teacher_num_frames:
            raise ValueError(
                f"The student's k={k} frames exceed the teacher's {teacher_num_frames} frames; "
                "k must be at most the teacher's frame count."
            )
    return train_k, feature_size
