"""Serving exports (kdzoo.export): one variable-length video in, the student's outputs out."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdzoo import cli, export, sampling
from kdzoo.data import dequantize, quantize
from kdzoo.models import build_model
from helpers import load_runner
from records import use_tiny_zoo

FEATURES = 6
CLASSES = 5
K = 3
LENGTHS = (1, 2, 3, 7, 20)  # 1 and 2 are shorter than k
ATOL = {"keras": 1e-5, "savedmodel": 1e-5, "tflite": 1e-5}  # TFLite: float32 kernels, ~1e-7 seen

AGGREGATORS = {"netvlad": {"num_clusters": 4, "output_size": 8}, "hrnn": {"units": 8, "block_size": 2}}


def student(family, num_frames=K):
    keras.utils.set_random_seed(3)
    return build_model({
        "family": family, "feature_size": FEATURES, "num_classes": CLASSES, "num_frames": num_frames,
        "aggregator": AGGREGATORS[family], "hidden_size": 16, "name": f"{family}_student",
    })


@pytest.fixture(scope="module")
def models():
    return {family: student(family) for family in AGGREGATORS}


def video(length, seed=0):
    return np.random.default_rng(seed + length).normal(size=(length, FEATURES)).astype("float32")


def reference(model, frames, k=K, sampler="uniform"):
    """The Keras model applied to the sampled frames of one video (batch of 1)."""
    idx = sampling.sample_indices([len(frames)], k, method=sampler).numpy()[0]
    out = model({"frames": frames[idx][None], "mask": np.ones((1, k), "float32")}, training=False)
    return {name: np.asarray(value)[0] for name, value in out.items()}


def artefact(tmp_path, fmt, name="m"):
    return str(tmp_path / {"keras": f"{name}.keras", "savedmodel": name, "tflite": f"{name}.tflite"}[fmt])


@pytest.mark.parametrize("family", sorted(AGGREGATORS))
@pytest.mark.parametrize("fmt", export.FORMATS)
def test_export_matches_keras_on_sampled_frames(tmp_path, models, fmt, family):
    model = models[family]
    path = export.export_model(model, artefact(tmp_path, fmt), format=fmt)
    run = load_runner(fmt, path)
    for length in LENGTHS:
        v = video(length)
        got, want = run(v), reference(model, v)
        assert got["predictions"].shape == (CLASSES,)
        assert got["embedding"].shape == want["embedding"].shape
        for key in ("predictions", "embedding"):
            np.testing.assert_allclose(got[key], want[key], atol=ATOL[fmt], rtol=0,
                                       err_msg=f"{fmt} {family} length={length} {key}")


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_uint8_input_equals_float_input_on_dequantised_codes(tmp_path, models, fmt):
    model = models["netvlad"]
    float_run = load_runner(fmt, export.export_model(model, artefact(tmp_path, fmt, "f"), format=fmt))
    uint8_run = load_runner(fmt, export.export_model(model, artefact(tmp_path, fmt, "q"), format=fmt,
                                                     input_dtype="uint8", dequantize="yt8m"))
    for length in (2, 9):
        codes = quantize(video(length))
        assert codes.dtype == np.uint8
        got, want = uint8_run(codes), float_run(dequantize(codes, "yt8m"))
        for key in ("predictions", "embedding"):
            np.testing.assert_allclose(got[key], want[key], atol=1e-6, rtol=0)


def test_random_sampler_is_deterministic_and_uses_kdzoo_sampling(tmp_path, models):
    model = models["netvlad"]
    path = export.export_model(model, tmp_path / "r.keras", sampler="random")
    served = keras.saving.load_model(path)
    v = video(15)
    first, second = served(v), served(v)
    want = reference(model, v, sampler="random")
    np.testing.assert_array_equal(np.asarray(first["predictions"]), np.asarray(second["predictions"]))
    np.testing.assert_allclose(np.asarray(first["predictions"]), want["predictions"], atol=1e-5)
    with pytest.raises(ValueError, match="'random' sampler cannot be exported to TFLite"):
        export.export_model(model, tmp_path / "r.tflite", format="tflite", sampler="random")


def test_empty_video_is_served_as_all_padding(tmp_path, models):
    model = models["netvlad"]
    served = keras.saving.load_model(export.export_model(model, tmp_path / "e.keras"))
    out = served(np.zeros((0, FEATURES), "float32"))
    want = model({"frames": np.zeros((1, K, FEATURES), "float32"), "mask": np.zeros((1, K), "float32")})
    np.testing.assert_allclose(np.asarray(out["predictions"]), np.asarray(want["predictions"])[0], atol=1e-6)


def test_export_errors(tmp_path, models):
    model = models["netvlad"]
    with pytest.raises(ValueError, match="Unknown export format 'onnx'"):
        export.export_model(model, tmp_path / "m.onnx", format="onnx")
    with pytest.raises(ValueError, match="ending in '.keras'"):
        export.export_model(model, tmp_path / "m.h5")
    with pytest.raises(ValueError, match="built for 3 frames but k=5"):
        export.export_model(model, tmp_path / "m.keras", k=5)
    with pytest.raises(ValueError, match="Unknown sampler 'every_other'"):
        export.export_model(model, tmp_path / "m.keras", sampler="every_other")
    with pytest.raises(ValueError, match="Unknown input_dtype 'int8'"):
        export.export_model(model, tmp_path / "m.keras", input_dtype="int8")
    with pytest.raises(ValueError, match="pass k, the number"):
        export.export_model(student("netvlad", num_frames=None), tmp_path / "m.keras")
    # A model built for any frame count exports with an explicit k.
    anyk = student("netvlad", num_frames=None)
    served = keras.saving.load_model(export.export_model(anyk, tmp_path / "any.keras", k=2))
    v = video(5)
    np.testing.assert_allclose(np.asarray(served(v)["predictions"]), reference(anyk, v, k=2)["predictions"],
                               atol=1e-5)




def test_cli_export(tmp_path, monkeypatch, capsys):
    use_tiny_zoo(tmp_path, monkeypatch)
    out = tmp_path / "served"
    rc = cli.main(["export", "netvlad_student_k2.audioset", "--format", "savedmodel", "--out", str(out),
                   "--weights", "default", "--input-dtype", "uint8"])
    assert rc == 0
    assert "exported as savedmodel" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(out))
    result = loaded.serve(tf.zeros([4, 128], tf.uint8))
    assert result["predictions"].shape == (527,)
    assert json.loads(json.dumps(sorted(result)))  == ["embedding", "predictions"]
