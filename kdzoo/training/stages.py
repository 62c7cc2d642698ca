"""Training stages: one model (a teacher, a distilled student or a no-teacher baseline) per run folder.

Every stage trains in its own run folder::

    <work_dir>/<entry name>/<stage>/
        backup/            keras BackupAndRestore state: a killed run resumes from the last epoch
        tb/                TensorBoard logs (each loss and metric as its own scalar)
        best.weights.h5    the weights with the best validation GAP so far
        epochs.json        every finished epoch's logs, kept across restarts
        done.json          written last: the stage is finished and is skipped on a re-run

so re-running the same command after a crash continues where it stopped and never
repeats a finished stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from kdzoo import distribute
from kdzoo.data import count_records, list_files, make_dataset
from kdzoo.distillation import Distiller
from kdzoo.models import build_ensemble, build_model
from kdzoo.zoo import artifacts
from kdzoo.zoo.config import ZooConfig

MONITOR = "val_student_gap"


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


def keras_model_path(work_dir: str | os.PathLike, name: str) -> pathlib.Path:
    """Where `kdzoo train` / `kdzoo distill` write the model of a (tagged) zoo name as one ``.keras`` file."""
    return pathlib.Path(work_dir) / "models" / f"{name}.keras"


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """A config's training files and their record count, resolved once per run.

    Counting reads every record, so a run (`train_zoo_config`, `kdzoo distill`, a search)
    resolves it once and passes it to each stage.
    """

    files: tuple[str, ...]
    num_records: int

    @classmethod
    def resolve(cls, config: ZooConfig, data_dir) -> "TrainingData":
        files = resolve_data(config.data.get("train"), data_dir, "train")
        return cls(tuple(files), count_records(files))

    @property
    def metric_capacity(self) -> int:
        """Most videos one epoch of GAP must hold: every training record (+1 spare)."""
        return self.num_records + 1

    def steps_per_epoch(self, batch_size: int, validation_fraction: float) -> int:
        """Training batches per epoch (approximate: the validation split is by hash)."""
        return max(1, math.ceil(self.num_records * (1.0 - float(validation_fraction)) / int(batch_size)))


def datasets(config: ZooConfig, data_dir, batch_size: int, seed: int | None = None,
             data: TrainingData | None = None):
    """``(train, validation, train_files)``: the config's train files (those of `data` when
    given) split by video-id hash (public: `kdzoo.tuning` trains on the same split)."""
    train_files = list(data.files) if data is not None else resolve_data(config.data.get("train"), data_dir, "train")
    fraction = float(config.training["validation_fraction"])
    seed = int(config.training["seed"]) if seed is None else int(seed)
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
    warmup_epochs: int = 0,
    steps_per_epoch: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Fits one Distiller resumably; returns the done.json record (best epoch, history).

    With ``warmup_epochs > 0`` (and `steps_per_epoch`) the learning rate rises linearly
    from 0 over the warm-up, then follows a cosine decay to 0 at the last epoch.
    A finished stage (done.json present) is not trained again: its best weights are loaded.
    `callbacks` run before the stage's own (backup, best checkpoint, early stopping).
    """
    run_dir = pathlib.Path(run_dir)
    done = run_dir / "done.json"
    best = run_dir / "best.weights.h5"
    target = distiller.student
    if done.is_file() and best.is_file():
        target.load_weights(best)
        return artifacts.read_json(done)
    run_dir.mkdir(parents=True, exist_ok=True)
    rate = learning_rate_schedule(learning_rate, epochs, warmup_epochs, steps_per_epoch)
    distiller.compile(optimizer=keras.optimizers.Adam(rate))
    epoch_log = _EpochLog(run_dir / "epochs.json")
    callbacks = [
        *callbacks,
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tb")),
        _BestStudentCheckpoint(target, best, MONITOR),
        epoch_log,
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience),
    ]
    # The dataset shuffles itself (make_dataset); shuffle=False keeps Keras from warning about it.
    distiller.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose,
                  shuffle=False)
    target.load_weights(best)
    history = epoch_log.history()  # every epoch, also those before a restart
    scores = history.get(MONITOR, [])
    record = {
        "epochs_run": len(epoch_log.epochs),
        "best_val_gap": max(scores) if scores else None,
        "train_seconds": round(sum(history.get("epoch_seconds", [])), 1),  # all processes' epochs
        "history": history,
    }
    artifacts.atomic_write_json(done, record)
    return record


