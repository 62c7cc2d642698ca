"""The model zoo: names, resolution, errors, loading, and every shipped card re-evaluated."""

import warnings

import numpy as np
import pytest

import kdzoo
from kdzoo.evaluation import evaluate_model
from kdzoo.layers import NetVLAD
from kdzoo.models import frame_shape
from kdzoo.zoo import MissingWeightsError, UnknownModelError, get_registry

SHIPPED = kdzoo.list_models(pretrained=True)


def test_names_follow_family_role_frames_tag():
    names = kdzoo.list_models()
    for family in ("netvlad", "nextvlad", "hrnn"):
        assert f"{family}_teacher.yt8m" in names
        for k in (6, 10, 15, 20, 30):
            assert f"{family}_student_k{k}.yt8m" in names
        assert f"{family}_teacher.audioset" in names
        for k in (2, 5):
            assert f"{family}_student_k{k}.audioset" in names
        # The AudioSet configs serve k = 1, 3, ... through one elastic student.
        assert f"{family}_student_elastic.audioset" in names
        assert not {f"{family}_student_k{k}.audioset" for k in (1, 3)} & set(names)
    assert kdzoo.list_models("netvlad*") == [n for n in names if n.startswith("netvlad")]
    assert kdzoo.list_models("*_k10") == ["hrnn_student_k10.yt8m", "netvlad_student_k10.yt8m", "nextvlad_student_k10.yt8m"]
    # natural sort: k2 before k10
    students = kdzoo.list_models("netvlad_student_*.yt8m")
    assert students == [f"netvlad_student_k{k}.yt8m" for k in (6, 10, 15, 20, 30)]


def test_untagged_name_resolution():
    registry = get_registry()
    assert registry.resolve("netvlad_student_k10").name == "netvlad_student_k10.yt8m"
    expected = "netvlad_student_k2.audioset"  # the only tag with k=2
    assert registry.resolve("netvlad_student_k2").name == expected
    teacher = registry.resolve("netvlad_teacher")
    assert teacher.tag == ("audioset" if teacher.has_weights else "yt8m")


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError) as info:
        kdzoo.load("netvlad_studnt_k2")
    assert "netvlad_student_k2" in str(info.value)
    with pytest.raises(UnknownModelError, match="Unknown model name"):
        kdzoo.model_card("resnet50")


def test_unknown_k_points_to_the_elastic_student():
    # The AudioSet NeXtVLAD config ships k = 2 and 5 and an elastic student over 1..10.
    with pytest.raises(UnknownModelError) as info:
        kdzoo.load("nextvlad_student_k3.audioset")
    assert "kdzoo.load('nextvlad_student_elastic.audioset', k=3)" in str(info.value)
    with pytest.raises(UnknownModelError) as info:  # outside every elastic span: no such hint
        kdzoo.load("nextvlad_student_k40.audioset")
    assert "load the elastic student" not in str(info.value)


def test_design_card_example_builds_the_ten_frame_netvlad_student():
    with pytest.warns(UserWarning, match="untrained"):
        model = kdzoo.load("netvlad_student_k10")
    # YouTube-8M frames: 1024 visual + 128 audio features; its vocabulary has 3862 classes.
    assert frame_shape(model) == (10, 1024 + 128)
    assert isinstance(model.get_layer("netvlad"), NetVLAD)
    frames = np.random.default_rng(0).normal(size=(2, 10, 1152)).astype("float32")
    out = model({"frames": frames, "mask": np.ones((2, 10), "float32")})
    predictions = np.asarray(out["predictions"])
    assert predictions.shape == (2, 3862)
    assert np.all((predictions >= 0) & (predictions <= 1))  # per-class probabilities


def test_yt8m_pretrained_weights_refused_with_training_command():
    with pytest.raises(MissingWeightsError) as info:
        kdzoo.load("hrnn_student_k10.yt8m", weights="pretrained")
    message = str(info.value)
    assert "kdzoo train zoo_configs/hrnn.yt8m.yaml --data-dir" in message
    assert "invented data" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = kdzoo.load("hrnn_student_k10.yt8m", weights=None)
    assert frame_shape(model) == (10, 1152)


def test_card_of_untrained_entry_has_config_and_command():
    card = kdzoo.model_card("nextvlad_teacher.yt8m")
    assert card["pretrained"] is False
    assert card["config"]["num_frames"] == 300
    assert card["train_command"].startswith("kdzoo train zoo_configs/nextvlad.yt8m.yaml")


