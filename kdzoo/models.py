"""Video classifiers built from a plain config: frames -> aggregator -> embedding -> head.

Every model built here has the same contract, which the Distiller, the zoo and the
profiler rely on:

* inputs ``{"frames": (batch, frames, features) float32, "mask": (batch, frames)}``
  where ``mask`` is 1 for real frames and 0 for padding at the end of a video;
* outputs ``{"embedding": (batch, embedding_size), "predictions": (batch, num_classes)}``,
  the video embedding E and the sigmoid class probabilities P (both float32, also
  under a ``mixed_float16`` policy); with ``"intermediate": True`` (``INTERMEDIATE_FAMILIES``)
  also ``"intermediate": (batch, descriptor_size)``: for the VLAD families the aggregator's
  normalised VLAD matrix before its projection, for H-RNN the mean of its block encodings
  (batch, units).

The model is a `VideoClassifier`: a functional ``keras.Model`` whose ``compile``/``fit``
treat it as the classifier it is, so that pre-training a teacher on labels is the usual
Keras call (the embedding output is for distillation and takes no loss)::

    teacher.compile(optimizer="adam", loss="binary_crossentropy", metrics=["auc"])
    teacher.fit(dataset_of_inputs_and_multi_hot_labels, epochs=10)

A config is a plain dict (it comes from YAML in ``zoo_configs/``)::

    {
        "family": "netvlad",          # netvlad | nextvlad | hrnn | lstm | gru | pooling
        "feature_size": 128,          # width of one frame
        "num_classes": 527,
        "num_frames": 10,             # length of the frame axis: N for a teacher, k for a
                                      # student; None = any number (then mask it)
        "frame_mlp": [512, 512],      # optional Dense+ReLU layers applied to every frame
        "frame_mlp_batch_norm": False,  # batch norm (over the real frames) after that MLP
        "aggregator": {"num_clusters": 32, "output_size": 256},
        "aggregator_dropout": 0.0,    # dropout on the aggregator's output (before hidden)
        "hidden_size": None,          # optional Dense+ReLU after the aggregator
        "hidden_batch_norm": False,   # batch norm after that Dense (rescales the unit-norm VLAD)
        "embedding_size": None,       # optional linear Dense fixing the embedding's width (e.g.
                                      # a student that classifies with its teacher's head)
        "dropout": 0.5,               # before the head
        "context_gating": True,
        "head": {"num_mixtures": 2, "l2": 1e-6},
        "intermediate": False,        # also output the aggregator's intermediate representation
        "name": "netvlad_teacher",
    }
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from kdzoo import layers as kd_layers

FAMILIES = ("netvlad", "nextvlad", "hrnn", "lstm", "gru", "pooling")
#: Families whose aggregator exposes an intermediate representation (``"intermediate": True``).
INTERMEDIATE_FAMILIES = ("netvlad", "nextvlad", "hrnn")

_DEFAULT_AGGREGATOR = {
    "netvlad": {"num_clusters": 32, "output_size": 256},
    "nextvlad": {"num_clusters": 32, "expansion": 2, "groups": 8, "output_size": 256},
    "hrnn": {"units": 256, "block_size": 5, "cell": "lstm"},
    "lstm": {"units": 256},
    "gru": {"units": 256},
    "pooling": {"mode": "mean_max"},
}

_KNOWN_KEYS = {
    "family",
    "feature_size",
    "num_classes",
    "num_frames",
    "frame_mlp",
    "frame_mlp_batch_norm",
    "aggregator",
    "aggregator_dropout",
    "hidden_size",
    "hidden_batch_norm",
    "embedding_size",
    "dropout",
    "context_gating",
    "head",
    "intermediate",
    "name",
}


def normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validates a model config and fills in defaults. Returns a new dict."""
    if not isinstance(config, Mapping):
        raise TypeError(f"Expected a mapping as model config. Received: {type(config).__name__}")
    unknown = set(config) - _KNOWN_KEYS
    if "frames" in unknown:
        raise ValueError("The model config key 'frames' is now 'num_frames' (the length of the frame axis).")
    if unknown:
        raise ValueError(
            f"Unknown model config keys {sorted(unknown)}. Expected a subset of {sorted(_KNOWN_KEYS)}."
        )
    family = config.get("family")
    if family not in FAMILIES:
        raise ValueError(f"Unknown model family {family!r}. Expected one of {FAMILIES}.")
    out = copy.deepcopy(dict(config))
    for key in ("feature_size", "num_classes"):
        value = out.get(key)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"Expected a positive integer for {key!r}. Received: {key}={value!r}")
    num_frames = out.setdefault("num_frames", None)
    if num_frames is not None and (not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames <= 0):
        raise ValueError(f"Expected a positive integer or None for 'num_frames'. Received: num_frames={num_frames!r}")
    frame_mlp = out.get("frame_mlp") or []
    if isinstance(frame_mlp, int) or any(not isinstance(u, int) or isinstance(u, bool) or u <= 0 for u in frame_mlp):
        raise ValueError(f"Expected a list of positive layer widths for 'frame_mlp'. Received: frame_mlp={frame_mlp!r}")
    out["frame_mlp"] = list(frame_mlp)
    out["frame_mlp_batch_norm"] = bool(out.get("frame_mlp_batch_norm", False))
    if out["frame_mlp_batch_norm"] and not out["frame_mlp"]:
        raise ValueError("frame_mlp_batch_norm=True needs a per-frame MLP: set frame_mlp.")
    aggregator = dict(_DEFAULT_AGGREGATOR[family])
    aggregator.update(out.get("aggregator") or {})
    out["aggregator"] = aggregator
    out.setdefault("hidden_size", None)
    out["hidden_batch_norm"] = bool(out.get("hidden_batch_norm", False))
    if out["hidden_batch_norm"] and not out["hidden_size"]:
        raise ValueError("hidden_batch_norm=True needs a hidden layer: set hidden_size.")
    embedding = out.setdefault("embedding_size", None)
    if embedding is not None and (not isinstance(embedding, int) or isinstance(embedding, bool) or embedding <= 0):
        raise ValueError(f"Expected a positive integer or None for 'embedding_size'. Received: embedding_size={embedding!r}")
    for key in ("aggregator_dropout", "dropout"):
        out.setdefault(key, 0.0)
        if not 0.0 <= float(out[key]) < 1.0:
            raise ValueError(f"Expected 0 <= {key} < 1. Received: {key}={out[key]!r}")
    out.setdefault("context_gating", False)
    head = {"num_mixtures": 2, "l2": 0.0}
    head.update(out.get("head") or {})
    out["head"] = head
    out["intermediate"] = bool(out.get("intermediate", False))
    if out["intermediate"] and family not in INTERMEDIATE_FAMILIES:
        raise ValueError(
            f"The {family!r} family has no intermediate representation output. Received: intermediate=True; "
            f"expected a family in {INTERMEDIATE_FAMILIES}."
        )
    out.setdefault("name", f"{family}_model")
    return out


