"""The results of a reproduction: per-row summaries over seeds, the paper's claims checked
on them, and the Markdown table."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from kdzoo.zoo import artifacts

METRICS = ("map", "gap", "hit_at_one")  # in the order of the table's columns


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per row id: the mean (and std over seeds, n >= 2) of each metric, and
    ``val_gap``, the seed-0 run's best validation GAP@20 (what the headline rows are chosen on)."""
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    for rec in rows:
        by_id.setdefault(rec["row"], []).append(rec)
    out = []
    for row_id, recs in by_id.items():
        entry = {"row": row_id, "seeds": sorted(r["seed"] for r in recs), "k": recs[0]["k"],
                 "kind": recs[0]["kind"], "eval_sampler": recs[0]["eval_sampler"],
                 "train_sampler": recs[0]["train_sampler"],
                 "val_gap": next((r.get("best_val_gap") for r in recs if r["seed"] == 0), None)}
        for m in METRICS:
            values = [r["eval"][m] for r in recs]
            entry[m] = statistics.fmean(values)
            entry[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


#: (label, row with the loss, row without it) for "which loss matters", per k.
LOSS_PAIRS = (
    ("L_CE added to serial L_rep", "serial/rep+ce", "serial/rep"),
    ("L_CE added to serial L_pred", "serial/pred+ce", "serial/pred"),
    ("L_rep added to serial L_pred + L_CE", "serial/rep+pred+ce", "serial/pred+ce"),
    ("L_pred added to serial L_rep + L_CE", "serial/rep+pred+ce", "serial/rep+ce"),
    ("the intermediate representation added to serial all three", "serial/rep+pred+ce+inter", "serial/rep+pred+ce"),
    ("L_CE added to parallel L_rep", "parallel/rep+ce", "parallel/rep"),
)




def difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """`a - b` in eval mAP, with the verdict: a difference counts only beyond twice the seed spread."""
    diff = a["map"] - b["map"]
    spreads = [e["map_std"] for e in (a, b) if e["map_std"] is not None]
    if len(spreads) < 2:
        verdict = "one seed on at least one side: no spread to judge it by"
    elif abs(diff) > 2 * max(spreads):
        verdict = f"beyond twice the seed spread ({max(spreads):.4f})"
    else:
        verdict = f"within noise (seed spread {max(spreads):.4f})"
    return f"{diff:+.4f} mAP (`{a['row']}` {a['map']:.4f} vs `{b['row']}` {b['map']:.4f}; {verdict})"


def headline(entries: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The entry run with more than one seed (the grid's headline row of its kind and k), if any.

    "Best" by eval mAP over one-seed rows favours a lucky seed; the headline row was chosen on
    validation GAP@20 before its other seeds ran, so its mean is the fair comparison. Where
    several rows have seeds (the headline changed after one's seeds ran), the one with the
    best seed-0 validation GAP@20 is taken, as the grid chose it, never the best on eval; an
    entry without a recorded validation GAP ranks below those with one.
    """
    seeded = [e for e in entries if len(e["seeds"]) > 1]
    return max(seeded, key=lambda e: (e.get("val_gap") is not None, e.get("val_gap") or 0.0), default=None)


def comparisons(doc: Mapping[str, Any]) -> list[str]:
    """The paper's claims checked on the finished rows (eval mAP), one line each; a claim
    whose rows have not run yet is left out."""
    val_gaps = {r["row"]: r.get("best_val_gap") for r in doc.get("rows", ()) if r["seed"] == 0}
    summary = [e if "val_gap" in e else {**e, "val_gap": val_gaps.get(e["row"])} for e in doc["summary"]]
    by_id = {e["row"]: e for e in summary}
    teacher = by_id.get("teacher")
    lines = []
    for k in doc["ks"]:
        rows = [e for e in summary if e["k"] == k]
        distilled = [e for e in rows if e["kind"] == "distilled"]
        baselines = [e for e in rows if e["kind"] == "no_teacher"]
        best_d = max(distilled, key=lambda e: e["map"], default=None)
        best_b = max(baselines, key=lambda e: e["map"], default=None)
        if teacher and best_d:
            lines.append(f"k={k}: teacher >= best distilled: {'yes' if teacher['map'] >= best_d['map'] else 'no'}, "
                         + difference(teacher, best_d))
        if teacher and best_b and not best_d:
            lines.append(f"k={k}: teacher >= best no-teacher: {'yes' if teacher['map'] >= best_b['map'] else 'no'}, "
                         + difference(teacher, best_b))
        if best_d and best_b:
            lines.append(f"k={k}: best distilled > best no-teacher: {'yes' if best_d['map'] > best_b['map'] else 'no'}, "
                         + difference(best_d, best_b))
        head_d, head_b = headline(distilled), headline(baselines)
        if teacher and head_d and len(teacher["seeds"]) > 1:
            lines.append(f"k={k}: teacher >= headline distilled ({len(teacher['seeds'])} and {len(head_d['seeds'])} "
                         f"seeds): {'yes' if teacher['map'] >= head_d['map'] else 'no'}, " + difference(teacher, head_d))
        if head_d and head_b:
            lines.append(f"k={k}: headline distilled > headline no-teacher (the rows chosen on validation GAP@20, "
                         f"{len(head_d['seeds'])} and {len(head_b['seeds'])} seeds): "
                         f"{'yes' if head_d['map'] > head_b['map'] else 'no'}, " + difference(head_d, head_b))
        serial = [e for e in distilled if "/serial/" in e["row"] and "inter" not in e["row"]]
        parallel = [e for e in distilled if "/parallel/" in e["row"]]
        if serial and parallel:
            lines.append(f"k={k}: best serial vs best parallel: "
                         + difference(max(serial, key=lambda e: e["map"]), max(parallel, key=lambda e: e["map"])))
        for label, with_loss, without in LOSS_PAIRS:
            a, b = by_id.get(f"k{k}/{with_loss}"), by_id.get(f"k{k}/{without}")
            if a and b:
                lines.append(f"k={k}: {label}: " + difference(a, b))
    return lines


def markdown(doc: Mapping[str, Any]) -> str:
    """The results as a Markdown table (mean ± std over seeds where a row has several)."""
    teacher = next((e["cost"] for e in doc["summary"] if e["row"] == "teacher"), None)
    lines = [
        f"{'Partial' if doc['remaining'] else 'Complete'} grid: {len(doc['summary'])} row(s) finished, "
        f"{len(doc['remaining'])} planned run(s) left. {doc['family']} on {doc['dataset']}, "
        f"{doc['machine']}; {doc['train_seconds'] / 3600:.2f} h of row time.",
        "",
        "| row | k | seeds | eval mAP | eval GAP@20 | eval Hit@1 | train / eval frames | FLOPs / video "
        f"(vs teacher) | end to end with {doc.get('encoder') or 'the encoder'} (vs teacher) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in doc["summary"]:
        cells = []
        for m in METRICS:
            std = e[f"{m}_std"]
            cells.append(f"{e[m]:.4f}" + (f" ± {std:.4f}" if std is not None else ""))
        frames = "all" if e["kind"] == "teacher" else f"{e['train_sampler']} / {e['eval_sampler']}"
        flops = [_with_ratio(e["cost"][key], teacher and teacher[key]) for key in ("flops", "end_to_end_flops")]
        lines.append(f"| `{e['row']}` | {e['k'] or 'all'} | {len(e['seeds'])} | {' | '.join(cells)} | {frames} | "
                     f"{' | '.join(flops)} |")
    checks = comparisons(doc)
    if checks:
        lines += ["", "The paper's claims on these rows (eval mAP):", ""] + [f"- {c}" for c in checks]
    for p in doc.get("in_progress", []):
        best = "" if p["best_val_gap"] is None else f", best validation GAP@20 so far {p['best_val_gap']:.4f}"
        lines.append(f"\nIn progress: `{p['row']}`, {p['epochs_done']} epoch(s) done{best}.")
    if doc["remaining"]:
        lines += ["", f"Not yet run: {not_run(doc['remaining'], [e['row'] for e in doc['summary']])}."]
    if doc.get("command"):
        lines += ["", f"Command: `{doc['command']}` (re-run it to continue; finished rows are kept)."]
    return "\n".join(lines) + "\n"


def not_run(remaining: Sequence[str], finished: Sequence[str] = ()) -> str:
    """The unfinished runs; a budget with no finished row is one item, ``k<k>/* (n runs)``."""
    def group(key: str) -> str:
        return key.split("/", 1)[0] if "/" in key else key.split("@", 1)[0]

    started = {group(row) for row in finished}
    items: list[str] = []
    for key in remaining:
        g = group(key)
        if g.startswith("k") and g not in started:
            n = sum(group(other) == g for other in remaining)
            item = f"{g}/* ({n} run{'' if n == 1 else 's'})"
            if item not in items:
                items.append(item)
        else:
            items.append(key)
    return ", ".join(items)


def _with_ratio(value: int | None, reference: int | None) -> str:
    if value is None:
        return "–"
    return f"{value:,}" + (f" ({value / reference:.3f})" if reference else "")


def machine() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    where = gpus[0].name if gpus else f"{platform.machine()} CPU, {os.cpu_count()} cores"
    return f"{where}, TensorFlow {tf.__version__}, Keras {keras.__version__}"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kdzoo.reproduce RESULTS.json``: prints the Markdown table of a results file."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m kdzoo.reproduce RESULTS.json", file=sys.stderr)
        return 2
    print(markdown(artifacts.read_json(args[0])), end="")
    return 0


