"""Markdown tables the README quotes: the shipped zoo entries (from their cards,
pretrained/*/metadata.json) and the distillation claim (from bench_distillation's JSON).

    python benchmarks/render_zoo_table.py
    python benchmarks/render_zoo_table.py --claim benchmarks/results/cpu/distillation_netvlad_k2.json
"""

from __future__ import annotations

import argparse
import json
import sys

from kdzoo.zoo import get_registry
from kdzoo.zoo.cards import map_over_seeds


def _baselines(card) -> tuple[str, str, str]:
    """(no teacher + random subsets, no teacher + fixed uniform frames, verdict) cells."""
    if "baselines" in card:
        base = card["baselines"]
        random_ = map_over_seeds(card, "no_teacher_random", show_count=True) or "–"
        uniform = map_over_seeds(card, "no_teacher_uniform", show_count=True) or "–"
        gains = card.get("distillation_gain_map") or {}
        verdict = "; ".join(
            f"vs {kind.removeprefix('no_teacher_')}: {g['gain']:+.4f} ({g['verdict']})" for kind, g in gains.items()
        )
        return random_, uniform, verdict or "–"
    if "no_teacher" in card:  # v1 cards: one no-teacher twin on the card's own sampler
        return "–", f"{card['no_teacher']['metrics']['map']:.4f}", f"{card['distillation_gain_map']:+.4f} (single seed)"
    return "–", "–", "–"


def render(pattern: str = "*") -> str:
    registry = get_registry()
    names = registry.list_models(pattern, pretrained=True)
    lines = [
        "| model | frames | eval mAP (distilled) | eval GAP@20 | eval Hit@1 | no teacher, random subsets: mAP "
        "| no teacher, fixed uniform frames: mAP | distilled vs no teacher | params | FLOPs / video | FLOPs vs teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        card = registry.model_card(name)
        ev = card["metrics"]["eval"]
        frames = card["num_frames"]
        if card["role"] == "student":
            random_, uniform, verdict = _baselines(card)
            ratio = f"{card['teacher_ratio']['flops']:.3f}"
            quality = map_over_seeds(card, "distilled", show_count=True) or f"{ev['map']:.4f}"
            if card.get("elastic_k"):
                low, high = card["elastic_k"]
                frames = f"any ({low}–{high}); shown: {high}"
                quality = f"{ev['map']:.4f}"
        else:
            random_, uniform, verdict, ratio, quality = "–", "–", "–", "1", f"{ev['map']:.4f}"
        taught = f" (taught by `{card['distilled_from']['name']}`)" if card.get("distilled_from") else ""
        lines.append(
            f"| `{name}`{taught} | {frames} | {quality} | {ev['gap']:.4f} | {ev['hit_at_one']:.4f} "
            f"| {random_} | {uniform} | {verdict} | {card['params']:,} | {card['flops']:,} | {ratio} |"
        )
    for name in names:
        card = registry.model_card(name)
        if card.get("curve"):
            ks = sorted(card["curve"], key=int)
            lines += ["", f"`{name}`, one set of weights evaluated at each k (uniform frames, eval split):", "",
                      "| k | " + " | ".join(ks) + " |", "|---|" + "---|" * len(ks)]
            for metric, label in (("map", "mAP"), ("gap", "GAP@20"), ("hit_at_one", "Hit@1")):
                lines.append(f"| {label} | " + " | ".join(f"{card['curve'][k][metric]:.4f}" for k in ks) + " |")
    return "\n".join(lines)


def render_claim(path: str) -> str:
    """Teacher, distilled and no-teacher students of one bench_distillation result."""
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    k, n = result["student_frames"], result["teacher_frames"]
    lines = ["| model | frames | eval mAP | eval GAP@20 | eval Hit@1 |", "|---|---|---|---|---|"]
    for name, row in result["models"].items():
        frames = n if name == "teacher" else k
        label = name.replace("_", " ").replace("no teacher", "student, no teacher,").replace(
            "distilled", "student, distilled,")
        lines.append(f"| {label} | {frames} | {row['map']:.4f} | {row['gap']:.4f} | {row['hit_at_one']:.4f} |")
    claims = ", ".join(f"{key}: {value}" for key, value in result["claims"].items())
    lines.append("")
    lines.append(f"Checks ({result['device']}): {claims}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern", nargs="?", default="*")
    parser.add_argument("--claim", help="a bench_distillation JSON result to render instead")
    args = parser.parse_args(argv)
    print(render_claim(args.claim) if args.claim else render(args.pattern))
    return 0


if __name__ == "__main__":
    sys.exit(main())
