"""Pareto front of (quality, cost) points and the search report (CSV, JSON, PNG).

keras-tuner optimises one scalar; the trade-off between a student's quality and its
cost is read off the non-dominated set computed here over all completed trials.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from kdzoo.zoo import artifacts

CSV_COLUMNS = (
    "trial_id", "status", "k", "sampler", "learning_rate", "representation_weight",
    "prediction_weight", "quality", "flops", "flops_ratio", "score", "on_front",
)


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points, in ascending order.

    Args:
        points: ``(quality, cost)`` pairs: higher quality and lower cost are better.

    A point is dominated when another one has quality >= and cost <= with at least one
    of them strict. Identical points do not dominate each other (all copies stay on
    the front). Points with a non-finite coordinate are never on the front and never
    dominate. O(n log n).
    """
    valid = [i for i, p in enumerate(points) if _finite(p[0]) and _finite(p[1])]
    order = sorted(valid, key=lambda i: (float(points[i][1]), -float(points[i][0])))
    front: list[int] = []
    best = -math.inf  # best quality among strictly cheaper points
    pos = 0
    while pos < len(order):
        cost = float(points[order[pos]][1])
        group = []
        while pos < len(order) and float(points[order[pos]][1]) == cost:
            group.append(order[pos])
            pos += 1
        top = float(points[group[0]][0])  # group is sorted by quality, highest first
        if top > best:
            front.extend(i for i in group if float(points[i][0]) == top)
        best = max(best, top)
    return sorted(front)


def write_report(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    *,
    summary: Mapping[str, Any] | None = None,
    title: str = "Frame-count search",
) -> dict[str, Any]:
    """Marks the front on `records` and writes ``pareto.csv``, ``pareto.json``, ``pareto.png``.

    Each record needs ``trial_id``, ``status``, ``quality``, ``flops`` and ``score``
    (only ``COMPLETED`` records with finite values take part in the front). Returns the
    JSON document written.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in records]
    eligible = [i for i, r in enumerate(rows) if r.get("status") == "COMPLETED"
                and _finite(r.get("quality")) and _finite(r.get("flops"))]
    on_front = {eligible[j] for j in pareto_front([(rows[i]["quality"], rows[i]["flops"]) for i in eligible])}
    for i, row in enumerate(rows):
        row["on_front"] = i in on_front
    scored = [i for i in eligible if _finite(rows[i].get("score"))]
    best = max(scored, key=lambda i: float(rows[i]["score"])) if scored else None
    doc = dict(summary or {})
    doc.update({
        "trials": rows,
        "front": [rows[i]["trial_id"] for i in sorted(on_front, key=lambda i: rows[i]["flops"])],
        "best": None if best is None else rows[best]["trial_id"],
    })
    artifacts.atomic_write_json(out_dir / "pareto.json", doc)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in CSV_COLUMNS})
    artifacts.atomic_write_bytes(out_dir / "pareto.csv", buf.getvalue().encode("utf-8"))

    _plot(rows, sorted(on_front, key=lambda i: rows[i]["flops"]), best, out_dir / "pareto.png", title, doc)
    return doc


def _plot(rows, front, best, path: pathlib.Path, title: str, doc: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in threads

    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    done = [r for r in rows if r.get("status") == "COMPLETED" and _finite(r.get("quality")) and _finite(r.get("flops"))]
    scale = 1e6
    ax.scatter([r["flops"] / scale for r in done], [r["quality"] for r in done], c="tab:gray", s=28,
               label=f"trials ({len(done)})", zorder=2)
    for r in done:
        ax.annotate(f"k={r.get('k')} {r.get('sampler', '')}", (r["flops"] / scale, r["quality"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7, color="dimgray")
    if front:
        xs = [rows[i]["flops"] / scale for i in front]
        ys = [rows[i]["quality"] for i in front]
        ax.step(xs, ys, where="post", color="tab:blue", lw=1.2, zorder=1)
        ax.scatter(xs, ys, c="tab:blue", s=40, label="Pareto front", zorder=3)
    if best is not None:
        ax.scatter([rows[best]["flops"] / scale], [rows[best]["quality"]], marker="*", s=220, c="tab:red",
                   edgecolors="black", label=f"best trade-off (score {rows[best]['score']:.4f})", zorder=4)
    teacher = doc.get("teacher_flops")
    if teacher:
        ax.axvline(teacher / scale, color="tab:green", ls="--", lw=1, label="teacher FLOPs")
    ax.set_xlabel("student FLOPs per video (millions)")
    ax.set_ylabel("validation GAP@20 (student)")
    lam = doc.get("lambda")
    ax.set_title(title + (f"  (score = GAP - {lam} x FLOPs ratio)" if lam is not None else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
