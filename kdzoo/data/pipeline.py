"""tf.data input pipeline for YouTube-8M and AudioSet TFRecords.

All file I/O goes through ``tf.io.gfile`` / ``tf.data.TFRecordDataset``, so local
paths, globs and ``gs://`` work; other schemes (s3://, hdfs://, ...) need the
``kdzoo[io]`` extra (tensorflow-io).

Record handling:

* Frame-level records (``tf.train.SequenceExample``): each feature in
  ``spec.features`` is a feature list of ``width``-byte uint8 strings, one per
  frame.  Features are decoded, checked, dequantised (``spec.dequantize``) and
  concatenated along the last axis in spec order.  Videos longer than
  ``spec.max_frames`` keep their first ``max_frames`` frames.
* Video-level records (``tf.train.Example``): each feature is ``width`` floats;
  the video becomes one frame of shape (1, D).  No dequantisation.
* Labels: the int64 list under ``spec.label_key`` becomes a multi-hot float32
  vector; every label must satisfy 0 <= label < num_classes.  A present but
  empty list gives all zeros; a missing key is an error (use
  ``label_key=None`` for unlabelled data).
* Videos with 0 frames (feature lists present but empty) are skipped by
  ``make_dataset`` (filtered out, never a crash); ``validate_records`` counts
  them.  A *missing* feature list is an error, not an empty video.

Errors name the file, the record index and the problem.  In the tf.data graph
every record travels with its file name and index, parse errors carry them as
the example name and the checks (``tf.debugging.Assert``) put them in their
messages.  TFRecord framing errors (truncated / corrupted files, DataLossError)
do not carry a file name in TF; wrap iteration in ``data_errors(files)`` (or use
``iterate``) to get a ``DataError`` that locates the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kdzoo import sampling
from kdzoo.data.errors import DataError, clean_tf_message, data_errors
from kdzoo.data.quantization import dequantize as _dequantize
from kdzoo.data.spec import DatasetSpec, get_spec

__all__ = [
    "list_files",
    "parse_example",
    "make_dataset",
    "count_records",
    "validate_records",
    "ValidationReport",
    "Problem",
]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_NATIVE_SCHEMES = ("", "file", "gs")

IO_EXTRA_MESSAGE = (
    "Reading {scheme}:// paths ({pattern}) needs the kdzoo[io] extra (pip install 'kdzoo[io]', i.e. "
    "tensorflow-io), which registers the {scheme} file system with TensorFlow. Note that tensorflow-io 0.37 "
    "does not load on TensorFlow >= 2.17; copy the data locally or to gs:// if it cannot be installed."
)


# --------------------------------------------------------------------------- files


def _ensure_filesystem(pattern: str) -> None:
    m = _SCHEME.match(pattern)
    scheme = m.group(1).lower() if m else ""
    if scheme in _NATIVE_SCHEMES:
        return
    try:
        import tensorflow_io  # noqa: F401
    except Exception as e:  # ImportError, or a failure to load its ops on this TF
        raise ImportError(IO_EXTRA_MESSAGE.format(scheme=scheme, pattern=pattern)) from e


def list_files(pattern: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Sorted, de-duplicated files matching the glob(s).

    ``pattern``: a path/glob, a comma-separated string of them, or a sequence.
    Raises FileNotFoundError naming any pattern that matches no file.
    """
    if isinstance(pattern, (str, os.PathLike)):
        patterns = [p.strip() for p in os.fspath(pattern).split(",")]
    else:
        patterns = [os.fspath(p).strip() for p in pattern]
    patterns = [p for p in patterns if p]
    if not patterns:
        raise FileNotFoundError(f"No file pattern given (got {pattern!r}).")
    found: set[str] = set()
    for p in patterns:
        _ensure_filesystem(p)
        try:
            matches = tf.io.gfile.glob(p)
        except tf.errors.NotFoundError:
            matches = []
        files = [f for f in matches if not tf.io.gfile.isdir(f)]
        if not files:
            extra = " (only directories matched; use e.g. dir/*.tfrecord)" if matches else ""
            raise FileNotFoundError(f"No files match the pattern {p!r}{extra}.")
        found.update(files)
    return sorted(found)


