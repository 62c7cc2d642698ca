"""Fuzzed TFRecords: every mutated record parses exactly as encoded, is a clear error, or is skipped.

Mutations of valid AudioSet and YouTube-8M frame-level SequenceExamples (fixed seed) are
written to TFRecord files and read back with the pipeline's own ``parse_example`` (the
function ``make_dataset`` and ``validate_records`` map over records). For every record:

* ``parsed``: it parsed; its id, labels (multi-hot) and frames (dequantised, truncated to
  ``max_frames``) equal what an independent decoder (python protobuf plus the documented
  rules) reads from the same bytes: no silent wrong label or frame;
* ``skipped_empty``: a 0-frame video (documented: ``make_dataset`` filters it out);
* ``error``: a ``DataError`` (a ValueError) whose message names the file and the record.

Each file is also read by ``make_dataset`` (records parsed a batch at a time): it must stop
with the first problem ``validate_records`` reports, or read every valid video.

File-level corruption (a TFRecord file cut mid-record, a flipped bit in the framed file,
caught by the record CRC) must give a ``DataError`` naming the file.

``pytest -s`` prints the outcome counts per mutation kind; with ``KDZOO_FUZZ_RESULTS=1``
they are also written to ``benchmarks/results/fuzz_records.json``.
"""

import collections
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf.message import DecodeError

from kdzoo.data import (AUDIOSET, YT8M_FRAME, DataError, data_errors, dequantize, make_dataset, parse_example,
                        validate_records)
from kdzoo.data.errors import iterate
from records import sequence_example
from records import write_tfrecord as write

SEED = 20190616
RESULTS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fuzz_records.json"


# --------------------------------------------------------------------------- valid records


def _frames(rng, n, width):
    return rng.integers(0, 256, size=(n, width), dtype=np.uint8)


def base_records(spec, rng, lengths):
    out = []
    for i, n in enumerate(lengths):
        labels = sorted(set(rng.integers(0, spec.num_classes, size=1 + i % 4).tolist()))
        feats = {f.name: _frames(rng, n, f.width) for f in spec.features}
        out.append(sequence_example(f"vid{i}", labels, feats, id_key=spec.id_key, label_key=spec.label_key))
    return out


# --------------------------------------------------------------------------- mutations


def _copy(ex):
    out = tf.train.SequenceExample()
    out.CopyFrom(ex)
    return out


