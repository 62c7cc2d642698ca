"""Analytic FLOPs and parameter counts of kdzoo models, plus a TF-profiler cross-check.

Counting conventions (one video, batch 1):

* a multiply-add is 2 FLOPs: ``(m, k) @ (k, n)`` costs ``2*m*k*n``; an einsum that
  contracts over ``r`` terms costs ``2*r`` per output element;
* elementwise arithmetic (add, sub, mul, div, maximum, square, rsqrt, relu) and
  comparisons / selects / logical ops cost 1 FLOP per element;
* a reduction (sum, max, any) over ``n`` input elements costs ``n`` (the first term is
  counted as an add into zero, which keeps the frame-dependent work exactly linear in
  the frame count);
* ``sigmoid`` and ``tanh`` cost `SIGMOID_FLOPS` / `TANH_FLOPS` (= 4) per element,
  ``softmax`` `SOFTMAX_FLOPS` (= 5, as TensorFlow's profiler counts it) per element;
* an inference-mode batch norm costs 2 per element plus 5 per channel
  (``rsqrt(var + eps) * gamma`` and ``beta - mean * scale``);
* reshapes, casts, slices, concatenation, padding, dropout (inference) cost 0.

Every kdzoo layer's cost below follows its ``call()`` line by line. The total is split
into ``frame_dependent`` work (terms proportional to the number of frames, or of
blocks for H-RNN) and ``head`` work (done once per video: the aggregator's
normalisation and output projection, hidden layer, context gating, MoE).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras

from kdzoo import layers as kd_layers

SIGMOID_FLOPS = 4
TANH_FLOPS = 4
SOFTMAX_FLOPS = 5
RELU_FLOPS = 1

_ACTIVATION_FLOPS = {
    "linear": 0,
    "relu": RELU_FLOPS,
    "sigmoid": SIGMOID_FLOPS,
    "tanh": TANH_FLOPS,
    "softmax": SOFTMAX_FLOPS,
}

# Layers that do no arithmetic at inference time.
_FREE_LAYERS = (
    keras.layers.InputLayer,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.GaussianNoise,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Permute,
    keras.layers.Concatenate,
    keras.layers.Identity,
)


# --------------------------------------------------------------------------- helpers


def _cost(frame_dependent: int = 0, head: int = 0) -> dict[str, int]:
    return {"frame_dependent": int(frame_dependent), "head": int(head)}


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {key: int(a[key]) + int(b[key]) for key in ("frame_dependent", "head")}


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of ``(m, k) @ (k, n)``: ``2*m*k*n``."""
    return 2 * m * k * n


def l2_normalize_flops(rows: int, width: int) -> int:
    """`kdzoo.layers._utils.l2_normalize` of a ``(rows, width)`` tensor.

    square (w) + sum (w) + maximum (1) + rsqrt (1) + multiply (w) per row.
    """
    return rows * (3 * width + 2)


def batch_norm_flops(elements: int, channels: int) -> int:
    """Inference-mode batch norm (``tf.nn.batch_normalization``)."""
    return 2 * elements + 5 * channels


def activation_flops(activation, elements: int) -> int:
    """Per-element cost of a Keras activation (function or name)."""
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    if name not in _ACTIVATION_FLOPS:
        raise NotImplementedError(f"No FLOP count for activation {activation!r}.")
    return _ACTIVATION_FLOPS[name] * elements


def _activation_name(activation) -> str:
    return activation if isinstance(activation, str) else getattr(activation, "__name__", "?")


