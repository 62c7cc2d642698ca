"""Inference latency of kdzoo models, and a teacher-vs-student cost comparison."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from kdzoo.profiling.flops import _resolve_num_frames, flops, params


def device_name() -> str:
    """The device TensorFlow runs a forward pass on: the first GPU, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU:0 ({details.get('device_name', 'unknown')})"
    return "CPU:0"


def _compiled_forward(model: keras.Model):
    @tf.function(reduce_retracing=True)
    def forward(inputs):
        return model(inputs, training=False)

    return forward


def _random_inputs(model: keras.Model, num_frames: int, batch: int, seed: int) -> dict:
    feature_dim = int(model.get_layer("frames").output.shape[-1])
    rng = np.random.default_rng(seed)
    return {
        "frames": tf.constant(rng.standard_normal((batch, num_frames, feature_dim), dtype=np.float32)),
        "mask": tf.ones((batch, num_frames), tf.float32),
    }


def _run_once(forward, inputs) -> float:
    """Seconds for one forward pass, including copying the result to the host (which
    waits for an asynchronous GPU to finish)."""
    start = time.perf_counter()
    outputs = forward(inputs)
    for value in tf.nest.flatten(outputs):
        value.numpy()
    return time.perf_counter() - start


def _summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
    }


def _check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"Expected a non-negative integer `warmup`. Received: {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"Expected a positive integer `repeats`. Received: {repeats!r}")


def latency(
    model: keras.Model,
    num_frames: int | None = None,
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 20,
    seed: int = 0,
) -> dict:
    """Wall-clock time of a `tf.function`-compiled forward pass on random inputs.

    Runs `warmup` untimed passes (tracing and first-call costs), then `repeats` timed
    ones on the same batch.

    Returns:
        ``{"median_ms", "p90_ms", "min_ms", "batch", "num_frames", "device"}``.
    """
    num_frames = _resolve_num_frames(model, num_frames)
    _check_counts(warmup, repeats)
    forward = _compiled_forward(model)
    inputs = _random_inputs(model, num_frames, batch, seed)
    for _ in range(warmup):
        _run_once(forward, inputs)
    times = [_run_once(forward, inputs) for _ in range(repeats)]
    return {**_summary(times), "batch": int(batch), "num_frames": int(num_frames), "device": device_name()}


def _per_batch(value, batch: int, name: str) -> int:
    if isinstance(value, Mapping):
        if batch not in value:
            raise ValueError(f"`{name}` has no entry for batch {batch}: {dict(value)}")
        return value[batch]
    return value


def compare(
    teacher: keras.Model,
    student: keras.Model,
    k: int | None = None,
    batches: Sequence[int] = (1, 64),
    teacher_num_frames: int | None = None,
    warmup: int = 3,
    repeats: int | Mapping[int, int] = 20,
    seed: int = 0,
) -> dict:
    """FLOPs, parameters and latency of a teacher and its student, measured together.

    For each batch size, both models are warmed up and then timed interleaved (the
    order alternates every repeat), so that load from other processes hits both
    alike.

    Args:
        teacher: kdzoo model that sees `teacher_num_frames` frames (default: its input
            frame count).
        student: kdzoo model that sees `k` frames (default: its input
            frame count).
        batches: batch sizes to time.
        warmup: untimed passes per model and batch.
        repeats: timed passes per model and batch; an int, or ``{batch: repeats}``.
        seed: seed of the random inputs.

    Returns:
        ``{"teacher": {...}, "student": {...}, "ratios": {...}}`` where each model entry
        holds ``num_frames``, ``flops``, ``flops_split``, ``params`` and ``latency``
        (``{batch: latency dict}``), and ``ratios`` holds student/teacher ``flops``,
        ``params`` and ``latency`` (``{batch: median ratio}``).
    """
    from kdzoo.profiling.flops import flops_split

    models = {"teacher": teacher, "student": student}
    num_frames = {
        "teacher": _resolve_num_frames(teacher, teacher_num_frames),
        "student": _resolve_num_frames(student, k),
    }
    report = {
        role: {
            "name": model.name,
            "num_frames": num_frames[role],
            "flops": flops(model, num_frames[role]),
            "flops_split": flops_split(model, num_frames[role]),
            "params": params(model),
            "latency": {},
        }
        for role, model in models.items()
    }
    forwards = {role: _compiled_forward(model) for role, model in models.items()}
    device = device_name()
    for batch in batches:
        count = _per_batch(repeats, batch, "repeats")
        _check_counts(warmup, count)
        inputs = {
            role: _random_inputs(models[role], num_frames[role], batch, seed) for role in models
        }
        for role in models:
            for _ in range(warmup):
                _run_once(forwards[role], inputs[role])
        times = {role: [] for role in models}
        for i in range(count):
            order = ("teacher", "student") if i % 2 == 0 else ("student", "teacher")
            for role in order:
                times[role].append(_run_once(forwards[role], inputs[role]))
        for role in models:
            report[role]["latency"][batch] = {
                **_summary(times[role]),
                "batch": int(batch),
                "num_frames": num_frames[role],
                "device": device,
            }
    t, s = report["teacher"], report["student"]
    report["ratios"] = {
        "flops": s["flops"] / t["flops"],
        "params": s["params"] / t["params"],
        "latency": {
            batch: s["latency"][batch]["median_ms"] / t["latency"][batch]["median_ms"]
            for batch in batches
        },
    }
    return report
