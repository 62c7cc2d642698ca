"""Crash-safe training: a SIGKILLed `kdzoo distill` resumes from its last epoch; writes are atomic."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import keras
import pytest

from kdzoo.zoo import artifacts
from records import tiny_zoo_yaml
from records import write_audioset_train

EPOCHS = 4
RECORDS = 600
ZOO_YAML = tiny_zoo_yaml(output_size=8, extra="""training:
  batch_size: 8
  learning_rate: 0.001
  validation_fraction: 0.1
  patience: 100
  seed: 0
data:
  train: audioset/train-*.tfrecord
""")


def write_audioset(folder: pathlib.Path, n: int = RECORDS, files: int = 2):
    return write_audioset_train(folder, n, files)


def _command(config, data_dir, work_dir):
    return [sys.executable, "-m", "kdzoo.cli", "distill", str(config), "--data-dir", str(data_dir),
            "--work-dir", str(work_dir), "--epochs", str(EPOCHS), "--progress", "2"]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow  # about 50 s on 2 cores: in `pytest -m slow`
def test_sigkill_then_rerun_resumes_teacher(tmp_path):
    data_dir, work_dir = tmp_path / "data", tmp_path / "runs"
    write_audioset(data_dir / "audioset")
    config = tmp_path / "netvlad.audioset.yaml"
    config.write_text(ZOO_YAML)
    teacher_dir = work_dir / "netvlad_teacher.audioset" / "teacher"
    student_dir = work_dir / "netvlad_student_k2.audioset" / "distilled"

    # Run 1: kill it (SIGKILL, no cleanup) once epoch 2 is done and its backup is on disk.
    proc = subprocess.Popen(_command(config, data_dir, work_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())
    first_output = []
    try:
        deadline = time.monotonic() + 300
        for line in proc.stdout:
            first_output.append(line)
            # "Epoch 3/6" is printed when epoch 3 begins: epoch 2's backup is written by then.
            if re.match(r"Epoch 3/%d" % EPOCHS, line) and (teacher_dir / "backup").is_dir():
                proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "".join(first_output[-30:])
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(first_output[-30:])
    assert not (teacher_dir / "done.json").exists()
    assert (teacher_dir / "backup").is_dir()

    # Run 2: the same command finishes, the teacher continuing from its backup.
    second = subprocess.run(_command(config, data_dir, work_dir), capture_output=True, text=True, env=_env(),
                            timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    epochs = [int(m) for m in re.findall(r"^Epoch (\d+)/%d" % EPOCHS, second.stdout, re.M)]
    assert epochs, second.stdout[-3000:]
    # Teacher epochs come first: they start after epoch 1, then the student trains from epoch 1.
    student_start = epochs.index(1)
    teacher_epochs, student_epochs = epochs[:student_start], epochs[student_start:]
    assert teacher_epochs and teacher_epochs[0] >= 2 and teacher_epochs[-1] == EPOCHS, epochs
    assert student_epochs == list(range(1, EPOCHS + 1)), epochs

    teacher_done = json.loads((teacher_dir / "done.json").read_text())
    # The record covers every epoch, those before the kill included, as run 1 printed them.
    assert teacher_done["epochs_run"] == EPOCHS
    gaps = teacher_done["history"]["val_student_gap"]
    assert len(gaps) == EPOCHS
    printed = [float(v) for v in re.findall(r"val_student_gap: ([0-9.]+)", "".join(first_output))]
    assert len(printed) >= 2 and gaps[:len(printed)] == pytest.approx(printed, abs=1e-4), (printed, gaps)
    best_score = json.loads((teacher_dir / "best.weights.json").read_text())["score"]
    assert teacher_done["best_val_gap"] == pytest.approx(max(gaps)) == pytest.approx(best_score)
    # Wall time of all epochs, both processes': the sum of the per-epoch times.
    epoch_seconds = teacher_done["history"]["epoch_seconds"]
    assert len(epoch_seconds) == EPOCHS and min(epoch_seconds) > 0
    assert teacher_done["train_seconds"] == pytest.approx(sum(epoch_seconds), abs=0.1)
    assert (student_dir / "done.json").is_file()
    assert (teacher_dir / "best.weights.h5").is_file() and (student_dir / "best.weights.h5").is_file()
    assert "student (k=2): best validation GAP@20" in second.stdout

    # Run 3: everything is done; nothing trains again.
    third = subprocess.run(_command(config, data_dir, work_dir), capture_output=True, text=True, env=_env(),
                           timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert not re.search(r"^Epoch \d+/", third.stdout, re.M)


# ----------------------------------------------------------------------------- atomic writes


def _listing(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir())


@pytest.mark.parametrize("fail_in", ["write", "fsync", "replace"])
def test_atomic_write_json_leaves_no_partial_file(tmp_path, monkeypatch, fail_in):
    target = tmp_path / "card.json"
    artifacts.atomic_write_json(target, {"version": 1})
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(f"simulated crash in {fail_in}")

    if fail_in == "write":
        # json.dumps succeeds; the file object's write fails half-way.
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            f = real_fdopen(fd, *args, **kwargs)
            real_write = f.write

            def write(data):
                real_write(data[: len(data) // 2])
                f.flush()
                raise OSError("simulated crash in write")

            f.write = write
            return f

        monkeypatch.setattr(artifacts.os, "fdopen", fdopen)
    elif fail_in == "fsync":
        monkeypatch.setattr(artifacts.os, "fsync", boom)
    else:
        monkeypatch.setattr(artifacts.os, "replace", boom)

    with pytest.raises(OSError, match="simulated crash"):
        artifacts.atomic_write_json(target, {"version": 2, "payload": "x" * 10_000})
    monkeypatch.undo()
    assert target.read_bytes() == before  # the old card, intact
    assert json.loads(target.read_text()) == {"version": 1}
    assert _listing(tmp_path) == ["card.json"]  # no temporary left behind

    with pytest.raises(OSError):
        monkeypatch.setattr(artifacts.os, "fsync", boom)
        artifacts.atomic_write_json(tmp_path / "new.json", {"a": 1})
    assert _listing(tmp_path) == ["card.json"]  # a first write that fails creates nothing


def test_atomic_write_json_serialisation_error_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        artifacts.atomic_write_json(tmp_path / "x.json", {"bad": object()})
    assert _listing(tmp_path) == []


def test_atomic_save_weights_failure_keeps_old_checkpoint(tmp_path, monkeypatch):
    from kdzoo.models import build_model

    model = build_model({"family": "pooling", "feature_size": 4, "num_classes": 3, "name": "m"})
    target = tmp_path / "best.weights.h5"
    artifacts.atomic_save_weights(model, target)
    before = target.read_bytes()

    real_save = keras.Model.save_weights

    def crash_after_partial_save(self, path, *args, **kwargs):
        real_save(self, path, *args, **kwargs)
        with open(path, "r+b") as f:  # a half-written file, then the crash
            f.truncate(100)
        raise OSError("simulated crash in save_weights")

    monkeypatch.setattr(keras.Model, "save_weights", crash_after_partial_save)
    model.set_weights([w + 1 for w in model.get_weights()])
    with pytest.raises(OSError, match="simulated crash"):
        artifacts.atomic_save_weights(model, target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["best.weights.h5"]
