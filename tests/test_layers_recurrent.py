import numpy as np
import pytest

from kdzoo.layers import HierarchicalRNN
from kdzoo.layers import RecurrentAggregator
from layer_testing import assert_close
from layer_testing import check_all_masked_is_finite
from layer_testing import check_frame_counts
from layer_testing import check_padding_invariance
from layer_testing import check_round_trips
from layer_testing import padded_batch
from layer_testing import built_layer

pytestmark = pytest.mark.unit

DIM = 4


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_states(rnn, x):
    """Hidden states of a Keras LSTM over `x` (frames, features); gate
    columns [i, f, c, o]."""
    kernel = rnn.cell.kernel.numpy().astype("float64")
    recurrent = rnn.cell.recurrent_kernel.numpy().astype("float64")
    bias = rnn.cell.bias.numpy().astype("float64")
    units = recurrent.shape[0]
    h, c, states = np.zeros(units), np.zeros(units), []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent + bias
        i, f, g, o = (z[n * units : (n + 1) * units] for n in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        states.append(h)
    return np.array(states).reshape(-1, units)


def gru_states(rnn, x):
    """Hidden states of a Keras GRU (reset_after=True) over `x`; gate
    columns [z, r, h], bias rows [input, recurrent]."""
    kernel = rnn.cell.kernel.numpy().astype("float64")
    recurrent = rnn.cell.recurrent_kernel.numpy().astype("float64")
    input_bias, recurrent_bias = rnn.cell.bias.numpy().astype("float64")
    units = recurrent.shape[0]
    h, states = np.zeros(units), []
    for x_t in x:
        xz, xr, xh = np.split(x_t @ kernel + input_bias, 3)
        hz, hr, hh = np.split(h @ recurrent + recurrent_bias, 3)
        z = sigmoid(xz + hz)
        r = sigmoid(xr + hr)
        h = z * h + (1.0 - z) * np.tanh(xh + r * hh)
        states.append(h)
    return np.array(states).reshape(-1, units)


def rnn_states(rnn, x):
    return (lstm_states if type(rnn).__name__ == "LSTM" else gru_states)(rnn, x)


def final_state(rnn, x):
    states = rnn_states(rnn, x)
    return states[-1] if len(states) else np.zeros(rnn.units)


def reference_recurrent(layer, frames, mask):
    outputs = []
    for x, m in zip(frames.astype("float64"), mask):
        seq = x[: int(m.sum())]
        for rnn in layer.rnn_layers[:-1]:
            seq = rnn_states(rnn, seq)
        outputs.append(final_state(layer.rnn_layers[-1], seq))
    return np.stack(outputs)


def reference_hrnn(layer, frames, mask):
    """H-RNN from its definition: blocks of the real frames only."""
    size = layer.block_size
    outputs = []
    for x, m in zip(frames.astype("float64"), mask):
        real = x[: int(m.sum())]
        blocks = [real[j : j + size] for j in range(0, len(real), size)]
        block_states = np.array(
            [final_state(layer.lower_rnn, b) for b in blocks]
        ).reshape(-1, layer.units)
        top = final_state(layer.upper_rnn, block_states)
        if layer.block_mean:
            top = np.concatenate([top, block_states.mean(0)])
        outputs.append(top)
    return np.stack(outputs)


def make_layer(rng, cls, **kwargs):
    return built_layer(cls, rng, DIM, **kwargs)


RECURRENT_CONFIGS = [
    dict(units=3, cell="lstm"),
    dict(units=3, cell="gru", num_layers=2),
]
HRNN_CONFIGS = [
    dict(units=3, block_size=2, cell="lstm"),
    dict(units=3, block_size=3, cell="gru", upper_units=2),
    dict(units=3, block_size=2, cell="gru", upper_units=2, block_mean=True),
]
ALL_CONFIGS = [(RecurrentAggregator, c) for c in RECURRENT_CONFIGS] + [
    (HierarchicalRNN, c) for c in HRNN_CONFIGS
]
REFERENCES = {RecurrentAggregator: reference_recurrent, HierarchicalRNN: reference_hrnn}
IDS = [f"{cls.__name__}-{c['cell']}" + ("-block_mean" if c.get("block_mean") else "") for cls, c in ALL_CONFIGS]


@pytest.mark.parametrize("cls,kwargs", ALL_CONFIGS, ids=IDS)
def test_matches_numpy_reference(cls, kwargs):
    rng = np.random.default_rng(0)
    layer = make_layer(rng, cls, **kwargs)
    # Lengths cover: full, a partial last block, one frame.
    frames, mask = padded_batch(rng, [7, 5, 1], 7, DIM)
    expected = REFERENCES[cls](layer, frames, mask)
    out_units = (kwargs.get("upper_units") or kwargs["units"]) + (kwargs["units"] if kwargs.get("block_mean") else 0)
    assert expected.shape == (3, out_units)
    assert_close(layer(frames, mask=mask), expected)
    assert_close(layer(frames), REFERENCES[cls](layer, frames, np.ones_like(mask)))


@pytest.mark.parametrize("cls,kwargs", ALL_CONFIGS, ids=IDS)
def test_padding_does_not_change_output(cls, kwargs):
    rng = np.random.default_rng(1)
    layer = make_layer(rng, cls, **kwargs)
    # 9 frames with block_size 2 or 3: some videos end in fully padded blocks.
    frames, mask = padded_batch(rng, [9, 2, 4], 9, DIM)
    check_padding_invariance(layer, frames, mask)


@pytest.mark.parametrize("cls,kwargs", ALL_CONFIGS, ids=IDS)
def test_all_masked_video_is_zero(cls, kwargs):
    rng = np.random.default_rng(2)
    layer = make_layer(rng, cls, **kwargs)
    frames, _ = padded_batch(rng, [5, 5], 5, DIM)
    out = check_all_masked_is_finite(layer, frames)
    np.testing.assert_array_equal(out[0], 0.0)


@pytest.mark.parametrize("cls,kwargs", ALL_CONFIGS, ids=IDS)
def test_rnn_sublayers_get_cudnn_compatible_masks(cls, kwargs, monkeypatch):
    """cuDNN needs right-padded masks without fully masked rows, also for
    empty videos and for the fully padded blocks of the H-RNN."""
    rng = np.random.default_rng(5)
    layer = make_layer(rng, cls, **kwargs)
    seen = []
    if cls is RecurrentAggregator:
        rnns = list(layer.rnn_layers)
    else:
        rnns = [layer.lower_rnn, layer.upper_rnn]
    for rnn in rnns:

        def spy(sequences, initial_state=None, mask=None, training=False,
                _call=rnn.call):
            seen.append(np.asarray(mask))
            return _call(sequences, initial_state=initial_state, mask=mask,
                         training=training)

        monkeypatch.setattr(rnn, "call", spy)
    frames, mask = padded_batch(rng, [0, 1, 4, 9], 9, DIM)
    layer(frames, mask=mask)
    assert len(seen) == len(rnns)
    for m in seen:
        lengths = m.sum(axis=1)
        assert np.all(lengths >= 1)
        np.testing.assert_array_equal(m, np.arange(m.shape[1]) < lengths[:, None])


@pytest.mark.parametrize(
    "cls,kwargs",
    [ALL_CONFIGS[1], ALL_CONFIGS[2]],
    ids=[IDS[1], IDS[2]],
)
def test_round_trips(cls, kwargs, tmp_path):
    rng = np.random.default_rng(3)
    layer = make_layer(rng, cls, **kwargs)
    frames, mask = padded_batch(rng, [5, 2], 5, DIM)
    check_round_trips(layer, frames, mask, tmp_path)


def test_dynamic_frame_count():
    rng = np.random.default_rng(4)
    check_frame_counts(
        make_layer(rng, HierarchicalRNN, units=3, block_size=3), rng, DIM
    )
    check_frame_counts(
        make_layer(rng, RecurrentAggregator, units=3, cell="gru"), rng, DIM
    )


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (RecurrentAggregator, dict(units=0)),
        (RecurrentAggregator, dict(units=3, cell="rnn")),
        (RecurrentAggregator, dict(units=3, num_layers=0)),
        (HierarchicalRNN, dict(units=3, block_size=0)),
        (HierarchicalRNN, dict(units=3, block_size=2, cell="transformer")),
        (HierarchicalRNN, dict(units=3, block_size=2, upper_units=-1)),
    ],
)
def test_invalid_arguments(cls, kwargs):
    with pytest.raises(ValueError, match="Received"):
        cls(**kwargs)
