"""Tests for kdzoo.profiling: analytic FLOPs, TF-profiler cross-check, latency, traces."""

import importlib
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdzoo import profiling
from kdzoo.models import build_model

# Per-element costs the analytic counter documents (kdzoo/profiling/flops.py).
SIGMOID = 4
TANH = 4
SOFTMAX = 5


def _model(family, num_frames=6, feature_size=16, num_classes=5, aggregator=None, **extra):
    config = {
        "family": family,
        "feature_size": feature_size,
        "num_classes": num_classes,
        "num_frames": num_frames,
        "aggregator": aggregator or {},
        "head": {"num_mixtures": 2},
    }
    config.update(extra)
    return build_model(config)


# ----------------------------------------------------------- independent references


def moe_reference(features, classes, mixtures):
    gates = 2 * features * classes * (mixtures + 1) + SOFTMAX * classes * (mixtures + 1)
    experts = 2 * features * classes * mixtures + classes * mixtures  # matmul + bias
    experts += SIGMOID * classes * mixtures
    mix = 2 * classes * mixtures  # gate * expert, sum over mixtures
    return gates + experts + mix


def l2norm_reference(rows, width):
    # x^2, sum, max(., eps), rsqrt, x * rsqrt
    return rows * (width + width + 1 + 1 + width)


def netvlad_reference(t, d, k, out):
    per_frame = 2 * t * d * k + t * k  # logits + bias
    per_frame += SOFTMAX * t * k + t * k  # softmax, * mask
    per_frame += 2 * t * k * d + t * k  # sum_t a x, sum_t a
    per_video = 2 * k * d  # - mass * centres
    per_video += l2norm_reference(k, d) + l2norm_reference(1, k * d)
    per_video += 2 * k * d * out + out
    return per_frame, per_video


def lstm_step_reference(i, u):
    matmuls = 2 * i * 4 * u + 2 * u * 4 * u
    adds = 4 * u + 4 * u  # x W + h U, + b
    gates = 3 * SIGMOID * u + 2 * TANH * u  # i, f, o; tanh(g), tanh(c)
    cell = 3 * u + u  # c = f*c + i*g; h = o*tanh(c)
    masking = 3 * u  # select output, h, c
    return matmuls + adds + gates + cell + masking


def run_masked_reference(sequences, steps, i, u):
    """kdzoo.layers.recurrent._run_masked around one LSTM."""
    per_frame = sequences * steps * (1 + i)  # any(mask), where(mask, x, 0)
    per_frame += sequences * steps * lstm_step_reference(i, u)
    per_video = 2 * sequences + sequences * u  # first-step logic, final where
    return per_frame, per_video


# -------------------------------------------------------------------- analytic FLOPs


def test_pooling_dense_moe_flops_by_hand():
    model = _model(
        "pooling", num_frames=4, feature_size=6, num_classes=3,
        aggregator={"mode": "mean_max"}, hidden_size=5,
    )
    t, d = 4, 6
    mean = (t * d) + (t * d) + t + 1 + d  # x*w, sum_t, sum_t w, max(count, eps), divide
    maxp = t + (t * d) + (t * d) + t + d  # w > 0, where, max_t, any_t, where
    hidden = 2 * 12 * 5 + 5 + 5  # matmul, bias, relu
    # MoE over 5 features, 3 classes, 2 experts (+ dummy gate):
    gate = 2 * 5 * 9 + 5 * 9  # einsum + softmax
    expert = 2 * 5 * 6 + 6 + 4 * 6  # einsum + bias + sigmoid
    mix = 6 + 6
    expected = mean + maxp + hidden + gate + expert + mix
    assert expected == 488
    assert profiling.flops(model) == expected
    breakdown = profiling.flops_breakdown(model, 4)
    assert breakdown["pooling"] == mean + maxp
    assert breakdown["hidden"] == hidden
    assert breakdown["moe"] == gate + expert + mix
    assert breakdown["frames"] == breakdown["mask"] == breakdown["embedding"] == 0
    split = profiling.flops_split(model)
    assert split == {"frame_dependent": 4 * t * d + 3 * t, "head": expected - 4 * t * d - 3 * t}


def test_params_counted_by_hand_and_from_the_weight_arrays():
    model = _model("pooling", num_frames=4, feature_size=6, num_classes=3, hidden_size=5)
    # hidden 12*5+5, MoE gates 5*9, experts 5*6+6
    assert profiling.params(model) == 65 + 45 + 36
    assert profiling.params(model) == sum(w.size for w in model.get_weights())
    # Non-trainable weights count too: a frozen model has the same parameters.
    model.trainable = False
    assert profiling.params(model) == 65 + 45 + 36


