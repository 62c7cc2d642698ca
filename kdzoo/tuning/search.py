"""keras-tuner search over the student's frame count k, sampler, loss weights and learning rate.

A tune config is a zoo config plus a ``tune:`` section (`kdzoo.tuning.settings`).

The teacher is trained once (resumably, `kdzoo.training.train_teacher`) and frozen; each
trial distils a fresh k-frame student from it (serial mode). One scalar is maximised:

    val_tradeoff = val_student_gap - lambda * FLOPs(student, k) / FLOPs(teacher, all frames)

(FLOPs from `kdzoo.profiling.flops`, one video). It is added to the epoch logs by
`TradeoffCallback`, so keras-tuner checkpoints the best epoch of each trial by it.
The search lives in ``<work_dir>/search/<project_name>`` and resumes after a crash
(completed trials are never re-run; an interrupted one is run again).
"""

from __future__ import annotations

import os
import pathlib
import warnings
from collections.abc import Mapping
from typing import Any

import keras
import keras_tuner

from kdzoo import training
from kdzoo.distillation import Distiller
from kdzoo.models import build_model
from kdzoo.tuning.settings import TuneSettings
from kdzoo.zoo import names
from kdzoo.zoo.config import ZooConfig

OBJECTIVE = "val_tradeoff"
QUALITY = "val_student_gap"
SEARCH_SUBDIR = "search"


# ----------------------------------------------------------------------------- hypermodel
class TradeoffCallback(keras.callbacks.Callback):
    """Adds ``val_tradeoff = val_student_gap - lam * flops_ratio`` (and ``flops_ratio``) to the epoch logs.

    Must run before keras-tuner's callbacks, which read the objective from the same logs.
    """

    def __init__(self, flops_ratio: float, lam: float):
        super().__init__()
        self.flops_ratio, self.lam = float(flops_ratio), float(lam)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["flops_ratio"] = self.flops_ratio
        if QUALITY in logs:
            logs[OBJECTIVE] = float(logs[QUALITY]) - self.lam * self.flops_ratio


def _hp_value(hp, name: str, spec: Any):
    if isinstance(spec, float):
        return hp.Fixed(name, spec)
    if "values" in spec:
        return hp.Choice(name, spec["values"])
    return hp.Float(name, spec["min"], spec["max"], sampling=spec["sampling"])


def _distill_kwargs(config: ZooConfig) -> dict[str, Any]:
    kwargs = training.distill_kwargs(config)
    # The searched weights come from the hyperparameters; the teacher is pretrained (serial).
    for key in ("mode", "representation_weight", "prediction_weight", "teacher_ce_weight", "distill_into_teacher"):
        kwargs.pop(key, None)
    return kwargs


class FrameSearchHyperModel(keras_tuner.HyperModel):
    """Builds a compiled `Distiller`: the frozen pretrained teacher and a k-frame student.

    Hyperparameters: ``k``, ``sampler``, ``learning_rate``,
    ``representation_weight``, ``prediction_weight``.

    Args:
        config: the zoo config (architecture, data spec, distillation defaults).
        settings: the parsed ``tune:`` section.
        teacher: the trained teacher; its weights are copied into a fresh frozen teacher
            for every trial (keras-tuner clears the Keras session between trials).
        metric_capacity: most videos one epoch of GAP can hold (training records + 1).
    """

    def __init__(self, config: ZooConfig, settings: TuneSettings, teacher: keras.Model, metric_capacity: int):
        super().__init__(name="frame_search", tunable=True)
        self.config = config
        self.settings = settings
        self.teacher_weights = [w.copy() for w in teacher.get_weights()]
        self.metric_capacity = int(metric_capacity)
        self._flops: dict[int, int] = {}
        self.teacher_flops = self._profile_flops(teacher, config.spec.max_frames)

    @staticmethod
    def _profile_flops(model: keras.Model, num_frames: int) -> int:
        from kdzoo import profiling  # cost accounting is optional for the training path

        return int(profiling.flops(model, num_frames=num_frames))

    def student_flops(self, k: int) -> int:
        """FLOPs of the k-frame student on one video (cached per k)."""
        k = int(k)
        if k not in self._flops:
            self._flops[k] = self._profile_flops(build_model(self.config.model_config("student", k)), k)
        return self._flops[k]

    def flops_ratio(self, k: int) -> float:
        return self.student_flops(k) / self.teacher_flops

    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declares the search space on `hp` and returns this trial's values."""
        s = self.settings
        return {
            "k": int(hp.Choice("k", list(s.ks))),
            "sampler": hp.Choice("sampler", list(s.samplers)),
            "learning_rate": float(_hp_value(hp, "learning_rate", s.learning_rate)),
            "representation_weight": float(_hp_value(hp, "representation_weight", s.representation_weight)),
            "prediction_weight": float(_hp_value(hp, "prediction_weight", s.prediction_weight)),
        }

    def build_teacher(self) -> keras.Model:
        teacher = build_model(self.config.model_config("teacher"))
        teacher.set_weights(self.teacher_weights)
        teacher.trainable = False
        return teacher

    def build(self, hp: keras_tuner.HyperParameters) -> Distiller:
        values = self.declare(hp)
        keras.utils.set_random_seed(self.settings.seed)
        teacher = self.build_teacher()
        student = build_model(self.config.model_config("student", values["k"]))
        distiller = Distiller(
            teacher, student, k=values["k"], sampler=values["sampler"], mode="serial",
            representation_weight=values["representation_weight"], prediction_weight=values["prediction_weight"],
            metric_capacity=self.metric_capacity, seed=self.settings.seed, **_distill_kwargs(self.config),
        )
        distiller.compile(optimizer=keras.optimizers.Adam(values["learning_rate"]))
        return distiller

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        ratio = self.flops_ratio(hp.get("k"))
        callbacks = [TradeoffCallback(ratio, self.settings.lam)] + list(callbacks or [])
        return model.fit(*args, callbacks=callbacks, **kwargs)


