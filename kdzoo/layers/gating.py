"""Context gating (Miech et al., 2017)."""

from __future__ import annotations

import keras
from keras import ops

from kdzoo.layers._utils import last_dim


@keras.saving.register_keras_serializable(package="kdzoo")
class ContextGating(keras.layers.Layer):
    """Re-weights features by a learned gate: `y = x * sigmoid(x @ W + b)`.

    Args:
        batch_norm: Boolean. If `True`, the gate logits are
            batch-normalised before the sigmoid (and the bias `b` is dropped,
            as batch norm has its own offset).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(..., features)`, typically
            `(batch, features)` video embeddings.
        mask: Optional bool or float tensor of shape `inputs.shape[:-1]`
            (e.g. `(batch, frames)` for frame features). Masked positions are
            left out of the batch-norm statistics; the mask is passed on.
        training: Python boolean, only used by the batch norm.

    Input shape:
        N-D tensor `(..., features)`.

    Output shape:
        Same as the input.
    """

    def __init__(self, batch_norm: bool = False, **kwargs):
        if not isinstance(batch_norm, bool):
            raise ValueError(
                "Expected `batch_norm` to be a boolean. "
                f"Received: batch_norm={batch_norm!r}"
            )
        super().__init__(**kwargs)
        self.batch_norm = batch_norm
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True
        if batch_norm:
            self.gate_norm = keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name="gate_norm"
            )
        else:
            self.gate_norm = None

    def build(self, input_shape):
        feature_dim = last_dim(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(feature_dim, feature_dim),
            initializer="glorot_uniform",
        )
        if self.gate_norm is None:
            self.bias = self.add_weight(
                name="bias", shape=(feature_dim,), initializer="zeros"
            )
        else:
            self.bias = None
            self.gate_norm.build(input_shape)

    def call(self, inputs, mask=None, training=None):
        logits = ops.matmul(inputs, self.kernel)
        if self.gate_norm is None:
            logits = logits + self.bias
        else:
            if mask is not None:
                mask = ops.cast(mask, "bool")
            logits = self.gate_norm(logits, training=training, mask=mask)
        return inputs * ops.sigmoid(logits)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "batch_norm": self.batch_norm}
