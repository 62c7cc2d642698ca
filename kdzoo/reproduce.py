"""The paper's experiment grid on real data: one command, one JSON, one Markdown table.

``kdzoo reproduce CONFIG --data-dir DIR`` trains and evaluates, with the zoo recipe in
CONFIG (``zoo_configs/<family>.<dataset>.yaml``), every row of the paper's Table 1
(Bhardwaj et al., CVPR 2019) for each student budget k:

    teacher                              all frames (one row, shared by every k)
    k<k>/no_teacher/<sampler>            labels only, for each of kdzoo.sampling.SAMPLERS
    k<k>/parallel/<losses>               rep | rep+ce | rep+pred+ce
    k<k>/serial/<losses>                 rep | pred | rep+ce | pred+ce | rep+pred+ce
    k<k>/serial/rep+pred+ce+inter        also matches the intermediate representation
                                         (VLAD families only: the normalised VLAD matrix)

Every row runs with seed 0; the headline rows (the teacher, and per k the distilled and
the no-teacher row with the best *validation* GAP@20 at seed 0) also run with seeds
1 .. N-1 and are reported as mean ± std. Serial rows learn from the seed-0 teacher,
frozen; parallel rows train a fresh teacher alongside the student.

Each row runs in its own folder ``<work_dir>/rows/<row id>@<seed>/``; its ``row.json`` is
written last, so a stopped run continues where it stopped and finished rows are never
re-run (``kdzoo.training.fit_stage`` resumes the row's epochs). ``--rows`` selects a part
of the grid by fnmatch patterns on the row id (``"k2/*"``, ``"teacher,k2/serial/*"``).

Conventions (also written into the JSON):

* Loss weights come from the recipe's ``distillation`` section; a row keeps the weights
  of the losses it names and sets the others to 0.
* A row without L_CE and L_pred (``.../rep``) never trains the student's classifier: the
  student classifies with the teacher's head (copied into it; in parallel mode before
  every validation, as the teacher's head keeps training).
* Students are evaluated on the recipe's deterministic sampler (``sampler:``); a
  no-teacher row with a deterministic sampler is evaluated on its own sampler (the
  paper's baselines), the random row on the recipe's sampler.
* Metrics on the whole eval split: GAP@20, mAP, Hit@1; cost per video: aggregator and
  head FLOPs (``kdzoo.profiling.flops``) and parameters.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import hashlib
import json
import math
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import yaml

from kdzoo import sampling
from kdzoo.data import PRESETS, DatasetSpec, get_spec, make_dataset
from kdzoo.distillation import Distiller
from kdzoo.evaluation import predict_files, score
from kdzoo.models import INTERMEDIATE_FAMILIES, build_model
from kdzoo.training import fit_stage, resolve_data
from kdzoo.zoo import artifacts
from kdzoo.zoo.config import ZooConfig

#: The paper's student budgets per dataset (AudioSet: per family; YouTube-8M: 300 frames).
PAPER_K = {
    "audioset": {"netvlad": (1, 2, 3, 5), "hrnn": (2, 5), "nextvlad": (2, 5)},
    "yt8m": (6, 10, 15, 20, 30),
}
#: Table 1 of the paper: (mode, losses) of the distilled rows.
TABLE1 = (
    ("parallel", ("rep",)),
    ("parallel", ("rep", "ce")),
    ("parallel", ("rep", "pred", "ce")),
    ("serial", ("rep",)),
    ("serial", ("pred",)),
    ("serial", ("rep", "ce")),
    ("serial", ("pred", "ce")),
    ("serial", ("rep", "pred", "ce")),
)
INTERMEDIATE_ROW = ("serial", ("rep", "pred", "ce", "inter"))
LOSS_KEYS = {"ce": "ce_weight", "rep": "representation_weight", "pred": "prediction_weight",
             "inter": "intermediate_weight"}
#: Used for a loss that a row needs but the recipe weighs 0 (or leaves out).
DEFAULT_WEIGHTS = {"ce_weight": 1.0, "representation_weight": 1e-3, "prediction_weight": 1.0,
                   "intermediate_weight": 1.0}
METRICS = ("map", "gap", "hit_at_one")  # in the order of the table's columns


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the grid: a model trained one way, with one seed."""

    kind: str  # "teacher" | "no_teacher" | "distilled"
    k: int | None = None
    sampler: str | None = None  # no_teacher rows
    mode: str | None = None  # distilled rows
    losses: tuple[str, ...] = ()
    seed: int = 0

    @property
    def id(self) -> str:
        """The row's name without its seed, e.g. ``k2/serial/rep+ce``."""
        if self.kind == "teacher":
            return "teacher"
        if self.kind == "no_teacher":
            return f"k{self.k}/no_teacher/{self.sampler}"
        return f"k{self.k}/{self.mode}/{'+'.join(self.losses)}"

    @property
    def key(self) -> str:
        return f"{self.id}@{self.seed}"

    def with_seed(self, seed: int) -> "Row":
        return dataclasses.replace(self, seed=seed)


