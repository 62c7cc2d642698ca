"""Export as documented: the module docstring's example runs, wrong widths are clear errors in
every format, and a feature normalisation travels inside the artefact."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdzoo
from kdzoo import export, sampling
from kdzoo.cli import main
from kdzoo.data import dequantize
from kdzoo.models import build_model
from kdzoo.whole_video import WholeVideoClassifier
from records import serialized_sequence_example, write_tfrecord

WIDTH = 6


def docstring_example(module) -> str:
    """The indented block after the docstring's 'Example ...::' line, dedented."""
    text = module.__doc__
    block = text[text.index("::", text.index("Example")) + 2:]
    lines = [line[4:] for line in block.splitlines()]
    return "\n".join(lines).strip() + "\n"


def test_module_docstring_example_runs(tmp_path, monkeypatch):
    if "netvlad_student_k2.audioset" not in kdzoo.list_models(pretrained=True):
        pytest.skip("netvlad_student_k2.audioset not trained")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(docstring_example(export), "kdzoo/export.py docstring", "exec"), namespace)
    video = namespace["video"]
    # The three artefacts give the predictions of the whole-video classifier (the same frames).
    expected = kdzoo.load("netvlad_student_k2.audioset", whole_video=True).predict_videos([video])["predictions"][0]
    got = {
        "keras": np.asarray(namespace["served"](video)["predictions"]),
        "savedmodel": namespace["loaded"].serve(tf.constant(video))["predictions"].numpy(),
        "tflite": namespace["probs"],
    }
    for fmt, value in got.items():
        assert value.shape == (527,), fmt
        np.testing.assert_allclose(value, expected, atol=1e-5, err_msg=fmt)


def tiny_student(frames=3):
    keras.utils.set_random_seed(4)
    return build_model({"family": "netvlad", "feature_size": WIDTH, "num_classes": 5, "num_frames": frames,
                        "aggregator": {"num_clusters": 2, "output_size": 8}, "head": {"num_mixtures": 1},
                        "name": "tiny_student"})


def runners(tmp_path, model, **kwargs):
    """{format: video -> predictions} for artefacts of `model` written and reloaded from disk."""
    paths = {"keras": tmp_path / "m.keras", "savedmodel": tmp_path / "m_saved", "tflite": tmp_path / "m.tflite"}
    for fmt, path in paths.items():
        export.export_model(model, path, format=fmt, **kwargs)
    served = keras.saving.load_model(paths["keras"])
    loaded = tf.saved_model.load(str(paths["savedmodel"]))
    interpreter = tf.lite.Interpreter(model_path=str(paths["tflite"]))
    return {
        "keras": lambda v: np.asarray(served(v)["predictions"]),
        "savedmodel": lambda v: loaded.serve(tf.constant(v))["predictions"].numpy(),
        "tflite": lambda v: export.run_tflite(interpreter, v)["predictions"],
    }


def test_wrong_feature_width_is_a_clear_error_in_every_format(tmp_path):
    run = runners(tmp_path, tiny_student())
    wrong = np.zeros((9, WIDTH - 1), "float32")
    with pytest.raises(ValueError, match=rf"Expected one video of shape \(frames, {WIDTH}\).*\(9, {WIDTH - 1}\)"):
        run["keras"](wrong)
    with pytest.raises(TypeError, match=rf"TensorSpec\(shape=\(None, {WIDTH}\)"):
        run["savedmodel"](wrong)
    with pytest.raises(ValueError, match=rf"shape \('frames', {WIDTH}\).*\(9, {WIDTH - 1}\)"):
        run["tflite"](wrong)
    with pytest.raises(ValueError, match="takes one video at a time"):
        run["keras"](np.zeros((2, 9, WIDTH), "float32"))


def test_normalization_is_stored_and_applied_in_every_format(tmp_path):
    model = tiny_student()
    rng = np.random.default_rng(5)
    mean, std = rng.normal(size=WIDTH), rng.uniform(0.5, 2.0, size=WIDTH)
    run = runners(tmp_path, model, normalization={"mean": mean, "std": std})
    for length in (1, 7, 20):
        video = rng.normal(size=(length, WIDTH)).astype("float32")
        normalized = ((video - mean) / std).astype("float32")
        expected = WholeVideoClassifier(model, 3).predict_videos([normalized])["predictions"][0]
        for fmt, fn in run.items():
            np.testing.assert_allclose(fn(video), expected, atol=1e-5, err_msg=f"{fmt}, T={length}")
    with pytest.raises(ValueError, match="std"):
        export.export_model(model, tmp_path / "bad.keras", normalization={"mean": mean, "std": -std})
    with pytest.raises(ValueError, match="6 finite numbers"):
        export.export_model(model, tmp_path / "bad.keras", normalization={"mean": mean[:3], "std": std})


def test_normalization_from_files_and_the_cli(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(6)
    codes = [rng.integers(0, 256, size=(n, 128), dtype=np.uint8) for n in (1, 4, 10, 13)]
    records = write_tfrecord(tmp_path / "train.tfrecord", [
        serialized_sequence_example(f"v{i}", [i], {"audio_embedding": c}, id_key="video_id")
        for i, c in enumerate(codes)])
    stats = export.normalization_from_files(records, "audioset")
    frames = np.concatenate([np.asarray(dequantize(c[:10])) for c in codes])  # AudioSet keeps its first 10 frames
    np.testing.assert_allclose(stats["mean"], frames.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["std"], frames.std(0), atol=1e-5)

    student = build_model({"family": "pooling", "feature_size": 128, "num_classes": 527, "num_frames": 2,
                           "aggregator": {"mode": "mean"}, "head": {"num_mixtures": 1}, "name": "mine"})
    student.save(tmp_path / "mine.keras")
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    for source in (records, str(tmp_path / "stats.json")):
        out = tmp_path / "served.keras"
        assert main(["export", str(tmp_path / "mine.keras"), "--out", str(out), "--spec", "audioset",
                     "--normalize-from", source]) == 0
        assert "features, normalised" in capsys.readouterr().out
        layer = keras.saving.load_model(out).get_layer("video_serving")
        np.testing.assert_allclose(layer.normalization["mean"], stats["mean"], atol=1e-6)
