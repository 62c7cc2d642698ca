"""The rows of the paper's grid: what each one trains, and how they are selected.

A row is one model trained one way with one seed; its id (``teacher``,
``k2/no_teacher/random``, ``k2/serial/rep+ce``) names it without the seed, its key
(``k2/serial/rep+ce@1``) with it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from kdzoo import sampling
from kdzoo.models import INTERMEDIATE_FAMILIES
from kdzoo.zoo.config import ZooConfig

#: The paper's student budgets per dataset (AudioSet: per family; YouTube-8M: 300 frames).
PAPER_K = {
    "audioset": {"netvlad": (1, 2, 3, 5), "hrnn": (2, 5), "nextvlad": (2, 5)},
    "yt8m": (6, 10, 15, 20, 30),
}
#: Table 1 of the paper: (mode, losses) of the distilled rows.
TABLE1 = (
    ("parallel", ("rep",)),
    ("parallel", ("rep", "ce")),
    ("parallel", ("rep", "pred", "ce")),
    ("serial", ("rep",)),
    ("serial", ("pred",)),
    ("serial", ("rep", "ce")),
    ("serial", ("pred", "ce")),
    ("serial", ("rep", "pred", "ce")),
)
INTERMEDIATE_ROW = ("serial", ("rep", "pred", "ce", "inter"))
LOSS_KEYS = {"ce": "ce_weight", "rep": "representation_weight", "pred": "prediction_weight",
             "inter": "intermediate_weight"}
#: Used for a loss that a row needs but the recipe weighs 0 (or leaves out).
DEFAULT_WEIGHTS = {"ce_weight": 1.0, "representation_weight": 1e-3, "prediction_weight": 1.0,
                   "intermediate_weight": 1.0}


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the grid: a model trained one way, with one seed."""

    kind: str  # "teacher" | "no_teacher" | "distilled"
    k: int | None = None
    sampler: str | None = None  # no_teacher rows
    mode: str | None = None  # distilled rows
    losses: tuple[str, ...] = ()
    seed: int = 0

    @property
    def id(self) -> str:
        """The row's name without its seed, e.g. ``k2/serial/rep+ce``."""
        if self.kind == "teacher":
            return "teacher"
        if self.kind == "no_teacher":
            return f"k{self.k}/no_teacher/{self.sampler}"
        return f"k{self.k}/{self.mode}/{'+'.join(self.losses)}"

    @property
    def key(self) -> str:
        return f"{self.id}@{self.seed}"

    def with_seed(self, seed: int) -> "Row":
        return dataclasses.replace(self, seed=seed)


def grid(family: str, ks: Sequence[int]) -> list[Row]:
    """Every seed-0 row for the budgets `ks`, in run order (teacher first, then per k)."""
    rows = [Row("teacher")]
    for k in ks:
        rows += [Row("no_teacher", k, sampler=s) for s in sampling.SAMPLERS]
        table = list(TABLE1) + ([INTERMEDIATE_ROW] if family in INTERMEDIATE_FAMILIES else [])
        rows += [Row("distilled", k, mode=m, losses=losses) for m, losses in table]
    return rows


def select(rows: Iterable[Row], patterns: str | None) -> list[Row]:
    """Rows whose id or ``id@seed`` matches one of the comma-separated fnmatch patterns."""
    rows = list(rows)
    if not patterns:
        return rows
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [r for r in rows if any(fnmatch.fnmatchcase(r.id, p) or fnmatch.fnmatchcase(r.key, p) for p in pats)]


def paper_ks(config: ZooConfig) -> tuple[int, ...]:
    """The paper's k for the config's dataset (300-frame specs: the YouTube-8M budgets)."""
    known = PAPER_K.get(config.dataset)
    if isinstance(known, Mapping):
        known = known.get(config.family)
    if known is None and config.spec.max_frames == 300:
        known = PAPER_K["yt8m"]
    ks = tuple(k for k in (known or config.ks) if k <= config.spec.max_frames)
    return ks or tuple(config.ks)


def loss_weights(config: ZooConfig, losses: Sequence[str]) -> dict[str, float]:
    """Distiller loss weights of a row: the recipe's for the losses it names, 0 otherwise."""
    unknown = set(losses) - set(LOSS_KEYS)
    if unknown:
        raise ValueError(f"Unknown losses {sorted(unknown)}. Expected names from {sorted(LOSS_KEYS)}.")
    out = {}
    for name, key in LOSS_KEYS.items():
        recipe = float(config.distillation.get(key, 0.0) or 0.0)
        out[key] = (recipe if recipe > 0 else DEFAULT_WEIGHTS[key]) if name in losses else 0.0
    return out
