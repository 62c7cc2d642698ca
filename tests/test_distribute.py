"""Distributed distillation: file sharding, the loop under MirroredStrategy against `fit`, and
`kdzoo distill --strategy multiworker` with two real worker processes on 127.0.0.1."""

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from kdzoo.data import make_dataset
from kdzoo.distribute import LocalCluster, make_strategy, shard_files, sharded_input, tf_config
from records import tiny_zoo_yaml, write_audioset_train

TESTS_DIR = pathlib.Path(__file__).parent
FILES, RECORDS, BATCH = 4, 256, 8
ZOO_YAML = tiny_zoo_yaml(output_size=8, extra=f"""training:
  batch_size: {BATCH}
  learning_rate: 0.01
  validation_fraction: 0.1
  patience: 100
  seed: 0
data:
  train: audioset/train-*.tfrecord
""")


def write_audioset(folder: pathlib.Path, n: int = RECORDS, files: int = FILES) -> list[str]:
    """`files` TFRecord files; video ``v<i>`` lives in file ``i % files``."""
    return write_audioset_train(folder, n, files)


# ----------------------------------------------------------------------------- sharding


def test_shard_files_gives_each_worker_its_own_files():
    files = [f"f{i}" for i in range(7)]
    shards = [shard_files(files, tf.distribute.InputContext(3, i, 3)) for i in range(3)]
    assert shards == [["f0", "f3", "f6"], ["f1", "f4"], ["f2", "f5"]]
    with pytest.raises(ValueError, match="Cannot shard 2 training file.*across 3 workers"):
        shard_files(files[:2], tf.distribute.InputContext(3, 0, 3))


def test_sharded_input_reads_only_its_shard_in_per_replica_batches(tmp_path):
    files = write_audioset(tmp_path, n=40)
    make = lambda shard, batch_size, **kw: make_dataset(shard, "audioset", batch_size, **kw)  # noqa: E731
    dataset_fn = sharded_input(files, 16, make, include_ids=True)
    seen = []
    for pipeline in range(2):
        # 2 workers with 2 replicas each: a global batch of 16 is 4 videos per replica.
        batches = list(dataset_fn(tf.distribute.InputContext(2, pipeline, 4)))
        assert {int(b[1].shape[0]) for b in batches[:-1]} == {4}
        ids = [int(v[1:]) for b in batches for v in b[0]["id"].numpy().astype(str)]
        assert {i % FILES for i in ids} == {pipeline, pipeline + 2}  # files pipeline and pipeline + 2
        seen += ids
    assert sorted(seen) == list(range(40))


def test_strategy_names_and_tf_config_errors(monkeypatch):
    assert make_strategy("default") is None
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'"):
        make_strategy("horovod")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker"}}')
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON like"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1"], 0).replace('"index": 0', '"index": 3'))
    with pytest.raises(ValueError, match="task index 3 is outside its 1 workers"):
        make_strategy("multiworker")


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed child waits for a reaper)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_local_cluster_gives_each_worker_its_tf_config_and_kills_process_groups(tmp_path):
    # Each worker prints its TF_CONFIG and the pid of a child that sleeps, then sleeps itself.
    script = ("import json, os, subprocess, sys, time; "
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
              "print(json.dumps([json.loads(os.environ['TF_CONFIG']), child.pid]), flush=True); time.sleep(300)")
    with LocalCluster([sys.executable, "-c", script], 2, tmp_path) as cluster:
        deadline = time.monotonic() + 60
        while not all(cluster.output(i).strip() for i in range(2)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        reports = [json.loads(cluster.output(i)) for i in range(2)]
        assert all(_running(pid) for _, pid in reports)
    configs = [config for config, _ in reports]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]
    assert configs[0]["cluster"] == configs[1]["cluster"]
    assert len(set(configs[0]["cluster"]["worker"])) == 2
    assert all(p.poll() is not None for p in cluster.processes)
    deadline = time.monotonic() + 30  # SIGKILL is delivered asynchronously
    while any(_running(pid) for _, pid in reports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for _, pid in reports)  # the children went with their workers


# ----------------------------------------------------------------------------- mirrored == fit

