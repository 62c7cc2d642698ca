"""Pipeline behaviour and error messages on small synthetic TFRecords."""

import numpy as np
import pytest
import tensorflow as tf

from kdzoo.data import (
    DataError,
    DatasetSpec,
    FeatureSpec,
    count_records,
    data_errors,
    dequantize,
    iterate,
    list_files,
    make_dataset,
    pipeline_options,
    validate_records,
)
from kdzoo.sampling import sample_indices_numpy
from records import serialized_sequence_example
from records import write_tfrecord as write

SPEC = DatasetSpec(features=(FeatureSpec("rgb", 8), FeatureSpec("audio", 4)), num_classes=5, max_frames=6)
VIDEO_SPEC = DatasetSpec(features=(FeatureSpec("mean_rgb", 3), FeatureSpec("mean_audio", 2)), num_classes=5,
                         max_frames=1, frame_level=False, dequantize=None)


def codes(vid: int, n: int, width: int, offset: int = 0) -> np.ndarray:
    """Deterministic uint8 codes: frame t of video vid."""
    t = np.arange(n)[:, None]
    d = np.arange(width)[None, :]
    return ((vid * 37 + t * 11 + d * 3 + offset) % 256).astype(np.uint8)


def seq_example(vid, n, labels=(1,), widths=None, frames=None, drop=(), id_key="id"):
    widths = widths or {"rgb": 8, "audio": 4}
    frames = frames or {}
    rows = {name: codes(vid, frames.get(name, n), width, offset=100 * i)
            for i, (name, width) in enumerate(widths.items()) if name not in drop}
    return serialized_sequence_example(None if id_key in drop else f"vid{vid}",
                                       None if "labels" in drop else labels, rows, id_key=id_key)


def expected_frames(vid, n):
    return np.concatenate([dequantize(codes(vid, n, 8)), dequantize(codes(vid, n, 4, offset=100))], 1)


LENGTHS = [3, 6, 9, 1, 0, 4]  # 9 > max_frames (truncated), 0 skipped


@pytest.fixture
def good_file(tmp_path):
    return write(tmp_path / "good.tfrecord",
                 [seq_example(v, n, labels=(v % 5, 4)) for v, n in enumerate(LENGTHS)])


def test_padding_mask_labels(good_file):
    ds = make_dataset(good_file, SPEC, batch_size=3, include_ids=True)
    batches = list(ds)
    assert [b[1].shape[0] for b in batches] == [3, 2]
    inputs = {k: np.concatenate([b[0][k].numpy() for b in batches]) for k in batches[0][0]}
    labels = np.concatenate([b[1].numpy() for b in batches])
    kept = [v for v, n in enumerate(LENGTHS) if n > 0]
    assert [i.decode() for i in inputs["id"]] == [f"vid{v}" for v in kept]
    assert inputs["frames"].shape == (5, 6, 12) and inputs["frames"].dtype == np.float32
    assert inputs["mask"].shape == (5, 6) and labels.shape == (5, 5)
    for row, v in enumerate(kept):
        L = min(LENGTHS[v], 6)
        assert inputs["mask"][row].sum() == L
        np.testing.assert_array_equal(inputs["mask"][row], [1] * L + [0] * (6 - L))
        np.testing.assert_allclose(inputs["frames"][row, :L], expected_frames(v, LENGTHS[v])[:L], atol=1e-6)
        assert not inputs["frames"][row, L:].any(), "padding is zero"
        np.testing.assert_array_equal(np.flatnonzero(labels[row]), sorted({v % 5, 4}))


def test_fixed_shapes_and_drop_remainder(good_file):
    ds = make_dataset(good_file, SPEC, batch_size=2, drop_remainder=True, k=3)
    inputs_spec, labels_spec = ds.element_spec
    assert inputs_spec["frames"].shape.as_list() == [2, 6, 12]
    assert inputs_spec["student_frames"].shape.as_list() == [2, 3, 12]
    assert labels_spec.shape.as_list() == [2, 5]
    assert sum(1 for _ in ds) == 2
    assert sum(b[1].shape[0] for b in make_dataset(good_file, SPEC, 2, take=3)) == 3
    assert sum(b[1].shape[0] for b in make_dataset(good_file, SPEC, 2, repeat=2, cache=True)) == 10


