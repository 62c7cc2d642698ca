"""Cross-check of the analytic FLOP counts: FLOPs as TensorFlow's graph profiler counts them.

The profiler recipe and the ``Einsum`` statistic use private TensorFlow APIs, which live
behind `kdzoo._tf_internals`.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from kdzoo import _tf_internals
from kdzoo.profiling.flops import _resolve_num_frames


def tf_profiler_flops(
    model: keras.Model, num_frames: int | None = None, count_einsum: bool = False
) -> int:
    """FLOPs of one video (batch 1) as TensorFlow's graph profiler counts them.

    Recipe (TF 2.21): trace ``model(inputs, training=False)`` as a concrete
    `tf.function` at batch 1, freeze the variables into constants
    (``convert_variables_to_constants_v2``, which also lowers the functional
    ``While`` of an RNN into v1 control flow the profiler can see), and run
    ``tf.compat.v1.profiler.profile(graph, cmd="scope",
    options=ProfileOptionBuilder.float_operation())``; the result is
    ``total_float_ops``. (With ``cmd="op"`` the per-type children are lumped under
    ``MatMul``; use the total.)

    Blind spots, found on kdzoo models:

    * ``Einsum`` has no registered FLOP statistic, so it counts 0: the NetVLAD /
      NeXtVLAD residual aggregation ``btk,btd->bkd`` (the biggest per-frame term) is
      missing. ``count_einsum=True``
      registers a statistic for it (2 * product of all index sizes) for the
      duration of the call.
    * Activations (``Sigmoid``, ``Tanh``, ``Relu``) count 0; ``Softmax`` counts
      5 per element.
    * ``SelectV2``, ``Any``, ``Max`` (reduce), logical ops count 0; ``Sum`` counts
      ``inputs - outputs``.
    * RNN loops: the body of the ``while`` loop is counted once, not once per time
      step, so LSTM / GRU / H-RNN models are undercounted by roughly the number of
      steps (and a cuDNN-backed RNN on GPU would count 0).
    * Only static shapes are counted; ops with an unknown dimension are skipped.

    It agrees with `flops` within a few percent on models whose work is
    ``MatMul`` / elementwise (pooling, Dense, context gating, MoE; NetVLAD with
    ``count_einsum=True``); not on recurrent models.
    """
    num_frames = _resolve_num_frames(model, num_frames)
    feature_dim = int(model.get_layer("frames").output.shape[-1])

    @tf.function
    def forward(frames_in, mask_in):
        return model({"frames": frames_in, "mask": mask_in}, training=False)

    concrete = forward.get_concrete_function(
        tf.TensorSpec((1, num_frames, feature_dim), tf.float32),
        tf.TensorSpec((1, num_frames), tf.float32),
    )
    with _tf_internals.count_einsum_flops() if count_einsum else contextlib.nullcontext():
        return _tf_internals.profile_float_ops(concrete)
