"""Reading a model card's numbers: the eval mAP of a run kind over the card's seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def map_over_seeds(card: Mapping[str, Any], kind: str, *, min_runs: int = 1, show_count: bool = False) -> str | None:
    """``"mean ± std"`` of a run kind's eval mAP over a card's seeds (``map_over_seeds``).

    `kind` is ``"distilled"``, ``"no_teacher_random"`` or ``"no_teacher_uniform"``. One run
    gives its value alone; `show_count` appends ``" (n seeds)"`` to a spread. Returns None
    when the card has no such runs, or fewer than `min_runs`.
    """
    over = (card.get("map_over_seeds") or {}).get(kind)
    if not over or len(over["runs"]) < min_runs:
        return None
    if len(over["runs"]) == 1:
        return f"{over['mean']:.4f}"
    count = f" ({len(over['runs'])} seeds)" if show_count else ""
    return f"{over['mean']:.4f} ± {over['std']:.4f}{count}"
