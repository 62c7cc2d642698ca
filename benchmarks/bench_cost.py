"""Inference cost of teacher (all N frames) vs student (k frames) for each model family.

The hrnn, netvlad and nextvlad teachers and students are the zoo's own architectures,
read from ``zoo_configs/<family>.<setting>.yaml`` (`ZooConfig.model_config`): the
YouTube-8M setting (1152 features, 3862 classes, N=300) with the k=10 student, and the
AudioSet setting (128 features, 527 classes, N=10) with the k=2 student. Mean+max frame
pooling, which has no zoo config, is an extra baseline built here with the head settings
(dropout, context gating, MoE head) that the setting's zoo configs share.

For each pair it measures, in one run: analytic FLOPs (total and frame-dependent / head
split), parameters, latency at batch 1 and 64 (teacher and student interleaved), and the
student/teacher ratios. For the VLAD families, whose head does not depend on the frame
count, it also proposes the student head size (``output_size``) whose FLOPs ratio comes
closest to the paper's target (~90% fewer FLOPs); for H-RNN it sweeps the block size and
measures the per-k student block (``block_size = min(block, k)``, the zoo config's
``students:`` override).

End to end (``--encoder default``): each setting's per-frame encoder (AudioSet: VGGish;
YouTube-8M: InceptionV3 + PCA for rgb and VGGish for audio, `kdzoo.encoders`) is added
to both sides: FLOPs = n x encoder FLOPs/frame + aggregator FLOPs, latency = encoder time
on n x B frames + the aggregator's measured time. The encoder is timed once per setting
and run (`kdzoo.profiling.encoder.encoder_cost`): directly for calls of up to
``--max-direct-frames`` frames (the k-frame student at batch 1, the AudioSet teacher at
batch 1), composed as frames x the per-frame time of one ``--max-direct-frames``-frame call
beyond that (InceptionV3 on 300 frames takes tens of seconds a run on a 2-core CPU). The
encoders are architectures with random weights: kdzoo ships no encoder weights, so this
is encoder-architecture cost.

Writes ``benchmarks/results/<cpu|gpu>/cost.json`` (the folder follows the device
TensorFlow runs on). Run from the repository root:

    python benchmarks/bench_cost.py
    python benchmarks/bench_cost.py --families hrnn --settings yt8m --repeats 5
    python benchmarks/bench_cost.py --families hrnn --repeats 2 --repeats-large 1 --out /tmp/cost.json
    python benchmarks/bench_cost.py --encoder none      # aggregator only
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import pathlib
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from kdzoo import encoders, profiling  # noqa: E402
from kdzoo.profiling import deployment  # noqa: E402
from kdzoo.profiling import encoder as encoder_cost  # noqa: E402
from kdzoo.models import build_model  # noqa: E402
from kdzoo.zoo.config import ZooConfig  # noqa: E402

from _device import default_output, environment, write_result  # noqa: E402

ZOO_FAMILIES = ("hrnn", "netvlad", "nextvlad")
FAMILIES = (*ZOO_FAMILIES, "pooling")
ZOO_CONFIGS = REPO_ROOT / "zoo_configs"

SETTINGS = {
    # k: the student the paper reports for the setting; it must be one of the zoo config's k.
    "yt8m": {"student_frames": 10, "hrnn_block_sizes": (5, 10, 20, 30)},
    "audioset": {"student_frames": 2, "hrnn_block_sizes": (1, 2, 5, 10)},
}
POOLING_AGGREGATOR = {"mode": "mean_max"}
# Model keys a pooling baseline takes from the setting's H-RNN zoo config (everything but the aggregator).
SHARED_MODEL_KEYS = ("hidden_size", "dropout", "context_gating", "head")

FLOPS_RATIO_TARGET = 0.10  # paper: ~90% fewer FLOPs
LATENCY_RATIO_TARGET = 0.70  # paper: ~30% less inference time
# End to end (encoder + aggregator), batch 1, and aggregator only, per setting.
END_TO_END_LATENCY_TARGET_B1 = {"audioset": 0.25, "yt8m": 0.05}
END_TO_END_FLOPS_TOLERANCE = 0.05  # |ratio / (k/N) - 1|
AGGREGATOR_FLOPS_TARGET = {"yt8m": {"hrnn": 0.05, "nextvlad": 0.05, "netvlad": 0.10}}


def zoo_config_path(setting: str, family: str) -> pathlib.Path:
    return ZOO_CONFIGS / f"{family}.{setting}.yaml"


@functools.lru_cache(maxsize=None)
def zoo_config(setting: str, family: str) -> ZooConfig:
    config = ZooConfig.from_file(zoo_config_path(setting, family))
    k = SETTINGS[setting]["student_frames"]
    if k not in config.ks:
        raise ValueError(f"{config.path} has no k={k} student (k: {list(config.ks)}).")
    return config


def teacher_frames(setting: str) -> int:
    return zoo_config(setting, ZOO_FAMILIES[0]).spec.max_frames


def _pooling_config(setting: str) -> dict:
    """A mean+max pooling baseline with the head (hidden layer, dropout, gating, MoE) of the
    setting's first zoo config (H-RNN): the configs' heads may differ (the AudioSet NeXtVLAD
    v2 recipe has a 1024-wide hidden layer)."""
    base = zoo_config(setting, ZOO_FAMILIES[0]).model_config("teacher")
    config = {key: copy.deepcopy(base[key]) for key in SHARED_MODEL_KEYS if key in base}
    config.update(
        family="pooling",
        feature_size=base["feature_size"],
        num_classes=base["num_classes"],
        aggregator=dict(POOLING_AGGREGATOR),
    )
    return config


def model_config(setting: str, family: str, role: str, aggregator: dict | None = None) -> dict:
    """The build_model config of the setting's teacher or k-frame student.

    ``aggregator`` overrides some of the aggregator's keys (head and block-size sweeps).
    """
    k = SETTINGS[setting]["student_frames"]
    if family == "pooling":
        config = _pooling_config(setting)
        config["num_frames"] = teacher_frames(setting) if role == "teacher" else k
    else:
        config = zoo_config(setting, family).model_config(role, k if role == "student" else None)
    if aggregator:
        config["aggregator"] = {**config["aggregator"], **aggregator}
    config["name"] = f"{family}_{setting}_{role}"
    return config


def model_source(setting: str, family: str) -> str:
    if family == "pooling":
        return "benchmarks/bench_cost.py (baseline, no zoo config)"
    return str(zoo_config_path(setting, family).relative_to(REPO_ROOT))


def proposed_head(setting: str, family: str, teacher_flops: int, teacher_params: int) -> dict:
    """Student `output_size` whose FLOPs ratio is closest to FLOPS_RATIO_TARGET.

    The student's FLOPs are affine in output_size (projection + MoE), so two analytic
    counts give the line; the nearest multiple of 8 (at least 8) is then built and
    counted exactly.
    """
    k = SETTINGS[setting]["student_frames"]

    def student(output_size):
        return build_model(model_config(setting, family, "student", {"output_size": output_size}))

    current = model_config(setting, family, "student")["aggregator"]["output_size"]
    if current is None:  # no projection: the cap is the aggregator's own descriptor width
        plain = build_model(model_config(setting, family, "student"))
        current = int(plain.get_layer(family).output.shape[-1])
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
    out = {}
    for block in SETTINGS[setting]["hrnn_block_sizes"]:
        aggregator = {"block_size": block}
        t = build_model(model_config(setting, "hrnn", "teacher", aggregator))
        s = build_model(model_config(setting, "hrnn", "student", aggregator))
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


def hrnn_student_block(setting: str, args) -> dict:
    """The teacher as configured vs a student whose block is min(block, k): one block of k
    frames for k below the block size, so that its cost falls with k."""
    k = SETTINGS[setting]["student_frames"]
    teacher_config = model_config(setting, "hrnn", "teacher")
    block = min(int(teacher_config["aggregator"]["block_size"]), k)
    t = build_model(teacher_config)
    s = build_model(model_config(setting, "hrnn", "student", {"block_size": block}))
    report = profiling.compare(t, s, k=k, batches=(1,), warmup=args.warmup, repeats=args.repeats,
                               seed=args.seed)
    return {
        "student_block_size": block,
        "teacher_block_size": int(teacher_config["aggregator"]["block_size"]),
        "flops_ratio": report["ratios"]["flops"],
        "latency_ratio_b1": report["ratios"]["latency"][1],
        "teacher_median_ms_b1": report["teacher"]["latency"][1]["median_ms"],
        "student_median_ms_b1": report["student"]["latency"][1]["median_ms"],
    }


def setting_encoder(setting: str, args) -> dict | None:
    """Times the setting's encoder once for every frame count the pairs need (n x batch)."""
    if args.encoder == "none":
        return None
    model = encoders.get_encoder(args.encoder, dataset=setting)
    n, k = teacher_frames(setting), SETTINGS[setting]["student_frames"]
    counts = [m * b for m in (n, k) for b in args.batches]
    cost = encoder_cost.encoder_cost(
        model, counts, max_direct_frames=args.max_direct_frames, warmup=1, repeats=args.encoder_repeats,
        seed=args.seed,
    )
    cost["encoder"] = args.encoder if args.encoder != "default" else encoders.DATASET_ENCODERS[setting]
    return cost


