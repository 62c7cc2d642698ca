"""Shared test helpers: small kdzoo models, learnable synthetic videos, export runners.

(The layer checks live in ``layer_testing.py``, the record writers in ``records.py``.)
"""

import keras
import numpy as np
import tensorflow as tf

FEATURES = 6
CLASSES = 5
FRAMES = 8


def small_config(family="pooling", num_frames=None, name="m", **overrides):
    aggregator = {
        "pooling": {"mode": "mean_max"},
        "netvlad": {"num_clusters": 4, "output_size": 8},
        "nextvlad": {"num_clusters": 4, "expansion": 2, "groups": 2, "output_size": 8},
        "hrnn": {"units": 8, "block_size": 2},
    }[family]
    config = {
        "family": family,
        "feature_size": FEATURES,
        "num_classes": CLASSES,
        "num_frames": num_frames,
        "aggregator": aggregator,
        "hidden_size": 16,
        "head": {"num_mixtures": 2},
        "name": name,
    }
    config.update(overrides)
    return config


def synthetic_videos(n=64, seed=0):
    """Padded videos whose labels are a fixed function of their frames (learnable)."""
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(n, FRAMES, FEATURES)).astype("float32")
    lengths = rng.integers(3, FRAMES + 1, size=n)
    mask = (np.arange(FRAMES)[None, :] < lengths[:, None]).astype("float32")
    frames *= mask[..., None]
    mean = frames.sum(1) / lengths[:, None]
    w = np.random.default_rng(123).normal(size=(FEATURES, CLASSES))
    labels = (mean @ w > 0.0).astype("float32")
    return {"frames": frames, "mask": mask}, labels


def make_distiller(mode="serial", teacher_family="pooling", student_family="pooling", k=3, **kwargs):
    from kdzoo.distillation import Distiller
    from kdzoo.models import build_model

    keras.utils.set_random_seed(1)
    teacher = build_model(small_config(teacher_family, num_frames=FRAMES, name="teacher"))
    student = build_model(small_config(student_family, num_frames=k, name="student", hidden_size=12))
    return Distiller(teacher, student, k=k, mode=mode, **kwargs)


def load_runner(fmt, path):
    """A callable video -> {"predictions", "embedding"} for an exported artefact."""
    from kdzoo import export

    if fmt == "keras":
        served = keras.saving.load_model(path)  # safe_mode=True
        return lambda v: {k: np.asarray(x) for k, x in served(v).items()}
    if fmt == "savedmodel":
        loaded = tf.saved_model.load(path)
        return lambda v: {k: x.numpy() for k, x in loaded.serve(tf.constant(v)).items()}
    interpreter = tf.lite.Interpreter(model_path=path)
    return lambda v: export.run_tflite(interpreter, v)
