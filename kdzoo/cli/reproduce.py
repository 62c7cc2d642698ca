"""``kdzoo reproduce``: the paper's experiment grid as one JSON and one Markdown table (resumable)."""

from __future__ import annotations

import argparse
import os

from kdzoo.cli.train import add_training_arguments


def add_parser(sub, parent) -> None:
    p = sub.add_parser("reproduce", parents=[parent],
                       help="the paper's experiment grid (teacher, baselines, Table 1 rows) as one table")
    add_training_arguments(p)
    p.add_argument("--data", default=None, help="your training TFRecords (glob, path or gs:// URL); needs --eval-data")
    p.add_argument("--eval-data", default=None, help="TFRecords the rows are evaluated on")
    p.add_argument("--validation-data", default=None,
                   help="TFRecords for early stopping (default: a hash split of the training files)")
    p.add_argument("--spec", default=None, help="dataset spec file (YAML/JSON) for --data, or a preset name")
    p.add_argument("--rows", default=None, help="comma-separated fnmatch patterns on row ids, e.g. 'teacher,k2/*'")
    p.add_argument("--k", type=int, nargs="+", default=None, help="student budgets (default: the paper's)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the headline rows")
    p.add_argument("--teacher-weights", default=None,
                   help="a trained teacher of this recipe (zoo entry folder or .weights.h5) instead of training one")
    p.add_argument("--work-dir", default=None, help="row checkpoints and results (default runs/reproduce/<config>)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    p.add_argument("--encoder", default="default",
                   help="per-frame encoder in the end-to-end cost: default (the dataset's), none, a name or .keras")
    p.add_argument("--max-rows", type=int, default=None, help="stop after this many rows")
    p.add_argument("--results", default=None,
                   help="also write reproduce_<config file stem>.json/.md here, e.g. benchmarks/results/cpu")
    p.add_argument("--resume-from", default=None, metavar="RESULTS_JSON",
                   help="continue the grid of an earlier results file (e.g. the committed "
                        "benchmarks/results/cpu/reproduce_netvlad.audioset.json): its finished rows count as done")
    p.add_argument("--list", action="store_true", help="list the planned rows and whether they are done")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs (part of) the paper's experiment grid; writes JSON and a Markdown table."""
    from kdzoo.reproduce import Reproduction, reproduce_config

    config = reproduce_config(args.config, data=args.data, eval_data=args.eval_data,
                              validation_data=args.validation_data, spec=args.spec)
    work_dir = args.work_dir or os.path.join("runs", "reproduce", f"{config.family}.{config.dataset}")
    run_ = Reproduction(config, args.data_dir, work_dir, ks=args.k, seeds=args.seeds,
                        teacher_weights=args.teacher_weights, epochs=args.epochs, encoder=args.encoder,
                        verbose=args.progress, command=args.command_line)
    if args.resume_from:
        imported = run_.import_rows(args.resume_from)
        print(f"{len(imported)} finished row(s) taken from {args.resume_from}")
    if args.list:
        for row in run_.planned(args.rows):
            print(f"{row.key:<40} {'done' if run_.finished(row) else 'to run'}")
        return 0
    doc = run_.run(args.rows, max_rows=args.max_rows, results_dir=args.results)
    with open(os.path.join(work_dir, "reproduce.md"), encoding="utf-8") as f:
        print(f.read())
    print(f"results: {os.path.join(work_dir, 'reproduce.json')} (.md); {len(doc['remaining'])} planned run(s) left")
    return 0