def _as_files(files) -> list[str]:
    if isinstance(files, (list, tuple)) and files and all(isinstance(f, str) and not any(
            c in f for c in "*?[,") for f in files):
        missing = [f for f in files if not tf.io.gfile.exists(f)]
        if missing:
            raise FileNotFoundError(f"No files match the pattern {missing[0]!r}.")
        return list(files)
    return list_files(files)


# --------------------------------------------------------------------------- parsing


def _has_key(serialized, key: str, where: str):
    """Whether the record has ``key`` in its context/features or feature_lists (graph op)."""
    src = "local://"
    if where == "feature_lists":
        msg_type, field, entry_type, map_field = (
            "tensorflow.SequenceExample", "feature_lists", "tensorflow.FeatureLists.FeatureListEntry", "feature_list")
        container = "tensorflow.FeatureLists"
    elif where == "context":
        msg_type, field, entry_type, map_field = (
            "tensorflow.SequenceExample", "context", "tensorflow.Features.FeatureEntry", "feature")
        container = "tensorflow.Features"
    else:  # Example
        msg_type, field, entry_type, map_field = (
            "tensorflow.Example", "features", "tensorflow.Features.FeatureEntry", "feature")
        container = "tensorflow.Features"
    _, (inner,) = tf.io.decode_proto(tf.reshape(serialized, [1]), msg_type, [field], [tf.string],
                                     descriptor_source=src)
    inner = tf.concat([tf.reshape(inner, [-1]), [""]], 0)[:1]
    _, (entries,) = tf.io.decode_proto(inner, container, [map_field], [tf.string], descriptor_source=src)
    entries = tf.reshape(entries, [-1])
    _, (keys,) = tf.io.decode_proto(entries, entry_type, ["key"], [tf.string], descriptor_source=src)
    return tf.reduce_any(tf.equal(tf.reshape(keys, [-1]), key))


def _record_name(filename, record_index):
    if filename is None:
        filename = "<unknown file>"
    filename = tf.convert_to_tensor(filename, tf.string)
    if record_index is None:
        return filename
    return tf.strings.join([filename, " (record ", tf.strings.as_string(record_index), ")"])


def _assert(cond, make_message):
    """tf.debugging.Assert whose message is only built when ``cond`` is False."""
    msg = tf.cond(cond, lambda: tf.constant(""), make_message)
    return tf.debugging.Assert(cond, [msg], summarize=1)


def _str(x):
    return tf.strings.as_string(x)


def _labels(serialized, values, spec: DatasetSpec, name, where):
    checks = []
    if spec.label_key is None:
        return tf.zeros([spec.num_classes], tf.float32), checks
    c = spec.num_classes
    in_range = tf.reduce_all((values >= 0) & (values < c))

    def bad_label():
        bad = tf.boolean_mask(values, (values < 0) | (values >= c))
        return tf.strings.join([name, ": label ", _str(bad[0]), " is out of range for ", str(c),
                                " classes (need 0 <= label < num_classes = ", str(c), ")"])

    checks.append(_assert(in_range, bad_label))
    present = tf.cond(tf.size(values) > 0, lambda: tf.constant(True),
                      lambda: _has_key(serialized, spec.label_key, where))
    checks.append(_assert(present, lambda: tf.strings.join(
        [name, ": missing key: label list ", repr(spec.label_key), " not found"])))
    with tf.control_dependencies(checks):
        safe = tf.boolean_mask(values, (values >= 0) & (values < c))
        multi_hot = tf.minimum(tf.reduce_sum(tf.one_hot(safe, c, dtype=tf.float32), axis=0), 1.0)
    return tf.reshape(multi_hot, [c]), checks


def _video_id(serialized, values, spec: DatasetSpec, name, where):
    n = tf.size(values)

    def bad():
        return tf.cond(
            tf.logical_and(tf.equal(n, 0), tf.logical_not(_has_key(serialized, spec.id_key, where))),
            lambda: tf.strings.join([name, ": missing key: id ", repr(spec.id_key), " not found"]),
            lambda: tf.strings.join([name, ": id ", repr(spec.id_key), " must hold exactly one value, found ",
                                     _str(n)]))

    check = _assert(tf.equal(n, 1), bad)
    with tf.control_dependencies([check]):
        return tf.reshape(tf.concat([values, [""]], 0)[0], []), [check]


