"""Training-time sampler, elastic students (k drawn per step) and seed summaries."""

import numpy as np
import pytest
import tensorflow as tf

from kdzoo.distillation import Distiller
from kdzoo.models import build_model
from kdzoo.training import stage_name
from kdzoo.training.entries import _run_summaries
from kdzoo.zoo.config import ZooConfig

MODEL = {"family": "pooling", "feature_size": 4, "num_classes": 3, "aggregator": {"mode": "mean"},
         "head": {"num_mixtures": 1}}


def raw(**extra):
    config = {"family": "netvlad", "dataset": "audioset", "k": [1, 2], "sampler": "uniform",
              "model": {"aggregator": {"num_clusters": 2, "output_size": 4}, "head": {"num_mixtures": 1}}}
    config.update(extra)
    return config


def _batch(rng, batch=6, num_frames=10):
    x = rng.normal(size=(batch, num_frames, 4)).astype("float32")
    return {"frames": x, "mask": np.ones((batch, num_frames), "float32")}


def test_elastic_distiller_draws_every_k_in_its_span_and_repeats_per_step():
    teacher = build_model(dict(MODEL, num_frames=10))
    student = build_model(dict(MODEL, num_frames=None))
    distiller = Distiller(teacher, student, k=3, train_sampler="random", train_k=(1, 10), seed=5)
    draws = [int(distiller.draw_k(tf.constant(step, tf.int64))) for step in range(400)]
    assert set(draws) == set(range(1, 11))
    counts = np.bincount(draws, minlength=11)[1:]
    assert counts.min() > 400 / 10 / 2  # roughly uniform, never one k only
    assert draws == [int(distiller.draw_k(tf.constant(s, tf.int64))) for s in range(400)]
    inputs = _batch(np.random.default_rng(0))
    # training: the view has the drawn k frames; evaluation: the fixed k=3 of `k`
    k_step = int(distiller.draw_k(None))
    assert distiller.student_view(inputs, training=True)["frames"].shape[1] == k_step
    assert distiller.student_view(inputs, training=False)["frames"].shape[1] == 3


def test_elastic_distiller_refuses_a_fixed_frame_student_and_bad_spans():
    teacher = build_model(dict(MODEL, num_frames=10))
    with pytest.raises(ValueError, match="num_frames=None"):
        Distiller(teacher, build_model(dict(MODEL, num_frames=3)), k=3, train_k=(1, 10))
    with pytest.raises(ValueError, match="low <= high"):
        Distiller(teacher, build_model(dict(MODEL, num_frames=None)), k=3, train_k=(4, 2))


def test_elastic_distiller_trains_and_round_trips_its_config():
    rng = np.random.default_rng(1)
    teacher = build_model(dict(MODEL, num_frames=10))
    student = build_model(dict(MODEL, num_frames=None))
    distiller = Distiller(teacher, student, k=2, train_sampler="random", train_k=(1, 10))
    distiller.compile(optimizer="adam")
    x = _batch(rng, batch=32)
    y = (rng.random((32, 3)) > 0.5).astype("float32")
    history = distiller.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    again = Distiller.from_config(distiller.get_config())
    assert again.train_k == (1, 10) and again.train_sampler == "random" and again.sampler == "uniform"


def test_config_train_sampler_elastic_and_seeds():
    config = ZooConfig.from_dict(raw(train_sampler="random", elastic={"k": [1, 10]},
                                     training={"seed": 0, "seeds": [0, 1, 2], "seed_k": [2]}))
    assert (config.sampler, config.train_sampler, config.elastic) == ("uniform", "random", (1, 10))
    assert config.seeds_for(2) == [0, 1, 2] and config.seeds_for(1) == [0]
    assert config.names()[-1] == "netvlad_student_elastic"
    elastic = config.model_config("student", elastic=True)
    assert elastic["num_frames"] is None and elastic["name"] == "netvlad_student_elastic"
    assert config.model_config("student", 4, elastic=True)["num_frames"] == 4
    assert ZooConfig.from_dict(raw()).train_sampler == "uniform"
    with pytest.raises(ValueError, match="train_sampler"):
        ZooConfig.from_dict(raw(train_sampler="sometimes"))
    with pytest.raises(ValueError, match="elastic"):
        ZooConfig.from_dict(raw(elastic={"k": [0, 11]}))


def test_stage_names():
    assert stage_name(True, "random") == "distilled"
    assert stage_name(False, "uniform") == "no_teacher_uniform"
    assert stage_name(False, "random", 2) == "no_teacher_random_seed2"
    assert stage_name(True, "random", 1, "nextvlad_teacher.audioset") == "distilled_from_nextvlad_teacher.audioset_seed1"
    assert stage_name(False, "random", None, "nextvlad_teacher.audioset") == "no_teacher_random"


def test_run_summaries_claim_a_gain_only_beyond_twice_the_spread():
    config = ZooConfig.from_dict(raw(training={"seeds": [0, 1, 2], "seed_k": [2]}))

    def runs(values):
        return [(None, {"best_val_gap": 0.3}, {"eval": {"map": v}}) for v in values]

    summary = _run_summaries(config, {
        "distilled": runs([0.220, 0.222, 0.224]),          # mean 0.222, std 0.002
        "no_teacher_random": runs([0.219, 0.221, 0.223]),  # gain 0.001 < 2 * 0.002
        "no_teacher_uniform": runs([0.200, 0.201, 0.202]),  # gain 0.021 > 0.004
    }, 2)
    assert summary["map_over_seeds"]["distilled"]["mean"] == pytest.approx(0.222)
    assert summary["map_over_seeds"]["distilled"]["std"] == pytest.approx(0.002)
    gains = summary["distillation_gain_map"]
    assert gains["no_teacher_random"]["verdict"] == "within noise"
    assert gains["no_teacher_uniform"]["verdict"] == "beats"
    assert gains["no_teacher_uniform"]["gain"] == pytest.approx(0.021)
    assert set(summary["baselines"]) == {"no_teacher_random", "no_teacher_uniform"}


