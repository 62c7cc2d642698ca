"""Multi-worker speed-up: `kdzoo distill --strategy multiworker` with 2 local workers vs 1.

Both settings run in the same invocation, one after the other, on the same data and config
(zoo_configs/netvlad.audioset.yaml; by default on generated AudioSet-shaped records,
``--records`` videos of 10 x 128 uint8 frames and 527 classes in ``--files`` TFRecord files,
or with ``--data-dir`` on the real AudioSet train shards): each is a fresh
`kdzoo.distribute.LocalCluster` (worker processes on 127.0.0.1) running the whole distill
command (teacher stage, then the k=2 student stage). The config's batch size is per
replica, so 2 workers train with twice the global batch and half the steps per epoch: the
same videos per epoch. Throughput is videos/s of the training steps (validation and
checkpoints excluded) from each stage's done.json: the median over the epochs after the
first (which traces the step and fills the tf.data cache) of ``--repeats`` runs of each
setting, run in ABBA order (1, 2, 2, 1 workers). Speed-up = 2-worker videos/s over 1-worker
videos/s. The load average is recorded: on a shared machine the other processes compete
for the same cores.

Writes ``benchmarks/results/<cpu|gpu>/distributed.json``. Run from the repository root:

    python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --data-dir ../shared/data       # the real AudioSet shards
    python benchmarks/bench_distributed.py --records 512 --out /tmp/d.json  # smoke test
    python benchmarks/bench_distributed.py --records 2048 --batch-size 64   # the README's number
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import sys
import tempfile
import time

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from kdzoo.distribute import LocalCluster  # noqa: E402
from kdzoo.zoo.config import ZooConfig  # noqa: E402

from _device import default_output, environment, write_result  # noqa: E402

ZOO_CONFIG = REPO_ROOT / "zoo_configs" / "netvlad.audioset.yaml"


def write_records(folder: pathlib.Path, pattern: str, videos: int, files: int, seed: int = 0) -> None:
    """AudioSet-shaped SequenceExamples (``video_id``, ``labels``, 10 ``audio_embedding`` rows)
    named by the config's train `pattern` (its ``*`` becomes the file number)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for f in range(files):
        path = folder / pattern.replace("*", f"{f:02d}-of-{files:02d}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(f, videos, files):
                ex = tf.train.SequenceExample()
                ex.context.feature["video_id"].bytes_list.value.append(f"v{i}".encode())
                ex.context.feature["labels"].int64_list.value.extend(rng.choice(527, 3, replace=False).tolist())
                rows = ex.feature_lists.feature_list["audio_embedding"]
                for row in rng.integers(0, 256, size=(10, 128), dtype=np.uint8):
                    rows.feature.add().bytes_list.value.append(row.tobytes())
                writer.write(ex.SerializeToString())


def run_cluster(workers: int, config: pathlib.Path, data_dir: str, epochs: int, scratch: pathlib.Path) -> dict:
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f"workers{workers}_", dir=scratch))
    work_dir = scratch / f"runs_{workers}"
    command = [sys.executable, "-m", "kdzoo.cli", "distill", str(config), "--data-dir", data_dir,
               "--work-dir", str(work_dir), "--epochs", str(epochs), "--verbose", "2", "--strategy", "multiworker"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    with LocalCluster(command, workers, scratch / f"logs_{workers}", env=env) as cluster:
        codes = cluster.wait(timeout=3600)
        if codes != [0] * workers:
            raise RuntimeError(f"{workers} worker(s) failed with {codes}:\n{cluster.output(0)[-3000:]}")
    wall = time.perf_counter() - began
    zoo = ZooConfig.from_file(config)
    stages = {
        "teacher": work_dir / f"{zoo.teacher_name()}.{zoo.dataset}" / "teacher" / "done.json",
        "student": work_dir / f"{zoo.student_name(zoo.ks[0])}.{zoo.dataset}" / "distilled" / "done.json",
    }
    result = {"workers": workers, "command_seconds": wall, "load_average_1min": [load_before, os.getloadavg()[0]]}
    for stage, path in stages.items():
        record = json.loads(path.read_text())
        throughput = record["history"]["examples_per_second"]
        result[stage] = {
            **record["strategy"],
            "videos_per_s_per_epoch": throughput,
            "videos_per_s": statistics.median(throughput[1:] or throughput),
            "train_seconds_per_epoch": record["history"]["train_seconds"],
            "final_loss": record["history"]["loss"][-1],
        }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="real data (default: generated records)")
    parser.add_argument("--records", type=int, default=4096, help="generated videos")
    parser.add_argument("--files", type=int, default=8, help="generated TFRecord files")
    parser.add_argument("--config", type=pathlib.Path, default=ZOO_CONFIG)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="per replica (default: the config's)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting, in ABBA order")
    parser.add_argument("--out", dest="output", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: LocalCluster kills its workers
    with tempfile.TemporaryDirectory(prefix="kdzoo_bench_distributed_") as scratch:
        scratch = pathlib.Path(scratch)
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = str(scratch / "data")
            write_records(scratch / "data", ZooConfig.from_file(args.config).data["train"], args.records, args.files)
        config = args.config
        if args.batch_size:  # a copy of the config with another per-replica batch size
            raw = yaml.safe_load(args.config.read_text())
            raw["training"]["batch_size"] = args.batch_size
            config = scratch / args.config.name
            config.write_text(yaml.safe_dump(raw))
        # ABBA order (1, 2, 2, 1, ...): a load that drifts during the run biases neither setting.
        order = [n for r in range(args.repeats) for n in ((1, 2) if r % 2 == 0 else (2, 1))]
        repeats = [run_cluster(n, config, data_dir, args.epochs, scratch) for n in order]
    runs = {}
    for n in (1, 2):
        mine = [r for r in repeats if r["workers"] == n]
        runs[str(n)] = {"workers": n, "repeats": mine, "command_seconds": statistics.median(
            r["command_seconds"] for r in mine), "load_average_1min": [mine[0]["load_average_1min"][0],
                                                                      mine[-1]["load_average_1min"][1]]}
        for stage in ("teacher", "student"):
            samples = [v for r in mine for v in (r[stage]["videos_per_s_per_epoch"][1:]
                                                 or r[stage]["videos_per_s_per_epoch"])]
            runs[str(n)][stage] = {**{k: mine[0][stage][k] for k in ("global_batch_size", "steps_per_epoch")},
                                   "videos_per_s": statistics.median(samples), "samples": samples}
    speedup = {stage: runs["2"][stage]["videos_per_s"] / runs["1"][stage]["videos_per_s"]
               for stage in ("teacher", "student")}
    result = {
        **environment(),
        "command": "python benchmarks/bench_distributed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "zoo_config": str(args.config.resolve().relative_to(REPO_ROOT)) if args.config.resolve().is_relative_to(
            REPO_ROOT) else str(args.config),
        "data": args.data_dir or f"generated: {args.records} AudioSet-shaped videos in {args.files} files",
        "epochs": args.epochs,
        "repeats": args.repeats,
        "batch_size_per_replica": args.batch_size or ZooConfig.from_file(args.config).training["batch_size"],
        "runs": runs,
        "speedup_2_vs_1_workers": speedup,
        "command_seconds_ratio_2_vs_1": runs["2"]["command_seconds"] / runs["1"]["command_seconds"],
    }
    output = args.output or default_output("distributed.json")
    write_result(output, result)
    for stage, ratio in speedup.items():
        print(f"{stage}: 1 worker {runs['1'][stage]['videos_per_s']:.0f} videos/s, "
              f"2 workers {runs['2'][stage]['videos_per_s']:.0f} videos/s: speed-up {ratio:.2f}x")
    print(f"written {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