def rnn_step_flops(cell: keras.layers.Layer, input_dim: int) -> int:
    """FLOPs of one time step of a Keras LSTM / GRU cell (implementation 2), batch 1,
    including the masking selects of ``keras.ops.rnn`` (output and each state)."""
    units = int(cell.units)
    act = activation_flops(cell.activation, units)
    rec_act = activation_flops(cell.recurrent_activation, units)
    if isinstance(cell, keras.layers.LSTMCell):
        flops = matmul_flops(1, input_dim, 4 * units) + matmul_flops(1, units, 4 * units)
        flops += 4 * units  # x @ W + h @ U
        if cell.use_bias:
            flops += 4 * units
        flops += 3 * rec_act + 2 * act  # i, f, o gates; tanh(z_c), tanh(c)
        flops += 4 * units  # f*c + i*g (3), o*tanh(c) (1)
        flops += 3 * units  # masked selects: output, h, c
        return flops
    if isinstance(cell, keras.layers.GRUCell):
        flops = matmul_flops(1, input_dim, 3 * units) + matmul_flops(1, units, 3 * units)
        if cell.use_bias:
            flops += 3 * units  # input bias
            if cell.reset_after:
                flops += 3 * units  # recurrent bias
        flops += 2 * units + 2 * rec_act  # z, r
        flops += 2 * units + act  # r * h_rec, x_h + ., tanh
        flops += 4 * units  # z*h + (1-z)*hh
        flops += 2 * units  # masked selects: output, h
        return flops
    raise NotImplementedError(f"No FLOP count for RNN cell {type(cell).__name__}.")


def _rnn_flops(rnn: keras.layers.Layer, steps: int, input_dim: int) -> int:
    return steps * rnn_step_flops(rnn.cell, input_dim)


def _run_masked_flops(rnns, sequences: int, steps: int, input_dim: int) -> dict[str, int]:
    """`kdzoo.layers.recurrent._run_masked` over `sequences` sequences of `steps` steps."""
    frame_dependent = sequences * steps  # any(mask)
    frame_dependent += sequences * steps * input_dim  # where(mask, x, 0)
    head = 2 * sequences  # logical_not / logical_or on the first step
    dim = input_dim
    for rnn in rnns:
        frame_dependent += sequences * _rnn_flops(rnn, steps, dim)
        dim = int(rnn.cell.units)
    head += sequences * dim  # where(has_real, x, 0)
    return _cost(frame_dependent, head)


# ------------------------------------------------------------------ per-layer costs


def _netvlad(layer: kd_layers.NetVLAD, num_frames: int) -> dict[str, int]:
    d = int(layer.cluster_kernel.shape[0])
    k = layer.num_clusters
    t = num_frames
    fd = matmul_flops(t, d, k)  # logits
    if layer.assignment_norm is None:
        fd += t * k  # + bias
        head = 0
    else:
        fd += 2 * t * k
        head = 5 * k
    fd += SOFTMAX_FLOPS * t * k  # softmax
    fd += t * k  # * mask
    fd += 2 * t * k * d  # einsum btk,btd->bkd
    fd += t * k  # mass = sum_t a
    head += 2 * k * d  # vlad - mass * centers
    head += l2_normalize_flops(k, d) + l2_normalize_flops(1, k * d)
    if layer.output_kernel is not None:
        head += matmul_flops(1, k * d, layer.output_size) + layer.output_size
    return _cost(fd, head)


def _nextvlad(layer: kd_layers.NeXtVLAD, num_frames: int) -> dict[str, int]:
    d = int(layer.expansion_kernel.shape[0])
    e = layer.expansion * d
    g, k = layer.groups, layer.num_clusters
    gs = e // g
    t = num_frames
    fd = matmul_flops(t, d, e) + t * e  # expansion + bias
    fd += matmul_flops(t, e, g) + t * g + SIGMOID_FLOPS * t * g  # attention
    fd += t * g  # * mask
    fd += matmul_flops(t, e, g * k)  # cluster logits
    fd += SOFTMAX_FLOPS * t * g * k
    fd += t * g * k  # * attention
    fd += 2 * t * g * k * gs  # einsum bnk,bnd->bkd over n = t*g
    fd += t * g * k  # mass
    head = 2 * k * gs  # - mass * centers
    head += l2_normalize_flops(k, gs) + l2_normalize_flops(1, k * gs)
    if layer.output_kernel is not None:
        head += matmul_flops(1, k * gs, layer.output_size) + layer.output_size
    return _cost(fd, head)


def _recurrent_aggregator(layer: kd_layers.RecurrentAggregator, num_frames: int, feature_dim: int):
    return _run_masked_flops(layer.rnn_layers, 1, num_frames, feature_dim)


