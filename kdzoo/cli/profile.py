"""``kdzoo profile``: teacher vs student cost table and TensorBoard profiler traces."""

from __future__ import annotations

import argparse
import json
import os

from kdzoo.cli._common import add_model_argument, add_weights_argument, console, is_model_file, load_model_source
from kdzoo.cli.demo import add_encoder_argument


def add_parser(sub, parent) -> None:
    p = sub.add_parser("profile", parents=[parent], help="teacher vs student cost table and profiler traces")
    add_model_argument(p, "a student or teacher (a zoo name brings its pair, e.g. hrnn_student_k10.yt8m)")
    p.add_argument("--teacher", default=None, metavar="MODEL",
                   help="the teacher to compare with (zoo name or .keras; default: the zoo pair's)")
    add_weights_argument(p)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--logdir", default=None, help="trace folder (default runs/profile/<student>)")
    p.add_argument("--no-trace", action="store_true")
    p.add_argument("--json", action="store_true")
    add_encoder_argument(p, "default")
    p.set_defaults(func=run)


def _pair(args):
    """(teacher source, student source) for the command line's MODEL and --teacher."""
    from kdzoo.cli.demo import pair_entries
    from kdzoo.zoo import registry

    if args.teacher is None and is_model_file(args.name):
        raise ValueError(f"kdzoo profile {args.name} needs --teacher MODEL (a zoo name or a .keras file) to compare with.")
    if args.teacher is None:
        teacher_entry, student_entry = pair_entries(registry.get_registry(), args.name)
        return (load_model_source(teacher_entry.name, args.weights), load_model_source(student_entry.name, args.weights))
    # --weights applies to the zoo names; a .keras file holds its own weights.
    return tuple(load_model_source(n, "default" if is_model_file(n) else args.weights) for n in (args.teacher, args.name))


def run(args: argparse.Namespace) -> int:
    import pathlib

    from kdzoo import profiling
    from kdzoo.cli.demo import add_end_to_end_rows, cost_table, end_to_end, end_to_end_headline

    teacher, student = _pair(args)
    cost = profiling.compare(teacher.model, student.model, k=student.k,
                             batches=tuple(args.batches), repeats=args.repeats)
    dataset = student.entry.tag if student.entry is not None else None
    e2e = end_to_end(cost, args.encoder, dataset)
    table = cost_table(f"{teacher.name}  vs  {student.name}", cost)
    if e2e:
        add_end_to_end_rows(table, e2e)
        print(end_to_end_headline(e2e))  # one line, unwrapped
    console().print(table)
    logdir = pathlib.Path(args.logdir or os.path.join("runs", "profile", student.name))
    if not args.no_trace:
        profiling.write_trace(teacher.model, logdir, run="teacher")
        profiling.write_trace(student.model, logdir, num_frames=student.k, run="student")
        print(f"Profiler traces written. View them with: tensorboard --logdir {logdir}  (Profile tab; "
              "needs the profile extra: pip install 'kdzoo[profile]')")
    if args.json:
        print(json.dumps({**cost, "end_to_end": e2e}, indent=2, default=str))
    return 0