def _parse_frame_level(serialized, spec: DatasetSpec, name):
    # RaggedFeature, not VarLenFeature: TF 2.21's sequence parser segfaults on some corrupt
    # records (a bytes value overrunning its message) when a context feature is a VarLenFeature.
    ctx_spec = {spec.id_key: tf.io.RaggedFeature(tf.string)}
    if spec.label_key is not None:
        ctx_spec[spec.label_key] = tf.io.RaggedFeature(tf.int64)
    seq_spec = {f.name: tf.io.FixedLenSequenceFeature([], tf.string) for f in spec.features}
    ctx, seq = tf.io.parse_single_sequence_example(serialized, ctx_spec, seq_spec, example_name=name)

    parts, checks = [], []
    first = spec.features[0]
    n0 = tf.shape(seq[first.name])[0]
    for f in spec.features:
        raw = seq[f.name]
        n = tf.shape(raw)[0]
        nbytes = tf.strings.length(raw)
        ok_width = tf.reduce_all(tf.equal(nbytes, f.width))

        def bad_width(raw=raw, nbytes=nbytes, f=f):
            bad = tf.where(tf.not_equal(nbytes, f.width))[:, 0]
            return tf.strings.join([name, ": wrong feature width: feature ", repr(f.name), " frame ",
                                    _str(bad[0]), " has ", _str(tf.gather(nbytes, bad[0])),
                                    " bytes, expected ", str(f.width)])

        checks.append(_assert(ok_width, bad_width))
        if f is not first:
            checks.append(_assert(tf.equal(n, n0), lambda f=f, n=n: tf.strings.join(
                [name, ": frame counts differ: feature ", repr(f.name), " has ", _str(n), " frames but ",
                 repr(first.name), " has ", _str(n0)])))
        with tf.control_dependencies(checks):
            q = tf.reshape(tf.io.decode_raw(raw, tf.uint8), [-1, f.width])
        parts.append(_dequantize(q, spec.dequantize))

    labels, label_checks = _labels(serialized, ctx[spec.label_key] if spec.label_key else None,
                                   spec, name, "context")
    video_id, id_checks = _video_id(serialized, ctx[spec.id_key], spec, name, "context")
    with tf.control_dependencies(checks + label_checks + id_checks):
        frames = tf.concat(parts, axis=1)[: spec.max_frames]
        frames = tf.ensure_shape(frames, [None, spec.feature_size])
        length = tf.minimum(n0, spec.max_frames)
    return {"frames": frames, "length": tf.cast(length, tf.int32), "labels": labels, "id": video_id}


def _parse_video_level(serialized, spec: DatasetSpec, name):
    feats = {spec.id_key: tf.io.VarLenFeature(tf.string)}
    if spec.label_key is not None:
        feats[spec.label_key] = tf.io.VarLenFeature(tf.int64)
    for f in spec.features:
        feats[f.name] = tf.io.VarLenFeature(tf.float32)
    ex = tf.io.parse_single_example(serialized, feats, example_names=name)
    parts, checks = [], []
    for f in spec.features:
        vals = ex[f.name].values
        n = tf.size(vals)

        def bad(n=n, f=f):
            return tf.cond(
                tf.logical_and(tf.equal(n, 0), tf.logical_not(_has_key(serialized, f.name, "example"))),
                lambda: tf.strings.join([name, ": missing key: feature ", repr(f.name), " not found"]),
                lambda: tf.strings.join([name, ": wrong feature width: feature ", repr(f.name), " has ", _str(n),
                                         " values, expected ", str(f.width)]))

        checks.append(_assert(tf.equal(n, f.width), bad))
        with tf.control_dependencies(checks):
            parts.append(tf.reshape(vals, [1, f.width]))
    labels, label_checks = _labels(serialized, ex[spec.label_key].values if spec.label_key else None,
                                   spec, name, "example")
    video_id, id_checks = _video_id(serialized, ex[spec.id_key].values, spec, name, "example")
    with tf.control_dependencies(checks + label_checks + id_checks):
        frames = tf.concat(parts, axis=1)
    return {"frames": frames, "length": tf.constant(1, tf.int32), "labels": labels, "id": video_id}


