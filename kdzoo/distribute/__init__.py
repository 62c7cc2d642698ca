"""Distillation on several devices or machines with tf.distribute (mirrored, multi-worker)."""

from kdzoo.distribute.local import LocalCluster, free_ports, tf_config
from kdzoo.distribute.loop import fit_stage, weights_digest
from kdzoo.distribute.strategy import STRATEGIES, WorkerInfo, make_strategy, shard_files, sharded_input, worker_info

__all__ = [
    "STRATEGIES",
    "LocalCluster",
    "WorkerInfo",
    "fit_stage",
    "free_ports",
    "make_strategy",
    "shard_files",
    "sharded_input",
    "tf_config",
    "weights_digest",
    "worker_info",
]
