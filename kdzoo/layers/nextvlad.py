"""NeXtVLAD frame aggregation (Lin et al., 2018)."""

from __future__ import annotations

import math

import keras
from keras import ops

from kdzoo.layers._utils import add_vlad_projection
from kdzoo.layers._utils import finish_vlad
from kdzoo.layers._utils import frame_mask
from kdzoo.layers._utils import last_dim
from kdzoo.layers._utils import validate_positive_int
from kdzoo.layers._utils import vlad_output_spec


@keras.saving.register_keras_serializable(package="kdzoo")
class NeXtVLAD(keras.layers.Layer):
    """NetVLAD over grouped, expanded frame features, with fewer parameters.

    Frames are expanded to `expansion * D` features, `x_dot = x @ W_e + b_e`,
    and split into `groups` groups of `expansion * D / groups` features.
    Each group gets an attention weight `alpha = sigmoid(x_dot @ W_g + b_g)`
    and a soft assignment `softmax_K(x_dot @ W_c)` to `num_clusters` centres
    of size `expansion * D / groups`. The descriptor
    `V[k] = sum_{t,g} alpha[t,g] a[t,g,k] (x_dot[t,g] - c[k])` is
    intra-normalised, flattened, L2-normalised and optionally projected to
    `output_size`. Padded frames get zero assignment.

    Args:
        num_clusters: Positive integer, number of cluster centres `K`.
        expansion: Positive integer, feature expansion factor.
        groups: Positive integer, number of groups; `expansion * D` must be
            divisible by it.
        output_size: Optional positive integer. If set, the descriptor is
            linearly projected to this size.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, frames, features)`.
        mask: Optional bool or float tensor of shape `(batch, frames)`,
            1 for real frames and 0 for padding. `None` means all real.
        training: Unused; accepted for a uniform aggregator interface.
        return_descriptor: Python boolean. If `True`, the call returns
            `(output, descriptor)`, where `descriptor` is the normalised
            `(batch, num_clusters * expansion * features / groups)` VLAD
            matrix before the projection (the intermediate representation a
            student can be taught to match).

    Input shape:
        3D tensor `(batch, frames, features)`; `frames` may be `None`.

    Output shape:
        2D tensor `(batch, output_size)`, or `(batch, num_clusters *
        expansion * features / groups)` when `output_size` is `None`.
    """

    def __init__(
        self,
        num_clusters: int,
        expansion: int = 2,
        groups: int = 8,
        output_size: int | None = None,
        **kwargs,
    ):
        validate_positive_int("num_clusters", num_clusters)
        validate_positive_int("expansion", expansion)
        validate_positive_int("groups", groups)
        if output_size is not None:
            validate_positive_int("output_size", output_size)
        super().__init__(**kwargs)
        self.num_clusters = num_clusters
        self.expansion = expansion
        self.groups = groups
        self.output_size = output_size
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.supports_masking = True

    def _group_size(self, feature_dim: int) -> int:
        return self.expansion * feature_dim // self.groups

    def build(self, input_shape):
        feature_dim = last_dim(input_shape)
        expanded_dim = self.expansion * feature_dim
        if expanded_dim % self.groups != 0:
            raise ValueError(
                "Expected `expansion * features` to be divisible by `groups`. "
                f"Received: expansion={self.expansion}, "
                f"features={feature_dim}, groups={self.groups}"
            )
        group_size = self._group_size(feature_dim)
        self.expansion_kernel = self.add_weight(
            name="expansion_kernel",
            shape=(feature_dim, expanded_dim),
            initializer="glorot_uniform",
        )
        self.expansion_bias = self.add_weight(
            name="expansion_bias", shape=(expanded_dim,), initializer="zeros"
        )
        self.attention_kernel = self.add_weight(
            name="attention_kernel",
            shape=(expanded_dim, self.groups),
            initializer="glorot_uniform",
        )
        self.attention_bias = self.add_weight(
            name="attention_bias", shape=(self.groups,), initializer="zeros"
        )
        self.cluster_kernel = self.add_weight(
            name="cluster_kernel",
            shape=(expanded_dim, self.groups * self.num_clusters),
            initializer="glorot_uniform",
        )
        self.centers = self.add_weight(
            name="centers",
            shape=(self.num_clusters, group_size),
            initializer=keras.initializers.RandomNormal(
                stddev=1.0 / math.sqrt(group_size)
            ),
        )
        self.output_kernel, self.output_bias = add_vlad_projection(
            self, self.num_clusters * group_size, self.output_size
        )

    def call(self, inputs, mask=None, training=None, return_descriptor=False):
        group_size = self._group_size(inputs.shape[-1])
        weights = frame_mask(inputs, mask, inputs.dtype)  # (B, T)
        x_dot = ops.matmul(inputs, self.expansion_kernel) + self.expansion_bias
        attention = ops.sigmoid(
            ops.matmul(x_dot, self.attention_kernel) + self.attention_bias
        )  # (B, T, G)
        attention = attention * ops.expand_dims(weights, -1)
        logits = ops.matmul(x_dot, self.cluster_kernel)  # (B, T, G*K)
        logits = ops.reshape(logits, (-1, self.groups, self.num_clusters))
        assignment = ops.softmax(logits, axis=-1)  # (B*T*G, K)
        assignment = assignment * ops.reshape(attention, (-1, self.groups, 1))
        batch_size = ops.shape(inputs)[0]
        # Treat every (frame, group) pair as one local descriptor.
        assignment = ops.reshape(assignment, (batch_size, -1, self.num_clusters))
        local = ops.reshape(x_dot, (batch_size, -1, group_size))
        vlad = ops.einsum("bnk,bnd->bkd", assignment, local)
        mass = ops.sum(assignment, axis=1)  # (B, K)
        vlad = vlad - ops.expand_dims(mass, -1) * self.centers
        return finish_vlad(vlad, self.output_kernel, self.output_bias, return_descriptor)

    def compute_output_spec(self, inputs, mask=None, training=None, return_descriptor=False):
        descriptor_size = self.num_clusters * self._group_size(inputs.shape[-1])
        return vlad_output_spec(self, inputs, descriptor_size, return_descriptor)

    def compute_mask(self, inputs, mask=None):
        # The frame axis is reduced away, so there is no mask to propagate.
        return None

    def compute_output_shape(self, input_shape):
        if self.output_size is not None:
            return (input_shape[0], self.output_size)
        return (
            input_shape[0],
            self.num_clusters * self._group_size(input_shape[-1]),
        )

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_clusters": self.num_clusters,
            "expansion": self.expansion,
            "groups": self.groups,
            "output_size": self.output_size,
        }
        return {**base_config, **config}
