"""Recurrent frame aggregators: a stacked RNN and the hierarchical H-RNN."""

from __future__ import annotations

import keras
from keras import ops

from kdzoo.layers._utils import last_dim
from kdzoo.layers._utils import validate_choice
from kdzoo.layers._utils import validate_positive_int

CELLS = ("lstm", "gru")


def _make_rnn(cell: str, units: int, return_sequences: bool, dtype, name: str):
    # Defaults only (tanh / sigmoid, no recurrent dropout, GRU reset_after=True)
    # so the cuDNN kernels stay usable on GPU.
    rnn_class = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    return rnn_class(
        units, return_sequences=return_sequences, dtype=dtype, name=name
    )


def _bool_mask(inputs, mask):
    if mask is None:
        return ops.ones(ops.shape(inputs)[:2], dtype="bool")
    return ops.cast(mask, "bool")


def _run_masked(rnn, sequences, mask, training):
    """Runs `rnn` to its final state; zeros for sequences without real steps.

    The cuDNN kernels reject fully masked sequences (inside a `tf.function`
    the check fails at run time instead of falling back), so such sequences
    are run on one zero step and their result is replaced by zeros.
    """
    has_real = ops.any(mask, axis=1)  # (batch,)
    sequences = ops.where(ops.expand_dims(mask, -1), sequences, 0.0)
    first_step = ops.logical_or(mask[:, :1], ops.logical_not(has_real)[:, None])
    safe_mask = ops.concatenate([first_step, mask[:, 1:]], axis=1)
    x = sequences
    for layer in rnn if isinstance(rnn, (list, tuple)) else [rnn]:
        x = layer(x, mask=safe_mask, training=training)
    return ops.where(has_real[:, None], x, 0.0)


