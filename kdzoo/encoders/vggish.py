"""VGGish: the audio frame encoder behind the AudioSet and YouTube-8M audio embeddings.

The published architecture (Hershey et al., "CNN Architectures for Large-Scale Audio
Classification", ICASSP 2017; ``vggish_slim.py`` in tensorflow/models research/audioset):
one 0.96 s log-mel patch ``(96, 64, 1)`` (96 frames of 10 ms x 64 mel bands) ->

    conv3x3 64 - pool - conv3x3 128 - pool - conv3x3 256 x2 - pool - conv3x3 512 x2 - pool
    - fc 4096 - fc 4096 - fc 128 (linear)

with ReLU after every convolution and the first two fully connected layers, 'same'
padding and 2x2 max pooling of stride 2: 72,141,184 parameters, about 1.73 GFLOPs a patch.

Only the architecture is built (random initial weights): kdzoo ships no encoder weights
and uses this model to count and measure what a deployment on raw audio pays per frame.
"""

from __future__ import annotations

import keras

PATCH_SHAPE = (96, 64, 1)
EMBEDDING_SIZE = 128
_CONV_BLOCKS = ((64,), (128,), (256, 256), (512, 512))
_FC_UNITS = (4096, 4096)


def build_vggish(
    input_shape: tuple[int, int, int] = PATCH_SHAPE,
    embedding_size: int = EMBEDDING_SIZE,
    name: str = "vggish",
) -> keras.Model:
    """Builds the VGGish architecture (untrained).

    Args:
        input_shape: one log-mel patch, ``(time, mel_bands, 1)``; ``(96, 64, 1)`` as published.
        embedding_size: width of the output embedding (128 as published).
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping ``(batch, 96, 64, 1)`` to ``(batch, 128)``.

    Example:
        >>> encoder = build_vggish()
        >>> encoder.count_params()
        72141184
    """
    if len(input_shape) != 3:
        raise ValueError(f"Expected input_shape=(time, mel_bands, channels). Received: input_shape={input_shape!r}")
    if not isinstance(embedding_size, int) or embedding_size <= 0:
        raise ValueError(f"Expected a positive integer embedding_size. Received: embedding_size={embedding_size!r}")
    patch = keras.Input(shape=tuple(input_shape), name="log_mel")
    x = patch
    for block, filters in enumerate(_CONV_BLOCKS, start=1):
        for i, width in enumerate(filters, start=1):
            suffix = f"_{i}" if len(filters) > 1 else ""
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{block}{suffix}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{block}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(_FC_UNITS, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc1_{i}")(x)
    embedding = keras.layers.Dense(embedding_size, name="fc2")(x)
    return keras.Model(patch, embedding, name=name)