def _hierarchical_rnn(layer: kd_layers.HierarchicalRNN, num_frames: int, feature_dim: int):
    blocks = math.ceil(num_frames / layer.block_size)
    padded = blocks * layer.block_size
    lower = _run_masked_flops([layer.lower_rnn], blocks, layer.block_size, feature_dim)
    # The lower level's once-per-sequence work is once per block: frame dependent.
    lower = _cost(lower["frame_dependent"] + lower["head"], 0)
    block_mask = _cost(padded, 0)  # any over each block
    upper = _run_masked_flops([layer.upper_rnn], 1, blocks, layer.units)
    total = _add(_add(lower, block_mask), upper)
    if layer.block_mean:  # x*w, sum over blocks; sum of w; maximum; divide
        total = _add(total, _cost(2 * blocks * layer.units + blocks, 1 + layer.units))
    return total


def _frame_pooling(layer: kd_layers.FramePooling, num_frames: int, feature_dim: int):
    t, d = num_frames, feature_dim
    mean = _cost(2 * t * d + t, 1 + d)  # x*w, sum_t; sum_t w; maximum; divide
    maximum = _cost(2 * t * d + 2 * t, d)  # w > 0, where, max_t, any_t; where
    if layer.mode == "mean":
        return mean
    if layer.mode == "max":
        return maximum
    return _add(mean, maximum)


def _context_gating(layer: kd_layers.ContextGating, rows: int) -> dict[str, int]:
    f = int(layer.kernel.shape[0])
    flops = matmul_flops(rows, f, f)
    flops += batch_norm_flops(rows * f, f) if layer.gate_norm is not None else rows * f
    flops += SIGMOID_FLOPS * rows * f + rows * f  # sigmoid, x * gate
    return flops


def _mixture_of_experts(layer: kd_layers.MixtureOfExperts, rows: int) -> int:
    f = int(layer.gate_kernel.shape[0])
    c, m = layer.num_classes, layer.num_mixtures
    flops = matmul_flops(rows, f, c * (m + 1))  # gate einsum
    flops += SOFTMAX_FLOPS * rows * c * (m + 1)
    flops += matmul_flops(rows, f, c * m) + rows * c * m  # expert einsum + bias
    flops += SIGMOID_FLOPS * rows * c * m
    flops += rows * c * m  # gates * experts
    flops += rows * c * m  # sum over mixtures
    return flops


def _dense(layer: keras.layers.Dense, rows: int) -> int:
    in_dim, units = (int(s) for s in layer.kernel.shape)
    flops = matmul_flops(rows, in_dim, units)
    if layer.use_bias:
        flops += rows * units
    return flops + activation_flops(layer.activation, rows * units)


# ---------------------------------------------------------------------- the walker


def _shape_of(tensor, num_frames: int) -> tuple[int, ...]:
    """Shape without the batch axis. In a per-frame tensor ``(batch, frames, features)``
    the frame axis is `num_frames` (whatever the static shape says); other `None` axes
    are also taken as `num_frames`."""
    shape = [num_frames if s is None else int(s) for s in tuple(tensor.shape)[1:]]
    if len(shape) == 2:
        shape[0] = num_frames
    return tuple(shape)


def _first_input(layer: keras.layers.Layer):
    node = layer._inbound_nodes[0]
    return node.arguments.args[0] if node.arguments.args else node.input_tensors[0]


def _input_frames_and_features(layer, num_frames: int) -> tuple[int, int]:
    shape = _shape_of(_first_input(layer), num_frames)
    if len(shape) != 2:
        raise ValueError(f"Expected (frames, features) input for layer {layer.name!r}, got {shape}.")
    return shape


def _rows(layer, num_frames: int) -> int:
    """Number of feature vectors a per-vector layer processes (1 for video-level input)."""
    return math.prod(_shape_of(_first_input(layer), num_frames)[:-1])