def learning_rate_schedule(learning_rate: float, epochs: int, warmup_epochs: int = 0,
                           steps_per_epoch: int | None = None):
    """`learning_rate`, or with ``warmup_epochs > 0`` (and `steps_per_epoch`) a linear rise
    from 0 over the warm-up, then a cosine decay to 0 at the last epoch."""
    if not (warmup_epochs and steps_per_epoch):
        return learning_rate
    warmup = int(warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(1, epochs * steps_per_epoch - warmup), warmup_target=learning_rate, warmup_steps=warmup
    )


class _EpochLog(keras.callbacks.Callback):
    """Keeps each finished epoch's logs in a JSON file, so a resumed run's history is whole.

    An epoch that ran again after a crash (its backup was not yet written) replaces its
    earlier entry.
    """

    def __init__(self, path: pathlib.Path):
        super().__init__()
        self.path = pathlib.Path(path)
        self.epochs: dict[int, dict[str, float]] = {}
        self._started = time.monotonic()
        if self.path.is_file():
            self.epochs = {int(e): logs for e, logs in artifacts.read_json(self.path)["epochs"].items()}

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self._started
        self.epochs[int(epoch)] = {**{k: float(v) for k, v in (logs or {}).items()}, "epoch_seconds": seconds}
        artifacts.atomic_write_json(self.path, {"epochs": {str(e): v for e, v in sorted(self.epochs.items())}})

    def history(self) -> dict[str, list[float]]:
        """``{metric: [value per epoch, in epoch order]}`` like `keras.callbacks.History`."""
        out: dict[str, list[float]] = {}
        for epoch in sorted(self.epochs):
            for key, value in self.epochs[epoch].items():
                out.setdefault(key, []).append(value)
        return out


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


def distill_kwargs(config: ZooConfig) -> dict[str, Any]:
    """The config's ``distillation:`` section, validated, as `Distiller` keyword arguments."""
    allowed = {
        "mode", "ce_weight", "representation_weight", "prediction_weight", "prediction_loss",
        "teacher_ce_weight", "distill_into_teacher",
    }
    unknown = set(config.distillation) - allowed
    if unknown:
        raise ValueError(f"Unknown distillation keys {sorted(unknown)}. Expected a subset of {sorted(allowed)}.")
    return dict(config.distillation)


def teacher_distiller(config: ZooConfig, teacher: keras.Model, **kwargs: Any) -> Distiller:
    """The `Distiller` that trains `teacher` on all frames, or with the recipe's
    ``training.teacher_train_k: [low, high]`` on a random subset of low..high frames each
    step (padded and masked; validation and evaluation see every frame).

    It learns from the labels (L_CE) alone, or with the recipe's ``teacher_distill_from``
    also from the mean prediction of those trained models (L_pred, BCE, weight 1; no L_rep),
    frozen: a teacher distilled from an ensemble. ``training.teacher_mixup: alpha`` trains
    it on mixup batches (`Distiller`'s ``mixup_alpha``).
    """
    span = config.training.get("teacher_train_k")
    augment = {"train_sampler": "random", "train_k": tuple(span)} if span else {}
    augment["mixup_alpha"] = config.training["teacher_mixup"]
    if not config.teacher_distill_from:
        return Distiller(None, teacher, k=None, **augment, **kwargs)
    return Distiller(ensemble_teacher(config), teacher, k=None, ce_weight=1.0, representation_weight=0.0,
                     prediction_weight=1.0, prediction_loss="bce", **augment, **kwargs)


def teacher_distill_members(config: ZooConfig) -> list[tuple[ZooConfig, keras.Model]]:
    """The models of the recipe's ``teacher_distill_from`` (each ``{config, weights}``: a
    recipe and its teacher's trained weights), loaded, with their recipes."""
    members = []
    for i, member in enumerate(config.teacher_distill_from):
        member_config = ZooConfig.from_file(member["config"])
        model, _ = load_teacher(member_config, member["weights"], name=f"member_{i}_{member_config.family}")
        members.append((member_config, model))
    return members


def ensemble_teacher(config: ZooConfig) -> keras.Model:
    """The recipe's ``teacher_distill_from`` models averaged (`build_ensemble`; one model is
    returned as it is)."""
    members = [model for _, model in teacher_distill_members(config)]
    return members[0] if len(members) == 1 else build_ensemble(members, name="ensemble_teacher")