def check_targets(setting: str, family: str, report: dict) -> dict:
    """The issue's targets for this pair, with the measured value and whether it is met."""
    checks = {}
    aggregator = AGGREGATOR_FLOPS_TARGET.get(setting, {}).get(family)
    if aggregator is not None:
        value = report["ratios"]["flops"]
        checks["aggregator_flops_ratio"] = {"value": value, "target": aggregator, "met": value <= aggregator}
    e2e = report.get("end_to_end")
    if e2e and family in ZOO_FAMILIES:
        value = e2e["ratios"]["latency"][1]
        target = END_TO_END_LATENCY_TARGET_B1[setting]
        checks["end_to_end_latency_ratio_b1"] = {"value": value, "target": target, "met": value <= target}
        value, frames = e2e["ratios"]["flops"], e2e["ratios"]["num_frames"]
        off = abs(value / frames - 1)
        checks["end_to_end_flops_ratio_vs_k_over_n"] = {
            "value": value, "k_over_n": frames, "relative_difference": off,
            "target": END_TO_END_FLOPS_TOLERANCE, "met": off <= END_TO_END_FLOPS_TOLERANCE,
        }
    return checks


def bench_pair(setting: str, family: str, args, encoder: dict | None = None) -> dict:
    k = SETTINGS[setting]["student_frames"]
    teacher_config = model_config(setting, family, "teacher")
    student_config = model_config(setting, family, "student")
    teacher = build_model(teacher_config)
    student = build_model(student_config)
    repeats = {
        1: args.repeats,
        64: args.repeats_large if teacher_frames(setting) >= 100 else args.repeats,
    }
    repeats = {b: repeats.get(b, args.repeats) for b in args.batches}
    start = time.perf_counter()
    report = profiling.compare(
        teacher,
        student,
        k=k,
        batches=tuple(args.batches),
        warmup=args.warmup,
        repeats=repeats,
        seed=args.seed,
    )
    report["config"] = {
        "source": model_source(setting, family),
        "aggregator": teacher_config["aggregator"],
        "head": teacher_config.get("head"),
        "feature_size": teacher_config["feature_size"],
        "num_classes": teacher_config["num_classes"],
        "teacher": teacher_config,
        "student": student_config,
    }
    report["repeats"] = repeats
    report["targets"] = {"flops_ratio": FLOPS_RATIO_TARGET, "latency_ratio": LATENCY_RATIO_TARGET}
    if family in ("netvlad", "nextvlad"):
        report["proposed_head"] = proposed_head(
            setting, family, report["teacher"]["flops"], report["teacher"]["params"]
        )
    if family == "hrnn":
        report["hrnn_block_size_sweep"] = hrnn_block_sweep(setting, args)
        report["hrnn_student_block"] = hrnn_student_block(setting, args)
    if encoder is not None:
        e2e = deployment.end_to_end(report, encoder)
        e2e["encoder"] = encoder["encoder"]
        report["end_to_end"] = e2e
    report["targets_met"] = check_targets(setting, family, report)
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
    parser.add_argument("--encoder", default="default",
                        help="per-frame encoder: default (the setting's), vggish, inception_v3, yt8m, none, PATH.keras")
    parser.add_argument("--encoder-repeats", type=int, default=3, help="timed encoder calls per frame count")
    parser.add_argument("--max-direct-frames", type=int, default=encoder_cost.MAX_DIRECT_FRAMES,
                        help="encoder calls on more frames are composed from the per-frame time of a call this size")
    parser.add_argument("--out", "--output", dest="output", type=pathlib.Path, default=None,
                        help="result file (default: benchmarks/results/<cpu|gpu>/cost.json)")
    args = parser.parse_args(argv)

    output = args.output or default_output("cost.json")
    result = {
        **environment(),
        "command": "python " + " ".join(["benchmarks/bench_cost.py", *(sys.argv[1:] if argv is None else argv)]),
        "student_frames": {setting: SETTINGS[setting]["student_frames"] for setting in args.settings},
        "flops_convention": "multiply-add = 2 FLOPs; one video (batch 1); see kdzoo/profiling/flops.py",
        "encoder_latency_method": (
            f"encoder timed once per setting: calls of up to {args.max_direct_frames} frames measured directly "
            f"(median of {args.encoder_repeats}), longer runs composed as frames x the per-frame time of a "
            f"{args.max_direct_frames}-frame call; end-to-end latency = encoder time on n x batch frames + the "
            "aggregator's measured time"
        ),
        "encoder_note": encoders.NO_WEIGHTS_NOTE,
        "load_average_at_start": list(os.getloadavg()),
        "encoders": {},
        "results": {},
    }
    start = time.perf_counter()
    for setting in args.settings:
        result["results"][setting] = {}
        print(f"[{time.perf_counter() - start:7.1f}s] {setting} encoder ({args.encoder})", flush=True)
        encoder = setting_encoder(setting, args)
        result["encoders"][setting] = encoder
        for family in args.families:
            print(f"[{time.perf_counter() - start:7.1f}s] {setting} {family}", flush=True)
            report = bench_pair(setting, family, args, encoder)
            result["results"][setting][family] = report
            r = report["ratios"]
            lat = ", ".join(f"b{b}={v:.3f}" for b, v in r["latency"].items())
            print(f"    flops ratio {r['flops']:.4f}  params ratio {r['params']:.3f}  latency ratio {lat}",
                  flush=True)
            if "end_to_end" in report:
                e = report["end_to_end"]["ratios"]
                lat = ", ".join(f"b{b}={v:.3f}" for b, v in e["latency"].items())
                print(f"    end to end: flops ratio {e['flops']:.4f} (k/N {e['num_frames']:.4f})  latency ratio {lat}",
                      flush=True)
    result["total_seconds"] = time.perf_counter() - start
    result["load_average_at_end"] = list(os.getloadavg())
    write_result(output, _jsonable(result))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
