"""End-to-end serving: one clip of raw frames in, the classifier's outputs out.

The serving computation on one variable-length clip of raw frames (``(T, 96, 64, 1)``
log-mel patches, ``(T, 299, 299, 3)`` images, or a dict of such for a multi-input
encoder such as YouTube-8M's ``{"rgb", "audio"}``):

1. a student picks its k frames first, with `kdzoo.sampling.sample_frames` (the rule of
   training and evaluation, inference seed), from the clip's true length T;
2. the per-frame encoder runs on those k frames only (a teacher: on the clip's real
   frames only, at most the N it was built for);
3. the classifier runs on the k encoded frames (a teacher on the T encoded frames
   zero-padded to N, with their mask).

So a deployment pays the encoder k times per clip, not T times. The encoders that
`kdzoo.encoders` builds have random weights (kdzoo ships no encoder weights): pass your
trained encoder (a `keras.Model`, or a ``.keras`` path through `kdzoo.export`) to serve
meaningful predictions; the built-in ones give the serving graph and its cost.

Returns ``{"predictions": (num_classes,), "embedding": (embedding_size,)}`` (float32).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kdzoo import sampling
from kdzoo.models import frame_shape

__all__ = ["ClipServing", "clip_serving_model", "serve_clip"]


def _flat_specs(encoder: keras.Model) -> list[tuple[str, tuple[int, ...]]]:
    """(name, per-frame shape) of each encoder input, in the encoder's flattened order."""
    specs = []
    for tensor in keras.tree.flatten(encoder.inputs):
        shape = tuple(tensor.shape)[1:]
        if any(s is None for s in shape):
            raise ValueError(
                f"Expected encoder {encoder.name!r} to have a fixed per-frame input shape; found "
                f"{tuple(tensor.shape)} for input {tensor.name!r}."
            )
        specs.append((tensor.name, tuple(int(s) for s in shape)))
    return specs


def _structure(encoder: keras.Model):
    """The encoder's input structure (a tensor, a list or a dict of per-frame inputs)."""
    return getattr(encoder, "_inputs_struct", keras.tree.flatten(encoder.inputs))


def check_encoder(model: keras.Model, encoder: keras.Model) -> int:
    """Checks that `encoder` makes the frames `model` reads; returns the feature width."""
    if not isinstance(encoder, keras.Model):
        raise TypeError(f"Expected a keras.Model encoder. Received: {type(encoder).__name__}")
    _flat_specs(encoder)
    _, feature_size = frame_shape(model)
    out = tuple(encoder.output.shape) if not isinstance(encoder.output, (list, dict)) else None
    if out is None or len(out) != 2 or out[-1] != feature_size:
        raise ValueError(
            f"Encoder {encoder.name!r} must map one frame to ({feature_size},) features for model {model.name!r}; "
            f"its output shape is {out if out is not None else encoder.output}."
        )
    return feature_size


def _encode(encoder: keras.Model, flat_frames: list[tf.Tensor]) -> tf.Tensor:
    structure = _structure(encoder)
    inputs = keras.tree.pack_sequence_as(structure, flat_frames) if len(flat_frames) > 1 else flat_frames[0]
    return tf.cast(encoder(inputs, training=False), tf.float32)


def serve_clip(model: keras.Model, encoder: keras.Model, clip, k: int | None, sampler: str = "uniform"):
    """The end-to-end serving computation on one clip (a TF graph; used by every format).

    Args:
        model: the kdzoo classifier (student or teacher).
        encoder: per-frame encoder, one frame -> ``(feature_size,)``.
        clip: ``(T, *frame_shape)`` raw frames, or a structure of them matching the
            encoder's inputs (the same T for all).
        k: frames a student samples; None for a teacher (every real frame, up to its N).
        sampler: a `kdzoo.sampling.SAMPLERS` name (inference seed rule).
    """
    flat = [tf.cast(tf.convert_to_tensor(x), tf.float32) for x in keras.tree.flatten(clip)]
    length = tf.shape(flat[0])[0]
    model_frames, feature_size = frame_shape(model)
    if k is not None:
        # One zero frame of padding keeps the gather in range for an empty clip (its mask is 0).
        mask = tf.cast(tf.range(length + 1) < length, tf.float32)[None]
        picked = []
        for x in flat:
            padded = tf.concat([x, tf.zeros(tf.concat([[1], tf.shape(x)[1:]], 0), x.dtype)], axis=0)[None]
            frames_k, mask_k = sampling.sample_frames(padded, mask, k, sampler)
            picked.append(frames_k[0])
        features = _encode(encoder, picked)[None]  # (1, k, D): the encoder saw k frames
        out = model({"frames": features, "mask": mask_k}, training=False)
    else:
        real = length if model_frames is None else tf.minimum(length, model_frames)
        features = _encode(encoder, [x[:real] for x in flat])  # (T', D): only the clip's real frames
        width = real if model_frames is None else model_frames
        features = tf.concat([features, tf.zeros([width - real, feature_size], tf.float32)], axis=0)
        mask = tf.cast(tf.range(width) < real, tf.float32)
        features = tf.reshape(features, [1, -1 if model_frames is None else model_frames, feature_size])
        out = model({"frames": features, "mask": mask[None]}, training=False)
    return {"predictions": out["predictions"][0], "embedding": out["embedding"][0]}


