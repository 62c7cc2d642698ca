"""What a dataset's records look like: feature names, widths and dtypes, classes, frame cap.

``get_spec`` is the one way to get a ``DatasetSpec``: from a preset name, a
``DatasetSpec``, a dict or a YAML/JSON spec file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import yaml

from kdzoo.data.quantization import VARIANTS

__all__ = ["FeatureSpec", "DatasetSpec", "YT8M_FRAME", "YT8M_VIDEO", "AUDIOSET", "PRESETS", "DTYPES", "get_spec"]

#: How a feature's values are stored: ``uint8`` bytes (quantised; one ``width``-byte
#: string per frame) or ``float32`` (a float list of ``width`` values per frame).
DTYPES = ("uint8", "float32")
SPEC_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One per-frame feature: its key in the record, its width and how it is stored.

    ``dtype="uint8"``: each frame is one ``width``-byte string, dequantised with
    the spec's ``dequantize`` variant. ``dtype="float32"``: each frame is a float
    list of ``width`` values, used as stored. ``None`` (the default) means uint8
    for frame-level specs and float32 for video-level specs (the YouTube-8M
    layouts).
    """

    name: str
    width: int
    dtype: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"FeatureSpec.name must be a non-empty string, got {self.name!r}.")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width <= 0:
            raise ValueError(f"FeatureSpec {self.name!r}: width must be a positive int, got {self.width!r}.")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"FeatureSpec {self.name!r}: dtype must be one of {', '.join(DTYPES)} (or None), "
                             f"got {self.dtype!r}.")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Layout of a TFRecord dataset.

    Attributes:
      features: the features (``FeatureSpec``), concatenated in this order along
        the last axis.
      num_classes: label vocabulary size; labels must be in [0, num_classes).
      max_frames: frames kept per video (longer videos are truncated to their
        first ``max_frames`` frames; shorter ones are zero-padded). 1 for
        video-level data.
      id_key: context key of the video id (bytes).
      label_key: context key of the int64 label list, or None for unlabelled
        data (labels are then all zero).
      frame_level: True for SequenceExample records (a feature list per
        feature, one entry per frame), False for Example records (one float
        vector per feature, i.e. one frame).
      dequantize: "yt8m", "starter" or None (see ``kdzoo.data.quantization``);
        applied to uint8 features only (float32 features are used as stored).

    Example (12 float channels per frame, up to 32 frames, 9 classes)::

        DatasetSpec(features=[{"name": "emb", "width": 12, "dtype": "float32"}],
                    num_classes=9, max_frames=32, id_key="clip")
    """

    features: tuple[FeatureSpec, ...]
    num_classes: int
    max_frames: int
    id_key: str = "id"
    label_key: str | None = "labels"
    frame_level: bool = True
    dequantize: str | None = "yt8m"

    def __post_init__(self):
        default_dtype = "uint8" if self.frame_level else "float32"
        feats = tuple(_to_feature(f) for f in self.features)
        feats = tuple(f if f.dtype else dataclasses.replace(f, dtype=default_dtype) for f in feats)
        object.__setattr__(self, "features", feats)
        if not feats:
            raise ValueError("DatasetSpec.features must not be empty.")
        names = [f.name for f in feats]
        if len(set(names)) != len(names):
            raise ValueError(f"DatasetSpec.features has duplicate names: {names}.")
        for field in ("num_classes", "max_frames"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"DatasetSpec.{field} must be a positive int, got {value!r}.")
        if not self.frame_level and self.max_frames != 1:
            raise ValueError(f"Video-level specs have exactly one frame; got max_frames={self.max_frames}.")
        if self.dequantize is not None and self.dequantize not in VARIANTS:
            raise ValueError(
                f"Unknown dequantize variant {self.dequantize!r}. Expected one of {', '.join(VARIANTS)} or None."
            )
        if not isinstance(self.id_key, str) or not self.id_key:
            raise ValueError(f"DatasetSpec.id_key must be a non-empty string, got {self.id_key!r}.")
        if self.label_key is not None and (not isinstance(self.label_key, str) or not self.label_key):
            raise ValueError(f"DatasetSpec.label_key must be a non-empty string or None, got {self.label_key!r}.")
        if not self.frame_level:
            wrong = [f.name for f in feats if f.dtype != "float32"]
            if wrong:
                raise ValueError(f"Video-level specs read float32 features (one float list per video); "
                                 f"features {wrong} are declared uint8.")

    @property
    def feature_size(self) -> int:
        """D: the sum of the feature widths."""
        return sum(f.width for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly)."""
        out = dataclasses.asdict(self)
        out["features"] = [{"name": f.name, "width": f.width, "dtype": f.dtype} for f in self.features]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DatasetSpec":
        if not isinstance(d, Mapping):
            raise ValueError(f"A DatasetSpec dict must be a mapping, got {type(d).__name__}: {d!r}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Unknown DatasetSpec keys {sorted(unknown)}; expected a subset of {sorted(fields)}.")
        return cls(**dict(d))