MIRRORED_VS_FIT = textwrap.dedent(
    """
    import json, sys, tempfile
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    sys.path.insert(0, sys.argv[1])
    from helpers import small_config, synthetic_videos
    from kdzoo.distillation import Distiller
    from kdzoo.distribute import fit_stage
    from kdzoo.models import build_model

    STEPS, BATCH, LR = 6, 8, 1e-3
    x, y = synthetic_videos(STEPS * BATCH)

    def build():
        keras.utils.set_random_seed(3)
        teacher = build_model(small_config("pooling", num_frames=8, name="teacher", dropout=0.0))
        student = build_model(small_config("pooling", num_frames=3, name="student", hidden_size=12, dropout=0.0))
        return Distiller(teacher, student, k=3, metrics=("hit_at_one",))

    one = build()  # Keras fit on one device, global batch 8
    one.compile(optimizer=keras.optimizers.Adam(LR))
    init = [m.get_weights() for m in (one.teacher, one.student, one.projection)]
    history = one.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH), epochs=1, verbose=0)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():  # the distributed loop, 2 replicas of 4 videos: the same global batches
        two = build()
    for m, w in zip((two.teacher, two.student, two.projection), init):
        m.set_weights(w)
    def dataset_fn(ctx):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(ctx.get_per_replica_batch_size(BATCH)).repeat()
    val = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    record = fit_stage(two, strategy, dataset_fn, val, tempfile.mkdtemp(), epochs=1, steps_per_epoch=STEPS,
                       global_batch_size=BATCH, learning_rate=LR, patience=5, verbose=0)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "diff": max(float(np.abs(a - b).max()) for a, b in zip(one.student.get_weights(), two.student.get_weights())),
        "moved": max(float(np.abs(a - b).max()) for a, b in zip(init[1], two.student.get_weights())),
        "fit_loss": history.history["loss"][-1], "loop_loss": record["history"]["loss"][-1],
        "strategy": record["strategy"],
    }))
    """
)