def _layer_cost(layer: keras.layers.Layer, num_frames: int) -> dict[str, int]:
    """{"frame_dependent", "head"} FLOPs of one top-level layer of a functional model."""
    if isinstance(layer, keras.Model):
        return flops_split(layer, num_frames)
    if isinstance(layer, _FREE_LAYERS):
        return _cost()
    if isinstance(layer, kd_layers.NetVLAD):
        return _netvlad(layer, num_frames)
    if isinstance(layer, kd_layers.NeXtVLAD):
        return _nextvlad(layer, num_frames)
    if isinstance(layer, kd_layers.HierarchicalRNN):
        t, d = _input_frames_and_features(layer, num_frames)
        return _hierarchical_rnn(layer, t, d)
    if isinstance(layer, kd_layers.RecurrentAggregator):
        t, d = _input_frames_and_features(layer, num_frames)
        return _recurrent_aggregator(layer, t, d)
    if isinstance(layer, kd_layers.FramePooling):
        t, d = _input_frames_and_features(layer, num_frames)
        return _frame_pooling(layer, t, d)
    if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
        t, d = _input_frames_and_features(layer, num_frames)
        return _cost(_rnn_flops(layer, t, d), 0)
    # Per-vector layers: their work scales with frames only if applied per frame.
    if isinstance(layer, kd_layers.ContextGating):
        rows = _rows(layer, num_frames)
        flops = _context_gating(layer, rows)
    elif isinstance(layer, kd_layers.MixtureOfExperts):
        rows = _rows(layer, num_frames)
        flops = _mixture_of_experts(layer, rows)
    elif isinstance(layer, keras.layers.Dense):
        rows = _rows(layer, num_frames)
        flops = _dense(layer, rows)
    elif isinstance(layer, keras.layers.Activation):
        rows = _rows(layer, num_frames)
        width = _shape_of(_first_input(layer), num_frames)[-1]
        flops = activation_flops(_activation_name(layer.activation), rows * width)
    elif isinstance(layer, keras.layers.BatchNormalization):
        shape = _shape_of(_first_input(layer), num_frames)
        rows = math.prod(shape[:-1])
        flops = batch_norm_flops(math.prod(shape), shape[-1])
    else:
        raise NotImplementedError(
            f"No FLOP count for layer {layer.name!r} of type {type(layer).__name__}."
        )
    per_frame = len(_shape_of(_first_input(layer), num_frames)) > 1
    return _cost(flops, 0) if per_frame else _cost(0, flops)


def _resolve_num_frames(model: keras.Model, num_frames: int | None) -> int:
    if num_frames is None:
        try:
            num_frames = model.get_layer("frames").output.shape[1]
        except ValueError:
            num_frames = None
        if num_frames is None:
            raise ValueError(
                f"Model {model.name!r} accepts any number of frames; pass `num_frames`."
            )
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"Expected a positive integer `num_frames`. Received: num_frames={num_frames!r}")
    return num_frames


def flops_breakdown_split(model: keras.Model, num_frames: int | None = None) -> dict[str, dict[str, int]]:
    """Per-layer ``{"frame_dependent", "head"}`` FLOPs (one video)."""
    num_frames = _resolve_num_frames(model, num_frames)
    return {layer.name: _layer_cost(layer, num_frames) for layer in model.layers}


def flops_breakdown(model: keras.Model, num_frames: int | None = None) -> dict[str, int]:
    """FLOPs per top-level layer name for one video of `num_frames` frames."""
    return {
        name: cost["frame_dependent"] + cost["head"]
        for name, cost in flops_breakdown_split(model, num_frames).items()
    }


def flops_split(model: keras.Model, num_frames: int | None = None) -> dict[str, int]:
    """``{"frame_dependent": ..., "head": ...}``: work that scales with the frame count
    (per-frame / per-block aggregator work) vs the once-per-video head (aggregator
    normalisation and projection, hidden layer, context gating, MoE)."""
    total = _cost()
    for cost in flops_breakdown_split(model, num_frames).values():
        total = _add(total, cost)
    return total


def flops(model: keras.Model, num_frames: int | None = None) -> int:
    """Analytic FLOPs of one forward pass of a kdzoo model on one video (batch 1).

    Args:
        model: a model from `kdzoo.models.build_model` (or any functional model made of
            the layer types handled here; unknown types raise `NotImplementedError`).
        num_frames: frames per video; defaults to the model's static input frame count.
    """
    split = flops_split(model, num_frames)
    return split["frame_dependent"] + split["head"]


def params(model: keras.Model) -> int:
    """Number of parameters (trainable and not) of a built model."""
    return int(model.count_params())
