"""Whole videos in, predictions out: a kdzoo model that samples its own k frames.

A student sees k frames; a user holds whole videos of any length. `WholeVideoClassifier`
wraps the student and picks its k frames from each video's true length with
`kdzoo.sampling.sample_frames` and the card's sampler, under the evaluation/serving seed
rule: the same frames as `kdzoo eval` and `kdzoo export` pick (the ``random`` sampler
draws per video, as the export does for its one video). The bare student stays
available as ``.model`` (the Distiller trains that one)::

    clf = kdzoo.load("netvlad_student_k2.audioset", whole_video=True)
    probs = clf.predict_videos([video_a, video_b])["predictions"]   # (2, 527); videos (T_i, 128)
    out = clf({"frames": padded, "mask": mask})                    # (batch, T, 128), any T
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kdzoo import sampling
from kdzoo.models import frame_shape


@keras.saving.register_keras_serializable(package="kdzoo")
class WholeVideoClassifier(keras.Model):
    """A kdzoo model applied to whole, variable-length videos.

    Args:
        model: a kdzoo model (`kdzoo.load`, `kdzoo.build_model`).
        k: the frames it sees per video, sampled with `sampler` from each video's true
            length (`kdzoo.sampling.sample_frames`, evaluation seed rule). ``None``: every
            frame (a teacher); a model built for a fixed frame count N then gets a video's
            first N frames, zero-padded, as `kdzoo.data.make_dataset` gives them.
        sampler: a `kdzoo.sampling.SAMPLERS` name.

    Call arguments:
        inputs: ``{"frames": (batch, T, D), "mask": (batch, T)}`` with each video's real
            frames first and mask 1 on them (any T); or a ``(batch, T, D)`` tensor of
            videos that are all T frames long.

    Returns:
        ``{"embedding": (batch, E), "predictions": (batch, num_classes)}``.
    """

    def __init__(self, model: keras.Model, k: int | None = None, sampler: str = "uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"Expected a kdzoo keras.Model. Received: {type(model).__name__}")
        model_frames, self.feature_size = frame_shape(model)
        if k is not None:
            k = sampling.check_k(k, sampler)
            if model_frames is not None and model_frames != k:
                raise ValueError(f"{model.name} is built for {model_frames} frames. Received: k={k}")
        else:
            sampling.check_k(1, sampler)
        self.model = model
        self.k = k
        self.sampler = sampler
        self.model_frames = model_frames

    def call(self, inputs, training=False):
        if isinstance(inputs, Mapping):
            frames = tf.convert_to_tensor(inputs["frames"], tf.float32)
            mask = inputs.get("mask")
        else:
            frames, mask = tf.convert_to_tensor(inputs, tf.float32), None
        if frames.shape.rank != 3 or (frames.shape[-1] is not None and frames.shape[-1] != self.feature_size):
            raise ValueError(
                f"Expected videos of shape (batch, frames, {self.feature_size}) for {self.model.name}. "
                f"Received: {tuple(frames.shape)}"
            )
        mask = tf.ones(tf.shape(frames)[:2], tf.float32) if mask is None else tf.cast(mask, tf.float32)
        if self.k is None and self.model_frames is not None:
            frames, mask = _fit_length(frames, mask, self.model_frames)
        if self.sampler == "random" and self.k is not None:
            # A random draw depends on the batch it is made in: draw per video, as the
            # serving export does for the one video it is given.
            frames_k, mask_k = tf.map_fn(
                lambda row: tuple(t[0] for t in sampling.sample_frames(row[0][None], row[1][None], self.k, "random")),
                (frames, mask), fn_output_signature=(tf.float32, tf.float32),
            )
        else:
            frames_k, mask_k = sampling.sample_frames(frames, mask, self.k, self.sampler)
        return self.model({"frames": frames_k, "mask": mask_k}, training=training)

    def predict_videos(self, videos: Sequence[Any], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Outputs for a list of videos ``(T_i, D)`` of any lengths (padded per batch).

        Returns ``{"embedding": (n, E), "predictions": (n, num_classes)}`` as numpy.
        """
        videos = [np.asarray(v, np.float32) for v in videos]
        for i, v in enumerate(videos):
            if v.ndim != 2 or v.shape[1] != self.feature_size:
                raise ValueError(f"Expected video {i} of shape (frames, {self.feature_size}). Received: {v.shape}")
        forward = tf.function(lambda x: self(x, training=False), reduce_retracing=True)
        outputs: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(videos), batch_size):
            batch = videos[start:start + batch_size]
            longest = max(1, max(len(v) for v in batch))
            frames = np.zeros((len(batch), longest, self.feature_size), np.float32)
            mask = np.zeros((len(batch), longest), np.float32)
            for row, v in enumerate(batch):
                frames[row, :len(v)], mask[row, :len(v)] = v, 1.0
            for name, value in forward({"frames": frames, "mask": mask}).items():
                outputs.setdefault(name, []).append(np.asarray(value))
        if not outputs:
            raise ValueError("Expected at least one video. Received: an empty list")
        return {name: np.concatenate(parts) for name, parts in outputs.items()}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"model": keras.saving.serialize_keras_object(self.model), "k": self.k,
                       "sampler": self.sampler})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "WholeVideoClassifier":
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config.pop("model"))
        return cls(**config)


def _fit_length(frames, mask, length: int):
    """A batch cut or zero-padded to `length` frames."""
    frames, mask = frames[:, :length], mask[:, :length]
    pad = tf.maximum(length - tf.shape(frames)[1], 0)
    frames = tf.pad(frames, [[0, 0], [0, pad], [0, 0]])
    mask = tf.pad(mask, [[0, 0], [0, pad]])
    return tf.ensure_shape(frames, [None, length, frames.shape[-1]]), tf.ensure_shape(mask, [None, length])
