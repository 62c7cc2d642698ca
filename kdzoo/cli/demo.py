"""``kdzoo demo``: a pretrained teacher and its k-frame student side by side."""

from __future__ import annotations

import argparse
import json

from kdzoo.cli._common import console

DEMO_FAMILY = "netvlad"
DEMO_K = 2
DEMO_DATASET = "audioset"


def baseline_rows(card: dict) -> list[tuple[str, str]]:
    """(label, mAP) rows for a student card's seed spread and no-teacher twins (v1 and v2 cards)."""
    from kdzoo.zoo.cards import map_over_seeds  # kdzoo.zoo loads TensorFlow: not at `kdzoo --help`
    rows = []
    source = card.get("distilled_from")
    if source:  # a teacher of another family taught the student
        rows.append(("card: distilled from", f"{source['name']} (mAP {source['eval_map']:.4f})"))
    if "baselines" in card:  # zoo v2: twins on random subsets and on the fixed uniform frames
        distilled = map_over_seeds(card, "distilled", min_runs=2)
        if distilled:
            rows.append(("card map, distilled", distilled))
        for kind, what in (("no_teacher_random", "random k"), ("no_teacher_uniform", "uniform k")):
            if kind in card["baselines"]:
                value = map_over_seeds(card, kind, min_runs=2) or f"{card['baselines'][kind]['metrics']['map']:.4f}"
                rows.append((f"card map, no teacher, {what}", value))
    elif "no_teacher" in card:  # v1: one twin on the card's own sampler
        rows.append(("card map, same student w/o teacher", f"{card['no_teacher']['metrics']['map']:.4f}"))
    return rows


def add_parser(sub, parent) -> None:
    p = sub.add_parser("demo", parents=[parent], help="compare a pretrained teacher and its k-frame student")
    p.add_argument("--family", default=DEMO_FAMILY, choices=("netvlad", "nextvlad", "hrnn"))
    p.add_argument("--k", type=int, default=DEMO_K, help="the student's frame count k")
    p.add_argument("--dataset", default=DEMO_DATASET)
    p.add_argument("--data", help="TFRecords (glob, path or gs:// URL) to evaluate both models on")
    p.add_argument("--take", type=int, default=None, help="evaluate on the first N videos only")
    p.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    add_encoder_argument(p, "default")
    p.set_defaults(func=run)


def pair_entries(reg, name: str):
    """(teacher entry, student entry) for a zoo name of either role."""
    from kdzoo.zoo import names

    entry = reg.resolve(name)
    teacher = reg.resolve(names.teacher_name(entry.config.family, entry.tag))
    if entry.role == "student":
        return teacher, entry
    return teacher, reg.resolve(names.student_name(entry.config.family, entry.config.ks[0], entry.tag))


def _demo_pair(reg, family: str, k: int, dataset: str):
    """The pretrained pair the demo compares; unknown pairs list the ones that exist."""
    from kdzoo.zoo import names

    name = names.student_name(family, k, dataset)
    if name not in reg.list_models(pretrained=True):
        pairs = sorted(
            f"--family {e.config.family} --k {e.num_frames} --dataset {e.tag}"
            for e in reg.entries.values() if e.role == "student" and e.has_weights and not e.elastic
        )
        raise ValueError(
            f"No pretrained pair for --family {family} --k {k} --dataset {dataset}. "
            f"Pretrained pairs: {'; '.join(pairs) or 'none'}."
        )
    return pair_entries(reg, name)


