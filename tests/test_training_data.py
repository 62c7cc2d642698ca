"""The training/tuning seam: a run counts its training records once; a config's ``tune:`` reaches the tuner."""

import pathlib

import keras_tuner
import numpy as np
import pytest
import yaml

from kdzoo.training import stages
from kdzoo.cli import main
from kdzoo.models import build_model
from kdzoo.tuning import FrameSearchHyperModel, load_tune_config, make_tuner
from kdzoo.zoo.config import ZooConfig
from records import tiny_zoo_yaml
from records import write_audioset_train

VIDEOS = 48
TRAIN_YAML = tiny_zoo_yaml(extra="""training:
  batch_size: 8
  validation_fraction: 0.25
  patience: 5
data:
  train: audioset/train-*.tfrecord
  eval: audioset/train-*.tfrecord
""")


@pytest.fixture
def count_spy(monkeypatch):
    """Records every `count_records` call made by the training stages (and returns the real count)."""
    calls = []
    real = stages.count_records

    def spy(files):
        calls.append(sorted(files))
        return real(files)

    monkeypatch.setattr(stages, "count_records", spy)
    return calls


def test_kdzoo_train_counts_the_records_once_for_all_its_stages(tmp_path, count_spy, monkeypatch):
    files = write_audioset_train(tmp_path / "data" / "audioset", VIDEOS, 2)
    config = tmp_path / "netvlad.audioset.yaml"
    config.write_text(TRAIN_YAML)
    seen = []

    def fit_stage(distiller, train_ds, val_ds, run_dir, *, steps_per_epoch, **kwargs):
        # The stage's fit is left out: what matters is what each stage was given.
        seen.append((pathlib.Path(run_dir).relative_to(work).as_posix(), steps_per_epoch, distiller.metric_capacity))
        return {"epochs_run": 0, "best_val_gap": None, "history": {}}

    monkeypatch.setattr(stages, "fit_stage", fit_stage)
    work, out = tmp_path / "runs", tmp_path / "out"
    assert main(["train", str(config), "--data-dir", str(tmp_path / "data"), "--work-dir", str(work),
                 "--out", str(out), "--epochs", "1", "--progress", "0"]) == 0
    # Three stages: the teacher, the distilled student and its no-teacher twin (uniform is both
    # the train and the evaluation sampler). Each holds every record in its GAP buffer and
    # steps through 36 of the 48 (a quarter held out) in batches of 8: ceil(4.5) = 5 steps.
    assert seen == [("netvlad_teacher.audioset/teacher", 5, VIDEOS + 1),
                      ("netvlad_student_k2.audioset/distilled", 5, VIDEOS + 1),
                      ("netvlad_student_k2.audioset/no_teacher_uniform", 5, VIDEOS + 1)]
    # The records were counted once, over the train files.
    assert count_spy == [sorted(files)]


def test_training_data_capacity_and_steps_from_the_record_count(tmp_path, count_spy):
    write_audioset_train(tmp_path / "audioset", 30, 3)
    config = ZooConfig.from_dict(yaml.safe_load(TRAIN_YAML))
    data = stages.TrainingData.resolve(config, tmp_path)
    assert data.num_records == 30 and len(data.files) == 3 and len(count_spy) == 1
    assert data.metric_capacity == 31
    # 30 records, a quarter held out for validation: 22.5 training records -> 3 batches of 8.
    assert data.steps_per_epoch(8, 0.25) == 3
    assert data.steps_per_epoch(64, 0.25) == 1


def _tune_raw(**tune):
    raw = yaml.safe_load(TRAIN_YAML)
    raw["k"] = [1, 2, 5]
    raw["tune"] = {"tuner": "random", "max_trials": 4, "k": [5, 1], "samplers": ["random"], "lambda": 0.3,
                   "learning_rate": [2e-4, 5e-3], "representation_weight": 0.02,
                   "prediction_weight": {"values": [0.5, 1.5]}, "seed": 7, "project_name": "p", **tune}
    return raw


def test_zoo_config_carries_the_tune_section_and_refuses_a_non_mapping():
    raw = _tune_raw()
    config = ZooConfig.from_dict(raw)
    assert dict(config.tune) == raw["tune"]
    raw["tune"]["k"].append(2)  # the config holds its own copy
    assert config.tune["k"] == [5, 1]
    assert ZooConfig.from_dict(yaml.safe_load(TRAIN_YAML)).tune == {}
    with pytest.raises(ValueError, match="Expected 'tune' to be a mapping"):
        ZooConfig.from_dict({**raw, "tune": [1, 2]})