def test_netvlad_flops_match_reference():
    model = _model(
        "netvlad", num_frames=7, feature_size=12, num_classes=4,
        aggregator={"num_clusters": 3, "output_size": 10}, context_gating=True,
    )
    per_frame, per_video = netvlad_reference(7, 12, 3, 10)
    gating = 2 * 10 * 10 + 10 + SIGMOID * 10 + 10
    head = per_video + gating + moe_reference(10, 4, 2)
    assert profiling.flops_breakdown(model)["netvlad"] == per_frame + per_video
    assert profiling.flops_split(model) == {"frame_dependent": per_frame, "head": head}
    assert profiling.flops(model) == per_frame + head


def test_lstm_flops_match_reference():
    model = _model("lstm", num_frames=5, feature_size=8, num_classes=3, aggregator={"units": 6})
    per_frame, per_video = run_masked_reference(1, 5, 8, 6)
    assert profiling.flops_breakdown(model)["lstm"] == per_frame + per_video
    assert profiling.flops(model) == per_frame + per_video + moe_reference(6, 3, 2)


def test_hrnn_flops_match_reference_with_block_padding():
    # 7 frames in blocks of 3 -> padded to 9 frames, 3 blocks.
    model = _model(
        "hrnn", num_frames=7, feature_size=8, num_classes=3,
        aggregator={"units": 6, "block_size": 3, "upper_units": 4},
    )
    lower = run_masked_reference(3, 3, 8, 6)
    block_mask = 9
    upper = run_masked_reference(1, 3, 6, 4)
    expected = sum(lower) + block_mask + sum(upper)
    assert profiling.flops_breakdown(model)["hrnn"] == expected
    assert profiling.flops(model) == expected + moe_reference(4, 3, 2)
    # Padding: 7, 8 and 9 frames cost the same.
    assert profiling.flops(model, 8) == profiling.flops(model, 9) == profiling.flops(model)
    assert profiling.flops(model, 10) > profiling.flops(model, 9)


@pytest.mark.parametrize(
    "family,aggregator",
    [
        ("pooling", {"mode": "mean_max"}),
        ("netvlad", {"num_clusters": 3, "output_size": 8}),
        ("nextvlad", {"num_clusters": 3, "expansion": 2, "groups": 4, "output_size": 8}),
        ("lstm", {"units": 6, "num_layers": 2}),
        ("gru", {"units": 6}),
        ("hrnn", {"units": 6, "block_size": 4}),
    ],
)
def test_frame_dependent_flops_scale_linearly(family, aggregator):
    model = _model(family, num_frames=None, feature_size=8, aggregator=aggregator, context_gating=True)
    # Multiples of the H-RNN block size, so no padding is involved.
    one, two, five = (profiling.flops_split(model, 4 * n) for n in (1, 2, 5))
    assert one["frame_dependent"] > 0
    assert two["frame_dependent"] == 2 * one["frame_dependent"]
    assert five["frame_dependent"] == 5 * one["frame_dependent"]
    assert one["head"] == two["head"] == five["head"]


def test_frames_default_and_errors():
    model = _model("pooling", num_frames=None)
    with pytest.raises(ValueError, match="frames"):
        profiling.flops(model)
    assert profiling.flops(model, 3) > 0
    frames = keras.Input((4, 6), name="frames")
    conv = keras.layers.Conv1D(2, 3, name="my_conv")(frames)
    with pytest.raises(NotImplementedError, match="my_conv.*Conv1D"):
        profiling.flops(keras.Model(frames, conv))


# ------------------------------------------------------------ TF profiler cross-check

# Where TF counts correctly: MatMul / elementwise models. TF misses Einsum (the VLAD
# residual sum), so those need count_einsum=True; it misses activations (a few %).
@pytest.mark.parametrize(
    "family,aggregator",
    [
        ("pooling", {"mode": "mean_max"}),
        ("netvlad", {"num_clusters": 8, "output_size": 32}),
        ("nextvlad", {"num_clusters": 8, "expansion": 2, "groups": 4, "output_size": 32}),
    ],
)
def test_tf_profiler_agrees_where_it_counts(family, aggregator):
    model = _model(
        family, num_frames=8, feature_size=64, num_classes=20, aggregator=aggregator,
        hidden_size=48, context_gating=True,
    )
    analytic = profiling.flops(model)
    counted = profiling.tf_profiler_flops(model, count_einsum=True)
    assert abs(counted - analytic) / analytic < 0.10


