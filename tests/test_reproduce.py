"""`kdzoo reproduce`: the paper's grid, per-row checkpoints, seeds, `--rows`, results files,
and the `--data`/`--spec` path on a generated 300-frame shard and on the real YouTube-8M video."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kdzoo import reproduce
from kdzoo.evaluation import evaluate_model
from kdzoo.models import build_model
from kdzoo.zoo.config import ZooConfig
from records import serialized_sequence_example, tiny_zoo_yaml, write_tfrecord

TRAINING = """training:
  batch_size: 16
  learning_rate: 0.01
  validation_fraction: 0.25
  patience: 100
  seed: 0
distillation:
  mode: serial
  ce_weight: 1.0
  representation_weight: 0.01
  prediction_weight: 0.5
  prediction_loss: bce
data:
  train: audioset/train-*.tfrecord
  eval: audioset/eval-*.tfrecord
"""


def write_videos(path, n, *, features=(("audio_embedding", 128),), id_key="video_id", classes=527, max_len=10,
                 seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        length = int(rng.integers(max(1, max_len // 2), max_len + 1))
        label = i % 3
        frames = {}
        for name, width in features:
            x = rng.integers(0, 256, size=(length, width), dtype=np.uint8)
            x[:, label] = 255  # a learnable signal in every frame
            frames[name] = x
        records.append(serialized_sequence_example(f"v{seed}-{i}", [label, 3 + label % classes], frames,
                                                   id_key=id_key))
    return write_tfrecord(path, records)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    (root / "data" / "audioset").mkdir(parents=True)
    write_videos(root / "data" / "audioset" / "train-0.tfrecord", 48, seed=0)
    write_videos(root / "data" / "audioset" / "eval-0.tfrecord", 24, seed=1)
    config = root / "netvlad.audioset.yaml"
    config.write_text(tiny_zoo_yaml(output_size=4) + TRAINING)
    return root, ZooConfig.from_file(config)


def test_grid_has_the_papers_rows():
    rows = reproduce.grid("netvlad", [2, 5])
    ids = [r.id for r in rows]
    assert ids[0] == "teacher" and ids.count("teacher") == 1
    assert [i for i in ids if i.startswith("k2/no_teacher/")] == [
        f"k2/no_teacher/{s}" for s in ("uniform", "random", "first", "middle", "last", "first_middle_last")]
    assert [i for i in ids if i.startswith("k5/") and "no_teacher" not in i] == [
        "k5/parallel/rep", "k5/parallel/rep+ce", "k5/parallel/rep+pred+ce", "k5/serial/rep", "k5/serial/pred",
        "k5/serial/rep+ce", "k5/serial/pred+ce", "k5/serial/rep+pred+ce", "k5/serial/rep+pred+ce+inter"]
    assert len(rows) == 1 + 2 * (6 + 8 + 1)
    assert [r.id for r in reproduce.grid("hrnn", [2]) if "inter" in r.losses] == ["k2/serial/rep+pred+ce+inter"]
    assert not [r for r in reproduce.grid("gru", [2]) if "inter" in r.losses]
    assert len(reproduce.grid("gru", [2])) == 1 + 6 + 8


def test_select_and_paper_ks(tiny):
    rows = reproduce.grid("netvlad", [1, 2])
    assert [r.id for r in reproduce.select(rows, "teacher, k2/serial/pred*")] == [
        "teacher", "k2/serial/pred", "k2/serial/pred+ce"]
    assert reproduce.select(rows, "k3/*") == []
    assert [r.key for r in reproduce.select([r.with_seed(1) for r in rows[:2]], "*@1")] == [
        "teacher@1", "k1/no_teacher/uniform@1"]
    _, config = tiny
    assert reproduce.paper_ks(config) == (1, 2, 3, 5)


def test_loss_weights_keep_the_recipes_for_named_losses(tiny):
    _, config = tiny
    assert reproduce.loss_weights(config, ("rep", "ce")) == {
        "ce_weight": 1.0, "representation_weight": 0.01, "prediction_weight": 0.0, "intermediate_weight": 0.0}
    assert reproduce.loss_weights(config, ("pred", "inter"))["intermediate_weight"] == 1.0  # recipe has none
    with pytest.raises(ValueError, match="Unknown losses"):
        reproduce.loss_weights(config, ("kl",))


def _fake_row(run, row, val_gap, eval_map):
    """A finished row's record, as `run_row` writes it (no training)."""
    from kdzoo.zoo import artifacts

    record = {"row": row.id, "seed": row.seed, "kind": row.kind, "k": row.k, "mode": row.mode,
              "losses": list(row.losses), "train_sampler": row.sampler, "eval_sampler": "uniform",
              "eval": {"map": eval_map, "gap": eval_map + 0.1, "hit_at_one": eval_map + 0.2, "videos": 10},
              "best_val_gap": val_gap, "epochs_run": 1, "fingerprint": run.fingerprint, "seconds": 1.0}
    artifacts.atomic_write_json(run.row_dir(row) / "row.json", record)


