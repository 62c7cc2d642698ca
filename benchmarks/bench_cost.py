"""Inference cost of teacher (all N frames) vs student (k frames) for each model family.

For every family (hrnn, netvlad, nextvlad, pooling) and setting (YouTube-8M: 1152
features, 3862 classes, N=300, k=10; AudioSet: 128 features, 527 classes, N=10, k=2)
builds a teacher and a student of the same architecture with `kdzoo.models.build_model`
and measures, in one run: analytic FLOPs (total and frame-dependent / head split),
parameters, latency at batch 1 and 64 (teacher and student interleaved), and the
student/teacher ratios. For the VLAD families, whose head does not depend on the
frame count, it also proposes the student head size (``output_size``) whose FLOPs
ratio comes closest to the paper's target (~90% fewer FLOPs).

Writes ``benchmarks/results/<cpu|gpu>/cost.json``. Run from the repository root:

    python benchmarks/bench_cost.py
    python benchmarks/bench_cost.py --families hrnn --settings yt8m --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import platform
import sys
import time

import tensorflow as tf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from kdzoo import profiling  # noqa: E402
from kdzoo.models import build_model  # noqa: E402
from kdzoo.profiling.latency import device_name  # noqa: E402

FAMILIES = ("hrnn", "netvlad", "nextvlad", "pooling")

SETTINGS = {
    "yt8m": {
        "feature_size": 1024 + 128,  # RGB + audio
        "num_classes": 3862,
        "teacher_frames": 300,
        "student_frames": 10,
        "aggregator": {
            # Block size 10 = k: the student's 10 frames fill exactly one block.
            "hrnn": {"units": 512, "block_size": 10, "cell": "lstm"},
            "netvlad": {"num_clusters": 64, "output_size": 1024},
            "nextvlad": {"num_clusters": 64, "expansion": 2, "groups": 8, "output_size": 1024},
            "pooling": {"mode": "mean_max"},
        },
        "hrnn_block_sizes": (5, 10, 20, 30),
    },
    "audioset": {
        "feature_size": 128,
        "num_classes": 527,
        "teacher_frames": 10,
        "student_frames": 2,
        "aggregator": {
            "hrnn": {"units": 256, "block_size": 5, "cell": "lstm"},
            "netvlad": {"num_clusters": 32, "output_size": 256},
            "nextvlad": {"num_clusters": 32, "expansion": 2, "groups": 8, "output_size": 256},
            "pooling": {"mode": "mean_max"},
        },
        "hrnn_block_sizes": (1, 2, 5, 10),
    },
}

HEAD = {"num_mixtures": 2}
FLOPS_RATIO_TARGET = 0.10  # paper: ~90% fewer FLOPs
LATENCY_RATIO_TARGET = 0.70  # paper: ~30% less inference time


def device_kind() -> str:
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def model_config(setting: str, family: str, role: str, frames: int, aggregator=None) -> dict:
    spec = SETTINGS[setting]
    return {
        "family": family,
        "feature_size": spec["feature_size"],
        "num_classes": spec["num_classes"],
        "frames": frames,
        "aggregator": copy.deepcopy(aggregator or spec["aggregator"][family]),
        "head": dict(HEAD),
        "name": f"{family}_{setting}_{role}",
    }


def proposed_head(setting: str, family: str, teacher_flops: int, teacher_params: int) -> dict:
    """Student `output_size` whose FLOPs ratio is closest to FLOPS_RATIO_TARGET.

    The student's FLOPs are affine in output_size (projection + MoE), so two analytic
    counts give the line; the nearest multiple of 8 (at least 8) is then built and
    counted exactly.
    """
    spec = SETTINGS[setting]
    k = spec["student_frames"]

    def student(output_size):
        aggregator = dict(spec["aggregator"][family], output_size=output_size)
        return build_model(model_config(setting, family, "student", k, aggregator))

    current = spec["aggregator"][family]["output_size"]
    f8, f16 = (profiling.flops(student(o), k) for o in (8, 16))
    slope = (f16 - f8) / 8
    intercept = f8 - 8 * slope
    ideal = (FLOPS_RATIO_TARGET * teacher_flops - intercept) / slope
    # Never larger than the teacher's head: a student already under target keeps it.
    output_size = min(current, max(8, int(round(ideal / 8)) * 8))
    model = student(output_size)
    ratio = profiling.flops(model, k) / teacher_flops
    return {
        "output_size": output_size,
        "teacher_output_size": current,
        "needed": ideal < current,
        "target_flops_ratio": FLOPS_RATIO_TARGET,
        "target_reachable": ideal >= 8,
        "flops": profiling.flops(model, k),
        "flops_split": profiling.flops_split(model, k),
        "params": profiling.params(model),
        "flops_ratio": ratio,
        "params_ratio": profiling.params(model) / teacher_params,
        "embedding_size": output_size,
    }


def hrnn_block_sweep(setting: str, args) -> dict:
    """Student/teacher FLOPs and batch-1 latency ratios for other H-RNN block sizes
    (teacher and student share the block size; the student's k frames are padded to
    whole blocks). Sequential RNN steps are block_size + blocks, which sets batch-1
    latency on CPU."""
    spec = SETTINGS[setting]
    out = {}
    for block in spec["hrnn_block_sizes"]:
        aggregator = dict(spec["aggregator"]["hrnn"], block_size=block)
        t = build_model(model_config(setting, "hrnn", "teacher", spec["teacher_frames"], aggregator))
        s = build_model(model_config(setting, "hrnn", "student", spec["student_frames"], aggregator))
        report = profiling.compare(
            t, s, batches=(1,), warmup=args.warmup, repeats=args.repeats, seed=args.seed
        )
        out[str(block)] = {
            "flops_ratio": report["ratios"]["flops"],
            "latency_ratio_b1": report["ratios"]["latency"][1],
            "teacher_median_ms_b1": report["teacher"]["latency"][1]["median_ms"],
            "student_median_ms_b1": report["student"]["latency"][1]["median_ms"],
        }
    return out


def bench_pair(setting: str, family: str, args) -> dict:
    spec = SETTINGS[setting]
    teacher = build_model(model_config(setting, family, "teacher", spec["teacher_frames"]))
    student = build_model(model_config(setting, family, "student", spec["student_frames"]))
    repeats = {
        1: args.repeats,
        64: args.repeats_large if spec["teacher_frames"] >= 100 else args.repeats,
    }
    repeats = {b: repeats.get(b, args.repeats) for b in args.batches}
    start = time.perf_counter()
    report = profiling.compare(
        teacher,
        student,
        student_frames=spec["student_frames"],
        batches=tuple(args.batches),
        warmup=args.warmup,
        repeats=repeats,
        seed=args.seed,
    )
    report["config"] = {
        "aggregator": spec["aggregator"][family],
        "head": HEAD,
        "feature_size": spec["feature_size"],
        "num_classes": spec["num_classes"],
    }
    report["repeats"] = repeats
    report["targets"] = {"flops_ratio": FLOPS_RATIO_TARGET, "latency_ratio": LATENCY_RATIO_TARGET}
    if family in ("netvlad", "nextvlad"):
        report["proposed_head"] = proposed_head(
            setting, family, report["teacher"]["flops"], report["teacher"]["params"]
        )
    if family == "hrnn":
        report["hrnn_block_size_sweep"] = hrnn_block_sweep(setting, args)
    report["seconds"] = time.perf_counter() - start
    return report


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model and batch")
    parser.add_argument(
        "--repeats-large", type=int, default=5,
        help="timed runs at batch 64 when the teacher sees >= 100 frames",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help="default: benchmarks/results/<cpu|gpu>/cost.json")
    args = parser.parse_args(argv)

    kind = device_kind()
    output = args.output or REPO_ROOT / "benchmarks" / "results" / kind / "cost.json"
    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "device_kind": kind,
        "device": device_name(),
        "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "flops_convention": "multiply-add = 2 FLOPs; one video (batch 1); see kdzoo/profiling/flops.py",
        "results": {},
    }
    start = time.perf_counter()
    for setting in args.settings:
        result["results"][setting] = {}
        for family in args.families:
            print(f"[{time.perf_counter() - start:7.1f}s] {setting} {family}", flush=True)
            report = bench_pair(setting, family, args)
            result["results"][setting][family] = report
            r = report["ratios"]
            lat = ", ".join(f"b{b}={v:.3f}" for b, v in r["latency"].items())
            print(f"    flops ratio {r['flops']:.4f}  params ratio {r['params']:.3f}  latency ratio {lat}",
                  flush=True)
    result["total_seconds"] = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