def grid(family: str, ks: Sequence[int]) -> list[Row]:
    """Every seed-0 row for the budgets `ks`, in run order (teacher first, then per k)."""
    rows = [Row("teacher")]
    for k in ks:
        rows += [Row("no_teacher", k, sampler=s) for s in sampling.SAMPLERS]
        table = list(TABLE1) + ([INTERMEDIATE_ROW] if family in INTERMEDIATE_FAMILIES else [])
        rows += [Row("distilled", k, mode=m, losses=losses) for m, losses in table]
    return rows


def select(rows: Iterable[Row], patterns: str | None) -> list[Row]:
    """Rows whose id or ``id@seed`` matches one of the comma-separated fnmatch patterns."""
    rows = list(rows)
    if not patterns:
        return rows
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [r for r in rows if any(fnmatch.fnmatchcase(r.id, p) or fnmatch.fnmatchcase(r.key, p) for p in pats)]


def paper_ks(config: ZooConfig) -> tuple[int, ...]:
    """The paper's k for the config's dataset (300-frame specs: the YouTube-8M budgets)."""
    known = PAPER_K.get(config.dataset)
    if isinstance(known, Mapping):
        known = known.get(config.family)
    if known is None and config.spec.max_frames == 300:
        known = PAPER_K["yt8m"]
    ks = tuple(k for k in (known or config.ks) if k <= config.spec.max_frames)
    return ks or tuple(config.ks)


def loss_weights(config: ZooConfig, losses: Sequence[str]) -> dict[str, float]:
    """Distiller loss weights of a row: the recipe's for the losses it names, 0 otherwise."""
    unknown = set(losses) - set(LOSS_KEYS)
    if unknown:
        raise ValueError(f"Unknown losses {sorted(unknown)}. Expected names from {sorted(LOSS_KEYS)}.")
    out = {}
    for name, key in LOSS_KEYS.items():
        recipe = float(config.distillation.get(key, 0.0) or 0.0)
        out[key] = (recipe if recipe > 0 else DEFAULT_WEIGHTS[key]) if name in losses else 0.0
    return out


# The data's location, the k list, the elastic student and the zoo's own seed list change no row.
_NOT_FINGERPRINTED = ("path", "data", "frames", "ks", "elastic")


