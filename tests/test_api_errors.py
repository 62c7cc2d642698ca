"""Public API input checks: each misuse gives a clear error that says what was expected."""

import numpy as np
import pytest

import kdzoo
from kdzoo import sampling
from kdzoo.data import AUDIOSET, make_dataset
from kdzoo.distillation import Distiller
from kdzoo.export import export_model
from kdzoo.models import build_model
from kdzoo.zoo import UnknownModelError

D, C, T = 6, 5, 8


def model(num_frames=None, name="m", family="pooling"):
    agg = {"pooling": {"mode": "mean_max"}, "netvlad": {"num_clusters": 2, "output_size": 4}}[family]
    return build_model({"family": family, "feature_size": D, "num_classes": C, "num_frames": num_frames,
                        "aggregator": agg, "name": name})


def batch(b=2, t=T, d=D):
    return {"frames": np.zeros((b, t, d), "float32"), "mask": np.ones((b, t), "float32")}


# ----------------------------------------------------------------------------- built models


@pytest.mark.parametrize(
    "inputs, found",
    [
        (batch(t=4, d=D + 1), r"\(2, 4, 7\)"),  # wrong width
        ({"frames": np.zeros((4, D), "float32"), "mask": np.ones((2, 4), "float32")}, r"\(4, 6\)"),  # rank 2
        (batch(t=5), r"\(2, 5, 6\)"),  # a fixed-frame model fed more frames
    ],
)
def test_model_call_with_wrong_shape_names_input_and_expected_shape(inputs, found):
    m = model(num_frames=4, family="netvlad")
    with pytest.raises(ValueError, match=rf"'frames'.*expected shape=\(None, 4, 6\), found shape={found}"):
        m(inputs)


def test_model_call_without_mask_names_the_missing_key():
    with pytest.raises(ValueError, match=r"Missing data for input \"mask\""):
        model()({"frames": np.zeros((2, T, D), "float32")})


@pytest.mark.parametrize(
    "config, message",
    [
        ({"family": "transformer"}, "Unknown model family 'transformer'"),
        ({"feature_size": 0}, "positive integer for 'feature_size'"),
        ({"num_classes": -3}, "positive integer for 'num_classes'"),
        ({"num_frames": 0}, "positive integer or None for 'num_frames'"),
        ({"frames": 4}, "'frames' is now 'num_frames'"),
        ({"dropout": 1.5}, "0 <= dropout < 1"),
        ({"hiddden_size": 3}, r"Unknown model config keys \['hiddden_size'\]"),
    ],
)
def test_build_model_config_errors(config, message):
    base = {"family": "pooling", "feature_size": D, "num_classes": C}
    with pytest.raises(ValueError, match=message):
        build_model({**base, **config})


# ----------------------------------------------------------------------------- Distiller


@pytest.fixture(scope="module")
def distiller():
    return Distiller(model(num_frames=T, name="teacher"), model(num_frames=3, name="student"), k=3)


@pytest.mark.parametrize("frames", [np.zeros((2, T, D + 2), "float32"), np.zeros((2, D), "float32"),
                                    np.zeros((2, 1, T, D), "float32")])
def test_distiller_wrong_rank_or_width(distiller, frames):
    with pytest.raises(ValueError, match=r"Expected frames of shape \(batch, frames, 6\). Received: "):
        distiller({"frames": frames})


def test_distiller_batch_with_fewer_frames_than_k(distiller):
    with pytest.raises(ValueError, match="k=3 exceeds the 2 frames in the batch"):
        distiller.compute_losses(batch(t=2), np.zeros((2, C), "float32"))


def test_distiller_inputs_without_frames_key(distiller):
    with pytest.raises(ValueError, match=r"Expected inputs with a 'frames' key. Received keys: \['video'\]"):
        distiller({"video": np.zeros((2, T, D), "float32")})


def test_k_larger_than_teacher_frames():
    with pytest.raises(ValueError, match="k=9 frames exceed the teacher's 8 frames"):
        Distiller(model(num_frames=T, name="teacher"), model(name="student"), k=9)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_not_positive(k):
    with pytest.raises(ValueError, match="positive integer frame count k"):
        Distiller(model(num_frames=T, name="teacher"), model(name="student"), k=k)
    with pytest.raises(ValueError, match="k must be a positive int"):
        sampling.sample_frames(batch()["frames"], batch()["mask"], k)
    with pytest.raises(ValueError, match="k must be a positive int"):
        sampling.sample_indices([5], k)


def test_k_not_positive_in_dataset_and_export(tmp_path):
    (tmp_path / "x.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        make_dataset(str(tmp_path / "x.tfrecord"), AUDIOSET, k=0)
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        export_model(model(), tmp_path / "m.keras", k=0)


def test_student_built_for_other_k():
    with pytest.raises(ValueError, match="built for 2 frames but the Distiller samples k=3"):
        Distiller(model(num_frames=T, name="teacher"), model(num_frames=2, name="student"), k=3)


def test_teacher_student_width_mismatch():
    other = build_model({"family": "pooling", "feature_size": D + 1, "num_classes": C, "name": "s"})
    with pytest.raises(ValueError, match="different frame widths: teacher 6, student 7"):
        Distiller(model(num_frames=T, name="teacher"), other, k=3)


def test_unknown_sampler_everywhere(tmp_path):
    expected = r"Unknown sampler 'every_other'"
    with pytest.raises(ValueError, match=expected):
        Distiller(model(num_frames=T, name="teacher"), model(name="student"), k=3, sampler="every_other")
    with pytest.raises(ValueError, match=expected + r". Expected one of uniform, random"):
        sampling.sample_frames(batch()["frames"], batch()["mask"], 3, method="every_other")
    (tmp_path / "x.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match=expected):
        make_dataset(str(tmp_path / "x.tfrecord"), AUDIOSET, k=2, sampler="every_other")
    with pytest.raises(ValueError, match=expected):
        export_model(model(), tmp_path / "m.keras", k=2, sampler="every_other")


# ----------------------------------------------------------------------------- zoo names


def test_unknown_model_name_lists_close_matches():
    with pytest.raises(UnknownModelError) as info:
        kdzoo.load("netvlad_studnt_k2")
    message = str(info.value)
    assert message.startswith("Unknown model name 'netvlad_studnt_k2'.")
    assert "Did you mean: netvlad_student_k2" in message
    assert "kdzoo.list_models()" in message
    assert isinstance(info.value, KeyError)  # and a KeyError, as a mapping lookup would raise


def test_unknown_model_name_without_close_match():
    with pytest.raises(UnknownModelError, match=r"Unknown model name 'zzzz'\. \('zzzz' is not a zoo name\. Expected <family>_<role>.*See kdzoo.list_models\(\)"):
        kdzoo.load("zzzz")


def test_model_name_must_be_a_string():
    with pytest.raises(TypeError, match="Expected a model name string"):
        kdzoo.load(3)


@pytest.mark.parametrize("layer, shape", [
    (lambda: kdzoo.layers.ContextGating(), (None, None)),
    (lambda: kdzoo.layers.MixtureOfExperts(num_classes=3), (None, None)),
    (lambda: kdzoo.layers.NetVLAD(num_clusters=2), (None, 4, None)),
    (lambda: kdzoo.layers.NeXtVLAD(num_clusters=2, groups=2), (None, 4, None)),
    (lambda: kdzoo.layers.HierarchicalRNN(units=3, block_size=2), (None, 4, None)),
])
def test_layers_refuse_inputs_of_undefined_width(layer, shape):
    with pytest.raises(ValueError, match=r"last \(features\) dimension .* defined.*input_shape=\(None, "):
        layer().build(shape)