def cost_table(title: str, cost: dict):
    """Teacher vs student rows for frames, parameters, FLOPs and latency (profiling.compare)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("", no_wrap=True)  # the row labels stay whole
    table.add_column("teacher", justify="right", no_wrap=True)
    table.add_column("student", justify="right", no_wrap=True)
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


def add_encoder_argument(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--encoder", default=default,
                   help="frame encoder for the end-to-end cost: default (the dataset's: VGGish for AudioSet, "
                        "InceptionV3 + VGGish for YouTube-8M), vggish, inception_v3, yt8m, none, or PATH.keras; "
                        "built-in encoders are architectures with random weights (no encoder weights ship)")


def end_to_end(cost: dict, encoder, dataset: str | None) -> dict | None:
    """`kdzoo.profiling.end_to_end` of a compare() report with the named encoder (None: no encoder)."""
    from kdzoo import encoders, profiling

    if encoder == "default" and dataset not in encoders.DATASET_ENCODERS:
        return None  # a dataset without a known encoder (e.g. a .keras model's)
    model = encoders.get_encoder(encoder, dataset=dataset)
    if model is None:
        return None
    # Calls of up to N frames (at most 32) are timed directly; larger runs are composed from them.
    chunk = min(profiling.encoder.MAX_DIRECT_FRAMES, cost["teacher"]["num_frames"])
    e2e = profiling.end_to_end(cost, model, max_direct_frames=chunk, repeats=2)
    e2e["encoder"]["encoder"] = encoders.DATASET_ENCODERS.get(dataset) if encoder == "default" else str(encoder)
    return e2e


def add_end_to_end_rows(table, e2e: dict) -> None:
    """End-to-end rows (encoder on the frames each model sees + the classifier)."""
    t, s, r = e2e["teacher"], e2e["student"], e2e["ratios"]
    name = e2e["encoder"]["encoder"]
    table.add_row(f"end to end GFLOPs (+{name})", f"{t['flops'] / 1e9:.2f}", f"{s['flops'] / 1e9:.2f}",
                  f"{r['flops']:.3f}")
    for batch, ratio in r["latency"].items():
        table.add_row(f"end to end ms, batch {batch}", f"{t['latency'][batch]:,.0f}", f"{s['latency'][batch]:,.0f}",
                      f"{ratio:.3f}")


def end_to_end_headline(e2e: dict) -> str:
    r, enc = e2e["ratios"], e2e["encoder"]
    lat = ", ".join(f"{v:.2f} at batch {b}" for b, v in r["latency"].items())
    return (
        f"End to end ({enc['encoder']} encoder on the {e2e['student']['num_frames']} frames the student sees vs the "
        f"teacher's {e2e['teacher']['num_frames']}, plus the classifier): the student costs {r['flops']:.3f} of the "
        f"teacher's FLOPs; latency ratio {lat}. This is {enc['note']}."
    )


def run(args: argparse.Namespace) -> int:
    from kdzoo import profiling
    from kdzoo.evaluation import evaluate_model
    from kdzoo.zoo import registry

    reg = registry.get_registry()
    teacher_entry, student_entry = _demo_pair(reg, args.family, args.k, args.dataset)
    teacher = reg.load(teacher_entry.name, weights="pretrained")
    student = reg.load(student_entry.name, weights="pretrained")
    cost = profiling.compare(teacher, student, k=student_entry.num_frames, batches=(1, 64))
    e2e = end_to_end(cost, args.encoder, student_entry.tag)
    cards = {"teacher": reg.model_card(teacher_entry.name), "student": reg.model_card(student_entry.name)}

    measured = {}
    if args.data:
        spec = teacher_entry.config.spec
        measured["teacher"] = evaluate_model(teacher, args.data, spec, take=args.take, progress=True)
        measured["student"] = evaluate_model(
            student, args.data, spec, k=student_entry.num_frames, sampler=student_entry.config.sampler,
            take=args.take, progress=True,
        )

    table = cost_table(f"{teacher_entry.name}  vs  {student_entry.name}", cost)
    if e2e:
        add_end_to_end_rows(table, e2e)
    for metric in ("gap", "map", "hit_at_one"):
        tv = cards["teacher"]["metrics"]["eval"][metric]
        sv = cards["student"]["metrics"]["eval"][metric]
        table.add_row(f"card {metric} (eval split)", f"{tv:.4f}", f"{sv:.4f}", f"{sv / tv:.3f}")
    baselines = baseline_rows(cards["student"])
    for label, value in baselines:
        table.add_row(label, "", value, "")
    for metric in ("gap", "map", "hit_at_one") if measured else ():
        tv, sv = measured["teacher"][metric], measured["student"][metric]
        table.add_row(f"measured {metric} ({measured['student']['videos']} videos)", f"{tv:.4f}", f"{sv:.4f}",
                      f"{sv / tv:.3f}" if tv else "-")
    out = console()
    if e2e:
        print(end_to_end_headline(e2e))  # one line, unwrapped
    out.print(table)
    runs = len(((cards["student"].get("map_over_seeds") or {}).get("distilled") or {}).get("runs", ()))
    spread = f" A ± value is the mean ± std over the card's {runs} seeds." if runs > 1 else ""
    out.print(f"Device: {cost['teacher']['latency'][1]['device']}. 'card' rows come from the entries' "
              f"metadata.json; pass --data GLOB to measure on your own TFRecords.{spread}")
    if args.json:
        print(json.dumps({"cost": cost, "end_to_end": e2e, "measured": measured, "card_baselines": dict(baselines)},
                         indent=2, default=str))
    return 0