# ----------------------------------------------------------------------------- tuner
def make_tuner(
    hypermodel: FrameSearchHyperModel,
    directory: str | os.PathLike,
    *,
    max_trials: int | None = None,
) -> keras_tuner.Tuner:
    """The keras-tuner tuner of `hypermodel.settings.tuner`; reloads an existing search (overwrite=False)."""
    s = hypermodel.settings
    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE, "max"),
        directory=str(directory),
        project_name=s.project_name,
        overwrite=False,
        executions_per_trial=1,
        seed=s.seed,
    )
    trials = int(max_trials or s.max_trials)
    if s.tuner == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=trials, **common)
    if s.tuner == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=trials, **common)
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=s.epochs, factor=s.hyperband_factor, hyperband_iterations=1, **common
    )


def trial_records(tuner: keras_tuner.Tuner, hypermodel: FrameSearchHyperModel) -> list[dict[str, Any]]:
    """One record per trial (any status): hyperparameters, quality, FLOPs, score."""
    out = []
    lam = hypermodel.settings.lam
    for trial_id in sorted(tuner.oracle.trials, key=lambda t: (len(t), t)):
        trial = tuner.oracle.trials[trial_id]
        values = trial.hyperparameters.values
        record: dict[str, Any] = {"trial_id": trial_id, "status": str(trial.status)}
        for key in ("k", "sampler", "learning_rate", "representation_weight", "prediction_weight"):
            record[key] = values.get(key)
        if "tuner/epochs" in values:
            record["epochs"] = values["tuner/epochs"]
        k = values.get("k")
        flops = hypermodel.student_flops(k) if k is not None else None
        ratio = flops / hypermodel.teacher_flops if flops is not None else None
        score = trial.score if trial.status == "COMPLETED" else None
        quality = None
        if trial.metrics.exists(QUALITY):
            quality = trial.metrics.get_last_value(QUALITY)
        elif score is not None and ratio is not None:
            quality = score + lam * ratio
        record.update({
            "quality": None if quality is None else float(quality),
            "flops": flops,
            "flops_ratio": ratio,
            "score": None if score is None else float(score),
        })
        out.append(record)
    return out


