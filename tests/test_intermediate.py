"""The intermediate representation a student can be taught to match: the VLAD layers'
normalised descriptor, the H-RNN's mean block encoding, the models' "intermediate" output
and the Distiller's L_inter."""

import keras
import numpy as np
import pytest

from kdzoo.distillation import Distiller
from kdzoo.layers import HierarchicalRNN, NetVLAD, NeXtVLAD
from kdzoo.models import build_model
from layer_testing import padded_batch, randomize_weights

DIM = 6


def l2n(v, axis=-1):
    return v / np.sqrt(np.maximum(np.sum(v**2, axis=axis, keepdims=True), 1e-12))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def netvlad_descriptor(layer, frames, mask):
    """Normalised VLAD matrix of NetVLAD (no batch norm), from the formulas, in float64."""
    x = frames.astype("float64")
    a = softmax(x @ layer.cluster_kernel.numpy() + layer.cluster_bias.numpy()) * mask[..., None]
    v = np.einsum("btk,btd->bkd", a, x) - a.sum(1)[..., None] * layer.centers.numpy()
    return l2n(l2n(v).reshape(len(x), -1))


def test_netvlad_descriptor_matches_numpy_and_projects_to_the_output():
    rng = np.random.default_rng(0)
    layer = NetVLAD(num_clusters=3, output_size=4)
    layer.build((None, None, DIM))
    randomize_weights(layer, rng)
    frames, mask = padded_batch(rng, [5, 2, 1], 5, DIM)
    output, descriptor = layer(frames, mask=mask, return_descriptor=True)
    expected = netvlad_descriptor(layer, frames, mask)
    np.testing.assert_allclose(descriptor, expected, atol=1e-5)
    np.testing.assert_allclose(
        output, expected @ layer.output_kernel.numpy() + layer.output_bias.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(layer(frames, mask=mask), output, atol=1e-6)


def test_nextvlad_descriptor_is_the_unprojected_output():
    rng = np.random.default_rng(1)
    projected = NeXtVLAD(num_clusters=3, expansion=2, groups=3, output_size=5)
    plain = NeXtVLAD(num_clusters=3, expansion=2, groups=3)
    for layer in (projected, plain):
        layer.build((None, None, DIM))
    randomize_weights(projected, rng)
    for variable in plain.weights:  # same weights, without the projection
        variable.assign(next(v for v in projected.weights if v.path.split("/")[-1] == variable.path.split("/")[-1]))
    frames, mask = padded_batch(rng, [4, 3], 4, DIM)
    output, descriptor = projected(frames, mask=mask, return_descriptor=True)
    assert tuple(descriptor.shape) == (2, 3 * 2 * DIM // 3)
    np.testing.assert_allclose(descriptor, plain(frames, mask=mask), atol=1e-6)
    np.testing.assert_allclose(output, projected(frames, mask=mask), atol=1e-6)


def test_hrnn_descriptor_is_the_mean_of_the_real_blocks_final_states():
    rng = np.random.default_rng(5)
    layer = HierarchicalRNN(units=3, block_size=2, cell="gru")
    layer.build((None, None, DIM))
    randomize_weights(layer, rng)
    lengths = [5, 2, 1]  # 3 blocks (the last one half real), 1 block, 1 half-real block
    frames, mask = padded_batch(rng, lengths, 6, DIM)
    output, descriptor = layer(frames, mask=mask, return_descriptor=True)
    expected = []
    for video, length in zip(frames, lengths):
        # Each block's encoding: the lower GRU run over that block's real frames only.
        states = [layer.lower_rnn(video[None, start:min(start + 2, length)]).numpy()[0]
                  for start in range(0, length, 2)]
        expected.append(np.mean(states, axis=0))
    np.testing.assert_allclose(descriptor, np.array(expected), atol=1e-5)
    np.testing.assert_allclose(output, layer(frames, mask=mask), atol=1e-6)
    with_mean = HierarchicalRNN(units=3, block_size=2, cell="gru", block_mean=True)
    with_mean.build((None, None, DIM))
    with_mean.set_weights(layer.get_weights())
    np.testing.assert_allclose(with_mean(frames, mask=mask)[:, 3:], descriptor, atol=1e-6)


def model_config(family="netvlad", num_frames=None, name="m", intermediate=True):
    aggregator = {"netvlad": {"num_clusters": 3, "output_size": 4},
                  "nextvlad": {"num_clusters": 3, "expansion": 2, "groups": 2, "output_size": 4},
                  "hrnn": {"units": 4, "block_size": 2}, "gru": {"units": 4}}[family]
    return {"family": family, "feature_size": DIM, "num_classes": 5, "num_frames": num_frames, "aggregator": aggregator,
            "intermediate": intermediate, "name": name}


@pytest.mark.parametrize("family", ["netvlad", "nextvlad", "hrnn"])
def test_model_intermediate_output_round_trips(tmp_path, family):
    model = build_model(model_config(family))
    rng = np.random.default_rng(2)
    frames, mask = padded_batch(rng, [4, 2], 4, DIM)
    inputs = {"frames": frames, "mask": mask.astype("float32")}
    out = model(inputs)
    assert sorted(out) == ["embedding", "intermediate", "predictions"]
    plain = build_model(model_config(family, intermediate=False))
    assert sorted(plain.output) == ["embedding", "predictions"]
    plain.set_weights(model.get_weights())  # the output adds no weights
    np.testing.assert_allclose(plain(inputs)["predictions"], out["predictions"], atol=1e-6)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(inputs)["intermediate"], out["intermediate"], atol=1e-6)


def test_families_without_an_intermediate_representation_say_so():
    with pytest.raises(ValueError, match="no intermediate representation"):
        build_model(model_config("gru"))


def test_intermediate_loss_matches_numpy_and_adds_to_the_total():
    keras.utils.set_random_seed(3)
    teacher = build_model(model_config(num_frames=6, name="teacher"))
    student = build_model(model_config(num_frames=2, name="student"))
    weights = dict(ce_weight=0.5, representation_weight=0.1, prediction_weight=2.0, intermediate_weight=3.0)
    distiller = Distiller(teacher, student, k=2, sampler="first", **weights)
    rng = np.random.default_rng(4)
    frames, mask = padded_batch(rng, [6, 6, 6], 6, DIM)
    inputs = {"frames": frames, "mask": mask.astype("float32")}
    labels = (rng.random((3, 5)) > 0.5).astype("float32")
    losses, _, _ = distiller.compute_losses(inputs, labels)
    i_t = teacher(inputs)["intermediate"].numpy()
    i_s = student({"frames": frames[:, :2], "mask": np.ones((3, 2), "float32")})["intermediate"].numpy()
    np.testing.assert_allclose(losses["inter_loss"], np.mean(np.sum((i_t - i_s) ** 2, axis=1)), rtol=1e-5)
    expected_total = sum(weights[f"{w}_weight"] * float(losses[f"{n}_loss"]) for w, n in
                         (("ce", "ce"), ("representation", "rep"), ("prediction", "pred"), ("intermediate", "inter")))
    np.testing.assert_allclose(losses["loss"], expected_total, rtol=1e-5)
    assert "inter_loss" in distiller.loss_trackers
    assert Distiller.from_config(distiller.get_config()).intermediate_weight == 3.0


def test_a_student_intermediate_of_another_width_is_matched_through_a_learned_projection(tmp_path):
    keras.utils.set_random_seed(5)
    teacher = build_model(model_config(num_frames=6, name="teacher"))
    narrow = model_config(num_frames=2, name="student")
    narrow["aggregator"] = {**narrow["aggregator"], "num_clusters": narrow["aggregator"]["num_clusters"] + 1}
    student = build_model(narrow)
    widths = [int(m.output["intermediate"].shape[-1]) for m in (teacher, student)]
    assert widths[0] != widths[1]
    distiller = Distiller(teacher, student, k=2, sampler="first", intermediate_weight=1.0)
    kernel, bias = distiller.intermediate_projection.get_weights()
    assert kernel.shape == (widths[1], widths[0])
    rng = np.random.default_rng(6)
    frames, mask = padded_batch(rng, [6, 6, 6], 6, DIM)
    inputs = {"frames": frames, "mask": mask.astype("float32")}
    losses, _, _ = distiller.compute_losses(inputs, np.zeros((3, 5), "float32"))
    i_t = teacher(inputs)["intermediate"].numpy()
    i_s = student({"frames": frames[:, :2], "mask": np.ones((3, 2), "float32")})["intermediate"].numpy()
    np.testing.assert_allclose(losses["inter_loss"], np.mean(np.sum((i_t - (i_s @ kernel + bias)) ** 2, axis=1)),
                               rtol=1e-5)
    # The projection is part of the Distiller's state: it trains and round trips.
    assert any(w is distiller.intermediate_projection.kernel for w in distiller.trainable_weights)
    distiller.save_weights(tmp_path / "d.weights.h5")
    again = Distiller.from_config(distiller.get_config())
    again.load_weights(tmp_path / "d.weights.h5")
    np.testing.assert_array_equal(again.intermediate_projection.get_weights()[0], kernel)
    # Without the intermediate loss there is no such layer.
    assert Distiller(teacher, student, k=2).intermediate_projection is None


def test_intermediate_weight_needs_intermediate_outputs():
    teacher = build_model(model_config(num_frames=6, name="teacher", intermediate=False))
    student = build_model(model_config(num_frames=2, name="student"))
    with pytest.raises(ValueError, match="needs an 'intermediate' output, but the teacher"):
        Distiller(teacher, student, k=2, intermediate_weight=1.0)
    with pytest.raises(ValueError, match="intermediate_weight >= 0"):
        Distiller(teacher, student, k=2, intermediate_weight=-1.0)
