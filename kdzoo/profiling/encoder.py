"""Cost of a per-frame encoder (VGGish, InceptionV3, any Keras model): FLOPs, params, latency.

A deployment on raw audio or video runs an encoder on every frame the classifier sees
before the aggregator; its cost per frame is what the student's k << N saves. The
counter walks a functional (or Sequential) Keras model node by node, nested models
included, and counts one frame (batch 1) with the conventions of
`kdzoo.profiling.flops` (a multiply-add = 2 FLOPs):

* ``Conv1D/2D/3D``: ``2 * prod(kernel) * (C_in / groups) * C_out`` per output position,
  + 1 per output element for the bias, + the activation;
  ``DepthwiseConv2D``: ``2 * prod(kernel) * multiplier`` per output channel position;
  ``SeparableConv2D``: the depthwise then the pointwise part;
* ``Dense``: ``2 * in * units`` per row, + bias, + activation;
* pooling: ``MaxPooling`` / ``AveragePooling`` ``prod(pool)`` per output element
  (+1 per output for the average's division); global pooling: 1 per input element
  (+1 per output for the average);
* inference batch norm: 2 per element + 5 per channel; activations as in
  `kdzoo.profiling.flops`; ``Add``/``Subtract``/``Multiply``/``Maximum``/``Minimum``:
  ``(inputs - 1)`` per element; ``Average``: ``inputs`` per element; ``Rescaling``: 2 per
  element;
* reshapes, flatten, concatenation, padding, cropping, dropout: 0.

Unknown layer types raise `NotImplementedError` naming the layer, never a silent 0.
`tf_profiler_encoder_flops` is the independent check (TensorFlow's graph profiler);
the tests hold the two within 10% on VGGish, InceptionV3 and small conv models.

Only architectures are counted and timed: kdzoo ships no encoder weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from kdzoo.profiling.flops import _FREE_LAYERS, activation_flops, batch_norm_flops

_FREE = (
    *_FREE_LAYERS,
    keras.layers.SpatialDropout2D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
)
_MAX_POOL = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)
_AVG_POOL = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D)
_GLOBAL_MAX = (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D)
_GLOBAL_AVG = (
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_MERGE_MINUS_ONE = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Maximum,
    keras.layers.Minimum,
)


def _graph_nodes(model: keras.Model):
    """The nodes of a functional model's graph (a Sequential model's inner functional graph)."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    by_depth = getattr(graph, "_nodes_by_depth", None)
    if by_depth is None:
        raise NotImplementedError(
            f"Cannot count the FLOPs of encoder {model.name!r} ({type(model).__name__}): expected a functional "
            "or Sequential keras.Model (a subclassed model has no graph to walk)."
        )
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _shape(tensor, where: str) -> tuple[int, ...]:
    shape = tuple(tensor.shape)[1:]
    if any(s is None for s in shape):
        raise ValueError(
            f"Expected a fixed per-frame shape at {where}; found {tuple(tensor.shape)}. "
            "Build the encoder with a fully defined input shape, e.g. keras.Input((96, 64, 1))."
        )
    return tuple(int(s) for s in shape)