@pytest.mark.parametrize("sampler", ["uniform", "first", "middle", "last", "first_middle_last", "random"])
def test_student_view(good_file, sampler):
    k = 4
    ds = make_dataset(good_file, SPEC, batch_size=8, k=k, sampler=sampler)
    (inputs, _), = list(ds)
    frames, mask = inputs["frames"].numpy(), inputs["mask"].numpy()
    sf, sm = inputs["student_frames"].numpy(), inputs["student_mask"].numpy()
    assert sf.shape == (5, k, 12) and sm.shape == (5, k)
    np.testing.assert_array_equal(sm, 1.0)
    for row in range(5):
        L = int(mask[row].sum())
        # which valid frame each student frame is
        idx = [int(np.flatnonzero((frames[row, :L] == f).all(1))[0]) for f in sf[row]]
        assert all(0 <= i < L for i in idx)
        if sampler == "random":
            assert idx == sorted(idx) and (len(set(idx)) == k or L < k)
        else:
            assert idx == sample_indices_numpy(L, k, sampler).tolist()
    again = list(make_dataset(good_file, SPEC, batch_size=8, k=k, sampler=sampler))
    np.testing.assert_array_equal(again[0][0]["student_frames"].numpy(), sf)  # deterministic at inference


def test_random_student_training_seeds(tmp_path):
    path = write(tmp_path / "long.tfrecord", [seq_example(v, 6) for v in range(16)])

    def student(seed):
        ds = make_dataset(path, SPEC, 4, k=2, sampler="random", fresh_seeds=True, seed=seed)
        return np.concatenate([x["student_frames"].numpy() for x, _ in ds])

    a, b, c = student(1), student(1), student(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # different batches get different seeds: the same row position differs across batches
    ds = make_dataset(path, SPEC, 4, k=2, sampler="random", fresh_seeds=True, seed=1)
    picks = [x["student_frames"].numpy()[:, :, -1] for x, _ in ds]
    assert len({p.tobytes() for p in picks}) > 1


def test_shuffle_keeps_all(tmp_path):
    files = [write(tmp_path / f"s{i}.tfrecord", [seq_example(10 * i + v, 2) for v in range(5)]) for i in range(3)]
    ds = make_dataset(str(tmp_path / "s*.tfrecord"), SPEC, 4, shuffle=True, seed=3, include_ids=True)
    ids = sorted(i.decode() for x, _ in ds for i in x["id"].numpy())
    assert ids == sorted(f"vid{10 * i + v}" for i in range(3) for v in range(5))
    assert count_records(files) == 15


def test_autotuner_is_off_unless_options_say_otherwise(good_file):
    # With it on, dropping each epoch's iterator waits for its thread (bench_epoch_overhead.py).
    default = make_dataset(str(good_file), SPEC, 2, shuffle=True, seed=1)
    assert default.options().autotune.enabled is False
    on = make_dataset(str(good_file), SPEC, 2, options=pipeline_options(autotune=True))
    assert on.options().autotune.enabled is True
    # The options change how the pipeline runs, never what it yields.
    assert [x["frames"].numpy().tolist() for x, _ in on] == [
        x["frames"].numpy().tolist() for x, _ in make_dataset(str(good_file), SPEC, 2)]


def test_video_level(tmp_path):
    ex = tf.train.Example()
    ex.features.feature["id"].bytes_list.value.append(b"a")
    ex.features.feature["labels"].int64_list.value.extend([0, 3])
    ex.features.feature["mean_rgb"].float_list.value.extend([0.5, -1.0, 2.0])
    ex.features.feature["mean_audio"].float_list.value.extend([3.0, 4.0])
    path = write(tmp_path / "v.tfrecord", [ex.SerializeToString()])
    (x, y), = list(make_dataset(path, VIDEO_SPEC, 2, k=2))
    np.testing.assert_allclose(x["frames"].numpy(), [[[0.5, -1.0, 2.0, 3.0, 4.0]]])
    np.testing.assert_array_equal(x["mask"].numpy(), [[1.0]])
    np.testing.assert_allclose(x["student_frames"].numpy(), [[[0.5, -1.0, 2.0, 3.0, 4.0]] * 2])
    np.testing.assert_array_equal(y.numpy(), [[1, 0, 0, 1, 0]])


def test_zero_frame_video_skipped(tmp_path):
    path = write(tmp_path / "empty.tfrecord", [seq_example(0, 0), seq_example(1, 2), seq_example(2, 0)])
    batches = list(make_dataset(path, SPEC, 8, include_ids=True))
    assert [i.decode() for i in batches[0][0]["id"].numpy()] == ["vid1"]
    only_empty = write(tmp_path / "all_empty.tfrecord", [seq_example(0, 0)])
    assert list(make_dataset(only_empty, SPEC, 8, k=2)) == []
    report = validate_records([path, only_empty], SPEC)
    assert report.ok and report.records == 4 and report.empty == 3 and report.valid == 1


# ----------------------------------------------------------------------------- errors


def _bad_case(tmp_path, bad_record):
    """A good file plus a file whose second record is bad; returns (glob, bad_path)."""
    write(tmp_path / "a_good.tfrecord", [seq_example(v, 3) for v in range(3)])
    bad = write(tmp_path / "b_bad.tfrecord", [seq_example(7, 3), bad_record, seq_example(8, 3)])
    return str(tmp_path / "*.tfrecord"), bad


def _assert_reported(pattern, bad, spec, words):
    files = list_files(pattern)
    with pytest.raises(DataError) as info:
        for _ in iterate(make_dataset(pattern, spec, 2), files):
            pass
    msg = str(info.value)
    assert bad in msg, msg
    for w in words:
        assert w in msg, msg
    report = validate_records(pattern, spec)
    assert len(report.problems) == 1, report
    p = report.problems[0]
    assert p.file == bad and bad in str(p)
    for w in words:
        assert w in str(p), str(p)
    with pytest.raises(DataError, match="b_bad"):
        validate_records(pattern, spec, raise_on_error=True)
    return msg, p


@pytest.mark.parametrize(
    "drop, words",
    [
        (("audio",), ["missing key", "audio", "record 1"]),
        (("id",), ["missing key", "id", "record 1"]),
        (("labels",), ["missing key", "labels", "record 1"]),
    ],
)
def test_missing_key(tmp_path, drop, words):
    pattern, bad = _bad_case(tmp_path, seq_example(9, 3, drop=drop))
    _assert_reported(pattern, bad, SPEC, words)


def test_iterating_the_dataset_raises_data_error_naming_file_and_record(tmp_path):
    pattern, bad = _bad_case(tmp_path, seq_example(9, 3, drop=("rgb",)))
    with pytest.raises(DataError, match=r"b_bad.tfrecord \(record 1\): missing key: feature list 'rgb'") as info:
        list(make_dataset(pattern, SPEC, 2))
    assert (info.value.file, info.value.record) == (bad, 1)


def test_fused_batch_check_fails_on_the_records_the_described_checks_name():
    from kdzoo.data.records import BATCH_CHECK_FAILED, batch_parser, parse_batch

    fast = batch_parser(SPEC)  # the reader's parser: one fused check, no messages
    good = [seq_example(v, n, labels=(v % 5, 4)) for v, n in enumerate(LENGTHS)]
    out, described = fast(tf.constant(good)), parse_batch(tf.constant(good), SPEC)
    for key in ("frames", "mask", "length", "num_frames", "labels", "id"):
        np.testing.assert_array_equal(out[key].numpy(), described[key].numpy(), err_msg=key)
    np.testing.assert_allclose(out["frames"].numpy()[0, :3], expected_frames(0, 3))
    bad_records = {
        "missing key": seq_example(9, 3, drop=("audio",)),
        "wrong feature width": seq_example(9, 3, widths={"rgb": 8, "audio": 5}),
        "frame counts differ": seq_example(9, 3, frames={"audio": 2}),
        "label 5 is out of range": seq_example(9, 3, labels=(1, 5)),
    }
    for problem, bad in bad_records.items():
        batch = tf.constant(good[:2] + [bad])
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"batch record 2: {problem}"):
            parse_batch(batch, SPEC)
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            fast(batch)
        assert BATCH_CHECK_FAILED in info.value.message and problem not in info.value.message