def save_best_student(
    tuner: keras_tuner.Tuner,
    hypermodel: FrameSearchHyperModel,
    best: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    data_dir=None,
    command: str = "",
) -> tuple[pathlib.Path, dict[str, Any]]:
    """Rebuilds the best trial's student from its checkpoint and writes a zoo-style entry.

    The entry goes to ``<out_dir>/<family>_student_k<k>.<dataset>-tuned/`` (see
    `kdzoo.zoo.artifacts.write_entry`). Returns the folder and the metadata written.
    """
    from kdzoo.zoo import artifacts

    config, s = hypermodel.config, hypermodel.settings
    trial = tuner.oracle.get_trial(best["trial_id"])
    with warnings.catch_warnings():
        # The checkpoint also holds the trial's optimizer state, which a rebuilt model does not need.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        distiller = tuner.load_model(trial)
    student = distiller.student
    k = int(best["k"])
    name = names.student_name(config.family, k, f"{config.dataset}-tuned")
    directory = pathlib.Path(out_dir) / name
    meta = dict(training.card_metadata(config, data_dir, command))
    meta.update({
        "name": name,
        "role": "student",
        "num_frames": k,
        "sampler": best["sampler"],
        "teacher": config.teacher_name(tagged=True),
        "distillation": dict(_distill_kwargs(config), mode="serial",
                             representation_weight=best["representation_weight"],
                             prediction_weight=best["prediction_weight"]),
        "tuning": {
            "trial_id": best["trial_id"],
            "hyperparameters": {k_: v for k_, v in trial.hyperparameters.values.items()},
            "objective": f"{QUALITY} - lambda * student_flops / teacher_flops",
            "lambda": s.lam,
            "score": best["score"],
            "settings": s.to_dict(),
        },
        "best_val_gap": best["quality"],
        "flops": int(best["flops"]),
        "teacher_flops": int(hypermodel.teacher_flops),
        "params": int(student.count_params()),
        "teacher_ratio": {"flops": best["flops_ratio"]},
    })
    meta["training"] = dict(meta["training"], learning_rate=best["learning_rate"], epochs=s.epochs)
    written = artifacts.write_entry(directory, student, config.model_config("student", k), meta)
    return directory, written


def run_search(
    config: ZooConfig,
    settings: TuneSettings,
    data_dir: str | os.PathLike | None,
    work_dir: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    max_trials: int | None = None,
    command: str = "",
    verbose: int = 1,
) -> dict[str, Any]:
    """Trains the teacher (once), runs or resumes the search, writes the Pareto report and the best entry.

    Layout::

        <work_dir>/<family>_teacher.<dataset>/teacher/   the teacher's resumable run (train_teacher)
        <work_dir>/search/<project_name>/trial_*/         keras-tuner state and checkpoints
        <work_dir>/search/tb/<trial>/execution0/          TensorBoard logs per trial
        <work_dir>/pareto.{csv,json,png}                  all trials, the front, the best trade-off
        <out_dir>/<family>_student_k<k>.<dataset>-tuned/  the best student (out_dir defaults to
                                                          <work_dir>/pretrained)

    Returns the ``pareto.json`` document plus ``entry`` (the best student's folder).
    """
    work_dir = pathlib.Path(work_dir)
    out_dir = pathlib.Path(out_dir) if out_dir is not None else work_dir / "pretrained"
    data = training.TrainingData.resolve(config, data_dir)  # listed and counted once for the run
    teacher, _ = training.train_teacher(config, data_dir, work_dir, epochs=settings.teacher_epochs, verbose=verbose,
                                        data=data)
    train_ds, val_ds, _ = training.datasets(config, data_dir, settings.batch_size, data=data)
    hypermodel = FrameSearchHyperModel(config, settings, teacher, metric_capacity=data.metric_capacity)
    search_dir = work_dir / SEARCH_SUBDIR
    tuner = make_tuner(hypermodel, search_dir, max_trials=max_trials)
    callbacks = []
    if settings.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(search_dir / "tb")))
    tuner.search(train_ds, validation_data=val_ds, epochs=settings.epochs, callbacks=callbacks, verbose=verbose)

    records = trial_records(tuner, hypermodel)
    summary = {
        "objective": f"{OBJECTIVE} = {QUALITY} - lambda * student_flops / teacher_flops (maximised)",
        "lambda": settings.lam,
        "teacher_flops": hypermodel.teacher_flops,
        "tuner": settings.tuner,
        "settings": settings.to_dict(),
        "command": command,
    }
    from kdzoo.tuning.pareto import write_report

    doc = write_report(records, work_dir, summary=summary,
                       title=f"{config.family}.{config.dataset}: {len(records)} trials")
    doc["entry"] = None
    if doc["best"] is not None:
        best = next(r for r in doc["trials"] if r["trial_id"] == doc["best"])
        directory, _ = save_best_student(tuner, hypermodel, best, out_dir, data_dir=data_dir, command=command)
        doc["entry"] = str(directory)
    return doc
