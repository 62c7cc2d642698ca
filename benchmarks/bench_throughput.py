"""Throughput: records/s of the input pipeline and videos/s (and FLOP/s) of training steps.

(a) Input pipeline: `kdzoo.data.make_dataset` over the AudioSet train shards
    (``<data-dir>/audioset/bal_train-*.tfrecord``) at batch 256, with parallel reads
    (``num_parallel_reads=AUTOTUNE``) and with sequential reads (``num_parallel_reads=1``),
    cache off, against a plain batched reader with the same parallel reads (batch the
    serialized records, ``tf.io.parse_sequence_example`` on the whole batch, decode,
    dequantise, pad, multi-hot; no checks, no file or record names in errors). The files are
    read once untimed (so the OS page cache holds them for every setting alike). Each
    setting's dataset is built once (``build_seconds``, not in the rate), runs a short
    warm-up, then the settings take turns for ``pipeline_repeats`` timed full passes each
    (a pass starts a new iterator, as an epoch does); a setting's records/s is its median pass. The result is the
    ratio kdzoo / plain of the parallel-reads settings (target >= 0.7), from the same run.

(b) Training: `Distiller.fit` steps on in-memory synthetic batches of the AudioSet shape
    ((batch, 10, 128) frames, 527 classes), for the zoo's netvlad.audioset models:
    the teacher trained alone (as `kdzoo train` trains it) and the k=2 student distilled
    from the frozen teacher (serial mode, the config's distillation settings). Reports
    videos/s and the achieved FLOP/s = analytic forward FLOPs per video
    (`kdzoo.profiling.flops`) x videos/s, with forward + backward counted as 3x forward:
    teacher alone 3 F_T; distillation F_T (frozen teacher, forward only) + 3 F_S. The
    achieved FLOP/s is also given as a fraction of a large float32 matmul's FLOP/s
    (2048 x 2048 by default) measured in the same run.

Writes ``benchmarks/results/<cpu|gpu>/throughput.json``. Run from the repository root:

    python benchmarks/bench_throughput.py
    python benchmarks/bench_throughput.py --quick --out /tmp/throughput.json   # smoke test
    python benchmarks/bench_throughput.py --parts pipeline   # the readers only; keeps the training part
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import numpy as np
import tensorflow as tf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import keras  # noqa: E402

from kdzoo import profiling  # noqa: E402
from kdzoo.data import AUDIOSET, list_files, make_dataset  # noqa: E402
from kdzoo.distillation import Distiller  # noqa: E402
from kdzoo.models import build_model  # noqa: E402
from kdzoo.zoo.config import ZooConfig  # noqa: E402

from _device import default_output, environment, write_result  # noqa: E402

TRAIN_PATTERN = "audioset/bal_train-*.tfrecord"
ZOO_CONFIG = REPO_ROOT / "zoo_configs" / "netvlad.audioset.yaml"
PIPELINES = {
    "parallel_reads": {"num_parallel_reads": tf.data.AUTOTUNE, "cache": False},
    "sequential_reads": {"num_parallel_reads": 1, "cache": False},
    "plain_batched_reader": {"num_parallel_reads": tf.data.AUTOTUNE, "cache": False, "plain": True},
}
READER_RATIO = ("parallel_reads", "plain_batched_reader")
READER_RATIO_TARGET = 0.7
FULL = {
    "batch": 256, "pipeline_warmup": 5, "pipeline_repeats": 5, "take": None,
    "train_batch": 256, "train_steps": 50, "train_warmup": 5, "train_repeats": 3,
    "matmul_size": 2048, "matmul_repeats": 10,
}
QUICK = {
    "batch": 32, "pipeline_warmup": 2, "pipeline_repeats": 1, "take": 256,
    "train_batch": 16, "train_steps": 3, "train_warmup": 1, "train_repeats": 2,
    "matmul_size": 256, "matmul_repeats": 3,
}


# ----------------------------------------------------------------------------- (a) pipeline
def warm_page_cache(files: list[str]) -> int:
    """Reads every file once (untimed); returns the bytes read."""
    total = 0
    for name in files:
        with tf.io.gfile.GFile(name, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total


def plain_batched_reader(files: list[str], batch: int, num_parallel_reads, take=None) -> tf.data.Dataset:
    """The reference: AudioSet records batched serialized, parsed and decoded a batch at a time.

    Same outputs as `make_dataset(files, AUDIOSET, batch)` on valid records (frames, mask,
    multi-hot labels), none of its checks; independent of `kdzoo.data`.
    """
    spec, feature = AUDIOSET, AUDIOSET.features[0]
    t, width, scale = spec.max_frames, feature.width, 4.0 / 255.0
    context = {spec.id_key: tf.io.FixedLenFeature([], tf.string), spec.label_key: tf.io.VarLenFeature(tf.int64)}
    sequence = {feature.name: tf.io.RaggedFeature(tf.string)}

    def parse(serialized):
        ctx, seq, _ = tf.io.parse_sequence_example(serialized, context, sequence)
        frames = seq[feature.name][:, :t]  # (batch, frames, 1) strings
        codes = tf.reshape(tf.io.decode_raw(frames.flat_values, tf.uint8), [-1, width])
        values = tf.cast(codes, tf.float32) * scale - 2.0
        padded = tf.RaggedTensor.from_row_splits(values, frames.row_splits).to_tensor(shape=[None, t, width])
        mask = tf.sequence_mask(frames.row_lengths(), t, dtype=tf.float32)
        labels = tf.cast(tf.sparse.to_indicator(ctx[spec.label_key], spec.num_classes), tf.float32)
        return {"frames": padded, "mask": mask}, labels

    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 16)
                                 if num_parallel_reads == tf.data.AUTOTUNE else num_parallel_reads)
    if take is not None:
        ds = ds.take(take)
    return ds.batch(batch).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _pipeline_dataset(files: list[str], options: dict, sizes: dict) -> tf.data.Dataset:
    options = dict(options)
    if options.pop("plain", False):
        return plain_batched_reader(files, sizes["batch"], options["num_parallel_reads"], sizes["take"])
    return make_dataset(files, AUDIOSET, sizes["batch"], take=sizes["take"], **options)


def _timed_pass(dataset: tf.data.Dataset) -> tuple[int, int, float]:
    """One full pass (a new iterator, so its start-up counts) -> (records, batches, seconds)."""
    records = batches = 0
    start = time.perf_counter()
    for inputs, _labels in dataset:
        records += int(inputs["frames"].shape[0])
        batches += 1
    return records, batches, time.perf_counter() - start


def bench_pipelines(files: list[str], names: list[str], sizes: dict) -> dict:
    """records/s of each setting: each dataset is built once (timed apart), warmed up, then the
    settings take turns for the timed passes."""
    datasets, build_seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        datasets[name] = _pipeline_dataset(files, PIPELINES[name], sizes)
        build_seconds[name] = time.perf_counter() - start
        warm = iter(datasets[name])
        for _ in range(sizes["pipeline_warmup"]):
            if next(warm, None) is None:
                break
        del warm
    passes = {name: [] for name in names}
    for _ in range(sizes["pipeline_repeats"]):
        for name in names:
            passes[name].append(_timed_pass(datasets[name]))
    rows = {}
    for name in names:
        records, batches, _ = passes[name][0]
        seconds = statistics.median(p[2] for p in passes[name])
        reads = PIPELINES[name]["num_parallel_reads"]
        rows[name] = {
            "reader": "plain batched reader" if PIPELINES[name].get("plain") else "kdzoo.data.make_dataset",
            "batch": sizes["batch"],
            "num_parallel_reads": "AUTOTUNE" if reads == tf.data.AUTOTUNE else reads,
            "cache": PIPELINES[name]["cache"],
            "take": sizes["take"],
            "warmup_batches": sizes["pipeline_warmup"],
            "records": records,
            "batches": batches,
            "build_seconds": build_seconds[name],
            "pass_seconds": [p[2] for p in passes[name]],
            "seconds": seconds,
            "records_per_s": records / seconds,
        }
    return rows


# ----------------------------------------------------------------------------- matmul reference
def bench_matmul(n: int, repeats: int, seed: int) -> dict:
    """FLOP/s of an n x n float32 matmul in a tf.function (median over `repeats` timed calls).

    On a GPU one call chains `inner` dependent matmuls so that launch overhead does not
    dominate; on a CPU one call is one matmul.
    """
    gpu = bool(tf.config.list_physical_devices("GPU"))
    inner = 20 if gpu else 1
    rng = np.random.default_rng(seed)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
    b = tf.constant((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32))

    @tf.function
    def chain(x, w):
        for _ in range(inner):
            x = tf.matmul(x, w)
        return tf.reduce_sum(x[:1, :1])  # a scalar to copy back, which waits for the device

    chain(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        chain(a, b).numpy()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops = 2 * n**3 * inner
    return {
        "size": n,
        "dtype": "float32",
        "matmuls_per_call": inner,
        "tensor_float_32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "repeats": repeats,
        "median_s_per_call": seconds,
        "flop_per_s": flops / seconds,
    }


# ----------------------------------------------------------------------------- (b) training
def synthetic_batch(batch: int, seed: int):
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((batch, AUDIOSET.max_frames, AUDIOSET.feature_size), dtype=np.float32)
    labels = (rng.random((batch, AUDIOSET.num_classes)) < 0.005).astype(np.float32)
    labels[np.arange(batch), rng.integers(0, AUDIOSET.num_classes, batch)] = 1.0
    inputs = {"frames": tf.constant(frames), "mask": tf.ones((batch, AUDIOSET.max_frames), tf.float32)}
    return tf.data.Dataset.from_tensors((inputs, tf.constant(labels))).repeat()


def bench_training(make_distiller, step_flops: int, sizes: dict, learning_rate: float, seed: int) -> dict:
    """videos/s of `fit` on one repeated in-memory batch (median over repeats of one fit each)."""
    keras.utils.set_random_seed(seed)
    distiller = make_distiller()
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate))
    data = synthetic_batch(sizes["train_batch"], seed)
    # The first fit traces and compiles the train step; later fits reuse it.
    distiller.fit(data, epochs=1, steps_per_epoch=sizes["train_warmup"], shuffle=False, verbose=0)
    times = []
    for _ in range(sizes["train_repeats"]):
        start = time.perf_counter()
        distiller.fit(data, epochs=1, steps_per_epoch=sizes["train_steps"], shuffle=False, verbose=0)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    videos_per_s = sizes["train_batch"] * sizes["train_steps"] / seconds
    return {
        "batch": sizes["train_batch"],
        "steps_per_fit": sizes["train_steps"],
        "warmup_steps": sizes["train_warmup"],
        "repeats": sizes["train_repeats"],
        "median_fit_seconds": seconds,
        "fit_seconds": times,
        "jit_compile": bool(distiller.jit_compile),
        "videos_per_s": videos_per_s,
        "train_flops_per_video": step_flops,
        "achieved_flop_per_s": step_flops * videos_per_s,
    }


def _display_path(path: pathlib.Path) -> str:
    """`path` relative to the repository when it lies inside it."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def training_benchmarks(k: int, sizes: dict, seed: int, config_path: pathlib.Path = ZOO_CONFIG) -> dict:
    config = ZooConfig.from_file(config_path)
    lr = float(config.training["learning_rate"])
    teacher_config = config.model_config("teacher")
    student_config = config.model_config("student", k)
    f_t = profiling.flops(build_model(teacher_config), config.spec.max_frames)
    f_s = profiling.flops(build_model(student_config), k)
    out = {
        "zoo_config": _display_path(config_path),
        "teacher_frames": config.spec.max_frames,
        "student_frames": k,
        "teacher_forward_flops_per_video": f_t,
        "student_forward_flops_per_video": f_s,
        "flops_convention": (
            "analytic forward FLOPs per video (kdzoo.profiling.flops, multiply-add = 2); "
            "forward + backward = 3x forward; frozen teacher = 1x forward"
        ),
    }

    def teacher_alone():
        return Distiller(None, build_model(teacher_config), k=None, metric_capacity=1024)

    def distillation():
        return Distiller(
            build_model(teacher_config), build_model(student_config), k=k, sampler=config.sampler,
            seed=int(config.training["seed"]), metric_capacity=1024, **config.distillation,
        )

    out["teacher"] = bench_training(teacher_alone, 3 * f_t, sizes, lr, seed)
    out["distillation"] = bench_training(distillation, f_t + 3 * f_s, sizes, lr, seed)
    out["distillation"]["mode"] = config.distillation.get("mode", "serial")
    return out


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (a smoke test in seconds; the numbers mean nothing)")
    parser.add_argument("--parts", nargs="+", default=["pipeline", "training"], choices=["pipeline", "training"])
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=list(PIPELINES))
    parser.add_argument("--batch", type=int, default=None, help="pipeline batch size (default 256)")
    parser.add_argument("--train-batch", type=int, default=None, help="training batch size (default 256)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed steps per fit (default 50)")
    parser.add_argument("--train-repeats", type=int, default=None, help="timed fits (default 3)")
    parser.add_argument("--k", type=int, default=2, help="the student's frame count")
    parser.add_argument("--config", type=pathlib.Path, default=ZOO_CONFIG, help="the zoo config of the pair")
    parser.add_argument("--matmul-size", type=int, default=None, help="default 2048")
    parser.add_argument("--matmul-repeats", type=int, default=None, help="default 10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", "--output", dest="output", type=pathlib.Path, default=None,
                        help="result file (default: benchmarks/results/<cpu|gpu>/throughput.json)")
    args = parser.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    for key in ("batch", "train_batch", "train_steps", "train_repeats", "matmul_size", "matmul_repeats"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    output = args.output or default_output("throughput.json")
    result = {
        **environment(),
        "command": "python " + " ".join(["benchmarks/bench_throughput.py", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "sizes": sizes,
    }
    start = time.perf_counter()

    if "pipeline" in args.parts:
        files = list_files(f"{str(args.data_dir).rstrip('/')}/{TRAIN_PATTERN}")
        result["pipeline"] = {"files": files, "page_cache_bytes_read": warm_page_cache(files),
                              "load_average_before": list(os.getloadavg())}
        rows = bench_pipelines(files, args.pipelines, sizes)
        result["pipeline"]["settings"] = rows
        result["pipeline"]["load_average_after"] = list(os.getloadavg())
        for name, row in rows.items():
            print(f"pipeline {name:>20}: {row['records_per_s']:10.0f} records/s "
                  f"({row['records']} records, median of {len(row['pass_seconds'])} passes: "
                  f"{row['seconds']:.2f} s)", flush=True)
        kdzoo_name, plain_name = READER_RATIO
        if kdzoo_name in rows and plain_name in rows:
            ratio = rows[kdzoo_name]["records_per_s"] / rows[plain_name]["records_per_s"]
            result["pipeline"]["reader_ratio"] = {
                "kdzoo": kdzoo_name, "plain": plain_name, "value": ratio, "target": READER_RATIO_TARGET,
                "met": ratio >= READER_RATIO_TARGET,
            }
            print(f"reader ratio kdzoo/plain: {ratio:.3f} (target >= {READER_RATIO_TARGET})", flush=True)

    if "training" in args.parts:
        matmul = bench_matmul(sizes["matmul_size"], sizes["matmul_repeats"], args.seed)
        result["matmul"] = matmul
        print(f"matmul {matmul['size']}x{matmul['size']} float32: {matmul['flop_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
        training = training_benchmarks(args.k, sizes, args.seed, args.config)
        for role in ("teacher", "distillation"):
            row = training[role]
            row["fraction_of_matmul_flop_per_s"] = row["achieved_flop_per_s"] / matmul["flop_per_s"]
            print(f"train {role:>12}: {row['videos_per_s']:10.0f} videos/s, "
                  f"{row['achieved_flop_per_s'] / 1e9:.3f} GFLOP/s "
                  f"({100 * row['fraction_of_matmul_flop_per_s']:.2f}% of matmul)", flush=True)
        result["training"] = training

    result["total_seconds"] = time.perf_counter() - start
    if output.exists() and set(args.parts) != {"pipeline", "training"}:
        # A partial run keeps the other part's results (and their command) from the file.
        previous = json.loads(output.read_text())
        kept = {key: previous[key] for key in ("pipeline", "matmul", "training") if key in previous
                and key not in result}
        if kept:
            earlier = previous.get("kept_from_previous_run", {})
            command = earlier.get("command") if set(kept) <= set(earlier.get("parts", ())) else None
            result["kept_from_previous_run"] = {"command": command or previous.get("command"), "parts": sorted(kept)}
            result.update(kept)
    write_result(output, result)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
