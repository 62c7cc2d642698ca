"""Parsing serialized records, a batch at a time, with every check of the record layout.

``parse_batch`` turns a batch of serialized records into padded, dense tensors
in a handful of batched TensorFlow ops (``tf.io.parse_sequence_example`` /
``tf.io.parse_example`` on the whole batch, then decode, dequantise, pad and
multi-hot). ``parse_example`` is the same function on a batch of one.

Record layout (``DatasetSpec``):

* Frame-level records (``tf.train.SequenceExample``): each feature in
  ``spec.features`` is a feature list with one entry per frame: a
  ``width``-byte string (``dtype="uint8"``, dequantised with
  ``spec.dequantize``) or a float list of ``width`` values
  (``dtype="float32"``, used as stored). Features are concatenated along the
  last axis in spec order. Videos longer than ``spec.max_frames`` keep their
  first ``max_frames`` frames.
* Video-level records (``tf.train.Example``): each feature is ``width`` floats;
  the video becomes one frame of shape (1, D).
* Labels: the int64 list under ``spec.label_key`` becomes a multi-hot float32
  vector; every label must satisfy 0 <= label < num_classes. A present but
  empty list gives all zeros; a missing key is an error (use
  ``label_key=None`` for unlabelled data).
* A video with 0 frames (feature lists present but empty) parses to
  ``length == 0``; a *missing* feature list is an error, not an empty video.

Every check runs on the whole batch. The reader's parser (``describe=False``)
fuses them into one bool per batch and builds no message; a failing batch is
re-parsed record by record with messages (``kdzoo.data.validation``), each
naming its record from ``names`` (e.g. ``"file.tfrecord (record 12)"``) and
saying what is wrong.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from kdzoo.data.quantization import dequantize as _dequantize
from kdzoo.data.spec import DatasetSpec, FeatureSpec, get_spec

__all__ = ["parse_batch", "parse_example", "record_names", "batch_parser"]

_DESCRIPTORS = "local://"
_WHERE = {  # record kind -> (message type, container field, container type, map field, entry type)
    "context": ("tensorflow.SequenceExample", "context", "tensorflow.Features", "feature",
                "tensorflow.Features.FeatureEntry"),
    "feature_lists": ("tensorflow.SequenceExample", "feature_lists", "tensorflow.FeatureLists", "feature_list",
                      "tensorflow.FeatureLists.FeatureListEntry"),
    "example": ("tensorflow.Example", "features", "tensorflow.Features", "feature",
                "tensorflow.Features.FeatureEntry"),
}


def record_names(filename, first_index, count):
    """``"<file> (record <i>)"`` for records ``first_index .. first_index + count - 1`` of one file: (count,)."""
    index = tf.cast(first_index, tf.int64) + tf.range(tf.cast(count, tf.int64))
    return tf.strings.join([filename, " (record ", tf.strings.as_string(index), ")"])


def _present_keys(serialized, keys, where: str):
    """bool (B, len(keys)): whether each record has each key in its context / feature_lists / features."""
    msg_type, field, container, map_field, entry_type = _WHERE[where]
    _, (inner,) = tf.io.decode_proto(serialized, msg_type, [field], [tf.string], descriptor_source=_DESCRIPTORS)
    inner = tf.concat([inner, tf.fill([tf.shape(serialized)[0], 1], "")], axis=1)[:, 0]
    _, (entries,) = tf.io.decode_proto(inner, container, [map_field], [tf.string], descriptor_source=_DESCRIPTORS)
    _, (found,) = tf.io.decode_proto(entries, entry_type, ["key"], [tf.string], descriptor_source=_DESCRIPTORS)
    return tf.stack([tf.reduce_any(tf.equal(found, key), axis=[1, 2]) for key in keys], axis=1)


def _str(x):
    return tf.strings.as_string(x)


def _at(values, index, default=0):
    """``values[index]``, or ``default`` when ``index`` is out of range (messages of rows that are fine)."""
    values = tf.concat([values, tf.constant([default], values.dtype)], axis=0)
    n = tf.shape(values, out_type=tf.int64)[0] - 1
    index = tf.cast(index, tf.int64)
    return tf.gather(values, tf.where((index >= 0) & (index < n), index, n))


def _first_true(mask):
    """Index of the first True of a bool vector, or its length when there is none."""
    return tf.concat([tf.where(mask)[:, 0], tf.shape(mask, out_type=tf.int64)], axis=0)[0]


# The message of a batch that fails its fused check (``describe=False``): the record-by-record
# re-parse with messages (`kdzoo.data.validation`) names the record and the problem.
BATCH_CHECK_FAILED = "a record of this batch failed the kdzoo record checks (kdzoo.data.validate_records names it)"


class _Checks:
    """The checks of one batch, asserted together.

    Each check is a bool (B,) of the records that pass it. With ``describe`` each
    also builds the message parts for its first failing record, and the batch fails
    with the message of the first failing record (its first failing check, in the
    order added). Without, the checks are fused into one bool and a failing batch
    says `BATCH_CHECK_FAILED`: no message op is built, so the parse graph is a
    fraction of the size and starts and runs faster.
    """

    def __init__(self, names, describe: bool = True):
        self.names = names
        self.describe = describe
        self.oks = []
        self.first_bad = []
        self.messages = []

    def require(self, ok, describe):
        """``ok``: bool (B,). ``describe(row)`` -> message parts (strings/tensors) for a failing ``row``;
        it must not fail for a ``row`` that passes (it is evaluated either way); only called
        when the checks describe their failures."""
        if not self.describe:
            self.oks.append(ok)
            return
        row = _first_true(tf.logical_not(ok))
        self.first_bad.append(row)
        self.messages.append(tf.strings.join(describe(row)))

    def dependencies(self):
        """The Assert op of all the checks: the parsed values depend on it."""
        if not self.describe:
            if not self.oks:
                return []
            return [tf.debugging.Assert(tf.reduce_all(tf.stack(self.oks)), [BATCH_CHECK_FAILED], summarize=1)]
        if not self.first_bad:
            return []
        first_bad = tf.stack(self.first_bad)
        which = tf.argmin(first_bad, output_type=tf.int64)  # argmin returns the first of equal minima
        row = first_bad[which]
        all_ok = tf.equal(row, tf.size(self.names, out_type=tf.int64))
        message = tf.strings.join([_at(self.names, row, ""), ": ", tf.gather(tf.stack(self.messages), which)])
        return [tf.debugging.Assert(all_ok, [message], summarize=1)]


def _row_ids(row_splits):
    """int64 (N,): the row of each of the N values of a ragged tensor with these int64 ``row_splits``."""
    positions = tf.range(row_splits[-1], dtype=tf.int64)
    return tf.searchsorted(row_splits[1:], positions, side="right", out_type=tf.int64)


def _segment_all(ok, segment_ids, num_segments):
    """bool (num_segments,): all of ``ok`` within each segment (True for empty segments)."""
    return tf.math.unsorted_segment_min(tf.cast(ok, tf.int32), segment_ids, num_segments) > 0


def _labels(values, present, spec: DatasetSpec, checks: _Checks):
    """values: int64 ragged (B, None), present: bool (B,) -> multi-hot float32 (B, num_classes)."""
    c = spec.num_classes
    flat = values.values
    rows = _row_ids(values.row_splits)
    flat_ok = (flat >= 0) & (flat < c)

    def out_of_range(row):
        bad = _first_true(tf.logical_not(flat_ok) & tf.equal(tf.cast(rows, tf.int64), row))
        return ["label ", _str(_at(flat, bad)), f" is out of range for {c} classes (need 0 <= label < "
                f"num_classes = {c})"]

    checks.require(_segment_all(flat_ok, rows, tf.size(values.row_splits, out_type=tf.int64) - 1), out_of_range)
    checks.require(present, lambda row: [f"missing key: label list {spec.label_key!r} not found"])
    keep = tf.where(flat_ok)[:, 0]
    index = tf.stack([tf.gather(tf.cast(rows, tf.int64), keep), tf.gather(flat, keep)], axis=1)
    counts = tf.scatter_nd(index, tf.ones_like(keep, tf.float32), [tf.size(values.row_splits, out_type=tf.int64) - 1, c])
    return tf.minimum(counts, 1.0)


def _video_id(values, present, spec: DatasetSpec, checks: _Checks):
    """values: string ragged (B, None), present: bool (B,) -> string (B,)."""
    n = values.row_lengths()
    checks.require(present, lambda row: [f"missing key: id {spec.id_key!r} not found"])
    checks.require(tf.equal(n, 1), lambda row: [f"id {spec.id_key!r} must hold exactly one value, found ",
                                                 _str(_at(n, row))])
    return values.to_tensor(default_value="", shape=[None, 1])[:, 0]


def _presence(serialized, where: str, nonempty: dict):
    """{key: bool (B,)}: rows that hold each key, given ``nonempty[key]`` (rows with values for it).

    The records are only searched for the keys (one batched decode) when some row
    of some key is empty: a missing key and an empty value list parse alike."""
    keys = list(nonempty)
    stacked = tf.stack([nonempty[k] for k in keys], axis=1)
    found = tf.cond(tf.reduce_all(stacked), lambda: stacked,
                    lambda: stacked | _present_keys(serialized, keys, where))
    return {k: found[:, i] for i, k in enumerate(keys)}


def _feature(raw, f: FeatureSpec, spec: DatasetSpec, checks: _Checks):
    """raw: ragged (B, frames, values) of one feature -> float32 (B, T, width), frame counts (B,)."""
    t = spec.max_frames
    frames_per_row = raw.row_lengths()  # (B,)
    values_per_frame = raw.values.row_lengths()  # (N,)
    frame_row = _row_ids(raw.row_splits)  # the record of each frame, (N,)
    frame_pos = tf.range(tf.size(frame_row, out_type=frame_row.dtype)) - tf.gather(raw.row_splits, frame_row)
    kept_splits = tf.concat([[0], tf.cumsum(tf.minimum(frames_per_row, t))], axis=0)
    num_rows = tf.size(raw.row_splits, out_type=tf.int64) - 1

    def require_frames(ok, counts, problem, what, expected):
        """Every frame ``ok``; else '<problem>feature F frame t has <counts[frame]> <what>, expected E'."""

        def describe(row):
            flat = _first_true(tf.logical_not(ok) & tf.equal(frame_row, row))
            return [f"{problem}feature {f.name!r} frame ", _str(_at(frame_pos, flat)), " has ",
                    _str(_at(counts, flat)), f" {what}, expected {expected}"]

        checks.require(_segment_all(ok, frame_row, num_rows), describe)

    if f.dtype == "uint8":
        require_frames(tf.equal(values_per_frame, 1), values_per_frame, "", "byte strings", 1)
        strings = raw.values.to_tensor(default_value="", shape=[None, 1])[:, 0]  # one per frame
        nbytes = tf.strings.length(strings)
        width_ok = tf.equal(nbytes, f.width)
        require_frames(width_ok, nbytes, "wrong feature width: ", "bytes", f.width)
        # Bad frames become zero bytes so that decoding cannot fail before the checks report.
        kept = tf.boolean_mask(tf.where(width_ok, strings, "\0" * f.width), frame_pos < t)
        values = _dequantize(tf.reshape(tf.io.decode_raw(kept, tf.uint8), [-1, f.width]), spec.dequantize)
    else:
        require_frames(tf.equal(values_per_frame, f.width), values_per_frame, "wrong feature width: ", "values",
                       f.width)
        values = tf.boolean_mask(raw.values.to_tensor(shape=[None, f.width]), frame_pos < t)
    dense = tf.RaggedTensor.from_row_splits(values, kept_splits, validate=False).to_tensor(
        shape=[None, t, f.width])
    return dense, frames_per_row


def _parse_frame_level(serialized, spec: DatasetSpec, names, checks: _Checks):
    # RaggedFeature, not VarLenFeature: TF 2.21's sequence parser segfaults on some corrupt
    # records (a bytes value overrunning its message) when a context feature is a VarLenFeature.
    ctx_spec = {spec.id_key: tf.io.RaggedFeature(tf.string, row_splits_dtype=tf.int64)}
    if spec.label_key is not None:
        ctx_spec[spec.label_key] = tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
    seq_spec = {f.name: tf.io.RaggedFeature(tf.string if f.dtype == "uint8" else tf.float32,
                                            row_splits_dtype=tf.int64) for f in spec.features}
    ctx, seq, _ = tf.io.parse_sequence_example(serialized, ctx_spec, seq_spec, example_names=names)

    parts = [_feature(seq[f.name], f, spec, checks) for f in spec.features]
    found = _presence(serialized, "feature_lists", {f.name: n > 0 for f, (_, n) in zip(spec.features, parts)})
    first, n0 = spec.features[0], parts[0][1]
    for f, (_, n) in zip(spec.features, parts):
        checks.require(found[f.name], lambda row, f=f: [f"missing key: feature list {f.name!r} not found"])
        if f is not first:
            checks.require(tf.equal(n, n0), lambda row, f=f, n=n: [
                f"frame counts differ: feature {f.name!r} has ", _str(_at(n, row)), " frames but ",
                f"{first.name!r} has ", _str(_at(n0, row))])
    labels, video_id = _context(ctx, serialized, "context", spec, checks)
    frames = tf.concat([dense for dense, _ in parts], axis=-1)
    return frames, tf.cast(n0, tf.int32), labels, video_id


def _context(ctx, serialized, where, spec: DatasetSpec, checks: _Checks):
    """Labels (B, C) and ids (B,) from the parsed context (or Example features)."""
    keys = [spec.id_key] + ([spec.label_key] if spec.label_key is not None else [])
    found = _presence(serialized, where, {key: ctx[key].row_lengths() > 0 for key in keys})
    if spec.label_key is None:
        labels = tf.zeros([tf.shape(serialized)[0], spec.num_classes], tf.float32)
    else:
        labels = _labels(ctx[spec.label_key], found[spec.label_key], spec, checks)
    return labels, _video_id(ctx[spec.id_key], found[spec.id_key], spec, checks)


def _parse_video_level(serialized, spec: DatasetSpec, names, checks: _Checks):
    feats = {spec.id_key: tf.io.RaggedFeature(tf.string, row_splits_dtype=tf.int64)}
    if spec.label_key is not None:
        feats[spec.label_key] = tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
    for f in spec.features:
        feats[f.name] = tf.io.RaggedFeature(tf.float32, row_splits_dtype=tf.int64)
    ex = tf.io.parse_example(serialized, feats, example_names=names)
    found = _presence(serialized, "example", {f.name: ex[f.name].row_lengths() > 0 for f in spec.features})
    for f in spec.features:
        n = ex[f.name].row_lengths()
        checks.require(found[f.name], lambda row, f=f: [f"missing key: feature {f.name!r} not found"])
        checks.require(tf.equal(n, f.width), lambda row, f=f, n=n: [
            f"wrong feature width: feature {f.name!r} has ", _str(_at(n, row)), f" values, expected {f.width}"])
    labels, video_id = _context(ex, serialized, "example", spec, checks)
    frames = tf.concat([ex[f.name].to_tensor(shape=[None, f.width])[:, None, :] for f in spec.features], axis=-1)
    return frames, tf.ones([tf.shape(serialized)[0]], tf.int32), labels, video_id


@tf.autograph.experimental.do_not_convert  # no Python control flow on tensors; converting is slow
def parse_batch(serialized, spec, names=None, *, describe: bool = True) -> dict:
    """Parse a batch of serialized records.

    Args:
      serialized: string (B,).
      spec: anything ``get_spec`` accepts.
      names: string (B,) naming each record in error messages (e.g. from
        ``record_names``); None names them ``"batch record <i>"``.
      describe: build the message of the first bad record. False: every check
        still runs, fused into one, and a bad batch fails with
        `BATCH_CHECK_FAILED` (the reader's fast path; `kdzoo.data.validation`
        re-parses with messages to name the record).

    Returns:
      {"frames": float32 (B, max_frames, D), zero-padded; "mask": float32
      (B, max_frames); "length": int32 (B,) frames kept (<= max_frames);
      "num_frames": int32 (B,) frames stored in the record; "labels": float32
      (B, num_classes) multi-hot; "id": string (B,)}.

    Graph-compatible. A bad record raises ``tf.errors.InvalidArgumentError``
    whose message starts with the record's name and says what is wrong
    (with ``describe=False``: `BATCH_CHECK_FAILED`).
    """
    spec = get_spec(spec)
    serialized = tf.reshape(tf.convert_to_tensor(serialized, tf.string), [-1])
    if names is not None:
        names = parse_names = tf.reshape(tf.convert_to_tensor(names, tf.string), [-1])
    else:
        parse_names = None
        if describe:
            names = tf.strings.join(["batch record ", tf.strings.as_string(tf.range(tf.size(serialized)))])
    checks = _Checks(names, describe)
    parse = _parse_frame_level if spec.frame_level else _parse_video_level
    frames, num_frames, labels, video_id = parse(serialized, spec, parse_names, checks)
    length = tf.minimum(num_frames, spec.max_frames)
    out = {
        "frames": tf.ensure_shape(frames, [None, spec.max_frames, spec.feature_size]),
        "mask": tf.sequence_mask(length, spec.max_frames, dtype=tf.float32),
        "length": length,
        "num_frames": num_frames,
        "labels": tf.ensure_shape(labels, [None, spec.num_classes]),
        "id": video_id,
    }
    with tf.control_dependencies(checks.dependencies()):
        return {key: tf.identity(value) for key, value in out.items()}


@tf.autograph.experimental.do_not_convert
def parse_example(serialized, spec, filename=None, record_index=None) -> dict:
    """Parse one serialized record (``parse_batch`` on a batch of one).

    Returns {"frames": float32 (T, D) with T = min(true length, max_frames),
    "length": int32 T, "labels": float32 multi-hot (num_classes,), "id": string}.
    ``filename`` / ``record_index`` (strings/ints or tensors) only go into error
    messages. Graph-compatible; raises tf.errors.InvalidArgumentError on bad
    records with a message naming the file, the record and the problem.
    """
    name = tf.convert_to_tensor("<unknown file>" if filename is None else filename, tf.string)
    if record_index is not None:
        name = tf.strings.join([name, " (record ", tf.strings.as_string(record_index), ")"])
    out = parse_batch(tf.reshape(serialized, [1]), spec, tf.reshape(name, [1]))
    length = out["length"][0]
    return {"frames": out["frames"][0, :length], "length": length, "labels": out["labels"][0], "id": out["id"][0]}


@functools.lru_cache(maxsize=32)
def batch_parser(spec: DatasetSpec, named: bool = False):
    """``parse_batch`` for ``spec`` as a ``tf.function`` traced once per process (and spec).

    ``parser(serialized)``: the fast path of ``make_dataset``, its checks fused into one
    (``describe=False``). ``named=True``: ``parser(serialized, names)`` with the message of
    the first bad record, for ``kdzoo.data.validation``'s record-by-record re-parse. Both
    are mapped over batches, so building a dataset does not trace the parser again.
    """
    signature = [tf.TensorSpec([None], tf.string)] + ([tf.TensorSpec([None], tf.string)] if named else [])
    return tf.function(lambda serialized, names=None: parse_batch(serialized, spec, names, describe=named),
                       input_signature=signature, autograph=False)
