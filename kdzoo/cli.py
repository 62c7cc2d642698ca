"""The ``kdzoo`` command line: demo, list, card, train, distill, eval, profile, tune, export."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from rich.console import Console
from rich.table import Table

DEMO_FAMILY = "netvlad"
DEMO_K = 2
DEMO_DATASET = "audioset"


def _console() -> Console:
    return Console()


def _command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return "kdzoo " + " ".join(shlex.quote(a) for a in args)


# ---------------------------------------------------------------------- demo / profile
def _pair_entries(reg, name: str):
    """(teacher entry, student entry) for a zoo name of either role."""
    from kdzoo.zoo import names

    entry = reg.resolve(name)
    teacher = reg.resolve(names.teacher_name(entry.config.family, entry.tag))
    if entry.role == "student":
        return teacher, entry
    return teacher, reg.resolve(names.student_name(entry.config.family, entry.config.ks[0], entry.tag))


def _cost_table(title: str, cost: dict) -> Table:
    """Teacher vs student rows for frames, parameters, FLOPs and latency (profiling.compare)."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    table.add_column("student / teacher", justify="right")
    t, s, r = cost["teacher"], cost["student"], cost["ratios"]
    table.add_row("frames seen", str(t["num_frames"]), str(s["num_frames"]),
                  f"{s['num_frames'] / t['num_frames']:.2f}")
    table.add_row("parameters", f"{t['params']:,}", f"{s['params']:,}", f"{r['params']:.3f}")
    table.add_row("FLOPs / video", f"{t['flops']:,}", f"{s['flops']:,}", f"{r['flops']:.3f}")
    for batch, ratio in r["latency"].items():
        tl, sl = t["latency"][batch]["median_ms"], s["latency"][batch]["median_ms"]
        table.add_row(f"latency, batch {batch} (ms, median)", f"{tl:.2f}", f"{sl:.2f}", f"{ratio:.3f}")
    return table


def _end_to_end(cost: dict, encoder, dataset: str | None) -> dict | None:
    """`kdzoo.profiling.end_to_end` of a compare() report with the named encoder (None: no encoder)."""
    from kdzoo import encoders, profiling

    model = encoders.get_encoder(encoder, dataset=dataset)
    if model is None:
        return None
    # Calls of up to N frames (at most 32) are timed directly; larger runs are composed from them.
    chunk = min(profiling.encoder.MAX_DIRECT_FRAMES, cost["teacher"]["num_frames"])
    e2e = profiling.end_to_end(cost, model, max_direct_frames=chunk, repeats=2)
    e2e["encoder"]["encoder"] = encoders.DATASET_ENCODERS.get(dataset) if encoder == "default" else str(encoder)
    return e2e


def _add_end_to_end_rows(table: Table, e2e: dict) -> None:
    """End-to-end rows (encoder on the frames each model sees + the classifier)."""
    t, s, r = e2e["teacher"], e2e["student"], e2e["ratios"]
    name = e2e["encoder"]["encoder"]
    table.add_row(f"end to end GFLOPs (+{name})", f"{t['flops'] / 1e9:.2f}", f"{s['flops'] / 1e9:.2f}",
                  f"{r['flops']:.3f}")
    for batch, ratio in r["latency"].items():
        table.add_row(f"end to end ms, batch {batch}", f"{t['latency'][batch]:,.0f}", f"{s['latency'][batch]:,.0f}",
                      f"{ratio:.3f}")


def _end_to_end_headline(e2e: dict) -> str:
    r, enc = e2e["ratios"], e2e["encoder"]
    lat = ", ".join(f"{v:.2f} at batch {b}" for b, v in r["latency"].items())
    return (
        f"End to end ({enc['encoder']} encoder on the {e2e['student']['num_frames']} frames the student sees vs the "
        f"teacher's {e2e['teacher']['num_frames']}, plus the classifier): the student costs {r['flops']:.3f} of the "
        f"teacher's FLOPs; latency ratio {lat}. This is {enc['note']}."
    )


def _add_encoder_argument(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--encoder", default=default,
                   help="frame encoder for the end-to-end cost: default (the dataset's: VGGish for AudioSet, "
                        "InceptionV3 + VGGish for YouTube-8M), vggish, inception_v3, yt8m, none, or PATH.keras; "
                        "built-in encoders are architectures with random weights (no encoder weights ship)")


