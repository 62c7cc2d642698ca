"""Distiller: losses against independent references, serial/parallel semantics, fit with
callbacks, mixed precision, MirroredStrategy, saving."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdzoo.distillation import Distiller
from kdzoo.distillation import losses as kd_losses
from kdzoo.models import build_model
from helpers import CLASSES, FEATURES, FRAMES, make_distiller, small_config, synthetic_videos

def test_ce_only_loss_equals_keras_bce_on_student():
    x, y = synthetic_videos(16)
    distiller = make_distiller(representation_weight=0.0, prediction_weight=0.0)
    losses, _, _ = distiller.compute_losses(x, y, training=False)
    # Independent path: gather the uniform frames in numpy, run the student, Keras' BCE.
    lengths = x["mask"].sum(1).astype(int)
    idx = np.floor((np.arange(3)[None, :] + 0.5) * lengths[:, None] / 3).astype(int)
    picked = np.take_along_axis(x["frames"], idx[..., None], axis=1)
    probs = distiller.student({"frames": picked, "mask": np.ones((16, 3), "float32")})["predictions"]
    expected = keras.losses.BinaryCrossentropy()(y, probs)
    np.testing.assert_allclose(float(losses["loss"]), float(expected), rtol=1e-6)


def test_rep_and_pred_losses_vanish_for_identical_models():
    keras.utils.set_random_seed(2)
    model = build_model(small_config(num_frames=None, name="same"))
    distiller = Distiller(model, model, k=FRAMES, sampler="first", prediction_loss="mse")
    x, y = synthetic_videos(8)
    x["mask"] = np.ones_like(x["mask"])  # every frame real: "first" k=FRAMES picks them all
    losses, _, _ = distiller.compute_losses(x, y)
    assert float(losses["rep_loss"]) == pytest.approx(0.0, abs=1e-10)
    assert float(losses["pred_loss"]) == pytest.approx(0.0, abs=1e-10)


def test_prediction_and_representation_losses_hand_checked():
    p_t = np.array([[0.5, 1.0]], "float32")
    p_s = np.array([[0.25, 0.5]], "float32")
    # mse: ((0.25)^2 + (0.5)^2) / 2 = 0.15625
    assert float(kd_losses.prediction_loss(p_t, p_s, "mse")) == pytest.approx(0.15625)
    # bce: -(0.5 ln .25 + 0.5 ln .75 + 1 ln .5 + 0 ln .5) / 2
    expected = -(0.5 * np.log(0.25) + 0.5 * np.log(0.75) + np.log(0.5)) / 2
    assert float(kd_losses.prediction_loss(p_t, p_s, "bce")) == pytest.approx(expected, rel=1e-6)
    e_t = np.array([[1.0, 2.0], [0.0, 0.0]], "float32")
    e_s = np.array([[0.0, 0.0], [3.0, 4.0]], "float32")
    # per video: 1 + 4 = 5 and 9 + 16 = 25, mean 15
    assert float(kd_losses.representation_loss(e_t, e_s)) == pytest.approx(15.0)
    with pytest.raises(ValueError, match="Unknown prediction loss"):
        kd_losses.prediction_loss(p_t, p_s, "kl2")


def test_student_sees_k_frames_from_true_length():
    distiller = make_distiller(k=3)
    n = 10
    lengths = np.arange(1, n + 1) % FRAMES + 1
    mask = (np.arange(FRAMES)[None, :] < lengths[:, None]).astype("float32")
    # frame t of every video carries the value t + 1, padding carries -1
    frames = np.broadcast_to((np.arange(FRAMES) + 1.0)[None, :, None], (n, FRAMES, FEATURES)).copy()
    frames[mask == 0] = -1.0
    for sampler in ("uniform", "random", "first", "middle", "last", "first_middle_last"):
        distiller.sampler = distiller.train_sampler = sampler
        view = distiller.student_view({"frames": frames, "mask": mask}, training=sampler == "random")
        picked = np.asarray(view["frames"])
        assert picked.shape == (n, 3, FEATURES)
        positions = picked[:, :, 0] - 1
        assert (positions >= 0).all(), sampler
        assert (positions < lengths[:, None]).all(), sampler


def test_train_sampler_differs_from_evaluation_sampler():
    """train_sampler="random": fresh k-subsets in training steps, uniform frames at evaluation."""
    from kdzoo.sampling import sample_indices_numpy

    distiller = make_distiller(k=3, sampler="uniform", train_sampler="random")
    n = 32
    frames = np.broadcast_to((np.arange(FRAMES) + 1.0)[None, :, None], (n, FRAMES, FEATURES)).copy()
    inputs = {"frames": frames, "mask": np.ones((n, FRAMES), "float32")}
    positions = lambda view: np.asarray(view["frames"])[:, :, 0].astype(int) - 1
    uniform = np.tile(sample_indices_numpy(FRAMES, 3, "uniform"), (n, 1))
    np.testing.assert_array_equal(positions(distiller.student_view(inputs, training=False)), uniform)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    first = positions(distiller.student_view(inputs, training=True))
    assert not np.array_equal(first, uniform)
    assert all(len(set(row)) == 3 for row in first.tolist())
    distiller.optimizer.iterations.assign(1)  # the next step draws anew
    assert not np.array_equal(positions(distiller.student_view(inputs, training=True)), first)
    assert Distiller.from_config(distiller.get_config()).train_sampler == "random"


def _fit(distiller, epochs=2, **kwargs):
    x, y = synthetic_videos(64)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    return distiller.fit(x, y, batch_size=16, epochs=epochs, verbose=0, **kwargs)


def test_serial_mode_freezes_teacher_bit_identical():
    distiller = make_distiller(mode="serial", teacher_family="netvlad", student_family="nextvlad")
    teacher_before = [w.copy() for w in distiller.teacher.get_weights()]
    student_before = [w.copy() for w in distiller.student.get_weights()]
    _fit(distiller)
    for a, b in zip(teacher_before, distiller.teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(student_before, distiller.student.get_weights()))


def test_parallel_mode_trains_both():
    distiller = make_distiller(mode="parallel", teacher_family="hrnn")
    teacher_before = [w.copy() for w in distiller.teacher.get_weights()]
    student_before = [w.copy() for w in distiller.student.get_weights()]
    history = _fit(distiller)
    assert "teacher_ce_loss" in history.history
    assert any(not np.array_equal(a, b) for a, b in zip(teacher_before, distiller.teacher.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(student_before, distiller.student.get_weights()))


def test_parallel_mode_distillation_does_not_reach_teacher():
    """With w_ce(teacher) = 0 the teacher only gets gradients if distillation flows back."""
    x, y = synthetic_videos(16)
    for distill_into_teacher, expect_grad in ((False, False), (True, True)):
        distiller = make_distiller(
            mode="parallel", teacher_ce_weight=0.0, distill_into_teacher=distill_into_teacher
        )
        with tf.GradientTape() as tape:
            losses, _, _ = distiller.compute_losses(x, y, training=True)
        grads = tape.gradient(losses["loss"], distiller.teacher.trainable_variables)
        has_grad = any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
        assert has_grad == expect_grad


def test_no_teacher_baseline_runs_through_same_path():
    keras.utils.set_random_seed(3)
    student = build_model(small_config(num_frames=2, name="student"))
    distiller = Distiller(None, student, k=2, sampler="random")
    history = _fit(distiller, epochs=3)
    assert set(history.history) == {"loss", "ce_loss", "student_hit_at_one"}
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_fit_reports_losses_and_both_models_metrics_and_evaluate():
    distiller = make_distiller()
    history = _fit(distiller, epochs=1, validation_data=synthetic_videos(16, seed=7))
    for key in ("loss", "ce_loss", "rep_loss", "pred_loss", "student_hit_at_one", "teacher_hit_at_one",
                "val_loss", "val_rep_loss", "val_student_gap", "val_teacher_gap"):
        assert key in history.history, key
    assert "student_gap" not in history.history  # ranking metrics: evaluation only
    x, y = synthetic_videos(32, seed=5)
    results = distiller.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    teacher_probs = distiller.predict(x, role="teacher", verbose=0)["predictions"]
    student_probs = distiller.predict(x, verbose=0)["predictions"]
    from kdzoo import metrics
    assert results["teacher_gap"] == pytest.approx(metrics.gap(teacher_probs, y, top_k=CLASSES), abs=1e-5)
    assert results["student_gap"] == pytest.approx(metrics.gap(student_probs, y, top_k=CLASSES), abs=1e-5)


def test_compile_refuses_loss_and_metrics_instead_of_ignoring_them():
    distiller = make_distiller()
    for kwargs, word in (({"loss": "mse"}, "loss"), ({"metrics": ["accuracy"]}, "metrics"),
                         ({"loss_weights": [1.0]}, "loss_weights"), ({"weighted_metrics": ["mae"]}, "weighted")):
        with pytest.raises(ValueError, match=rf"refuses \['{word}"):
            distiller.compile(optimizer="adam", **kwargs)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)  # an optimizer alone is fine
    assert isinstance(distiller.optimizer, keras.optimizers.Adam)


def test_sample_and_class_weights_are_refused():
    distiller = make_distiller()
    distiller.compile(optimizer="adam")
    x, y = synthetic_videos(16)
    with pytest.raises(ValueError, match="does not support sample_weight or class_weight"):
        distiller.fit(x, y, sample_weight=np.ones(16, "float32"), batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="does not support sample_weight or class_weight"):
        distiller.evaluate(x, y, sample_weight=np.ones(16, "float32"), batch_size=8, verbose=0)


def test_distiller_builds_through_keras_build_and_reloads_compiled(tmp_path):
    keras.utils.set_random_seed(1)
    teacher = build_model(small_config("pooling", num_frames=FRAMES, name="teacher"))
    student = build_model(small_config("pooling", num_frames=3, name="student", hidden_size=12))
    distiller = Distiller(teacher, student, k=3)
    assert distiller.built and distiller.projection.built  # via Distiller.build: 12 -> 16 wide
    assert distiller.projection.kernel.shape == (12, 16)
    _fit(distiller, epochs=1)
    path = tmp_path / "d.keras"
    distiller.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "compile() was not called as part of model loading"
        restored = keras.saving.load_model(path)
    assert isinstance(restored.optimizer, keras.optimizers.Adam)
    assert int(restored.optimizer.iterations) == int(distiller.optimizer.iterations)


def test_predict_teacher_role_leaves_the_distiller_as_it_was():
    distiller = make_distiller()
    x, _ = synthetic_videos(8, seed=3)
    want_teacher = distiller.teacher(x, training=False)["predictions"]
    want_student = distiller(x, training=False)["predictions"]
    for _ in range(2):  # interleaved: each role keeps its own outputs
        np.testing.assert_allclose(distiller.predict(x, role="teacher", verbose=0)["predictions"], want_teacher,
                                   atol=1e-6)
        np.testing.assert_allclose(distiller.predict(x, verbose=0)["predictions"], want_student, atol=1e-6)


def test_fit_with_callbacks_and_backup_restore(tmp_path):
    distiller = make_distiller()
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb")),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.EarlyStopping(monitor="loss", patience=5),
    ]
    _fit(distiller, epochs=2, callbacks=callbacks)
    assert (tmp_path / "ckpt.keras").exists()
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
    restored = keras.saving.load_model(tmp_path / "ckpt.keras")
    x, _ = synthetic_videos(8, seed=9)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0)["predictions"], distiller.predict(x, verbose=0)["predictions"], atol=1e-6
    )


def test_save_load_round_trip_and_student_alone(tmp_path):
    distiller = make_distiller(teacher_family="netvlad", student_family="hrnn", sampler="middle")
    _fit(distiller, epochs=1)
    x, _ = synthetic_videos(8, seed=4)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, Distiller)
    assert restored.sampler == "middle" and restored.k == 3
    for role in ("student", "teacher"):
        np.testing.assert_array_equal(
            restored.predict(x, role=role, verbose=0)["predictions"],
            distiller.predict(x, role=role, verbose=0)["predictions"],
        )
    distiller.student.save(tmp_path / "student.keras")
    student = keras.saving.load_model(tmp_path / "student.keras")
    view = distiller.student_view(x)
    np.testing.assert_array_equal(
        student.predict(view, verbose=0)["predictions"], distiller.predict(x, verbose=0)["predictions"]
    )


def test_mixed_float16_fit():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        distiller = make_distiller(teacher_family="netvlad")
        history = _fit(distiller, epochs=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(history.history["loss"]))
    assert distiller.student.get_layer("moe").compute_dtype == "float16"
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "positive integer"),
        ({"k": 9}, "exceed"),
        ({"sampler": "every_other"}, "Unknown sampler"),
        ({"mode": "both"}, "Unknown mode"),
        ({"prediction_loss": "kl2"}, "Unknown prediction loss"),
        ({"metrics": ("auc",)}, "Unknown metrics"),
    ],
)
def test_constructor_errors(kwargs, message):
    teacher = build_model(small_config(num_frames=FRAMES, name="teacher"))
    student = build_model(small_config(num_frames=None, name="student"))
    args = {"k": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        Distiller(teacher, student, **args)


def test_wrong_input_width_is_a_clear_error():
    distiller = make_distiller()
    x, y = synthetic_videos(4)
    with pytest.raises(ValueError, match=r"Expected frames of shape \(batch, frames, 6\)"):
        distiller.compute_losses({"frames": x["frames"][..., :4], "mask": x["mask"]}, y)
    with pytest.raises(ValueError, match="Expected frames of shape"):
        distiller.compute_losses({"frames": x["frames"][:, 0], "mask": x["mask"]}, y)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, sys.argv[1])
    from helpers import make_distiller, synthetic_videos
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        distiller = make_distiller(teacher_family="netvlad")
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y = synthetic_videos(64)
    history = distiller.fit(x, y, batch_size=16, epochs=4, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"]}))
    """
)


@pytest.mark.slow  # a fresh process with two CPU replicas; tests/test_distribute.py checks the strategy path by default
def test_mirrored_strategy_two_cpu_replicas_loss_falls(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    tests_dir = pathlib.Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests_dir.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(script), str(tests_dir)], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["loss"][-1] < report["loss"][0]
    assert all(loss > 0 for loss in report["loss"])