def _flip(data: bytes, rng, positions=None, nbits=None):
    buf = bytearray(data)
    nbits = nbits or int(rng.integers(1, 5))
    for _ in range(nbits):
        hi = len(buf) if positions is None else min(positions, len(buf))
        pos = int(rng.integers(0, hi))
        buf[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def mutate(kind, ex, spec, rng) -> bytes:
    """One mutated serialised record of the given kind from a valid SequenceExample."""
    data = ex.SerializeToString()
    first = spec.features[0].name
    if kind == "valid":
        return data
    if kind == "truncated_serialization":
        return data[: int(rng.integers(0, len(data)))]
    if kind == "bitflip_anywhere":
        return _flip(data, rng)
    if kind == "bitflip_header":  # context (id, labels) and the first feature-list keys
        return _flip(data, rng, positions=96)
    if kind == "garbage":
        return rng.integers(0, 256, size=int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
    if kind == "example_not_sequence":
        e = tf.train.Example()
        e.features.feature[spec.id_key].bytes_list.value.append(b"x")
        e.features.feature[spec.label_key].int64_list.value.append(1)
        return e.SerializeToString()
    ex = _copy(ex)
    ctx, fls = ex.context.feature, ex.feature_lists.feature_list
    if kind == "wrong_width":
        f = spec.features[int(rng.integers(0, len(spec.features)))]
        rows = fls[f.name].feature
        if not len(rows):
            rows.add().bytes_list.value.append(b"")
        width = int(rng.choice([0, 1, f.width - 1, f.width + 1, 2 * f.width]))
        t = int(rng.integers(0, len(rows)))
        rows[t].bytes_list.value[0] = bytes(width)
    elif kind == "missing_key":
        choices = [spec.id_key, spec.label_key] + [f.name for f in spec.features]
        key = choices[int(rng.integers(0, len(choices)))]
        if key in (spec.id_key, spec.label_key):
            del ctx[key]
        else:
            del fls[key]
    elif kind == "huge_frames":
        n = 100_000 if spec is AUDIOSET else 20_000
        for f in spec.features:
            fls[f.name].ClearField("feature")
            row = rng.integers(0, 256, size=f.width, dtype=np.uint8).tobytes()
            block = [tf.train.Feature(bytes_list=tf.train.BytesList(value=[row]))] * n
            fls[f.name].feature.extend(block)
    elif kind == "empty_feature_lists":
        for f in spec.features:
            fls[f.name].ClearField("feature")
    elif kind == "empty_labels":
        ctx[spec.label_key].int64_list.ClearField("value")
    elif kind == "labels_out_of_range":
        ctx[spec.label_key].int64_list.value.append(spec.num_classes + int(rng.integers(0, 10_000)))
    elif kind == "negative_labels":
        ctx[spec.label_key].int64_list.value.append(-int(rng.integers(1, 2**62)))
    elif kind == "wrong_dtype":
        what = int(rng.integers(0, 5))
        if what == 0:  # labels as floats
            values = list(ctx[spec.label_key].int64_list.value)
            ctx[spec.label_key].float_list.value.extend(float(v) for v in values)
        elif what == 1:  # labels as bytes
            ctx[spec.label_key].bytes_list.value.append(b"3")
        elif what == 2:  # id as an int
            ctx[spec.id_key].int64_list.value.append(7)
        else:  # frames as floats / ints
            rows = fls[first].feature
            if not len(rows):
                rows.add()
            t = int(rng.integers(0, len(rows)))
            if what == 3:
                rows[t].float_list.value.extend([0.5] * spec.features[0].width)
            else:
                rows[t].int64_list.value.extend([1] * spec.features[0].width)
    elif kind == "multi_value":
        if rng.integers(0, 2):
            ctx[spec.id_key].bytes_list.value.append(b"second-id")
        else:
            rows = fls[first].feature
            if not len(rows):
                rows.add().bytes_list.value.append(bytes(spec.features[0].width))
            rows[int(rng.integers(0, len(rows)))].bytes_list.value.append(bytes(spec.features[0].width))
    elif kind == "frame_count_mismatch":
        rows = fls[spec.features[-1].name].feature
        if len(rows) and rng.integers(0, 2):
            del rows[-1]
        else:
            rows.add().bytes_list.value.append(bytes(spec.features[-1].width))
    else:
        raise AssertionError(kind)
    return ex.SerializeToString()


AUDIOSET_KINDS = {
    "valid": 10, "truncated_serialization": 110, "bitflip_anywhere": 160, "bitflip_header": 120,
    "garbage": 30, "example_not_sequence": 5, "wrong_width": 40, "missing_key": 30, "huge_frames": 2,
    "empty_feature_lists": 10, "empty_labels": 10, "labels_out_of_range": 30, "negative_labels": 30,
    "wrong_dtype": 40, "multi_value": 20,
}
YT8M_KINDS = {
    "valid": 5, "truncated_serialization": 50, "bitflip_anywhere": 70, "bitflip_header": 80,
    "wrong_width": 20, "missing_key": 20, "huge_frames": 1, "empty_feature_lists": 5,
    "labels_out_of_range": 15, "negative_labels": 15, "wrong_dtype": 20, "multi_value": 10,
    "frame_count_mismatch": 20,
}
FILE_KINDS = {"truncated_file": 12, "bitflip_file": 12}


# --------------------------------------------------------------------------- independent oracle


class Invalid(Exception):
    pass


def expected(serialized: bytes, spec):
    """What the record encodes under the documented rules (python protobuf), or Invalid."""
    try:
        ex = tf.train.SequenceExample.FromString(serialized)
    except DecodeError as e:
        raise Invalid(f"protobuf: {e}") from e
    ctx = ex.context.feature

    def values(feature, kind):
        which = feature.WhichOneof("kind")
        if which is None:
            return []
        if which != kind:
            raise Invalid(f"dtype {which} != {kind}")
        return list(getattr(feature, kind).value)

    if spec.id_key not in ctx:
        raise Invalid("missing id")
    ids = values(ctx[spec.id_key], "bytes_list")
    if len(ids) != 1:
        raise Invalid("id count")
    if spec.label_key not in ctx:
        raise Invalid("missing labels")
    labels = values(ctx[spec.label_key], "int64_list")
    if any(not 0 <= x < spec.num_classes for x in labels):
        raise Invalid("label range")
    parts, counts = [], []
    for f in spec.features:
        if f.name not in ex.feature_lists.feature_list:
            raise Invalid("missing feature list")
        rows = []
        for feature in ex.feature_lists.feature_list[f.name].feature:
            vals = values(feature, "bytes_list")
            if len(vals) != 1:
                raise Invalid("frame value count")
            if len(vals[0]) != f.width:
                raise Invalid("width")
            rows.append(vals[0])
        counts.append(len(rows))
        kept = rows[: spec.max_frames]
        codes = np.frombuffer(b"".join(kept), np.uint8).reshape(len(kept), f.width)
        parts.append(dequantize(codes, spec.dequantize))
    if len(set(counts)) != 1:
        raise Invalid("frame counts differ")
    multi_hot = np.zeros(spec.num_classes, np.float32)
    multi_hot[labels] = 1.0
    return {"id": ids[0], "labels": multi_hot, "frames": np.concatenate(parts, axis=1),
            "length": min(counts[0], spec.max_frames)}


# --------------------------------------------------------------------------- the check


def _parser(spec):
    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string),
                                  tf.TensorSpec([], tf.int64)])
    def parse(record, filename, index):
        return parse_example(record, spec, filename, index)

    return parse


