"""Whole videos in, predictions out: WholeVideoClassifier samples the card's k frames inside."""

import keras
import numpy as np
import pytest

import kdzoo
from kdzoo import export, sampling
from kdzoo.models import build_model
from kdzoo.whole_video import WholeVideoClassifier

LENGTHS = (1, 2, 3, 10, 25)  # shorter than k, equal to N, longer than N


def videos(width, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, width)).astype("float32") for n in LENGTHS]


def bare(model, video, idx):
    x = {"frames": video[idx][None], "mask": np.ones((1, len(idx)), "float32")}
    return np.asarray(model(x, training=False)["predictions"])[0]


def test_pretrained_student_on_whole_videos_matches_sampling_by_hand():
    name = "netvlad_student_k2.audioset"
    if name not in kdzoo.list_models(pretrained=True):
        pytest.skip(f"{name} not trained")
    clf = kdzoo.load(name, whole_video=True)
    card = kdzoo.model_card(name)
    assert isinstance(clf, WholeVideoClassifier) and (clf.k, clf.sampler) == (card["num_frames"], card["sampler"])
    clips = videos(128)
    got = clf.predict_videos(clips, batch_size=2)["predictions"]
    assert got.shape == (len(clips), 527)
    for row, clip in enumerate(clips):
        idx = sampling.sample_indices_numpy(len(clip), clf.k, clf.sampler)
        np.testing.assert_allclose(got[row], bare(clf.model, clip, idx), atol=1e-5)


@pytest.mark.parametrize("sampler", ["uniform", "random", "first_middle_last"])
def test_same_frames_as_the_keras_export(sampler):
    keras.utils.set_random_seed(0)
    student = build_model({"family": "netvlad", "feature_size": 6, "num_classes": 5, "num_frames": 3,
                           "aggregator": {"num_clusters": 2, "output_size": 8}, "head": {"num_mixtures": 1}})
    clf = WholeVideoClassifier(student, k=3, sampler=sampler)
    served = export.serving_model(student, 3, sampler)
    clips = videos(6, seed=1)
    got = clf.predict_videos(clips)
    for row, clip in enumerate(clips):
        expected = served(clip)
        for output in ("predictions", "embedding"):
            np.testing.assert_allclose(got[output][row], np.asarray(expected[output]), atol=1e-5)
    # A padded batch with a mask gives each video's own outputs.
    longest = max(LENGTHS)
    frames = np.stack([np.pad(c, [(0, longest - len(c)), (0, 0)]) for c in clips])
    mask = (np.arange(longest)[None] < np.array(LENGTHS)[:, None]).astype("float32")
    np.testing.assert_allclose(np.asarray(clf({"frames": frames, "mask": mask})["predictions"]),
                               got["predictions"], atol=1e-5)


def test_teacher_sees_its_first_n_frames_padded(tmp_path):
    keras.utils.set_random_seed(2)
    teacher = build_model({"family": "pooling", "feature_size": 4, "num_classes": 3, "num_frames": 10,
                           "aggregator": {"mode": "mean"}, "head": {"num_mixtures": 1}})
    clf = WholeVideoClassifier(teacher)
    clips = videos(4, seed=2)
    got = clf.predict_videos(clips)["predictions"]
    for row, clip in enumerate(clips):
        n = min(len(clip), 10)
        frames = np.zeros((1, 10, 4), "float32")
        frames[0, :n] = clip[:n]
        mask = (np.arange(10) < n).astype("float32")[None]
        np.testing.assert_allclose(got[row], np.asarray(teacher({"frames": frames, "mask": mask})["predictions"])[0],
                                   atol=1e-5)
    clf.save(tmp_path / "clf.keras")
    restored = keras.saving.load_model(tmp_path / "clf.keras")
    assert isinstance(restored, WholeVideoClassifier) and restored.k is None
    np.testing.assert_allclose(restored.predict_videos(clips)["predictions"], got, atol=1e-6)


def test_bad_inputs_are_clear_errors():
    student = build_model({"family": "pooling", "feature_size": 4, "num_classes": 3, "num_frames": 2})
    with pytest.raises(ValueError, match="built for 2 frames"):
        WholeVideoClassifier(student, k=3)
    with pytest.raises(ValueError, match="Unknown sampler"):
        WholeVideoClassifier(student, k=2, sampler="sometimes")
    clf = WholeVideoClassifier(student, k=2)
    with pytest.raises(ValueError, match=r"video 1 of shape \(frames, 4\)"):
        clf.predict_videos([np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(ValueError, match=r"\(batch, frames, 4\)"):
        clf(np.zeros((1, 3, 5), "float32"))
