"""Readable data errors: which file, which record, what is wrong."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence

import tensorflow as tf

__all__ = ["DataError", "data_errors", "iterate", "clean_tf_message", "locate_corrupt_file"]


class DataError(ValueError):
    """A problem with the input data; the message names the file and the problem.

    Attributes ``file`` and ``record`` (index within the file) are set when known.
    """

    def __init__(self, message: str, file: str | None = None, record: int | None = None):
        super().__init__(message)
        self.file = file
        self.record = record


_NOISE = [
    re.compile(r"\{\{function_node [^}]*\}\}\s*"),
    re.compile(r"\s*\[Op:[^\]]*\](\s*name:\s*\S*)?\s*$"),
    re.compile(r"\s*\[\[\{\{node [^}]*\}\}\]\]"),
    re.compile(r"Error in user-defined function passed to \S+ transformation with iterator: \S+: "),
]
_NAME = re.compile(r"^(?:.*?)Name: (?P<name>.+? \(record \d+\)), (?P<rest>.*)$", re.S)
_PROTO = re.compile(r"(?:Invalid protocol message input|Could not parse example input)(?:, value: '.*?')?,? "
                    r"example id: (?P<name>.+? \(record \d+\))", re.S)
_IN_EXAMPLE = re.compile(r"^(?P<rest>.*?) in example (?P<name>.+? \(record \d+\))\s*$", re.S)
_PREFIX = re.compile(r"^(?P<file>.+?) \(record (?P<record>\d+)\): ")


def clean_tf_message(message: str) -> str:
    """Strip TF op/function noise from an OpError message and normalise known cases."""
    msg = message
    # tf.function errors start with "Graph execution error: Detected at node ... File ..." paragraphs.
    paragraphs = msg.split("\n\n")
    while len(paragraphs) > 1 and paragraphs[0].lstrip().startswith(("Graph execution error", "Detected at node",
                                                                      "File ")):
        paragraphs.pop(0)
    msg = "\n\n".join(paragraphs)
    for pat in _NOISE:
        msg = pat.sub("", msg)
    msg = msg.strip()
    m = _PROTO.search(msg)
    if m:
        return f"{m.group('name')}: corrupt record: not a valid serialized tf.train.SequenceExample/Example"
    m = _IN_EXAMPLE.match(msg)
    if m:
        return f"{m.group('name')}: {m.group('rest')}"
    m = re.search(r"assertion failed: \[(.*)\]", msg, re.S)
    if m:
        msg = m.group(1)
    msg = msg.replace("\\'", "'").replace('\\"', '"')
    m = _NAME.match(msg)
    if m:
        rest = m.group("rest")
        if "required but could not be found" in rest:
            rest = "missing key: " + re.sub(r"\s*Did you mean .*$", "", rest, flags=re.S)
        msg = f"{m.group('name')}: {rest}"
    return msg.strip()


def _split_file(msg: str):
    m = _PREFIX.match(msg)
    if m:
        return m.group("file"), int(m.group("record"))
    return None, None


def locate_corrupt_file(files: Iterable[str]):
    """Find the first file whose TFRecord framing is broken.

    Returns ``(file, good_records, message)`` or None when every file reads.
    Reads every record of every file (no parsing), so it is only used on the
    error path.
    """
    for f in files:
        n = 0
        try:
            for _ in tf.data.TFRecordDataset(f):
                n += 1
        except tf.errors.DataLossError as e:
            return f, n, clean_tf_message(e.message)
        except tf.errors.OpError:
            continue
    return None


def as_data_error(err: tf.errors.OpError, files: Sequence[str] | None = None) -> DataError:
    """Turn a TF OpError raised while reading data into a DataError."""
    msg = clean_tf_message(err.message or str(err))
    if isinstance(err, tf.errors.DataLossError):
        found = locate_corrupt_file(files) if files else None
        if found:
            f, n, detail = found
            return DataError(
                f"{f}: corrupt or truncated TFRecord file (DataLossError after {n} good records: {detail})",
                file=f,
                record=n,
            )
        return DataError(f"corrupt or truncated TFRecord file (DataLossError: {msg})")
    if isinstance(err, tf.errors.NotFoundError):
        return DataError(f"file not found: {msg}")
    # A message from parse_batch without record names says "batch record <i>": which batch is unknown.
    file, record = _split_file(msg)
    return DataError(msg, file=file, record=record)


def _locators(source) -> list:
    """The ``data_error`` methods of the ``make_dataset`` datasets in ``source`` (one, or a sequence)."""
    items = source if isinstance(source, (list, tuple)) else [source]
    return [item.data_error for item in items if callable(getattr(item, "data_error", None))]


@contextlib.contextmanager
def data_errors(source=None):
    """Re-raise TF OpErrors raised in the block as DataError naming file, record and problem.

    ``source``: the dataset(s) the block reads, as returned by ``make_dataset``
    (they locate the bad record), or the input ``files`` (so corrupt/truncated
    TFRecords, whose DataLossError carries no file name, can be traced to the
    file). Wrap ``model.fit(dataset)`` or any other use of a dataset with it::

        with data_errors(train):
            model.fit(train, epochs=3)
    """
    try:
        yield
    except DataError:
        raise
    except tf.errors.OutOfRangeError:
        raise
    except tf.errors.OpError as e:
        locators = _locators(source)
        if locators:
            errors = [locate(e) for locate in locators]
            located = [err for err in errors if err.file is not None]
            raise (located or errors)[0] from e
        files = source if isinstance(source, (list, tuple)) and all(isinstance(f, str) for f in source) else None
        raise as_data_error(e, files) from e


def iterate(dataset: tf.data.Dataset, files: Sequence[str] | None = None) -> Iterator:
    """Iterate over ``dataset`` raising DataError (see ``data_errors``) on bad data.

    A ``make_dataset`` dataset already does this when iterated; ``iterate``
    serves any other dataset over the ``files``.
    """
    it = iter(dataset)
    source = files if files is not None else dataset
    while True:
        with data_errors(source):
            try:
                item = next(it)
            except StopIteration:
                return
        yield item
