"""``kdzoo eval``: GAP@20, mAP, Hit@1 and PERR of a zoo model or a .keras file on TFRecords."""

from __future__ import annotations

import argparse
import json

from kdzoo.cli._common import add_model_argument, add_spec_argument, add_weights_argument, load_model_source, require_spec


def add_parser(sub, parent) -> None:
    p = sub.add_parser("eval", parents=[parent], help="evaluate a zoo model or a .keras file on TFRecords")
    add_model_argument(p)
    p.add_argument("--data", required=True, help="TFRecords: glob, path or gs:// URL")
    add_spec_argument(p)
    add_weights_argument(p, default="pretrained")
    p.add_argument("--sampler", default=None, help="frame sampler of a student (default: the card's, or uniform)")
    p.add_argument("--take", type=int, default=None, help="evaluate on the first N videos only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdzoo.evaluation import evaluate_model

    source = load_model_source(args.name, args.weights, spec=args.spec, sampler=args.sampler)
    spec = require_spec(source, "eval")
    result = evaluate_model(source.model, args.data, spec, k=source.k, sampler=source.sampler,
                            take=args.take, progress=True)
    print(json.dumps({"name": source.name, **result}, indent=2))
    return 0
