"""Epoch overhead: seconds per `Distiller.fit` epoch with tf.data's autotuner on and off.

Trains one zoo recipe's k-frame student without a teacher (as the reproduce grid's
no-teacher rows do: a fresh random k-subset per step, validation on the hash split) for
``--epochs`` epochs per setting, the settings taking turns ``--repeats`` times, on the
same datasets `kdzoo train` builds (`kdzoo.data.make_dataset`, cached in memory), with
``options=kdzoo.data.pipeline_options(autotune=...)``. Each epoch is split into the time
inside the training steps (between Keras' batch callbacks), the validation pass, and the
rest: iterator set-up and tear-down between the steps, where the stall shows up. The
first epoch of each fit (tracing, filling the cache) is left out of the medians.

Writes ``benchmarks/results/<cpu|gpu>/epoch_overhead.json``. Run from the repository root
on a quiet machine:

    python benchmarks/bench_epoch_overhead.py --data-dir ../shared/data
    python benchmarks/bench_epoch_overhead.py --data-dir ../shared/data --epochs 3 --repeats 1 --out /tmp/e.json
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import keras  # noqa: E402

from kdzoo.data import make_dataset, pipeline_options  # noqa: E402
from kdzoo.distillation import Distiller  # noqa: E402
from kdzoo.models import build_model  # noqa: E402
from kdzoo.training import stages  # noqa: E402
from kdzoo.zoo.config import ZooConfig  # noqa: E402

from _device import default_output, environment, write_result  # noqa: E402

SETTINGS = {"autotune_off": False, "autotune_on": True}


class EpochClock(keras.callbacks.Callback):
    """Per epoch: total seconds, seconds inside training steps, seconds of validation."""

    def __init__(self):
        super().__init__()
        self.epochs: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._begin, self._in_steps, self._val = time.perf_counter(), 0.0, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._step = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._in_steps += time.perf_counter() - self._step

    def on_test_begin(self, logs=None):
        self._val_begin = time.perf_counter()

    def on_test_end(self, logs=None):
        self._val += time.perf_counter() - self._val_begin

    def on_epoch_end(self, epoch, logs=None):
        total = time.perf_counter() - self._begin
        self.epochs.append({"total": total, "steps": self._in_steps, "validation": self._val,
                            "other": total - self._in_steps - self._val})


def fit_once(config: ZooConfig, data: stages.TrainingData, k: int, epochs: int, autotune: bool) -> list[dict[str, float]]:
    t = config.training
    batch, fraction, seed = int(t["batch_size"]), float(t["validation_fraction"]), int(t["seed"])
    options = pipeline_options(autotune=autotune)
    common = dict(cache=True, validation_fraction=fraction, options=options)
    files = list(data.files)
    train = make_dataset(files, config.spec, batch, shuffle=True, seed=seed, subset="train", **common)
    val = make_dataset(files, config.spec, batch, subset="validation", **common)
    keras.utils.set_random_seed(seed)
    student = build_model(config.model_config("student", k))
    distiller = Distiller(None, student, k=k, sampler=config.sampler, train_sampler="random", seed=seed,
                          metric_capacity=data.metric_capacity)
    distiller.compile(optimizer=keras.optimizers.Adam(float(t.get("student_learning_rate") or t["learning_rate"])))
    clock = EpochClock()
    distiller.fit(train, validation_data=val, epochs=epochs, callbacks=[clock], verbose=0, shuffle=False)
    return clock.epochs


def summary(epochs: list[dict[str, float]]) -> dict[str, float]:
    steady = epochs[1:] or epochs
    return {f"median_{key}_seconds": round(statistics.median(e[key] for e in steady), 3)
            for key in ("total", "steps", "validation", "other")} | {
        "mean_total_seconds": round(statistics.fmean(e["total"] for e in steady), 3),
        "max_other_seconds": round(max(e["other"] for e in steady), 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "zoo_configs" / "hrnn.audioset.yaml"))
    parser.add_argument("--data-dir", required=True, help="folder the config's data globs are relative to")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="fits per setting, taking turns")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/<cpu|gpu>/epoch_overhead.json)")
    args = parser.parse_args(argv)

    config = ZooConfig.from_file(args.config)
    data = stages.TrainingData.resolve(config, args.data_dir)
    runs: dict[str, list[list[dict[str, float]]]] = {name: [] for name in SETTINGS}
    for repeat in range(args.repeats):
        for name, autotune in SETTINGS.items():
            epochs = fit_once(config, data, args.k, args.epochs, autotune)
            runs[name].append(epochs)
            print(f"{name} #{repeat}: " + " ".join(f"{e['total']:.1f}" for e in epochs), flush=True)
    results = {name: {**summary([e for fit in fits for e in fit[1:]] or [e for fit in fits for e in fit]),
                      "epochs": [[{k: round(v, 3) for k, v in e.items()} for e in fit] for fit in fits]}
               for name, fits in runs.items()}
    ratio = results["autotune_off"]["mean_total_seconds"] / results["autotune_on"]["mean_total_seconds"]
    doc = {
        "benchmark": "epoch_overhead", "command": " ".join(sys.argv), **environment(),
        "config": str(pathlib.Path(args.config).resolve().relative_to(REPO_ROOT))
        if pathlib.Path(args.config).resolve().is_relative_to(REPO_ROOT) else args.config,
        "k": args.k, "epochs_per_fit": args.epochs, "repeats": args.repeats,
        "settings": results,
        "mean_epoch_ratio_off_vs_on": round(ratio, 3),
    }
    out = pathlib.Path(args.out) if args.out else default_output("epoch_overhead.json")
    write_result(out, doc)
    print(f"autotune off / on, mean epoch (after the first): {ratio:.3f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
