"""Training recipes: a teacher, its distilled students and their no-teacher baselines.

Every stage (one model) trains in its own run folder::

    <work_dir>/<entry name>/<stage>/
        backup/            keras BackupAndRestore state: a killed run resumes from the last epoch
        tb/                TensorBoard logs (each loss and metric as its own scalar)
        best.weights.h5    the weights with the best validation GAP so far
        done.json          written last: the stage is finished and is skipped on a re-run

so re-running the same command after a crash continues where it stopped and never
repeats a finished stage.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import subprocess
from collections.abc import Sequence
from typing import Any

import keras

from kdzoo.data import count_records, list_files, make_dataset
from kdzoo.distillation import Distiller
from kdzoo.evaluation import predict_files, score
from kdzoo.models import build_model
from kdzoo.zoo import artifacts
from kdzoo.zoo.config import ZooConfig

MONITOR = "val_student_gap"
EVAL_SUBSET = 1024  # videos of the eval split re-evaluated by the fast zoo test


def resolve_data(pattern: str | None, data_dir: str | os.PathLike | None, what: str) -> list[str]:
    """Files for a config's data pattern, relative to `data_dir` unless absolute or a URL."""
    if not pattern:
        raise ValueError(f"The zoo config names no {what} data (data: {{{what}: GLOB}}).")
    if "://" not in pattern and not os.path.isabs(pattern):
        if data_dir is None:
            raise ValueError(f"The {what} pattern {pattern!r} is relative: pass --data-dir.")
        base = str(data_dir).rstrip("/")
        pattern = f"{base}/{pattern}"
    return list_files(pattern)


def _datasets(config: ZooConfig, data_dir, batch_size: int):
    train_files = resolve_data(config.data.get("train"), data_dir, "train")
    fraction = float(config.training["validation_fraction"])
    seed = int(config.training["seed"])
    train = make_dataset(
        train_files, config.spec, batch_size, shuffle=True, seed=seed, cache=True,
        subset="train", validation_fraction=fraction,
    )
    val = make_dataset(
        train_files, config.spec, batch_size, cache=True, subset="validation", validation_fraction=fraction
    )
    return train, val, train_files