def test_tune_values_of_the_config_reach_the_tuner(tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(_tune_raw()))
    config = ZooConfig.from_file(path)
    same, settings = load_tune_config(config)
    assert same is config
    assert load_tune_config(path)[1] == settings  # a path reads the same ZooConfig

    teacher = build_model(config.model_config("teacher"))
    hypermodel = FrameSearchHyperModel(config, settings, teacher, metric_capacity=10)
    tuner = make_tuner(hypermodel, tmp_path / "search")
    assert isinstance(tuner, keras_tuner.RandomSearch)
    assert tuner.oracle.max_trials == 4 and tuner.oracle.seed == 7 and tuner.project_name == "p"

    hp = keras_tuner.HyperParameters()
    hypermodel.declare(hp)
    space = {p.name: p for p in hp.space}
    assert list(space["k"].values) == [1, 5]
    assert list(space["sampler"].values) == ["random"]
    assert (space["learning_rate"].min_value, space["learning_rate"].max_value) == (2e-4, 5e-3)
    assert space["learning_rate"].sampling == "log"
    assert hp.values["representation_weight"] == 0.02  # a number fixes it
    assert list(space["prediction_weight"].values) == [0.5, 1.5]
    assert hypermodel.settings.lam == 0.3


def test_students_train_at_the_student_learning_rate(tmp_path, count_spy, monkeypatch):
    write_audioset_train(tmp_path / "data" / "audioset", VIDEOS, 2)
    config = tmp_path / "netvlad.audioset.yaml"
    config.write_text(TRAIN_YAML.replace("  batch_size: 8\n", "  batch_size: 8\n  learning_rate: 0.002\n  student_learning_rate: 0.007\n"))
    rates = {}

    def fit_stage(distiller, train_ds, val_ds, run_dir, *, learning_rate, **kwargs):
        rates[pathlib.Path(run_dir).name] = learning_rate
        return {"epochs_run": 0, "best_val_gap": None, "history": {}}

    monkeypatch.setattr(stages, "fit_stage", fit_stage)
    assert main(["train", str(config), "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "out"), "--epochs", "1", "--progress", "0"]) == 0
    assert rates == {"teacher": 0.002, "distilled": 0.007, "no_teacher_uniform": 0.007}


def _record_stages(monkeypatch) -> list[str]:
    """Replaces training by a stub; returns the list of the stages' run folder names it saw."""
    seen = []

    def fit_stage(distiller, train_ds, val_ds, run_dir, **kwargs):
        seen.append(pathlib.Path(run_dir).name)
        return {"epochs_run": 0, "best_val_gap": None, "history": {}}

    monkeypatch.setattr(stages, "fit_stage", fit_stage)
    return seen


def test_kdzoo_train_teacher_only_writes_the_teacher_entry_alone(tmp_path, monkeypatch, capsys):
    write_audioset_train(tmp_path / "data" / "audioset", VIDEOS, 2)
    config = tmp_path / "netvlad.audioset.yaml"
    config.write_text(TRAIN_YAML)
    seen = _record_stages(monkeypatch)
    out = tmp_path / "out"
    args = ["train", str(config), "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "runs"),
            "--out", str(out), "--epochs", "1", "--progress", "0", "--teacher-only"]
    assert main(args) == 0
    assert seen == ["teacher"]
    assert sorted(p.name for p in out.iterdir()) == ["netvlad_teacher.audioset"]
    capsys.readouterr()
    assert main([*args, "--k", "2"]) == 1
    assert "--teacher-only" in capsys.readouterr().err


def test_kdzoo_train_reuses_a_trained_teacher(tmp_path, monkeypatch, capsys):
    write_audioset_train(tmp_path / "data" / "audioset", VIDEOS, 2)
    config_path = tmp_path / "netvlad.audioset.yaml"
    config_path.write_text(TRAIN_YAML)
    config = ZooConfig.from_file(config_path)
    # A "trained" teacher: an entry folder with weights and a card.
    teacher = build_model(config.model_config("teacher"))
    entry = tmp_path / "shipped" / "netvlad_teacher.audioset"
    entry.mkdir(parents=True)
    teacher.save_weights(entry / "model.weights.h5")
    (entry / "metadata.json").write_text('{"best_val_gap": 0.5, "epochs_run": 7}')
    seen = _record_stages(monkeypatch)
    out = tmp_path / "out"
    args = ["train", str(config_path), "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "runs"),
            "--out", str(out), "--epochs", "1", "--progress", "0", "--no-baselines"]
    assert main([*args, "--teacher-weights", str(entry)]) == 0
    assert seen == ["distilled"]  # the teacher was not trained
    card = yaml.safe_load((out / "netvlad_teacher.audioset" / "metadata.json").read_text())
    assert (card["best_val_gap"], card["epochs_run"]) == (0.5, 7)
    written = build_model(config.model_config("teacher"))
    written.load_weights(out / "netvlad_teacher.audioset" / "model.weights.h5")
    for a, b in zip(written.get_weights(), teacher.get_weights()):
        np.testing.assert_array_equal(a, b)

    # Weights of another architecture are refused with one clear line (Keras would load them).
    other = build_model({**config.model_config("teacher"), "aggregator": {"num_clusters": 3, "output_size": 4}})
    other.save_weights(tmp_path / "other.weights.h5")
    capsys.readouterr()
    assert main([*args, "--teacher-weights", str(tmp_path / "other.weights.h5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "do not fit the teacher of" in err[0] and "values" in err[0], err


HRNN_YAML = """
family: hrnn
dataset: audioset
k: [2]
model:
  aggregator: {units: 4, block_size: 5, cell: gru}
  head: {num_mixtures: 1}
"""


def test_kdzoo_train_distills_the_students_from_another_zoo_entry(tmp_path, monkeypatch):
    """``distill_from``: the students learn from another family's shipped teacher; the recipe's
    own teacher is still trained and written, and the cards say which teacher taught them."""
    from kdzoo.zoo import artifacts

    write_audioset_train(tmp_path / "data" / "audioset", VIDEOS, 2)
    configs, shipped = tmp_path / "zoo_configs", tmp_path / "pretrained"
    configs.mkdir()
    (configs / "hrnn.audioset.yaml").write_text(HRNN_YAML)
    recipe = configs / "netvlad.audioset.yaml"
    recipe.write_text(TRAIN_YAML + "distill_from: hrnn_teacher.audioset\n")
    monkeypatch.setenv("KDZOO_ZOO_CONFIGS", str(configs))
    monkeypatch.setenv("KDZOO_PRETRAINED", str(shipped))
    other = ZooConfig.from_file(configs / "hrnn.audioset.yaml")
    source = build_model(other.model_config("teacher"))
    written = artifacts.write_entry(shipped / "hrnn_teacher.audioset", source, other.model_config("teacher"),
                                    {"metrics": {"eval": {"map": 0.3}}})
    seen = {}

    def fit_stage(distiller, train_ds, val_ds, run_dir, **kwargs):
        seen[pathlib.Path(run_dir).name] = None if distiller.teacher is None else distiller.teacher.name
        return {"epochs_run": 0, "best_val_gap": None, "history": {}}

    monkeypatch.setattr(stages, "fit_stage", fit_stage)
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "runs"),
                 "--out", str(out), "--epochs", "1", "--progress", "0"]) == 0
    # The recipe's teacher trains on labels; the distilled student learns from the H-RNN entry
    # (in a run folder of its own); the no-teacher twin from nobody.
    assert seen == {"teacher": None, "distilled_from_hrnn_teacher.audioset": "hrnn_teacher",
                    "no_teacher_uniform": None}
    card = yaml.safe_load((out / "netvlad_student_k2.audioset" / "metadata.json").read_text())
    assert card["teacher"] == "netvlad_teacher.audioset"  # paired with and costed against its own family's
    assert card["distilled_from"] == {"name": "hrnn_teacher.audioset", "family": "hrnn", "eval_map": 0.3,
                                      "sha256": written["sha256"]}
    assert "distilled_from" not in yaml.safe_load((out / "netvlad_teacher.audioset" / "metadata.json").read_text())
    # The reproduce grid's rows learn from the recipe's own teacher: distill_from leaves them as they are.
    from kdzoo.reproduce.setting import config_fingerprint
    plain = ZooConfig.from_dict({**yaml.safe_load(TRAIN_YAML)}, path=str(recipe))
    assert config_fingerprint(ZooConfig.from_file(recipe)) == config_fingerprint(plain)


def test_distill_from_must_take_the_recipes_frames(tmp_path, monkeypatch, capsys):
    from kdzoo.zoo import artifacts

    write_audioset_train(tmp_path / "data" / "audioset", VIDEOS, 2)
    configs, shipped = tmp_path / "zoo_configs", tmp_path / "pretrained"
    configs.mkdir()
    (configs / "hrnn.yt8m.yaml").write_text(HRNN_YAML.replace("audioset", "yt8m").replace("k: [2]", "k: [10]"))
    recipe = configs / "netvlad.audioset.yaml"
    recipe.write_text(TRAIN_YAML + "distill_from: hrnn_teacher.yt8m\n")
    monkeypatch.setenv("KDZOO_ZOO_CONFIGS", str(configs))
    monkeypatch.setenv("KDZOO_PRETRAINED", str(shipped))
    other = ZooConfig.from_file(configs / "hrnn.yt8m.yaml")
    artifacts.write_entry(shipped / "hrnn_teacher.yt8m", build_model(other.model_config("teacher")),
                          other.model_config("teacher"), {})
    monkeypatch.setattr(stages, "fit_stage", lambda *a, **k: {"epochs_run": 0, "best_val_gap": None, "history": {}})
    capsys.readouterr()
    assert main(["train", str(recipe), "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "out"), "--epochs", "1", "--progress", "0"]) == 1
    err = capsys.readouterr().err
    assert "distill_from: hrnn_teacher.yt8m takes (300, 1152) frames" in err and "same data" in err, err
    with pytest.raises(ValueError, match="'distill_from' to name a zoo entry"):
        ZooConfig.from_dict({**yaml.safe_load(TRAIN_YAML), "distill_from": ["a", "b"]})
