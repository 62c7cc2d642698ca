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


def render(pattern: str = "*") -> str:
    registry = get_registry()
    names = registry.list_models(pattern, pretrained=True)
    lines = [
        "| model | frames | eval mAP | eval GAP@20 | eval Hit@1 | same student, no teacher: mAP / GAP@20 "
        "| params | FLOPs / video | FLOPs vs teacher |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        card = registry.model_card(name)
        ev = card["metrics"]["eval"]
        if card["role"] == "student":
            nt = card["no_teacher"]["metrics"]
            baseline = f"{nt['map']:.4f} / {nt['gap']:.4f}"
            ratio = f"{card['teacher_ratio']['flops']:.3f}"
        else:
            baseline, ratio = "–", "1"
        lines.append(
            f"| `{name}` | {card['frames']} | {ev['map']:.4f} | {ev['gap']:.4f} | {ev['hit_at_one']:.4f} "
            f"| {baseline} | {card['params']:,} | {card['flops']:,} | {ratio} |"
        )
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