def test_tf_profiler_blind_spots():
    # Einsum: the VLAD residual sum btk,btd->bkd is invisible to TF unless
    # count_einsum=True; the MoE head is plain MatMuls, counted either way.
    model = _model("netvlad", num_frames=4, feature_size=16, num_classes=50, aggregator={"num_clusters": 4})
    without = profiling.tf_profiler_flops(model)
    with_einsum = profiling.tf_profiler_flops(model, count_einsum=True)
    assert with_einsum - without == 2 * 4 * 4 * 16  # 2 * T * K * D at batch 1
    pooling = _model("pooling", num_frames=4, feature_size=16, num_classes=50)
    assert profiling.tf_profiler_flops(pooling, count_einsum=True) == profiling.tf_profiler_flops(pooling)
    # The registration is scoped to the call.
    assert profiling.tf_profiler_flops(model) == without
    # RNN: the while-loop body is counted once, not once per frame.
    lstm = _model("lstm", num_frames=16, feature_size=16, aggregator={"units": 16})
    assert profiling.tf_profiler_flops(lstm, count_einsum=True) < 0.25 * profiling.flops(lstm)


# ------------------------------------------------------------------ latency / trace


def test_latency_returns_sane_numbers():
    model = _model("netvlad", num_frames=6, aggregator={"num_clusters": 4, "output_size": 8})
    result = profiling.latency(model, batch=2, warmup=1, repeats=3)
    assert set(result) == {"median_ms", "p90_ms", "min_ms", "batch", "num_frames", "device"}
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert all(math.isfinite(result[key]) for key in ("median_ms", "p90_ms", "min_ms"))
    assert (result["batch"], result["num_frames"]) == (2, 6)
    assert result["device"]
    with pytest.raises(ValueError, match="repeats"):
        profiling.latency(model, repeats=0)


def test_compare_teacher_and_student():
    aggregator = {"num_clusters": 3, "output_size": 8}
    teacher = _model("netvlad", num_frames=16, feature_size=12, num_classes=4, aggregator=aggregator, name="teacher")
    student = _model("netvlad", num_frames=4, feature_size=12, num_classes=4, aggregator=aggregator, name="student")
    report = profiling.compare(
        teacher, student, k=4, batches=(1, 3), warmup=1, repeats={1: 2, 3: 1}
    )
    assert report["teacher"]["num_frames"] == 16 and report["student"]["num_frames"] == 4
    # Same architecture: the frame count changes no weight.
    assert report["ratios"]["params"] == 1.0
    assert report["teacher"]["params"] == sum(w.size for w in teacher.get_weights())

    def reference(t):
        per_frame, per_video = netvlad_reference(t, 12, 3, 8)
        return per_frame + per_video + moe_reference(8, 4, 2)

    assert report["ratios"]["flops"] == pytest.approx(reference(4) / reference(16))
    assert 0 < report["ratios"]["flops"] < 0.5
    for batch in (1, 3):
        assert report["ratios"]["latency"][batch] > 0
        for role in ("teacher", "student"):
            timing = report[role]["latency"][batch]
            assert timing["batch"] == batch and timing["median_ms"] > 0


def test_write_trace_produces_xplane(tmp_path):
    teacher = _model("pooling", num_frames=6, name="teacher")
    student = _model("pooling", num_frames=2, name="student")
    written = profiling.write_trace(teacher, tmp_path, batch=2, steps=2)
    assert written and all(p.name.endswith(".xplane.pb") for p in written)
    assert list((tmp_path / "plugins" / "profile").glob("*/*.xplane.pb"))
    for run, model in (("teacher", teacher), ("student", student)):
        profiling.write_trace(model, tmp_path / "runs", batch=2, steps=1, run=run)
        files = list((tmp_path / "runs" / run / "plugins" / "profile").glob("*/*.xplane.pb"))
        assert files and files[0].stat().st_size > 0


def test_softmax_cost_is_what_the_tensorflow_profiler_counts():
    # The analytic counter charges SOFTMAX (5) per element "as TensorFlow's profiler counts
    # it": TF's own FLOP statistic for a lone Softmax is the reference.
    from kdzoo import _tf_internals

    softmax = tf.function(tf.nn.softmax).get_concrete_function(tf.TensorSpec((3, 7), tf.float32))
    assert _tf_internals.profile_float_ops(softmax) == SOFTMAX * 3 * 7
    module = importlib.import_module("kdzoo.profiling.flops")
    assert module.activation_flops("softmax", 21) == _tf_internals.profile_float_ops(softmax)


def test_latency_inputs_are_seeded():
    from kdzoo.profiling.latency import _random_inputs

    model = _model("pooling", num_frames=3)
    x = _random_inputs(model, 3, 2, seed=1)["frames"].numpy()
    y = _random_inputs(model, 3, 2, seed=1)["frames"].numpy()
    np.testing.assert_array_equal(x, y)
