"""build_model: the per-frame MLP option against a numpy reference, saving round trip, errors;
kdzoo models are classifiers to Keras (compile/fit on labels, the embedding takes no loss)."""

import warnings

import numpy as np
import pytest

import keras

from kdzoo.models import VideoClassifier, build_ensemble, build_model, embedding_size

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


def test_embedding_size_is_a_linear_layer_before_the_head_and_round_trips(tmp_path):
    model = build_model(dict(CONFIG, num_frames=4, embedding_size=2))
    rng = np.random.default_rng(2)
    frames, mask = rng.normal(size=(3, 4, 6)).astype("float32"), np.ones((3, 4), "float32")
    out = model({"frames": frames, "mask": mask})
    kernel, bias = model.get_layer("embedding_projection").get_weights()
    np.testing.assert_allclose(np.asarray(out["embedding"]), _numpy_reference(model, frames, mask) @ kernel + bias,
                               atol=1e-5)
    assert model.get_layer("moe").input.shape[-1] == 2
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded({"frames": frames, "mask": mask})["predictions"]),
                               np.asarray(out["predictions"]), atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "wide"])
def test_embedding_size_rejects_what_is_not_a_width(bad):
    with pytest.raises(ValueError, match="embedding_size"):
        build_model(dict(CONFIG, embedding_size=bad))


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


def test_frame_mlp_batch_norm_uses_the_real_frames_only():
    config = dict(CONFIG, frame_mlp=[5], frame_mlp_batch_norm=True, num_frames=4)
    model = build_model(config)
    rng = np.random.default_rng(4)
    mask = (np.arange(4)[None] < rng.integers(1, 5, size=(16, 1))).astype("float32")
    frames = rng.normal(size=(16, 4, 6)).astype("float32")
    frames[mask == 0] = 50.0  # padding that would dominate unmasked statistics
    kernel, bias = model.get_layer("frame_mlp_0").get_weights()
    h = np.maximum(frames @ kernel + bias, 0.0)
    real = h[mask > 0]
    eps = model.get_layer("frame_mlp_norm").epsilon
    expected = (h - real.mean(0)) / np.sqrt(real.var(0) + eps)
    normed = keras.Model(model.inputs, model.get_layer("frame_mlp_norm").output)
    out = np.asarray(normed({"frames": frames, "mask": mask}, training=True))
    np.testing.assert_allclose(out[mask > 0], expected[mask > 0], atol=1e-4)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(restored({"frames": frames, "mask": mask})["predictions"],
                               model({"frames": frames, "mask": mask})["predictions"], atol=1e-6)
    with pytest.raises(ValueError, match="frame_mlp"):
        build_model(dict(CONFIG, frame_mlp=[], frame_mlp_batch_norm=True))


def test_aggregator_dropout_drops_the_pooled_vector_in_training_only():
    config = dict(CONFIG, frame_mlp=[], hidden_size=8, num_frames=3, aggregator_dropout=0.5)
    model = build_model(config)
    x = {"frames": np.random.default_rng(3).normal(size=(32, 3, 6)).astype("float32"), "mask": np.ones((32, 3), "float32")}
    pooled = x["frames"].mean(1)  # the mean-pooling aggregator, by hand
    kernel, bias = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(model(x, training=False)["embedding"], np.maximum(pooled @ kernel + bias, 0), atol=1e-5)
    dropped = np.asarray(keras.Model(model.inputs, model.get_layer("aggregator_dropout").output)(x, training=True))
    kept = dropped != 0
    assert 0.3 < kept.mean() < 0.7  # about half of the 32 x 6 entries survive ...
    np.testing.assert_allclose(dropped[kept], 2.0 * pooled[kept], rtol=1e-5)  # ... scaled by 1 / (1 - rate)
    with pytest.raises(ValueError, match="aggregator_dropout"):
        build_model(dict(config, aggregator_dropout=1.0))


CLASSIFIER_CONFIG = {"family": "netvlad", "feature_size": 6, "num_classes": 4, "num_frames": 5,
          "aggregator": {"num_clusters": 2, "output_size": 8}, "head": {"num_mixtures": 1}, "name": "t"}


