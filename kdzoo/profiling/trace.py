"""TensorBoard profiler traces of a kdzoo model's forward pass."""

from __future__ import annotations

import os
import pathlib

import keras
import tensorflow as tf

from kdzoo.profiling.flops import _resolve_num_frames
from kdzoo.profiling.latency import _compiled_forward, _random_inputs


def write_trace(
    model: keras.Model,
    logdir: str | os.PathLike,
    num_frames: int | None = None,
    batch: int = 8,
    steps: int = 5,
    run: str | None = None,
    seed: int = 0,
) -> list[pathlib.Path]:
    """Profiles `steps` forward passes and writes a trace TensorBoard's profile plugin reads.

    The trace goes to ``<logdir>[/<run>]/plugins/profile/<timestamp>/<host>.xplane.pb``.
    Give the teacher and the student different `run` names under one `logdir` so
    that ``tensorboard --logdir <logdir>`` lists them as separate runs, e.g.
    ``write_trace(teacher, "traces", run="teacher")`` and
    ``write_trace(student, "traces", num_frames=10, run="student")``.

    One untraced pass runs first, so tracing of the `tf.function` is not profiled.
    Only one profiler session can be active per process.

    Returns:
        The ``*.xplane.pb`` files written by this call.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Expected a positive integer `steps`. Received: {steps!r}")
    num_frames = _resolve_num_frames(model, num_frames)
    directory = pathlib.Path(logdir) / run if run else pathlib.Path(logdir)
    directory.mkdir(parents=True, exist_ok=True)
    before = set(directory.glob("plugins/profile/*/*.xplane.pb"))
    forward = _compiled_forward(model)
    inputs = _random_inputs(model, num_frames, batch, seed)
    tf.nest.map_structure(lambda t: t.numpy(), forward(inputs))  # trace + warm up
    tf.profiler.experimental.start(str(directory))
    try:
        for step in range(steps):
            with tf.profiler.experimental.Trace("inference", step_num=step, _r=1):
                tf.nest.map_structure(lambda t: t.numpy(), forward(inputs))
    finally:
        tf.profiler.experimental.stop()
    return sorted(set(directory.glob("plugins/profile/*/*.xplane.pb")) - before)
