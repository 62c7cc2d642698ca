"""Frame-count search: Pareto front, tune config parsing, an end-to-end keras-tuner search on tiny
synthetic AudioSet-layout TFRecords, resuming, and `kdzoo tune` surviving a SIGKILL."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import yaml

from kdzoo.data import make_dataset
from kdzoo.distillation import Distiller
from kdzoo.models import build_model
from kdzoo.tuning import (
    OBJECTIVE,
    FrameSearchHyperModel,
    load_tune_config,
    pareto_front,
    run_search,
)
from kdzoo.zoo import artifacts
from records import serialized_sequence_example
from records import write_tfrecord

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = "tiny"


# ----------------------------------------------------------------------------- helpers
def write_audioset_records(folder, files=2, videos=40, classes=5, max_frames=10, seed=0):
    """Tiny AudioSet-layout SequenceExamples whose labels are learnable from the frames."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).integers(0, 256, size=(classes, 128))
    n = 0
    for f in range(files):
        records = []
        for _ in range(videos):
            labels = sorted(set(rng.choice(classes, size=int(rng.integers(1, 3)), replace=False).tolist()))
            length = int(rng.integers(3, max_frames + 1))
            frames = prototypes[labels].mean(0)[None] + rng.normal(0, 30, size=(length, 128))
            frames = np.clip(frames, 0, 255).astype(np.uint8)
            records.append(serialized_sequence_example(f"vid{n:05d}", labels, {"audio_embedding": frames},
                                                       id_key="video_id"))
            n += 1
        write_tfrecord(folder / f"train-{f:02d}.tfrecord", records)
    return n


def tiny_config(tuner="random", max_trials=3, epochs=1, **tune):
    config = {
        "family": "netvlad",
        "dataset": "audioset",
        "k": [1, 2, 5],
        "sampler": "uniform",
        "model": {"aggregator": {"num_clusters": 4, "output_size": 16}, "head": {"num_mixtures": 1}},
        "distillation": {"mode": "serial", "representation_weight": 0.001, "prediction_weight": 1.0},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.01, "validation_fraction": 0.25,
                     "patience": 3, "seed": 0},
        "data": {"train": "train-*.tfrecord", "eval": "train-*.tfrecord"},
        "tune": {"tuner": tuner, "max_trials": max_trials, "k": [1, 2, 5], "samplers": ["uniform", "random"],
                 "lambda": 0.1, "learning_rate": [1e-3, 3e-2], "representation_weight": [0, 0.01],
                 "prediction_weight": [0.5, 2.0], "epochs": epochs, "project_name": PROJECT},
    }
    config["tune"].update(tune)
    return config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune_data")
    write_audioset_records(folder)
    return folder


def brute_force_front(points):
    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    ok = [i for i, p in enumerate(points) if np.isfinite(p[0]) and np.isfinite(p[1])]
    return [i for i in ok if not any(dominates(points[j], points[i]) for j in ok if j != i)]


def trial_dir(work, trial_id):
    return pathlib.Path(work) / "search" / PROJECT / f"trial_{trial_id}"


def snapshot(work, trial_id):
    d = trial_dir(work, trial_id)
    return (d / "trial.json").read_text(), (d / "checkpoint.weights.h5").stat().st_mtime_ns


# ----------------------------------------------------------------------------- pure parts
def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(0, 14))
        # Small integer grids make ties (equal quality, equal cost, duplicates) common.
        points = [(float(rng.integers(0, 5)), float(rng.integers(0, 5))) for _ in range(n)]
        if trial % 7 == 0 and n:
            points[0] = (float("nan"), 1.0)
        assert pareto_front(points) == brute_force_front(points), points


def test_pareto_front_hand_checked():
    points = [(0.5, 10), (0.6, 20), (0.4, 5), (0.55, 25), (0.6, 20), (0.3, 5)]
    assert pareto_front(points) == [0, 1, 2, 4]
    assert pareto_front([]) == []