def test_wrong_width(tmp_path):
    pattern, bad = _bad_case(tmp_path, seq_example(9, 3, widths={"rgb": 8, "audio": 5}))
    _assert_reported(pattern, bad, SPEC, ["wrong feature width", "'audio'", "5 bytes", "expected 4"])


def test_frame_counts_differ(tmp_path):
    pattern, bad = _bad_case(tmp_path, seq_example(9, 3, frames={"audio": 2}))
    _assert_reported(pattern, bad, SPEC, ["frame counts differ", "'audio' has 2 frames", "'rgb' has 3"])


def test_label_out_of_range(tmp_path):
    pattern, bad = _bad_case(tmp_path, seq_example(9, 3, labels=(1, 5)))
    _assert_reported(pattern, bad, SPEC, ["label 5 is out of range", "num_classes = 5"])


def test_negative_label(tmp_path):
    pattern, bad = _bad_case(tmp_path, seq_example(9, 3, labels=(-1,)))
    _assert_reported(pattern, bad, SPEC, ["label -1 is out of range"])


def test_video_level_errors(tmp_path):
    def ex(rgb, with_audio=True):
        e = tf.train.Example()
        e.features.feature["id"].bytes_list.value.append(b"a")
        e.features.feature["labels"].int64_list.value.append(1)
        e.features.feature["mean_rgb"].float_list.value.extend(rgb)
        if with_audio:
            e.features.feature["mean_audio"].float_list.value.extend([1.0, 2.0])
        return e.SerializeToString()

    good = write(tmp_path / "a_good.tfrecord", [ex([1, 2, 3])])
    bad = write(tmp_path / "b_bad.tfrecord", [ex([1, 2, 3]), ex([1, 2, 3, 4])])
    _assert_reported(str(tmp_path / "*.tfrecord"), bad, VIDEO_SPEC,
                     ["wrong feature width", "'mean_rgb' has 4 values", "expected 3"])
    bad2 = write(tmp_path / "b_bad.tfrecord", [ex([1, 2, 3]), ex([1, 2, 3], with_audio=False)])
    _assert_reported(str(tmp_path / "*.tfrecord"), bad2, VIDEO_SPEC, ["missing key", "'mean_audio'"])
    assert good


