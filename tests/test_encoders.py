"""Tests for kdzoo.encoders and kdzoo.profiling.encoder: architectures, analytic FLOPs, latency."""

import keras
import numpy as np
import pytest

from kdzoo import encoders
from kdzoo.profiling import deployment
from kdzoo.profiling import encoder as pe

SHAPE = (12, 10, 3)  # H, W, C of the tiny test frames
H, W, C = SHAPE


def single_layer(layer, shape=SHAPE):
    x = keras.Input(shape)
    return keras.Model(x, layer(x))


# Hand-computed FLOPs for one frame (12 x 10 x 3), a multiply-add = 2.
HAND = {
    # 'same' 3x3 conv to 4 channels: 2*9*3*4 per position, +1 bias, +1 relu, 120 positions.
    "conv_same_relu": (keras.layers.Conv2D(4, 3, padding="same", activation="relu"), 120 * 4 * (2 * 27 + 2)),
    # 'valid' stride 2: output 5 x 4.
    "conv_valid_stride2": (keras.layers.Conv2D(4, 3, strides=2), 20 * 4 * (2 * 27 + 1)),
    # depthwise 3x3, multiplier 2: output 10 x 8 x 6.
    "depthwise": (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), 480 * (2 * 9 + 1)),
    # separable: depthwise to 10 x 8 x 3 (2*9 each), pointwise 3 -> 5 (2*3 each) + bias.
    "separable": (keras.layers.SeparableConv2D(5, 3), 240 * 18 + 400 * (6 + 1)),
    "maxpool": (keras.layers.MaxPooling2D(2), 6 * 5 * 3 * 4),
    # 3x3 average, stride 1: output 10 x 8 x 3, 9 adds + 1 divide.
    "avgpool": (keras.layers.AveragePooling2D(3, strides=1), 240 * 10),
    "global_avg": (keras.layers.GlobalAveragePooling2D(), 360 + 3),
    "global_max": (keras.layers.GlobalMaxPooling2D(), 360),
    "batch_norm": (keras.layers.BatchNormalization(), 2 * 360 + 5 * 3),
    # Dense on a (12, 10, 3) tensor: 120 rows of 3 -> 7.
    "dense_rows": (keras.layers.Dense(7), 120 * (2 * 3 * 7 + 7)),
    "relu": (keras.layers.ReLU(), 360),
    "rescaling": (keras.layers.Rescaling(0.5, offset=1.0), 720),
    "flatten": (keras.layers.Flatten(), 0),
}


@pytest.mark.parametrize("case", sorted(HAND))
def test_layer_flops_by_hand(case):
    layer, expected = HAND[case]
    assert pe.encoder_flops(single_layer(layer)) == expected