def _make_aggregator(family: str, kwargs: Mapping[str, Any]) -> keras.layers.Layer:
    kwargs = dict(kwargs)
    if family == "netvlad":
        return kd_layers.NetVLAD(name="netvlad", **kwargs)
    if family == "nextvlad":
        return kd_layers.NeXtVLAD(name="nextvlad", **kwargs)
    if family == "hrnn":
        return kd_layers.HierarchicalRNN(name="hrnn", **kwargs)
    if family in ("lstm", "gru"):
        kwargs.setdefault("cell", family)
        return kd_layers.RecurrentAggregator(name=family, **kwargs)
    return kd_layers.FramePooling(name="pooling", **kwargs)


def _predictions(value: Any) -> Any:
    """The "predictions" part of a model output or target dict; anything else as it is."""
    if isinstance(value, Mapping) and "predictions" in value:
        return value["predictions"]
    return value


def _route_to_predictions(value: Any, argument: str) -> Any:
    """A compile argument given per output -> the one for "predictions" (refusing "embedding")."""
    if not isinstance(value, Mapping):
        return value
    unknown = set(value) - {"predictions"}
    if unknown:
        raise ValueError(
            f"A kdzoo model takes its {argument} on 'predictions' only; the embedding output has no target "
            "(distil it with kdzoo.Distiller). Call compile(loss='binary_crossentropy', metrics=[...]). "
            f"Received {argument} for: {sorted(value)}"
        )
    return value.get("predictions")


@keras.saving.register_keras_serializable(package="kdzoo")
class VideoClassifier(keras.Model):
    """A kdzoo video classifier: ``{"frames", "mask"}`` -> ``{"embedding", "predictions"}``.

    A functional model (built by `build_model`) whose ``compile`` losses and metrics
    apply to ``"predictions"``, against labels given as an array ``(batch, num_classes)``
    or as ``{"predictions": labels}``. ``model(x)`` and ``predict`` still return both
    outputs. A per-output dict naming ``"embedding"`` is refused with the call to use.
    """

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                **kwargs):
        super().compile(
            optimizer=optimizer,
            loss=_route_to_predictions(loss, "loss"),
            loss_weights=_route_to_predictions(loss_weights, "loss_weights"),
            metrics=_route_to_predictions(metrics, "metrics"),
            weighted_metrics=_route_to_predictions(weighted_metrics, "weighted_metrics"),
            **kwargs,
        )

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, _predictions(y), _predictions(y_pred), sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, _predictions(y), _predictions(y_pred), sample_weight)