def train_teacher(
    config: ZooConfig, data_dir, work_dir, *, epochs=None, verbose=1, strategy: tf.distribute.Strategy | None = None,
    data: TrainingData | None = None,
) -> tuple[keras.Model, dict]:
    """Trains (or resumes, or reloads) the config's teacher on all frames.

    With a `strategy` (`kdzoo.distribute.make_strategy`) the models are built in its scope
    and trained by `kdzoo.distribute.fit_stage`; without one, by Keras' `fit`. `data`: the
    run's `TrainingData` (resolved and counted here when not given).
    """
    t = config.training
    data = TrainingData.resolve(config, data_dir) if data is None else data
    keras.utils.set_random_seed(int(t["seed"]))
    with _scope(strategy):
        teacher = build_model(config.model_config("teacher"))
        distiller = teacher_distiller(config, teacher, **_metric_kwargs(data, strategy))
    record = _fit(
        distiller, config, data, pathlib.Path(work_dir) / config.teacher_name(tagged=True) / "teacher",
        epochs=epochs or int(t["epochs"]), verbose=verbose, strategy=strategy,
    )
    return teacher, record


def load_teacher(config: ZooConfig, path: str | os.PathLike, name: str | None = None) -> tuple[keras.Model, dict]:
    """The config's teacher with trained weights (a zoo entry folder or a ``.weights.h5``);
    `name`: the model's name (default: the recipe's teacher name).

    Returns ``(teacher, record)``; the record carries the entry card's ``best_val_gap`` and
    ``epochs_run`` when `path` is a zoo entry, and the weights' path and sha256. Raises
    ValueError when the weights do not fit the config's teacher (Keras itself would load
    a file of another architecture without an error).
    """
    path = pathlib.Path(path)
    entry = path if path.is_dir() else None
    weights = path / artifacts.WEIGHTS_FILE if entry else path
    teacher = build_model({**config.model_config("teacher"), **({"name": name} if name else {})})
    try:
        stored = _stored_values(weights)
        expected = sum(int(math.prod(w.shape)) for w in teacher.weights)
        if stored != expected:
            raise ValueError(f"the file holds {stored:,} values, the recipe's teacher has {expected:,}")
        teacher.load_weights(weights)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(
            f"Teacher weights {weights} do not fit the teacher of {config.path or 'this recipe'}: {err}. "
            "Pass the weights of a teacher trained with this recipe, or leave them out to train it."
        ) from err
    card_file = entry / artifacts.METADATA_FILE if entry else None
    card = artifacts.read_json(card_file) if card_file and card_file.is_file() else {}
    record = {"best_val_gap": card.get("best_val_gap"), "epochs_run": card.get("epochs_run", 0),
              "weights": str(weights), "weights_sha256": artifacts.sha256_of(weights)}
    return teacher, record


def distilling_teacher(config: ZooConfig) -> tuple[keras.Model, dict[str, Any]]:
    """The zoo entry ``distill_from`` names, loaded (its sha256 checked), and its card summary.

    Returns ``(model, {"name", "family", "eval_map", "sha256"})``. Raises ValueError when the
    entry does not take this recipe's frames (feature width, frame count) or predict its classes.
    """
    from kdzoo.zoo import get_registry

    registry = get_registry()
    model = registry.load(config.distill_from)
    card = registry.model_card(config.distill_from)
    spec = config.spec
    frames = model.input["frames"].shape
    classes = model.output["predictions"].shape[-1]
    if frames[-1] != spec.feature_size or frames[1] not in (None, spec.max_frames) or classes != spec.num_classes:
        raise ValueError(
            f"distill_from: {card['name']} takes ({frames[1]}, {frames[-1]}) frames and predicts {classes} "
            f"classes; {config.path or 'this recipe'} has ({spec.max_frames}, {spec.feature_size}) and "
            f"{spec.num_classes}. Name an entry trained on the same data."
        )
    evaluated = (card.get("metrics") or {}).get("eval") or {}
    return model, {"name": card["name"], "family": card["family"], "eval_map": evaluated.get("map"),
                   "sha256": card.get("sha256")}


def _stored_values(path: str | os.PathLike) -> int:
    """Number of values in a ``.weights.h5`` file (every dataset in it)."""
    import h5py

    sizes = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: sizes.append(obj.size) if isinstance(obj, h5py.Dataset) else None)
    return int(sum(sizes))


