"""build_model: the per-frame MLP option against a numpy reference, saving round trip, errors."""

import numpy as np
import pytest

import keras

from kdzoo.models import build_model

pytestmark = pytest.mark.unit

CONFIG = {
    "family": "pooling",
    "feature_size": 6,
    "num_classes": 4,
    "num_frames": None,
    "aggregator": {"mode": "mean"},
    "frame_mlp": [5, 3],
    "head": {"num_mixtures": 1},
}


def _numpy_reference(model, frames, mask):
    h = frames
    for i in range(2):
        kernel, bias = model.get_layer(f"frame_mlp_{i}").get_weights()
        h = np.maximum(h @ kernel + bias, 0.0)
    mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return mean


def test_frame_mlp_runs_per_frame_before_the_aggregator():
    rng = np.random.default_rng(0)
    model = build_model(CONFIG)
    frames = rng.normal(size=(3, 4, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], "float32")
    out = model({"frames": frames, "mask": mask})
    mean = _numpy_reference(model, frames, mask)
    np.testing.assert_allclose(np.asarray(out["embedding"]), mean, atol=1e-5)
    # the same model takes any number of frames (num_frames=None)
    out2 = model({"frames": frames[:, :2], "mask": mask[:, :2]})
    assert out2["predictions"].shape == (3, 4)


def test_frame_mlp_model_saving_round_trip(tmp_path):
    model = build_model(dict(CONFIG, num_frames=4))
    x = {"frames": np.random.default_rng(1).normal(size=(2, 4, 6)).astype("float32"), "mask": np.ones((2, 4), "float32")}
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(loaded(x)["predictions"]), np.asarray(model(x)["predictions"]), atol=1e-6
    )
    assert [layer.name for layer in loaded.layers if layer.name.startswith("frame_mlp")] == ["frame_mlp_0", "frame_mlp_1"]


@pytest.mark.parametrize("bad", [512, [0], [64, -1], ["wide"]])
def test_frame_mlp_rejects_bad_widths(bad):
    with pytest.raises(ValueError, match="frame_mlp"):
        build_model(dict(CONFIG, frame_mlp=bad))


def test_hidden_batch_norm_normalises_the_hidden_layer_in_training():
    config = dict(CONFIG, frame_mlp=[], hidden_size=8, hidden_batch_norm=True, num_frames=3)
    model = build_model(config)
    x = {"frames": np.random.default_rng(2).normal(size=(64, 3, 6)).astype("float32"), "mask": np.ones((64, 3), "float32")}
    embedding = np.asarray(model(x, training=True)["embedding"])
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    h = np.asarray(hidden(x, training=True))
    eps = model.get_layer("hidden_norm").epsilon
    np.testing.assert_allclose(embedding, (h - h.mean(0)) / np.sqrt(h.var(0) + eps), atol=1e-4)
    with pytest.raises(ValueError, match="hidden_size"):
        build_model(dict(CONFIG, hidden_batch_norm=True))
