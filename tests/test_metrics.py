"""Tests for kdzoo.metrics: numpy references and streaming Keras metrics."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdzoo import metrics as M

pytestmark = pytest.mark.unit

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def loop_average_precision(scores, labels):
    """Straightforward AP: loop over distinct thresholds, high to low."""
    npos = float(np.sum(labels > 0))
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= t
        tp = float(np.sum(labels[predicted] > 0))
        precision = tp / float(np.sum(predicted))
        recall = tp / npos
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def loop_map(predictions, labels):
    aps = [
        loop_average_precision(predictions[:, c], labels[:, c])
        for c in range(labels.shape[1])
        if labels[:, c].sum() > 0
    ]
    return float(np.mean(aps))


def loop_gap(predictions, labels, top_k):
    """GAP as the YouTube-8M starter code defines it, one video and one pair at a time."""
    pairs = []
    for scores, truth in zip(predictions.tolist(), labels.tolist()):
        order = sorted(range(len(scores)), key=lambda c: -scores[c])[:top_k]
        pairs += [(scores[c], truth[c] > 0) for c in order]
    pairs.sort(key=lambda pair: -pair[0])
    total, hits, ap = float(np.sum(labels > 0)), 0, 0.0
    for i, (_, positive) in enumerate(pairs, start=1):
        if positive:
            hits += 1
            ap += hits / i
    return ap / total if total else 0.0


def loop_hit_at_one(predictions, labels):
    return float(np.mean([truth[int(np.argmax(scores))] > 0 for scores, truth in zip(predictions, labels)]))


def loop_perr(predictions, labels):
    """Per video: the fraction of positives among its top-n predictions, n = its number of labels."""
    values = []
    for scores, truth in zip(predictions.tolist(), labels.tolist()):
        n = int(sum(t > 0 for t in truth))
        top = sorted(range(len(scores)), key=lambda c: -scores[c])[:n]
        values.append(sum(truth[c] > 0 for c in top) / n if n else 0.0)
    return float(np.mean(values))


def random_data(seed=0, n=103, c=12, rate=0.2):
    rng = np.random.default_rng(seed)
    p = rng.random((n, c)).astype("float32")
    y = (rng.random((n, c)) < rate).astype("float32")
    y[3] = 0.0  # a video without labels
    return p, y


SPLITS = [(0, 10), (10, 47), (47, 48), (48, 103)]


def make_metrics(num_classes, top_k=5, capacity=128):
    return [
        M.GlobalAveragePrecision(top_k=top_k, capacity=capacity),
        M.MeanAveragePrecision(num_classes, capacity=capacity),
        M.HitAtOne(),
        M.PERR(),
    ]


def results(metrics):
    return {m.name: float(m.result()) for m in metrics}


def assert_matches(got, ref):
    for key in ("gap", "map", "hit_at_one", "perr"):
        assert got[key] == pytest.approx(ref[key], abs=1e-6), key


# ---------------------------------------------------------------------------
# numpy: hand-computed cases
# ---------------------------------------------------------------------------


def test_gap_hand_computed():
    # top_k=2 per video:
    #   v0 preds .9 .8 .1 .05  labels 1 0 1 0 -> (.9,1) (.8,0); class 2 is missed
    #   v1 preds .2 .7 .6 .3   labels 0 1 0 0 -> (.7,1) (.6,0)
    #   v2 preds .5 .4 .35 .95 labels 0 0 1 1 -> (.95,1) (.5,0); class 2 is missed
    # total positives = 2 + 1 + 2 = 5 (more than the 3 found in the top-k)
    # pooled, sorted: .95(1) .9(1) .8(0) .7(1) .6(0) .5(0)
    # precision at the positives: 1/1, 2/2, 3/4
    # GAP = (1 + 1 + 0.75) / 5 = 0.55
    p = np.array([[0.9, 0.8, 0.1, 0.05], [0.2, 0.7, 0.6, 0.3], [0.5, 0.4, 0.35, 0.95]])
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
    assert M.gap(p, y, top_k=2) == pytest.approx(0.55)
    # top_k larger than num_classes is clipped: every pair is pooled.
    # sorted: .95(1) .9(1) .8(0) .7(1) .6(0) .5(0) .4(0) .35(1) .3(0) .2(0) .1(1) .05(0)
    # AP = (1 + 1 + 3/4 + 4/8 + 5/11) / 5
    assert M.gap(p, y, top_k=10) == pytest.approx((1 + 1 + 0.75 + 0.5 + 5 / 11) / 5)
    assert M.gap(p, np.zeros_like(y), top_k=2) == 0.0


def test_gap_tie_breaking():
    # v0 [.5 .5] labels [0 1]: the tie picks class 0 (lower index) -> (.5, 0)
    # v1 [.5 .1] labels [1 0]: -> (.5, 1)
    # pooled ties keep pooled order: (.5,0) then (.5,1): precision 1/2 at the
    # positive; 2 positives in total -> GAP = 0.5 / 2 = 0.25
    p = np.array([[0.5, 0.5], [0.5, 0.1]], dtype="float32")
    y = np.array([[0, 1], [1, 0]], dtype="float32")
    assert M.gap(p, y, top_k=1) == pytest.approx(0.25)
    m = M.GlobalAveragePrecision(top_k=1, capacity=4)
    m.update_state(y[:1], p[:1])
    m.update_state(y[1:], p[1:])
    assert float(m.result()) == pytest.approx(0.25)


def test_map_hand_computed():
    # class 0: scores .9 .8 .7 .6, labels 1 0 1 0
    #   thresholds: .9 P=1 R=.5 | .8 P=1/2 R=.5 | .7 P=2/3 R=1 | .6 P=1/2 R=1
    #   AP = .5*1 + 0 + .5*(2/3) + 0 = 5/6
    # class 1: scores .5 .5 .2 .1, labels 0 1 0 1 (tie grouped at .5)
    #   thresholds: .5 P=1/2 R=.5 | .2 P=1/3 R=.5 | .1 P=2/4 R=1
    #   AP = .5*.5 + 0 + .5*.5 = 0.5
    # class 2: no positives -> excluded
    # mAP = (5/6 + 1/2) / 2 = 2/3
    p = np.array([[0.9, 0.5, 0.3], [0.8, 0.5, 0.2], [0.7, 0.2, 0.1], [0.6, 0.1, 0.4]])
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    assert M.mean_average_precision(p, y) == pytest.approx(2 / 3)
    assert loop_map(p, y) == pytest.approx(2 / 3)
    # Tie grouping: the order of the tied videos does not matter.
    assert M.mean_average_precision(p[[1, 0, 2, 3]], y[[1, 0, 2, 3]]) == pytest.approx(2 / 3)
    assert M.mean_average_precision(p, np.zeros_like(y)) == 0.0


def test_map_vs_loop_and_sklearn():
    rng = np.random.default_rng(5)
    p = np.round(rng.random((60, 7)), 1)  # coarse values -> many ties
    y = (rng.random((60, 7)) < 0.3).astype(int)
    y[:, 6] = 0  # class without positives
    assert M.mean_average_precision(p, y) == pytest.approx(loop_map(p, y), abs=1e-12)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    aps = [
        sklearn_metrics.average_precision_score(y[:, c], p[:, c])
        for c in range(6)
    ]
    assert M.mean_average_precision(p, y) == pytest.approx(np.mean(aps), abs=1e-12)


def test_hit_at_one_hand_computed():
    # v0 top-1 = class 1 (positive) -> hit; v1 top-1 = class 0 -> miss;
    # v2 tie between classes 0 and 1 -> class 0 -> miss.  Hit@1 = 1/3.
    p = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.3, 0.3, 0.2]], dtype="float32")
    y = np.array([[0, 1, 0], [0, 1, 1], [0, 1, 0]], dtype="float32")
    assert M.hit_at_one(p, y) == pytest.approx(1 / 3)
    m = M.HitAtOne()
    m.update_state(y, p)
    assert float(m.result()) == pytest.approx(1 / 3)


def test_perr_hand_computed():
    # v0: 2 labels {0,3}, top-2 = {0,1} -> 1/2
    # v1: 2 labels {2,3}, top-2 = {3,2} -> 1
    # v2: no labels -> 0 (still counted)
    # v3: 1 label {3}, top-1 = {0} -> 0
    # PERR = (0.5 + 1 + 0 + 0) / 4 = 0.375
    p = np.array(
        [[0.9, 0.8, 0.1, 0.3], [0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.2, 0.3], [0.6, 0.5, 0.4, 0.3]],
        dtype="float32",
    )
    y = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 1]], dtype="float32")
    assert M.perr(p, y) == pytest.approx(0.375)
    m = M.PERR()
    m.update_state(y[:3], p[:3])
    m.update_state(y[3:], p[3:])
    assert float(m.result()) == pytest.approx(0.375)


def test_evaluate_keys_and_values():
    p, y = random_data()
    out = M.evaluate(p, y, top_k=5)
    assert set(out) == {"gap", "map", "hit_at_one", "perr"}
    assert out["gap"] == pytest.approx(loop_gap(p, y, top_k=5), abs=1e-12)
    assert out["map"] == pytest.approx(loop_map(p, y), abs=1e-12)
    assert out["hit_at_one"] == pytest.approx(loop_hit_at_one(p, y), abs=1e-12)
    assert out["perr"] == pytest.approx(loop_perr(p, y), abs=1e-12)
    # top_k reaches GAP only, and the references agree at another k.
    wide = M.evaluate(p, y, top_k=12)
    assert wide["gap"] == pytest.approx(loop_gap(p, y, top_k=12), abs=1e-12) and wide["gap"] != out["gap"]
    assert {key: wide[key] for key in ("map", "hit_at_one", "perr")} == {
        key: out[key] for key in ("map", "hit_at_one", "perr")}


@pytest.mark.parametrize(
    "fn", [M.gap, M.mean_average_precision, M.hit_at_one, M.perr, M.evaluate]
)
def test_numpy_invalid_shapes(fn):
    with pytest.raises(ValueError, match="2-D"):
        fn(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="same shape"):
        fn(np.zeros((4, 3)), np.zeros((4, 2)))


def test_gap_invalid_top_k():
    with pytest.raises(ValueError, match="top_k"):
        M.gap(np.zeros((2, 3)), np.zeros((2, 3)), top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        M.GlobalAveragePrecision(top_k=0)


# ---------------------------------------------------------------------------
# streaming metrics
# ---------------------------------------------------------------------------


def test_streaming_eager_matches_numpy_and_reset():
    p, y = random_data()
    ref = M.evaluate(p, y, top_k=5)
    ms = make_metrics(p.shape[1])
    for a, b in SPLITS:
        for m in ms:
            m.update_state(y[a:b], p[a:b])
    assert_matches(results(ms), ref)

    for m in ms:
        m.reset_state()
    for m in ms:
        for v in m.variables:
            assert not np.any(keras.ops.convert_to_numpy(v))
        assert float(m.result()) == 0.0
    # Reuse after reset with different data.
    p2, y2 = random_data(seed=7, n=40)
    for m in ms:
        m.update_state(y2[:25], p2[:25])
        m.update_state(y2[25:], p2[25:])
    assert_matches(results(ms), M.evaluate(p2, y2, top_k=5))


def test_streaming_tf_function_matches_numpy():
    p, y = random_data(seed=2)
    ref = M.evaluate(p, y, top_k=5)
    ms = make_metrics(p.shape[1])

    @tf.function(reduce_retracing=True)
    def update(yt, yp):
        for m in ms:
            m.update_state(yt, yp)

    @tf.function
    def result():
        return {m.name: m.result() for m in ms}

    for a, b in SPLITS:
        update(tf.constant(y[a:b]), tf.constant(p[a:b]))
    assert_matches({k: float(v) for k, v in result().items()}, ref)


def test_model_evaluate_and_fit_match_numpy():
    p, y = random_data(seed=3)
    n, c = p.shape
    x = np.random.default_rng(4).normal(size=(n, 6)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(c, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss="binary_crossentropy", metrics=make_metrics(c))
    # batch_size 16 leaves a remainder batch of 7 (103 = 6 * 16 + 7)
    out = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=64, verbose=0)
    ref = M.evaluate(pred, y, top_k=5)
    assert_matches(out, ref)
    # Learning rate 0: predictions stay fixed during the epoch.
    hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert_matches({k: v[-1] for k, v in hist.history.items()}, ref)


def test_capacity_overflow_raises():
    p, y = random_data(n=6)
    m = M.GlobalAveragePrecision(top_k=2, capacity=5)
    m.update_state(y[:4], p[:4])
    with pytest.raises(tf.errors.InvalidArgumentError, match="capacity"):
        m.update_state(y[4:], p[4:])
    m2 = M.MeanAveragePrecision(p.shape[1], capacity=5)

    @tf.function
    def update(yt, yp):
        m2.update_state(yt, yp)

    with pytest.raises(tf.errors.InvalidArgumentError, match="capacity"):
        update(y, p)


def test_streaming_invalid_inputs():
    m = M.MeanAveragePrecision(4, capacity=8)
    with pytest.raises(ValueError, match="expected 4 classes"):
        m.update_state(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        m.update_state(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="does not match"):
        M.PERR().update_state(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="top_k"):
        M.GlobalAveragePrecision(top_k=5, capacity=8).update_state(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(NotImplementedError):
        M.HitAtOne().update_state(np.zeros((2, 4)), np.zeros((2, 4)), sample_weight=np.ones(2))
    with pytest.raises(ValueError, match="capacity"):
        M.GlobalAveragePrecision(capacity=0)
    with pytest.raises(ValueError, match="num_classes"):
        M.MeanAveragePrecision(0)


@pytest.mark.parametrize(
    "metric",
    [
        M.GlobalAveragePrecision(top_k=7, capacity=33, name="g"),
        M.MeanAveragePrecision(5, capacity=21, name="m"),
        M.HitAtOne(name="h"),
        M.PERR(name="p"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_get_config_round_trip(metric):
    config = metric.get_config()
    clone = type(metric).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is type(metric)
    assert restored.get_config() == config


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from kdzoo import metrics as M

    rng = np.random.default_rng(1)
    n, c = 103, 12
    p = rng.random((n, c)).astype("float32")
    y = (rng.random((n, c)) < 0.2).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((c,)), keras.layers.Identity()])
        model.compile(loss="mse", metrics=[
            M.GlobalAveragePrecision(top_k=5, capacity=64),
            M.MeanAveragePrecision(c, capacity=64),
            M.HitAtOne(), M.PERR()])
    # global batch 16 -> 8 per replica; last global batch of 7 is split 4/3
    out = model.evaluate(p, y, batch_size=16, verbose=0, return_dict=True)
    print("RESULT" + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "ref": M.evaluate(p, y, top_k=5),
        "got": {k: float(v) for k, v in out.items()},
    }))
    """
)


def test_mirrored_strategy_two_cpus_exact():
    # Logical devices must be configured before TF initialises: use a subprocess.
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
    data = json.loads(line[len("RESULT"):])
    assert data["replicas"] == 2
    # Each replica writes its own buffer row, so the cross-replica sum read in
    # model.evaluate's final logs is the full data set: exact.
    assert_matches(data["got"], data["ref"])
