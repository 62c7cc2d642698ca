"""Masked mean / max pooling over the frame axis."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kdzoo.layers._utils import frame_mask
from kdzoo.layers._utils import validate_choice

MODES = ("mean", "max", "mean_max")


@keras.saving.register_keras_serializable(package="kdzoo")
class FramePooling(keras.layers.Layer):
    """Pools frame features into one vector per video, ignoring padding.

    Args:
        mode: `"mean"`, `"max"`, or `"mean_max"` (both, concatenated as
            `[mean, max]`).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, frames, features)`.
        mask: Optional bool or float tensor of shape `(batch, frames)`,
            1 for real frames and 0 for padding. `None` means all real.
            A video with no real frame pools to zeros.
        training: Unused; accepted for a uniform aggregator interface.

    Input shape:
        3D tensor `(batch, frames, features)`; `frames` may be `None`.

    Output shape:
        2D tensor `(batch, features)`, or `(batch, 2 * features)` for
        `mode="mean_max"`.
    """

    def __init__(self, mode: str = "mean", **kwargs):
        validate_choice("mode", mode, MODES)
        super().__init__(**kwargs)
        self.mode = mode
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.supports_masking = True

    def _mean(self, inputs, weights):
        total = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        count = ops.sum(weights, axis=1, keepdims=True)
        return total / ops.maximum(count, keras.backend.epsilon())

    def _max(self, inputs, weights):
        real = ops.expand_dims(weights > 0, -1)
        lowest = np.finfo(keras.backend.standardize_dtype(inputs.dtype)).min
        pooled = ops.max(ops.where(real, inputs, lowest), axis=1)
        return ops.where(ops.any(real, axis=1), pooled, 0.0)

    def call(self, inputs, mask=None, training=None):
        weights = frame_mask(inputs, mask, inputs.dtype)
        if self.mode == "mean":
            return self._mean(inputs, weights)
        if self.mode == "max":
            return self._max(inputs, weights)
        return ops.concatenate(
            [self._mean(inputs, weights), self._max(inputs, weights)], axis=-1
        )

    def compute_mask(self, inputs, mask=None):
        # The frame axis is reduced away, so there is no mask to propagate.
        return None

    def compute_output_shape(self, input_shape):
        features = input_shape[-1]
        if self.mode == "mean_max" and features is not None:
            features = 2 * features
        return (input_shape[0], features)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "mode": self.mode}