def cmd_demo(args: argparse.Namespace) -> int:
    """Loads a pretrained teacher/student pair and compares them side by side."""
    from kdzoo import profiling
    from kdzoo.evaluation import evaluate_model
    from kdzoo.zoo import names, registry

    reg = registry.get_registry()
    teacher_entry, student_entry = _pair_entries(reg, names.student_name(args.family, args.k, args.dataset))
    teacher = reg.load(teacher_entry.name, weights="pretrained")
    student = reg.load(student_entry.name, weights="pretrained")
    cost = profiling.compare(teacher, student, k=student_entry.num_frames, batches=(1, 64))
    e2e = _end_to_end(cost, args.encoder, student_entry.tag)
    cards = {"teacher": reg.model_card(teacher_entry.name), "student": reg.model_card(student_entry.name)}

    measured = {}
    if args.data:
        spec = teacher_entry.config.spec
        measured["teacher"] = evaluate_model(teacher, args.data, spec, take=args.take, progress=True)
        measured["student"] = evaluate_model(
            student, args.data, spec, k=student_entry.num_frames, sampler=student_entry.config.sampler,
            take=args.take, progress=True,
        )

    table = _cost_table(f"{teacher_entry.name}  vs  {student_entry.name}", cost)
    if e2e:
        _add_end_to_end_rows(table, e2e)
    for metric in ("gap", "map", "hit_at_one"):
        tv = cards["teacher"]["metrics"]["eval"][metric]
        sv = cards["student"]["metrics"]["eval"][metric]
        table.add_row(f"card {metric} (eval split)", f"{tv:.4f}", f"{sv:.4f}", f"{sv / tv:.3f}")
    student_card = cards["student"]
    for kind, over in (student_card.get("map_over_seeds") or {}).items():
        if len(over["runs"]) > 1:
            label = kind.replace("_", " ").replace("no teacher", "no teacher,")
            table.add_row(f"card map, {label} ({len(over['runs'])} seeds)", "",
                          f"{over['mean']:.4f} ± {over['std']:.4f}", "")
    for kind, base in (student_card.get("baselines") or {}).items():
        if len((student_card.get("map_over_seeds") or {}).get(kind, {}).get("runs", [])) <= 1:
            table.add_row(f"card map, no teacher, {base['train_sampler']} frames in training", "",
                          f"{base['metrics']['map']:.4f}", "")
    if "no_teacher" in student_card:
        nt = student_card["no_teacher"]["metrics"]["map"]
        table.add_row("card map, same student w/o teacher", "", f"{nt:.4f}", "")
    for metric in ("gap", "map", "hit_at_one") if measured else ():
        tv, sv = measured["teacher"][metric], measured["student"][metric]
        table.add_row(f"measured {metric} ({measured['student']['videos']} videos)", f"{tv:.4f}", f"{sv:.4f}",
                      f"{sv / tv:.3f}" if tv else "-")
    console = _console()
    if e2e:
        print(_end_to_end_headline(e2e))
    console.print(table)
    console.print(f"Device: {cost['teacher']['latency'][1]['device']}. 'card' rows come from the entries' "
                  "metadata.json; pass --data GLOB to measure on your own TFRecords.")
    if args.json:
        print(json.dumps({"cost": cost, "end_to_end": e2e, "measured": measured}, indent=2, default=str))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """Teacher vs student cost table and TensorBoard profiler traces for both."""
    import pathlib

    from kdzoo import profiling
    from kdzoo.zoo import registry

    reg = registry.get_registry()
    teacher_entry, student_entry = _pair_entries(reg, args.name)
    weights = None if args.weights == "none" else args.weights
    teacher = reg.load(teacher_entry.name, weights=weights)
    student = reg.load(student_entry.name, weights=weights)
    cost = profiling.compare(teacher, student, k=student_entry.num_frames, batches=tuple(args.batches),
                             repeats=args.repeats)
    e2e = _end_to_end(cost, args.encoder, student_entry.tag)
    table = _cost_table(f"{teacher_entry.name}  vs  {student_entry.name}", cost)
    if e2e:
        _add_end_to_end_rows(table, e2e)
        print(_end_to_end_headline(e2e))
    _console().print(table)
    logdir = pathlib.Path(args.logdir or os.path.join("runs", "profile", student_entry.name))
    if not args.no_trace:
        profiling.write_trace(teacher, logdir, run="teacher")
        profiling.write_trace(student, logdir, num_frames=student_entry.num_frames, run="student")
        print(f"Profiler traces written. View them with: tensorboard --logdir {logdir}  (Profile tab; "
              "needs the profile extra: pip install -e '.[profile]')")
    if args.json:
        print(json.dumps({**cost, "end_to_end": e2e}, indent=2, default=str))
    return 0