def test_registry_elastic_entry_takes_any_k_until_load_fixes_it(tmp_path):
    import yaml

    from kdzoo.models import frame_shape
    from kdzoo.zoo import Registry

    (tmp_path / "netvlad.audioset.yaml").write_text(yaml.safe_dump(raw(elastic={"k": [1, 10]})))
    registry = Registry(tmp_path, tmp_path / "pretrained")
    assert "netvlad_student_elastic.audioset" in registry.list_models()
    with pytest.warns(UserWarning, match="untrained"):
        assert frame_shape(registry.load("netvlad_student_elastic", k=4))[0] == 4
    assert frame_shape(registry.load("netvlad_student_elastic", weights=None))[0] is None
    with pytest.raises(ValueError, match="elastic students only"):
        registry.load("netvlad_student_k2", weights=None, k=3)


def test_curve_trials_score_each_k_by_the_tune_objective():
    from kdzoo.tuning import curve_trials, write_report

    card = {"name": "x_student_elastic.audioset", "sampler": "uniform", "curve": {
        "1": {"gap": 0.20, "map": 0.15, "hit_at_one": 0.4},
        "2": {"gap": 0.30, "map": 0.20, "hit_at_one": 0.5},
        "10": {"gap": 0.35, "map": 0.25, "hit_at_one": 0.6}}}
    rows = curve_trials(card, teacher_flops=1000, flops_at=lambda k: 100 * k, lam=0.1)
    assert [r["k"] for r in rows] == [1, 2, 10]  # numeric order, not "1", "10", "2"
    assert [r["score"] for r in rows] == pytest.approx([0.20 - 0.01, 0.30 - 0.02, 0.35 - 0.1])
    assert rows[1]["flops_ratio"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no quality curve"):
        curve_trials({"name": "netvlad_teacher"}, 1000, lambda k: k, 0.1)


def test_curve_report_picks_the_best_trade_off(tmp_path):
    from kdzoo.tuning import curve_trials, write_report

    card = {"curve": {"1": {"gap": 0.2, "map": 0.1, "hit_at_one": 0.3}, "2": {"gap": 0.3, "map": 0.2, "hit_at_one": 0.4},
                      "3": {"gap": 0.31, "map": 0.2, "hit_at_one": 0.4}}}
    doc = write_report(curve_trials(card, 300, lambda k: 100 * k, lam=0.1), tmp_path)
    assert doc["best"] == "k2"  # 0.3 - 0.0667 beats 0.31 - 0.1 and 0.2 - 0.0333
    assert (tmp_path / "pareto.csv").is_file()


def test_frame_subset_training_of_an_all_frame_model_pads_a_random_subset_back():
    """k=None with train_k: each training step shows a fixed-length model a sorted random
    subset of its drawn size, zero-padded and masked to the frame axis; a video no longer
    than the draw keeps all its frames; evaluation sees every frame."""
    model = build_model(dict(MODEL, num_frames=10))
    distiller = Distiller(None, model, k=None, train_sampler="random", train_k=(3, 5), seed=2)
    rng = np.random.default_rng(3)
    inputs = _batch(rng, batch=5)
    inputs["mask"][1, 4:] = 0.0  # a 4-frame video
    inputs["frames"][1, 4:] = 0.0
    inputs["mask"][2, 2:] = 0.0  # a 2-frame video
    inputs["frames"][2, 2:] = 0.0
    lengths = inputs["mask"].sum(axis=1).astype(int)
    for step in range(6):
        k = int(distiller.draw_k(tf.constant(step, tf.int64)))
        view = distiller._padded_subset(tf.constant(inputs["frames"]), tf.constant(inputs["mask"]), tf.constant(k),
                                        "random", tf.constant(step, tf.int64))
        frames, mask = view["frames"].numpy(), view["mask"].numpy()
        assert frames.shape == (5, 10, 4) and mask.shape == (5, 10)
        for row in range(5):
            kept = min(k, lengths[row])
            np.testing.assert_array_equal(mask[row], np.r_[np.ones(kept), np.zeros(10 - kept)])
            np.testing.assert_array_equal(frames[row, kept:], 0.0)
            # each kept frame is one of the video's own, in order, none repeated
            idx = [int(np.flatnonzero((inputs["frames"][row] == f).all(axis=1))[0]) for f in frames[row, :kept]]
            assert idx == sorted(set(idx)) and max(idx) < lengths[row]
            if lengths[row] <= k:
                assert idx == list(range(lengths[row]))
    evaluated = distiller.student_view(inputs, training=False)
    np.testing.assert_array_equal(evaluated["frames"].numpy(), inputs["frames"])
    # training through fit: the fixed-length model learns on the padded subsets
    distiller.compile(optimizer="adam")
    y = (rng.random((5, 3)) > 0.5).astype("float32")
    assert np.isfinite(distiller.fit(inputs, y, epochs=2, batch_size=5, verbose=0).history["loss"]).all()

