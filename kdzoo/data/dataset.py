"""The batched ``(inputs, labels)`` tf.data dataset over TFRecord files.

Records are read round-robin from the files, batched while still serialized,
and parsed a batch at a time (``kdzoo.data.records.parse_batch``: every check,
fused into one bool per batch, then decode, dequantise, pad and multi-hot on the
whole batch). Empty videos and
the other subset are dropped inside the parsed batches, which are then cut
to ``batch_size`` (``Dataset.rebatch``); shuffling, ``take`` and caching work
on single videos as before.

A bad record fails its whole batch inside the graph with a message that names
no record (no message is built on the fast path, and the batch mixes files). The dataset ``make_dataset`` returns
turns that failure into a ``DataError`` naming the file, the record and the
problem: iterating it directly does so, ``kdzoo.data.data_errors(dataset)``
does so around any other use (``model.fit``), and the Distiller's
fit/evaluate/predict do so for the datasets they are given. It finds the
record by re-checking the files one at a time (``kdzoo.data.validation``),
which only happens on the error path.
"""

from __future__ import annotations

import tensorflow as tf

from kdzoo import sampling
from kdzoo.data.errors import DataError, as_data_error
from kdzoo.data.files import resolve_files
from kdzoo.data.records import batch_parser
from kdzoo.data.spec import DatasetSpec, get_spec

__all__ = ["make_dataset", "pipeline_options", "VideoDataset", "SUBSETS"]

SUBSETS = ("train", "validation")
_SUBSET_BUCKETS = 10_000
_OwnedIterator = type(iter(tf.data.Dataset.range(0)))  # tf.data's eager iterator class


def pipeline_options(autotune: bool = False) -> tf.data.Options:
    """The ``tf.data.Options`` `make_dataset` applies unless given others.

    tf.data's autotuner is off by default. With it on, dropping an epoch's iterator (Keras
    does so after every epoch, for training and for validation) often stalls for seconds,
    and the stalls are gone with it off: on a 2-core CPU an H-RNN student's epoch took 10.5 s on average
    against 5.6 s with it off, in the same run (``benchmarks/bench_epoch_overhead.py``).
    With it off, ``AUTOTUNE`` parallelism means one call per core and ``prefetch`` keeps
    its own buffer tuning.
    """
    options = tf.data.Options()
    options.autotune.enabled = bool(autotune)
    return options


class _DataErrorIterator(_OwnedIterator):
    """tf.data's own iterator (so Keras can still pass it into a tf.function) whose
    eager ``next`` raises ``DataError`` for bad data."""

    def __init__(self, dataset: "VideoDataset"):
        super().__init__(dataset)
        self._locate = dataset.data_error

    def __next__(self):
        try:
            return super().__next__()
        except tf.errors.OutOfRangeError:
            raise StopIteration from None
        except tf.errors.OpError as e:
            raise self._locate(e) from e


class VideoDataset(tf.data.Dataset):
    """The dataset ``make_dataset`` returns: a plain ``tf.data.Dataset`` of
    ``(inputs, labels)`` batches that also knows its files and spec.

    Iterating it eagerly raises ``DataError`` (file, record, problem) for bad
    data; ``data_error(op_error)`` builds that error for other uses.
    Transformations (``map``, ``take``, ...) return ordinary datasets.
    """

    def __init__(self, dataset: tf.data.Dataset, files: list[str], spec: DatasetSpec):
        self._dataset = dataset
        self.files = list(files)
        self.spec = spec
        super().__init__(tf.data.experimental.to_variant(dataset))

    def _inputs(self):
        return [self._dataset]

    @property
    def element_spec(self):
        return self._dataset.element_spec

    def __iter__(self):
        if tf.executing_eagerly() and not tf.inside_function():
            return _DataErrorIterator(self)
        return super().__iter__()

    def data_error(self, error: tf.errors.OpError) -> DataError:
        """The DataError for ``error`` raised while reading: the first bad record of the files,
        found by checking them one at a time, else the cleaned TF message."""
        from kdzoo.data.validation import first_problem  # validation imports this module's neighbours

        if not isinstance(error, (tf.errors.DataLossError, tf.errors.NotFoundError)):
            problem = first_problem(self.files, self.spec)
            if problem is not None:
                return DataError(str(problem), file=problem.file, record=problem.record)
        return as_data_error(error, self.files)


