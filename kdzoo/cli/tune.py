"""``kdzoo tune``: keras-tuner search over the student's k, sampler, loss weights and learning rate."""

from __future__ import annotations

import argparse
import os

from kdzoo.cli.train import add_training_arguments


def add_parser(sub, parent) -> None:
    p = sub.add_parser("tune", parents=[parent],
                       help="search the student's frame count k, sampler, loss weights, learning rate")
    add_training_arguments(p)
    p.add_argument("--work-dir", default="runs/tune", help="teacher run, tuner state, Pareto report; resumes")
    p.add_argument("--max-trials", type=int, default=None, help="override tune.max_trials")
    p.add_argument("--out", default=None, help="where the best student's entry goes (default: WORK_DIR/pretrained)")
    p.add_argument("--from-curve", action="store_true",
                   help="no training: pick k from the config's elastic student's measured curve")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Searches the student's k, sampler, loss weights and learning rate with keras-tuner (resumable)."""
    from kdzoo.tuning import load_tune_config, run_search

    config, settings = load_tune_config(args.config)
    if args.from_curve:
        return _tune_from_curve(config, settings, args)
    doc = run_search(config, settings, args.data_dir, args.work_dir, out_dir=args.out, max_trials=args.max_trials,
                     command=args.command_line, verbose=args.progress)
    for t in doc["trials"]:
        mark = "*" if t["trial_id"] == doc["best"] else ("F" if t["on_front"] else " ")
        quality = "-" if t["quality"] is None else f"{t['quality']:.4f}"
        score = "-" if t["score"] is None else f"{t['score']:.4f}"
        ratio = "-" if t["flops_ratio"] is None else f"{t['flops_ratio']:.3f}"
        print(f"{mark} trial {t['trial_id']:>3} {t['status']:<9} k={t['k']} {t['sampler']:<8} "
              f"val GAP {quality}  FLOPs/teacher {ratio}  score {score}")
    print(f"score = val GAP - {settings.lam} x FLOPs ratio; F = Pareto front, * = best trade-off")
    print(f"report: {os.path.join(str(args.work_dir), 'pareto.json')} (.csv, .png)")
    if doc["entry"]:
        print(f"best student: {doc['entry']}")
    return 0


def _tune_from_curve(config, settings, args: argparse.Namespace) -> int:
    """k from the config's elastic student's measured curve (no training)."""
    from kdzoo import profiling
    from kdzoo.tuning import curve_trials, write_report
    from kdzoo.zoo import registry

    reg = registry.get_registry()
    name = config.elastic_name(tagged=True)
    card = reg.model_card(name)
    teacher = reg.load(config.teacher_name(tagged=True), weights=None)
    student = reg.load(name, weights=None)
    rows = curve_trials(card, profiling.flops(teacher), lambda k: profiling.flops(student, num_frames=k), settings.lam)
    doc = write_report(rows, args.work_dir, summary={"lambda": settings.lam, "source": name},
                       title=f"{name}: measured curve")
    for t in doc["trials"]:
        mark = "*" if t["trial_id"] == doc["best"] else ("F" if t["on_front"] else " ")
        print(f"{mark} k={t['k']:<3} eval GAP {t['quality']:.4f}  mAP {t['map']:.4f}  "
              f"FLOPs/teacher {t['flops_ratio']:.3f}  score {t['score']:.4f}")
    print(f"score = eval GAP - {settings.lam} x FLOPs ratio, from the card of {name}; * = best trade-off")
    return 0