def _close_to(got, base, nbits=4):
    """Values of a record TF parsed leniently differ from its unmutated base by at most the flipped bits."""
    if got is None or base is None or int(got["length"]) != base["length"]:
        return False
    gid, bid = got["id"].numpy(), base["id"]
    id_ok = len(gid) == len(bid) and sum(a != b for a, b in zip(gid, bid)) <= nbits
    labels_ok = np.sum(got["labels"].numpy() != base["labels"]) <= 2 * nbits
    frames_ok = np.sum(got["frames"].numpy() != base["frames"]) <= nbits
    return bool(id_ok and labels_ok and frames_ok)


def check_file(path, kinds, bases, spec, parse, outcomes, failures):
    """Reads every record of `path` back and classifies it against the oracle.

    Errors are checked through the public `validate_records`: every rejected record must be
    one of its problems, and the problem must name the file and the record.
    """
    report = validate_records(path, spec)
    problems = {p.record: str(p) for p in report.problems}
    # The batched dataset: stops at its first bad record with validate_records' first problem.
    try:
        read = sum(int(labels.shape[0]) for _, labels in make_dataset(path, spec, batch_size=16))
    except DataError as e:
        first = report.problems[0] if report.problems else None
        if first is None or (e.file, e.record, str(e)) != (first.file, first.record, str(first)):
            failures.append(f"{path}: make_dataset raised {e!r}, validate_records' first problem is {first!r}")
    else:
        if report.problems or read != report.valid:
            failures.append(f"{path}: make_dataset read {read} videos; validate_records: {report}")
    unnamed = 0
    for index, (record, kind, base) in enumerate(zip(tf.data.TFRecordDataset(path), kinds, bases)):
        raw = record.numpy()
        try:
            want = expected(raw, spec)
        except Invalid:
            want = None
        try:
            with data_errors([path]):
                got = parse(record, tf.constant(path), tf.constant(index, tf.int64))
        except DataError as e:
            problem = problems.get(index, "")
            if path not in problem or f"(record {index})" not in problem:
                failures.append(f"{kind} record {index}: validate_records does not name file/record: {problem!r}")
            if e.file != path or e.record != index:
                unnamed += 1  # the DataError of the raw parse does not carry file/record (TF's message lacks it)
            outcomes[kind]["error"] += 1
            continue
        except Exception as e:  # anything else is a crash
            failures.append(f"{kind} record {index}: {type(e).__name__}: {str(e)[:300]}")
            outcomes[kind]["crash"] += 1
            continue
        if index in problems:
            failures.append(f"{kind} record {index}: parsed, but validate_records reports {problems[index]!r}")
        if want is None:
            # Strict protobuf rejects the bytes but TF's lazy parser read what it needs: the values
            # must be those of the base record up to the flipped bits (never more frames or labels).
            if kind.endswith(("bitflip_anywhere", "bitflip_header")) and _close_to(got, base):
                outcomes[kind]["parsed_lenient"] += 1
            else:
                failures.append(f"{kind} record {index}: parsed an invalid record to values unlike its source")
                outcomes[kind]["silently_accepted"] += 1
            continue
        length = int(got["length"])
        ok = (length == want["length"] and got["id"].numpy() == want["id"]
              and np.array_equal(got["labels"].numpy(), want["labels"])
              and np.array_equal(got["frames"].numpy(), want["frames"]))
        if not ok:
            failures.append(f"{kind} record {index}: parsed values differ from the encoded ones")
            outcomes[kind]["wrong_values"] += 1
        elif length == 0:
            outcomes[kind]["skipped_empty"] += 1
        else:
            outcomes[kind]["parsed"] += 1
    return unnamed


