"""A prompt log, row by row: JSONL, CSV or Parquet, streamed, decoded one row at a time.

A row whose bytes are not UTF-8 becomes a `Rejected` record naming the byte offset, never the
content; a byte-order mark is not data; blank lines are counted, not quarantined; quoted multi-line
CSV fields work. A log of several files (a glob, local or on S3) is read file by file, each record naming
its file. A log that cannot be read at all (missing, another format, a bucket that cannot be listed) raises
`LogError` (tasks/logfile/files.py): one line, before anything runs.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pyarrow.parquet as pq

from tasks import storage
from tasks.logfile.files import log_files


class Rejected(Exception):
    """A malformed row: the field at fault (or None), a short kind for counting, and a reason without content."""

    def __init__(self, field: str | None, kind: str, reason: str):
        super().__init__(reason)
        self.field, self.kind, self.reason = field, kind, reason


@dataclass
class Record:
    """One row of the log: its 1-based number, the row as read (for the quarantine), and its fields or why
    it has none; `fields` is None for a blank line."""

    row: int
    raw: str
    fields: dict | Rejected | None
    file: str | None = None  # which file of a log of several files

    @property
    def where(self) -> str:
        """`row 5`, or `2026-11-30T03.jsonl row 5` in a log of several files."""
        return f"{self.file} row {self.row}" if self.file else f"row {self.row}"


def declared_columns(path: str) -> set[str]:
    """The columns the CSV headers or Parquet schemas of the log declare (JSONL declares none: its rows say)."""
    columns: set[str] = set()
    for file in log_files(path):  # read in place: a Parquet footer or a CSV header, never the whole file
        if file.suffix == ".parquet":
            with fsspec.open(file.uri, "rb") as f:
                columns |= set(pq.read_schema(f).names)
        elif file.suffix == ".csv":
            with fsspec.open(file.uri, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
                columns |= set(next(csv.reader(f), []))
    return columns


def read_log(path: str) -> Iterator[Record]:
    """Every row of every file of the log, in order, without holding a file in memory. With several files,
    each record names its file (row numbers count within a file)."""
    files = log_files(path)
    readers = {".jsonl": _jsonl, ".csv": _csv, ".parquet": _parquet}
    for file in files:
        local = storage.local_file(file.uri)  # a remote partition is copied once, then streamed like a local one
        try:
            for record in readers[file.suffix](local):
                record.file = file.name if len(files) > 1 else None
                yield record
        finally:
            if not storage.is_local(file.uri):
                shutil.rmtree(local.parent, ignore_errors=True)


def _not_utf8(offset: int, where: str = "the row") -> Rejected:
    return Rejected(None, "invalid_utf8", f"not valid UTF-8 (at byte offset {offset} of {where})")


def _jsonl(path: Path) -> Iterator[Record]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                yield Record(number, raw.decode("utf-8", errors="replace").rstrip("\r\n"), _not_utf8(e.start))
                continue
            if not line.strip():
                yield Record(number, "", None)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                record = Rejected(None, "bad_json", f"not valid JSON: {e.msg} (column {e.colno})")
            except (ValueError, RecursionError):  # an integer of 5,000 digits, nesting 1,000 deep
                record = Rejected(None, "bad_json", "not valid JSON: a number or nesting too large to read")
            if _lone_surrogate(record):  # "\udc80" in JSON decodes to text no UTF-8 file can hold
                record = Rejected(None, "invalid_utf8", "not valid UTF-8 (an escaped lone surrogate in the row)")
            yield Record(number, line, record)


def _csv(path: Path) -> Iterator[Record]:
    csv.field_size_limit(sys.maxsize)  # a 200 kB paste is a row to quarantine as too long, not a reader's error
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row does not stop the file
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        for number, values in enumerate(reader, start=1):
            raw = json.dumps(values, ensure_ascii=False).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            if not any(v.strip() for v in values):
                yield Record(number, "", None)
            elif len(values) > len(header):
                reason = f"has {len(values)} fields, the header {len(header)}"
                yield Record(number, raw, Rejected(None, "bad_csv", reason))
            elif bad := next(((n, v) for n, v in zip(header, values, strict=False) if _surrogate(v) >= 0), None):
                name, value = bad
                offset = len(value[: _surrogate(value)].encode("utf-8", "surrogateescape"))
                yield Record(number, raw, _not_utf8(offset, f"field '{name}'"))
            else:
                yield Record(number, raw, {n: v for n, v in zip(header, values, strict=False) if v != ""})


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate(text: str) -> int:
    """Index of the first undecodable byte (kept as a lone surrogate) in `text`, or -1."""
    found = _SURROGATE.search(text)
    return found.start() if found else -1


def _lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return isinstance(value, list) and any(_lone_surrogate(v) for v in value)


def _parquet(path: Path) -> Iterator[Record]:
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for values in batch.to_pylist():
            number += 1
            raw = json.dumps(values, default=str, ensure_ascii=False)
            fields, bad = {}, None
            for name, value in values.items():
                if isinstance(value, bytes):  # a binary column: text only if it decodes
                    try:
                        value = value.decode("utf-8")
                    except UnicodeDecodeError as e:
                        bad = bad or _not_utf8(e.start, f"field '{name}'")
                if value is not None:
                    fields[name] = value
            yield Record(number, raw, bad or fields)