@keras.saving.register_keras_serializable(package="kdzoo")
class ClipServing(keras.layers.Layer):
    """Encodes only the frames a classifier sees in one raw clip, then applies it.

    Args:
        model: the kdzoo classifier (see `kdzoo.models.build_model`).
        encoder: per-frame `keras.Model` whose output width is the model's feature size.
        k: frames a student samples (default: the frames the model was built for); None
            with ``role="teacher"``.
        sampler: a `kdzoo.sampling.SAMPLERS` name.
        role: ``"student"`` (sample k, encode k) or ``"teacher"`` (encode every real frame).

    Call arguments:
        inputs: ``(T, *frame_shape)`` raw frames (a dict of them for a multi-input encoder).
    """

    def __init__(self, model, encoder, k: int | None = None, sampler: str = "uniform", role: str = "student",
                 **kwargs):
        super().__init__(**kwargs)
        if role not in ("student", "teacher"):
            raise ValueError(f"Unknown role {role!r}. Expected 'student' or 'teacher'.")
        self.feature_size = check_encoder(model, encoder)
        if role == "student":
            model_frames, _ = frame_shape(model)
            k = model_frames if k is None else k
            if k is None:
                raise ValueError("The model accepts any frame count: pass k, the number of frames to sample.")
            k = sampling.check_k(k, sampler)
            if model_frames is not None and model_frames != k:
                raise ValueError(f"The model was built for {model_frames} frames but k={k} was asked for.")
        else:
            k = None
        self.model = model
        self.encoder = encoder
        self.k = k
        self.sampler = sampler
        self.role = role

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs):
        return serve_clip(self.model, self.encoder, inputs, self.k, self.sampler)

    def compute_output_spec(self, inputs):
        from kdzoo.export import serving_output_spec

        return serving_output_spec(self.model)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "k": self.k,
                "sampler": self.sampler,
                "role": self.role,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ClipServing":
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config.pop("model"))
        config["encoder"] = keras.saving.deserialize_keras_object(config.pop("encoder"))
        return cls(**config)


def clip_inputs(encoder: keras.Model):
    """Keras inputs for one clip: ``(None, *frame_shape)`` per encoder input (no batch axis)."""
    flat = [keras.Input(batch_shape=(None, *shape), name=name) for name, shape in _flat_specs(encoder)]
    structure = _structure(encoder)
    return keras.tree.pack_sequence_as(structure, flat) if len(flat) > 1 else flat[0]


def clip_signature(encoder: keras.Model) -> list[tf.TensorSpec]:
    """`tf.TensorSpec` per encoder input for one clip, ``[None, *frame_shape]``."""
    return [tf.TensorSpec([None, *shape], tf.float32, name=name) for name, shape in _flat_specs(encoder)]


def clip_serving_model(model, encoder, k: int | None = None, sampler: str = "uniform",
                       role: str = "student") -> keras.Model:
    """A keras.Model: one raw clip -> ``{"predictions", "embedding"}`` (no batch axis)."""
    layer = ClipServing(model, encoder, k, sampler, role, name="clip_serving")
    clip = clip_inputs(encoder)
    return keras.Model(clip, layer(clip), name=f"{model.name}_clip_serving")


class _ClipModule(tf.Module):
    def __init__(self, model, encoder, k, sampler):
        super().__init__(name="kdzoo_clip_serving")
        self.model = model
        self.encoder = encoder
        structure = _structure(encoder)
        options = (k, sampler)

        @tf.function(input_signature=clip_signature(encoder))
        def serve(*flat):
            clip = keras.tree.pack_sequence_as(structure, list(flat)) if len(flat) > 1 else flat[0]
            return serve_clip(self.model, self.encoder, clip, *options)

        self.serve = serve


def export_clip(
    model: keras.Model,
    encoder: keras.Model,
    path,
    format: str = "keras",
    k: int | None = None,
    sampler: str = "uniform",
    role: str = "student",
) -> str:
    """Writes an end-to-end serving artefact: one raw clip in, the classifier's outputs out.

    Formats as in `kdzoo.export.export_model`: ``"keras"`` (a ``.keras`` file of
    `clip_serving_model`; reload with ``keras.saving.load_model`` after ``import
    kdzoo.end_to_end``), ``"savedmodel"`` (``serve`` / ``serving_default`` with one
    ``[None, *frame_shape]`` input per encoder input) and ``"tflite"`` (where the encoder
    converts to TFLite builtin ops; VGGish does, 290 MB end to end, and so do the tests' small conv nets).

    Returns:
        The path written, as a string.
    """
    from kdzoo.export_formats import check_format, write_artefact

    check_format(format)
    layer = ClipServing(model, encoder, k, sampler, role)  # validates before anything is written
    return write_artefact(
        path, format, sampler,
        keras_model=lambda: clip_serving_model(model, encoder, layer.k, sampler, role),
        serving_module=lambda: _ClipModule(model, encoder, layer.k, sampler),
    )
