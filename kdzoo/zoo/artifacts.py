"""Pretrained entries on disk: ``pretrained/<name>/{config.json, model.weights.h5, metadata.json}``.

``metadata.json`` pins the sha256 of ``model.weights.h5``; a file that does not match is
refused. Every write goes to a temporary file first and is renamed into place, so a crash
never leaves a half-written entry. Nothing here unpickles: weights are HDF5 tensors loaded
into a model rebuilt from ``config.json`` by `kdzoo.models.build_model`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

import keras

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


class WeightsIntegrityError(ValueError):
    """A weights file whose sha256 differs from the one its entry pins."""


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same folder and a rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _atomic_save(save, path: pathlib.Path, tmp: pathlib.Path) -> None:
    """``save(tmp)`` then rename `tmp` to `path`; `tmp` is removed on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def atomic_save_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.save_weights` to a temporary ``.weights.h5`` file, then rename."""
    path = pathlib.Path(path)
    _atomic_save(model.save_weights, path, path.with_name(f".{path.stem}.tmp.weights.h5"))


def atomic_save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.save` to a temporary ``.keras`` file, then rename."""
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Expected a path ending in '.keras'. Received: {path}")
    _atomic_save(model.save, path, path.with_name(f".{path.stem}.tmp.keras"))


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def verify_weights(path: str | os.PathLike, expected_sha256: str) -> None:
    """Raises `WeightsIntegrityError` unless the file's sha256 is `expected_sha256`."""
    found = sha256_of(path)
    if found != expected_sha256:
        raise WeightsIntegrityError(
            f"Refusing to load {path}: its sha256 is {found} but the registry pins "
            f"{expected_sha256}. The file is corrupt, truncated or was modified; delete it "
            "and restore it from the repository (or retrain the entry)."
        )


def write_entry(
    directory: str | os.PathLike,
    model: keras.Model,
    model_config: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Writes a pretrained entry (weights, config, metadata with the weights' sha256)."""
    directory = pathlib.Path(directory)
    atomic_save_weights(model, directory / WEIGHTS_FILE)
    atomic_write_json(directory / CONFIG_FILE, dict(model_config))
    meta = dict(metadata)
    meta["sha256"] = sha256_of(directory / WEIGHTS_FILE)
    meta["weights_bytes"] = (directory / WEIGHTS_FILE).stat().st_size
    atomic_write_json(directory / METADATA_FILE, meta)
    return meta