def build_model(config: Mapping[str, Any]) -> keras.Model:
    """Builds a video classifier from a config (see the module docstring).

    frames (batch, T, D) -> optional per-frame MLP (batch, T, frame_mlp[-1]) (+ batch norm) -> aggregator
    (batch, A) -> aggregator dropout -> optional hidden Dense (+ batch norm) -> optional linear
    Dense to ``embedding_size`` -> embedding (batch, E) -> dropout -> context gating -> head.

    Args:
        config: model config dict.

    Returns:
        A `VideoClassifier` (a functional `keras.Model`) mapping ``{"frames", "mask"}``
        to ``{"embedding", "predictions"}``.
    """
    cfg = normalize_config(config)
    frames = keras.Input(shape=(cfg["num_frames"], cfg["feature_size"]), name="frames")
    mask = keras.Input(shape=(cfg["num_frames"],), name="mask")
    x = frames
    for i, units in enumerate(cfg["frame_mlp"]):
        x = keras.layers.Dense(units, activation="relu", name=f"frame_mlp_{i}")(x)
    if cfg["frame_mlp_batch_norm"]:
        # Centres the non-negative ReLU features, which a VLAD's residuals need to learn fast;
        # the statistics are over the real frames only.
        x = keras.layers.BatchNormalization(name="frame_mlp_norm")(x, mask=mask)  # mask: 1 real, 0 pad
    aggregator = _make_aggregator(cfg["family"], cfg["aggregator"])
    outputs = {}
    if cfg["intermediate"]:
        x, descriptor = aggregator(x, mask=mask, return_descriptor=True)
        outputs["intermediate"] = keras.layers.Activation("linear", dtype="float32", name="intermediate")(descriptor)
    else:
        x = aggregator(x, mask=mask)
    if cfg["aggregator_dropout"]:
        x = keras.layers.Dropout(cfg["aggregator_dropout"], name="aggregator_dropout")(x)
    if cfg["hidden_size"]:
        x = keras.layers.Dense(cfg["hidden_size"], activation="relu", name="hidden")(x)
        if cfg["hidden_batch_norm"]:
            x = keras.layers.BatchNormalization(name="hidden_norm")(x)
    if cfg["embedding_size"]:
        x = keras.layers.Dense(cfg["embedding_size"], name="embedding_projection")(x)
    embedding = keras.layers.Activation("linear", dtype="float32", name="embedding")(x)
    x = embedding
    if cfg["dropout"]:
        x = keras.layers.Dropout(cfg["dropout"], name="dropout")(x)
    if cfg["context_gating"]:
        x = kd_layers.ContextGating(name="context_gating")(x)
    head = cfg["head"]
    probs = kd_layers.MixtureOfExperts(
        cfg["num_classes"], num_mixtures=head["num_mixtures"], l2=head["l2"], name="moe"
    )(x)
    predictions = keras.layers.Activation("linear", dtype="float32", name="predictions")(probs)
    outputs.update(embedding=embedding, predictions=predictions)
    return VideoClassifier(inputs={"frames": frames, "mask": mask}, outputs=outputs, name=cfg["name"])


def build_ensemble(members: Sequence[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model that averages the predictions of several kdzoo models on the same frames.

    A teacher for distillation (`kdzoo.Distiller`): its ``"predictions"`` are the mean of
    the members' (batch, num_classes) probabilities, its ``"embedding"`` the concatenation
    of theirs (batch, sum of their embedding widths). The members keep their weights (the
    Distiller freezes a serial teacher) and must share the frame axis and feature width.

    Returns a `VideoClassifier` with the kdzoo model contract (inputs ``{"frames", "mask"}``).
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"An ensemble needs at least two models. Received: {len(members)}")
    shapes = {frame_shape(m) for m in members}
    classes = {int(m.output["predictions"].shape[-1]) for m in members}
    if len(shapes) != 1 or len(classes) != 1:
        raise ValueError(
            "The ensemble's models must take the same frames (num_frames, feature_size) and predict the same "
            f"classes. Received frames {sorted(shapes, key=str)}, classes {sorted(classes)}."
        )
    model_names = [m.name for m in members]
    if len(set(model_names)) != len(model_names):
        raise ValueError(f"The ensemble's models need distinct names. Received: {model_names}")
    num_frames, feature_size = shapes.pop()
    frames = keras.Input(shape=(num_frames, feature_size), name="frames")
    mask = keras.Input(shape=(num_frames,), name="mask")
    outputs = [m({"frames": frames, "mask": mask}) for m in members]
    embedding = keras.layers.Concatenate(name="embedding_concat")([o["embedding"] for o in outputs])
    predictions = keras.layers.Average(name="predictions_mean")([o["predictions"] for o in outputs])
    return VideoClassifier(
        inputs={"frames": frames, "mask": mask},
        outputs={
            "embedding": keras.layers.Activation("linear", dtype="float32", name="embedding")(embedding),
            "predictions": keras.layers.Activation("linear", dtype="float32", name="predictions")(predictions),
        },
        name=name,
    )


def embedding_size(model: keras.Model) -> int:
    """Width of a kdzoo model's video embedding E."""
    return int(model.get_layer("embedding").output.shape[-1])


def frame_shape(model: keras.Model) -> tuple[int | None, int]:
    """``(num_frames, feature_size)`` of a kdzoo model's frames input; num_frames is None
    when any count works."""
    shape = model.get_layer("frames").output.shape
    return shape[1], int(shape[2])
