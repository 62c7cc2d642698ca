"""One resumable training loop for a `Distiller` under a tf.distribute strategy.

Keras' `fit` does not run under ``MultiWorkerMirroredStrategy`` (its data adapter refuses
the per-replica values of a distributed dataset), so this loop drives the step itself:
``strategy.run(distiller.train_step, ...)`` runs the Distiller's own `train_step` on each
replica, the same losses and gradient step that `fit` runs on one device, and
``strategy.reduce`` averages the replicas' loss trackers (`keras.metrics.Mean`).

A run folder has the layout of `kdzoo.training.fit_stage`; only the chief writes to it::

    <run_dir>/
        backup/           tf.train.CheckpointManager: models, optimizer, epoch and history
        tb/train, tb/validation   TensorBoard scalars per epoch (``epoch_<name>``, as Keras writes)
        best.weights.h5   the student's weights at the best validation GAP so far
        done.json         written last: the stage is finished and is skipped on a re-run

Every worker takes part in a checkpoint save (TensorFlow's multi-worker rule); the others
write theirs into ``backup/worker_tmp_<id>`` and delete it. After a worker dies the whole
cluster is restarted with the same command and every worker restores the chief's last
checkpoint, so ``run_dir`` must be a local path that all workers read (a shared disk such
as NFS; any folder on one machine).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kdzoo.distillation import Distiller
from kdzoo.distribute.strategy import WorkerInfo, worker_info
from kdzoo.evaluation import score
from kdzoo.zoo import artifacts

MONITOR = "val_student_gap"


def fit_stage(
    distiller: Distiller,
    strategy: tf.distribute.Strategy,
    train_input: Callable[[tf.distribute.InputContext], tf.data.Dataset],
    val_ds: tf.data.Dataset,
    run_dir: str | pathlib.Path,
    *,
    epochs: int,
    steps_per_epoch: int,
    global_batch_size: int,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    patience: int,
    verbose: int = 1,
    monitor: str = MONITOR,
) -> dict[str, Any]:
    """Trains `distiller` under `strategy`, resumably; returns the done.json record.

    Args:
        distiller: built inside ``strategy.scope()``.
        train_input: a ``dataset_fn`` for ``strategy.distribute_datasets_from_function``
            (see `kdzoo.distribute.sharded_input`) yielding per-replica batches forever
            (``repeat=True, drop_remainder=True``): every replica must run every step.
        val_ds: the validation batches; each worker scores all of them locally (no
            collectives), so every worker takes the same early-stopping decision.
        steps_per_epoch: global steps per epoch (each step consumes one global batch).
        global_batch_size: videos per global step, over all replicas (for the record and
            the examples per second).
        learning_rate: Adam's, a float or a schedule of the optimizer's step (the global step).

    The student ends with its best weights (highest `monitor`) on every worker.
    """
    info = worker_info(strategy)
    run_dir = pathlib.Path(run_dir)
    done, best_path = run_dir / "done.json", run_dir / "best.weights.h5"
    target = distiller.student
    if done.is_file() and best_path.is_file():
        target.load_weights(best_path)
        return artifacts.read_json(done)
    _check_scope(distiller, strategy)
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive. Received: steps_per_epoch={steps_per_epoch}")

    with strategy.scope():
        distiller.compile(optimizer=keras.optimizers.Adam(learning_rate))
        distiller.optimizer.build(distiller.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    history_json = tf.Variable("{}", dtype=tf.string, trainable=False, name="history")  # one per worker
    parts = {"student": target, "optimizer": distiller.optimizer, "epoch": epoch, "history": history_json}
    if distiller.teacher is not None:
        parts["teacher"] = distiller.teacher
    if distiller.projection is not None:
        parts["projection"] = distiller.projection
    checkpoint = tf.train.Checkpoint(**parts)  # models and optimizer; not the metrics' buffers
    backup = run_dir / "backup"
    write_dir = backup if info.is_chief else backup / f"worker_tmp_{info.task_id}"
    manager = tf.train.CheckpointManager(checkpoint, str(write_dir), max_to_keep=1)
    latest = tf.train.latest_checkpoint(str(backup))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    history: dict[str, list[float]] = json.loads(history_json.numpy().decode())
    start = int(epoch.numpy())
    if latest and verbose:
        print(f"Restored {latest} (epoch {start}/{epochs})", flush=True)
    # Best weights so far: in memory once this run improves; before that, the chief's file
    # (read now, before any step, so never while the chief rewrites it).
    scores = history.get(monitor, [])
    best_score = max(scores) if scores else -math.inf
    best_weights = _read_weights(target, best_path) if scores and best_path.is_file() else None

    writers = _summary_writers(run_dir / "tb") if info.is_chief else None
    dataset = strategy.distribute_datasets_from_function(train_input)
    iterator = iter(dataset)

    # Validation runs on this worker alone, outside strategy.run: no collectives.
    predict = tf.function(lambda x: distiller(x, training=False)["predictions"], reduce_retracing=True)

    @tf.function
    def train_step(it):  # each replica's logs: its trackers' means over the epoch so far
        return strategy.run(distiller.train_step, args=(next(it),))

    with _lost_worker_errors(backup):
        for e in range(start, epochs):
            if _stopped_early(history.get(monitor, []), patience):
                break
            if verbose:
                print(f"Epoch {e + 1}/{epochs}", flush=True)
            logs, seconds = _train_epoch(distiller, strategy, train_step, iterator, steps_per_epoch, verbose)
            logs.update({f"val_student_{k}": v for k, v in _validate(predict, val_ds).items() if k != "videos"})
            logs["train_seconds"] = seconds
            logs["examples_per_second"] = global_batch_size * steps_per_epoch / seconds
            for k, v in logs.items():
                history.setdefault(k, []).append(float(v))
            if verbose:
                print(f"{steps_per_epoch}/{steps_per_epoch} - {seconds:.1f}s - "
                      + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
            if writers is not None:
                _write_summaries(writers, logs, e)
            if logs[monitor] > best_score:
                best_score, best_weights = logs[monitor], target.get_weights()
                if info.is_chief:
                    artifacts.atomic_save_weights(target, best_path)
                    artifacts.atomic_write_json(best_path.with_suffix(".json"), {"score": best_score, "epoch": e})
            epoch.assign(e + 1)
            history_json.assign(json.dumps(history))
            _save(manager, write_dir, info)

    if best_weights is not None:
        target.set_weights(best_weights)
    scores = history.get(monitor, [])
    record = {
        "epochs_run": len(scores),
        "resumed_from_epoch": start,
        "best_val_gap": max(scores) if scores else None,
        "history": history,
        "strategy": _describe(strategy, info, global_batch_size, steps_per_epoch),
        "weights_sha256": weights_digest(target),
    }
    if info.is_chief:
        artifacts.atomic_write_json(done, record)
    return record


def weights_digest(model: keras.Model) -> str:
    """sha256 of the model's weights (their bytes, in `get_weights` order)."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def _check_scope(distiller: Distiller, strategy: tf.distribute.Strategy) -> None:
    outside = [v.path for v in distiller.student.weights if not strategy.extended.variable_created_in_scope(v.value)]
    if outside:
        raise ValueError(
            f"The Distiller's models were built outside the strategy's scope (e.g. {outside[0]}). "
            "Build teacher, student and Distiller inside `with strategy.scope():`."
        )


