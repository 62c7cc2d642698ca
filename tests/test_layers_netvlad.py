import numpy as np
import pytest

from kdzoo.layers import NetVLAD
from layer_testing import assert_close
from layer_testing import check_all_masked_is_finite
from layer_testing import check_frame_counts
from layer_testing import check_padding_invariance
from layer_testing import check_round_trips
from layer_testing import padded_batch
from layer_testing import batch_norm_reference
from layer_testing import built_layer

pytestmark = pytest.mark.unit

DIM = 5


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def l2n(v):
    return v / np.sqrt(max(np.sum(v**2), 1e-12))


def reference_netvlad(layer, frames, mask, batch_stats=False):
    """NetVLAD from the formulas, one video at a time, in float64."""
    W = layer.cluster_kernel.numpy().astype("float64")
    C = layer.centers.numpy().astype("float64")
    K = W.shape[1]
    x_all = frames.astype("float64")
    logits_all = x_all @ W
    if layer.batch_norm_assignment:
        logits_all = batch_norm_reference(logits_all, layer.assignment_norm, mask, batch_stats)
    else:
        logits_all = logits_all + layer.cluster_bias.numpy()
    outputs = []
    for x, logits, m in zip(x_all, logits_all, mask):
        a = softmax(logits) * m[:, None]
        V = np.zeros((K, DIM))
        for k in range(K):
            for t in range(x.shape[0]):
                V[k] += a[t, k] * (x[t] - C[k])
        V = np.stack([l2n(v) for v in V])
        v = l2n(V.reshape(-1))
        if layer.output_size is not None:
            v = v @ layer.output_kernel.numpy() + layer.output_bias.numpy()
        outputs.append(v)
    return np.stack(outputs)


def make_layer(rng, **kwargs):
    return built_layer(NetVLAD, rng, DIM, **kwargs)


CONFIGS = [
    dict(num_clusters=3),
    dict(num_clusters=4, output_size=6),
    dict(num_clusters=3, output_size=4, batch_norm_assignment=True),
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_matches_numpy_reference(kwargs):
    rng = np.random.default_rng(0)
    layer = make_layer(rng, **kwargs)
    frames, mask = padded_batch(rng, [6, 4, 1], 6, DIM)
    expected = reference_netvlad(layer, frames, mask)
    assert_close(layer(frames, mask=mask, training=False), expected)
    expected_shape = (3, kwargs.get("output_size") or kwargs["num_clusters"] * DIM)
    assert expected.shape == expected_shape
    all_real = np.ones_like(mask)
    assert_close(layer(frames), reference_netvlad(layer, frames, all_real))


def test_batch_norm_training_uses_real_frames_only():
    rng = np.random.default_rng(1)
    layer = make_layer(rng, num_clusters=3, batch_norm_assignment=True)
    frames, mask = padded_batch(rng, [6, 3, 2], 6, DIM)
    expected = reference_netvlad(layer, frames, mask, batch_stats=True)
    assert_close(layer(frames, mask=mask, training=True), expected)
    other_garbage, _ = padded_batch(np.random.default_rng(2), [6, 3, 2], 6, DIM)
    frames2 = np.where(mask[..., None], frames, other_garbage)
    assert_close(layer(frames2, mask=mask, training=True), expected)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_padding_does_not_change_output(kwargs):
    rng = np.random.default_rng(3)
    layer = make_layer(rng, **kwargs)
    frames, mask = padded_batch(rng, [7, 2, 5], 7, DIM)
    check_padding_invariance(layer, frames, mask)


def test_all_masked_video_is_finite():
    rng = np.random.default_rng(4)
    layer = make_layer(rng, num_clusters=3, batch_norm_assignment=True)
    frames, _ = padded_batch(rng, [5, 5], 5, DIM)
    check_all_masked_is_finite(layer, frames)
    layer = make_layer(rng, num_clusters=3)
    out = check_all_masked_is_finite(layer, frames)
    np.testing.assert_array_equal(out[0], 0.0)


def test_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    layer = make_layer(
        rng, num_clusters=3, output_size=4, batch_norm_assignment=True
    )
    frames, mask = padded_batch(rng, [5, 3], 5, DIM)
    check_round_trips(layer, frames, mask, tmp_path)


def test_dynamic_frame_count():
    rng = np.random.default_rng(6)
    check_frame_counts(make_layer(rng, num_clusters=3, output_size=4), rng, DIM)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_clusters=0),
        dict(num_clusters=-1),
        dict(num_clusters=2.5),
        dict(num_clusters=4, output_size=0),
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        NetVLAD(**kwargs)