@keras.saving.register_keras_serializable(package="kdzoo")
class RecurrentAggregator(keras.layers.Layer):
    """Encodes a video as the final hidden state of a (stacked) RNN.

    Padded trailing frames are skipped through the RNN mask, so the output
    is the top layer's state after the last real frame (zeros for a video
    with no real frame). The mask must be right-padded (as cuDNN requires).

    Args:
        units: Positive integer, hidden size of every RNN layer.
        cell: `"lstm"` or `"gru"`.
        num_layers: Positive integer, number of stacked RNN layers.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, frames, features)`.
        mask: Optional bool or float tensor of shape `(batch, frames)`,
            1 for real frames and 0 for padding. `None` means all real.
        training: Python boolean, passed to the RNN layers.

    Input shape:
        3D tensor `(batch, frames, features)`; `frames` may be `None`.

    Output shape:
        2D tensor `(batch, units)`.
    """

    def __init__(
        self, units: int, cell: str = "lstm", num_layers: int = 1, **kwargs
    ):
        validate_positive_int("units", units)
        validate_choice("cell", cell, CELLS)
        validate_positive_int("num_layers", num_layers)
        super().__init__(**kwargs)
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.supports_masking = True
        self.rnn_layers = [
            _make_rnn(
                cell,
                units,
                return_sequences=i < num_layers - 1,
                dtype=self.dtype_policy,
                name=f"{cell}_{i}",
            )
            for i in range(num_layers)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for rnn in self.rnn_layers:
            rnn.build(shape)
            shape = (shape[0], shape[1], self.units)

    def call(self, inputs, mask=None, training=None):
        mask = _bool_mask(inputs, mask)
        return _run_masked(self.rnn_layers, inputs, mask, training)

    def compute_mask(self, inputs, mask=None):
        # The frame axis is reduced away, so there is no mask to propagate.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "units": self.units,
            "cell": self.cell,
            "num_layers": self.num_layers,
        }
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package="kdzoo")
class HierarchicalRNN(keras.layers.Layer):
    """Hierarchical RNN (H-RNN) video encoder.

    The frames are cut into consecutive blocks of `block_size` frames (the
    last block is zero-padded). A lower RNN encodes each block into its final
    state; an upper RNN runs over the block encodings, and its final state is
    the video embedding. Blocks without a real frame are masked out of the
    upper RNN, so padding never changes the output. With `block_mean`, the
    output also carries the mean of the real blocks' encodings,
    `[upper state, mean_b lower_state[b]]`.

    Args:
        units: Positive integer, hidden size of the lower (per-block) RNN.
        block_size: Positive integer, number of frames per block.
        cell: `"lstm"` or `"gru"`, used for both levels.
        upper_units: Optional positive integer, hidden size of the upper RNN;
            defaults to `units`.
        block_mean: Boolean. If `True`, concatenate the mean of the block
            encodings to the upper RNN's final state.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, frames, features)`.
        mask: Optional bool or float tensor of shape `(batch, frames)`,
            1 for real frames and 0 for trailing padding. `None` means all
            real.
        training: Python boolean, passed to the RNN layers.
        return_descriptor: Python boolean. If `True`, the call returns
            `(output, descriptor)`, where `descriptor` is the `(batch, units)`
            mean of the real blocks' encodings (the lower RNN's final states):
            the intermediate representation a student can be taught to match,
            whatever its own number of blocks.

    Input shape:
        3D tensor `(batch, frames, features)`; `frames` may be `None`.

    Output shape:
        2D tensor `(batch, upper_units or units)`, plus `units` columns with
        `block_mean`.
    """

    def __init__(
        self,
        units: int,
        block_size: int,
        cell: str = "lstm",
        upper_units: int | None = None,
        block_mean: bool = False,
        **kwargs,
    ):
        validate_positive_int("units", units)
        validate_positive_int("block_size", block_size)
        validate_choice("cell", cell, CELLS)
        if upper_units is not None:
            validate_positive_int("upper_units", upper_units)
        super().__init__(**kwargs)
        self.units = units
        self.block_size = block_size
        self.cell = cell
        self.upper_units = upper_units
        self.block_mean = bool(block_mean)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.supports_masking = True
        self.lower_rnn = _make_rnn(
            cell, units, False, dtype=self.dtype_policy, name=f"lower_{cell}"
        )
        self.upper_rnn = _make_rnn(
            cell,
            self._output_units,
            False,
            dtype=self.dtype_policy,
            name=f"upper_{cell}",
        )

    @property
    def _output_units(self) -> int:
        return self.units if self.upper_units is None else self.upper_units

    def build(self, input_shape):
        feature_dim = last_dim(input_shape)
        self.lower_rnn.build((None, self.block_size, feature_dim))
        self.upper_rnn.build((input_shape[0], None, self.units))

    def call(self, inputs, mask=None, training=None, return_descriptor=False):
        feature_dim = inputs.shape[-1]
        mask = _bool_mask(inputs, mask)
        shape = ops.shape(inputs)
        batch_size, num_frames = shape[0], shape[1]
        # Pad (frames and mask) at the end to a whole number of blocks.
        pad = (-num_frames) % self.block_size
        inputs = ops.pad(inputs, [[0, 0], [0, pad], [0, 0]])
        mask = ops.pad(mask, [[0, 0], [0, pad]], constant_values=False)
        # Lower level: every block is an independent short sequence.
        blocks = ops.reshape(inputs, (-1, self.block_size, feature_dim))
        block_frame_mask = ops.reshape(mask, (-1, self.block_size))
        block_states = _run_masked(
            self.lower_rnn, blocks, block_frame_mask, training
        )  # (B * num_blocks, units); zeros for a fully padded block.
        block_states = ops.reshape(block_states, (batch_size, -1, self.units))
        block_mask = ops.any(
            ops.reshape(mask, (batch_size, -1, self.block_size)), axis=-1
        )
        # Upper level: runs over the blocks that hold a real frame.
        top = _run_masked(self.upper_rnn, block_states, block_mask, training)
        if not (self.block_mean or return_descriptor):
            return top
        weights = ops.cast(block_mask, block_states.dtype)  # (B, num_blocks)
        total = ops.sum(block_states * ops.expand_dims(weights, -1), axis=1)
        count = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
        mean_block = total / count  # (B, units)
        output = ops.concatenate([top, mean_block], axis=-1) if self.block_mean else top
        return (output, mean_block) if return_descriptor else output

    def compute_output_spec(self, inputs, mask=None, training=None, return_descriptor=False):
        output = keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)
        if not return_descriptor:
            return output
        return output, keras.KerasTensor((inputs.shape[0], self.units), dtype=self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        # The frame axis is reduced away, so there is no mask to propagate.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._output_units + (self.units if self.block_mean else 0))

    def get_config(self):
        base_config = super().get_config()
        config = {
            "units": self.units,
            "block_size": self.block_size,
            "cell": self.cell,
            "upper_units": self.upper_units,
            "block_mean": self.block_mean,
        }
        return {**base_config, **config}
