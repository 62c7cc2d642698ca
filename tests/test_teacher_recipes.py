"""Teacher recipes: random frame subsets (`teacher_train_k`) and distillation from trained
teachers (`teacher_distill_from`, averaged by `build_ensemble`)."""

import keras
import numpy as np
import pytest
import yaml

from kdzoo.models import build_model
from kdzoo.training import teacher_distiller
from kdzoo.zoo.config import ZooConfig

pytestmark = pytest.mark.unit


def raw(**extra):
    config = {"family": "netvlad", "dataset": "audioset", "k": [1, 2], "sampler": "uniform",
              "model": {"aggregator": {"num_clusters": 2, "output_size": 4}, "head": {"num_mixtures": 1}}}
    config.update(extra)
    return config


def test_config_teacher_train_k_makes_the_teacher_distiller_train_on_subsets():
    config = ZooConfig.from_dict(raw(training={"teacher_train_k": [5, 10]}))
    assert config.training["teacher_train_k"] == [5, 10]
    teacher = build_model(config.model_config("teacher"))
    distiller = teacher_distiller(config, teacher)
    assert (distiller.k, distiller.train_k, distiller.train_sampler, distiller.teacher) == (None, (5, 10), "random", None)
    plain = teacher_distiller(ZooConfig.from_dict(raw()), teacher)
    assert (plain.k, plain.train_k) == (None, None)
    for bad in ([0, 10], [5, 11], [6, 5], 5, [1.0, 2]):
        with pytest.raises(ValueError, match="teacher_train_k"):
            ZooConfig.from_dict(raw(training={"teacher_train_k": bad}))


def _member(tmp_path, name, model_overrides, seed):
    """A recipe file and its teacher's trained (here: random) weights."""
    recipe = raw(model={"aggregator": {"num_clusters": 2, "output_size": 4}, "head": {"num_mixtures": 1},
                        **model_overrides})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    keras.utils.set_random_seed(seed)
    model = build_model(ZooConfig.from_dict(recipe).model_config("teacher"))
    weights = tmp_path / f"{name}.weights.h5"
    model.save_weights(weights)
    return {"config": str(path), "weights": str(weights)}, model


def test_teacher_distill_from_teaches_the_teacher_with_the_members_mean_prediction(tmp_path):
    (first, model_a), (second, model_b) = (_member(tmp_path, "a", {}, 1),
                                           _member(tmp_path, "b", {"hidden_size": 8}, 2))
    config = ZooConfig.from_dict(raw(teacher_distill_from=[first, second], training={"teacher_train_k": [3, 10]}))
    student = build_model(config.model_config("teacher"))
    distiller = teacher_distiller(config, student)
    assert distiller.k is None and distiller.train_k == (3, 10)
    assert (distiller.ce_weight, distiller.representation_weight, distiller.prediction_weight) == (1.0, 0.0, 1.0)
    rng = np.random.default_rng(0)
    inputs = {"frames": rng.normal(size=(6, 10, 128)).astype("float32"), "mask": np.ones((6, 10), "float32")}
    expected = (np.asarray(model_a(inputs)["predictions"]) + np.asarray(model_b(inputs)["predictions"])) / 2
    np.testing.assert_allclose(np.asarray(distiller.teacher(inputs)["predictions"]), expected, atol=1e-6)
    assert not distiller.teacher.trainable  # serial: the members stay as they are
    labels = (rng.random((6, 527)) > 0.99).astype("float32")
    distiller.compile(optimizer="adam")
    history = distiller.fit(inputs, labels, epochs=2, batch_size=3, verbose=0).history
    assert np.isfinite(history["pred_loss"]).all() and np.isfinite(history["ce_loss"]).all()
    np.testing.assert_allclose(np.asarray(distiller.teacher(inputs)["predictions"]), expected, atol=1e-6)
    # one member is used as it is
    alone = teacher_distiller(ZooConfig.from_dict(raw(teacher_distill_from=[first])), student)
    np.testing.assert_allclose(np.asarray(alone.teacher(inputs)["predictions"]),
                               np.asarray(model_a(inputs)["predictions"]), atol=1e-6)


@pytest.mark.parametrize("bad", ["pretrained/x", [{"config": "a.yaml"}], [{"config": "a.yaml", "weights": ""}],
                                 [{"config": "a.yaml", "weights": "w.h5", "k": 2}]])
def test_teacher_distill_from_must_list_recipes_and_weights(bad):
    with pytest.raises(ValueError, match="teacher_distill_from"):
        ZooConfig.from_dict(raw(teacher_distill_from=bad))


def test_teacher_distill_from_refuses_weights_of_another_recipe(tmp_path):
    first, _ = _member(tmp_path, "a", {}, 1)
    second, _ = _member(tmp_path, "b", {"hidden_size": 8}, 2)
    wrong = {"config": first["config"], "weights": second["weights"]}
    config = ZooConfig.from_dict(raw(teacher_distill_from=[first, wrong]))
    with pytest.raises(ValueError, match="do not fit"):
        teacher_distiller(config, build_model(config.model_config("teacher")))
