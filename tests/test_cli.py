"""The `kdzoo` command: the README's main job and the zoo commands."""

import json

import pytest

import kdzoo
from kdzoo.cli import main

DEMO_PAIR = ("netvlad_teacher.audioset", "netvlad_student_k2.audioset")
needs_demo_pair = pytest.mark.skipif(
    not set(DEMO_PAIR) <= set(kdzoo.list_models(pretrained=True)), reason="demo pair not trained yet"
)


@needs_demo_pair
def test_demo_runs_without_data_and_prints_both_models(capsys):
    assert main(["demo", "--json"]) == 0
    out = capsys.readouterr().out
    for row in ("frames seen", "parameters", "FLOPs / video", "latency, batch 1", "latency, batch 64",
                "card map (eval split)", "same student w/o teacher"):
        assert row in out, row
    report = json.loads(out[out.index("{"):])
    assert report["cost"]["teacher"]["num_frames"] == 10 and report["cost"]["student"]["num_frames"] == 2
    assert report["measured"] == {}
    # The headline is end to end: the VGGish architecture on 10 vs 2 frames plus each classifier.
    assert "End to end (vggish encoder" in out and "no encoder weights" in out
    assert "end to end GFLOPs (+vggish)" in out and "end to end ms, batch 1" in out
    e2e = report["end_to_end"]
    assert e2e["encoder"]["flops_per_frame"] == 1_730_314_368
    assert e2e["teacher"]["flops"] == report["cost"]["teacher"]["flops"] + 10 * 1_730_314_368
    assert abs(e2e["ratios"]["flops"] / 0.2 - 1) < 0.05


@needs_demo_pair
def test_demo_evaluates_both_models_on_user_data(capsys, audioset_dir):
    path = str(audioset_dir / "eval-00-of-04.tfrecord")
    assert main(["demo", "--data", path, "--take", "256", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    for role in ("teacher", "student"):
        assert report["measured"][role]["videos"] == 256
        assert 0.0 < report["measured"][role]["gap"] <= 1.0


def test_card_and_list(capsys):
    assert main(["card", "hrnn_student_k10.yt8m"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["num_frames"] == 10 and card["pretrained"] is False
    assert main(["list", "hrnn_student_k1*"]) == 0
    out = capsys.readouterr().out
    assert "hrnn_student_k10.yt8m" in out and "hrnn_student_k15.yt8m" in out


def test_unknown_name_is_a_clear_error():
    with pytest.raises(kdzoo.zoo.UnknownModelError, match="Did you mean"):
        main(["card", "hrnn_studen_k10"])
