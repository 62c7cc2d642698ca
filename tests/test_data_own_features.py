"""A user's own records: float per-frame features of any width and length, spec files, and
DataError naming file, record and problem wherever a make_dataset dataset is read."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from kdzoo.data import DataError, DatasetSpec, FeatureSpec, data_errors, dequantize, get_spec, make_dataset
from kdzoo.distillation import Distiller
from kdzoo.models import build_model
from records import serialized_sequence_example, write_tfrecord

# 12 float channels plus a 3-byte quantised channel per frame, 1..T frames, 9 classes, id key "clip".
T = 8
SPEC = DatasetSpec(features=[FeatureSpec("emb", 12, "float32"), FeatureSpec("q", 3, "uint8")], num_classes=9,
                   max_frames=T, id_key="clip")
SPEC_DICT = {"features": [{"name": "emb", "width": 12, "dtype": "float32"}, {"name": "q", "width": 3}],
             "num_classes": 9, "max_frames": T, "id_key": "clip"}


def clip(i, n, labels, emb_width=12, q_width=3, drop=()):
    """Clip i with n frames: float rows and uint8 rows that are a function of (i, frame)."""
    rng = np.random.default_rng(i)
    rows = {"emb": rng.normal(size=(n, emb_width)).astype(np.float32),
            "q": rng.integers(0, 256, size=(n, q_width), dtype=np.uint8)}
    rows = {k: v for k, v in rows.items() if k not in drop}
    return serialized_sequence_example(f"clip{i}", labels, rows, id_key="clip"), rows


def expected(rows, labels):
    """The documented result, built in numpy: float rows as stored, uint8 rows dequantised, first T
    frames kept, zero padding, mask of kept frames, multi-hot labels."""
    n = min(len(rows["emb"]), T)
    frames = np.zeros((T, 15), np.float32)
    frames[:n, :12] = rows["emb"][:n]
    frames[:n, 12:] = dequantize(rows["q"][:n])
    multi_hot = np.zeros(9, np.float32)
    multi_hot[list(labels)] = 1.0
    return frames, (np.arange(T) < n).astype(np.float32), multi_hot


@pytest.fixture
def clips(tmp_path):
    """Two files of clips with every length 1..T+3 (longer ones truncated); returns (files, expected by id)."""
    want, files = {}, []
    for part in range(2):
        records = []
        for j in range(T + 3):
            i = part * 100 + j
            labels = sorted({i % 9, (3 * i) % 9})
            serialized, rows = clip(i, j + 1, labels)
            records.append(serialized)
            want[f"clip{i}".encode()] = expected(rows, labels)
        files.append(write_tfrecord(tmp_path / f"clips-{part}.tfrecord", records))
    return files, want


def _check_against_reference(dataset, want):
    seen = 0
    for inputs, labels in dataset:
        for b, video_id in enumerate(inputs["id"].numpy()):
            frames, mask, multi_hot = want[video_id]
            np.testing.assert_array_equal(inputs["frames"][b].numpy(), frames)
            np.testing.assert_array_equal(inputs["mask"][b].numpy(), mask)
            np.testing.assert_array_equal(labels[b].numpy(), multi_hot)
            seen += 1
    assert seen == len(want)


def test_float_and_uint8_features_of_every_length(clips):
    files, want = clips
    _check_against_reference(make_dataset(files, SPEC, batch_size=4, include_ids=True), want)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_spec_file_is_accepted_where_a_preset_name_is(tmp_path, clips, suffix):
    files, want = clips
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(SPEC_DICT) if suffix == ".json" else yaml.safe_dump(SPEC_DICT))
    assert get_spec(str(path)) == SPEC and get_spec(path) == SPEC and get_spec(SPEC_DICT) == SPEC
    _check_against_reference(make_dataset(files, str(path), batch_size=5, include_ids=True), want)


def test_spec_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        get_spec(str(tmp_path / "nowhere.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match=r"bad.yaml: a spec file holds a mapping"):
        get_spec(str(bad))
    bad.write_text(yaml.safe_dump({**SPEC_DICT, "max_frame": 3}))
    with pytest.raises(ValueError, match=r"bad.yaml: Unknown DatasetSpec keys \['max_frame'\]"):
        get_spec(str(bad))
    bad.write_text(yaml.safe_dump({**SPEC_DICT, "features": [{"name": "emb", "width": 12, "dtype": "int8"}]}))
    with pytest.raises(ValueError, match=r"bad.yaml: .*'emb': dtype must be one of uint8, float32"):
        get_spec(str(bad))


def test_spec_round_trip_keeps_dtypes():
    assert DatasetSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC
    assert [f.dtype for f in SPEC.features] == ["float32", "uint8"]


# ----------------------------------------------------------------------------- errors while reading


def _file_with_bad_third_record(tmp_path, bad):
    good = [clip(i, 3, [1])[0] for i in range(4)]
    write_tfrecord(tmp_path / "a.tfrecord", good)
    return write_tfrecord(tmp_path / "b.tfrecord", good[:2] + [bad] + good[2:])


def _bytes_instead_of_floats():
    ex = tf.train.SequenceExample.FromString(clip(7, 3, [1])[0])
    row = ex.feature_lists.feature_list["emb"].feature[1]
    row.ClearField("float_list")
    row.bytes_list.value.append(bytes(12))
    return ex.SerializeToString()


BAD_RECORDS = {
    "wrong_dtype": (_bytes_instead_of_floats, ["emb", "Data types don't match", "float"]),
    "wrong_width": (lambda: clip(7, 3, [1], emb_width=11)[0],
                    ["wrong feature width: feature 'emb' frame 0 has 11 values, expected 12"]),
    "missing_feature": (lambda: clip(7, 3, [1], drop=("q",))[0], ["missing key: feature list 'q' not found"]),
}


@pytest.fixture(params=sorted(BAD_RECORDS))
def bad_case(request, tmp_path):
    make, words = BAD_RECORDS[request.param]
    bad = _file_with_bad_third_record(tmp_path, make())
    return str(tmp_path / "*.tfrecord"), bad, words


def _assert_names(error, bad, words):
    message = str(error)
    assert message.startswith(f"{bad} (record 2): "), message
    for w in words:
        assert w in message, message
    assert (error.file, error.record) == (bad, 2)


def test_iterating_make_dataset_raises_data_error(bad_case):
    pattern, bad, words = bad_case
    with pytest.raises(DataError) as info:
        for _ in make_dataset(pattern, SPEC, batch_size=4):
            pass
    _assert_names(info.value, bad, words)


def _small_model(name, num_frames=None):
    return build_model({"family": "pooling", "feature_size": SPEC.feature_size, "num_classes": SPEC.num_classes,
                        "num_frames": num_frames, "aggregator": {"mode": "mean_max"}, "hidden_size": 8,
                        "head": {"num_mixtures": 1}, "name": name})


def test_distiller_fit_raises_data_error(tmp_path):
    make, words = BAD_RECORDS["wrong_width"]
    bad = _file_with_bad_third_record(tmp_path, make())
    pattern = str(tmp_path / "*.tfrecord")
    distiller = Distiller(None, _small_model("teacher"), k=None)
    distiller.compile(optimizer="adam")
    with pytest.raises(DataError) as info:
        distiller.fit(make_dataset(pattern, SPEC, batch_size=4), epochs=1, verbose=0)
    _assert_names(info.value, bad, words)


def test_data_errors_around_a_plain_keras_fit(tmp_path):
    make, words = BAD_RECORDS["missing_feature"]
    bad = _file_with_bad_third_record(tmp_path, make())
    pattern = str(tmp_path / "*.tfrecord")
    dataset = make_dataset(pattern, SPEC, batch_size=4).map(lambda x, y: ((x["frames"], x["mask"]), y))
    frames, mask = keras.Input((T, SPEC.feature_size)), keras.Input((T,))
    pooled = keras.ops.sum(frames * mask[..., None], axis=1)
    model = keras.Model([frames, mask], keras.layers.Dense(SPEC.num_classes, activation="sigmoid")(pooled))
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    source = make_dataset(pattern, SPEC, batch_size=4)
    with pytest.raises(DataError) as info:
        with data_errors(source):
            model.fit(dataset, epochs=1, verbose=0)
    _assert_names(info.value, bad, words)


# ----------------------------------------------------------------------------- training on them


def test_distiller_fit_on_float_records_of_variable_length(clips):
    files, _ = clips
    keras.utils.set_random_seed(0)
    teacher, student = _small_model("teacher"), _small_model("student", num_frames=2)
    pretrain = Distiller(None, teacher, k=None)
    pretrain.compile(optimizer=keras.optimizers.Adam(0.01))
    pretrain.fit(make_dataset(files, SPEC, batch_size=4, repeat=True), steps_per_epoch=6, epochs=1, verbose=0)
    distiller = Distiller(teacher, student, k=2, sampler="uniform")
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    history = distiller.fit(make_dataset(files, SPEC, batch_size=4, shuffle=True, seed=1, repeat=True),
                            steps_per_epoch=6, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 3 and all(np.isfinite(losses)), losses
    predictions = distiller.predict(make_dataset(files, SPEC, batch_size=4, k=2), verbose=0)["predictions"]
    assert predictions.shape == (2 * (T + 3), SPEC.num_classes)
    assert np.all((predictions >= 0) & (predictions <= 1))
