"""The encoders named by kdzoo: per dataset layout, and by name or path for the CLI.

``"vggish"``       AudioSet: one ``(96, 64, 1)`` log-mel patch a second -> 128.
``"inception_v3"`` YouTube-8M rgb: one ``(299, 299, 3)`` frame a second -> 1024 (PCA).
``"yt8m"``         the YouTube-8M frame layout: ``{"rgb": (299, 299, 3), "audio": (96, 64, 1)}``
                   -> rgb 1024 ++ audio 128 = 1152, InceptionV3 + PCA and VGGish side by side.
``"none"``         no encoder (the aggregator-only cost).
``PATH.keras``     any saved Keras model that maps one frame to one feature vector.

All built-in encoders are architectures with random weights: kdzoo ships no encoder
weights, so they serve to count and measure cost, and the end-to-end exports need the
user's trained encoder (e.g. a ``.keras`` file) to give meaningful predictions.
"""

from __future__ import annotations

import os
import pathlib

import keras

from kdzoo.encoders.inception import build_inception_v3
from kdzoo.encoders.vggish import build_vggish

ENCODERS = ("vggish", "inception_v3", "yt8m")
#: The encoder that made each dataset layout's frame features.
DATASET_ENCODERS = {"audioset": "vggish", "yt8m": "yt8m"}

NO_WEIGHTS_NOTE = (
    "encoder-architecture cost: the encoder is built with random weights (kdzoo ships no encoder weights)"
)


def build_yt8m_encoder(name: str = "yt8m_encoder") -> keras.Model:
    """YouTube-8M's per-frame features: InceptionV3 + PCA (rgb, 1024) and VGGish (audio, 128).

    Returns:
        A `keras.Model` mapping ``{"rgb": (batch, 299, 299, 3), "audio": (batch, 96, 64, 1)}``
        to ``(batch, 1152)`` (rgb first, as in the TFRecords).
    """
    rgb_encoder = build_inception_v3()
    audio_encoder = build_vggish()
    rgb = keras.Input(shape=rgb_encoder.input_shape[1:], name="rgb")
    audio = keras.Input(shape=audio_encoder.input_shape[1:], name="audio")
    features = keras.layers.Concatenate(name="features")([rgb_encoder(rgb), audio_encoder(audio)])
    return keras.Model({"rgb": rgb, "audio": audio}, features, name=name)


_BUILDERS = {"vggish": build_vggish, "inception_v3": build_inception_v3, "yt8m": build_yt8m_encoder}


def get_encoder(encoder: str | os.PathLike | keras.Model | None, dataset: str | None = None) -> keras.Model | None:
    """Resolves an encoder argument to a Keras model (or None for no encoder).

    Args:
        encoder: a `keras.Model`; one of `ENCODERS`; ``"none"`` / None; ``"default"``
            (the encoder of `dataset`'s layout, see `DATASET_ENCODERS`); or the path of a
            saved ``.keras`` model.
        dataset: the zoo dataset tag, needed for ``"default"``.
    """
    if encoder is None or isinstance(encoder, keras.Model):
        return encoder
    name = os.fspath(encoder)
    if name == "none":
        return None
    if name == "default":
        if dataset not in DATASET_ENCODERS:
            raise ValueError(
                f"No default encoder for dataset {dataset!r}. Known layouts: {sorted(DATASET_ENCODERS)}; "
                f"pass one of {ENCODERS} or a .keras path."
            )
        name = DATASET_ENCODERS[dataset]
    if name in _BUILDERS:
        return _BUILDERS[name]()
    path = pathlib.Path(name)
    if path.suffix == ".keras":
        if not path.is_file():
            raise FileNotFoundError(f"Encoder file not found: {path}")
        return keras.saving.load_model(path)
    raise ValueError(
        f"Unknown encoder {name!r}. Expected one of {(*ENCODERS, 'none', 'default')} or a path ending in '.keras'."
    )
