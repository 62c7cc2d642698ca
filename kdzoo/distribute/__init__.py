"""Distillation on several devices or machines with tf.distribute (mirrored, multi-worker)."""

import importlib
from typing import Any

# Names load on first use: `make_strategy` must run before any other TensorFlow op, so
# importing this package must not import the Distiller, the models or the data pipeline.
_HOMES = {
    "LocalCluster": "local", "free_ports": "local", "tf_config": "local",
    "fit_stage": "loop", "weights_digest": "loop",
    "STRATEGIES": "strategy", "WorkerInfo": "strategy", "make_strategy": "strategy",
    "shard_files": "strategy", "sharded_input": "strategy", "worker_info": "strategy",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'kdzoo.distribute' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kdzoo.distribute.{_HOMES[name]}"), name)

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