def config_fingerprint(config: ZooConfig) -> str:
    """Hash of everything in the recipe that changes a trained row."""
    # Empty sections (a field added with an empty default) do not change the hash.
    doc = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
           if f.name not in _NOT_FINGERPRINTED and getattr(config, f.name) not in (None, {}, (), [])}
    doc["spec"] = config.spec.to_dict()
    doc["training"] = {k: v for k, v in config.training.items() if k not in ("seeds", "seed_frames", "seed_k")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def copy_head(source: keras.Model, target: keras.Model) -> None:
    """Copies the weights of every layer after the embedding (the classifier) from source to target."""
    names = [layer.name for layer in target.layers]
    for layer in target.layers[names.index("embedding") + 1:]:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


class _TieHead(keras.callbacks.Callback):
    """Parallel ``rep`` rows: the student classifies with the (training) teacher's head."""

    def __init__(self, teacher: keras.Model, student: keras.Model):
        super().__init__()
        self.teacher, self.student = teacher, student

    def on_test_begin(self, logs=None):
        copy_head(self.teacher, self.student)


# ------------------------------------------------------------------------------ data
def load_spec(spec: str) -> DatasetSpec:
    """A dataset spec from a preset name or a YAML/JSON file (``DatasetSpec.to_dict()`` keys, or
    ``{preset: NAME, ...overrides}``)."""
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            raw = yaml.safe_load(f)  # YAML is a superset of JSON
        try:
            return get_spec(raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Bad dataset spec in {spec}: {err}") from err
    if spec.strip().lower() in PRESETS:
        return get_spec(spec)
    raise ValueError(f"--spec {spec!r} is neither a file nor a preset name ({', '.join(PRESETS)}).")


def _absolute(pattern: str | None) -> str | None:
    if pattern is None or "://" in pattern:
        return pattern
    return os.path.abspath(pattern)


def reproduce_config(path: str, *, data: str | None = None, eval_data: str | None = None,
                     validation_data: str | None = None, spec: str | None = None) -> ZooConfig:
    """A zoo recipe, optionally moved onto the user's data (`data`, `eval_data`, `spec`).

    With a spec, the recipe's models are built for the spec's frame width, classes and frames.
    """
    config = ZooConfig.from_file(path)
    if spec is not None:
        new = load_spec(spec)
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
    elif spec is not None:
        raise ValueError("--spec describes your own files: pass them with --data and --eval-data.")
    return config


@dataclasses.dataclass
class Setting:
    """Where a run's data is and how it is split: from a zoo config and the command line."""

    config: ZooConfig
    train_files: list[str]
    eval_files: list[str]
    validation_files: list[str] | None  # None: a hash split of the train files

    @classmethod
    def resolve(cls, config: ZooConfig, data_dir=None) -> "Setting":
        data = config.data
        validation = data.get("validation")
        return cls(
            config,
            resolve_data(data.get("train"), data_dir, "train"),
            resolve_data(data.get("eval"), data_dir, "eval"),
            resolve_data(validation, data_dir, "validation") if validation else None,
        )

    def datasets(self, seed: int):
        t = self.config.training
        batch, spec = int(t["batch_size"]), self.config.spec
        if self.validation_files is None:
            fraction = float(t["validation_fraction"])
            train = make_dataset(self.train_files, spec, batch, shuffle=True, seed=seed, cache=True,
                                 subset="train", validation_fraction=fraction)
            val = make_dataset(self.train_files, spec, batch, cache=True, subset="validation",
                               validation_fraction=fraction)
        else:
            train = make_dataset(self.train_files, spec, batch, shuffle=True, seed=seed, cache=True)
            val = make_dataset(self.validation_files, spec, batch, cache=True)
        return train, val

    def validation_note(self) -> str:
        if self.validation_files is None:
            return f"{self.config.training['validation_fraction']:.0%} of the train files, by hash of the video id"
        return f"{len(self.validation_files)} validation file(s) given on the command line"


# ------------------------------------------------------------------------------ runner
class Reproduction:
    """Runs the grid of one zoo config, row by row, resumably (see the module docstring).

    Args:
        config: the zoo recipe.
        setting_data_dir: folder the config's relative data globs are under.
        work_dir: per-row run folders and results.
        ks: student budgets (default: the paper's for the dataset, `paper_ks`).
        seeds: seeds of the headline rows (1 runs every row once).
        teacher_weights: a zoo entry folder or ``.weights.h5`` of a trained teacher of this
            recipe, used as the seed-0 teacher instead of training one.
        epochs: override the recipe's teacher and student epochs (tests, smoke runs);
            recorded in the results.
        encoder: the per-frame encoder counted in the end-to-end cost: ``"default"`` (the
            dataset layout's, `kdzoo.encoders.DATASET_ENCODERS`, when its width matches the
            data), ``"none"``, or any `kdzoo.encoders.get_encoder` name or ``.keras`` path.
    """

    def __init__(self, config: ZooConfig, data_dir=None, work_dir: str | os.PathLike = "runs/reproduce", *,
                 ks: Sequence[int] | None = None, seeds: int = 3, teacher_weights: str | None = None,
                 epochs: int | None = None, encoder: str = "default", verbose: int = 1, command: str = ""):
        if seeds < 1:
            raise ValueError(f"Expected at least one seed. Received: seeds={seeds}")
        self.config = config
        self.setting = Setting.resolve(config, data_dir)
        self.work_dir = pathlib.Path(work_dir)
        self.ks = tuple(ks) if ks else paper_ks(config)
        bad = [k for k in self.ks if not 1 <= k <= config.spec.max_frames]
        if bad:
            raise ValueError(f"Student budgets {bad} are outside 1..{config.spec.max_frames} (the dataset's frames).")
        self.seeds = int(seeds)
        self.teacher_weights = teacher_weights
        self.epochs = epochs
        self.verbose = verbose
        self.command = command
        # Rows trained on a shortened schedule are never mixed with the recipe's.
        self.fingerprint = config_fingerprint(config) + (f"-epochs{int(epochs)}" if epochs else "")
        self._teacher: keras.Model | None = None
        self._teacher_record: dict = {}
        self._records: int | None = None
        self.encoder = encoder
        self._encoder_flops: tuple[str | None, int | None] | None = None
        self._costs: dict[int | None, dict[str, Any]] = {}

    # ------------------------------------------------------------ bookkeeping
    def row_dir(self, row: Row) -> pathlib.Path:
        return self.work_dir / "rows" / row.key.replace("/", "__")

    def finished(self, row: Row) -> dict | None:
        path = self.row_dir(row) / "row.json"
        if not path.is_file():
            return None
        record = artifacts.read_json(path)
        if record.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"{path} was trained with another recipe (fingerprint {record.get('fingerprint')}, now "
                f"{self.fingerprint}). Use a new --work-dir, or remove that folder to retrain the row."
            )
        return record

    def planned(self, patterns: str | None = None) -> list[Row]:
        """The rows to run now: selected seed-0 rows, then the headline rows' other seeds.

        The best distilled / no-teacher row of a k is known once its seed-0 rows have run;
        until then its other seeds are not planned.
        """
        base = grid(self.config.family, self.ks)
        rows = select(base, patterns)
        extra = []
        for head in self.headline_rows(base):
            extra += [head.with_seed(s) for s in range(1, self.seeds)]
        return rows + [r for r in select(extra, patterns) if r not in rows]

    def headline_rows(self, base: Sequence[Row]) -> list[Row]:
        """The teacher and, per k, the finished seed-0 distilled and no-teacher rows with the best val GAP."""
        heads = [Row("teacher")]
        for k in self.ks:
            for kind in ("distilled", "no_teacher"):
                done = [(rec["best_val_gap"], r) for r in base if r.kind == kind and r.k == k
                        if (rec := self.finished(r)) and rec.get("best_val_gap") is not None]
                if done:
                    heads.append(max(done, key=lambda item: item[0])[1])
        return heads

    # ------------------------------------------------------------ models
    def _epochs(self, role: str) -> int:
        t = self.config.training
        if self.epochs:
            return int(self.epochs)
        return int(t["epochs"] if role == "teacher" else (t.get("student_epochs") or t["epochs"]))

    def _fit(self, distiller: Distiller, row: Row, epochs: int, callbacks=()) -> dict:
        t = self.config.training
        train, val = self.setting.datasets(seed=int(t["seed"]) + row.seed)
        return fit_stage(distiller, train, val, self.row_dir(row) / "run", epochs=epochs,
                         learning_rate=float(t["learning_rate"]), patience=int(t["patience"]),
                         verbose=self.verbose, warmup_epochs=int(t.get("warmup_epochs") or 0),
                         steps_per_epoch=self._steps_per_epoch(), callbacks=list(callbacks))

    def _capacity(self) -> int:
        """Training records + 1: the metric buffers hold a whole epoch."""
        if self._records is None:
            from kdzoo.data import count_records

            self._records = count_records(self.setting.train_files)
        return self._records + 1

    def _steps_per_epoch(self) -> int:
        """Training batches per epoch (approximate when the validation split is by hash)."""
        t = self.config.training
        train = self._records if self._records is not None else self._capacity() - 1
        if self.setting.validation_files is None:
            train *= 1.0 - float(t["validation_fraction"])
        return max(1, math.ceil(train / int(t["batch_size"])))

    def teacher(self) -> keras.Model:
        """The seed-0 teacher: given weights, or trained (resumably) as the ``teacher@0`` row."""
        if self._teacher is None:
            self._teacher, self._teacher_record = self._train_teacher(Row("teacher"))
        return self._teacher

    def _train_teacher(self, row: Row) -> tuple[keras.Model, dict]:
        keras.utils.set_random_seed(int(self.config.training["seed"]) + row.seed)
        model = build_model(self.config.model_config("teacher"))
        if row.seed == 0 and self.teacher_weights:
            path = pathlib.Path(self.teacher_weights)
            path = path / "model.weights.h5" if path.is_dir() else path
            try:
                stored = _stored_values(path)
                expected = sum(int(math.prod(w.shape)) for w in model.weights)
                if stored != expected:  # Keras loads a mismatched file without an error
                    raise ValueError(f"the file holds {stored:,} values, the recipe's teacher has {expected:,}")
                model.load_weights(path)
            except (ValueError, OSError, KeyError) as err:
                raise ValueError(
                    f"--teacher-weights {path} do not fit this recipe's teacher ({self.config.path}): {err}. "
                    "Pass the weights of a teacher trained with this recipe, or leave the option out to train "
                    "it as the row teacher@0."
                ) from err
            return model, {"best_val_gap": None, "epochs_run": 0, "weights": str(path),
                           "weights_sha256": artifacts.sha256_of(path)}
        distiller = Distiller(None, model, k=None, metric_capacity=self._capacity())
        return model, self._fit(distiller, row, self._epochs("teacher"))

    def _train_student(self, row: Row) -> tuple[keras.Model, dict]:
        config, t = self.config, self.config.training
        keras.utils.set_random_seed(int(t["seed"]) + 1000 * row.seed + row.k)
        inter = "inter" in row.losses
        student = build_model({**config.model_config("student", row.k), "intermediate": inter})
        kwargs: dict[str, Any] = {"k": row.k, "seed": int(t["seed"]) + row.seed,
                                  "metric_capacity": self._capacity()}
        callbacks, epochs = [], self._epochs("student")
        if row.kind == "no_teacher":
            # A deterministic sampler trains and validates on its own frames; random trains on a
            # fresh subset each step and validates on the recipe's sampler (as it is evaluated).
            sampler = self.eval_sampler(row)
            distiller = Distiller(None, student, sampler=sampler, train_sampler=row.sampler, **kwargs)
            return student, self._fit(distiller, row, epochs)
        weights = loss_weights(config, row.losses)
        recipe = {k: v for k, v in config.distillation.items() if k not in LOSS_KEYS.values() and k != "mode"}
        if row.mode == "serial":
            teacher = self.teacher()
            if inter:  # the same weights, with the intermediate output
                with_inter = build_model({**config.model_config("teacher"), "intermediate": True})
                with_inter.set_weights(teacher.get_weights())
                teacher = with_inter
        else:
            teacher = build_model({**config.model_config("teacher"), "intermediate": inter})
            epochs = self._epochs("teacher")  # the teacher learns from scratch alongside
        head_tied = weights["ce_weight"] == 0 and weights["prediction_weight"] == 0
        if head_tied:
            copy_head(teacher, student)
            if row.mode == "parallel":
                callbacks.append(_TieHead(teacher, student))
        distiller = Distiller(teacher, student, sampler=config.sampler, train_sampler=self.train_sampler,
                              mode=row.mode, **{**recipe, **weights}, **kwargs)
        record = self._fit(distiller, row, epochs, callbacks)
        if inter:  # evaluate and cost the plain model (same weights)
            plain = build_model(config.model_config("student", row.k))
            plain.set_weights(student.get_weights())
            student = plain
        return student, {**record, "loss_weights": weights, "head": "teacher's" if head_tied else "own"}

    @property
    def train_sampler(self) -> str:
        """Distilled students' training sampler: the recipe's ``train_sampler``."""
        return self.config.train_sampler

    # ------------------------------------------------------------ rows
    def eval_sampler(self, row: Row) -> str | None:
        if row.kind == "teacher":
            return None
        if row.kind == "no_teacher" and row.sampler != "random":
            return row.sampler
        return self.config.sampler

    def run_row(self, row: Row) -> dict:
        """Trains and evaluates one row, or returns its record if it is finished."""
        done = self.finished(row)
        if done is not None:
            return done
        started = time.time()
        if row.kind == "teacher" and row.seed == 0:
            model, record = self.teacher(), self._teacher_record
        elif row.kind == "teacher":
            model, record = self._train_teacher(row)
        else:
            model, record = self._train_student(row)
        sampler = self.eval_sampler(row)
        predictions, labels = predict_files(model, self.setting.eval_files, self.config.spec, k=row.k,
                                            sampler=sampler or "uniform", progress=self.verbose > 0)
        result = {
            "row": row.id, "seed": row.seed, "kind": row.kind, "k": row.k, "mode": row.mode,
            "losses": list(row.losses), "train_sampler": row.sampler if row.kind == "no_teacher" else (
                None if row.kind == "teacher" else self.train_sampler),
            "eval_sampler": sampler,
            "eval": score(predictions, labels, self.config.spec.num_classes),
            "best_val_gap": record.get("best_val_gap"), "epochs_run": record.get("epochs_run"),
            "fingerprint": self.fingerprint, "seconds": round(time.time() - started, 1),
            "finished_at": _now(),
        }
        result.update({k: record[k] for k in ("weights", "weights_sha256", "loss_weights", "head") if k in record})
        artifacts.atomic_write_json(self.row_dir(row) / "row.json", result)
        return result

    def run(self, patterns: str | None = None, *, max_rows: int | None = None,
            results_dir: str | os.PathLike | None = None) -> dict:
        """Runs the planned rows in order (re-planning after each, so headline seeds follow);
        writes the results JSON and Markdown after every row. Returns the results document."""
        ran = 0
        while True:
            todo = [r for r in self.planned(patterns) if self.finished(r) is None]
            if not todo or (max_rows is not None and ran >= max_rows):
                break
            self.run_row(todo[0])
            ran += 1
            self.write(results_dir)
        return self.write(results_dir)

    # ------------------------------------------------------------ results
    def row_cost(self, k: int | None) -> dict[str, Any]:
        """Per-video cost of the teacher (k=None) or the k-frame student: it depends on the
        architecture alone (`cost`), so it is computed here, not stored with each row."""
        if k not in self._costs:
            role = "teacher" if k is None else "student"
            model = build_model(self.config.model_config(role, k))
            self._costs[k] = cost(model, k or self.config.spec.max_frames, self.encoder_flops_per_frame())
        return self._costs[k]

    def encoder_flops_per_frame(self) -> int | None:
        """FLOPs per frame of the encoder that made the features (None: unknown or not wanted)."""
        if self._encoder_flops is None:
            self._encoder_flops = (None, None)
            if self.encoder != "none":
                from kdzoo import encoders, profiling

                name = self.encoder
                if name == "default":
                    name = encoders.DATASET_ENCODERS.get(self.config.dataset, "none")
                model = encoders.get_encoder(name, self.config.dataset)
                if model is not None and int(model.output.shape[-1]) == self.config.spec.feature_size:
                    self._encoder_flops = (model.name, int(profiling.encoder_flops(model)))
                elif self.encoder != "default":
                    raise ValueError(
                        f"The encoder {name!r} outputs {model.output.shape[-1]} features per frame; the data has "
                        f"{self.config.spec.feature_size}."
                    )
        return self._encoder_flops[1]

    def results(self) -> dict:
        rows = [rec for r in self.all_rows() if (rec := self.finished(r))]
        summary = summarize(rows)
        for entry in summary:
            entry["cost"] = self.row_cost(entry["k"])
        remaining = [r.key for r in self.all_rows() if self.finished(r) is None]
        return {
            "config": self.config.path, "family": self.config.family, "dataset": self.config.dataset,
            "ks": list(self.ks), "seeds": self.seeds, "fingerprint": self.fingerprint,
            "training": dict(self.config.training), "epochs_override": self.epochs,
            "distillation": dict(self.config.distillation), "eval_files": len(self.setting.eval_files),
            "validation": self.setting.validation_note(), "teacher_weights": self.teacher_weights,
            "machine": machine(), "command": self.command, "rows": rows, "summary": summary,
            "encoder": self._encoder_flops[0] if self._encoder_flops else None,
            "remaining": remaining, "complete": not remaining, "in_progress": self.in_progress(),
            "train_seconds": round(sum(r["seconds"] for r in rows), 1), "written_at": _now(),
        }

    def in_progress(self) -> list[dict[str, Any]]:
        """Started, unfinished rows: epochs done (their BackupAndRestore state) and best val GAP@20 so far."""
        out = []
        for row in self.all_rows():
            run_dir = self.row_dir(row) / "run"
            state = run_dir / "backup" / "training_metadata.json"
            if self.finished(row) is not None or not state.is_file():
                continue
            best = run_dir / "best.weights.json"
            out.append({"row": row.key, "epochs_done": int(artifacts.read_json(state).get("epoch", 0)),
                        "best_val_gap": artifacts.read_json(best)["score"] if best.is_file() else None})
        return out

    def all_rows(self) -> list[Row]:
        """The whole grid, headline seeds included as far as they are known."""
        return self.planned(None)

    def write(self, results_dir: str | os.PathLike | None = None) -> dict:
        """Writes ``reproduce.json`` and ``reproduce.md`` in the work dir (and, with
        `results_dir`, as ``reproduce_<family>.<dataset>.json/.md`` there too)."""
        doc = self.results()
        targets = [(self.work_dir, "reproduce")]
        if results_dir is not None:
            targets.append((pathlib.Path(results_dir), f"reproduce_{self.config.family}.{self.config.dataset}"))
        for folder, stem in targets:
            folder.mkdir(parents=True, exist_ok=True)
            artifacts.atomic_write_json(folder / f"{stem}.json", doc)
            (folder / f"{stem}.md").write_text(markdown(doc), encoding="utf-8")
        return doc


def _stored_values(path: str | os.PathLike) -> int:
    """Number of values in a ``.weights.h5`` file (every dataset in it)."""
    import h5py

    sizes = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: sizes.append(obj.size) if isinstance(obj, h5py.Dataset) else None)
    return int(sum(sizes))


