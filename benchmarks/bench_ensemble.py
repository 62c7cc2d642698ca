"""The average of several zoo models' predictions, scored on the eval split.

Each model is scored alone and the mean of their sigmoid outputs is scored as one more
classifier: the number a stronger (ensemble) teacher would start from.

    python benchmarks/bench_ensemble.py --data-dir ../shared/data \
        netvlad_teacher.audioset hrnn_teacher.audioset nextvlad_teacher.audioset

Writes ``benchmarks/results/<cpu|gpu>/ensemble_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pathlib
import sys

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import kdzoo  # noqa: E402
from _device import default_output, environment, write_result  # noqa: E402
from kdzoo.evaluation import predict_files, score  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="zoo names (teachers: every frame)")
    parser.add_argument("--data-dir", required=True, help="folder holding the cards' eval globs")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/<cpu|gpu>/ensemble_<dataset>.json)")
    args = parser.parse_args(argv)

    cards = {name: kdzoo.model_card(name) for name in args.names}
    datasets = {card["dataset"] for card in cards.values()}
    if len(datasets) != 1:
        raise SystemExit(f"The models must share one dataset; got {sorted(datasets)}")
    card = cards[args.names[0]]
    files = os.path.join(args.data_dir, card["data"]["eval"])
    spec = card["dataset"]

    predictions, labels, singles = {}, None, {}
    for name in args.names:
        model = kdzoo.load(name)
        # A teacher sees every frame, a student its own k (predict_files reads it from the model).
        predictions[name], these_labels = predict_files(model, files, spec, progress=True)
        if labels is not None and not np.array_equal(labels, these_labels):
            raise SystemExit("The models were scored on different videos (file order changed?)")
        labels = these_labels
        singles[name] = score(predictions[name], labels, labels.shape[1])
        print(f"{name}: mAP {singles[name]['map']:.4f}  GAP@20 {singles[name]['gap']:.4f}")

    averages = {}
    for size in range(2, len(args.names) + 1):
        for group in itertools.combinations(args.names, size):
            result = score(np.mean([predictions[n] for n in group], axis=0), labels, labels.shape[1])
            averages[" + ".join(group)] = result
            print(f"mean of {' + '.join(group)}: mAP {result['map']:.4f}  GAP@20 {result['gap']:.4f}")

    out = pathlib.Path(args.out) if args.out else default_output(f"ensemble_{datasets.pop()}.json")
    write_result(out, {
        "command": "python benchmarks/bench_ensemble.py --data-dir DATA " + " ".join(args.names),
        **environment(),
        "eval_files": card["data"]["eval"],
        "models": singles,
        "averages": averages,
    })
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