def _conv(layer, in_shape, out_shape) -> int:
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    c_in = in_shape[-1] if channels_last else in_shape[0]
    out_elements = math.prod(out_shape)
    kernel = math.prod(layer.kernel_size)
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise_out = out_elements // layer.filters * c_in * layer.depth_multiplier
        flops = 2 * kernel * depthwise_out  # depthwise
        flops += 2 * c_in * layer.depth_multiplier * out_elements  # pointwise
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        flops = 2 * kernel * out_elements
    else:
        flops = 2 * kernel * (c_in // layer.groups) * out_elements
    if layer.use_bias:
        flops += out_elements
    return flops + activation_flops(layer.activation, out_elements)


def _node_flops(layer, node, where: str) -> int:
    inputs = [_shape(t, where) for t in node.arguments.keras_tensors]
    outputs = [_shape(t, where) for t in node.outputs]
    out_elements = sum(math.prod(s) for s in outputs)
    if isinstance(layer, keras.Model):
        return encoder_flops(layer, _where=where)
    if isinstance(layer, _FREE):
        return 0
    if isinstance(layer, (*_CONV, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        return _conv(layer, inputs[0], outputs[0])
    if isinstance(layer, keras.layers.Dense):
        rows = math.prod(inputs[0][:-1])
        flops = 2 * rows * inputs[0][-1] * layer.units
        flops += rows * layer.units if layer.use_bias else 0
        return flops + activation_flops(layer.activation, rows * layer.units)
    if isinstance(layer, _MAX_POOL):
        return math.prod(layer.pool_size) * out_elements
    if isinstance(layer, _AVG_POOL):
        return (math.prod(layer.pool_size) + 1) * out_elements
    if isinstance(layer, _GLOBAL_MAX):
        return math.prod(inputs[0])
    if isinstance(layer, _GLOBAL_AVG):
        return math.prod(inputs[0]) + out_elements
    if isinstance(layer, keras.layers.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        channels = inputs[0][axis - 1] if axis > 0 else inputs[0][axis]
        return batch_norm_flops(math.prod(inputs[0]), channels)
    if isinstance(layer, keras.layers.Activation):
        return activation_flops(layer.activation, out_elements)
    if isinstance(layer, keras.layers.ReLU):
        return activation_flops("relu", out_elements)
    if isinstance(layer, keras.layers.Softmax):
        return activation_flops("softmax", out_elements)
    if isinstance(layer, _MERGE_MINUS_ONE):
        return (len(inputs) - 1) * out_elements
    if isinstance(layer, keras.layers.Average):
        return len(inputs) * out_elements
    if isinstance(layer, keras.layers.Rescaling):
        return 2 * out_elements
    raise NotImplementedError(
        f"No FLOP count for layer {layer.name!r} of type {type(layer).__name__} in encoder {where!r}."
    )


def encoder_flops(encoder: keras.Model, _where: str | None = None) -> int:
    """Analytic FLOPs of one frame (batch 1) through a per-frame encoder.

    Args:
        encoder: a functional or Sequential `keras.Model` with a fixed per-frame input
            shape (one or several inputs, e.g. YouTube-8M's rgb image + audio patch).

    Returns:
        FLOPs for one frame (a multiply-add = 2).
    """
    if not isinstance(encoder, keras.Model):
        raise TypeError(f"Expected a keras.Model encoder. Received: {type(encoder).__name__}")
    where = encoder.name if _where is None else f"{_where}/{encoder.name}"
    return sum(_node_flops(node.operation, node, where) for node in _graph_nodes(encoder))


def encoder_params(encoder: keras.Model) -> int:
    """Parameters of the encoder (trainable and not)."""
    return int(encoder.count_params())


def frame_specs(encoder: keras.Model) -> list[tf.TensorSpec]:
    """One `tf.TensorSpec` per encoder input, without the batch axis (one frame)."""
    return [
        tf.TensorSpec(_shape(t, f"input {t.name!r} of {encoder.name!r}"), tf.float32, name=t.name)
        for t in tree_inputs(encoder)
    ]


def tree_inputs(encoder: keras.Model) -> list:
    """The encoder's input tensors, flattened in Keras' order."""
    return list(keras.tree.flatten(encoder.inputs))


def _structured(encoder: keras.Model, flat: Sequence):
    """Packs flat per-input tensors the way the encoder's call expects them (tensor, list or dict)."""
    structure = getattr(encoder, "_inputs_struct", None)
    if structure is None or not isinstance(structure, (Mapping, list, tuple)):
        return flat[0] if len(flat) == 1 else list(flat)
    return keras.tree.pack_sequence_as(structure, list(flat))


def random_frames(encoder: keras.Model, num_frames: int, seed: int = 0):
    """Random float32 input for `num_frames` frames, structured as the encoder's call takes it."""
    rng = np.random.default_rng(seed)
    flat = [
        tf.constant(rng.standard_normal((num_frames, *spec.shape), dtype=np.float32)) for spec in frame_specs(encoder)
    ]
    return _structured(encoder, flat)


def tf_profiler_encoder_flops(encoder: keras.Model) -> int:
    """FLOPs of one frame as TensorFlow's graph profiler counts them (the cross-check).

    Same recipe as `kdzoo.profiling.tf_profiler_flops`: trace the forward pass at batch
    1, freeze the variables into constants and profile ``float_operation``. The profiler
    counts convolutions, matmuls, bias adds and elementwise arithmetic; activations
    count 0 and pooling is counted by its own rules, so it reads a few percent below the
    analytic count on conv nets.
    """
    from kdzoo import _tf_internals

    specs = [tf.TensorSpec((1, *s.shape), s.dtype) for s in frame_specs(encoder)]

    @tf.function
    def forward(*flat):
        return encoder(_structured(encoder, flat), training=False)

    return _tf_internals.profile_float_ops(forward.get_concrete_function(*specs))


def encoder_latency(
    encoder: keras.Model,
    num_frames: int,
    warmup: int = 1,
    repeats: int = 5,
    seed: int = 0,
) -> dict:
    """Wall-clock time of the encoder on `num_frames` frames in one call (one batch of frames).

    Returns:
        ``{"median_ms", "min_ms", "per_frame_ms", "num_frames", "repeats"}``.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"Expected a positive integer `num_frames`. Received: num_frames={num_frames!r}")

    @tf.function(reduce_retracing=True)
    def forward(x):
        return encoder(x, training=False)

    inputs = random_frames(encoder, num_frames, seed)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        np.asarray(forward(inputs))
        if i >= warmup:
            times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    median = float(np.median(ms))
    return {
        "median_ms": median,
        "min_ms": float(ms.min()),
        "per_frame_ms": median / num_frames,
        "num_frames": int(num_frames),
        "repeats": int(repeats),
    }


# ------------------------------------------------------------------ end to end

#: Encoder runs on more frames than this are timed as frames x the per-frame time of a
#: measured call of this many frames (see `encoder_cost`).
MAX_DIRECT_FRAMES = 32


def encoder_cost(
    encoder: keras.Model,
    frame_counts: Sequence[int],
    max_direct_frames: int = MAX_DIRECT_FRAMES,
    warmup: int = 1,
    repeats: int = 3,
    seed: int = 0,
) -> dict:
    """FLOPs, parameters and latency of an encoder run on each of `frame_counts` frames.

    An encoder run on ``m <= max_direct_frames`` frames is timed directly (one call of
    ``m`` frames, median of `repeats`). A longer run (e.g. InceptionV3 on a 300-frame
    YouTube-8M video, tens of seconds on a 2-core CPU) is composed: it is timed once as
    a call of ``max_direct_frames`` frames and counted as ``m`` times that call's
    per-frame time, which is how a deployment would encode a long clip (in chunks).

    Returns:
        ``{"name", "params", "flops_per_frame", "flops": {m: FLOPs},
        "latency": {m: {"ms", "method": "measured" | "composed", ...}},
        "per_frame_ms", "max_direct_frames", "note"}``.
    """
    from kdzoo.encoders import NO_WEIGHTS_NOTE

    counts = sorted({int(m) for m in frame_counts})
    per_frame = encoder_flops(encoder)
    timings = {}
    for m in sorted({min(m, max_direct_frames) for m in counts}):
        timings[m] = encoder_latency(encoder, m, warmup=warmup, repeats=repeats, seed=seed)
    chunk = timings[max(timings)]
    latency = {}
    for m in counts:
        if m in timings:
            latency[m] = {"ms": timings[m]["median_ms"], "method": "measured", "frames_per_call": m,
                          "repeats": repeats}
        else:
            latency[m] = {"ms": m * chunk["per_frame_ms"], "method": "composed",
                          "frames_per_call": chunk["num_frames"], "repeats": repeats}
    return {
        "name": encoder.name,
        "params": encoder_params(encoder),
        "flops_per_frame": per_frame,
        "flops": {m: m * per_frame for m in counts},
        "latency": latency,
        "per_frame_ms": chunk["per_frame_ms"],
        "max_direct_frames": int(max_direct_frames),
        "note": NO_WEIGHTS_NOTE,
    }
