"""Zoo-config overrides per role and per student: smaller student heads, H-RNN blocks per k."""

import pathlib

import pytest

from kdzoo import profiling
from kdzoo.models import build_model
from kdzoo.zoo.config import ZooConfig

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[1]


def raw(**extra):
    config = {
        "family": "hrnn",
        "dataset": "audioset",
        "k": [1, 2, 3, 5],
        "model": {"aggregator": {"units": 8, "block_size": 5, "cell": "gru"}, "head": {"num_mixtures": 1}},
    }
    config.update(extra)
    return config


def test_student_overrides_merge_into_the_aggregator_and_head():
    config = ZooConfig.from_dict(raw(student={"aggregator": {"units": 4}, "head": {"l2": 1e-5}, "dropout": 0.1}))
    student = config.model_config("student", 2)
    assert student["aggregator"] == {"units": 4, "block_size": 5, "cell": "gru"}
    assert student["head"] == {"num_mixtures": 1, "l2": 1e-5} and student["dropout"] == 0.1
    assert config.model_config("teacher")["aggregator"] == {"units": 8, "block_size": 5, "cell": "gru"}


def test_per_student_overrides_apply_to_their_k_only():
    config = ZooConfig.from_dict(raw(students={1: {"aggregator": {"block_size": 1}}, 2: {"aggregator": {"block_size": 2}}}))
    blocks = {k: config.model_config("student", k)["aggregator"]["block_size"] for k in config.ks}
    assert blocks == {1: 1, 2: 2, 3: 5, 5: 5}
    assert config.model_config("teacher")["aggregator"]["block_size"] == 5
    with pytest.raises(ValueError, match="'students' to map student frame counts"):
        ZooConfig.from_dict(raw(students={4: {"aggregator": {"block_size": 4}}}))


def test_hrnn_students_with_a_block_of_k_cost_less_for_smaller_k():
    blocks = {k: {"aggregator": {"block_size": k}} for k in (1, 2, 3)}
    config = ZooConfig.from_dict(raw(students=blocks))
    plain = ZooConfig.from_dict(raw())
    cost = {k: profiling.flops(build_model(config.model_config("student", k))) for k in config.ks}
    assert cost[1] < cost[2] < cost[3] < cost[5]
    # Without the override every k <= 5 pads to one block of 5 and costs the same.
    same = {profiling.flops(build_model(plain.model_config("student", k))) for k in (1, 2, 3, 5)}
    assert len(same) == 1 and cost[5] in same


def test_yt8m_netvlad_student_head_keeps_the_aggregator_saving():
    config = ZooConfig.from_file(ROOT / "zoo_configs" / "netvlad.yt8m.yaml")
    teacher = build_model(config.model_config("teacher"))
    student = build_model(config.model_config("student", 10))
    assert student.get_layer("embedding").output.shape[-1] == 72
    assert teacher.get_layer("embedding").output.shape[-1] == 512
    assert profiling.flops(student) / profiling.flops(teacher) <= 0.10
