"""Mixture-of-experts classifier head (YouTube-8M starter code MoeModel)."""

from __future__ import annotations

import numbers

import keras
from keras import ops

from kdzoo.layers._utils import last_dim
from kdzoo.layers._utils import validate_positive_int


@keras.saving.register_keras_serializable(package="kdzoo")
class MixtureOfExperts(keras.layers.Layer):
    """Multi-label classifier: a per-class mixture of logistic experts.

    For every class `c`, a softmax over `num_mixtures + 1` gates weighs
    `num_mixtures` logistic experts plus a dummy expert that always predicts
    0: `p[c] = sum_{m < M} gate[c, m] * sigmoid(expert_logit[c, m])`.
    As in the starter code, the gate projection has no bias and the expert
    projection has one.

    Args:
        num_classes: Positive integer, number of output classes.
        num_mixtures: Positive integer, number of experts per class `M`.
        l2: Non-negative float, L2 penalty (`l2 * sum(w ** 2)`) on the gate
            and expert kernels.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(..., features)`, typically
            `(batch, features)` video embeddings.

    Input shape:
        N-D tensor `(..., features)`.

    Output shape:
        N-D tensor `(..., num_classes)` of probabilities in `[0, 1]`.
    """

    def __init__(
        self,
        num_classes: int,
        num_mixtures: int = 2,
        l2: float = 0.0,
        **kwargs,
    ):
        validate_positive_int("num_classes", num_classes)
        validate_positive_int("num_mixtures", num_mixtures)
        if (
            isinstance(l2, bool)
            or not isinstance(l2, numbers.Real)
            or not l2 >= 0.0
        ):
            raise ValueError(
                f"Expected `l2` to be a non-negative float. Received: l2={l2!r}"
            )
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_mixtures = num_mixtures
        self.l2 = float(l2)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        feature_dim = last_dim(input_shape)
        regularizer = keras.regularizers.L2(self.l2) if self.l2 > 0 else None
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(feature_dim, self.num_classes * (self.num_mixtures + 1)),
            initializer="glorot_uniform",
            regularizer=regularizer,
        )
        self.expert_kernel = self.add_weight(
            name="expert_kernel",
            shape=(feature_dim, self.num_classes * self.num_mixtures),
            initializer="glorot_uniform",
            regularizer=regularizer,
        )
        self.expert_bias = self.add_weight(
            name="expert_bias",
            shape=(self.num_classes * self.num_mixtures,),
            initializer="zeros",
        )

    def call(self, inputs):
        num_gates = self.num_mixtures + 1
        # Plain matmuls on the flat kernels, then split the last axis into
        # (classes, mixtures): an einsum with an ellipsis computes the same
        # values, but TensorFlow's gradient for it is hundreds of times slower.
        leading = tuple(ops.shape(inputs)[:-1])
        gate_logits = ops.reshape(
            ops.matmul(inputs, self.gate_kernel),
            leading + (self.num_classes, num_gates),
        )
        expert_logits = ops.reshape(
            ops.matmul(inputs, self.expert_kernel) + self.expert_bias,
            leading + (self.num_classes, self.num_mixtures),
        )
        # (..., classes, mixtures + 1); the last gate is the dummy expert.
        gates = ops.softmax(gate_logits, axis=-1)
        experts = ops.sigmoid(expert_logits)
        return ops.sum(gates[..., : self.num_mixtures] * experts, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_classes": self.num_classes,
            "num_mixtures": self.num_mixtures,
            "l2": self.l2,
        }
        return {**base_config, **config}