def train_student(
    config: ZooConfig, k: int | None, teacher: keras.Model | None, data_dir, work_dir, *,
    train_sampler: str | None = None, seed: int | None = None, elastic: bool = False, epochs=None, verbose=1,
    strategy: tf.distribute.Strategy | None = None, data: TrainingData | None = None, teacher_name: str | None = None,
) -> tuple[keras.Model, dict]:
    """Trains the k-frame student, distilled from `teacher` or (teacher=None) on labels alone.

    Args:
        train_sampler: how training steps pick the k frames (default: the config's
            ``train_sampler``); evaluation always uses the config's ``sampler``.
        seed: the run's seed (default: ``training.seed``); a seed other than the
            default gets its own run folder.
        elastic: train the config's elastic student (`k` is ignored: each step draws k
            from ``elastic.k``; validation uses the middle of that span).
        strategy, data: as in `train_teacher`.
        teacher_name: the zoo entry `teacher` is, when it is not the recipe's own teacher
            (``distill_from``): the run gets its own folder.

    Returns ``(student, done record)``.
    """
    t = config.training
    data = TrainingData.resolve(config, data_dir) if data is None else data
    base_seed = int(t["seed"])
    seed = base_seed if seed is None else int(seed)
    train_sampler = train_sampler or config.train_sampler
    with _scope(strategy):
        if elastic:
            low, high = config.elastic
            k = (low + high) // 2
            student = build_model(config.model_config("student", elastic=True))
            name = config.elastic_name(tagged=True)
        else:
            student = None
            name = config.student_name(k, tagged=True)
        keras.utils.set_random_seed(seed + k)
        if student is None:
            student = build_model(config.model_config("student", k))
        kwargs = distill_kwargs(config) if teacher is not None else {}
        distiller = Distiller(
            teacher, student, k=k, sampler=config.sampler, train_sampler=train_sampler,
            train_k=config.elastic if elastic else None, seed=seed,
            **_metric_kwargs(data, strategy), **kwargs,
        )
    stage = stage_name(teacher is not None, train_sampler, seed if seed != base_seed else None, teacher_name)
    record = _fit(
        distiller, config, data, pathlib.Path(work_dir) / name / stage,
        epochs=epochs or int(t.get("student_epochs") or t["epochs"]), verbose=verbose, strategy=strategy, seed=seed,
        learning_rate=float(t.get("student_learning_rate") or t["learning_rate"]),
    )
    return student, record


def _scope(strategy: tf.distribute.Strategy | None):
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _metric_kwargs(data: TrainingData, strategy) -> dict[str, Any]:
    """`fit` tracks GAP in the Distiller (a buffer of every video); the distributed loop
    scores its validation predictions directly and tracks streaming metrics only."""
    if strategy is None:
        return {"metric_capacity": data.metric_capacity}
    return {"metrics": ("hit_at_one",)}


def _fit(distiller: Distiller, config: ZooConfig, data: TrainingData, run_dir: pathlib.Path, *, epochs: int, verbose: int,
         strategy: tf.distribute.Strategy | None, seed: int | None = None,
         learning_rate: float | None = None) -> dict[str, Any]:
    """One stage: Keras' `fit` on one device, or `kdzoo.distribute.fit_stage` under `strategy`.

    `learning_rate`: the stage's peak rate (default: ``training.learning_rate``).

    Under a strategy the config's batch size is per replica (the global batch grows with the
    replicas and an epoch has proportionally fewer steps) and each worker reads its own
    shard of the training files.
    """
    t = config.training
    learning_rate = float(t["learning_rate"]) if learning_rate is None else float(learning_rate)
    batch_size, warmup = int(t["batch_size"]), int(t.get("warmup_epochs") or 0)
    common = dict(epochs=epochs, patience=int(t["patience"]), verbose=verbose)
    train_ds, val_ds, files = datasets(config, None, batch_size, seed=seed, data=data)
    steps = data.steps_per_epoch(batch_size, t["validation_fraction"])
    if strategy is None:
        return fit_stage(distiller, train_ds, val_ds, run_dir, learning_rate=learning_rate,
                         warmup_epochs=warmup, steps_per_epoch=steps, **common)
    replicas = strategy.num_replicas_in_sync
    steps = max(1, steps // replicas)
    train_input = distribute.sharded_input(  # the pipeline of train_ds, per worker and forever
        files, batch_size * replicas, functools.partial(make_dataset, spec=config.spec), shuffle=True,
        seed=int(t["seed"]) if seed is None else int(seed), cache=True, subset="train",
        validation_fraction=float(t["validation_fraction"]), repeat=True, drop_remainder=True,
    )
    return distribute.fit_stage(
        distiller, strategy, train_input, val_ds, run_dir, steps_per_epoch=steps, global_batch_size=batch_size * replicas,
        learning_rate=learning_rate_schedule(learning_rate, epochs, warmup, steps), **common,
    )


def stage_name(distilled: bool, train_sampler: str, seed: int | None = None, teacher: str | None = None) -> str:
    """Run folder of a student stage: ``distilled`` (``distilled_from_<entry>`` with another
    `teacher` than the recipe's) or ``no_teacher_<sampler>``, then ``_seed<s>``."""
    name = (f"distilled_from_{teacher}" if teacher else "distilled") if distilled else f"no_teacher_{train_sampler}"
    return name if seed is None else f"{name}_seed{seed}"
