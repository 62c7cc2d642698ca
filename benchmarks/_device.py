"""Device description shared by the benchmark scripts (results go to results/<cpu|gpu>/)."""

from __future__ import annotations

import json
import os
import pathlib
import platform

import tensorflow as tf

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def device_kind() -> str:
    """``"gpu"`` when TensorFlow sees a GPU, else ``"cpu"``: the results sub-folder."""
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    return [
        tf.config.experimental.get_device_details(g).get("device_name", g.name)
        for g in tf.config.list_physical_devices("GPU")
    ]


def device_name() -> str:
    """What the models ran on, e.g. ``"GPU:0 (NVIDIA H100 80GB HBM3)"`` or ``"CPU:0 (AMD EPYC ...)"``."""
    gpus = gpu_names()
    return f"GPU:0 ({gpus[0]})" if gpus else f"CPU:0 ({cpu_model()})"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def environment() -> dict:
    """Device and software fields recorded in every result file."""
    return {
        "device_kind": device_kind(),
        "device": device_name(),
        "gpus": gpu_names(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }


def default_output(filename: str) -> pathlib.Path:
    """``benchmarks/results/<cpu|gpu>/<filename>``."""
    return RESULTS / device_kind() / filename


def write_result(path: str | os.PathLike, result: dict) -> pathlib.Path:
    """Writes one benchmark's result file (indented JSON), making its folder; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
