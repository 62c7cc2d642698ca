import numpy as np
import pytest

from kdzoo.layers import NetVLAD
from kdzoo.layers import NeXtVLAD
from layer_testing import assert_close
from layer_testing import check_all_masked_is_finite
from layer_testing import check_frame_counts
from layer_testing import check_padding_invariance
from layer_testing import check_round_trips
from layer_testing import padded_batch
from layer_testing import built_layer

pytestmark = pytest.mark.unit

DIM = 6


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def l2n(v):
    return v / np.sqrt(max(np.sum(v**2), 1e-12))


def reference_nextvlad(layer, frames, mask):
    """NeXtVLAD from the formulas, one video / frame / group at a time."""
    w = {v.name: v.numpy().astype("float64") for v in layer.weights}
    K, G = layer.num_clusters, layer.groups
    group_size = layer.expansion * DIM // G
    outputs = []
    for x, m in zip(frames.astype("float64"), mask):
        V = np.zeros((K, group_size))
        for t in range(x.shape[0]):
            x_dot = x[t] @ w["expansion_kernel"] + w["expansion_bias"]
            alpha = sigmoid(x_dot @ w["attention_kernel"] + w["attention_bias"])
            logits = (x_dot @ w["cluster_kernel"]).reshape(G, K)
            for g in range(G):
                a = softmax(logits[g]) * alpha[g] * m[t]
                x_tg = x_dot[g * group_size : (g + 1) * group_size]
                for k in range(K):
                    V[k] += a[k] * (x_tg - w["centers"][k])
        V = np.stack([l2n(v) for v in V])
        v = l2n(V.reshape(-1))
        if layer.output_size is not None:
            v = v @ w["output_kernel"] + w["output_bias"]
        outputs.append(v)
    return np.stack(outputs)


def make_layer(rng, **kwargs):
    return built_layer(NeXtVLAD, rng, DIM, **kwargs)


CONFIGS = [
    dict(num_clusters=3, expansion=2, groups=4),
    dict(num_clusters=2, expansion=1, groups=3, output_size=5),
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_matches_numpy_reference(kwargs):
    rng = np.random.default_rng(0)
    layer = make_layer(rng, **kwargs)
    frames, mask = padded_batch(rng, [5, 3, 1], 5, DIM)
    expected = reference_nextvlad(layer, frames, mask)
    assert_close(layer(frames, mask=mask), expected)
    assert_close(layer(frames), reference_nextvlad(layer, frames, np.ones_like(mask)))


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_padding_does_not_change_output(kwargs):
    rng = np.random.default_rng(1)
    layer = make_layer(rng, **kwargs)
    frames, mask = padded_batch(rng, [7, 2, 4], 7, DIM)
    check_padding_invariance(layer, frames, mask)


def test_all_masked_video_is_finite():
    rng = np.random.default_rng(2)
    layer = make_layer(rng, num_clusters=3, groups=4, output_size=4)
    frames, _ = padded_batch(rng, [4, 4], 4, DIM)
    check_all_masked_is_finite(layer, frames)


def test_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    layer = make_layer(rng, num_clusters=3, groups=4, output_size=4)
    frames, mask = padded_batch(rng, [5, 2], 5, DIM)
    check_round_trips(layer, frames, mask, tmp_path)


def test_dynamic_frame_count():
    rng = np.random.default_rng(4)
    check_frame_counts(make_layer(rng, num_clusters=3, groups=4), rng, DIM)


def test_fewer_parameters_than_netvlad():
    dim, clusters, output_size = 128, 16, 64
    netvlad = NetVLAD(clusters, output_size=output_size)
    nextvlad = NeXtVLAD(clusters, expansion=2, groups=8, output_size=output_size)
    netvlad.build((None, None, dim))
    nextvlad.build((None, None, dim))
    assert nextvlad.count_params() < netvlad.count_params()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_clusters=0),
        dict(num_clusters=3, expansion=0),
        dict(num_clusters=3, groups=-2),
        dict(num_clusters=3, output_size=0),
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        NeXtVLAD(**kwargs)


def test_groups_must_divide_expanded_features():
    layer = NeXtVLAD(3, expansion=1, groups=4)
    with pytest.raises(ValueError, match="divisible"):
        layer.build((None, None, DIM))