def tiny_encoder(width=8, out=16, name="tiny_encoder"):
    """A small conv net with every kind of layer a real encoder has (and a residual add)."""
    x = keras.Input(SHAPE, name="frame")
    y = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    y = keras.layers.BatchNormalization()(y)
    r = keras.layers.Conv2D(width, 1)(y)
    y = keras.layers.Add()([y, r])
    y = keras.layers.MaxPooling2D(2)(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(out)(y)
    return keras.Model(x, y, name=name)


def test_composite_model_is_the_sum_of_its_layers():
    enc = tiny_encoder()
    conv = 120 * 8 * (2 * 27 + 2)
    bn = 2 * 960 + 5 * 8
    pointwise = 960 * (2 * 8 + 1)
    add = 960
    pool = 6 * 5 * 8 * 4
    depthwise = 240 * (2 * 9 + 1)
    gap = 240 + 8
    dense = 2 * 8 * 16 + 16
    assert pe.encoder_flops(enc) == conv + bn + pointwise + add + pool + depthwise + gap + dense
    # Nested as a layer of another model (and in a Sequential): the same count.
    frame = keras.Input(SHAPE)
    outer = keras.Model(frame, keras.layers.Dense(4)(enc(frame)))
    assert pe.encoder_flops(outer) == pe.encoder_flops(enc) + 2 * 16 * 4 + 4
    seq = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    assert pe.encoder_flops(seq) == 80 * 4 * (2 * 27 + 1)


def test_tf_profiler_agrees_within_10_percent_on_a_conv_net():
    enc = tiny_encoder()
    analytic, profiled = pe.encoder_flops(enc), pe.tf_profiler_encoder_flops(enc)
    assert profiled > 0
    assert abs(analytic - profiled) / profiled < 0.10


def test_unknown_layers_and_dynamic_shapes_raise():
    x = keras.Input((8,))
    odd = keras.Model(x, keras.layers.UnitNormalization()(x), name="odd")
    with pytest.raises(NotImplementedError, match="UnitNormalization"):
        pe.encoder_flops(odd)
    dyn = keras.Input((None, 4))
    with pytest.raises(ValueError, match="fixed per-frame shape"):
        pe.encoder_flops(keras.Model(dyn, keras.layers.Dense(2)(dyn)))
    with pytest.raises(TypeError, match="keras.Model"):
        pe.encoder_flops("vggish")


def vggish_reference():
    """FLOPs and params of the published VGGish, from its layer table (96x64x1 -> 128)."""
    convs = [  # (H, W, C_in, C_out) of each 3x3 'same' conv
        (96, 64, 1, 64), (48, 32, 64, 128), (24, 16, 128, 256), (24, 16, 256, 256),
        (12, 8, 256, 512), (12, 8, 512, 512),
    ]
    flops = sum(h * w * co * (2 * 9 * ci + 2) for h, w, ci, co in convs)  # + bias + relu
    pools = [(48, 32, 64), (24, 16, 128), (12, 8, 256), (6, 4, 512)]
    flops += sum(4 * h * w * c for h, w, c in pools)
    fcs = [(6 * 4 * 512, 4096, True), (4096, 4096, True), (4096, 128, False)]
    flops += sum(2 * i * o + o + (o if relu else 0) for i, o, relu in fcs)
    params = sum(9 * ci * co + co for _, _, ci, co in convs) + sum(i * o + o for i, o, _ in fcs)
    return flops, params


def test_vggish_is_the_published_architecture():
    enc = encoders.build_vggish()
    flops, params = vggish_reference()
    assert enc.input_shape == (None, 96, 64, 1) and enc.output_shape == (None, 128)
    assert enc.count_params() == params == 72_141_184
    assert pe.encoder_flops(enc) == flops
    assert 1.72e9 < flops < 1.74e9
    assert [l.name for l in enc.layers if isinstance(l, keras.layers.Conv2D)] == [
        "conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"]


def test_get_encoder_resolves_names_paths_and_defaults(tmp_path):
    assert encoders.get_encoder("none") is None and encoders.get_encoder(None) is None
    enc = tiny_encoder()
    assert encoders.get_encoder(enc) is enc
    path = tmp_path / "enc.keras"
    enc.save(path)
    loaded = encoders.get_encoder(str(path))
    assert pe.encoder_flops(loaded) == pe.encoder_flops(enc)
    assert encoders.get_encoder("default", dataset="audioset").name == "vggish"
    with pytest.raises(ValueError, match="Unknown encoder 'vgg'"):
        encoders.get_encoder("vgg")
    with pytest.raises(ValueError, match="No default encoder"):
        encoders.get_encoder("default", dataset="kinetics")
    with pytest.raises(FileNotFoundError):
        encoders.get_encoder(str(tmp_path / "missing.keras"))


def test_encoder_latency_and_random_frames():
    enc = tiny_encoder()
    frames = pe.random_frames(enc, 5)
    assert tuple(frames.shape) == (5, *SHAPE)
    lat = pe.encoder_latency(enc, 5, warmup=1, repeats=3)
    assert lat["num_frames"] == 5 and lat["repeats"] == 3
    assert 0 < lat["min_ms"] <= lat["median_ms"]
    assert lat["per_frame_ms"] == pytest.approx(lat["median_ms"] / 5)
    with pytest.raises(ValueError, match="positive integer"):
        pe.encoder_latency(enc, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vggish", "inception_v3"])
def test_tf_profiler_agrees_on_the_real_encoders(name):
    enc = encoders.get_encoder(name)
    analytic, profiled = pe.encoder_flops(enc), pe.tf_profiler_encoder_flops(enc)
    assert abs(analytic - profiled) / profiled < 0.10
    if name == "inception_v3":
        assert enc.output_shape == (None, 1024)
        assert 11.3e9 < analytic < 11.6e9


@pytest.mark.slow
def test_yt8m_encoder_is_rgb_then_audio():
    enc = encoders.build_yt8m_encoder()
    assert enc.output_shape == (None, 1152)
    parts = pe.encoder_flops(encoders.build_inception_v3()) + pe.encoder_flops(encoders.build_vggish())
    assert pe.encoder_flops(enc) == parts
    out = enc(pe.random_frames(enc, 1))
    assert tuple(out.shape) == (1, 1152) and np.isfinite(np.asarray(out)).all()


# ------------------------------------------------------------------ end to end


def _pair():
    from kdzoo.models import build_model

    cfg = {"family": "netvlad", "feature_size": 16, "num_classes": 5, "aggregator": {"num_clusters": 4,
           "output_size": 8}}
    return build_model({**cfg, "num_frames": 10, "name": "t"}), build_model({**cfg, "num_frames": 2, "name": "s"})


def test_end_to_end_adds_n_frames_of_encoder_to_each_side():
    from kdzoo import profiling

    teacher, student = _pair()
    report = profiling.compare(teacher, student, batches=(1, 4), warmup=1, repeats=3)
    enc = tiny_encoder(out=16)
    e2e = deployment.end_to_end(report, enc, max_direct_frames=8, repeats=2)
    per_frame = pe.encoder_flops(enc)
    assert e2e["encoder"]["flops_per_frame"] == per_frame
    assert e2e["teacher"]["flops"] == report["teacher"]["flops"] + 10 * per_frame
    assert e2e["student"]["flops"] == report["student"]["flops"] + 2 * per_frame
    assert e2e["ratios"]["flops"] == pytest.approx(e2e["student"]["flops"] / e2e["teacher"]["flops"])
    lat = e2e["encoder"]["latency"]
    # 2 frames (student b1) and 8 (student b4) are timed; 10 and 40 (teacher) are composed.
    assert lat[2]["method"] == lat[8]["method"] == "measured"
    assert lat[10]["method"] == lat[40]["method"] == "composed"
    assert lat[40]["ms"] == pytest.approx(40 * e2e["encoder"]["per_frame_ms"])
    for role, n in (("teacher", 10), ("student", 2)):
        for b in (1, 4):
            agg = report[role]["latency"][b]["median_ms"]
            assert e2e[role]["latency"][b] == pytest.approx(agg + lat[n * b]["ms"])
    none = deployment.end_to_end(report, None)
    assert none["encoder"] is None and none["ratios"]["flops"] == pytest.approx(report["ratios"]["flops"])


def test_card_cost_block_and_ratios():
    teacher, student = _pair()
    enc = tiny_encoder(out=16)
    t = deployment.card_cost(teacher, 10, enc, "tiny", latency_repeats=3)
    s = deployment.card_cost(student, 2, enc, "tiny", latency_repeats=3)
    from kdzoo import profiling

    assert s["flops"] == profiling.flops(student, 2) and s["params"] == student.count_params()
    assert s["end_to_end"]["flops"] == s["flops"] + 2 * pe.encoder_flops(enc)
    assert s["end_to_end"]["encoder"] == "tiny" and "no encoder weights" in s["end_to_end"]["note"]
    ratios = deployment.card_ratios(s, t)
    assert ratios["flops"] == pytest.approx(s["flops"] / t["flops"])
    assert ratios["end_to_end"]["flops"] == pytest.approx(s["end_to_end"]["flops"] / t["end_to_end"]["flops"])
    assert "end_to_end" not in deployment.card_cost(student, 2, None, latency_repeats=2)
