"""Markdown table of the shipped zoo entries, from their cards (pretrained/*/metadata.json).

    python benchmarks/render_zoo_table.py            # prints the table the README quotes
"""

from __future__ import annotations

import argparse
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern", nargs="?", default="*")
    args = parser.parse_args(argv)
    print(render(args.pattern))
    return 0


if __name__ == "__main__":
    sys.exit(main())