def parse_example(serialized, spec, filename=None, record_index=None) -> dict:
    """Parse one serialized record.

    Returns {"frames": float32 (T, D) with T = min(true length, max_frames),
    "length": int32 T, "labels": float32 multi-hot (num_classes,), "id": string}.
    ``filename`` / ``record_index`` (strings/ints or tensors) only go into error
    messages.  Graph-compatible; raises tf.errors.InvalidArgumentError on bad
    records with a message naming the file and the problem.
    """
    spec = get_spec(spec)
    name = _record_name(filename, record_index)
    serialized = tf.convert_to_tensor(serialized, tf.string)
    if spec.frame_level:
        return _parse_frame_level(serialized, spec, name)
    return _parse_video_level(serialized, spec, name)


# --------------------------------------------------------------------------- dataset


def _pad(example, spec: DatasetSpec):
    t = spec.max_frames
    frames = example["frames"]
    frames = tf.pad(frames, [[0, t - tf.shape(frames)[0]], [0, 0]])
    frames = tf.ensure_shape(frames, [t, spec.feature_size])
    mask = tf.sequence_mask(example["length"], t, dtype=tf.float32)
    return {"frames": frames, "mask": mask, "labels": example["labels"], "id": example["id"]}


def _read_files(files: list[str], shuffle: bool, seed, num_parallel_reads):
    fds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and len(files) > 1:
        fds = fds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(f):
        return tf.data.TFRecordDataset(f).enumerate().map(lambda i, r: (f, i, r))

    if num_parallel_reads == tf.data.AUTOTUNE:
        cycle = min(len(files), 16)
    else:
        cycle = max(1, min(len(files), int(num_parallel_reads)))
    return fds.interleave(read, cycle_length=cycle, block_length=1, num_parallel_calls=num_parallel_reads,
                          deterministic=not shuffle)


SUBSETS = ("train", "validation")
_SUBSET_BUCKETS = 10_000


def _in_subset(video_id, subset: str, validation_fraction: float):
    """A video is in the validation subset when the hash of its id falls below the fraction."""
    bucket = tf.strings.to_hash_bucket_fast(video_id, _SUBSET_BUCKETS)
    in_validation = bucket < int(round(validation_fraction * _SUBSET_BUCKETS))
    return in_validation if subset == "validation" else tf.logical_not(in_validation)


def make_dataset(
    files,
    spec,
    batch_size: int = 64,
    *,
    shuffle: bool = False,
    shuffle_buffer: int = 4096,
    seed: int | None = None,
    repeat: bool | int = False,
    drop_remainder: bool = False,
    k: int | None = None,
    sampler: str = "uniform",
    fresh_seeds: bool = False,
    include_ids: bool = False,
    num_parallel_reads: int = tf.data.AUTOTUNE,
    cache: bool | str = False,
    take: int | None = None,
    subset: str | None = None,
    validation_fraction: float = 0.1,
) -> tf.data.Dataset:
    """Batched ``(inputs, labels)`` dataset.

    inputs: {"frames": float32 (B, max_frames, D) zero-padded, "mask": float32
    (B, max_frames)}, plus "student_frames" (B, k, D) / "student_mask" (B, k)
    when ``k`` is given (picked by ``kdzoo.sampling`` with ``sampler``),
    plus "id" (B,) strings when ``include_ids``.  labels: float32 (B, num_classes).

    ``subset="train"``/``"validation"`` splits the files into two disjoint parts
    by a hash of each video id (``validation_fraction`` of the ids go to
    "validation"): the split is the same on every run and every machine.

    Videos with 0 frames are skipped.  ``take`` keeps the first N (non-empty)
    videos; ``cache`` is True (memory) or a file path; ``repeat`` is True
    (forever) or a count.  The student's frames come from
    `kdzoo.sampling.sample_frames` and its seed rule: with ``fresh_seeds=True``
    batch n draws with ``(seed, n)`` (a fresh seed per run when ``seed=None``);
    otherwise with ``(seed or the default, 0)``, the same frames on every run.  Order is
    deterministic when ``shuffle=False``.  Wrap iteration in
    ``data_errors(files)`` for DataError messages.
    """
    spec = get_spec(spec)
    files = _as_files(files)
    if subset not in (None, *SUBSETS):
        raise ValueError(f"Unknown subset {subset!r}. Expected None or one of {SUBSETS}.")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}.")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if k is not None:
        k = sampling.check_k(k, sampler)

    ds = _read_files(files, shuffle, seed, num_parallel_reads)
    ds = ds.map(lambda f, i, r: parse_example(r, spec, f, i), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=not shuffle)
    ds = ds.filter(lambda ex: ex["length"] > 0)
    if subset is not None:
        ds = ds.filter(lambda ex: _in_subset(ex["id"], subset, validation_fraction))
    if take is not None:
        ds = ds.take(int(take))
    ds = ds.map(lambda ex: _pad(ex, spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat is True:
        ds = ds.repeat()
    elif repeat:
        ds = ds.repeat(int(repeat))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    if k is not None:
        base = sampling.base_seed(seed, fresh=fresh_seeds)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.counter()))

        def add_student(batch, step):
            fk, mk = sampling.sample_frames(batch["frames"], batch["mask"], k, sampler, seed=base,
                                            step=step if fresh_seeds else None)
            return {**batch, "student_frames": fk, "student_mask": mk}

        ds = ds.map(add_student, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)

    def split(batch):
        inputs = {key: v for key, v in batch.items() if key not in ("labels", "id")}
        if include_ids:
            inputs["id"] = batch["id"]
        return inputs, batch["labels"]

    return ds.map(split).prefetch(tf.data.AUTOTUNE)


