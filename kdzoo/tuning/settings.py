"""The ``tune:`` section of a zoo config, parsed and checked into `TuneSettings`.

A tune config is a zoo config (`kdzoo.zoo.config`) plus a ``tune:`` section::

    tune:
      tuner: bayesian              # bayesian | hyperband | random
      max_trials: 8                # bayesian/random; hyperband sizes itself from `epochs`
      k: [1, 2, 3, 5]              # hp.Choice("k"): the student's frame count (default: the config's k)
      samplers: [uniform, random]  # hp.Choice("sampler") (default: the config's sampler)
      lambda: 0.1                  # weight of the cost term in the objective
      learning_rate: [1e-4, 1e-2]  # hp.Float, log sampling (a number fixes it)
      representation_weight: [0, 0.01]   # [lo, hi] -> hp.Float; a number -> fixed;
      prediction_weight: [0.5, 2.0]      #   {values: [...]} -> hp.Choice
      epochs: 5                    # per trial (hyperband: max epochs); default: student_epochs
      teacher_epochs: null         # default: the config's training epochs
      project_name: null           # default: <family>.<dataset>
      seed: null                   # default: the config's training seed

Defaults come from the rest of the config (its k, sampler, distillation weights, epochs,
batch size and seed); `ZooConfig.tune` holds the section as written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from kdzoo.sampling import SAMPLERS
from kdzoo.zoo.config import ZooConfig

TUNERS = ("bayesian", "hyperband", "random")
_TUNE_KEYS = {
    "tuner", "max_trials", "k", "samplers", "lambda", "learning_rate", "representation_weight",
    "prediction_weight", "epochs", "teacher_epochs", "project_name", "seed", "hyperband_factor",
    "batch_size", "tensorboard",
}


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """The parsed ``tune:`` section (see the module docstring)."""

    tuner: str
    max_trials: int
    ks: tuple[int, ...]
    samplers: tuple[str, ...]
    lam: float
    learning_rate: Any
    representation_weight: Any
    prediction_weight: Any
    epochs: int
    teacher_epochs: int | None
    project_name: str
    seed: int
    batch_size: int
    hyperband_factor: int = 3
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lambda"] = out.pop("lam")
        out["k"] = list(out.pop("ks"))
        out["samplers"] = list(self.samplers)
        return out


def _check_range(name: str, value: Any, *, log: bool = False) -> Any:
    """Validates a hyperparameter spec: number | [lo, hi] | {values: [...]} | {min, max[, sampling]}."""
    if isinstance(value, bool):
        raise ValueError(f"tune.{name}: expected a number, [min, max] or {{values: [...]}}. Received: {value!r}")
    if isinstance(value, (int, float)):
        if log and value <= 0:
            raise ValueError(f"tune.{name} must be > 0. Received: {value!r}")
        return float(value)
    if isinstance(value, Mapping):
        if "values" in value:
            values = [float(v) for v in value["values"]]
            if not values:
                raise ValueError(f"tune.{name}.values must not be empty.")
            return {"values": values}
        if {"min", "max"} <= set(value):
            lo, hi = float(value["min"]), float(value["max"])
            sampling = value.get("sampling", "log" if log else "linear")
            out = _check_range(name, [lo, hi], log=sampling == "log")
            return out if isinstance(out, float) else {"min": lo, "max": hi, "sampling": sampling}
        raise ValueError(f"tune.{name}: expected {{values: [...]}} or {{min: .., max: ..}}. Received: {value!r}")
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            raise ValueError(f"tune.{name}: expected [min, max] with min <= max. Received: {value!r}")
        if log and lo <= 0:
            raise ValueError(f"tune.{name}: a log-sampled range needs min > 0. Received: {value!r}")
        if lo == hi:
            return lo
        return {"min": lo, "max": hi, "sampling": "log" if log else "linear"}
    raise ValueError(f"tune.{name}: expected a number, [min, max] or {{values: [...]}}. Received: {value!r}")


def parse_tune_section(raw: Mapping[str, Any] | None, config: ZooConfig) -> TuneSettings:
    """`TuneSettings` from a ``tune:`` mapping, with defaults taken from `config`."""
    raw = dict(raw or {})
    unknown = set(raw) - _TUNE_KEYS
    if unknown:
        raise ValueError(f"Unknown tune keys {sorted(unknown)}. Expected a subset of {sorted(_TUNE_KEYS)}.")
    tuner = str(raw.get("tuner", "bayesian")).lower()
    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}. Expected one of {TUNERS}.")
    max_frames = config.spec.max_frames
    ks = tuple(raw.get("k") or config.ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_frames for k in ks):
        raise ValueError(f"tune.k: expected frame counts in 1..{max_frames}. Received: {raw.get('k')!r}")
    ks = tuple(sorted(set(ks)))
    samplers = raw.get("samplers") or [config.sampler]
    if isinstance(samplers, str):
        samplers = [samplers]
    bad = [s for s in samplers if s not in SAMPLERS]
    if bad:
        raise ValueError(f"tune.samplers: unknown samplers {bad}. Expected names from {SAMPLERS}.")
    samplers = tuple(dict.fromkeys(samplers))

    def positive_int(key, default, allow_none=False):
        value = raw.get(key, default)
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"tune.{key}: expected a positive integer. Received: {value!r}")
        return value

    lam = raw.get("lambda", 0.1)
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"tune.lambda: expected a number >= 0. Received: {lam!r}")
    distill = config.distillation
    t = config.training
    return TuneSettings(
        tuner=tuner,
        max_trials=positive_int("max_trials", 8),
        ks=ks,
        samplers=samplers,
        lam=float(lam),
        learning_rate=_check_range("learning_rate", raw.get("learning_rate", [1e-4, 1e-2]), log=True),
        representation_weight=_check_range(
            "representation_weight", raw.get("representation_weight", distill.get("representation_weight", 0.01))
        ),
        prediction_weight=_check_range(
            "prediction_weight", raw.get("prediction_weight", distill.get("prediction_weight", 1.0))
        ),
        epochs=positive_int("epochs", int(t.get("student_epochs") or t["epochs"])),
        teacher_epochs=positive_int("teacher_epochs", None, allow_none=True),
        project_name=str(raw.get("project_name") or f"{config.family}.{config.dataset}"),
        seed=int(raw["seed"]) if raw.get("seed") is not None else int(t["seed"]),
        batch_size=positive_int("batch_size", int(t["batch_size"])),
        hyperband_factor=positive_int("hyperband_factor", 3),
        tensorboard=bool(raw.get("tensorboard", True)),
    )


def load_tune_config(source: str | os.PathLike | Mapping[str, Any] | ZooConfig) -> tuple[ZooConfig, TuneSettings]:
    """The `ZooConfig` of a tune config (a YAML path, a dict or a parsed config) and its
    `TuneSettings`, parsed from `ZooConfig.tune`."""
    if isinstance(source, ZooConfig):
        config = source
    elif isinstance(source, Mapping):
        config = ZooConfig.from_dict(source)
    else:
        config = ZooConfig.from_file(source)
    return config, parse_tune_section(config.tune, config)
