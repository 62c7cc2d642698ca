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
