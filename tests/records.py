"""Shared test helpers: frame-level SequenceExamples, TFRecord files and a tiny zoo config."""

import numpy as np
import tensorflow as tf


def sequence_example(video_id, labels, frames_by_feature, id_key="id", label_key="labels"):
    """A frame-level SequenceExample: context id (bytes) and labels (int64), one row per frame.

    A uint8 row is stored as one byte string, a float row as a float list. ``video_id=None`` or
    ``labels=None`` leaves that context key out; every feature named in ``frames_by_feature``
    gets a feature list (empty for a 0-row array), in the dict's order.
    """
    ex = tf.train.SequenceExample()
    if video_id is not None:
        ex.context.feature[id_key].bytes_list.value.append(video_id.encode())
    if labels is not None:
        ex.context.feature[label_key].int64_list.value.extend(int(x) for x in labels)
    for name, rows in frames_by_feature.items():
        fl = ex.feature_lists.feature_list[name]
        for row in rows:
            row = np.asarray(row)
            if np.issubdtype(row.dtype, np.floating):
                fl.feature.add().float_list.value.extend(row.tolist())
            else:
                fl.feature.add().bytes_list.value.append(row.tobytes())
    return ex


def serialized_sequence_example(video_id, labels, frames_by_feature, id_key="id", label_key="labels"):
    """``sequence_example(...)`` serialized to bytes, ready for ``write_tfrecord``."""
    return sequence_example(video_id, labels, frames_by_feature, id_key, label_key).SerializeToString()


def write_tfrecord(path, records):
    """Write serialized records (bytes) to one TFRecord file; returns the path as a string."""
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in records:
            w.write(r)
    return str(path)


def tiny_zoo_yaml(output_size=4, extra=""):
    """A tiny netvlad/audioset zoo config (k=2, 2 clusters, 1 mixture); ``extra`` YAML text is appended."""
    return f"""
family: netvlad
dataset: audioset
k: [2]
sampler: uniform
model:
  aggregator: {{num_clusters: 2, output_size: {output_size}}}
  head: {{num_mixtures: 1}}
""" + extra


def write_audioset_train(folder, videos, files):
    """``files`` AudioSet-layout files ``train-<f>.tfrecord`` in ``folder`` (created); video ``v<i>``
    (labels ``i % 7`` and ``10 + i % 3``, ``1 + i % 10`` random frames) is in file ``i % files``.

    Returns the file paths.
    """
    import pathlib

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    return [
        write_tfrecord(folder / f"train-{f}.tfrecord", (
            serialized_sequence_example(
                f"v{i}", [i % 7, 10 + i % 3],
                {"audio_embedding": rng.integers(0, 256, size=(1 + i % 10, 128), dtype=np.uint8)},
                id_key="video_id")
            for i in range(f, videos, files)))
        for f in range(files)
    ]


def use_tiny_zoo(tmp_path, monkeypatch):
    """Points the registry at a zoo with one tiny AudioSet NetVLAD config and no weights."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "netvlad.audioset.yaml").write_text(tiny_zoo_yaml())
    monkeypatch.setenv("KDZOO_ZOO_CONFIGS", str(configs))
    monkeypatch.setenv("KDZOO_PRETRAINED", str(tmp_path / "pretrained"))