def cost(model: keras.Model, num_frames: int, encoder_flops_per_frame: int | None = None) -> dict[str, int | None]:
    """Per-video cost of a model that sees `num_frames` frames: aggregator + head FLOPs, parameters,
    and end to end (`num_frames` x the encoder's FLOPs per frame + the model's), when the encoder is known."""
    from kdzoo import profiling  # cost accounting sits on top of the training path

    flops = int(profiling.flops(model, num_frames=num_frames))
    return {"flops": flops, "params": int(profiling.params(model)),
            "end_to_end_flops": None if encoder_flops_per_frame is None else flops + num_frames * encoder_flops_per_frame}


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per row id: the mean (and std over seeds, n >= 2) of each metric."""
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    for rec in rows:
        by_id.setdefault(rec["row"], []).append(rec)
    out = []
    for row_id, recs in by_id.items():
        entry = {"row": row_id, "seeds": sorted(r["seed"] for r in recs), "k": recs[0]["k"],
                 "kind": recs[0]["kind"], "eval_sampler": recs[0]["eval_sampler"],
                 "train_sampler": recs[0]["train_sampler"]}
        for m in METRICS:
            values = [r["eval"][m] for r in recs]
            entry[m] = statistics.fmean(values)
            entry[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


#: (label, row with the loss, row without it) for "which loss matters", per k.
LOSS_PAIRS = (
    ("L_CE added to serial L_rep", "serial/rep+ce", "serial/rep"),
    ("L_CE added to serial L_pred", "serial/pred+ce", "serial/pred"),
    ("L_rep added to serial L_pred + L_CE", "serial/rep+pred+ce", "serial/pred+ce"),
    ("L_pred added to serial L_rep + L_CE", "serial/rep+pred+ce", "serial/rep+ce"),
    ("the intermediate representation added to serial all three", "serial/rep+pred+ce+inter", "serial/rep+pred+ce"),
    ("L_CE added to parallel L_rep", "parallel/rep+ce", "parallel/rep"),
)


def _difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """`a - b` in eval mAP, with the verdict: a difference counts only beyond twice the seed spread."""
    diff = a["map"] - b["map"]
    spreads = [e["map_std"] for e in (a, b) if e["map_std"] is not None]
    if len(spreads) < 2:
        verdict = "one seed on at least one side: no spread to judge it by"
    elif abs(diff) > 2 * max(spreads):
        verdict = f"beyond twice the seed spread ({max(spreads):.4f})"
    else:
        verdict = f"within noise (seed spread {max(spreads):.4f})"
    return f"{diff:+.4f} mAP (`{a['row']}` {a['map']:.4f} vs `{b['row']}` {b['map']:.4f}; {verdict})"


def comparisons(doc: Mapping[str, Any]) -> list[str]:
    """The paper's claims checked on the finished rows (eval mAP), one line each; a claim
    whose rows have not run yet is left out."""
    by_id = {e["row"]: e for e in doc["summary"]}
    teacher = by_id.get("teacher")
    lines = []
    for k in doc["ks"]:
        rows = [e for e in doc["summary"] if e["k"] == k]
        distilled = [e for e in rows if e["kind"] == "distilled"]
        baselines = [e for e in rows if e["kind"] == "no_teacher"]
        best_d = max(distilled, key=lambda e: e["map"], default=None)
        best_b = max(baselines, key=lambda e: e["map"], default=None)
        if teacher and best_d:
            lines.append(f"k={k}: teacher >= best distilled: {'yes' if teacher['map'] >= best_d['map'] else 'no'}, "
                         + _difference(teacher, best_d))
        if teacher and best_b and not best_d:
            lines.append(f"k={k}: teacher >= best no-teacher: {'yes' if teacher['map'] >= best_b['map'] else 'no'}, "
                         + _difference(teacher, best_b))
        if best_d and best_b:
            lines.append(f"k={k}: best distilled > best no-teacher: {'yes' if best_d['map'] > best_b['map'] else 'no'}, "
                         + _difference(best_d, best_b))
        serial = [e for e in distilled if "/serial/" in e["row"] and "inter" not in e["row"]]
        parallel = [e for e in distilled if "/parallel/" in e["row"]]
        if serial and parallel:
            lines.append(f"k={k}: best serial vs best parallel: "
                         + _difference(max(serial, key=lambda e: e["map"]), max(parallel, key=lambda e: e["map"])))
        for label, with_loss, without in LOSS_PAIRS:
            a, b = by_id.get(f"k{k}/{with_loss}"), by_id.get(f"k{k}/{without}")
            if a and b:
                lines.append(f"k={k}: {label}: " + _difference(a, b))
    return lines


def markdown(doc: Mapping[str, Any]) -> str:
    """The results as a Markdown table (mean ± std over seeds where a row has several)."""
    teacher = next((e["cost"] for e in doc["summary"] if e["row"] == "teacher"), None)
    lines = [
        f"{'Partial' if doc['remaining'] else 'Complete'} grid: {len(doc['summary'])} row(s) finished, "
        f"{len(doc['remaining'])} planned run(s) left. {doc['family']} on {doc['dataset']}, "
        f"{doc['machine']}; {doc['train_seconds'] / 3600:.2f} h of row time.",
        "",
        "| row | k | seeds | eval mAP | eval GAP@20 | eval Hit@1 | train / eval frames | FLOPs / video "
        f"(vs teacher) | end to end with {doc.get('encoder') or 'the encoder'} (vs teacher) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in doc["summary"]:
        cells = []
        for m in METRICS:
            std = e[f"{m}_std"]
            cells.append(f"{e[m]:.4f}" + (f" ± {std:.4f}" if std is not None else ""))
        frames = "all" if e["kind"] == "teacher" else f"{e['train_sampler']} / {e['eval_sampler']}"
        flops = [_with_ratio(e["cost"][key], teacher and teacher[key]) for key in ("flops", "end_to_end_flops")]
        lines.append(f"| `{e['row']}` | {e['k'] or 'all'} | {len(e['seeds'])} | {' | '.join(cells)} | {frames} | "
                     f"{' | '.join(flops)} |")
    checks = comparisons(doc)
    if checks:
        lines += ["", "The paper's claims on these rows (eval mAP):", ""] + [f"- {c}" for c in checks]
    for p in doc.get("in_progress", []):
        best = "" if p["best_val_gap"] is None else f", best validation GAP@20 so far {p['best_val_gap']:.4f}"
        lines.append(f"\nIn progress: `{p['row']}`, {p['epochs_done']} epoch(s) done{best}.")
    if doc["remaining"]:
        lines += ["", f"Not yet run: {', '.join(doc['remaining'])}."]
    if doc.get("command"):
        lines += ["", f"Command: `{doc['command']}` (re-run it to continue; finished rows are kept)."]
    return "\n".join(lines) + "\n"


def _with_ratio(value: int | None, reference: int | None) -> str:
    if value is None:
        return "–"
    return f"{value:,}" + (f" ({value / reference:.3f})" if reference else "")


def machine() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    where = gpus[0].name if gpus else f"{platform.machine()} CPU, {os.cpu_count()} cores"
    return f"{where}, TensorFlow {tf.__version__}, Keras {keras.__version__}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kdzoo.reproduce RESULTS.json``: prints the Markdown table of a results file."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m kdzoo.reproduce RESULTS.json", file=sys.stderr)
        return 2
    print(markdown(artifacts.read_json(args[0])), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
