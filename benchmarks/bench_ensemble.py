"""The average of several zoo models' predictions, scored on the eval split.

Each model is scored alone and the mean of their sigmoid outputs is scored as one more
classifier: the number a stronger (ensemble) teacher would start from.

    python benchmarks/bench_ensemble.py --data-dir ../shared/data \
        netvlad_teacher.audioset hrnn_teacher.audioset nextvlad_teacher.audioset

Writes ``benchmarks/results/<cpu|gpu>/ensemble_<dataset>.json``. With ``--recipe CONFIG``
the models are the trained teachers a recipe's ``teacher_distill_from`` lists (the
ensemble its teacher learns from), added to any zoo names given::

    python benchmarks/bench_ensemble.py --data-dir ../shared/data \
        --recipe benchmarks/configs/nextvlad.audioset.teacher_from_ensemble.yaml
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
from kdzoo.training.stages import teacher_distill_members  # noqa: E402
from kdzoo.zoo.config import ZooConfig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo names (teachers: every frame)")
    parser.add_argument("--recipe", default=None, help="a zoo config whose teacher_distill_from lists the models")
    parser.add_argument("--data-dir", required=True, help="folder holding the cards' eval globs")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/<cpu|gpu>/ensemble_<dataset>.json)")
    args = parser.parse_args(argv)

    models = {name: (lambda name=name: kdzoo.load(name)) for name in args.names}
    cards = [kdzoo.model_card(name) for name in args.names]
    datasets, evals = {c["dataset"] for c in cards}, {c["data"]["eval"] for c in cards}
    if args.recipe:
        recipe = ZooConfig.from_file(args.recipe)
        for member, (member_config, model) in zip(recipe.teacher_distill_from, teacher_distill_members(recipe)):
            models[f"{pathlib.Path(member['config']).stem}:{member['weights']}"] = lambda model=model: model
            datasets.add(member_config.dataset)
            evals.add(member_config.data["eval"])
    if len(models) < 2 or len(datasets) != 1 or len(evals) != 1:
        raise SystemExit(f"Expected two or more models of one dataset and eval split; got {sorted(models)} "
                         f"on {sorted(datasets)}, {sorted(evals)}")
    files = os.path.join(args.data_dir, evals.pop())
    spec = datasets.pop()

    predictions, labels, singles = {}, None, {}
    for name, make in models.items():
        model = make()
        # A teacher sees every frame, a student its own k (predict_files reads it from the model).
        predictions[name], these_labels = predict_files(model, files, spec, progress=True)
        if labels is not None and not np.array_equal(labels, these_labels):
            raise SystemExit("The models were scored on different videos (file order changed?)")
        labels = these_labels
        singles[name] = score(predictions[name], labels, labels.shape[1])
        print(f"{name}: mAP {singles[name]['map']:.4f}  GAP@20 {singles[name]['gap']:.4f}")

    averages = {}
    for size in range(2, len(models) + 1):
        for group in itertools.combinations(models, size):
            result = score(np.mean([predictions[n] for n in group], axis=0), labels, labels.shape[1])
            averages[" + ".join(group)] = result
            print(f"mean of {' + '.join(group)}: mAP {result['map']:.4f}  GAP@20 {result['gap']:.4f}")

    stem = f"ensemble_{spec}" + (f"_{pathlib.Path(args.recipe).stem}" if args.recipe else "")
    out = pathlib.Path(args.out) if args.out else default_output(f"{stem}.json")
    write_result(out, {
        "command": "python benchmarks/bench_ensemble.py --data-dir DATA " + " ".join(args.names)
        + (f" --recipe {args.recipe}" if args.recipe else ""),
        **environment(),
        "eval_files": os.path.relpath(files, args.data_dir),
        "models": singles,
        "averages": averages,
    })
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