# ---------------------------------------------------------------------- zoo
def cmd_list(args: argparse.Namespace) -> int:
    from kdzoo.zoo import registry

    reg = registry.get_registry()
    pretrained = {"yes": True, "no": False}.get(args.pretrained)
    table = Table(title=f"kdzoo models matching {args.pattern!r}")
    table.add_column("name", no_wrap=True)
    for col in ("role", "frames", "pretrained", "eval mAP", "eval GAP@20"):
        table.add_column(col)
    for name in reg.list_models(args.pattern, pretrained):
        card = reg.model_card(name)
        ev = card.get("metrics", {}).get("eval", {})
        table.add_row(name, card["role"], str(card["num_frames"]), "yes" if card["pretrained"] else "no",
                      f"{ev['map']:.4f}" if ev else "", f"{ev['gap']:.4f}" if ev else "")
    _console().print(table)
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from kdzoo.zoo import registry

    print(json.dumps(registry.model_card(args.name), indent=2, sort_keys=True))
    return 0


# ---------------------------------------------------------------------- training
def cmd_train(args: argparse.Namespace) -> int:
    from kdzoo.training import train_zoo_config
    from kdzoo.zoo.config import ZooConfig

    config = ZooConfig.from_file(args.config)
    written = train_zoo_config(
        config, args.data_dir, out_dir=args.out, work_dir=args.work_dir, ks=args.k,
        baselines=not args.no_baselines, train_elastic=not args.no_elastic, epochs=args.epochs,
        command=args.command_line,
        verbose=args.verbose,
    )
    for name, meta in written.items():
        ev = meta["metrics"]["eval"]
        print(f"{name}: eval GAP@20 {ev['gap']:.4f}  mAP {ev['map']:.4f}  Hit@1 {ev['hit_at_one']:.4f}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from kdzoo.distribute import make_strategy

    strategy = make_strategy(args.strategy)  # first: the multi-worker strategy must precede every other op
    from kdzoo.training import train_student, train_teacher
    from kdzoo.zoo.config import ZooConfig

    config = ZooConfig.from_file(args.config)
    k = args.k or config.ks[0]
    teacher, t_record = train_teacher(config, args.data_dir, args.work_dir, epochs=args.epochs, verbose=args.verbose,
                                      strategy=strategy)
    print(f"teacher: best validation GAP@20 {t_record['best_val_gap']}{_digest(t_record)}")
    student, s_record = train_student(
        config, k, teacher, args.data_dir, args.work_dir, epochs=args.epochs, verbose=args.verbose,
        strategy=strategy,
    )
    print(f"student (k={k}): best validation GAP@20 {s_record['best_val_gap']}{_digest(s_record)}")
    print(f"runs, TensorBoard logs and checkpoints: {args.work_dir}")
    return 0


def _digest(record: dict) -> str:
    """The weights' digest of a distributed run: equal on every worker when replicas agree."""
    return f", weights sha256 {record['weights_sha256']}" if "weights_sha256" in record else ""


def cmd_eval(args: argparse.Namespace) -> int:
    from kdzoo.evaluation import evaluate_model
    from kdzoo.zoo import registry

    reg = registry.get_registry()
    entry = reg.resolve(args.name)
    model = reg.load(entry.name, weights=args.weights)
    k = entry.num_frames if entry.role == "student" else None
    result = evaluate_model(model, args.data, entry.config.spec, k=k, sampler=entry.config.sampler,
                            take=args.take, progress=True)
    print(json.dumps({"name": entry.name, **result}, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from kdzoo.export import export
    from kdzoo.zoo import registry

    entry = registry.get_registry().resolve(args.name)
    if entry.elastic and args.k is None:
        raise SystemExit(f"{entry.name} takes any number of frames: fix its budget with --k K for serving.")
    sampler = args.sampler or entry.config.sampler
    k = args.k or entry.num_frames
    path = export(entry.name, args.out, format=args.format, encoder=args.encoder, weights=args.weights, k=args.k,
                  sampler=sampler, input_dtype=args.input_dtype)
    what = f"raw frames, encoded by {args.encoder}" if args.encoder != "none" else "features"
    print(f"{entry.name} ({k} frames, {sampler} sampler, input: {what}) exported as {args.format}: {path}")
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


def cmd_tune(args: argparse.Namespace) -> int:
    """Searches the student's k, sampler, loss weights and learning rate with keras-tuner (resumable)."""
    from kdzoo.tuning import load_tune_config, run_search

    config, settings = load_tune_config(args.config)
    if args.from_curve:
        return _tune_from_curve(config, settings, args)
    doc = run_search(config, settings, args.data_dir, args.work_dir, out_dir=args.out, max_trials=args.max_trials,
                     command=args.command_line, verbose=args.verbose)
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


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdzoo", description="Efficient video classification by knowledge distillation."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="compare a pretrained teacher and its k-frame student")
    p.add_argument("--family", default=DEMO_FAMILY, choices=("netvlad", "nextvlad", "hrnn"))
    p.add_argument("--k", type=int, default=DEMO_K, help="the student's frame count k")
    p.add_argument("--dataset", default=DEMO_DATASET)
    p.add_argument("--data", help="TFRecords (glob, path or gs:// URL) to evaluate both models on")
    p.add_argument("--take", type=int, default=None, help="evaluate on the first N videos only")
    p.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    _add_encoder_argument(p, "default")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("list", help="list zoo models")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--pretrained", choices=("yes", "no"))
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("card", help="print a zoo entry's model card")
    p.add_argument("name")
    p.set_defaults(func=cmd_card)

    for name, func, help_ in (
        ("train", cmd_train, "train a zoo config's teacher, students and baselines; write pretrained entries"),
        ("distill", cmd_distill, "train a teacher, then distil one k-frame student (resumable)"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("config", help="a zoo config YAML, e.g. zoo_configs/netvlad.audioset.yaml")
        p.add_argument("--data-dir", default=os.environ.get("KDZOO_DATA_DIR"),
                       help="folder or gs:// URL the config's data globs are relative to")
        p.add_argument("--work-dir", default="runs", help="checkpoints and TensorBoard logs")
        p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
        p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
        p.set_defaults(func=func)
        if name == "train":
            p.add_argument("--out", default="pretrained", help="where the zoo entries are written")
            p.add_argument("--k", type=int, nargs="+", default=None, help="a subset of the config's students' k")
            p.add_argument("--no-baselines", action="store_true", help="skip the no-teacher students")
            p.add_argument("--no-elastic", action="store_true", help="skip the config's elastic student")
        else:
            p.add_argument("--k", type=int, default=None, help="the student's k (default: the config's first)")
            p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                           help="default: one device (Keras fit); mirrored: every local GPU/CPU device; "
                                "multiworker: the cluster in TF_CONFIG (README: several GPUs or machines)")

    p = sub.add_parser("eval", help="evaluate a zoo model on TFRecords")
    p.add_argument("name")
    p.add_argument("--data", required=True, help="TFRecords: glob, path or gs:// URL")
    p.add_argument("--weights", default="pretrained")
    p.add_argument("--take", type=int, default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="export a zoo model for serving one variable-length video")
    p.add_argument("name")
    p.add_argument("--format", default="keras", choices=("keras", "savedmodel", "tflite"))
    p.add_argument("--out", required=True, help="a .keras file, a SavedModel folder or a .tflite file")
    p.add_argument("--weights", default="default", help="pretrained, default, or a .weights.h5/.keras path")
    p.add_argument("--sampler", default=None, help="frame sampler (default: the zoo config's)")
    p.add_argument("--input-dtype", default="float32", choices=("float32", "uint8"))
    p.add_argument("--k", type=int, default=None, help="frame budget of an elastic student (*_student_elastic)")
    p.add_argument("--encoder", default="none",
                   help="serve raw frames: the frame encoder run on the k sampled frames only (default, vggish, "
                        "inception_v3, yt8m or PATH.keras; built-in encoders have random weights); none: features in")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tune", help="search the student's frame count k, sampler, loss weights, learning rate")
    p.add_argument("config", help="a zoo config YAML with a tune: section")
    p.add_argument("--data-dir", default=os.environ.get("KDZOO_DATA_DIR"),
                   help="folder or gs:// URL the config's data globs are relative to")
    p.add_argument("--work-dir", default="runs/tune", help="teacher run, tuner state, Pareto report; resumes")
    p.add_argument("--max-trials", type=int, default=None, help="override tune.max_trials")
    p.add_argument("--out", default=None, help="where the best student's entry goes (default: WORK_DIR/pretrained)")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    p.add_argument("--from-curve", action="store_true",
                   help="no training: pick k from the config's elastic student's measured curve")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("profile", help="teacher vs student cost table and profiler traces")
    p.add_argument("name", help="a zoo name (student or teacher), e.g. hrnn_student_k10.yt8m")
    p.add_argument("--weights", default="default", help="pretrained | default | none | PATH")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--logdir", default=None, help="trace folder (default runs/profile/<student>)")
    p.add_argument("--no-trace", action="store_true")
    p.add_argument("--json", action="store_true")
    _add_encoder_argument(p, "default")
    p.set_defaults(func=cmd_profile)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = _command_line(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
