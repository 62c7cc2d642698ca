"""Mixup batches (`kdzoo.distillation.mixup`) and the Distiller / recipe that use them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdzoo.distillation import Distiller
from kdzoo.distillation.mixup import mixup_batch, mixup_weights
from kdzoo.models import build_model
from kdzoo.training import teacher_distiller
from kdzoo.zoo.config import ZooConfig

pytestmark = pytest.mark.unit


def test_mixup_batch_matches_a_numpy_mix_with_the_drawn_weights_and_partners():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(8, 5, 3)).astype("float32")
    mask = np.ones((8, 5), "float32")
    mask[5:, 3:] = 0.0  # three shorter videos
    labels = (rng.random((8, 4)) < 0.3).astype("float32")
    mixed, mixed_labels = mixup_batch({"frames": frames, "mask": mask}, labels, alpha=0.4, seed=3, step=7)
    lam, partner = (np.asarray(t) for t in mixup_weights(8, 0.4, seed=3, step=7))
    assert sorted(partner.tolist()) == list(range(8))  # a permutation of the batch
    np.testing.assert_allclose(mixed["frames"], lam[:, None, None] * frames + (1 - lam[:, None, None]) * frames[partner],
                               atol=1e-6)
    np.testing.assert_allclose(mixed_labels, lam[:, None] * labels + (1 - lam[:, None]) * labels[partner], atol=1e-6)
    np.testing.assert_array_equal(mixed["mask"], np.maximum(mask, mask[partner]))
    # deterministic in (seed, step), different across steps
    again, _ = mixup_batch({"frames": frames, "mask": mask}, labels, alpha=0.4, seed=3, step=7)
    np.testing.assert_array_equal(again["frames"], mixed["frames"])
    other, _ = mixup_batch({"frames": frames, "mask": mask}, labels, alpha=0.4, seed=3, step=8)
    assert not np.allclose(other["frames"], mixed["frames"])


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_weights_follow_beta_alpha_alpha(alpha):
    lam = np.asarray(mixup_weights(20_000, alpha, seed=1, step=0)[0])
    assert lam.min() >= 0.0 and lam.max() <= 1.0
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert abs(lam.mean() - 0.5) < 0.01
    assert abs(lam.var() - 1.0 / (4 * (2 * alpha + 1))) < 0.01


@pytest.mark.parametrize("alpha", [0, -1.0, True, "0.2"])
def test_mixup_weights_reject_a_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        mixup_weights(4, alpha)


def _tiny_model(name):
    return build_model({"family": "netvlad", "feature_size": 6, "num_classes": 5, "num_frames": 4,
                        "aggregator": {"num_clusters": 2, "output_size": 4}, "head": {"num_mixtures": 1},
                        "name": name})


def test_distiller_trains_on_mixed_batches_and_evaluates_on_clean_ones():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = {"frames": rng.normal(size=(16, 4, 6)).astype("float32"), "mask": np.ones((16, 4), "float32")}
    y = (rng.random((16, 5)) < 0.4).astype("float32")
    model = _tiny_model("mixed")
    distiller = Distiller(None, model, k=None, mixup_alpha=0.5, seed=2)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: only the loss is compared
    train_loss = distiller.train_on_batch(x, y, return_dict=True)["ce_loss"]
    clean_loss = distiller.test_on_batch(x, y, return_dict=True)["ce_loss"]
    # the training step's loss is that of the mixed batch of step 0, the test step's the clean one
    mixed_x, mixed_y = mixup_batch(x, y, 0.5, seed=2, step=0)
    expected_mixed = keras.losses.binary_crossentropy(mixed_y, model(mixed_x)["predictions"])
    expected_clean = keras.losses.binary_crossentropy(y, model(x)["predictions"])
    np.testing.assert_allclose(train_loss, float(tf.reduce_mean(expected_mixed)), rtol=1e-4)
    np.testing.assert_allclose(clean_loss, float(tf.reduce_mean(expected_clean)), rtol=1e-4)
    assert abs(train_loss - clean_loss) > 1e-4
    restored = Distiller.from_config(distiller.get_config())
    assert restored.mixup_alpha == 0.5
    with pytest.raises(ValueError, match="mixup_alpha"):
        Distiller(None, _tiny_model("bad"), k=None, mixup_alpha=-0.1)


def test_recipe_teacher_mixup_reaches_the_teacher_distiller():
    raw = {"family": "netvlad", "dataset": "audioset", "k": [1, 2], "sampler": "uniform",
           "model": {"aggregator": {"num_clusters": 2, "output_size": 4}, "head": {"num_mixtures": 1}}}
    config = ZooConfig.from_dict({**raw, "training": {"teacher_mixup": 0.2}})
    teacher = build_model(config.model_config("teacher"))
    assert teacher_distiller(config, teacher).mixup_alpha == 0.2
    assert teacher_distiller(ZooConfig.from_dict(raw), teacher).mixup_alpha == 0.0
    for bad in (-0.5, "x", True):
        with pytest.raises(ValueError, match="teacher_mixup"):
            ZooConfig.from_dict({**raw, "training": {"teacher_mixup": bad}})
