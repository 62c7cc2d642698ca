"""Where a reproduction's data is, how it is split, and which recipe fingerprint its rows carry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from kdzoo import training
from kdzoo.data import get_spec, make_dataset
from kdzoo.reproduce.grid import DEFAULT_WEIGHTS
from kdzoo.zoo.config import ZooConfig

# The data's location, the k list, the elastic student, the `kdzoo tune` search space and the
# zoo's own seed list change no row.
# The grid's rows learn from the recipe's own teacher (the paper's setting): distill_from does not apply.
_NOT_FINGERPRINTED = ("path", "data", "frames", "ks", "elastic", "tune", "distill_from")


def config_fingerprint(config: ZooConfig) -> str:
    """Hash of everything in the recipe that changes a trained row."""
    # Empty sections (a field added with an empty default) do not change the hash.
    doc = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
           if f.name not in _NOT_FINGERPRINTED and getattr(config, f.name) not in (None, {}, (), [])}
    doc["spec"] = config.spec.to_dict()
    # A training key left at None falls back to another key: adding such a default changes no row.
    doc["training"] = {k: v for k, v in config.training.items()
                       if k not in ("seeds", "seed_frames", "seed_k") and v is not None}
    # A row that names a loss the recipe weighs 0 trains it at the default weight, so a weight of
    # 0 (the zoo students leave that loss out) and the default train the same rows.
    if "distillation" in doc:
        doc["distillation"] = {k: (DEFAULT_WEIGHTS[k] if k in DEFAULT_WEIGHTS and not v else v)
                               for k, v in config.distillation.items()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _absolute(pattern: str | None) -> str | None:
    if pattern is None or "://" in pattern:
        return pattern
    return os.path.abspath(pattern)


def reproduce_config(path: str, *, data: str | None = None, eval_data: str | None = None,
                     validation_data: str | None = None, spec: str | None = None) -> ZooConfig:
    """A zoo recipe, optionally moved onto the user's data (`data`, `eval_data`, `spec`).

    `spec` is anything `kdzoo.data.get_spec` reads (a preset name or a YAML/JSON spec file);
    with it, the recipe's models are built for the spec's frame width, classes and frames.
    """
    config = ZooConfig.from_file(path)
    if spec is not None:
        if data is None:
            raise ValueError("--spec describes your own files: pass them with --data and --eval-data.")
        new = get_spec(spec)
        config = dataclasses.replace(
            config, spec=new, ks=tuple(k for k in config.ks if k <= new.max_frames) or (1,)
        )
    if data is not None or eval_data is not None or validation_data is not None:
        if data is None or eval_data is None:
            raise ValueError("--data needs --eval-data too (the rows are evaluated on held-out files).")
        config = dataclasses.replace(config, data={
            **config.data, "train": _absolute(data), "eval": _absolute(eval_data),
            "validation": _absolute(validation_data),
        })
    return config


@dataclasses.dataclass
class Setting:
    """Where a run's data is and how it is split: from a zoo config and the command line."""

    config: ZooConfig
    data_dir: str | os.PathLike | None
    train: training.TrainingData  # resolved and counted once per run
    eval_files: list[str]
    validation_files: list[str] | None  # None: training's hash split of the train files

    @classmethod
    def resolve(cls, config: ZooConfig, data_dir=None) -> "Setting":
        data = config.data
        validation = data.get("validation")
        return cls(
            config, data_dir, training.TrainingData.resolve(config, data_dir),
            training.resolve_data(data.get("eval"), data_dir, "eval"),
            training.resolve_data(validation, data_dir, "validation") if validation else None,
        )

    @property
    def train_files(self) -> list[str]:
        return list(self.train.files)

    def datasets(self, seed: int):
        """``(train, validation)`` batches: `kdzoo.training.datasets`' split, or the given validation files."""
        batch = int(self.config.training["batch_size"])
        if self.validation_files is None:
            train, val, _ = training.datasets(self.config, self.data_dir, batch, seed=seed, data=self.train)
            return train, val
        spec = self.config.spec
        return (make_dataset(self.train_files, spec, batch, shuffle=True, seed=seed, cache=True),
                make_dataset(self.validation_files, spec, batch, cache=True))

    def capacity(self) -> int:
        """The Distiller's metric buffers hold a whole epoch: every training record (+1)."""
        return self.train.metric_capacity

    def steps_per_epoch(self) -> int:
        """Training batches per epoch (approximate when the validation split is by hash)."""
        t = self.config.training
        fraction = 0.0 if self.validation_files is not None else float(t["validation_fraction"])
        return self.train.steps_per_epoch(int(t["batch_size"]), fraction)

    def validation_note(self) -> str:
        if self.validation_files is None:
            return f"{self.config.training['validation_fraction']:.0%} of the train files, by hash of the video id"
        return f"{len(self.validation_files)} validation file(s) given on the command line"
