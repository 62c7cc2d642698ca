"""Small helpers shared by the aggregator layers (not part of the public API)."""

from __future__ import annotations

import numbers

import keras
from keras import ops

# Floor on the squared norm in `l2_normalize`, so that an all-zero vector
# (e.g. the VLAD descriptor of a fully padded video) maps to zeros, not NaN.
L2_EPSILON = 1e-12


def validate_positive_int(name: str, value) -> None:
    """Raises `ValueError` unless `value` is an integer >= 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"Expected `{name}` to be a positive integer. "
            f"Received: {name}={value!r}"
        )


def validate_choice(name: str, value, choices: tuple[str, ...]) -> None:
    """Raises `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"Expected `{name}` to be one of {choices}. "
            f"Received: {name}={value!r}"
        )


def last_dim(input_shape) -> int:
    """The last (features) dimension of `input_shape`; raises `ValueError` if it is undefined."""
    dim = input_shape[-1]
    if dim is None:
        raise ValueError(
            "Expected the last (features) dimension of the inputs to be "
            f"defined. Received: input_shape={input_shape}"
        )
    return int(dim)


def frame_mask(inputs, mask, dtype):
    """Returns the frame mask as a `(batch, frames)` tensor of `dtype`.

    `mask=None` means that every frame is real.
    """
    if mask is None:
        return ops.ones(ops.shape(inputs)[:2], dtype=dtype)
    return ops.cast(mask, dtype)


def l2_normalize(x, axis: int = -1):
    """`x / sqrt(max(sum(x**2), eps))` along `axis`; zeros stay zeros.

    Computed in (at least) float32, as `eps` underflows in float16.
    """
    dtype = x.dtype
    x = ops.cast(x, keras.backend.result_type(dtype, "float32"))
    squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return ops.cast(x * ops.rsqrt(ops.maximum(squared_norm, L2_EPSILON)), dtype)


def add_vlad_projection(layer, descriptor_size: int, output_size: int | None):
    """Creates the optional linear projection of a flattened VLAD descriptor.

    Returns ``(kernel, bias)`` weights of `layer` (named ``output_kernel`` and
    ``output_bias``), or ``(None, None)`` when `output_size` is None.
    """
    if output_size is None:
        return None, None
    kernel = layer.add_weight(
        name="output_kernel", shape=(descriptor_size, output_size), initializer="glorot_uniform"
    )
    bias = layer.add_weight(name="output_bias", shape=(output_size,), initializer="zeros")
    return kernel, bias


def finish_vlad(residuals, kernel=None, bias=None, return_descriptor: bool = False):
    """Intra-normalises `(batch, clusters, dim)` residuals, flattens, L2-normalises and
    applies the optional projection. Returns `(batch, clusters * dim)` or `(batch, output_size)`;
    with `return_descriptor`, the pair `(output, descriptor)` where `descriptor` is the
    normalised `(batch, clusters * dim)` matrix before the projection.
    """
    num_clusters, dim = residuals.shape[1], residuals.shape[2]
    vlad = l2_normalize(residuals, axis=-1)
    vlad = ops.reshape(vlad, (-1, num_clusters * dim))
    descriptor = l2_normalize(vlad, axis=-1)
    output = descriptor
    if kernel is not None:
        output = ops.matmul(descriptor, kernel) + bias
    return (output, descriptor) if return_descriptor else output


def vlad_output_spec(layer, inputs, descriptor_size: int, return_descriptor: bool):
    """Symbolic output of a VLAD layer: the output, or `(output, descriptor)` (see `finish_vlad`)."""
    output = keras.KerasTensor(layer.compute_output_shape(inputs.shape), dtype=layer.compute_dtype)
    if not return_descriptor:
        return output
    return output, keras.KerasTensor((inputs.shape[0], descriptor_size), dtype=layer.compute_dtype)
