"""uint8 <-> float conversion of the YT8M / AudioSet frame features.

YouTube-8M frame features and the AudioSet VGGish embeddings are stored as one
uint8 per dimension, quantised linearly from [-2, 2]
(``MIN_QUANTIZED_VALUE=-2``, ``MAX_QUANTIZED_VALUE=2``).

Variants of ``dequantize``:

``"yt8m"``
    ``q * 4/255 - 2``: the exact inverse of the quantiser, so 0 -> -2.0 and
    255 -> 2.0.  This is the default.
``"starter"``
    ``q * 4/255 - 2 + 4/512``: what the YouTube-8M starter code
    (``utils.Dequantize``) computes; it adds half a bin (bias
    ``range/512 + min``), giving bin centres.
``None``
    no dequantisation, just a cast to float32.

Both functions accept numpy arrays (returning numpy) or TF tensors
(returning tensors).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MAX_QUANTIZED_VALUE = 2.0
MIN_QUANTIZED_VALUE = -2.0
VARIANTS = ("yt8m", "starter")


def _scale_bias(variant):
    rng = MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE
    scale = rng / 255.0
    if variant == "yt8m":
        return scale, MIN_QUANTIZED_VALUE
    if variant == "starter":
        return scale, rng / 512.0 + MIN_QUANTIZED_VALUE
    raise ValueError(f"Unknown dequantize variant {variant!r}. Expected one of {', '.join(VARIANTS)} or None.")


def dequantize(q, variant: str | None = "yt8m"):
    """uint8 codes -> float32 features (see module doc for the variants)."""
    is_tf = tf.is_tensor(q)
    if variant is None:
        return tf.cast(q, tf.float32) if is_tf else np.asarray(q, np.float32)
    scale, bias = _scale_bias(variant)
    if is_tf:
        return tf.cast(q, tf.float32) * scale + bias
    return (np.asarray(q, np.float32) * np.float32(scale) + np.float32(bias)).astype(np.float32)


def quantize(x, variant: str | None = "yt8m"):
    """Inverse of ``dequantize``: float features -> uint8 codes (rounded, clipped)."""
    is_tf = tf.is_tensor(x)
    if variant is None:
        scale, bias = 1.0, 0.0
    else:
        scale, bias = _scale_bias(variant)
    if is_tf:
        q = tf.round((tf.cast(x, tf.float32) - bias) / scale)
        return tf.cast(tf.clip_by_value(q, 0.0, 255.0), tf.uint8)
    q = np.round((np.asarray(x, np.float64) - bias) / scale)
    return np.clip(q, 0, 255).astype(np.uint8)