def _train_epoch(distiller: Distiller, strategy, train_step: Callable, iterator, steps: int, verbose: int):
    """Runs `steps` global steps; returns the epoch's logs and its seconds.

    The logs are the replicas' loss trackers averaged once, after the last step (one
    collective per epoch, none per step): replicas see equal batches, so the mean of their
    means is the epoch's mean.
    """
    for metric in distiller.metrics:
        metric.reset_state()
    progress = keras.utils.Progbar(steps, verbose=verbose) if verbose == 1 else None
    began = time.perf_counter()
    for step in range(steps):
        per_replica = train_step(iterator)
        if progress is not None:
            progress.update(step + 1)
    logs = {k: float(strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)) for k, v in per_replica.items()}
    return logs, time.perf_counter() - began


@contextlib.contextmanager
def _lost_worker_errors(backup: pathlib.Path):
    """A collective (all-reduce, metric reset, checkpoint) that lost its peer: say how to resume."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as err:
        raise RuntimeError(
            f"Lost contact with another worker ({type(err).__name__}). Restart every worker with the same "
            f"command: they resume from the last checkpoint in {backup}."
        ) from err


def _validate(predict: Callable, val_ds: tf.data.Dataset) -> dict[str, float]:
    """The paper's metrics of the Distiller's student (its own k-frame view) on `val_ds`."""
    predictions, labels = [], []
    for inputs, y in val_ds:
        predictions.append(predict({"frames": inputs["frames"], "mask": inputs["mask"]}).numpy())
        labels.append(y.numpy())
    if not predictions:
        raise ValueError("The validation dataset yielded no videos.")
    labels = np.concatenate(labels)
    return score(np.concatenate(predictions), labels, int(labels.shape[-1]))


def _stopped_early(scores: list[float], patience: int) -> bool:
    """Keras' EarlyStopping rule: `patience` epochs in a row without a new best score."""
    return bool(scores) and len(scores) - 1 - int(np.argmax(scores)) >= patience


def _read_weights(model: keras.Model, path: pathlib.Path) -> list[np.ndarray]:
    current = model.get_weights()
    model.load_weights(path)
    weights = model.get_weights()
    model.set_weights(current)
    return weights


def _save(manager: tf.train.CheckpointManager, write_dir: pathlib.Path, info: WorkerInfo) -> None:
    manager.save()
    if not info.is_chief:
        tf.io.gfile.rmtree(str(write_dir))


def _summary_writers(logdir: pathlib.Path) -> dict[str, Any]:
    return {
        "train": tf.summary.create_file_writer(str(logdir / "train")),
        "validation": tf.summary.create_file_writer(str(logdir / "validation")),
    }


def _write_summaries(writers: dict[str, Any], logs: dict[str, float], epoch: int) -> None:
    for name, value in logs.items():
        split, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
        with writers[split].as_default():
            tf.summary.scalar(f"epoch_{tag}", value, step=epoch)
    for writer in writers.values():
        writer.flush()


def _describe(strategy, info: WorkerInfo, global_batch: int, steps_per_epoch: int) -> dict[str, Any]:
    return {
        "name": ("MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                 else type(strategy).__name__),  # the former's class is CollectiveAllReduceStrategy
        "workers": info.num_workers,
        "replicas": int(strategy.num_replicas_in_sync),
        "global_batch_size": int(global_batch),
        "steps_per_epoch": int(steps_per_epoch),
    }