def test_headline_rows_get_more_seeds_chosen_on_validation_gap(tiny, tmp_path):
    root, config = tiny
    run = reproduce.Reproduction(config, root / "data", tmp_path / "w", ks=[2, 5], seeds=3, encoder="none")
    R = reproduce.Row
    assert [r.key for r in run.planned("k2/*") if r.seed] == []  # nothing finished: no extra seeds yet
    _fake_row(run, R("teacher"), None, 0.30)
    _fake_row(run, R("no_teacher", 2, sampler="uniform"), 0.20, 0.19)
    _fake_row(run, R("no_teacher", 2, sampler="random"), 0.21, 0.18)  # best on validation, not on eval
    _fake_row(run, R("distilled", 2, mode="serial", losses=("rep",)), 0.25, 0.22)
    _fake_row(run, R("distilled", 2, mode="parallel", losses=("rep", "ce")), 0.24, 0.23)
    extra = [r.key for r in run.planned(None) if r.seed]
    assert extra == ["teacher@1", "teacher@2", "k2/serial/rep@1", "k2/serial/rep@2",
                     "k2/no_teacher/random@1", "k2/no_teacher/random@2"]
    assert [r.key for r in run.planned("k2/serial/*") if r.seed] == ["k2/serial/rep@1", "k2/serial/rep@2"]
    assert [r.key for r in run.planned("k2/serial/*@0") if r.seed] == []
    for seed, value in ((1, 0.26), (2, 0.20)):
        _fake_row(run, R("distilled", 2, mode="serial", losses=("rep",), seed=seed), 0.2, value)
    doc = run.write()
    entry = next(e for e in doc["summary"] if e["row"] == "k2/serial/rep")
    assert entry["seeds"] == [0, 1, 2]
    assert entry["map"] == pytest.approx(np.mean([0.22, 0.26, 0.20]))
    assert entry["map_std"] == pytest.approx(np.std([0.22, 0.26, 0.20], ddof=1))
    assert entry["cost"]["flops"] < next(e for e in doc["summary"] if e["row"] == "teacher")["cost"]["flops"]
    assert not doc["complete"] and "k5/serial/pred@0" in doc["remaining"]
    md = (tmp_path / "w" / "reproduce.md").read_text()
    assert md.startswith("Partial grid: 5 row(s) finished")
    assert f"| `k2/serial/rep` | 2 | 3 | {np.mean([0.22, 0.26, 0.20]):.4f} ± {entry['map_std']:.4f} |" in md
    # The claims, from the rows alone: teacher 0.30 vs best distilled (parallel/rep+ce 0.23), etc.
    checks = reproduce.comparisons(doc)
    assert checks[0] == ("k=2: teacher >= best distilled: yes, +0.0700 mAP (`teacher` 0.3000 vs "
                         "`k2/parallel/rep+ce` 0.2300; one seed on at least one side: no spread to judge it by)")
    assert checks[1].startswith("k=2: best distilled > best no-teacher: yes, +0.0400 mAP")
    assert checks[2].startswith("k=2: best serial vs best parallel: -0.0033 mAP (`k2/serial/rep` 0.2267")
    assert len(checks) == 3  # no pair of rows for a loss comparison has run; nothing at k=5
    assert "- k=2: teacher >= best distilled: yes" in md
    # A later row with a better validation GAP becomes the headline: the old one keeps its seeds.
    _fake_row(run, R("distilled", 2, mode="serial", losses=("rep", "ce")), 0.30, 0.21)
    assert [r.key for r in run.planned(None) if r.seed and r.kind == "distilled"] == [
        "k2/serial/rep+ce@1", "k2/serial/rep+ce@2"]
    doc = run.write()
    assert next(e for e in doc["summary"] if e["row"] == "k2/serial/rep")["seeds"] == [0, 1, 2]
    assert "k2/serial/rep+ce@1" in doc["remaining"] and "k2/serial/rep@1" not in doc["remaining"]
    # A row stopped after 2 epochs is reported as in progress, from its BackupAndRestore state.
    from kdzoo.zoo import artifacts

    run_dir = run.row_dir(R("distilled", 2, mode="serial", losses=("pred",))) / "run"
    artifacts.atomic_write_json(run_dir / "backup" / "training_metadata.json", {"epoch": 2, "batch": 0})
    artifacts.atomic_write_json(run_dir / "best.weights.json", {"epoch": 1, "score": 0.125})
    doc = run.write()
    assert doc["in_progress"] == [{"row": "k2/serial/pred@0", "epochs_done": 2, "best_val_gap": 0.125}]
    assert "In progress: `k2/serial/pred@0`, 2 epoch(s) done, best validation GAP@20 so far 0.1250." in (
        tmp_path / "w" / "reproduce.md").read_text()