def count_records(files) -> int:
    """Number of records in the file(s) (a glob, list or comma-separated string)."""
    files = _as_files(files)
    ds = tf.data.TFRecordDataset(files)
    with data_errors(files):
        return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


# --------------------------------------------------------------------------- validation


@dataclasses.dataclass
class Problem:
    file: str
    record: int | None
    message: str

    def __str__(self):
        return self.message if self.file in self.message else f"{self.file} (record {self.record}): {self.message}"


@dataclasses.dataclass
class ValidationReport:
    """Result of ``validate_records``.

    records: records read; valid: parsed and non-empty; empty: 0-frame videos
    (skipped by make_dataset); truncated: videos longer than max_frames;
    problems: one entry per bad record / unreadable file.
    """

    files: list[str]
    records: int = 0
    valid: int = 0
    empty: int = 0
    truncated: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            p = self.problems[0]
            more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
            raise DataError(f"{p}{more}", file=p.file, record=p.record)

    def __str__(self):
        lines = [f"{len(self.files)} files, {self.records} records: {self.valid} valid, {self.empty} empty "
                 f"(skipped), {self.truncated} truncated to max_frames, {len(self.problems)} problems"]
        lines += [f"  {p}" for p in self.problems[:20]]
        return "\n".join(lines)


def validate_records(files, spec, max_records: int | None = None, *, raise_on_error: bool = False
                     ) -> ValidationReport:
    """Eagerly parse every record (the same ``parse_example`` as the pipeline).

    Returns a ValidationReport; with ``raise_on_error`` the first problem is
    raised as a DataError.  ``max_records`` caps the total records read.
    """
    spec = get_spec(spec)
    files = _as_files(files)
    report = ValidationReport(files=files)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string),
                                  tf.TensorSpec([], tf.int64)])
    def parse(record, filename, index):
        out = parse_example(record, spec, filename, index)
        raw_len = out["length"]
        if spec.frame_level:
            # true (untruncated) length, for the 'truncated' count
            _, seq = tf.io.parse_single_sequence_example(
                record, sequence_features={spec.features[0].name: tf.io.FixedLenSequenceFeature([], tf.string)})
            raw_len = tf.shape(seq[spec.features[0].name])[0]
        return out["length"], raw_len

    def add(problem):
        report.problems.append(problem)
        if raise_on_error:
            report.raise_for_problems()

    for f in files:
        it = iter(tf.data.TFRecordDataset(f))
        index = 0
        while max_records is None or report.records < max_records:
            try:
                record = next(it)
            except StopIteration:
                break
            except tf.errors.OpError as e:
                kind = "corrupt or truncated TFRecord file" if isinstance(e, tf.errors.DataLossError) else "read error"
                add(Problem(f, index, f"{f}: {kind} after {index} good records ({clean_tf_message(e.message)})"))
                break
            report.records += 1
            try:
                length, raw_len = parse(record, tf.constant(f), tf.constant(index, tf.int64))
            except tf.errors.OpError as e:
                add(Problem(f, index, clean_tf_message(e.message)))
            else:
                if int(length) == 0:
                    report.empty += 1
                else:
                    report.valid += 1
                    report.truncated += int(raw_len) > spec.max_frames
            index += 1
    return report
