"""Zoo configs: one YAML file per family and dataset describes a teacher and its students.

A zoo config (``zoo_configs/<family>.<dataset>.yaml``) is the single source of truth for
the models it names: ``<family>_teacher.<dataset>`` and ``<family>_student_k<k>.<dataset>``
for every k in ``k``. Keys::

    family: netvlad                 # kdzoo.models.FAMILIES
    dataset: audioset               # a kdzoo.data preset, also the name's tag
    name: my_clips                  # optional: the names' tag (default: the preset's name)
    k: [1, 2, 3, 5]                 # the students' frame counts k
    sampler: uniform                # kdzoo.sampling.SAMPLERS: how a student's k frames are chosen at evaluation
    train_sampler: random           # optional: how they are chosen in training steps (default: sampler)
    elastic: {k: [1, 10]}           # optional: also train <family>_student_elastic (k drawn per step)
    model: {...}                    # build_model keys shared by teacher and students
    teacher: {...}                  # overrides for the teacher
    student: {...}                  # overrides for the students
    students: {2: {...}}            # optional: overrides for the student with that k only
    distillation: {...}             # Distiller keyword arguments (mode, loss weights)
    teacher_distill_from:           # optional: the teacher also learns from the mean prediction of
      - {config: zoo_configs/netvlad.audioset.yaml, weights: pretrained/netvlad_teacher.audioset}
                                    #   these trained teachers (a recipe and a zoo entry folder or
                                    #   .weights.h5 each; paths relative to the working directory)
    distill_from: nextvlad_teacher.audioset  # optional: the students learn from this zoo entry (a
                                    #   stronger teacher of another family, say) instead of the
                                    #   recipe's own teacher, which is still trained and shipped
    training: {...}                 # epochs, student_epochs, batch_size, learning_rate, student_learning_rate, validation_fraction, patience
                                    #   teacher_train_k: [low, high]: the teacher trains on a random subset of
                                    #   low..high frames each step (evaluated on all of them)
                                    #   teacher_mixup: alpha > 0: the teacher trains on mixup batches
    data: {train: GLOB, eval: GLOB} # relative to --data-dir, or absolute / gs:// paths
    tune: {...}                     # optional: the `kdzoo tune` search space (`ZooConfig.tune`; parsed
                                    #   into settings by kdzoo.tuning.parse_tune_section)

Overrides apply in the order ``model`` < ``teacher`` / ``student`` < ``students[k]``; the
``aggregator`` and ``head`` mappings are merged key by key, every other key replaced. So a
student can have a smaller head than its teacher (``student: {aggregator: {output_size:
72}}``; the Distiller's projection maps its embedding to the teacher's width for L_rep),
and an H-RNN student with k below the block size can use a block of k, so that its cost
falls with k (``students: {2: {aggregator: {block_size: 2}}}``).
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from kdzoo.data import DatasetSpec, get_spec
from kdzoo.distillation.mixup import check_mixup_alpha
from kdzoo.models import FAMILIES
from kdzoo.sampling import SAMPLERS
from kdzoo.zoo import names

TRAINING_DEFAULTS = {
    "epochs": 20,
    "student_epochs": None,  # defaults to epochs
    "batch_size": 256,
    "learning_rate": 1e-3,
    "student_learning_rate": None,  # defaults to learning_rate
    "validation_fraction": 0.1,
    "patience": 3,
    "warmup_epochs": 0,  # > 0: linear warm-up then cosine decay of the learning rate
    "teacher_train_k": None,  # [low, high]: the teacher trains on a random subset of low..high frames per step
    "teacher_mixup": 0.0,  # alpha > 0: the teacher trains on mixup batches (`Distiller(mixup_alpha=...)`)
    "seed": 0,
    "seeds": None,  # e.g. [0, 1, 2]: the students whose k is in seed_k are trained once per seed
    "seed_k": [],
}

_KEYS = {
    "family", "dataset", "name", "k", "sampler", "train_sampler", "elastic", "model", "teacher", "student", "students", "distillation", "training",
    "data", "tune", "distill_from", "teacher_distill_from",
}
# Model keys whose overrides are merged key by key instead of replaced.
_MERGED_KEYS = ("aggregator", "head")


def _frame_span(span: Any, key: str, max_frames: int, where: str, received: str) -> tuple[int, int]:
    """``(low, high)`` from a ``[low, high]`` frame-count span; ValueError naming `key` otherwise."""
    if (
        not isinstance(span, (list, tuple)) or len(span) != 2
        or any(not isinstance(k, int) or isinstance(k, bool) for k in span)
        or not 1 <= span[0] <= span[1] <= max_frames
    ):
        raise ValueError(f"Expected '{key}' with 1 <= low <= high <= {max_frames}{where}. Received: {received}")
    return int(span[0]), int(span[1])


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in copy.deepcopy(dict(overrides)).items():
        if key in _MERGED_KEYS and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@dataclasses.dataclass(frozen=True)
class ZooConfig:
    """A parsed zoo config file. Build one with `ZooConfig.from_file` or `from_dict`."""

    family: str
    dataset: str
    spec: DatasetSpec
    ks: tuple[int, ...]  # the students' k (YAML key ``k``)
    sampler: str
    train_sampler: str
    elastic: tuple[int, int] | None
    model: Mapping[str, Any]
    teacher: Mapping[str, Any]
    student: Mapping[str, Any]
    students: Mapping[int, Mapping[str, Any]]
    distillation: Mapping[str, Any]
    training: Mapping[str, Any]
    data: Mapping[str, Any]
    tune: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the `kdzoo tune` search space, as written
    path: str | None = None
    distill_from: str | None = None  # a zoo entry the students learn from instead of the recipe's teacher
    teacher_distill_from: tuple[Mapping[str, str], ...] = ()  # trained teachers the teacher learns from

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], path: str | None = None) -> "ZooConfig":
        where = f" in {path}" if path else ""
        if not isinstance(raw, Mapping):
            raise ValueError(f"Expected a mapping at the top of the zoo config{where}.")
        unknown = set(raw) - _KEYS
        if "frames" in unknown:
            raise ValueError(f"The zoo config key 'frames' is now 'k' (the students' frame counts){where}.")
        if unknown:
            raise ValueError(f"Unknown zoo config keys {sorted(unknown)}{where}. Expected {sorted(_KEYS)}.")
        family = raw.get("family")
        if family not in FAMILIES:
            raise ValueError(f"Unknown family {family!r}{where}. Expected one of {FAMILIES}.")
        dataset = raw.get("dataset")
        if isinstance(dataset, str) and path and _relative_spec_file(dataset):
            # A spec file named in a config is relative to the config's folder.
            beside = pathlib.Path(path).parent / dataset
            dataset = str(beside) if beside.is_file() else dataset
        spec = get_spec(dataset)
        tag = _tag(raw.get("name"), dataset, path)
        ks = tuple(raw.get("k") or ())
        if not ks or any(not isinstance(k, int) or isinstance(k, bool) or not 0 < k <= spec.max_frames for k in ks):
            raise ValueError(
                f"Expected 'k' to list student frame counts in 1..{spec.max_frames}{where}. "
                f"Received: k={raw.get('k')!r}"
            )
        sampler = raw.get("sampler", "uniform")
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}{where}. Expected one of {SAMPLERS}.")
        train_sampler = raw.get("train_sampler") or sampler
        if train_sampler not in SAMPLERS:
            raise ValueError(f"Unknown train_sampler {train_sampler!r}{where}. Expected one of {SAMPLERS}.")
        elastic = raw.get("elastic")
        if elastic is not None:
            span = elastic.get("k") if isinstance(elastic, Mapping) else None
            elastic = _frame_span(span, "elastic: {k: [low, high]}", spec.max_frames, where, f"elastic={elastic!r}")
        students = dict(raw.get("students") or {})
        for k, overrides in students.items():
            if k not in ks or not isinstance(overrides, Mapping):
                raise ValueError(
                    f"Expected 'students' to map student frame counts from 'k' {list(ks)} to model "
                    f"overrides{where}. Received: {k!r}: {overrides!r}"
                )
        tune = raw.get("tune") or {}
        if not isinstance(tune, Mapping):
            raise ValueError(f"Expected 'tune' to be a mapping (the `kdzoo tune` search space){where}. Received: {tune!r}")
        training = dict(TRAINING_DEFAULTS)
        training.update(raw.get("training") or {})
        span = training["teacher_train_k"]
        if span is not None:
            training["teacher_train_k"] = list(_frame_span(
                span, "training: {teacher_train_k: [low, high]}", spec.max_frames, where, f"teacher_train_k={span!r}"))
        training["teacher_mixup"] = check_mixup_alpha(training["teacher_mixup"], "training.teacher_mixup", where)
        distill_from = raw.get("distill_from")
        if distill_from is not None and (not isinstance(distill_from, str) or not distill_from.strip()):
            raise ValueError(f"Expected 'distill_from' to name a zoo entry, e.g. nextvlad_teacher.audioset{where}. "
                             f"Received: distill_from={distill_from!r}")
        teacher_distill_from = raw.get("teacher_distill_from") or []
        if not isinstance(teacher_distill_from, (list, tuple)) or any(
            not isinstance(m, Mapping) or set(m) != {"config", "weights"}
            or not all(isinstance(v, str) and v.strip() for v in m.values())
            for m in teacher_distill_from
        ):
            raise ValueError(
                f"Expected 'teacher_distill_from' to list trained teachers as {{config: RECIPE.yaml, weights: "
                f"ENTRY_FOLDER|FILE.weights.h5}}{where}. Received: teacher_distill_from={teacher_distill_from!r}"
            )
        return cls(
            family=family,
            dataset=tag,
            spec=spec,
            ks=ks,
            sampler=sampler,
            train_sampler=train_sampler,
            elastic=elastic,
            model=dict(raw.get("model") or {}),
            teacher=dict(raw.get("teacher") or {}),
            student=dict(raw.get("student") or {}),
            students=students,
            distillation=dict(raw.get("distillation") or {}),
            training=training,
            data=dict(raw.get("data") or {}),
            tune=copy.deepcopy(dict(tune)),
            path=path,
            distill_from=distill_from,
            teacher_distill_from=tuple(dict(m) for m in teacher_distill_from),
        )

    @classmethod
    def from_file(cls, path: str | pathlib.Path) -> "ZooConfig":
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Zoo config not found: {path}")
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        return cls.from_dict(raw, path=str(path))

    # ------------------------------------------------------------------ names
    # Names come from `kdzoo.zoo.names`; ``tagged=True`` appends ``.<dataset>``.
    def teacher_name(self, tagged: bool = False) -> str:
        return names.teacher_name(self.family, self.dataset if tagged else None)

    def student_name(self, k: int, tagged: bool = False) -> str:
        return names.student_name(self.family, k, self.dataset if tagged else None)

    def elastic_name(self, tagged: bool = False) -> str:
        return names.elastic_name(self.family, self.dataset if tagged else None)

    def names(self) -> list[str]:
        """Architecture names (without the dataset tag) this config defines."""
        names = [self.teacher_name()] + [self.student_name(k) for k in self.ks]
        return names + ([self.elastic_name()] if self.elastic else [])

    def seeds_for(self, k: int) -> list[int]:
        """Seeds of the k-frame student's runs: `training.seeds` for k in `seed_k`, else [seed]."""
        seeds = self.training.get("seeds")
        if seeds and int(k) in [int(v) for v in self.training.get("seed_k") or []]:
            return [int(s) for s in seeds]
        return [int(self.training["seed"])]

    # ------------------------------------------------------------------ models
    def model_config(self, role: str, k: int | None = None, elastic: bool = False) -> dict[str, Any]:
        """The `kdzoo.models.build_model` config of the teacher or of the k-frame student.

        ``elastic=True``: the elastic student, built for any frame count (``num_frames=None``)
        unless `k` fixes its budget.
        """
        if role not in ("teacher", "student"):
            raise ValueError(f"Unknown role {role!r}. Expected 'teacher' or 'student'.")
        config = _merge(copy.deepcopy(dict(self.model)), self.teacher if role == "teacher" else self.student)
        if role == "student" and k is not None and not elastic:
            config = _merge(config, self.students.get(int(k), {}))
        config["family"] = self.family
        config["feature_size"] = self.spec.feature_size
        config["num_classes"] = self.spec.num_classes
        if role == "teacher":
            config["num_frames"] = self.spec.max_frames
            config["name"] = self.teacher_name()
        elif elastic:
            config["num_frames"] = None if k is None else int(k)
            config["name"] = self.elastic_name()
        else:
            if k is None:
                raise ValueError("A student config needs its frame count k (k=...).")
            config["num_frames"] = int(k)
            config["name"] = self.student_name(k)
        return config


def _relative_spec_file(dataset: str) -> bool:
    return dataset.endswith((".yaml", ".yml", ".json")) and "://" not in dataset and not pathlib.Path(dataset).is_absolute()


def _tag(name: Any, dataset: Any, path: str | None) -> str:
    """The tag of a config's names: `name`, else the preset name, else the spec file's stem.

    An inline dataset spec (a mapping) needs `name`, so that entry names and work folders
    never spell out a whole spec.
    """
    if name is None and isinstance(dataset, str):
        name = pathlib.Path(dataset).stem if dataset.endswith((".yaml", ".yml", ".json")) else dataset
    if name is None and isinstance(dataset, Mapping) and isinstance(dataset.get("name"), str):
        name = dataset["name"]
    where = f" in {path}" if path else ""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise ValueError(
            f"Expected the config's 'name' (the tag of its models' names) to be a word of letters, digits, "
            f"'_' or '-'{where}. Received: name={name!r}" + (" (an inline dataset spec needs one)" if name is None else "")
        )
    return name
