"""The `kdzoo` command: the README's main job, the zoo commands, quiet output and clear errors."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kdzoo
from kdzoo.cli import COMMANDS, build_parser, main
from kdzoo.cli.demo import baseline_rows
from records import serialized_sequence_example, use_tiny_zoo, write_tfrecord

DEMO_PAIR = ("netvlad_teacher.audioset", "netvlad_student_k2.audioset")
needs_demo_pair = pytest.mark.skipif(
    not set(DEMO_PAIR) <= set(kdzoo.list_models(pretrained=True)), reason="demo pair not trained yet"
)


def kdzoo_command(*args, timeout=300):
    """Runs the real entry point (`python -m kdzoo.cli`) in a fresh process, with the caller's environment."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "kdzoo.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@needs_demo_pair
def test_demo_runs_without_data_and_prints_both_models(capsys):
    assert main(["demo", "--json"]) == 0
    out = capsys.readouterr().out
    for row in ("frames seen", "parameters", "FLOPs / video", "latency, batch 1", "latency, batch 64",
                "card map (eval split)"):
        assert row in out, row
    report = json.loads(out[out.index("{"):])
    # The pair's student card: its seed spread and both no-teacher twins (table rows may wrap).
    assert report["card_baselines"] == dict(baseline_rows(kdzoo.model_card("netvlad_student_k2.audioset")))
    assert any("no teacher" in label for label in report["card_baselines"])
    assert report["cost"]["teacher"]["num_frames"] == 10 and report["cost"]["student"]["num_frames"] == 2
    assert report["measured"] == {}
    # The headline is end to end: the VGGish architecture on 10 vs 2 frames plus each classifier.
    assert "End to end (vggish encoder" in out and "no encoder weights" in out
    assert "end to end GFLOPs (+vggish)" in out and "end to end ms, batch 1" in out
    e2e = report["end_to_end"]
    assert e2e["encoder"]["flops_per_frame"] == 1_730_314_368
    assert e2e["teacher"]["flops"] == report["cost"]["teacher"]["flops"] + 10 * 1_730_314_368
    assert abs(e2e["ratios"]["flops"] / 0.2 - 1) < 0.05


def test_demo_baseline_rows_of_v1_and_v2_cards():
    v1 = {"no_teacher": {"metrics": {"map": 0.17834}}}
    assert baseline_rows(v1) == [("card map, same student w/o teacher", "0.1783")]
    runs = {"distilled": [0.2, 0.21, 0.22], "no_teacher_random": [0.19, 0.2, 0.21], "no_teacher_uniform": [0.18]}
    v2 = {
        "map_over_seeds": {kind: {"mean": float(np.mean(r)), "std": float(np.std(r, ddof=1)) if len(r) > 1 else 0.0,
                                  "runs": r} for kind, r in runs.items()},
        "baselines": {kind: {"metrics": {"map": r[0]}} for kind, r in runs.items() if kind != "distilled"},
    }
    assert baseline_rows(v2) == [
        ("card map, distilled", "0.2100 ± 0.0100"),
        ("card map, no teacher, random k", "0.2000 ± 0.0100"),
        ("card map, no teacher, uniform k", "0.1800"),  # one seed: no spread
    ]
    assert baseline_rows({}) == []


