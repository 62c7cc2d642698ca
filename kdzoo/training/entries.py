"""Zoo entries from a zoo config: train every stage, evaluate, measure the cost, write the cards.

`train_zoo_config` runs the teacher, each k-frame student (distilled, its no-teacher
baselines, every seed) and the elastic student through `kdzoo.training.stages`, scores
them on the eval split and writes one zoo entry (weights, config, card) per model.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import subprocess
from collections.abc import Sequence
from typing import Any

import numpy as np

from kdzoo.evaluation import predict_files, score
from kdzoo.training.stages import (
    TrainingData,
    distill_kwargs,
    distilling_teacher,
    keras_model_path,
    load_teacher,
    resolve_data,
    stage_name,
    train_student,
    train_teacher,
)
from kdzoo.zoo import artifacts
from kdzoo.zoo.config import ZooConfig

EVAL_SUBSET = 1024  # videos of the eval split re-evaluated by the fast zoo test


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=pathlib.Path(__file__).resolve().parents[1],
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def card_metadata(config: ZooConfig, data_dir, command: str) -> dict[str, Any]:
    """The card fields every entry of a config shares (data, licence, training, command, machine)."""
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


def _eval_all(model, config: ZooConfig, data_dir, k: int | None) -> dict[str, Any]:
    eval_files = resolve_data(config.data.get("eval"), data_dir, "eval")
    # One pass over the eval split; the subset is its first EVAL_SUBSET videos (file order).
    predictions, labels = predict_files(
        model, eval_files, config.spec, k=k, sampler=config.sampler, progress=True
    )
    num_classes = config.spec.num_classes
    return {
        "eval": score(predictions, labels, num_classes),
        "eval_subset": score(predictions[:EVAL_SUBSET], labels[:EVAL_SUBSET], num_classes),
    }


def _curve_point(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: metrics[key] for key in ("gap", "map", "hit_at_one")}


def _student_runs(config: ZooConfig, k: int, teacher, data_dir, work_dir, baselines: bool, epochs, verbose,
                  data: TrainingData, teacher_name: str | None = None):
    """Every run of the k-frame student: ``{kind: [(model, record, metrics) per seed]}``.

    Kinds: ``distilled`` (the config's train sampler), and with `baselines` the no-teacher
    twins ``no_teacher_<train_sampler>`` and ``no_teacher_<sampler>`` (the paper's fixed
    frames). The first seed is the config's ``training.seed``: its distilled model ships.
    `teacher_name`: the entry `teacher` is when it is not the recipe's own (``distill_from``).
    """
    kinds = [("distilled", teacher, config.train_sampler)]
    if baselines:
        for sampler in dict.fromkeys((config.train_sampler, config.sampler)):
            kinds.append((stage_name(False, sampler), None, sampler))
    runs: dict[str, list] = {}
    for kind, run_teacher, sampler in kinds:
        for seed in config.seeds_for(k):
            model, record = train_student(
                config, k, run_teacher, data_dir, work_dir, train_sampler=sampler, seed=seed,
                epochs=epochs, verbose=verbose, data=data, teacher_name=teacher_name if run_teacher else None,
            )
            runs.setdefault(kind, []).append((model, record, _eval_all(model, config, data_dir, k)))
    return runs


def _run_summaries(config: ZooConfig, runs: dict[str, list], k: int) -> dict[str, Any]:
    """Card fields of the runs: the baselines' metrics, the seeds' mean ± std, the gain claims.

    A gain is called ``beats`` only when it exceeds twice the larger of the two seed spreads
    (with a single seed there is no spread and the claim is ``single seed``).
    """
    def spread(kind):
        values = np.array([m["eval"]["map"] for _, _, m in runs[kind]])
        return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "runs": [float(v) for v in values]}

    out: dict[str, Any] = {"seeds": config.seeds_for(k), "map_over_seeds": {kind: spread(kind) for kind in runs}}
    baselines = {}
    for kind in runs:
        if kind == "distilled":
            continue
        _, record, metrics = runs[kind][0]
        baselines[kind] = {"metrics": metrics["eval"], "best_val_gap": record["best_val_gap"],
                           "train_sampler": kind.removeprefix("no_teacher_")}
    if baselines:
        out["baselines"] = baselines
        ours = out["map_over_seeds"]["distilled"]
        out["distillation_gain_map"] = {}
        for kind in baselines:
            other = out["map_over_seeds"][kind]
            gain = ours["mean"] - other["mean"]
            noise = 2 * max(ours["std"], other["std"])
            verdict = "single seed" if len(ours["runs"]) < 2 else ("beats" if gain > noise else
                      ("worse" if -gain > noise else "within noise"))
            out["distillation_gain_map"][kind] = {"gain": gain, "twice_spread": noise, "verdict": verdict}
    return out


def _card_encoder(config: ZooConfig):
    """(name, encoder) of the dataset layout's frame encoder for the cards' end-to-end cost."""
    from kdzoo import encoders

    name = encoders.DATASET_ENCODERS.get(config.dataset)
    return name, (encoders.get_encoder(name) if name else None)


def _cost(model, num_frames: int, encoder=None) -> dict[str, Any]:
    """The card's cost block: the classifier alone and, with the encoder, end to end."""
    from kdzoo import profiling  # cost accounting sits on top of the training path

    name, encoder = encoder or (None, None)
    return profiling.card_cost(model, num_frames, encoder, encoder_name=name)


def train_zoo_config(
    config: ZooConfig,
    data_dir: str | os.PathLike | None,
    *,
    out_dir: str | os.PathLike = "pretrained",
    work_dir: str | os.PathLike = "runs",
    ks: Sequence[int] | None = None,
    baselines: bool = True,
    train_elastic: bool = True,
    epochs: int | None = None,
    command: str = "",
    verbose: int = 1,
    teacher_weights: str | os.PathLike | None = None,
) -> dict[str, dict]:
    """Trains a config's teacher and its students, evaluates them, writes zoo entries.

    `teacher_weights` (a zoo entry folder or ``.weights.h5`` of this config's teacher)
    reuses a trained teacher instead of training it; its entry is written again with
    metrics measured now. With the config's ``distill_from`` the students learn from that
    zoo entry instead; their cards name it (``distilled_from``) and still pair them with,
    and cost them against, the recipe's own teacher. Returns the metadata written for
    each entry name. ``ks=()`` with ``train_elastic=False`` writes the teacher's entry alone.
    """
    ks = tuple(config.ks if ks is None else ks)
    train_elastic = bool(train_elastic and config.elastic)
    base = card_metadata(config, data_dir, command)
    written: dict[str, dict] = {}

    data = TrainingData.resolve(config, data_dir)  # listed and counted once for every stage
    if teacher_weights is not None:
        teacher, record = load_teacher(config, teacher_weights)
    else:
        teacher, record = train_teacher(config, data_dir, work_dir, epochs=epochs, verbose=verbose, data=data)
    teacher_name = config.teacher_name(tagged=True)
    teacher_metrics = _eval_all(teacher, config, data_dir, None)
    meta = dict(base, name=teacher_name, role="teacher", num_frames=config.spec.max_frames, sampler=None,
                metrics=teacher_metrics, best_val_gap=record["best_val_gap"], epochs_run=record["epochs_run"])
    from kdzoo import profiling  # cost accounting sits on top of the training path

    encoder = _card_encoder(config)
    meta.update(_cost(teacher, config.spec.max_frames, encoder))
    written[teacher_name] = artifacts.write_entry(
        pathlib.Path(out_dir) / teacher_name, teacher, config.model_config("teacher"), meta
    )
    artifacts.atomic_save_model(teacher, keras_model_path(work_dir, config.teacher_name(tagged=True)))
    source, source_name = teacher, None  # what the students learn from
    if config.distill_from and (ks or train_elastic):
        source, summary = distilling_teacher(config)
        source_name = summary["name"]
        base = dict(base, distilled_from=summary)  # on every student card below

    for k in ks:
        name = config.student_name(k, tagged=True)
        runs = _student_runs(config, k, source, data_dir, work_dir, baselines, epochs, verbose, data, source_name)
        student, record, metrics = runs["distilled"][0]
        meta = dict(base, name=name, role="student", num_frames=k, sampler=config.sampler,
                    train_sampler=config.train_sampler, teacher=teacher_name,
                    distillation=distill_kwargs(config), metrics=metrics,
                    best_val_gap=record["best_val_gap"], epochs_run=record["epochs_run"])
        meta.update(_run_summaries(config, runs, k))
        meta.update(_cost(student, k, encoder))
        meta["teacher_ratio"] = profiling.card_ratios(meta, written[teacher_name])
        written[name] = artifacts.write_entry(
            pathlib.Path(out_dir) / name, student, config.model_config("student", k), meta
        )
        artifacts.atomic_save_model(student, keras_model_path(work_dir, config.student_name(k, tagged=True)))
    if train_elastic:
        name = config.elastic_name(tagged=True)
        student, record = train_student(
            config, None, source, data_dir, work_dir, elastic=True, epochs=epochs, verbose=verbose, data=data,
            teacher_name=source_name,
        )
        low, high = config.elastic
        curve = {k: _eval_all(student, config, data_dir, k) for k in range(low, high + 1)}
        meta = dict(base, name=name, role="student", num_frames=None, elastic_k=[low, high],
                    sampler=config.sampler, train_sampler=config.train_sampler, teacher=teacher_name,
                    distillation=distill_kwargs(config), metrics=curve[high],
                    curve={str(k): _curve_point(m["eval"]) for k, m in curve.items()},
                    curve_subset={str(k): _curve_point(m["eval_subset"]) for k, m in curve.items()},
                    best_val_gap=record["best_val_gap"], epochs_run=record["epochs_run"])
        meta.update(_cost(student, high, encoder))
        meta["teacher_ratio"] = profiling.card_ratios(meta, written[teacher_name])
        written[name] = artifacts.write_entry(
            pathlib.Path(out_dir) / name, student, config.model_config("student", elastic=True), meta
        )
        artifacts.atomic_save_model(student, keras_model_path(work_dir, config.elastic_name(tagged=True)))
    return written