def file_level(tmp_path, spec, good, rng, outcomes, failures):
    """TFRecord files cut mid-record or with a flipped bit: DataError naming the file."""
    for kind, n in FILE_KINDS.items():
        for i in range(n):
            path = write(tmp_path / f"{kind}-{i}.tfrecord", good[:3])
            data = pathlib.Path(path).read_bytes()
            if kind == "truncated_file":
                data = data[: int(rng.integers(1, len(data) - 1))]
            else:
                data = _flip(data, rng, nbits=1)
            pathlib.Path(path).write_bytes(data)
            try:
                for _ in iterate(make_dataset(path, spec, batch_size=2), [path]):
                    pass
            except DataError as e:
                if path not in str(e):
                    failures.append(f"{kind} {i}: DataError does not name the file: {e}")
                outcomes[kind]["error"] += 1
            except Exception as e:
                failures.append(f"{kind} {i}: {type(e).__name__}: {str(e)[:300]}")
                outcomes[kind]["crash"] += 1
            else:
                # Only a cut exactly at a record boundary reads cleanly: a shorter but valid
                # file (TFRecord framing cannot tell). Every flipped bit fails the record CRC.
                if kind != "truncated_file":
                    failures.append(f"{kind} {i}: corrupt file read without an error")
                outcomes[kind]["read_ok"] += 1


def run_fuzz(tmp_path, scale=1.0):
    rng = np.random.default_rng(SEED)
    outcomes = collections.defaultdict(collections.Counter)
    failures = []
    total = unnamed = 0
    for label, spec, lengths, kinds in (
        ("audioset", AUDIOSET, [1, 2, 3, 5, 8, 10, 12, 20], AUDIOSET_KINDS),
        ("yt8m", YT8M_FRAME, [1, 2, 3, 4], YT8M_KINDS),
    ):
        good = base_records(spec, rng, lengths)
        good_values = [expected(g.SerializeToString(), spec) for g in good]
        records, record_kinds, bases = [], [], []
        for kind, n in kinds.items():
            for _ in range(max(1, int(round(n * scale)))):
                b = int(rng.integers(0, len(good)))
                records.append(mutate(kind, good[b], spec, rng))
                record_kinds.append(f"{label}/{kind}")
                bases.append(good_values[b])
        # Several files, so errors must name the right one.
        parse = _parser(spec)
        for part in range(4):
            sel = slice(part, None, 4)
            path = write(tmp_path / f"{label}-{part}.tfrecord", records[sel])
            unnamed += check_file(path, record_kinds[sel], bases[sel], spec, parse, outcomes, failures)
        total += len(records)
        file_outcomes = collections.defaultdict(collections.Counter)
        file_level(tmp_path, spec, [g.SerializeToString() for g in good], rng, file_outcomes, failures)
        for kind, counter in file_outcomes.items():
            outcomes[f"{label}/{kind}"].update(counter)
            total += sum(counter.values())
    outcomes = {k: dict(v) for k, v in sorted(outcomes.items())}
    outcomes["parse_errors_without_file_in_message"] = {"count": unnamed}
    return total, outcomes, failures


