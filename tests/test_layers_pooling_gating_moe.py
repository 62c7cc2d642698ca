import numpy as np
import pytest

from kdzoo.layers import ContextGating
from kdzoo.layers import FramePooling
from kdzoo.layers import MixtureOfExperts
from layer_testing import assert_close
from layer_testing import batch_norm_reference
from layer_testing import check_all_masked_is_finite
from layer_testing import check_frame_counts
from layer_testing import check_padding_invariance
from layer_testing import check_round_trips
from layer_testing import padded_batch
from layer_testing import randomize_weights

pytestmark = pytest.mark.unit

DIM = 5


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------- FramePooling


def reference_pooling(mode, frames, mask):
    outputs = []
    for x, m in zip(frames.astype("float64"), mask):
        real = x[m.astype(bool)]
        mean = real.mean(axis=0) if len(real) else np.zeros(DIM)
        top = real.max(axis=0) if len(real) else np.zeros(DIM)
        outputs.append(
            {"mean": mean, "max": top, "mean_max": np.concatenate([mean, top])}[mode]
        )
    return np.stack(outputs)


MODES = ["mean", "max", "mean_max"]


@pytest.mark.parametrize("mode", MODES)
def test_pooling_matches_numpy_reference(mode):
    rng = np.random.default_rng(0)
    frames, mask = padded_batch(rng, [6, 3, 1], 6, DIM)
    layer = FramePooling(mode)
    assert_close(layer(frames, mask=mask), reference_pooling(mode, frames, mask))
    assert_close(layer(frames), reference_pooling(mode, frames, np.ones_like(mask)))


@pytest.mark.parametrize("mode", MODES)
def test_pooling_padding_and_empty_video(mode):
    rng = np.random.default_rng(1)
    layer = FramePooling(mode)
    frames, mask = padded_batch(rng, [7, 2, 5], 7, DIM)
    check_padding_invariance(layer, frames, mask)
    out = check_all_masked_is_finite(layer, frames)
    np.testing.assert_array_equal(out[0], 0.0)


def test_pooling_round_trips_and_frame_counts(tmp_path):
    rng = np.random.default_rng(2)
    layer = FramePooling("mean_max")
    frames, mask = padded_batch(rng, [5, 2], 5, DIM)
    layer(frames, mask=mask)
    check_round_trips(layer, frames, mask, tmp_path)
    check_frame_counts(layer, rng, DIM)


def test_pooling_invalid_mode():
    with pytest.raises(ValueError, match="Received: mode='median'"):
        FramePooling("median")


# --------------------------------------------------------------- ContextGating


def reference_gating(layer, x, mask=None, batch_stats=False):
    x = x.astype("float64")
    logits = x @ layer.kernel.numpy()
    if layer.batch_norm:
        logits = batch_norm_reference(logits, layer.gate_norm, mask, batch_stats)
    else:
        logits = logits + layer.bias.numpy()
    return x * sigmoid(logits)


def make_gating(rng, batch_norm, shape=(None, DIM)):
    layer = ContextGating(batch_norm=batch_norm)
    layer.build(shape)
    randomize_weights(layer, rng)
    return layer


@pytest.mark.parametrize("batch_norm", [False, True])
def test_gating_matches_numpy_reference(batch_norm):
    rng = np.random.default_rng(3)
    layer = make_gating(rng, batch_norm)
    x = rng.normal(size=(3, DIM)).astype("float32")
    assert_close(layer(x, training=False), reference_gating(layer, x))
    if batch_norm:
        expected = reference_gating(layer, x, batch_stats=True)
        assert_close(layer(x, training=True), expected)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_gating_on_masked_frames(batch_norm):
    rng = np.random.default_rng(4)
    layer = make_gating(rng, batch_norm, shape=(None, None, DIM))
    frames, mask = padded_batch(rng, [6, 2, 4], 6, DIM)
    # Per-frame gating: real frames are unaffected by the padding, and the
    # training-mode batch statistics only use real frames.
    out = layer(frames, mask=mask, training=False)
    assert_close(out[mask], reference_gating(layer, frames[mask]))
    expected = reference_gating(layer, frames, mask, batch_stats=True)
    out = layer(frames, mask=mask, training=True)
    assert_close(out[mask], expected[mask])
    check_all_masked_is_finite(layer, frames)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_gating_round_trips(batch_norm, tmp_path):
    rng = np.random.default_rng(5)
    layer = make_gating(rng, batch_norm)
    x = rng.normal(size=(3, DIM)).astype("float32")
    check_round_trips(layer, x, None, tmp_path)


def test_gating_invalid_arguments():
    with pytest.raises(ValueError, match="Received: batch_norm='yes'"):
        ContextGating(batch_norm="yes")


# ------------------------------------------------------------ MixtureOfExperts


def reference_moe(layer, x):
    C, M = layer.num_classes, layer.num_mixtures
    gate_kernel = layer.gate_kernel.numpy().astype("float64")
    expert_kernel = layer.expert_kernel.numpy().astype("float64")
    expert_bias = layer.expert_bias.numpy().astype("float64")
    out = np.zeros((x.shape[0], C))
    for b, v in enumerate(x.astype("float64")):
        gate_logits = v @ gate_kernel  # flat (C * (M + 1)), class-major
        expert_logits = v @ expert_kernel + expert_bias  # flat (C * M)
        for c in range(C):
            g = np.exp(gate_logits[c * (M + 1) : (c + 1) * (M + 1)])
            g = g / g.sum()
            for m in range(M):
                out[b, c] += g[m] * sigmoid(expert_logits[c * M + m])
    return out


def make_moe(rng, **kwargs):
    layer = MixtureOfExperts(**kwargs)
    layer.build((None, DIM))
    randomize_weights(layer, rng, scale=1.0)
    return layer


@pytest.mark.parametrize("num_mixtures", [1, 3])
def test_moe_matches_numpy_reference(num_mixtures):
    rng = np.random.default_rng(6)
    layer = make_moe(rng, num_classes=4, num_mixtures=num_mixtures)
    x = rng.normal(size=(3, DIM)).astype("float32")
    out = layer(x)
    assert out.shape == (3, 4)
    assert_close(out, reference_moe(layer, x))
    out = np.asarray(out)
    assert np.all((out >= 0.0) & (out <= 1.0))
    # Also on frame-level features (..., features).
    frames = rng.normal(size=(2, 3, DIM)).astype("float32")
    expected = reference_moe(layer, frames.reshape(-1, DIM)).reshape(2, 3, 4)
    assert_close(layer(frames), expected)


def test_moe_l2_penalty():
    rng = np.random.default_rng(7)
    layer = make_moe(rng, num_classes=3, num_mixtures=2, l2=0.01)
    expected = 0.01 * (
        np.sum(layer.gate_kernel.numpy() ** 2)
        + np.sum(layer.expert_kernel.numpy() ** 2)
    )
    np.testing.assert_allclose(float(sum(layer.losses)), expected, rtol=1e-5)
    assert not make_moe(rng, num_classes=3).losses


def test_moe_round_trips(tmp_path):
    rng = np.random.default_rng(8)
    layer = make_moe(rng, num_classes=4, num_mixtures=2, l2=1e-4)
    x = rng.normal(size=(3, DIM)).astype("float32")
    check_round_trips(layer, x, None, tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_classes=0),
        dict(num_classes=4, num_mixtures=0),
        dict(num_classes=4, l2=-0.1),
        dict(num_classes=4, l2=float("nan")),
    ],
)
def test_moe_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        MixtureOfExperts(**kwargs)