def test_rows_run_resume_and_report_what_their_weights_score(tiny, tmp_path):
    root, config = tiny
    kwargs = dict(ks=[2], seeds=1, epochs=1, verbose=0, encoder="none")
    run = reproduce.Reproduction(config, root / "data", tmp_path / "w", **kwargs)
    patterns = "teacher,k2/no_teacher/first,k2/serial/rep,k2/parallel/rep,k2/serial/rep+pred+ce+inter"
    first = run.run(patterns, max_rows=2)  # stopped after two rows
    assert [r["row"] for r in first["rows"]] == ["teacher", "k2/no_teacher/first"]
    assert "k2/serial/rep@0" in first["remaining"] and not first["complete"]
    stamp = (run.row_dir(reproduce.Row("teacher")) / "row.json").stat().st_mtime_ns

    doc = reproduce.Reproduction(config, root / "data", tmp_path / "w", **kwargs).run(patterns)
    assert (run.row_dir(reproduce.Row("teacher")) / "row.json").stat().st_mtime_ns == stamp  # not re-run
    assert sorted(f"{r['row']}@{r['seed']}" for r in doc["rows"]) == sorted(
        f"{p}@0" for p in patterns.split(","))

    by_id = {r["row"]: r for r in doc["rows"]}
    # The reported numbers are those of the row's saved weights, measured independently.
    student = build_model(config.model_config("student", 2))
    student.load_weights(run.row_dir(reproduce.Row("no_teacher", 2, sampler="first")) / "run" / "best.weights.h5")
    measured = evaluate_model(student, str(root / "data" / "audioset" / "eval-0.tfrecord"), config.spec,
                              k=2, sampler="first")
    assert by_id["k2/no_teacher/first"]["eval_sampler"] == "first"
    for metric in ("gap", "map", "hit_at_one"):
        assert by_id["k2/no_teacher/first"]["eval"][metric] == pytest.approx(measured[metric], abs=1e-6)
    # An L_rep-only serial student classifies with the frozen teacher's head.
    teacher = build_model(config.model_config("teacher"))
    teacher.load_weights(run.row_dir(reproduce.Row("teacher")) / "run" / "best.weights.h5")
    student.load_weights(run.row_dir(reproduce.Row("distilled", 2, mode="serial", losses=("rep",)))
                         / "run" / "best.weights.h5")
    for a, b in zip(student.get_layer("moe").get_weights(), teacher.get_layer("moe").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert by_id["k2/serial/rep"]["head"] == "teacher's" and by_id["k2/parallel/rep"]["head"] == "teacher's"
    assert by_id["k2/serial/rep+pred+ce+inter"]["loss_weights"]["intermediate_weight"] == 1.0
    md = (tmp_path / "w" / "reproduce.md").read_text()
    # 16 rows at k=2 (teacher, 6 baselines, 8 of Table 1, the intermediate variant): 5 ran.
    assert md.startswith("Partial grid: 5 row(s) finished, 11 planned run(s) left") and not doc["complete"]
    assert "| `k2/parallel/rep` | 2 | 1 |" in md
    assert json.loads((tmp_path / "w" / "reproduce.json").read_text())["rows"] == doc["rows"]


def test_a_changed_recipe_is_not_mixed_into_old_rows(tiny, tmp_path):
    root, config = tiny
    run = reproduce.Reproduction(config, root / "data", tmp_path / "w", ks=[2], seeds=1, epochs=1, verbose=0)
    _fake_row(run, reproduce.Row("no_teacher", 2, sampler="last"), 0.1, 0.1)
    changed = ZooConfig.from_dict({**_raw(config), "training": {**config.training, "learning_rate": 0.5}})
    with pytest.raises(ValueError, match="trained with another recipe"):
        reproduce.Reproduction(changed, root / "data", tmp_path / "w", ks=[2], seeds=1, epochs=1).run("k2/*")
    # The `kdzoo tune` search space trains no row: editing it keeps the finished rows.
    tuned = ZooConfig.from_dict({**_raw(config), "training": dict(config.training), "tune": {"max_trials": 3}})
    assert reproduce.config_fingerprint(tuned) == reproduce.config_fingerprint(config)
    # Students train at the recipe's student_learning_rate when it sets one (a new key: new rows).
    student_rate = ZooConfig.from_dict({**_raw(config), "training": {**config.training, "student_learning_rate": 0.002}})
    assert reproduce.config_fingerprint(student_rate) != reproduce.config_fingerprint(config)
    # A loss the recipe weighs 0 is trained at the default weight by the rows that name it: the
    # same rows as a recipe that sets the default, so the zoo students may leave a loss out.
    defaults = reproduce.DEFAULT_WEIGHTS
    at_default = ZooConfig.from_dict({**_raw(config), "distillation": {
        **config.distillation, "representation_weight": defaults["representation_weight"]}})
    left_out = ZooConfig.from_dict({**_raw(config), "distillation": {**config.distillation, "representation_weight": 0.0}})
    other = ZooConfig.from_dict({**_raw(config), "distillation": {**config.distillation, "representation_weight": 0.5}})
    assert reproduce.config_fingerprint(left_out) == reproduce.config_fingerprint(at_default)
    assert reproduce.config_fingerprint(other) != reproduce.config_fingerprint(at_default)
    assert (reproduce.loss_weights(left_out, ["rep", "ce"])
            == reproduce.loss_weights(at_default, ["rep", "ce"]))
    schedule = reproduce.Reproduction(student_rate, root / "data", tmp_path / "w2", ks=[2], seeds=1)._schedule
    assert schedule("student") == (int(config.training["epochs"]), 0.002)
    assert schedule("teacher") == (int(config.training["epochs"]), 0.01)


def test_a_fresh_work_dir_continues_the_grid_of_a_results_file(tiny, tmp_path):
    root, config = tiny
    old = reproduce.Reproduction(config, root / "data", tmp_path / "old", ks=[2], seeds=3, encoder="none")
    R = reproduce.Row
    _fake_row(old, R("teacher"), None, 0.30)
    _fake_row(old, R("no_teacher", 2, sampler="random"), 0.21, 0.18)
    _fake_row(old, R("distilled", 2, mode="serial", losses=("rep", "ce")), 0.25, 0.22)
    _fake_row(old, R("distilled", 2, mode="serial", losses=("rep", "ce"), seed=1), 0.24, 0.23)
    results = tmp_path / "results.json"
    doc = old.write()
    doc["rows"].append({**doc["rows"][0], "row": "k7/no_teacher/last"})  # not in this grid: ignored
    results.write_text(json.dumps(doc))

    fresh = reproduce.Reproduction(config, root / "data", tmp_path / "new", ks=[2], seeds=3, encoder="none")
    assert [r.key for r in fresh.planned(None) if r.seed] == ["teacher@1", "teacher@2"]  # no k2 headline yet
    assert sorted(fresh.import_rows(results)) == [
        "k2/no_teacher/random@0", "k2/serial/rep+ce@0", "k2/serial/rep+ce@1", "teacher@0"]
    todo = [r.key for r in fresh.planned(None) if fresh.finished(r) is None]
    assert "k2/serial/rep+ce@0" not in todo and "k2/serial/rep+ce@2" in todo and "k2/serial/rep+ce@1" not in todo
    assert fresh.write()["rows"] == old.write()["rows"]
    assert fresh.import_rows(results) == []  # already finished here: kept, not overwritten
    # Results files are named after the config file, so two recipes of a family never share one.
    fresh.write(tmp_path / "res")
    assert json.loads((tmp_path / "res" / "reproduce_netvlad.audioset.json").read_text())["rows"] == doc["rows"][:-1]
    v1 = ZooConfig.from_dict(_raw(config), path="benchmarks/configs/netvlad.audioset.v1.yaml")
    assert reproduce.Reproduction(v1, root / "data", tmp_path / "v1", ks=[2]).results_name == "reproduce_netvlad.audioset.v1"

    changed = ZooConfig.from_dict({**_raw(config), "training": {**config.training, "learning_rate": 0.5}})
    other = reproduce.Reproduction(changed, root / "data", tmp_path / "other", ks=[2], seeds=3, encoder="none")
    with pytest.raises(ValueError, match="another recipe"):
        other.import_rows(results)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a kdzoo reproduce results file"):
        fresh.import_rows(tmp_path / "junk.json")


def _raw(config):
    return {"family": config.family, "dataset": config.dataset, "k": list(config.ks),
            "sampler": config.sampler, "model": dict(config.model), "distillation": dict(config.distillation),
            "data": dict(config.data)}


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


YT8M_YAML = """family: netvlad
dataset: yt8m
k: [6, 10, 15, 20, 30]
sampler: uniform
model:
  aggregator: {num_clusters: 2, output_size: 4}
  head: {num_mixtures: 1}
distillation: {mode: serial, ce_weight: 1.0, representation_weight: 0.01, prediction_weight: 1.0}
training: {batch_size: 8, learning_rate: 0.01, patience: 100, seed: 0, validation_fraction: 0.3}
"""


def _reproduce(tmp_path, *args):
    config = tmp_path / "netvlad.yt8m.yaml"
    config.write_text(YT8M_YAML)
    cmd = [sys.executable, "-m", "kdzoo.cli", "reproduce", str(config), "--work-dir", str(tmp_path / "w"),
           "--epochs", "1", "--progress", "0", "--seeds", "1", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, json.loads((tmp_path / "w" / "reproduce.json").read_text())


@pytest.mark.slow
def test_cli_on_a_generated_300_frame_shard_with_a_spec_file(tmp_path):
    spec = {"features": [{"name": "rgb", "width": 12}, {"name": "audio", "width": 4}], "num_classes": 6,
            "max_frames": 300}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    feats = (("rgb", 12), ("audio", 4))
    write_videos(tmp_path / "train-0.tfrecord", 24, features=feats, id_key="id", classes=6, max_len=300)
    write_videos(tmp_path / "validate-0.tfrecord", 8, features=feats, id_key="id", classes=6, max_len=300, seed=1)
    stdout, doc = _reproduce(tmp_path, "--data", str(tmp_path / "train-*.tfrecord"),
                             "--eval-data", str(tmp_path / "validate-*.tfrecord"), "--spec", str(tmp_path / "spec.json"),
                             "--rows", "teacher,k6/serial/rep+pred+ce,k30/no_teacher/uniform")
    assert doc["ks"] == [6, 10, 15, 20, 30]  # the paper's YouTube-8M budgets
    rows = {r["row"]: r for r in doc["rows"]}
    assert sorted(rows) == ["k30/no_teacher/uniform", "k6/serial/rep+pred+ce", "teacher"]
    assert all(r["eval"]["videos"] == 8 for r in rows.values())
    cost = {e["row"]: e["cost"] for e in doc["summary"]}
    assert cost["k30/no_teacher/uniform"]["flops"] < cost["teacher"]["flops"]
    assert "Partial grid: 3 row(s) finished" in stdout


@pytest.mark.slow
def test_cli_on_the_real_youtube8m_frame_level_video(tmp_path, yt8m_dir):
    (tmp_path / "spec.yaml").write_text("preset: yt8m\n")
    video = str(yt8m_dir / "frame_level" / "paddlevideo_example_SjJ3.tfrecord")
    _, doc = _reproduce(tmp_path, "--data", video, "--eval-data", video, "--validation-data", video,
                        "--spec", str(tmp_path / "spec.yaml"), "--rows", "teacher,k10/serial/pred+ce")
    assert doc["ks"] == [6, 10, 15, 20, 30]  # the paper's YouTube-8M budgets, from the 300-frame spec
    rows = {r["row"]: r for r in doc["rows"]}
    assert sorted(rows) == ["k10/serial/pred+ce", "teacher"]
    assert rows["teacher"]["eval"]["videos"] == 1 and rows["k10/serial/pred+ce"]["k"] == 10
    assert doc["validation"] == "1 validation file(s) given on the command line"
    # The k=10 student's saved weights, rebuilt from the recipe moved onto the YT8M layout, score
    # what the row reports on the real video.
    config = reproduce.reproduce_config(str(tmp_path / "netvlad.yt8m.yaml"), data=video, eval_data=video,
                                        spec=str(tmp_path / "spec.yaml"))
    assert config.spec.feature_size == 1024 + 128 and config.spec.max_frames == 300
    student = build_model(config.model_config("student", 10))
    student.load_weights(tmp_path / "w" / "rows" / "k10__serial__pred+ce@0" / "run" / "best.weights.h5")
    measured = evaluate_model(student, video, config.spec, k=10, sampler="uniform")
    for metric in ("gap", "map", "hit_at_one"):
        assert rows["k10/serial/pred+ce"]["eval"][metric] == pytest.approx(measured[metric], abs=1e-6)


def test_spec_without_data_is_a_clear_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(YT8M_YAML)
    with pytest.raises(ValueError, match="pass them with --data and --eval-data"):
        reproduce.reproduce_config(str(config), spec="yt8m")
    with pytest.raises(FileNotFoundError, match="spec file not found"):  # kdzoo.data.get_spec's error
        reproduce.reproduce_config(str(config), data="x", eval_data="y", spec="nope.yaml")
    with pytest.raises(ValueError, match="Unknown dataset spec 'nope'"):
        reproduce.reproduce_config(str(config), data="x", eval_data="y", spec="nope")


def test_a_difference_counts_only_beyond_twice_the_seed_spread():
    a = {"row": "a", "map": 0.25, "map_std": 0.004}
    b = {"row": "b", "map": 0.24, "map_std": 0.003}
    assert reproduce.report.difference(a, b).endswith("beyond twice the seed spread (0.0040))")
    assert reproduce.report.difference({**a, "map_std": 0.006}, b).endswith("within noise (seed spread 0.0060))")
    assert "no spread" in reproduce.report.difference(a, {**b, "map_std": None})


def test_headline_rows_are_compared_on_their_seeds_not_the_best_single_run():
    def entry(row, kind, maps):
        return {"row": row, "k": 2, "kind": kind, "seeds": list(range(len(maps))), "map": float(np.mean(maps)),
                "map_std": float(np.std(maps, ddof=1)) if len(maps) > 1 else None}
    summary = [entry("teacher", "teacher", [0.22, 0.21, 0.23]),
               entry("k2/serial/rep+ce", "distilled", [0.2010, 0.2024, 0.2012]),
               entry("k2/serial/pred+ce", "distilled", [0.2030]),  # best on eval, one seed
               entry("k2/no_teacher/random", "no_teacher", [0.2035, 0.2040, 0.2010])]
    lines = reproduce.report.comparisons({"ks": [2], "summary": summary})
    best = next(line for line in lines if line.startswith("k=2: best distilled"))
    assert "`k2/serial/pred+ce` 0.2030" in best and "no spread" in best
    head = next(line for line in lines if line.startswith("k=2: headline distilled"))
    spread = float(np.std([0.2035, 0.2040, 0.2010], ddof=1))  # the larger of the two
    assert "3 and 3 seeds): no, -0.0013 mAP" in head
    assert head.endswith(f"within noise (seed spread {spread:.4f}))")
    teacher = next(line for line in lines if line.startswith("k=2: teacher >= headline"))
    assert "(3 and 3 seeds): yes, +0.0185 mAP" in teacher and teacher.endswith(
        "within noise (seed spread 0.0100))")  # 0.0185 < 2 x 0.0100
    # Without a seeded no-teacher row there is no distilled-vs-no-teacher headline line.
    assert not [line for line in reproduce.report.comparisons({"ks": [2], "summary": summary[:3]})
                if "headline no-teacher" in line]


def test_the_headline_among_seeded_rows_is_the_one_chosen_on_validation_not_on_eval():
    def run(row, seed, eval_map, val_gap):
        return {"row": row, "seed": seed, "k": 2, "kind": "distilled", "eval_sampler": "uniform",
                "train_sampler": "random", "best_val_gap": val_gap,
                "eval": {"map": eval_map, "gap": 0.3, "hit_at_one": 0.5}}
    # Both rows have 3 seeds (the headline moved after the first one's seeds ran); the second
    # has the better seed-0 validation GAP and the lower eval mAP.
    rows = [run("k2/serial/rep+ce", s, m, v) for s, m, v in ((0, 0.205, 0.31), (1, 0.204, 0.30), (2, 0.206, 0.33))]
    rows += [run("k2/parallel/rep+ce", s, m, v) for s, m, v in ((0, 0.201, 0.32), (1, 0.202, 0.30), (2, 0.200, 0.30))]
    summary = reproduce.report.summarize(rows)
    assert [e["val_gap"] for e in summary] == [0.31, 0.32]  # seed 0's, not the best or the mean
    assert reproduce.report.headline(summary)["row"] == "k2/parallel/rep+ce"
    # A row without a recorded validation GAP (an old results file) ranks below one with it.
    unknown = [{**r, "best_val_gap": None} for r in rows[:3]]
    assert reproduce.report.headline(reproduce.report.summarize(unknown + rows[3:]))["row"] == "k2/parallel/rep+ce"
    assert reproduce.report.headline(reproduce.report.summarize(rows[:3]))["row"] == "k2/serial/rep+ce"
    # A results file written before summaries carried it: the comparisons read it from the rows.
    teacher = [{**run("teacher", s, m, None), "kind": "teacher", "k": None} for s, m in ((0, 0.22), (1, 0.23))]
    old_summary = [{k: v for k, v in e.items() if k != "val_gap"} for e in reproduce.report.summarize(teacher + rows)]
    lines = reproduce.report.comparisons({"ks": [2], "summary": old_summary, "rows": teacher + rows})
    assert any(line.startswith("k=2: teacher >= headline distilled") and "`k2/parallel/rep+ce`" in line
               for line in lines)


def test_not_run_lists_a_budget_without_finished_rows_as_one_item():
    remaining = ["k1/no_teacher/uniform@0", "k1/serial/rep@0", "k2/serial/pred@0", "k5/serial/rep@0", "teacher@1"]
    assert reproduce.report.not_run(remaining, ["teacher", "k2/serial/rep"]) == (
        "k1/* (2 runs), k2/serial/pred@0, k5/* (1 run), teacher@1")
    assert reproduce.report.not_run(remaining[:2], ["k1/serial/pred"]) == ", ".join(remaining[:2])


def test_the_teachers_head_is_copied_only_into_a_student_head_of_the_same_shape():
    from kdzoo.models import build_model
    from kdzoo.reproduce.runner import copy_head

    base = {"family": "netvlad", "num_frames": 4, "feature_size": 8, "num_classes": 5,
            "aggregator": {"num_clusters": 2, "output_size": 6}}
    teacher, same = build_model(base), build_model(base)
    copy_head(teacher, same)
    names = [layer.name for layer in same.layers]
    for layer in same.layers[names.index("embedding") + 1:]:
        for a, b in zip(layer.get_weights(), teacher.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    wider = build_model({**base, "aggregator": {"num_clusters": 2, "output_size": 7}})
    with pytest.raises(ValueError, match="heads differ in width"):
        copy_head(teacher, wider)
    # The model config's embedding_size puts a linear layer before the head: the same shapes.
    projected = build_model({**base, "aggregator": {"num_clusters": 2, "output_size": 7}, "embedding_size": 6})
    copy_head(teacher, projected)
    assert projected.get_layer("embedding_projection").kernel.shape == (7, 6)


def test_a_student_wider_than_its_teacher_runs_the_l_rep_only_and_intermediate_rows(tiny, tmp_path):
    root, config = tiny
    # A wider embedding (hidden 8 vs the teacher's 4) and a narrower VLAD matrix (1 cluster vs 2).
    wide = ZooConfig.from_dict({**_raw(config), "training": dict(config.training),
                                "student": {"hidden_size": 8, "hidden_batch_norm": True,
                                            "aggregator": {"num_clusters": 1}}})
    run = reproduce.Reproduction(wide, root / "data", tmp_path / "w", ks=[2], seeds=1, epochs=1, verbose=0,
                                 encoder="none")
    doc = run.run("teacher,k2/serial/rep,k2/serial/rep+pred+ce+inter")
    by_id = {r["row"]: r for r in doc["rows"]}
    assert by_id["k2/serial/rep+pred+ce+inter"]["head"] == "own"
    assert 0 < by_id["k2/serial/rep+pred+ce+inter"]["eval"]["map"] <= 1
    assert by_id["k2/serial/rep"]["head"] == "teacher's, behind a 8 -> 4 projection"
    # The saved weights are a student with the projection; the serial one has the teacher's head
    # and scores what the row reports.
    student = build_model({**wide.model_config("student", 2), "embedding_size": 4})
    student.load_weights(run.row_dir(reproduce.Row("distilled", 2, mode="serial", losses=("rep",)))
                         / "run" / "best.weights.h5")
    teacher = build_model(wide.model_config("teacher"))
    teacher.load_weights(run.row_dir(reproduce.Row("teacher")) / "run" / "best.weights.h5")
    for a, b in zip(student.get_layer("moe").get_weights(), teacher.get_layer("moe").get_weights()):
        np.testing.assert_array_equal(a, b)
    measured = evaluate_model(student, str(root / "data" / "audioset" / "eval-0.tfrecord"), wide.spec,
                              k=2, sampler="uniform")
    assert by_id["k2/serial/rep"]["eval"]["map"] == pytest.approx(measured["map"], abs=1e-6)
    # Its cost is that of the model with the projection (whose head is 4 wide, not 8).
    costs = {e["row"]: e["cost"] for e in doc["summary"]}
    assert costs["k2/serial/rep"]["params"] == student.count_params()
    assert costs["k2/serial/rep+pred+ce+inter"]["params"] == build_model(wide.model_config("student", 2)).count_params()
    assert costs["k2/serial/rep"]["params"] != costs["k2/serial/rep+pred+ce+inter"]["params"]
