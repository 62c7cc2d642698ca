"""The zoo in every install: an sdist and the wheel built from it carry the configs and weights."""

import os
import pathlib
import shutil
import subprocess
import sys

import kdzoo

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "kdzoo", "zoo_configs", "pretrained")

CHECK = """
import json, pathlib, sys
import numpy as np
import kdzoo
from kdzoo.zoo import registry

assert pathlib.Path(kdzoo.__file__).parent == pathlib.Path(sys.argv[1]) / "kdzoo", kdzoo.__file__
reg = registry.get_registry()
names = kdzoo.list_models()
trained = kdzoo.list_models(pretrained=True)
student = kdzoo.load("netvlad_student_k2.audioset", weights="pretrained")  # verifies the sha256
probs = student({"frames": np.zeros((1, 2, 128), "float32"), "mask": np.ones((1, 2), "float32")})["predictions"]
card = kdzoo.model_card("netvlad_student_k2.audioset")
print(json.dumps({"names": names, "trained": trained, "config_dir": str(reg.config_dir),
                  "sum": float(np.sum(probs)), "sha256": card["sha256"]}))
"""


def _run(args, **kwargs):
    run = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert run.returncode == 0, f"{args}\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return run


def test_sdist_and_wheel_carry_the_zoo(tmp_path):
    import json

    # A copy of the sources, so that the build leaves nothing in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCE:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
         cwd=src)
    (sdist,) = dist.glob("kdzoo-*.tar.gz")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
          str(sdist)], cwd=tmp_path)
    (wheel,) = dist.glob("kdzoo-*.whl")
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(target),
          str(wheel)], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KDZOO_ZOO_CONFIGS", "KDZOO_PRETRAINED")}
    env["PYTHONPATH"] = str(target)
    report = json.loads(_run([sys.executable, "-c", CHECK, str(target)], cwd=elsewhere, env=env).stdout
                        .strip().splitlines()[-1])

    assert report["names"] == kdzoo.list_models()
    assert report["trained"] == kdzoo.list_models(pretrained=True) and len(report["trained"]) >= 1
    assert report["config_dir"] == str(target / "kdzoo" / "zoo_configs")
    assert report["sha256"] == kdzoo.model_card("netvlad_student_k2.audioset")["sha256"]
    assert report["sum"] > 0.0
    installed = {p.relative_to(target / "kdzoo" / "pretrained") for p in (target / "kdzoo" / "pretrained").rglob("*")
                 if p.is_file()}
    shipped = {p.relative_to(REPO_ROOT / "pretrained") for p in (REPO_ROOT / "pretrained").rglob("*") if p.is_file()}
    assert installed == shipped
    # The console script is installed too.
    assert (target / "bin" / "kdzoo").is_file()