def _framing_case(tmp_path, corrupt):
    write(tmp_path / "a_good.tfrecord", [seq_example(v, 3) for v in range(3)])
    path = tmp_path / "b_bad.tfrecord"
    write(path, [seq_example(v, 3) for v in range(4)])
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(corrupt(data)))
    return str(tmp_path / "*.tfrecord"), str(path)


def _truncate(data):
    return data[:-10]


def _flip(data):
    data[len(data) // 2] ^= 0x08
    return data


@pytest.mark.parametrize("corrupt", [_truncate, _flip], ids=["truncated", "bit_flip"])
def test_corrupt_files(tmp_path, corrupt):
    pattern, bad = _framing_case(tmp_path, corrupt)
    msg, problem = _assert_reported(pattern, bad, SPEC, ["corrupt or truncated TFRecord file"])
    assert "DataLossError" in msg
    with pytest.raises(DataError, match="b_bad.tfrecord: corrupt or truncated"):
        count_records(pattern)
    with pytest.raises(DataError, match="b_bad.tfrecord: corrupt or truncated"):
        with data_errors(list_files(pattern)):
            list(make_dataset(pattern, SPEC, 2, shuffle=True, seed=0))


def test_empty_glob(tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    for call in (lambda: list_files(pattern), lambda: make_dataset(pattern, SPEC), lambda: count_records(pattern),
                 lambda: validate_records(pattern, SPEC)):
        with pytest.raises(FileNotFoundError, match="nothing-"):
            call()
    write(tmp_path / "x.tfrecord", [seq_example(0, 1)])
    with pytest.raises(FileNotFoundError, match="nothing-"):
        list_files(f"{tmp_path}/x.tfrecord,{pattern}")
    with pytest.raises(FileNotFoundError, match="only directories"):
        list_files(str(tmp_path))


def test_list_files(tmp_path):
    for name in ("b.tfrecord", "a.tfrecord", "c.txt"):
        write(tmp_path / name, [])
    a, b = str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")
    assert list_files(str(tmp_path / "*.tfrecord")) == [a, b]
    assert list_files(f"{b}, {tmp_path}/*.tfrecord") == [a, b]
    assert list_files([tmp_path / "b.tfrecord", a]) == [a, b]


def test_other_scheme_needs_io_extra():
    try:
        import tensorflow_io  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("tensorflow-io is importable here")
    for pattern in ("s3://bucket/train*.tfrecord", "hdfs://nn/data/*.tfrecord"):
        with pytest.raises(ImportError, match=r"kdzoo\[io\].*tensorflow-io.*0\.37 does not load on TensorFlow >= 2\.17"):
            list_files(pattern)
