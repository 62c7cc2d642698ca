"""NetVLAD frame aggregation (Arandjelovic et al., 2016)."""

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
class NetVLAD(keras.layers.Layer):
    """Aggregates frame features into one VLAD descriptor per video.

    Each frame is softly assigned to `num_clusters` learned cluster centres,
    `a = softmax(x @ W + b)`. The descriptor collects the assignment-weighted
    residuals `V[k] = sum_t a[t, k] * (x[t] - c[k])`, is L2-normalised per
    cluster (intra-normalisation), flattened and L2-normalised again, and is
    optionally projected to `output_size` by a linear layer with bias.
    Padded frames get zero assignment, so they do not change the output.

    Args:
        num_clusters: Positive integer, number of cluster centres `K`.
        output_size: Optional positive integer. If set, the `K * D`
            descriptor is linearly projected to this size.
        batch_norm_assignment: Boolean. If `True`, the assignment logits are
            batch-normalised (over the real frames) before the softmax; the
            assignment bias is then dropped, as batch norm has its own offset.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, frames, features)`.
        mask: Optional bool or float tensor of shape `(batch, frames)`,
            1 for real frames and 0 for padding. `None` means all real.
        training: Python boolean, only used by the assignment batch norm.
        return_descriptor: Python boolean. If `True`, the call returns
            `(output, descriptor)`, where `descriptor` is the normalised
            `(batch, num_clusters * features)` VLAD matrix before the
            projection (the intermediate representation a student can be
            taught to match).

    Input shape:
        3D tensor `(batch, frames, features)`; `frames` may be `None`.

    Output shape:
        2D tensor `(batch, output_size)`, or `(batch, num_clusters *
        features)` when `output_size` is `None`.
    """

    def __init__(
        self,
        num_clusters: int,
        output_size: int | None = None,
        batch_norm_assignment: bool = False,
        **kwargs,
    ):
        validate_positive_int("num_clusters", num_clusters)
        if output_size is not None:
            validate_positive_int("output_size", output_size)
        super().__init__(**kwargs)
        self.num_clusters = num_clusters
        self.output_size = output_size
        self.batch_norm_assignment = bool(batch_norm_assignment)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.supports_masking = True
        if self.batch_norm_assignment:
            self.assignment_norm = keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name="assignment_norm"
            )
        else:
            self.assignment_norm = None

    def build(self, input_shape):
        feature_dim = last_dim(input_shape)
        self.cluster_kernel = self.add_weight(
            name="cluster_kernel",
            shape=(feature_dim, self.num_clusters),
            initializer="glorot_uniform",
        )
        if self.assignment_norm is None:
            self.cluster_bias = self.add_weight(
                name="cluster_bias",
                shape=(self.num_clusters,),
                initializer="zeros",
            )
        else:
            self.cluster_bias = None
            self.assignment_norm.build(
                (input_shape[0], input_shape[1], self.num_clusters)
            )
        self.centers = self.add_weight(
            name="centers",
            shape=(self.num_clusters, feature_dim),
            initializer=keras.initializers.RandomNormal(
                stddev=1.0 / math.sqrt(feature_dim)
            ),
        )
        self.output_kernel, self.output_bias = add_vlad_projection(
            self, self.num_clusters * feature_dim, self.output_size
        )

    def call(self, inputs, mask=None, training=None, return_descriptor=False):
        weights = frame_mask(inputs, mask, inputs.dtype)  # (B, T)
        logits = ops.matmul(inputs, self.cluster_kernel)  # (B, T, K)
        if self.assignment_norm is None:
            logits = logits + self.cluster_bias
        else:
            logits = self.assignment_norm(
                logits, training=training, mask=weights > 0.5
            )
        assignment = ops.softmax(logits, axis=-1)
        assignment = assignment * ops.expand_dims(weights, -1)
        # V[k] = sum_t a[t, k] x[t] - (sum_t a[t, k]) c[k]  -> (B, K, D)
        vlad = ops.einsum("btk,btd->bkd", assignment, inputs)
        mass = ops.sum(assignment, axis=1)  # (B, K)
        vlad = vlad - ops.expand_dims(mass, -1) * self.centers
        return finish_vlad(vlad, self.output_kernel, self.output_bias, return_descriptor)

    def compute_output_spec(self, inputs, mask=None, training=None, return_descriptor=False):
        return vlad_output_spec(self, inputs, self.num_clusters * inputs.shape[-1], return_descriptor)

    def compute_mask(self, inputs, mask=None):
        # The frame axis is reduced away, so there is no mask to propagate.
        return None

    def compute_output_shape(self, input_shape):
        if self.output_size is not None:
            return (input_shape[0], self.output_size)
        return (input_shape[0], self.num_clusters * input_shape[-1])

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_clusters": self.num_clusters,
            "output_size": self.output_size,
            "batch_norm_assignment": self.batch_norm_assignment,
        }
        return {**base_config, **config}