def report(total, outcomes):
    print(f"\nfuzzed records: {total}")
    for kind, counts in outcomes.items():
        print(f"  {kind:42s} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if os.environ.get("KDZOO_FUZZ_RESULTS"):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"seed": SEED, "records": total, "outcomes": outcomes}, indent=2) + "\n")


def _check(total, outcomes, failures, minimum):
    assert not failures, "\n".join(failures[:20])
    assert total >= minimum
    every = collections.Counter()
    for kind, counts in outcomes.items():
        if kind != "parse_errors_without_file_in_message":
            every.update(counts)
    assert set(every) <= {"parsed", "parsed_lenient", "skipped_empty", "error", "read_ok"}
    # Each kind behaves as documented.
    for label in ("audioset", "yt8m"):
        assert outcomes[f"{label}/valid"] == {"parsed": outcomes[f"{label}/valid"]["parsed"]}
        assert set(outcomes[f"{label}/huge_frames"]) == {"parsed"}  # truncated to max_frames
        assert set(outcomes[f"{label}/empty_feature_lists"]) == {"skipped_empty"}
        for kind in ("labels_out_of_range", "negative_labels", "wrong_width", "missing_key", "wrong_dtype",
                     "multi_value"):
            assert set(outcomes[f"{label}/{kind}"]) == {"error"}, (kind, outcomes[f"{label}/{kind}"])
    assert set(outcomes["yt8m/frame_count_mismatch"]) == {"error"}
    assert set(outcomes["audioset/empty_labels"]) == {"parsed"}


@pytest.mark.slow  # about a minute; the default run covers bad records in test_data_pipeline.py
def test_fuzzed_records(tmp_path):
    total, outcomes, failures = run_fuzz(tmp_path)
    report(total, outcomes)
    _check(total, outcomes, failures, minimum=1000)


def test_huge_video_is_truncated_by_the_pipeline(tmp_path):
    rng = np.random.default_rng(SEED)
    ex = base_records(AUDIOSET, rng, [3])[0]
    huge = mutate("huge_frames", ex, AUDIOSET, rng)
    path = write(tmp_path / "huge.tfrecord", [huge])
    ((inputs, labels),) = list(make_dataset(path, AUDIOSET, batch_size=1))
    assert inputs["frames"].shape == (1, AUDIOSET.max_frames, 128)
    np.testing.assert_array_equal(inputs["mask"].numpy(), 1.0)
    np.testing.assert_array_equal(inputs["frames"].numpy()[0], expected(huge, AUDIOSET)["frames"])


OVERRUN_SCRIPT = r"""
import sys
import tensorflow as tf
from kdzoo.data import AUDIOSET, validate_records
ex = tf.train.SequenceExample()
ex.context.feature["labels"].int64_list.value.append(182)
ex.context.feature["video_id"].bytes_list.value.append(b"vid0")
ex.feature_lists.feature_list["audio_embedding"].feature.add().bytes_list.value.append(bytes(range(128)))
record = ex.SerializeToString().replace(b"\x0a\x04vid0", b"\x0a\x44vid0")  # id value overruns its message
with tf.io.TFRecordWriter(sys.argv[1]) as w:
    w.write(record)
report = validate_records(sys.argv[1], AUDIOSET)
print("PROBLEM", report.problems[0])
"""


def test_overrunning_context_bytes_is_an_error_not_a_segfault(tmp_path):
    """Regression: with a VarLenFeature context, TF 2.21's sequence parser segfaults on this record."""
    import subprocess
    import sys

    path = tmp_path / "overrun.tfrecord"
    out = subprocess.run([sys.executable, "-c", OVERRUN_SCRIPT, str(path)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"PROBLEM {path} (record 0)" in out.stdout
