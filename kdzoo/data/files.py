"""Finding the input files: globs, lists and comma-separated patterns, local or remote.

All file I/O goes through ``tf.io.gfile`` / ``tf.data.TFRecordDataset``, so local
paths, globs and ``gs://`` work; other schemes (s3://, hdfs://, ...) need the
``kdzoo[io]`` extra (tensorflow-io).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kdzoo.data.errors import data_errors

__all__ = ["list_files", "resolve_files", "count_records"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_NATIVE_SCHEMES = ("", "file", "gs")

IO_EXTRA_MESSAGE = (
    "Reading {scheme}:// paths ({pattern}) needs the kdzoo[io] extra (pip install 'kdzoo[io]', i.e. "
    "tensorflow-io), which registers the {scheme} file system with TensorFlow. Note that tensorflow-io 0.37 "
    "does not load on TensorFlow >= 2.17; copy the data locally or to gs:// if it cannot be installed."
)


def _ensure_filesystem(pattern: str) -> None:
    m = _SCHEME.match(pattern)
    scheme = m.group(1).lower() if m else ""
    if scheme in _NATIVE_SCHEMES:
        return
    try:
        import tensorflow_io  # noqa: F401
    except Exception as e:  # ImportError, or a failure to load its ops on this TF
        raise ImportError(IO_EXTRA_MESSAGE.format(scheme=scheme, pattern=pattern)) from e


def list_files(pattern: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Sorted, de-duplicated files matching the glob(s).

    ``pattern``: a path/glob, a comma-separated string of them, or a sequence.
    Raises FileNotFoundError naming any pattern that matches no file.
    """
    if isinstance(pattern, (str, os.PathLike)):
        patterns = [p.strip() for p in os.fspath(pattern).split(",")]
    else:
        patterns = [os.fspath(p).strip() for p in pattern]
    patterns = [p for p in patterns if p]
    if not patterns:
        raise FileNotFoundError(f"No file pattern given (got {pattern!r}).")
    found: set[str] = set()
    for p in patterns:
        _ensure_filesystem(p)
        try:
            matches = tf.io.gfile.glob(p)
        except tf.errors.NotFoundError:
            matches = []
        files = [f for f in matches if not tf.io.gfile.isdir(f)]
        if not files:
            extra = " (only directories matched; use e.g. dir/*.tfrecord)" if matches else ""
            raise FileNotFoundError(f"No files match the pattern {p!r}{extra}.")
        found.update(files)
    return sorted(found)


def resolve_files(files) -> list[str]:
    """The files to read, in reading order.

    A list or tuple of plain paths (no glob characters) is kept as given, in
    its order (e.g. one worker's shard of the files); anything else goes
    through ``list_files`` (sorted). Raises FileNotFoundError naming a missing file.
    """
    if isinstance(files, (list, tuple)) and files and all(isinstance(f, (str, os.PathLike)) for f in files):
        paths = [os.fspath(f) for f in files]
        if not any(c in f for f in paths for c in "*?[,"):
            missing = [f for f in paths if not tf.io.gfile.exists(f)]
            if missing:
                raise FileNotFoundError(f"No files match the pattern {missing[0]!r}.")
            return paths
    return list_files(files)


def count_records(files) -> int:
    """Number of records in the file(s) (a glob, list or comma-separated string)."""
    files = resolve_files(files)
    ds = tf.data.TFRecordDataset(files)
    with data_errors(files):
        return int(ds.reduce(np.int64(0), lambda n, _: n + 1))