def labelled_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = {"frames": rng.normal(size=(n, 5, 6)).astype("float32"), "mask": np.ones((n, 5), "float32")}
    y = (rng.random((n, 4)) < 0.3).astype("float32")
    return x, y


def bce(y, p, eps=1e-7):
    p = np.clip(p, eps, 1 - eps)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_compile_with_one_loss_trains_the_predictions():
    keras.utils.set_random_seed(0)
    model = build_model(CLASSIFIER_CONFIG)
    assert isinstance(model, VideoClassifier)
    x, y = labelled_data()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    before = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert before["loss"] == pytest.approx(bce(y, np.asarray(model(x)["predictions"])), rel=1e-4)
    history = model.fit(x, y, batch_size=8, epochs=8, verbose=0)
    assert {"loss", "auc"} <= set(history.history)
    after = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] and after["loss"] == pytest.approx(
        bce(y, np.asarray(model(x)["predictions"])), rel=1e-4)
    assert set(model.predict(x, verbose=0)) == {"embedding", "predictions"}
    # Labels as the output dict, and the per-output loss of the old documentation, give the same loss.
    for loss, target in (("binary_crossentropy", {"predictions": y}), ({"predictions": "binary_crossentropy"}, y)):
        model.compile(optimizer="adam", loss=loss)
        result = model.evaluate(x, target, batch_size=32, verbose=0, return_dict=True)
        assert result["loss"] == pytest.approx(after["loss"], rel=1e-5)


def test_a_loss_on_the_embedding_is_refused_with_the_right_call():
    model = build_model(CLASSIFIER_CONFIG)
    with pytest.raises(ValueError, match=r"'predictions' only.*compile\(loss='binary_crossentropy'"):
        model.compile(loss={"embedding": "mse", "predictions": "binary_crossentropy"})


def test_compiled_model_round_trips_through_keras_file(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_model(CLASSIFIER_CONFIG)
    x, y = labelled_data()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "compile() was not called" warning
        restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored, VideoClassifier)
    np.testing.assert_allclose(restored(x)["predictions"], model(x)["predictions"], atol=1e-6)
    restored.fit(x, y, batch_size=16, epochs=1, verbose=0)  # compiled on load: fit right away


def test_ensemble_averages_its_members_predictions_and_concatenates_their_embeddings(tmp_path):
    members = [
        build_model(dict(CONFIG, num_frames=4, name="a")),
        build_model(dict(CONFIG, num_frames=4, name="b", frame_mlp=[7], aggregator={"mode": "max"})),
        build_model(dict(CONFIG, num_frames=4, name="c", embedding_size=2)),
    ]
    ensemble = build_ensemble(members)
    rng = np.random.default_rng(4)
    inputs = {"frames": rng.normal(size=(5, 4, 6)).astype("float32"), "mask": np.ones((5, 4), "float32")}
    alone = [m(inputs) for m in members]
    out = ensemble(inputs)
    np.testing.assert_allclose(np.asarray(out["predictions"]),
                               np.mean([np.asarray(o["predictions"]) for o in alone], axis=0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["embedding"]),
                               np.concatenate([np.asarray(o["embedding"]) for o in alone], axis=1), atol=1e-6)
    assert embedding_size(ensemble) == 3 + 7 + 2
    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(inputs)["predictions"]), np.asarray(out["predictions"]), atol=1e-6)


def test_ensemble_refuses_members_that_do_not_fit_together():
    a = build_model(dict(CONFIG, num_frames=4, name="a"))
    with pytest.raises(ValueError, match="at least two"):
        build_ensemble([a])
    with pytest.raises(ValueError, match="same frames"):
        build_ensemble([a, build_model(dict(CONFIG, num_frames=5, name="b"))])
    with pytest.raises(ValueError, match="same frames"):
        build_ensemble([a, build_model(dict(CONFIG, num_frames=4, num_classes=3, name="b"))])
    with pytest.raises(ValueError, match="distinct names"):
        build_ensemble([a, build_model(dict(CONFIG, num_frames=4, name="a"))])
