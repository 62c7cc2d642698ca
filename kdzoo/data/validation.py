"""Checking TFRecord files record by record: a report of every problem, or the first one.

Each file is read in chunks that are parsed in batch with the reader's own parser
(every check of ``parse_batch``, fused into one per chunk); only a chunk that fails
is parsed again one record at a time, with messages naming ``"<file> (record <i>)"``
and the problem, to list each bad record.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kdzoo.data.errors import DataError, clean_tf_message
from kdzoo.data.files import resolve_files
from kdzoo.data.records import batch_parser, record_names
from kdzoo.data.spec import DatasetSpec, get_spec

__all__ = ["Problem", "ValidationReport", "validate_records", "first_problem"]

_CHUNK = 256


@dataclasses.dataclass
class Problem:
    """One bad record (or unreadable file): where, and what is wrong."""

    file: str
    record: int | None
    message: str

    def __str__(self):
        return self.message if self.file in self.message else f"{self.file} (record {self.record}): {self.message}"


@dataclasses.dataclass
class ValidationReport:
    """Result of ``validate_records``.

    records: records read; valid: parsed and non-empty; empty: 0-frame videos
    (skipped by make_dataset); truncated: videos longer than max_frames;
    problems: one entry per bad record / unreadable file.
    """

    files: list[str]
    records: int = 0
    valid: int = 0
    empty: int = 0
    truncated: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            p = self.problems[0]
            more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
            raise DataError(f"{p}{more}", file=p.file, record=p.record)

    def __str__(self):
        lines = [f"{len(self.files)} files, {self.records} records: {self.valid} valid, {self.empty} empty "
                 f"(skipped), {self.truncated} truncated to max_frames, {len(self.problems)} problems"]
        lines += [f"  {p}" for p in self.problems[:20]]
        return "\n".join(lines)


def _parsers(spec: DatasetSpec):
    """``(parse_chunk, parse_record)``: the reader's fast parser (one fused check, no
    messages) for whole chunks, and the parser with messages naming the record for
    the records of a chunk that failed."""
    fast, named = batch_parser(spec), batch_parser(spec, named=True)

    def parse_chunk(records):
        out = fast(records)
        return out["length"], out["num_frames"]

    def parse_record(records, filename: str, first_index: int):
        out = named(records, record_names(filename, first_index, tf.size(records)))
        return out["length"], out["num_frames"]

    return parse_chunk, parse_record


def _good_records_before_error(path: str, start: int) -> tuple[int, str]:
    """(records that read, the read error) of a file known to fail at or after record ``start``."""
    n = start
    try:
        for _ in tf.data.TFRecordDataset(path).skip(start):
            n += 1
    except tf.errors.OpError as e:
        return n, e
    raise AssertionError(f"{path}: expected a read error after record {start}")


def _scan(files, spec, max_records, stop_at_first: bool) -> ValidationReport:
    spec = get_spec(spec)
    files = resolve_files(files)
    report = ValidationReport(files=files)
    parse_chunk, parse_record = _parsers(spec)

    def add(problem):
        report.problems.append(problem)
        return stop_at_first

    def count(length, num_frames):
        for n, raw in zip(length.numpy().tolist(), num_frames.numpy().tolist()):
            if n == 0:
                report.empty += 1
            else:
                report.valid += 1
                report.truncated += raw > spec.max_frames

    for f in files:
        it = iter(tf.data.TFRecordDataset(f).batch(_CHUNK))
        start = 0
        while max_records is None or report.records < max_records:
            try:
                records = next(it)
            except StopIteration:
                break
            except tf.errors.OpError:
                good, error = _good_records_before_error(f, start)
                report.records += good - start
                kind = ("corrupt or truncated TFRecord file" if isinstance(error, tf.errors.DataLossError)
                        else "read error")
                if add(Problem(f, good, f"{f}: {kind} after {good} good records "
                                        f"({clean_tf_message(error.message)})")):
                    return report
                break
            if max_records is not None:
                records = records[: max_records - report.records]
            report.records += int(records.shape[0])
            try:
                count(*parse_chunk(records))
            except tf.errors.OpError:
                for i in range(int(records.shape[0])):
                    try:
                        count(*parse_record(records[i:i + 1], f, start + i))
                    except tf.errors.OpError as e:
                        if add(Problem(f, start + i, clean_tf_message(e.message))):
                            return report
            start += int(records.shape[0])
    return report


def validate_records(files, spec, max_records: int | None = None, *, raise_on_error: bool = False
                     ) -> ValidationReport:
    """Parse every record (the same ``parse_batch`` as the pipeline) and report.

    Returns a ValidationReport; with ``raise_on_error`` the first problem is
    raised as a DataError.  ``max_records`` caps the total records read.
    """
    report = _scan(files, spec, max_records, stop_at_first=raise_on_error)
    if raise_on_error:
        report.raise_for_problems()
    return report


def first_problem(files, spec) -> Problem | None:
    """The first bad record (or unreadable file) of ``files``, file by file, or None."""
    problems = _scan(files, spec, None, stop_at_first=True).problems
    return problems[0] if problems else None
