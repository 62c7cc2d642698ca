"""Zoo names: parse and format ``<family>_<role>[_k<k>|_elastic][.<dataset>]``."""

import pytest

from kdzoo.zoo import get_registry
from kdzoo.zoo.names import ZooName, elastic_name, format_name, parse_name, student_name, teacher_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name, fields",
    [
        ("netvlad_teacher.audioset", ("netvlad", "teacher", None, "audioset", False)),
        ("netvlad_student_k2.audioset", ("netvlad", "student", 2, "audioset", False)),
        ("hrnn_student_k10", ("hrnn", "student", 10, None, False)),
        ("nextvlad_student_k30.yt8m", ("nextvlad", "student", 30, "yt8m", False)),
        ("netvlad_student_elastic.audioset", ("netvlad", "student", None, "audioset", True)),
        ("netvlad_student_k5.audioset-tuned", ("netvlad", "student", 5, "audioset-tuned", False)),
    ],
)
def test_hand_checked_names_parse_and_format_back(name, fields):
    parsed = parse_name(name)
    assert (parsed.family, parsed.role, parsed.k, parsed.dataset, parsed.elastic) == fields
    assert str(parsed) == name
    assert parsed.arch == name.split(".", 1)[0]
    family, role, k, dataset, elastic = fields
    assert format_name(family, role, k, dataset, elastic=elastic) == name


def test_helpers_spell_each_role():
    assert teacher_name("hrnn") == "hrnn_teacher"
    assert teacher_name("hrnn", "yt8m") == "hrnn_teacher.yt8m"
    assert student_name("netvlad", 3, "audioset") == "netvlad_student_k3.audioset"
    assert elastic_name("netvlad", "audioset") == "netvlad_student_elastic.audioset"


@pytest.mark.parametrize(
    "name, message",
    [
        ("netvlad", "not a zoo name"),
        ("netvlad_student", "needs its frame count k"),
        ("netvlad_teacher_k2", "carries no k"),
        ("NetVLAD_teacher", "not a zoo name"),
        ("netvlad_student_k0.audioset", "not a zoo name"),
        ("netvlad_student_k2.", "not a zoo name"),
    ],
)
def test_bad_names_say_the_expected_format(name, message):
    with pytest.raises(ValueError, match=message):
        parse_name(name)


def test_field_errors():
    with pytest.raises(ValueError, match="role 'teacher' or 'student'"):
        ZooName("netvlad", "assistant")
    with pytest.raises(ValueError, match="Only a student is elastic"):
        ZooName("netvlad", "teacher", elastic=True)
    with pytest.raises(TypeError, match="model name string"):
        parse_name(3)


def test_every_registry_name_round_trips():
    registry = get_registry()
    assert registry.entries, "the zoo has entries"
    for name, entry in registry.entries.items():
        parsed = parse_name(name)
        assert str(parsed) == name and parsed.arch == entry.arch and parsed.dataset == entry.tag
        assert parsed.family == entry.config.family and parsed.role == entry.role
        assert parsed.elastic == entry.elastic
        assert parsed.k == (entry.num_frames if entry.role == "student" else None)


def test_unknown_name_error_names_the_format():
    from kdzoo.zoo import UnknownModelError

    with pytest.raises(UnknownModelError, match=r"Expected <family>_<role>"):
        get_registry().resolve("resnet50")