@needs_demo_pair
def test_demo_evaluates_both_models_on_user_data(capsys, audioset_dir):
    path = str(audioset_dir / "eval-00-of-04.tfrecord")
    assert main(["demo", "--data", path, "--take", "256", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    for role in ("teacher", "student"):
        assert report["measured"][role]["videos"] == 256
        assert 0.0 < report["measured"][role]["gap"] <= 1.0


@needs_demo_pair
def test_demo_unknown_pair_lists_the_pairs_that_exist(capsys):
    assert main(["demo", "--family", "hrnn", "--k", "10"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No pretrained pair for --family hrnn --k 10" in err[0]
    assert "--family netvlad --k 2 --dataset audioset" in err[0]


def test_card_and_list(capsys):
    assert main(["card", "hrnn_student_k10.yt8m"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["num_frames"] == 10 and card["pretrained"] is False
    assert main(["list", "hrnn_student_k1*"]) == 0
    out = capsys.readouterr().out
    assert "hrnn_student_k10.yt8m" in out and "hrnn_student_k15.yt8m" in out


def test_unknown_name_is_one_clear_line(capsys):
    assert main(["card", "hrnn_studen_k10"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean" in err and "hrnn_student_k10" in err
    with pytest.raises(kdzoo.zoo.UnknownModelError, match="Did you mean"):
        main(["card", "hrnn_studen_k10", "--verbose"])


# ---------------------------------------------------------------------- quick help, quiet output
def test_help_of_every_command_imports_no_tensorflow():
    commands = sorted({name for name in build_parser()._subparsers._group_actions[0].choices})
    assert {"demo", "list", "card", "train", "distill", "eval", "profile", "export", "tune"} <= set(commands)
    script = (
        "import sys\nfrom kdzoo.cli import main\n"
        f"for args in [['--help']] + [[c, '--help'] for c in {commands!r}]:\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, (args, e.code)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'numpy'))\n"
        "print('HEAVY', heavy)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stdout
    assert all(f"kdzoo {c}" in run.stdout for c in commands)


def test_entry_point_help_answers_without_log_lines():
    run = kdzoo_command("--help")
    assert run.returncode == 0 and run.stderr == ""
    assert "usage: kdzoo" in run.stdout and all(c in run.stdout for c in ("demo", "eval", "export"))


def test_entry_point_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"this is not a TFRecord file" * 4)
    cases = {
        "unknown name": (("eval", "netvlad_studnet_k2", "--data", str(bad)), "Did you mean: netvlad_student_k2"),
        "missing file": (("eval", "netvlad_student_k2.audioset", "--data", str(tmp_path / "none-*.tfrecord")),
                         "No files match"),
        "bad data": (("eval", "netvlad_student_k2.audioset", "--weights", "none", "--data", str(bad)),
                     "TFRecord"),
        "bad argument": (("eval", "netvlad_student_k2.audioset", "--data", str(bad), "--weights", "w.pt"),
                         "Weights file not found"),
    }
    # In a fresh process, the case that reaches TensorFlow's reader: its C++ log lines must not
    # reach the terminal either. The other cases run in this process (each fresh process costs
    # a TensorFlow import).
    for case, (args, expected) in cases.items():
        if case == "bad data":
            run = kdzoo_command(*args)
            code, stderr = run.returncode, run.stderr
        else:
            capsys.readouterr()
            code = main(list(args))
            stderr = capsys.readouterr().err
        # Progress bars (tqdm, on stderr) may come first; the error is one line, the last.
        lines = [line for line in stderr.strip().splitlines() if "batch/s]" not in line]
        assert code == 1, (case, stderr)
        assert len(lines) == 1 and lines[0].startswith(f"kdzoo {args[0]}: error:"), (case, stderr)
        assert expected in lines[0] and "Traceback" not in stderr, (case, stderr)
    run = kdzoo_command(*cases["unknown name"][0], "--verbose")
    assert run.returncode != 0 and "Traceback" in run.stderr and "UnknownModelError" in run.stderr


def test_argparse_errors_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "netvlad_student_k2"])  # --data missing
    assert info.value.code == 2 and "--data" in capsys.readouterr().err


# ---------------------------------------------------------------------- --weights, own models
@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    """A one-config zoo (tiny NetVLAD on the AudioSet layout) and 12 AudioSet-like records."""
    use_tiny_zoo(tmp_path, monkeypatch)
    rng = np.random.default_rng(0)
    records = write_tfrecord(tmp_path / "eval.tfrecord", [
        serialized_sequence_example(f"v{i}", [i % 5, 7], {"audio_embedding": rng.integers(
            0, 256, size=(1 + i % 10, 128), dtype=np.uint8)}, id_key="video_id") for i in range(12)])
    return tmp_path, records


def test_weights_values_are_the_same_in_every_command(tiny_zoo, capsys):
    tmp_path, records = tiny_zoo
    weights = tmp_path / "s.weights.h5"
    student = kdzoo.load("netvlad_student_k2.audioset", weights=None)
    student.save_weights(weights)
    for value in ("none", "default", str(weights)):
        assert main(["eval", "netvlad_student_k2.audioset", "--data", records, "--weights", value]) == 0
        assert json.loads(capsys.readouterr().out)["videos"] == 12
        assert main(["profile", "netvlad_student_k2.audioset", "--weights", value, "--batches", "1",
                     "--repeats", "1", "--no-trace"]) == 0
        assert main(["export", "netvlad_student_k2.audioset", "--weights", value,
                     "--out", str(tmp_path / "e.keras")]) == 0
        capsys.readouterr()
    for command in (["eval", "netvlad_student_k2.audioset", "--data", records],
                    ["export", "netvlad_student_k2.audioset", "--out", str(tmp_path / "e.keras")]):
        assert main([*command, "--weights", "pretrained"]) == 1
        assert "has no pretrained weights" in capsys.readouterr().err


def test_keras_file_as_model_and_as_weights(tiny_zoo, capsys):
    tmp_path, records = tiny_zoo
    keras.utils.set_random_seed(1)
    student = kdzoo.load("netvlad_student_k2.audioset", weights=None)
    same = tmp_path / "same.keras"
    student.save(same)
    other = tmp_path / "other.keras"
    kdzoo.build_model({"family": "pooling", "feature_size": 128, "num_classes": 527, "num_frames": 3,
                       "name": "mine"}).save(other)

    # A .keras of the same architecture works as --weights, and gives the same numbers as the file itself.
    assert main(["eval", "netvlad_student_k2.audioset", "--data", records, "--weights", str(same)]) == 0
    by_weights = json.loads(capsys.readouterr().out)
    assert main(["eval", str(same), "--data", records, "--spec", "audioset"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert by_file["name"] == "same.keras" and by_file["map"] == pytest.approx(by_weights["map"], abs=1e-6)

    # Another architecture is refused as --weights with the call that works, and works as the model.
    assert main(["eval", "netvlad_student_k2.audioset", "--data", records, "--weights", str(other)]) == 1
    err = capsys.readouterr().err
    assert "different architecture" in err and "kdzoo eval PATH --spec" in err
    assert main(["eval", str(other), "--data", records, "--spec", "audioset"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 12
    assert main(["eval", str(other), "--data", records]) == 1
    assert "needs --spec" in capsys.readouterr().err

    assert main(["profile", str(other), "--teacher", "netvlad_teacher.audioset", "--weights", "none",
                 "--batches", "1", "--repeats", "1", "--no-trace", "--json"]) == 0
    out = capsys.readouterr().out
    cost = json.loads(out[out.index("{"):])
    assert cost["student"]["num_frames"] == 3 and cost["teacher"]["num_frames"] == 10
    assert main(["profile", str(other)]) == 1
    assert "needs --teacher" in capsys.readouterr().err

    served = tmp_path / "served.keras"
    assert main(["export", str(other), "--out", str(served)]) == 0
    assert "mine" in capsys.readouterr().out or served.is_file()
    from kdzoo import export  # noqa: F401  (registers the serving layer)

    video = np.random.default_rng(0).normal(size=(17, 128)).astype("float32")
    out = keras.saving.load_model(served)(video)
    idx = kdzoo.sampling.sample_indices_numpy(17, 3, "uniform")
    expected = kdzoo.load(str(other))({"frames": video[idx][None], "mask": np.ones((1, 3), "float32")})
    np.testing.assert_allclose(np.asarray(out["predictions"]), np.asarray(expected["predictions"])[0], atol=1e-5)