def _to_feature(f) -> FeatureSpec:
    if isinstance(f, FeatureSpec):
        return f
    if isinstance(f, Mapping):
        return FeatureSpec(**f)
    if isinstance(f, (list, tuple)) and len(f) in (2, 3):
        return FeatureSpec(str(f[0]), *f[1:])
    raise ValueError(f"Cannot make a FeatureSpec from {f!r}; use {{'name': ..., 'width': ..., 'dtype': ...}}.")


YT8M_FRAME = DatasetSpec(
    features=(FeatureSpec("rgb", 1024), FeatureSpec("audio", 128)),
    num_classes=3862,
    max_frames=300,
)
YT8M_VIDEO = DatasetSpec(
    features=(FeatureSpec("mean_rgb", 1024), FeatureSpec("mean_audio", 128)),
    num_classes=3862,
    max_frames=1,
    frame_level=False,
    dequantize=None,
)
AUDIOSET = DatasetSpec(
    features=(FeatureSpec("audio_embedding", 128),),
    num_classes=527,
    max_frames=10,
    id_key="video_id",
)

PRESETS = {"yt8m": YT8M_FRAME, "yt8m_video": YT8M_VIDEO, "audioset": AUDIOSET}


def get_spec(spec) -> DatasetSpec:
    """A DatasetSpec from a preset name, a DatasetSpec, a dict or a spec file.

    * a preset name: one of ``PRESETS`` (case-insensitive);
    * a dict: a full ``DatasetSpec.to_dict()`` or ``{"preset": name, **overrides}``,
      e.g. ``{"preset": "audioset", "max_frames": 5}``;
    * a path (str or ``os.PathLike``) to a ``.yaml``/``.yml``/``.json`` file
      holding such a dict (local, ``gs://``, anything ``tf.io.gfile`` reads).
    """
    if isinstance(spec, DatasetSpec):
        return spec
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _is_spec_path(spec)):
        return _read_spec_file(os.fspath(spec))
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key not in PRESETS:
            raise ValueError(f"Unknown dataset spec {spec!r}. Expected one of {', '.join(PRESETS)}, "
                             f"or a spec file ({'/'.join(SPEC_FILE_SUFFIXES)}).")
        return PRESETS[key]
    if isinstance(spec, Mapping):
        if "preset" in spec:
            overrides = {k: v for k, v in spec.items() if k != "preset"}
            base = get_spec(spec["preset"])
            return DatasetSpec.from_dict({**base.to_dict(), **overrides})
        return DatasetSpec.from_dict(spec)
    raise ValueError(f"Cannot make a DatasetSpec from {type(spec).__name__}; expected a preset name, a dict, "
                     f"a DatasetSpec or a spec file path.")


def _is_spec_path(text: str) -> bool:
    return text.strip().lower().endswith(SPEC_FILE_SUFFIXES) or "/" in text or os.sep in text


def _read_spec_file(path: str) -> DatasetSpec:
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Dataset spec file not found: {path!r}.")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    try:
        content = json.loads(text) if path.lower().endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not a valid {'JSON' if path.lower().endswith('.json') else 'YAML'} "
                         f"spec file: {e}") from e
    if not isinstance(content, Mapping):
        raise ValueError(f"{path}: a spec file holds a mapping (features, num_classes, max_frames, ...), "
                         f"found {type(content).__name__}.")
    try:
        return get_spec(dict(content))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e
