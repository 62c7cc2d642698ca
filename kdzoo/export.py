"""Export a student for serving: one variable-length video in, its predictions out.

The exported artefact takes ONE video ``(frames, features)`` of any length (float32
features, or the uint8 quantised codes of the TFRecords with ``input_dtype="uint8"``,
which it dequantises with `kdzoo.data.dequantize`), picks the student's k frames with
`kdzoo.sampling.sample_frames` (its inference seed rule: deterministic, the
``random`` sampler uses the fixed default seed) and returns::

    {"predictions": (num_classes,) float32, "embedding": (embedding_size,) float32}

Formats (``export_model(model, path, format=...)``):

``"keras"``
    ``path`` ends in ``.keras``: a functional model whose single input has shape
    ``(None, D)`` (the *frames* axis, no batch axis) and whose one layer,
    `VideoServing`, holds the student. Reload with
    ``served = keras.saving.load_model(path)`` (``safe_mode`` stays on: no lambdas)
    after ``import kdzoo.export``, and call it directly: ``served(frames)``. Do not use
    ``served.predict(frames)``: ``predict`` would split the frames into batches.
``"savedmodel"``
    a folder written by ``tf.saved_model.save`` of a `tf.Module` whose ``serve``
    ``tf.function`` has the input signature ``TensorSpec([None, D], dtype)``; it is
    also the ``serving_default`` signature (TF Serving, ``saved_model_cli``).
    Reload with ``loaded = tf.saved_model.load(path)``, then ``loaded.serve(frames)``;
    no kdzoo import needed. Keep ``loaded`` in a variable: ``serve`` reads the
    variables that ``loaded`` owns, and a temporary's are freed at once.
``"tflite"``
    a ``.tflite`` flat buffer, TFLite builtin ops only (no Flex delegate needed).
    `kdzoo.export_formats` has the recipe (frozen variables, builtin ops only); the
    ``random`` sampler is refused; `run_tflite` runs one video.

An empty video (T = 0) is served as the model's output for an all-padding (mask 0)
input instead of failing on an out-of-range gather. A video of the wrong feature width
is refused with a ``ValueError`` naming the expected shape (keras format and
`run_tflite`); the SavedModel's input signature refuses it with a ``TypeError`` that
names the expected ``TensorSpec``. ``normalization={"mean": (D,), "std": (D,)}``
(e.g. from `normalization_from_files` on the training records) is stored in every
format and applied to each video before sampling.

Example (the tests run these lines, in this order, in an empty folder)::

    import keras
    import numpy as np
    import tensorflow as tf
    import kdzoo

    video = np.random.default_rng(0).normal(size=(25, 128)).astype("float32")  # 25 frames of 128

    kdzoo.export("netvlad_student_k2.audioset", "served.keras")
    served = keras.saving.load_model("served.keras")  # needs kdzoo.export imported
    probs = served(video)["predictions"]  # (527,)

    kdzoo.export("netvlad_student_k2.audioset", "served_savedmodel", format="savedmodel")
    loaded = tf.saved_model.load("served_savedmodel")  # keep it in a variable
    probs = loaded.serve(tf.constant(video))["predictions"]

    kdzoo.export("netvlad_student_k2.audioset", "served.tflite", format="tflite")
    probs = kdzoo.export.run_tflite("served.tflite", video)["predictions"]
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kdzoo import sampling
from kdzoo.data.quantization import VARIANTS, dequantize as _dequantize
from kdzoo.export_formats import FORMATS, run_tflite, write_artefact, write_tflite
from kdzoo.models import frame_shape

INPUT_DTYPES = ("float32", "uint8")

__all__ = ["FORMATS", "INPUT_DTYPES", "VideoServing", "check_video_shape", "export", "export_model",
           "normalization_from_files", "run_tflite", "serve_video", "write_tflite"]


def _check_options(model, k, sampler, input_dtype, dequantize):
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a kdzoo keras.Model to export. Received: {type(model).__name__}")
    num_frames, feature_size = frame_shape(model)
    if k is None:
        k = num_frames
    if k is None:
        raise ValueError("The model accepts any frame count: pass k, the number of frames to sample.")
    k = sampling.check_k(k, sampler)
    if num_frames is not None and num_frames != k:
        raise ValueError(
            f"The model was built for {num_frames} frames but k={k} was asked for; export it with k={num_frames}."
        )
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"Unknown input_dtype {input_dtype!r}. Expected one of {INPUT_DTYPES}.")
    if input_dtype == "uint8" and dequantize is not None and dequantize not in VARIANTS:
        raise ValueError(f"Unknown dequantize variant {dequantize!r}. Expected one of {VARIANTS} or None.")
    return k, feature_size


def check_video_shape(shape, feature_size: int, where: str = "the exported model") -> None:
    """Raises a clear ValueError unless `shape` is ``(frames, feature_size)``."""
    shape = tuple(shape)
    if len(shape) != 2 or (shape[1] is not None and int(shape[1]) != feature_size):
        raise ValueError(
            f"Expected one video of shape (frames, {feature_size}) for {where}. Received shape {shape}"
            + (" (a batch? the serving artefact takes one video at a time)" if len(shape) == 3 else "")
        )


def _check_normalization(normalization, feature_size: int) -> dict[str, list[float]] | None:
    """``{"mean": (D,), "std": (D,)}`` as float lists, validated; None stays None."""
    if normalization is None:
        return None
    if not isinstance(normalization, dict) or set(normalization) != {"mean", "std"}:
        raise ValueError(f"Expected normalization={{'mean': (D,), 'std': (D,)}}. Received: {normalization!r:.200}")
    out = {}
    for key in ("mean", "std"):
        value = np.asarray(normalization[key], np.float64).reshape(-1)
        if value.shape != (feature_size,) or not np.all(np.isfinite(value)):
            raise ValueError(f"Expected normalization[{key!r}] of {feature_size} finite numbers. "
                             f"Received shape {value.shape}")
        out[key] = [float(v) for v in value]
    if min(out["std"]) <= 0:
        raise ValueError("Expected normalization['std'] > 0 everywhere. Received a value <= 0.")
    return out


def serve_video(model, frames_in, k: int, sampler: str = "uniform", input_dtype: str = "float32",
                dequantize: str | None = "yt8m", normalization=None) -> dict[str, tf.Tensor]:
    """The serving computation on one video ``(T, D)`` (a TF graph; used by every format).

    The k frames come from `kdzoo.sampling.sample_frames` with its inference seed rule.
    ``normalization`` (``{"mean", "std"}``, each ``(D,)``) is applied after dequantising:
    ``(x - mean) / std``.
    """
    x = tf.convert_to_tensor(frames_in)
    check_video_shape(x.shape, frame_shape(model)[1], model.name)
    x = _dequantize(x, dequantize) if input_dtype == "uint8" else tf.cast(x, tf.float32)
    if normalization is not None:
        x = (x - tf.constant(normalization["mean"], tf.float32)) / tf.constant(normalization["std"], tf.float32)
    length = tf.shape(x)[0]
    # One zero row of padding keeps the gather in range for an empty video (its mask is 0).
    padded = tf.concat([x, tf.zeros([1, tf.shape(x)[1]], tf.float32)], axis=0)
    mask = tf.cast(tf.range(length + 1) < length, tf.float32)
    frames_k, mask_k = sampling.sample_frames(padded[None], mask[None], k, sampler)
    out = model({"frames": frames_k, "mask": mask_k}, training=False)
    return {"predictions": out["predictions"][0], "embedding": out["embedding"][0]}


def serving_output_spec(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """What a serving layer returns for one video: ``{"predictions": (C,), "embedding": (E,)}``."""
    num_classes = int(model.get_layer("predictions").output.shape[-1])
    emb = int(model.get_layer("embedding").output.shape[-1])
    return {
        "predictions": keras.KerasTensor((num_classes,), dtype="float32"),
        "embedding": keras.KerasTensor((emb,), dtype="float32"),
    }


@keras.saving.register_keras_serializable(package="kdzoo")
class VideoServing(keras.layers.Layer):
    """Samples a student's k frames from one ``(T, D)`` video and applies the student.

    Args:
        model: the kdzoo student (see `kdzoo.models.build_model`).
        k: the number of frames the student sees.
        sampler: a `kdzoo.sampling.SAMPLERS` name (applied with ``training=False``).
        input_dtype: ``"float32"`` features or ``"uint8"`` quantised codes.
        dequantize: the `kdzoo.data.dequantize` variant for uint8 input.
        normalization: optional ``{"mean": (D,), "std": (D,)}`` applied to the features
            (`normalization_from_files` computes it from training data).
    """

    def __init__(self, model, k: int, sampler: str = "uniform", input_dtype: str = "float32",
                 dequantize: str | None = "yt8m", normalization=None, **kwargs):
        super().__init__(**kwargs)
        self.k, self.feature_size = _check_options(model, k, sampler, input_dtype, dequantize)
        self.model = model
        self.sampler = sampler
        self.video_dtype = input_dtype
        self.dequantize = dequantize
        self.normalization = _check_normalization(normalization, self.feature_size)

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs):
        return serve_video(self.model, inputs, self.k, self.sampler, self.video_dtype, self.dequantize,
                           self.normalization)

    def compute_output_spec(self, inputs):
        return serving_output_spec(self.model)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "k": self.k,
                "sampler": self.sampler,
                "input_dtype": self.video_dtype,
                "dequantize": self.dequantize,
                "normalization": self.normalization,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "VideoServing":
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config.pop("model"))
        return cls(**config)


def serving_model(model, k: int | None = None, sampler: str = "uniform", input_dtype: str = "float32",
                  dequantize: str | None = "yt8m", normalization=None) -> keras.Model:
    """A keras.Model: one video ``(T, D)`` -> ``{"predictions", "embedding"}`` (no batch axis)."""
    layer = VideoServing(model, k, sampler, input_dtype, dequantize, normalization, name="video_serving")
    video = keras.Input(batch_shape=(None, layer.feature_size), dtype=input_dtype, name="video")
    return _ServingModel(video, layer(video), name=f"{model.name}_serving")


@keras.saving.register_keras_serializable(package="kdzoo")
class _ServingModel(keras.Model):
    """The keras export: checks a video's shape before Keras' own input handling."""

    def __call__(self, video, *args, **kwargs):
        check_video_shape(getattr(video, "shape", np.shape(video)), int(self.inputs[0].shape[-1]), self.name)
        return super().__call__(video, *args, **kwargs)


class _ServingModule(tf.Module):
    def __init__(self, model, k, sampler, input_dtype, dequantize, feature_size, normalization=None):
        super().__init__(name="kdzoo_serving")
        self.model = model
        self._options = (k, sampler, input_dtype, dequantize, normalization)

        @tf.function(input_signature=[tf.TensorSpec([None, feature_size], tf.as_dtype(input_dtype), name="video")])
        def serve(video):
            return serve_video(self.model, video, *self._options)

        self.serve = serve


def _module(model, k, sampler, input_dtype, dequantize, normalization=None) -> _ServingModule:
    k, feature_size = _check_options(model, k, sampler, input_dtype, dequantize)
    normalization = _check_normalization(normalization, feature_size)
    return _ServingModule(model, k, sampler, input_dtype, dequantize, feature_size, normalization)


def export_model(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "keras",
    k: int | None = None,
    sampler: str = "uniform",
    input_dtype: str = "float32",
    dequantize: str | None = "yt8m",
    normalization: dict | None = None,
) -> str:
    """Writes a serving artefact for a student (see the module docstring).

    Args:
        model: a kdzoo model (`build_model` / `kdzoo.load`).
        path: the ``.keras`` file, SavedModel folder or ``.tflite`` file to write.
        format: ``"keras"``, ``"savedmodel"`` or ``"tflite"``.
        k: the frames to sample; defaults to the frame count the model was built for.
        sampler: how the k frames are chosen (`kdzoo.sampling.SAMPLERS`).
        input_dtype: ``"float32"`` features or ``"uint8"`` quantised codes.
        dequantize: `kdzoo.data.dequantize` variant applied to uint8 input.
        normalization: optional ``{"mean": (D,), "std": (D,)}`` stored in the artefact
            and applied to every video, ``(x - mean) / std`` (after dequantising), so
            that serving normalises as training did; see `normalization_from_files`.

    Returns:
        The path written, as a string.
    """
    return write_artefact(
        path, format, sampler,
        keras_model=lambda: serving_model(model, k, sampler, input_dtype, dequantize, normalization),
        serving_module=lambda: _module(model, k, sampler, input_dtype, dequantize, normalization),
    )


def normalization_from_files(files, spec, take: int | None = None, batch_size: int = 512) -> dict[str, list[float]]:
    """``{"mean", "std"}`` (each ``(D,)``) of the real frames of TFRecords, for `export_model`.

    Computed over every real (unmasked) frame of the first `take` videos (all by default),
    after the spec's dequantisation: the features a model trained on them saw.
    """
    from kdzoo.data import get_spec, make_dataset

    spec = get_spec(spec)
    total = total_sq = None
    count = 0.0
    for inputs, _ in make_dataset(files, spec, batch_size, take=take):
        frames = inputs["frames"].numpy().astype(np.float64)
        mask = inputs["mask"].numpy().astype(np.float64)[..., None]
        s1, s2 = (frames * mask).sum((0, 1)), (frames ** 2 * mask).sum((0, 1))
        total, total_sq = (s1, s2) if total is None else (total + s1, total_sq + s2)
        count += float(mask.sum())
    if not count:
        raise ValueError(f"No frames to compute a normalization from in {files!r}.")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return {"mean": [float(v) for v in mean], "std": [float(max(v, 1e-6)) for v in std]}


def export(
    model: str | keras.Model,
    path: str | os.PathLike,
    format: str = "keras",
    *,
    encoder: str | os.PathLike | keras.Model | None = None,
    weights: str | os.PathLike | None = "default",
    k: int | None = None,
    sampler: str | None = None,
    role: str | None = None,
    input_dtype: str = "float32",
    normalization: dict | None = None,
) -> str:
    """Exports a zoo model (by name) or a kdzoo model for serving; ``kdzoo.export(...)``.

    Without an encoder the artefact takes one video of features ``(T, D)``
    (`export_model`). With one it takes one clip of raw frames (``(T, 96, 64, 1)``
    log-mel patches for ``encoder="vggish"``, ``(T, 299, 299, 3)`` images for
    ``"inception_v3"``, ``{"rgb", "audio"}`` for ``"yt8m"``), picks the student's k frames
    first and runs the encoder on those k only (`kdzoo.end_to_end`); a teacher encodes the
    clip's real frames.

    Args:
        model: a zoo name (``"netvlad_student_k2.audioset"``) or a `keras.Model`.
        path: the ``.keras`` file, SavedModel folder or ``.tflite`` file to write.
        format: ``"keras"``, ``"savedmodel"`` or ``"tflite"``.
        encoder: None (features in); ``"default"`` (the encoder of the entry's dataset:
            VGGish for AudioSet, InceptionV3 + VGGish for YouTube-8M), ``"vggish"``,
            ``"inception_v3"``, ``"yt8m"``, a ``.keras`` path or a `keras.Model`. The
            built-in encoders have random weights (kdzoo ships no encoder weights): give
            your trained encoder for meaningful predictions.
        weights: for a zoo name, as in `kdzoo.load`.
        k: frames to sample (default: the student's k).
        sampler: default the zoo config's (``"uniform"`` for a model).
        role: ``"student"`` or ``"teacher"``; default the entry's role (``"student"`` for a model).
        input_dtype: ``"float32"`` or ``"uint8"`` (quantised features; no encoder).
        normalization: optional ``{"mean": (D,), "std": (D,)}`` of the features, stored
            in the artefact (features in only; see `export_model`).

    Returns:
        The path written, as a string.
    """
    from kdzoo import encoders
    from kdzoo.end_to_end import export_clip

    dataset, dequantize = None, "yt8m"
    if isinstance(model, str):
        from kdzoo.zoo import registry

        reg = registry.get_registry()
        entry = reg.resolve(model)
        model = reg.load(entry.name, weights=weights, k=k)
        dataset, dequantize = entry.tag, entry.config.spec.dequantize
        role = role or entry.role
        sampler = sampler or entry.config.sampler
        k = k or entry.num_frames
    elif not isinstance(model, keras.Model):
        raise TypeError(f"Expected a zoo name or a keras.Model to export. Received: {type(model).__name__}")
    role, sampler = role or "student", sampler or "uniform"
    encoder = encoders.get_encoder(encoder, dataset=dataset)
    if encoder is None:
        return export_model(model, path, format=format, k=k, sampler=sampler, input_dtype=input_dtype,
                            dequantize=dequantize, normalization=normalization)
    if normalization is not None:
        raise ValueError("normalization applies to exports that take features (encoder=None).")
    if input_dtype != "float32":
        raise ValueError(f"An end-to-end export takes raw float32 frames; input_dtype={input_dtype!r} is for features.")
    return export_clip(model, encoder, path, format=format, k=k if role == "student" else None, sampler=sampler,
                       role=role)


class _CallableModule(types.ModuleType):
    """Lets ``kdzoo.export(NAME, ...)`` call `export` while ``kdzoo.export`` stays this module."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
