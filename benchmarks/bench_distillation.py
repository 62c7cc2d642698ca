"""The paper's claim on real data: a distilled k-frame student beats the same student
trained without a teacher, and the all-frame teacher beats both.

Trains (or reuses, from --work-dir) the teacher of a zoo config, then the k-frame student
with and without the teacher, for the config's sampler and for the `random` sampler
(random frame subsets are a strong regulariser, so an honest comparison includes them),
evaluates every model on the full eval split and writes
``benchmarks/results/<cpu|gpu>/distillation_<family>_k<k>.json``.

    python benchmarks/bench_distillation.py --config zoo_configs/netvlad.audioset.yaml \
        --k 2 --data-dir ../shared/data

Stages already trained in --work-dir (e.g. by ``kdzoo train`` with the same work dir) are
reused, not retrained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import sys

import tensorflow as tf

from kdzoo.evaluation import evaluate_model
from kdzoo.training import TrainingData, resolve_data, train_student, train_teacher
from kdzoo.zoo.config import ZooConfig

from _device import write_result

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="zoo_configs/netvlad.audioset.yaml")
    parser.add_argument("--k", type=int, default=2, help="the student's frame count")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--work-dir", default="runs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--samplers", nargs="+", default=None, help="default: the config's and random")
    args = parser.parse_args(argv)

    config = ZooConfig.from_file(args.config)
    k = args.k
    eval_files = resolve_data(config.data["eval"], args.data_dir, "eval")
    samplers = args.samplers or list(dict.fromkeys([config.sampler, "random"]))

    data = TrainingData.resolve(config, args.data_dir)  # counted once for every stage
    teacher, _ = train_teacher(config, args.data_dir, args.work_dir, epochs=args.epochs, verbose=2, data=data)
    rows = {"teacher": evaluate_model(teacher, eval_files, config.spec)}
    for sampler in samplers:
        cfg = dataclasses.replace(config, sampler=sampler)
        work = args.work_dir if sampler == config.sampler else os.path.join(args.work_dir, f"sampler-{sampler}")
        for label, t in (("distilled", teacher), ("no_teacher", None)):
            student, _ = train_student(cfg, k, t, args.data_dir, work, epochs=args.epochs, verbose=2, data=data)
            # Students are always tested on the deterministic uniform frames.
            rows[f"{label}_{sampler}"] = evaluate_model(student, eval_files, config.spec, k=k, sampler="uniform")

    base = config.sampler
    claims = {
        "distilled_beats_no_teacher_map": rows[f"distilled_{base}"]["map"] > rows[f"no_teacher_{base}"]["map"],
        "teacher_beats_distilled_map": rows["teacher"]["map"] > rows[f"distilled_{base}"]["map"],
        "teacher_beats_no_teacher_map": rows["teacher"]["map"] > rows[f"no_teacher_{base}"]["map"],
    }
    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "config": args.config,
        "family": config.family,
        "dataset": config.dataset,
        "teacher_frames": config.spec.max_frames,
        "student_frames": k,
        "eval_split": config.data["eval"],
        "distillation": dict(config.distillation),
        "training": dict(config.training),
        "models": rows,
        "claims": claims,
        "device": gpus[0].name if gpus else f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "tensorflow": tf.__version__,
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
    }
    out = RESULTS / ("gpu" if gpus else "cpu") / f"distillation_{config.family}_k{k}.json"
    write_result(out, result)
    for name, row in rows.items():
        print(f"{name:>22}: mAP {row['map']:.4f}  GAP@20 {row['gap']:.4f}  Hit@1 {row['hit_at_one']:.4f}")
    print(json.dumps(claims, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
