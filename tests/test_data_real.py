"""The pipeline on the real data in ../shared/data (skipped when absent)."""

import csv
import dataclasses
import pickle

import numpy as np
import pytest
import tensorflow as tf

from kdzoo.data import (
    AUDIOSET,
    YT8M_FRAME,
    YT8M_VIDEO,
    count_records,
    dequantize,
    list_files,
    make_dataset,
    parse_example,
    validate_records,
)


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _load_pkl(path):
    with open(path, "rb") as fh:
        obj = pickle.load(fh, encoding="bytes")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def test_yt8m_frame_level_matches_pickle(yt8m_dir):
    ref = _load_pkl(yt8m_dir / "frame_level" / "paddlevideo_example.pkl")
    rgb, audio = ref["feature"], ref["audio"]
    assert int(ref["nframes"]) == 170 and rgb.shape == (170, 1024) and audio.shape == (170, 128)
    path = str(yt8m_dir / "frame_level" / "paddlevideo_example_SjJ3.tfrecord")
    assert count_records(path) == 1
    record = next(iter(tf.data.TFRecordDataset(path)))

    raw_spec = dataclasses.replace(YT8M_FRAME, dequantize=None)
    raw = parse_example(record, raw_spec, path)
    assert int(raw["length"]) == 170 and raw["frames"].shape == (170, 1152)
    q = raw["frames"].numpy()
    assert q.min() >= 0 and q.max() <= 255
    np.testing.assert_array_equal(q.astype(np.uint8).tobytes(), np.concatenate([rgb, audio], 1).tobytes())
    ref_id = ref["video"].decode() if isinstance(ref["video"], bytes) else ref["video"]
    assert raw["id"].numpy().decode() == ref_id == "SjJ3"
    assert np.flatnonzero(raw["labels"].numpy()).tolist() == sorted(ref["label"]) == [11]

    deq = parse_example(record, YT8M_FRAME, path)["frames"].numpy()
    expected = np.concatenate([rgb, audio], 1).astype(np.float64) * 4 / 255 - 2
    np.testing.assert_allclose(deq, expected, atol=1e-6)
    np.testing.assert_allclose(deq, dequantize(np.concatenate([rgb, audio], 1)), atol=1e-6)

    (inputs, labels), = list(make_dataset(path, YT8M_FRAME, 8, k=5, include_ids=True))
    assert inputs["frames"].shape == (1, 300, 1152) and float(inputs["mask"].numpy().sum()) == 170
    np.testing.assert_allclose(inputs["frames"].numpy()[0, :170], deq)
    assert not inputs["frames"].numpy()[0, 170:].any()
    # uniform student frames of 170: floor((i + .5) * 34)
    np.testing.assert_allclose(inputs["student_frames"].numpy()[0], deq[[17, 51, 85, 119, 153]])
    assert labels.shape == (1, 3862)


def _audioset_pass(files):
    n, lengths, labels_per_clip = 0, [], []
    for inputs, labels in make_dataset(files, AUDIOSET, 1024):
        n += labels.shape[0]
        lengths.append(inputs["mask"].numpy().sum(1))
        labels_per_clip.append(labels.numpy().sum(1))
        assert inputs["frames"].shape[1:] == (10, 128) and labels.shape[1] == 527
    return n, np.concatenate(lengths), np.concatenate(labels_per_clip)


def test_audioset_counts(audioset_dir):
    header, rows = _csv_rows(audioset_dir / "class_labels_indices.csv")
    assert header[:2] == ["index", "mid"] and len(rows) == 527
    expected = {"bal_train": 22160, "eval": 20371}
    for split, count in expected.items():
        files = list_files(str(audioset_dir / f"{split}-*-of-04.tfrecord"))
        assert len(files) == 4
        assert count_records(files) == count
        # every clip has >= 1 frame, so the pipeline skips none; labels < 527 is
        # asserted inside the pipeline.
        n, lengths, n_labels = _audioset_pass(files)
        assert n == count
        assert lengths.min() >= 1 and lengths.max() == 10
        assert (lengths == 10).mean() > 0.97
        assert n_labels.min() >= 1


def test_audioset_validate_sample(audioset_dir):
    report = validate_records(str(audioset_dir / "eval-00-of-04.tfrecord"), "audioset", max_records=300)
    assert report.ok and report.records == 300 and report.valid == 300 and report.empty == 0


def test_yt8m_video_level(yt8m_dir):
    files = list_files(str(yt8m_dir / "video_level" / "validate00*.tfrecord"))
    assert len(files) == 20
    assert count_records(files) == 5889
    n, ids = 0, set()
    for inputs, labels in make_dataset(files, YT8M_VIDEO, 1024, include_ids=True):
        assert inputs["frames"].shape[1:] == (1, 1152) and labels.shape[1] == 3862
        np.testing.assert_array_equal(inputs["mask"].numpy(), 1.0)
        assert labels.numpy().sum(1).min() >= 1
        n += labels.shape[0]
        ids.update(inputs["id"].numpy().tolist())
    assert n == 5889 and len(ids) == 5889
    header, rows = _csv_rows(yt8m_dir / "vocabulary.csv")
    assert header[0] == "Index" and len(rows) == 3862