def fit_stage(
    distiller: Distiller,
    train_ds,
    val_ds,
    run_dir: str | os.PathLike,
    *,
    epochs: int,
    learning_rate: float,
    patience: int,
    verbose: int = 1,
) -> dict[str, Any]:
    """Fits one Distiller resumably; returns the done.json record (best epoch, history).

    A finished stage (done.json present) is not trained again: its best weights are loaded.
    """
    run_dir = pathlib.Path(run_dir)
    done = run_dir / "done.json"
    best = run_dir / "best.weights.h5"
    target = distiller.student
    if done.is_file() and best.is_file():
        target.load_weights(best)
        return artifacts.read_json(done)
    run_dir.mkdir(parents=True, exist_ok=True)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate))
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tb")),
        _BestStudentCheckpoint(target, best, MONITOR),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience),
    ]
    history = distiller.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
    target.load_weights(best)
    scores = history.history.get(MONITOR, [])
    record = {
        "epochs_run": len(scores),
        "best_val_gap": max(scores) if scores else None,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    artifacts.atomic_write_json(done, record)
    return record


class _BestStudentCheckpoint(keras.callbacks.Callback):
    """Saves the student's weights atomically whenever `monitor` reaches a new maximum.

    The best score survives a restart: it is read back from a small JSON next to the file.
    """

    def __init__(self, model: keras.Model, path: pathlib.Path, monitor: str):
        super().__init__()
        self.target, self.path, self.monitor = model, pathlib.Path(path), monitor
        self.score_file = self.path.with_suffix(".json")
        self.best = artifacts.read_json(self.score_file)["score"] if self.score_file.is_file() else -1.0

    def on_epoch_end(self, epoch, logs=None):
        score = float((logs or {}).get(self.monitor, -1.0))
        if score > self.best:
            self.best = score
            artifacts.atomic_save_weights(self.target, self.path)
            artifacts.atomic_write_json(self.score_file, {"score": score, "epoch": epoch})


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=pathlib.Path(__file__).resolve().parents[1],
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _distill_kwargs(config: ZooConfig) -> dict[str, Any]:
    allowed = {
        "mode", "ce_weight", "representation_weight", "prediction_weight", "prediction_loss",
        "teacher_ce_weight", "distill_into_teacher",
    }
    unknown = set(config.distillation) - allowed
    if unknown:
        raise ValueError(f"Unknown distillation keys {sorted(unknown)}. Expected a subset of {sorted(allowed)}.")
    return dict(config.distillation)


def train_teacher(config: ZooConfig, data_dir, work_dir, *, epochs=None, verbose=1) -> tuple[keras.Model, dict]:
    """Trains (or resumes, or reloads) the config's teacher on all frames."""
    t = config.training
    keras.utils.set_random_seed(int(t["seed"]))
    train_ds, val_ds, _ = _datasets(config, data_dir, int(t["batch_size"]))
    teacher = build_model(config.model_config("teacher"))
    distiller = Distiller(None, teacher, frames=None, metric_capacity=_capacity(config, data_dir))
    record = fit_stage(
        distiller, train_ds, val_ds, pathlib.Path(work_dir) / f"{config.teacher_name()}.{config.dataset}" / "teacher",
        epochs=epochs or int(t["epochs"]), learning_rate=float(t["learning_rate"]),
        patience=int(t["patience"]), verbose=verbose,
    )
    return teacher, record


def train_student(
    config: ZooConfig, frames: int, teacher: keras.Model | None, data_dir, work_dir, *, epochs=None, verbose=1
) -> tuple[keras.Model, dict]:
    """Trains the k-frame student, distilled from `teacher` or (teacher=None) on labels alone."""
    t = config.training
    keras.utils.set_random_seed(int(t["seed"]) + frames)
    train_ds, val_ds, _ = _datasets(config, data_dir, int(t["batch_size"]))
    student = build_model(config.model_config("student", frames))
    kwargs = _distill_kwargs(config) if teacher is not None else {}
    distiller = Distiller(
        teacher, student, frames=frames, sampler=config.sampler, seed=int(t["seed"]),
        metric_capacity=_capacity(config, data_dir), **kwargs,
    )
    stage = "distilled" if teacher is not None else "no_teacher"
    record = fit_stage(
        distiller, train_ds, val_ds, pathlib.Path(work_dir) / f"{config.student_name(frames)}.{config.dataset}" / stage,
        epochs=epochs or int(t.get("student_epochs") or t["epochs"]), learning_rate=float(t["learning_rate"]),
        patience=int(t["patience"]), verbose=verbose,
    )
    return student, record


def _capacity(config: ZooConfig, data_dir) -> int:
    """Metric buffer size: the number of training records (each epoch's videos fit)."""
    files = resolve_data(config.data.get("train"), data_dir, "train")
    return count_records(files) + 1


def _metadata_base(config: ZooConfig, data_dir, command: str) -> dict[str, Any]:
    spec = config.spec
    return {
        "family": config.family,
        "dataset": config.dataset,
        "zoo_config": os.path.basename(config.path or ""),
        "data": {
            "train": config.data.get("train"),
            "eval": config.data.get("eval"),
            "validation": f"{config.training['validation_fraction']:.0%} of the train files, by hash of the video id",
            "num_classes": spec.num_classes,
            "max_frames": spec.max_frames,
        },
        "license": config.data.get("license"),
        "attribution": config.data.get("attribution"),
        "training": dict(config.training),
        "command": command,
        "commit": _git_commit(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "trained_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _eval_all(model, config: ZooConfig, data_dir, frames: int | None) -> dict[str, Any]:
    eval_files = resolve_data(config.data.get("eval"), data_dir, "eval")
    # One pass over the eval split; the subset is its first EVAL_SUBSET videos (file order).
    predictions, labels = predict_files(
        model, eval_files, config.spec, frames=frames, sampler=config.sampler, progress=True
    )
    num_classes = config.spec.num_classes
    return {
        "eval": score(predictions, labels, num_classes),
        "eval_subset": score(predictions[:EVAL_SUBSET], labels[:EVAL_SUBSET], num_classes),
    }


def _card_encoder(config: ZooConfig):
    """(name, encoder) of the dataset layout's frame encoder for the cards' end-to-end cost."""
    from kdzoo import encoders

    name = encoders.DATASET_ENCODERS.get(config.dataset)
    return name, (encoders.get_encoder(name) if name else None)


def _cost(model, frames: int, encoder=None) -> dict[str, Any]:
    """The card's cost block: the classifier alone and, with the encoder, end to end."""
    from kdzoo import profiling  # cost accounting sits on top of the training path

    name, encoder = encoder or (None, None)
    return profiling.card_cost(model, frames, encoder, encoder_name=name)


def train_zoo_config(
    config: ZooConfig,
    data_dir: str | os.PathLike | None,
    *,
    out_dir: str | os.PathLike = "pretrained",
    work_dir: str | os.PathLike = "runs",
    frames: Sequence[int] | None = None,
    baselines: bool = True,
    epochs: int | None = None,
    command: str = "",
    verbose: int = 1,
) -> dict[str, dict]:
    """Trains a config's teacher and its students, evaluates them, writes zoo entries.

    Returns the metadata written for each entry name.
    """
    frames = tuple(frames or config.frames)
    base = _metadata_base(config, data_dir, command)
    written: dict[str, dict] = {}

    teacher, record = train_teacher(config, data_dir, work_dir, epochs=epochs, verbose=verbose)
    teacher_name = f"{config.teacher_name()}.{config.dataset}"
    teacher_metrics = _eval_all(teacher, config, data_dir, None)
    meta = dict(base, name=teacher_name, role="teacher", frames=config.spec.max_frames, sampler=None,
                metrics=teacher_metrics, best_val_gap=record["best_val_gap"], epochs_run=record["epochs_run"])
    from kdzoo import profiling  # cost accounting sits on top of the training path

    encoder = _card_encoder(config)
    meta.update(_cost(teacher, config.spec.max_frames, encoder))
    written[teacher_name] = artifacts.write_entry(
        pathlib.Path(out_dir) / teacher_name, teacher, config.model_config("teacher"), meta
    )

    for k in frames:
        student, record = train_student(config, k, teacher, data_dir, work_dir, epochs=epochs, verbose=verbose)
        name = f"{config.student_name(k)}.{config.dataset}"
        meta = dict(base, name=name, role="student", frames=k, sampler=config.sampler, teacher=teacher_name,
                    distillation=_distill_kwargs(config), metrics=_eval_all(student, config, data_dir, k),
                    best_val_gap=record["best_val_gap"], epochs_run=record["epochs_run"])
        if baselines:
            baseline, b_record = train_student(config, k, None, data_dir, work_dir, epochs=epochs, verbose=verbose)
            meta["no_teacher"] = {
                "metrics": _eval_all(baseline, config, data_dir, k)["eval"],
                "best_val_gap": b_record["best_val_gap"],
            }
            meta["distillation_gain_map"] = meta["metrics"]["eval"]["map"] - meta["no_teacher"]["metrics"]["map"]
        meta.update(_cost(student, k, encoder))
        meta["teacher_ratio"] = profiling.card_ratios(meta, written[teacher_name])
        written[name] = artifacts.write_entry(
            pathlib.Path(out_dir) / name, student, config.model_config("student", k), meta
        )
    return written
