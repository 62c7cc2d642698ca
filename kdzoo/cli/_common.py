"""Arguments and helpers shared by several commands (no TensorFlow import at module level)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

WEIGHTS_HELP = (
    "pretrained (the shipped, sha256-verified weights; an error if there are none), "
    "default (pretrained where shipped, else untrained with a warning), none (untrained), "
    "or a .weights.h5 / .keras file with the same architecture"
)


def add_weights_argument(parser: argparse.ArgumentParser, default: str = "default") -> None:
    parser.add_argument("--weights", default=default, metavar="pretrained|default|none|PATH",
                        help=f"{WEIGHTS_HELP} (default: {default})")


def add_model_argument(parser: argparse.ArgumentParser, what: str = "the model") -> None:
    parser.add_argument("name", metavar="MODEL",
                        help=f"{what}: a zoo name (see `kdzoo list`) or a .keras model file")


def add_spec_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", default=None, metavar="PRESET|FILE",
                        help="dataset spec: a preset name (audioset, yt8m_frame) or a YAML/JSON spec file "
                             "(default: the zoo entry's)")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch")


def weights_value(value: str | None):
    """The `kdzoo.load` weights argument for a --weights value ("none" -> None)."""
    if value is None or str(value).lower() == "none":
        return None
    return value


def is_model_file(name: str) -> bool:
    return str(name).endswith(".keras")


@dataclasses.dataclass
class ModelSource:
    """A model named on the command line, with what the commands need to know about it."""

    name: str
    model: Any  # keras.Model
    k: int | None  # the frames it samples (None: it sees every frame, with a mask)
    sampler: str
    spec: Any  # kdzoo.data.DatasetSpec or None when not known
    entry: Any = None  # kdzoo.zoo.ZooEntry for a zoo name


def load_model_source(name: str, weights: str | None = "default", spec: str | None = None,
                      sampler: str | None = None, k: int | None = None) -> ModelSource:
    """A zoo name or a ``.keras`` file -> `ModelSource` (sampler/spec from the card unless given).

    `k` fixes the frame budget of an elastic student (required for one).
    """
    from kdzoo.data import get_spec
    from kdzoo.models import frame_shape
    from kdzoo.zoo import registry

    user_spec = get_spec(spec) if spec is not None else None
    if is_model_file(name):
        if weights not in (None, "default", "pretrained"):
            raise ValueError(f"--weights {weights} applies to zoo names; {name} already holds its weights.")
        model = registry.load_model_file(name)
        k = k or frame_shape(model)[0]
        if user_spec is not None and k == user_spec.max_frames:
            k = None  # a teacher: it sees every frame
        return ModelSource(os.path.basename(name), model, k, sampler or "uniform", user_spec)
    reg = registry.get_registry()
    entry = reg.resolve(name)
    if entry.elastic and k is None:
        raise ValueError(f"{entry.name} takes any number of frames: fix its budget with --k K.")
    model = reg.load(entry.name, weights=weights_value(weights), k=k)
    k = (k or entry.num_frames) if entry.role == "student" else None
    return ModelSource(entry.name, model, k, sampler or entry.config.sampler, user_spec or entry.config.spec,
                       entry)


def require_spec(source: ModelSource, command: str):
    if source.spec is None:
        raise ValueError(f"kdzoo {command} {source.name} needs --spec PRESET|FILE: a .keras file does not say "
                         "how its data is laid out.")
    return source.spec


def console():
    from rich.console import Console

    return Console()
