"""``kdzoo list`` and ``kdzoo card``: the zoo's names and model cards."""

from __future__ import annotations

import argparse
import json

from kdzoo.cli._common import console


def add_parser(sub, parent) -> None:
    p = sub.add_parser("list", parents=[parent], help="list zoo models")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'netvlad*'")
    p.add_argument("--pretrained", choices=("yes", "no"))
    p.set_defaults(func=run_list)

    p = sub.add_parser("card", parents=[parent], help="print a zoo entry's model card")
    p.add_argument("name")
    p.set_defaults(func=run_card)


def run_list(args: argparse.Namespace) -> int:
    from rich.table import Table

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
    console().print(table)
    return 0


def run_card(args: argparse.Namespace) -> int:
    from kdzoo.zoo import registry

    print(json.dumps(registry.model_card(args.name), indent=2, sort_keys=True))
    return 0
