"""A real TensorBoard server serves a Distiller's fit logs and the teacher's and student's profiler traces."""

import contextlib
import gzip
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import keras
import pytest

from kdzoo.distillation import Distiller
from kdzoo.models import build_model

from helpers import FRAMES, small_config, synthetic_videos

K = 3
STARTUP_TIMEOUT_S = 60.0
TRAIN_TAGS = {
    "epoch_loss", "epoch_ce_loss", "epoch_rep_loss", "epoch_pred_loss",
    "epoch_student_hit_at_one", "epoch_teacher_hit_at_one",
}
# GAP (a ranking metric) is computed on validation data only.
VALIDATION_TAGS = TRAIN_TAGS | {"epoch_student_gap", "epoch_teacher_gap"}


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return json.loads(body.decode("utf-8"))


def _log_tail(proc) -> str:
    path = getattr(proc, "log_path", None)
    if path is None or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-3000:]


def _poll(fetch, ready, proc, what: str):
    """Calls fetch() until ready(result); fails with the server's output after the timeout."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tensorboard exited with {proc.returncode} while waiting for {what}:\n{_log_tail(proc)}")
        try:
            last = fetch()
            if ready(last):
                return last
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"tensorboard did not serve {what} within {STARTUP_TIMEOUT_S:.0f} s; last answer: {last!r}\n"
                f"{_log_tail(proc)}")


def _tensorboard_command() -> list[str]:
    if shutil.which("tensorboard"):
        return ["tensorboard"]
    return [sys.executable, "-m", "tensorboard.main"]


def _write_logs(root):
    keras.utils.set_random_seed(0)
    teacher = build_model(small_config("pooling", name="teacher"))
    student = build_model(small_config("pooling", num_frames=K, name="student"))
    distiller = Distiller(teacher, student, k=K, metric_capacity=256)
    distiller.compile(optimizer="adam")
    x, y = synthetic_videos(64)
    distiller.fit(x, y, validation_data=(x, y), epochs=2, batch_size=16, verbose=0,
                  callbacks=[keras.callbacks.TensorBoard(log_dir=str(root / "fit"))])

    try:
        from kdzoo.profiling import write_trace
    except ImportError:  # pragma: no cover - kdzoo.profiling ships write_trace
        write_trace = None
    if write_trace is not None:
        written = write_trace(teacher, root, num_frames=FRAMES, run="teacher", steps=2)
        written += write_trace(student, root, num_frames=K, run="student", steps=2)
    else:  # pragma: no cover
        import tensorflow as tf

        written = []
        for run, model, num_frames in (("teacher", teacher, FRAMES), ("student", student, K)):
            inputs = {"frames": tf.zeros((4, num_frames, x["frames"].shape[-1])), "mask": tf.ones((4, num_frames))}
            model(inputs)
            tf.profiler.experimental.start(str(root / run))
            model(inputs)
            tf.profiler.experimental.stop()
            written += list((root / run).glob("plugins/profile/*/*.xplane.pb"))
    return written


def test_tensorboard_serves_distiller_scalars_and_profiles(tmp_path):
    traces = _write_logs(tmp_path)
    assert {p.relative_to(tmp_path).parts[0] for p in traces} == {"teacher", "student"}
    has_profile = importlib.util.find_spec("tensorboard_plugin_profile") is not None

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    log_path = tmp_path.parent / f"{tmp_path.name}-tensorboard.log"  # outside the logdir
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        _tensorboard_command() + ["--logdir", str(tmp_path), "--host", "127.0.0.1", "--port", str(port),
                                  "--load_fast", "false", "--reload_interval", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    proc.log_path = str(log_path)
    try:
        plugins = _poll(lambda: _get(f"{base}/data/plugins_listing"), lambda d: "scalars" in d, proc,
                        "/data/plugins_listing")
        assert plugins["scalars"]["enabled"]

        def tags_ready(tags):
            return TRAIN_TAGS <= set(tags.get("fit/train", {})) and VALIDATION_TAGS <= set(tags.get("fit/validation", {}))

        tags = _poll(lambda: _get(f"{base}/data/plugin/scalars/tags"), tags_ready, proc, "the Distiller's scalars")
        assert TRAIN_TAGS <= set(tags["fit/train"])
        assert VALIDATION_TAGS <= set(tags["fit/validation"])

        for run, tag in (("fit%2Ftrain", "epoch_loss"), ("fit%2Fvalidation", "epoch_student_gap"),
                         ("fit%2Fvalidation", "epoch_teacher_gap")):
            url = f"{base}/data/plugin/scalars/scalars?run={run}&tag={tag}"
            scalars = _poll(lambda: _get(url), lambda s: len(s) >= 2, proc, f"both epochs of {tag}")
            assert [step for _, step, _ in scalars] == [0, 1], (run, tag, scalars)
            if "gap" in tag:
                assert all(0.0 <= value <= 1.0 for _, _, value in scalars)

        if not has_profile:
            pytest.skip("tensorboard_plugin_profile is not installed (pip install 'kdzoo[profile]'): "
                        "scalars checked, profile assertions skipped")
        plugins = _get(f"{base}/data/plugins_listing")
        assert "profile" in plugins and plugins["profile"]["enabled"]
        runs = _poll(lambda: _get(f"{base}/data/plugin/profile/runs"),
                     lambda r: {x.split("/")[0] for x in r} >= {"teacher", "student"}, proc, "the profile runs")
        assert {r.split("/")[0] for r in runs} >= {"teacher", "student"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
