"""Which tf.distribute strategy runs, which worker this process is, which files it reads."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """The strategy for a ``--strategy`` name; None for ``"default"`` (one device, `fit`).

    ``"mirrored"``: every local GPU (or CPU) of this host. ``"multiworker"``: the cluster
    described by the standard ``TF_CONFIG`` environment variable (one worker without it).
    Create it first thing in the program: TensorFlow requires the multi-worker strategy to
    exist before any other op runs.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {STRATEGIES}.")
    if name == "default":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    _check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


def _check_tf_config(raw: str | None) -> None:
    if not raw:
        return
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}. Received: {raw!r} ({e})'
        ) from None
    if task.get("type") == "worker" and not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG task index {index} is outside its {len(workers)} workers: {raw!r}")


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster.

    The chief is the task of type "chief", or worker 0 when the cluster has none; it alone
    writes checkpoints, TensorBoard logs, weights and records.
    """

    task_type: str | None
    task_id: int
    num_workers: int
    is_chief: bool


def worker_info(strategy: tf.distribute.Strategy) -> WorkerInfo:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return WorkerInfo(None, 0, 1, True)
    cluster = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return WorkerInfo(task_type, task_id, workers, is_chief)


def shard_files(files: Sequence[str], input_context: tf.distribute.InputContext) -> list[str]:
    """The files input pipeline ``input_pipeline_id`` reads: every ``num_input_pipelines``-th one.

    Sharding by file means each worker opens only its own files; there must be at least
    one file per worker.
    """
    files = list(files)
    n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) < n:
        raise ValueError(
            f"Cannot shard {len(files)} training file(s) by file across {n} workers: each worker needs at "
            "least one file. Split the data into more TFRecord files (YouTube-8M ships thousands) or use "
            "fewer workers."
        )
    return files[i::n]


def sharded_input(
    files: Sequence[str],
    global_batch_size: int,
    make: Callable[..., tf.data.Dataset],
    **kwargs: Any,
) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """A ``dataset_fn`` for ``strategy.distribute_datasets_from_function``.

    Each input pipeline (one per worker) gets its file shard (`shard_files`) and batches of
    ``global_batch_size / replicas``: ``make(shard, per_replica_batch, **kwargs)`` builds the
    dataset, e.g. ``functools.partial(kdzoo.data.make_dataset, spec=spec)``.
    """

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
        return make(shard_files(files, input_context), batch_size=per_replica, **kwargs)

    return dataset_fn