def test_tune_config_parsing_and_errors(tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    config, settings = load_tune_config(path)
    assert config.family == "netvlad" and settings.ks == (1, 2, 5)
    assert settings.learning_rate == {"min": 1e-3, "max": 3e-2, "sampling": "log"}
    assert settings.representation_weight == {"min": 0.0, "max": 0.01, "sampling": "linear"}
    assert settings.lam == 0.1 and settings.project_name == PROJECT

    # Without a tune section the defaults come from the zoo config.
    raw = tiny_config()
    del raw["tune"]
    _, defaults = load_tune_config(raw)
    assert defaults.ks == (1, 2, 5) and defaults.samplers == ("uniform",)
    assert defaults.representation_weight == 0.001 and defaults.tuner == "bayesian"

    for tune, message in (
        ({"bogus": 1}, "Unknown tune keys"),
        ({"k": [0, 2]}, "tune.k"),
        ({"k": [11]}, "tune.k"),
        ({"samplers": ["nope"]}, "tune.samplers"),
        ({"tuner": "grid"}, "Unknown tuner"),
        ({"learning_rate": [0, 1e-2]}, "min > 0"),
        ({"prediction_weight": [2.0, 1.0]}, "min <= max"),
        ({"lambda": -1}, "tune.lambda"),
    ):
        with pytest.raises(ValueError, match=message):
            load_tune_config(tiny_config(**tune))


# ----------------------------------------------------------------------------- search
@pytest.mark.slow  # about 50 s on 2 cores: in `pytest -m slow`
def test_end_to_end_bayesian_search(tmp_path, data_dir):
    if importlib.util.find_spec("sklearn") is None:
        pytest.skip("keras-tuner's BayesianOptimization needs scikit-learn (pip install scikit-learn)")
    work = tmp_path / "work"
    config, settings = load_tune_config(tiny_config(tuner="bayesian", max_trials=2, epochs=1))
    doc = run_search(config, settings, data_dir, work, out_dir=tmp_path / "out", command="kdzoo tune tiny.yaml",
                     verbose=0)

    assert (work / "search" / PROJECT / "oracle.json").is_file()
    assert sorted(p.name for p in (work / "search" / PROJECT).glob("trial_*")) == ["trial_0", "trial_1"]

    report = json.loads((work / "pareto.json").read_text())
    trials = report["trials"]
    assert [t["trial_id"] for t in trials] == ["0", "1"]
    assert all(t["status"] == "COMPLETED" for t in trials)
    teacher_flops = report["teacher_flops"]
    for t in trials:
        assert t["k"] in (1, 2, 5) and t["sampler"] in ("uniform", "random")
        assert 1e-3 <= t["learning_rate"] <= 3e-2
        assert 0 <= t["representation_weight"] <= 0.01 and 0.5 <= t["prediction_weight"] <= 2.0
        assert 0.0 <= t["quality"] <= 1.0
        assert t["flops"] < teacher_flops  # k < 10 frames
        assert t["flops_ratio"] == pytest.approx(t["flops"] / teacher_flops)
        assert t["score"] == pytest.approx(t["quality"] - 0.1 * t["flops_ratio"], abs=1e-6)
    # A larger k costs more FLOPs.
    by_k = {t["k"]: t["flops"] for t in trials}
    assert [by_k[k] for k in sorted(by_k)] == sorted(by_k.values())

    # The front is exactly the non-dominated set, and it is non-dominated.
    points = [(t["quality"], t["flops"]) for t in trials]
    expected = brute_force_front(points)
    assert [i for i, t in enumerate(trials) if t["on_front"]] == expected
    assert sorted(report["front"]) == sorted(trials[i]["trial_id"] for i in expected)
    for i in expected:
        assert not any(p[0] >= points[i][0] and p[1] <= points[i][1] and p != points[i] for p in points)
    best = max(trials, key=lambda t: t["score"])
    assert report["best"] == best["trial_id"] and best["on_front"]

    csv_lines = (work / "pareto.csv").read_text().strip().splitlines()
    assert csv_lines[0].startswith("trial_id,status,k,sampler") and len(csv_lines) == 3
    assert (work / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The best student: a zoo-style entry that loads with build_model + load_weights.
    entry = tmp_path / "out" / f"netvlad_student_k{best['k']}.audioset-tuned"
    assert doc["entry"] == str(entry)
    meta = artifacts.read_json(entry / artifacts.METADATA_FILE)
    assert meta["sha256"] == artifacts.sha256_of(entry / artifacts.WEIGHTS_FILE)
    assert meta["num_frames"] == best["k"] and meta["sampler"] == best["sampler"]
    assert meta["tuning"]["hyperparameters"]["learning_rate"] == pytest.approx(best["learning_rate"])
    assert meta["best_val_gap"] == pytest.approx(best["quality"])
    assert meta["teacher_ratio"]["flops"] == pytest.approx(best["flops_ratio"])
    assert meta["command"] == "kdzoo tune tiny.yaml"
    model_config = artifacts.read_json(entry / artifacts.CONFIG_FILE)
    student = build_model(model_config)
    student.load_weights(entry / artifacts.WEIGHTS_FILE)
    assert student.count_params() == meta["params"]
    out = student({"frames": np.zeros((2, best["k"], 128), "float32"),
                   "mask": np.ones((2, best["k"]), "float32")})
    assert out["predictions"].shape == (2, 527)

    # The saved student is the best epoch of the best trial: it reproduces the trial's validation GAP.
    val = make_dataset(sorted(str(p) for p in data_dir.glob("train-*.tfrecord")), config.spec, 16,
                       subset="validation", validation_fraction=0.25)
    evaluator = Distiller(None, student, k=best["k"], sampler=best["sampler"], seed=0, metric_capacity=1000)
    evaluator.compile()
    scores = evaluator.evaluate(val, verbose=0, return_dict=True)
    assert scores["student_gap"] == pytest.approx(best["quality"], abs=1e-5)


def test_resume_runs_only_new_trials(tmp_path, data_dir, monkeypatch):
    fits = []
    original = FrameSearchHyperModel.fit

    def counting_fit(self, hp, model, *args, **kwargs):
        fits.append(dict(hp.values))
        return original(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(FrameSearchHyperModel, "fit", counting_fit)
    work = tmp_path / "work"
    config, settings = load_tune_config(tiny_config(tuner="random", max_trials=2, epochs=1))

    doc = run_search(config, settings, data_dir, work, max_trials=1, verbose=0)
    assert len(fits) == 1 and [t["trial_id"] for t in doc["trials"]] == ["0"]
    before = snapshot(work, "0")
    teacher_done = work / "netvlad_teacher.audioset" / "teacher" / "done.json"
    teacher_mtime = teacher_done.stat().st_mtime_ns

    fits.clear()
    doc = run_search(config, settings, data_dir, work, max_trials=2, verbose=0)
    assert len(fits) == 1, fits  # only the new trial trained
    assert [t["trial_id"] for t in doc["trials"]] == ["0", "1"]
    assert all(t["status"] == "COMPLETED" for t in doc["trials"])
    assert snapshot(work, "0") == before
    assert teacher_done.stat().st_mtime_ns == teacher_mtime  # the teacher was not retrained
    assert len(json.loads((work / "pareto.json").read_text())["trials"]) == 2

    # A third run with nothing left to do trains nothing.
    fits.clear()
    run_search(config, settings, data_dir, work, max_trials=2, verbose=0)
    assert fits == []


@pytest.mark.slow
def test_kdzoo_tune_survives_sigkill(tmp_path, data_dir):
    """`kdzoo tune` killed with SIGKILL while trial 1 trains: the re-run completes the search and
    never re-runs trial 0."""
    work = tmp_path / "work"
    cfg = tmp_path / "tune.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tuner="random", max_trials=3, epochs=4)))
    command = [sys.executable, "-m", "kdzoo.cli", "tune", str(cfg), "--data-dir", str(data_dir),
               "--work-dir", str(work), "--out", str(tmp_path / "out"), "--progress", "0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    log = open(tmp_path / "first.log", "wb")
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    trial1_tb = work / "search" / "tb" / "1"
    try:
        deadline = time.monotonic() + 240
        # trial 1's TensorBoard folder appears when its fit starts: trial 0 is saved as COMPLETED.
        while not trial1_tb.exists():
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "trial 1 never started"
            time.sleep(0.05)
        proc.kill()  # SIGKILL
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -9
    trial0 = json.loads((trial_dir(work, "0") / "trial.json").read_text())
    assert trial0["status"] == "COMPLETED"
    assert json.loads((trial_dir(work, "1") / "trial.json").read_text())["status"] == "RUNNING"
    before = snapshot(work, "0")

    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "best student:" in result.stdout
    report = json.loads((work / "pareto.json").read_text())
    assert [t["trial_id"] for t in report["trials"]] == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in report["trials"])
    assert snapshot(work, "0") == before  # trial 0 was not re-run
    # trial 0 trained once (one TensorBoard train log); the interrupted trial 1 was trained again.
    assert len(list((work / "search" / "tb" / "0").glob("execution0/train/events.out.tfevents.*"))) == 1
    assert (trial_dir(work, "1") / "checkpoint.weights.h5").is_file()
    assert (tmp_path / "out").is_dir() and any((tmp_path / "out").iterdir())


def test_objective_callback_adds_tradeoff():
    from kdzoo.tuning import TradeoffCallback

    logs = {"val_student_gap": 0.5, "loss": 1.0}
    TradeoffCallback(0.25, 0.2).on_epoch_end(0, logs)
    assert logs[OBJECTIVE] == pytest.approx(0.5 - 0.2 * 0.25) and logs["flops_ratio"] == 0.25
    logs = {"loss": 1.0}  # no validation this epoch: no objective
    TradeoffCallback(0.25, 0.2).on_epoch_end(0, logs)
    assert OBJECTIVE not in logs
    assert keras.callbacks.Callback in type(TradeoffCallback(0.1, 0.1)).__mro__
