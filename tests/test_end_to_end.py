"""End-to-end serving (kdzoo.end_to_end): raw clip -> k sampled frames -> encoder -> classifier."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdzoo import end_to_end, sampling
from kdzoo.models import build_model
from helpers import load_runner
from records import use_tiny_zoo

FRAME = (6, 5, 1)  # a tiny "log-mel patch"
FEATURES = 8
CLASSES = 4
K = 3
N = 10  # the teacher's frames
LENGTHS = (1, 2, 3, 7, 20)  # 1 and 2 are shorter than k; 20 is longer than the teacher's N
ATOL = 1e-5


class CountFrames(keras.layers.Layer):
    """Identity that adds the number of frames it sees to a counter."""

    def build(self, input_shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

    def call(self, x):
        self.seen.assign_add(keras.ops.cast(keras.ops.shape(x)[0], "float32"))
        return x


def tiny_encoder(count=False, out=FEATURES, name="tiny_encoder"):
    keras.utils.set_random_seed(5)
    frame = keras.Input(FRAME, name="patch")
    x = CountFrames(name="count")(frame) if count else frame
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(frame, keras.layers.Dense(out)(x), name=name)


def classifier(num_frames, name):
    keras.utils.set_random_seed(3)
    return build_model({
        "family": "netvlad", "feature_size": FEATURES, "num_classes": CLASSES, "num_frames": num_frames,
        "aggregator": {"num_clusters": 4, "output_size": 8}, "hidden_size": 16, "name": name,
    })


@pytest.fixture(scope="module")
def student():
    return classifier(K, "student")


@pytest.fixture(scope="module")
def teacher():
    return classifier(N, "teacher")


def clip(length, seed=0):
    return np.random.default_rng(seed + length).normal(size=(length, *FRAME)).astype("float32")


def encode_all(encoder, frames):
    return np.asarray(encoder(frames, training=False))


def student_reference(model, encoder, frames, sampler):
    """Encode every frame, then sample, then the student (the order serving avoids)."""
    features = encode_all(encoder, frames)
    idx = sampling.sample_indices([len(frames)], K, method=sampler).numpy()[0]
    out = model({"frames": features[idx][None], "mask": np.ones((1, K), "float32")}, training=False)
    return {name: np.asarray(v)[0] for name, v in out.items()}


def teacher_reference(model, encoder, frames):
    real = min(len(frames), N)
    features = np.zeros((1, N, FEATURES), "float32")
    features[0, :real] = encode_all(encoder, frames[:real])
    mask = (np.arange(N) < real).astype("float32")[None]
    out = model({"frames": features, "mask": mask}, training=False)
    return {name: np.asarray(v)[0] for name, v in out.items()}


@pytest.mark.parametrize("sampler", ["uniform", "first_middle_last", "random"])
def test_student_serving_equals_encode_all_then_sample(student, sampler):
    encoder = tiny_encoder()
    served = end_to_end.clip_serving_model(student, encoder, sampler=sampler)
    for length in LENGTHS:
        frames = clip(length)
        got = {name: np.asarray(v) for name, v in served(frames).items()}
        want = student_reference(student, encoder, frames, sampler)
        for name in ("predictions", "embedding"):
            np.testing.assert_allclose(got[name], want[name], atol=ATOL, err_msg=f"{name}, T={length}")


def test_encoder_sees_exactly_k_frames_per_clip(student):
    encoder = tiny_encoder(count=True)
    served = end_to_end.clip_serving_model(student, encoder)
    counter = encoder.get_layer("count").seen
    for length in LENGTHS:
        before = float(counter.numpy())
        served(clip(length))
        assert float(counter.numpy()) - before == K, f"T={length}"


def test_teacher_encodes_only_the_clips_real_frames(teacher):
    encoder = tiny_encoder(count=True)
    served = end_to_end.clip_serving_model(teacher, encoder, role="teacher")
    counter = encoder.get_layer("count").seen
    for length in LENGTHS:
        frames = clip(length)
        before = float(counter.numpy())
        got = {name: np.asarray(v) for name, v in served(frames).items()}
        assert float(counter.numpy()) - before == min(length, N), f"T={length}"
        want = teacher_reference(teacher, encoder, frames)
        np.testing.assert_allclose(got["predictions"], want["predictions"], atol=ATOL)


def test_empty_clip_is_served_as_an_all_padding_input(student):
    encoder = tiny_encoder()
    served = end_to_end.clip_serving_model(student, encoder)
    got = np.asarray(served(np.zeros((0, *FRAME), "float32"))["predictions"])
    want = student({"frames": np.zeros((1, K, FEATURES), "float32"), "mask": np.zeros((1, K), "float32")})
    np.testing.assert_allclose(got, np.asarray(want["predictions"])[0], atol=ATOL)


def test_multi_input_encoder_gathers_the_same_frames_from_each_stream():
    keras.utils.set_random_seed(7)
    a_in, b_in = keras.Input(FRAME, name="a"), keras.Input((3,), name="b")
    a = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(a_in))
    features = keras.layers.Concatenate()([a, keras.layers.Dense(3)(b_in)])
    encoder = keras.Model({"a": a_in, "b": b_in}, features, name="two_stream")
    model = build_model({"family": "pooling", "feature_size": 8, "num_classes": CLASSES, "num_frames": K, "name": "s"})
    served = end_to_end.clip_serving_model(model, encoder)
    length = 11
    stream = {"a": clip(length), "b": np.random.default_rng(1).normal(size=(length, 3)).astype("float32")}
    got = np.asarray(served(stream)["predictions"])
    idx = sampling.sample_indices([length], K).numpy()[0]
    feats = np.asarray(encoder({"a": stream["a"][idx], "b": stream["b"][idx]}))
    want = model({"frames": feats[None], "mask": np.ones((1, K), "float32")})["predictions"]
    np.testing.assert_allclose(got, np.asarray(want)[0], atol=ATOL)


def test_bad_encoders_are_refused(student):
    with pytest.raises(ValueError, match=r"must map one frame to \(8,\) features"):
        end_to_end.clip_serving_model(student, tiny_encoder(out=5))
    dynamic = keras.Input((None, 5, 1))
    bad = keras.Model(dynamic, keras.layers.Dense(FEATURES)(keras.layers.GlobalAveragePooling2D()(dynamic)))
    with pytest.raises(ValueError, match="fixed per-frame input shape"):
        end_to_end.clip_serving_model(student, bad)
    with pytest.raises(TypeError, match="keras.Model encoder"):
        end_to_end.clip_serving_model(student, "vggish")
    with pytest.raises(ValueError, match="built for 3 frames but k=4"):
        end_to_end.clip_serving_model(student, tiny_encoder(), k=4)


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "tflite"])
def test_exported_clip_models_match_in_memory_serving(tmp_path, student, teacher, fmt):
    encoder = tiny_encoder()
    for role, model in (("student", student), ("teacher", teacher)):
        path = tmp_path / {"keras": f"{role}.keras", "savedmodel": role, "tflite": f"{role}.tflite"}[fmt]
        end_to_end.export_clip(model, encoder, path, format=fmt, role=role)
        run = load_runner(fmt, str(path))
        for length in (2, 20):
            frames = clip(length)
            want = (student_reference(model, encoder, frames, "uniform") if role == "student"
                    else teacher_reference(model, encoder, frames))
            got = run(frames)
            for name in ("predictions", "embedding"):
                np.testing.assert_allclose(got[name], want[name], atol=ATOL, err_msg=f"{fmt} {role} {name} T={length}")


def test_kdzoo_export_serves_a_zoo_entry_end_to_end(tmp_path):
    import kdzoo

    name = "netvlad_student_k2.audioset"
    encoder = tiny_encoder(out=128)
    path = kdzoo.export(name, tmp_path / "clip.keras", encoder=encoder)
    served = keras.saving.load_model(path)
    student = kdzoo.load(name, weights="pretrained")
    frames = clip(10)
    features = encode_all(encoder, frames)
    idx = sampling.sample_indices([10], 2).numpy()[0]  # the AudioSet students' uniform frames {2, 7}
    assert list(idx) == [2, 7]
    want = student({"frames": features[idx][None], "mask": np.ones((1, 2), "float32")})["predictions"]
    np.testing.assert_allclose(np.asarray(served(frames)["predictions"]), np.asarray(want)[0], atol=ATOL)
    # Without an encoder: the features export, the same as kdzoo.export.export_model.
    path = kdzoo.export(name, tmp_path / "features.keras")
    got = keras.saving.load_model(path)(features)["predictions"]
    np.testing.assert_allclose(np.asarray(got), np.asarray(want)[0], atol=ATOL)
    with pytest.raises(ValueError, match="raw float32 frames"):
        kdzoo.export(name, tmp_path / "x.keras", encoder=encoder, input_dtype="uint8")


def test_cli_export_with_an_encoder_file(tmp_path, monkeypatch, capsys):
    from kdzoo import cli

    use_tiny_zoo(tmp_path, monkeypatch)
    encoder = tiny_encoder(out=128)
    encoder.save(tmp_path / "encoder.keras")
    out = tmp_path / "served.keras"
    rc = cli.main(["export", "netvlad_student_k2.audioset", "--out", str(out), "--weights", "default",
                   "--encoder", str(tmp_path / "encoder.keras")])
    assert rc == 0 and "input: raw frames, encoded by" in capsys.readouterr().out
    served = keras.saving.load_model(out)
    frames = clip(9)
    student = served.get_layer("clip_serving").model
    want = student_reference_k(student, encoder, frames, 2)
    np.testing.assert_allclose(np.asarray(served(frames)["predictions"]), want, atol=ATOL)


def student_reference_k(model, encoder, frames, k):
    features = encode_all(encoder, frames)
    idx = sampling.sample_indices([len(frames)], k).numpy()[0]
    return np.asarray(model({"frames": features[idx][None], "mask": np.ones((1, k), "float32")})["predictions"])[0]


def test_cli_profile_adds_the_encoder(tmp_path, monkeypatch, capsys):
    import json

    from kdzoo import cli
    from kdzoo.profiling import encoder as encoder_cost

    use_tiny_zoo(tmp_path, monkeypatch)
    encoder = tiny_encoder(out=128)
    encoder.save(tmp_path / "encoder.keras")
    rc = cli.main(["profile", "netvlad_student_k2.audioset", "--weights", "none", "--encoder",
                   str(tmp_path / "encoder.keras"), "--no-trace", "--repeats", "2", "--batches", "1", "--json"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "end to end GFLOPs" in out and "no encoder weights" in out
    report = json.loads(out[out.index("{"):])
    per_frame = encoder_cost.encoder_flops(encoder)
    for role, n in (("teacher", 10), ("student", 2)):
        assert report["end_to_end"][role]["flops"] == report[role]["flops"] + n * per_frame