def test_shipped_weights_fit_the_size_budget():
    registry = get_registry()
    total = sum((registry.resolve(n).entry_dir / "model.weights.h5").stat().st_size for n in SHIPPED)
    assert total <= 80 * 1024 * 1024


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_is_complete(name):
    card = kdzoo.model_card(name)
    for key in ("sha256", "dataset", "metrics", "params", "flops", "latency_ms_cpu_batch1",
                "command", "commit", "license", "attribution"):
        assert card.get(key) is not None, key
    # Frames seen: k for a student, all for a teacher; an elastic student takes any number (None).
    assert "num_frames" in card and (card["num_frames"] is None) == bool(card.get("elastic_k"))
    assert card["license"] == "CC BY 4.0"
    assert card["metrics"]["eval"]["videos"] == 20371
    if card["role"] == "student" and card.get("elastic_k"):
        low, high = card["elastic_k"]
        assert sorted(card["curve"], key=int) == [str(k) for k in range(low, high + 1)]
        assert all(set(point) == {"gap", "map", "hit_at_one"} for point in card["curve"].values())
    elif card["role"] == "student":
        assert "baselines" in card or "no_teacher" in card


ELASTIC = [name for name in SHIPPED if "_student_elastic" in name]


@pytest.mark.parametrize("name", ELASTIC)
@pytest.mark.parametrize("k", [1, 2, 5])
def test_shipped_elastic_curve_reproduces_at_a_fixed_budget(name, k, audioset_dir):
    """`load(name, k=k)` fixes the budget; the card's curve point re-evaluates within 0.005."""
    card = kdzoo.model_card(name)
    model = kdzoo.load(name, weights="pretrained", k=k)
    assert frame_shape(model)[0] == k
    expected = card["curve_subset"][str(k)]
    got = evaluate_model(model, str(audioset_dir / "eval-*.tfrecord"), "audioset", k=k,
                         sampler=card["sampler"], take=1024)
    for metric in ("gap", "map", "hit_at_one"):
        assert got[metric] == pytest.approx(expected[metric], abs=0.005), metric


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_subset_metrics_reproduce(name, audioset_dir):
    """Fast check: the fixed eval subset stored in the card re-evaluates to within 0.005."""
    card = kdzoo.model_card(name)
    model = kdzoo.load(name, weights="pretrained")
    expected = card["metrics"]["eval_subset"]
    k = card["num_frames"] if card["role"] == "student" else None
    got = evaluate_model(model, str(audioset_dir / "eval-*.tfrecord"), "audioset", k=k,
                         sampler=card["sampler"] or "uniform", take=expected["videos"])
    for metric in ("gap", "map", "hit_at_one"):
        assert got[metric] == pytest.approx(expected[metric], abs=0.005), metric


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_full_eval_reproduces(name, audioset_dir):
    card = kdzoo.model_card(name)
    model = kdzoo.load(name, weights="pretrained")
    k = card["num_frames"] if card["role"] == "student" else None
    got = evaluate_model(model, str(audioset_dir / "eval-*.tfrecord"), "audioset", k=k,
                         sampler=card["sampler"] or "uniform")
    assert got["videos"] == 20371
    for metric in ("gap", "map", "hit_at_one"):
        assert got[metric] == pytest.approx(card["metrics"]["eval"][metric], abs=0.005), metric


def test_load_pair_returns_teacher_and_student():
    teacher, student = kdzoo.load_pair("hrnn", 6, dataset="yt8m", weights=None)
    assert frame_shape(teacher) == (300, 1152)
    assert frame_shape(student) == (6, 1152)
    x = {"frames": np.zeros((1, 6, 1152), "float32"), "mask": np.ones((1, 6), "float32")}
    assert student(x)["predictions"].shape == (1, 3862)


def test_shipped_weights_stay_within_the_zoo_budget():
    registry = get_registry()
    sizes = {name: registry.resolve(name).entry_dir.joinpath("model.weights.h5").stat().st_size for name in SHIPPED}
    assert SHIPPED and all(size > 0 for size in sizes.values())
    assert sum(sizes.values()) <= 80 * 2**20, sorted(sizes.items(), key=lambda item: -item[1])[:5]


def test_map_over_seeds_formats_a_cards_spread():
    from kdzoo.zoo.cards import map_over_seeds

    runs = [0.2, 0.21, 0.22]
    card = {"map_over_seeds": {"distilled": {"mean": float(np.mean(runs)), "std": float(np.std(runs)), "runs": runs},
                               "no_teacher_random": {"mean": 0.19, "std": 0.0, "runs": [0.19]}}}
    assert map_over_seeds(card, "distilled") == "0.2100 ± 0.0082"
    assert map_over_seeds(card, "distilled", show_count=True) == "0.2100 ± 0.0082 (3 seeds)"
    assert map_over_seeds(card, "no_teacher_random") == "0.1900"
    assert map_over_seeds(card, "no_teacher_random", min_runs=2) is None
    assert map_over_seeds(card, "no_teacher_uniform") is None
    assert map_over_seeds({}, "distilled") is None