def _read_files(files: list[str], shuffle: bool, seed, num_parallel_reads) -> tf.data.Dataset:
    """Serialized records, round-robin over the files (one record of each in turn)."""
    fds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and len(files) > 1:
        fds = fds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if num_parallel_reads == tf.data.AUTOTUNE:
        cycle = min(len(files), 16)
    else:
        cycle = max(1, min(len(files), int(num_parallel_reads)))
    return fds.interleave(tf.data.TFRecordDataset, cycle_length=cycle, block_length=1,
                          num_parallel_calls=num_parallel_reads, deterministic=not shuffle)


def _in_subset(video_id, subset: str, validation_fraction: float):
    """A video is in the validation subset when the hash of its id falls below the fraction."""
    bucket = tf.strings.to_hash_bucket_fast(video_id, _SUBSET_BUCKETS)
    in_validation = bucket < int(round(validation_fraction * _SUBSET_BUCKETS))
    return in_validation if subset == "validation" else tf.logical_not(in_validation)


_KEEP = ("frames", "mask", "labels", "id")


@tf.autograph.experimental.do_not_convert
def _keep_videos(batch, subset, validation_fraction):
    """Drop the empty videos (and those outside ``subset``) of a parsed batch."""
    keep = batch["length"] > 0
    if subset is not None:
        keep = keep & _in_subset(batch["id"], subset, validation_fraction)
    return {k: tf.boolean_mask(batch[k], keep) for k in _KEEP}


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
    options: tf.data.Options | None = None,
) -> VideoDataset:
    """Batched ``(inputs, labels)`` dataset.

    inputs: {"frames": float32 (B, max_frames, D) zero-padded, "mask": float32
    (B, max_frames)}, plus "student_frames" (B, k, D) / "student_mask" (B, k)
    when ``k`` is given (picked by ``kdzoo.sampling`` with ``sampler``),
    plus "id" (B,) strings when ``include_ids``.  labels: float32 (B, num_classes).

    ``files``: a glob, a comma-separated string of globs, or a list of paths
    (read in the given order, e.g. one worker's shard). ``spec``: anything
    ``kdzoo.data.get_spec`` accepts (a preset name, a DatasetSpec, a dict or
    a YAML/JSON spec file).

    ``subset="train"``/``"validation"`` splits the files into two disjoint parts
    by a hash of each video id (``validation_fraction`` of the ids go to
    "validation"): the split is the same on every run and every machine.

    Videos with 0 frames are skipped.  ``take`` keeps the first N (non-empty)
    videos; ``cache`` is True (memory) or a file path; ``repeat`` is True
    (forever) or a count.  The student's frames come from
    `kdzoo.sampling.sample_frames` and its seed rule: with ``fresh_seeds=True``
    batch n draws with ``(seed, n)`` (a fresh seed per run when ``seed=None``);
    otherwise with ``(seed or the default, 0)``, the same frames on every run.  Order is
    deterministic when ``shuffle=False``. ``options`` (``tf.data.Options``)
    are applied to the result; the default is `pipeline_options()` (tf.data's
    autotuner off).

    A bad record raises ``DataError`` naming the file, the record and the
    problem when the dataset is iterated (see the module docstring).
    """
    spec = get_spec(spec)
    files = resolve_files(files)
    if subset not in (None, *SUBSETS):
        raise ValueError(f"Unknown subset {subset!r}. Expected None or one of {SUBSETS}.")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}.")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if k is not None:
        k = sampling.check_k(k, sampler)

    parse = batch_parser(spec)
    ds = _read_files(files, shuffle, seed, num_parallel_reads).batch(batch_size)
    ds = ds.map(lambda records: _keep_videos(parse(records), subset, validation_fraction),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    per_video = shuffle or take is not None
    if per_video:
        ds = ds.unbatch()
        if take is not None:
            ds = ds.take(int(take))
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat is True:
        ds = ds.repeat()
    elif repeat:
        ds = ds.repeat(int(repeat))
    if per_video:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    else:
        ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)

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

    ds = ds.map(split).prefetch(tf.data.AUTOTUNE)
    ds = ds.with_options(pipeline_options() if options is None else options)
    return VideoDataset(ds, files, spec)
