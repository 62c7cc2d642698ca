"""Choosing k from an elastic student's card: its measured quality-vs-k curve, no training.

An elastic student (``<family>_student_elastic``) stores GAP@20, mAP and Hit@1 for every k
of its span. Each k becomes one "trial" of the same cost-aware objective as the search::

    score = GAP@20(k) - lambda * FLOPs(student, k) / FLOPs(teacher, all frames)

and the rows go through the same Pareto report (`kdzoo.tuning.write_report`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def curve_trials(
    card: Mapping[str, Any], teacher_flops: int, flops_at: Callable[[int], int], lam: float
) -> list[dict[str, Any]]:
    """One record per k of an elastic card's ``curve``.

    Args:
        card: the elastic student's model card (``curve``: ``{"k": {"gap", "map", "hit_at_one"}}``).
        teacher_flops: FLOPs of the teacher on all frames (one video).
        flops_at: the student's FLOPs for one video of k frames.
        lam: weight of the cost term.

    Returns:
        Records with ``trial_id`` (``"k<k>"``), ``status``, ``k``, ``sampler``,
        ``quality`` (eval GAP@20), ``map``, ``flops``, ``flops_ratio`` and ``score``.
    """
    curve = card.get("curve")
    if not curve:
        raise ValueError(f"{card.get('name', 'the card')} has no quality curve: only elastic students store one.")
    if teacher_flops <= 0:
        raise ValueError(f"Expected positive teacher FLOPs. Received: {teacher_flops!r}")
    rows = []
    for key in sorted(curve, key=int):
        k = int(key)
        flops = int(flops_at(k))
        ratio = flops / teacher_flops
        quality = float(curve[key]["gap"])
        rows.append({
            "trial_id": f"k{k}", "status": "COMPLETED", "k": k, "sampler": card.get("sampler"),
            "quality": quality, "map": float(curve[key]["map"]), "flops": flops, "flops_ratio": ratio,
            "score": quality - lam * ratio,
        })
    return rows
