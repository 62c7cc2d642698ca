"""What a dataset's records look like: feature names/widths, classes, frame cap."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kdzoo.data.quantization import VARIANTS

__all__ = ["FeatureSpec", "DatasetSpec", "YT8M_FRAME", "YT8M_VIDEO", "AUDIOSET", "PRESETS", "get_spec"]


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One per-frame feature: its key in the record and its width.

    Frame-level (SequenceExample) features are stored as ``width`` uint8 bytes
    per frame; video-level (Example) features as ``width`` floats.
    """

    name: str
    width: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"FeatureSpec.name must be a non-empty string, got {self.name!r}.")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width <= 0:
            raise ValueError(f"FeatureSpec {self.name!r}: width must be a positive int, got {self.width!r}.")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Layout of a TFRecord dataset.

    Attributes:
      features: the features, concatenated in this order along the last axis.
      num_classes: label vocabulary size; labels must be in [0, num_classes).
      max_frames: frames kept per video (longer videos are truncated to their
        first ``max_frames`` frames; shorter ones are zero-padded). 1 for
        video-level data.
      id_key: context key of the video id (bytes).
      label_key: context key of the int64 label list, or None for unlabelled
        data (labels are then all zero).
      frame_level: True for SequenceExample with per-frame uint8 bytes, False
        for Example with one float vector per feature.
      dequantize: "yt8m", "starter" or None (see ``kdzoo.data.quantization``);
        only used for frame-level data.
    """

    features: tuple[FeatureSpec, ...]
    num_classes: int
    max_frames: int
    id_key: str = "id"
    label_key: str | None = "labels"
    frame_level: bool = True
    dequantize: str | None = "yt8m"

    def __post_init__(self):
        feats = tuple(_to_feature(f) for f in self.features)
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

    @property
    def feature_size(self) -> int:
        """D: the sum of the feature widths."""
        return sum(f.width for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly)."""
        out = dataclasses.asdict(self)
        out["features"] = [{"name": f.name, "width": f.width} for f in self.features]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DatasetSpec":
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
    if isinstance(f, (list, tuple)) and len(f) == 2:
        return FeatureSpec(str(f[0]), f[1])
    raise ValueError(f"Cannot make a FeatureSpec from {f!r}; use {{'name': ..., 'width': ...}}.")


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
    """A DatasetSpec from a preset name, a dict, or a DatasetSpec.

    A dict is either a full ``DatasetSpec.to_dict()`` or ``{"preset": name,
    **overrides}``, e.g. ``{"preset": "audioset", "max_frames": 5}``.
    """
    if isinstance(spec, DatasetSpec):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key not in PRESETS:
            raise ValueError(f"Unknown dataset spec {spec!r}. Expected one of {', '.join(PRESETS)}.")
        return PRESETS[key]
    if isinstance(spec, Mapping):
        if "preset" in spec:
            overrides = {k: v for k, v in spec.items() if k != "preset"}
            base = get_spec(spec["preset"])
            return DatasetSpec.from_dict({**base.to_dict(), **overrides})
        return DatasetSpec.from_dict(spec)
    raise ValueError(f"Cannot make a DatasetSpec from {type(spec).__name__}; expected a name, dict or DatasetSpec.")