def test_loop_under_mirrored_strategy_matches_fit_on_one_device(tmp_path):
    script = tmp_path / "mirrored_vs_fit.py"
    script.write_text(MIRRORED_VS_FIT)
    result = subprocess.run([sys.executable, str(script), str(TESTS_DIR)], capture_output=True, text=True,
                            timeout=600, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["strategy"] == {"name": "MirroredStrategy", "workers": 1, "replicas": 2,
                                  "global_batch_size": 8, "steps_per_epoch": 6}
    # Six Adam steps moved the weights by ~1e-3 to 1e-2; both paths agree to float rounding.
    assert report["moved"] > 1e-3
    assert report["diff"] < 1e-6, report
    np.testing.assert_allclose(report["loop_loss"], report["fit_loss"], rtol=1e-5)


# ----------------------------------------------------------------------------- two workers


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _distill(config, data_dir, work_dir, epochs):
    return [sys.executable, "-m", "kdzoo.cli", "distill", str(config), "--data-dir", str(data_dir),
            "--work-dir", str(work_dir), "--epochs", str(epochs), "--progress", "2", "--strategy", "multiworker"]


def _digests(output: str) -> list[str]:
    return re.findall(r"weights sha256 ([0-9a-f]{64})", output)


def _weights_sha256(path: pathlib.Path, model_config: dict) -> str:
    """Reference digest: the weights file loaded into a fresh model, bytes in get_weights order."""
    from kdzoo.models import build_model

    model = build_model(model_config)
    model.load_weights(path)
    return hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()


STUDENT = pathlib.Path("netvlad_student_k2.audioset", "distilled")
TEACHER = pathlib.Path("netvlad_teacher.audioset", "teacher")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data, the zoo config and a finished teacher stage for the workers to distil from.

    The teacher keeps its initial weights (the test is about the workers, not its quality):
    its stage folder holds the two files that mark a stage done, so `kdzoo distill` goes
    straight to the student.
    """
    from kdzoo.models import build_model
    from kdzoo.zoo import artifacts
    from kdzoo.zoo.config import ZooConfig

    root = tmp_path_factory.mktemp("multiworker")
    write_audioset(root / "data" / "audioset")
    (root / "netvlad.audioset.yaml").write_text(ZOO_YAML)
    config = ZooConfig.from_file(root / "netvlad.audioset.yaml")
    teacher_dir = root / "teacher_runs" / TEACHER
    artifacts.atomic_save_weights(build_model(config.model_config("teacher")), teacher_dir / "best.weights.h5")
    artifacts.atomic_write_json(teacher_dir / "done.json", {"epochs_run": 0, "best_val_gap": None, "history": {}})
    return root, config


def _work_dir(root: pathlib.Path, name: str) -> pathlib.Path:
    work_dir = root / name
    shutil.copytree(root / "teacher_runs" / TEACHER, work_dir / TEACHER)
    return work_dir


def test_two_workers_distill_identical_students_and_loss_falls(setup):
    root, config = setup
    work_dir = _work_dir(root, "runs")
    command = _distill(root / "netvlad.audioset.yaml", root / "data", work_dir, epochs=3)
    with LocalCluster(command, 2, root / "logs", env=_env()) as cluster:
        codes = cluster.wait(timeout=600)
        outputs = [cluster.output(i) for i in range(2)]
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]

    run_dir = work_dir / STUDENT
    record = json.loads((run_dir / "done.json").read_text())
    assert record["strategy"] == {"name": "MultiWorkerMirroredStrategy", "workers": 2, "replicas": 2,
                                  "global_batch_size": 2 * BATCH, "steps_per_epoch": int(RECORDS * 0.9) // 16}
    losses = record["history"]["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    # Both workers end with bit-identical students: those of the chief's best.weights.h5.
    chief, worker = _digests(outputs[0]), _digests(outputs[1])
    assert len(chief) == 1 and chief == worker, (chief, worker)
    assert chief[0] == record["weights_sha256"] == _weights_sha256(
        run_dir / "best.weights.h5", config.model_config("student", 2))
    # Only the chief wrote: checkpoint, TensorBoard logs, weights, record; no worker leftovers.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "backup", "best.weights.h5", "best.weights.json", "done.json", "tb"]
    assert not list((run_dir / "backup").glob("worker_tmp_*"))
    assert tf.train.latest_checkpoint(str(run_dir / "backup")).endswith("ckpt-3")
    assert list((run_dir / "tb" / "train").iterdir()) and list((run_dir / "tb" / "validation").iterdir())


@pytest.mark.slow  # two cluster starts: about 4 minutes on 2 busy cores
def test_killed_worker_then_restart_resumes_from_checkpoint(setup):
    root, config = setup
    epochs = 12
    work_dir = _work_dir(root, "runs_killed")
    command = _distill(root / "netvlad.audioset.yaml", root / "data", work_dir, epochs=epochs)
    backup = work_dir / STUDENT / "backup"

    # Run 1: SIGKILL worker 1 once the chief has checkpointed an epoch; the chief then fails.
    with LocalCluster(command, 2, root / "logs_killed", env=_env()) as cluster:
        deadline = time.monotonic() + 600
        while tf.train.latest_checkpoint(str(backup)) is None:
            assert cluster.processes[0].poll() is None, cluster.output(0)[-3000:]
            assert time.monotonic() < deadline, cluster.output(0)[-3000:]
            time.sleep(0.05)
        cluster.kill(1)
        start = time.monotonic()
        while cluster.processes[0].poll() is None and time.monotonic() - start < 120:
            time.sleep(0.2)
        chief_code, chief_output = cluster.processes[0].poll(), cluster.output(0)
    assert chief_code not in (None, 0), chief_output[-3000:]  # it noticed the lost worker and stopped
    assert "Lost contact with another worker" in chief_output, chief_output[-3000:]
    assert not (work_dir / STUDENT / "done.json").exists()

    # Run 2: the same command on both workers resumes from the chief's last checkpoint.
    with LocalCluster(command, 2, root / "logs_resumed", env=_env()) as cluster:
        codes = cluster.wait(timeout=600)
        outputs = [cluster.output(i) for i in range(2)]
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    resumed = [int(m) for out in outputs for m in re.findall(r"^Restored \S+ \(epoch (\d+)/%d\)" % epochs, out, re.M)]
    assert len(resumed) == 2 and resumed[0] == resumed[1] and 1 <= resumed[0] < epochs, resumed
    first_epoch = re.search(r"^Epoch (\d+)/%d" % epochs, outputs[0], re.M)
    assert int(first_epoch.group(1)) == resumed[0] + 1
    record = json.loads((work_dir / STUDENT / "done.json").read_text())
    assert record["resumed_from_epoch"] == resumed[0]
    assert record["epochs_run"] == epochs and len(record["history"]["loss"]) == epochs
    chief, worker = _digests(outputs[0]), _digests(outputs[1])
    assert len(chief) == 1 and chief == worker
