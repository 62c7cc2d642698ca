"""InceptionV3: the rgb frame encoder behind the YouTube-8M frame features.

YouTube-8M's rgb features are InceptionV3 (ImageNet) average-pooled activations of a
``(299, 299, 3)`` frame (2048 numbers), reduced to 1024 by PCA (plus whitening) and
quantised. Here the network is ``keras.applications.InceptionV3(weights=None,
include_top=False, pooling="avg")`` and the PCA is a `Dense(1024)` (a PCA projection
is an affine map: the same cost). Only the architecture is built (random weights):
kdzoo ships no encoder weights.
"""

from __future__ import annotations

import keras

FRAME_SHAPE = (299, 299, 3)
POOLED_SIZE = 2048
PCA_SIZE = 1024


def build_inception_v3(
    pca_size: int | None = PCA_SIZE,
    input_shape: tuple[int, int, int] = FRAME_SHAPE,
    name: str = "inception_v3",
) -> keras.Model:
    """Builds the YouTube-8M rgb encoder (untrained).

    Args:
        pca_size: width of the PCA projection after average pooling (1024 as in
            YouTube-8M); ``None`` keeps the 2048 pooled features.
        input_shape: one frame, ``(height, width, 3)``.
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping ``(batch, 299, 299, 3)`` to
        ``(batch, pca_size or 2048)``.
    """
    if pca_size is not None and (not isinstance(pca_size, int) or pca_size <= 0):
        raise ValueError(f"Expected a positive integer or None for pca_size. Received: pca_size={pca_size!r}")
    frame = keras.Input(shape=tuple(input_shape), name="image")
    backbone = keras.applications.InceptionV3(
        weights=None, include_top=False, pooling="avg", input_shape=tuple(input_shape)
    )
    x = backbone(frame)
    if pca_size is not None:
        x = keras.layers.Dense(pca_size, name="pca")(x)
    return keras.Model(frame, x, name=name)
