"""Source: read a prompt log, quarantine malformed rows, hold out an eval set, sample by slice.

Input: a .jsonl, .parquet or .csv file with `prompt` and `slice`, optionally `id`, `timestamp`
(ISO 8601) and `reference` (the checkable answer). Outputs (schemas.PROMPTS) `eval_prompts.parquet`,
held out by prompt text before anything else sees it, and `train_prompts.parquet`, a sample
stratified by slice to match the log's distribution: no later stage splits again.
Malformed rows go to `quarantine.parquet` (schemas.QUARANTINE) with row number, field and reason.
For the slices named in `label_slices` (label verifiers without fixed labels), the label set is
computed here, once, from every valid row of the slice: its distinct reference answers.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_CACHE, stage_uri
from tasks.config import PLACE, Config
from tasks.refs import DatasetRef
from tasks.schemas import PROMPTS, QUARANTINE
from tasks.stage import StageReport, StageResult, Timer, normalize_text, write_dataset


class SourceConfig(Config):
    """Where prompts come from and how they are sampled."""

    path: str = Field(
        "data/demo_traffic.jsonl",
        json_schema_extra=PLACE,  # the log enters cache keys by its digest
        description="Prompt log: a local .jsonl, .parquet or .csv file with `prompt` and `slice` columns, "
        "optionally `id`, `timestamp` (ISO 8601) and `reference`. `redistill demo-data` writes one.",
    )
    since: datetime | None = Field(None, description="Keep rows at or after this time (naive times are UTC).")
    until: datetime | None = Field(None, description="Keep rows before this time (naive times are UTC).")
    sample_size: int = Field(128, ge=1, description="Training prompts to sample, stratified by slice.")
    eval_size: int = Field(
        48, ge=0, description="Held-out prompts, split off by prompt text first and stratified by slice."
    )
    seed: int = Field(0, description="Seed for the held-out split and the sample.")


class Sourced(StageResult):
    train_prompts: DatasetRef
    eval_prompts: DatasetRef
    quarantine: DatasetRef
    labels: dict[str, list[str]] = {}  # label set of each slice in `label_slices`


class Rejected(Exception):
    """A malformed row: which field, and why."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


# ----------------------------------------------------------------------------- reading
def read_records(path: Path) -> Iterator[tuple[int, str, dict | Rejected]]:
    """(1-based row number, raw text of the row, parsed record or why it could not be parsed)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_records(path)
    elif suffix == ".csv":
        # utf-8-sig: a byte-order mark is not part of the first column's name
        with open(path, encoding="utf-8-sig", newline="") as f:
            for number, record in enumerate(csv.DictReader(f), start=1):
                yield number, json.dumps(record), {k: v for k, v in record.items() if v not in ("", None)}
    elif suffix == ".parquet":
        for number, record in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield number, json.dumps(record, default=str), {k: v for k, v in record.items() if v is not None}
    else:
        raise ValueError(f"{path}: unsupported prompt log format {suffix!r} (use .jsonl, .parquet or .csv)")


def _jsonl_records(path: Path) -> Iterator[tuple[int, str, dict | Rejected]]:
    """JSONL rows decoded one by one: a row with bytes that are not UTF-8 is quarantined (its row and byte
    offset named, never its content) while the rest is read; a byte-order mark is not data."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                yield number, text, Rejected(None, f"not valid UTF-8 (at byte offset {e.start} of the row)")
                continue
            if not line.strip():
                continue
            try:
                yield number, line, json.loads(line)
            except json.JSONDecodeError as e:
                yield number, line, Rejected(None, f"not valid JSON: {e.msg} (column {e.colno})")


def _text_field(record: dict, name: str, required: bool, numbers_ok: bool = False) -> str | None:
    """A field as stripped text; numbers are accepted where a log may hold them (ids, references)."""
    value = record.get(name)
    if value is None:
        if required:
            raise Rejected(name, f"field '{name}' is missing")
        return None
    if isinstance(value, str):
        text = value.strip()
    elif numbers_ok and isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        raise Rejected(name, f"field '{name}' must be text, got {type(value).__name__}")
    if required and not text:
        raise Rejected(name, f"field '{name}' is empty")
    return text or None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_row(number: int, record: dict | Rejected) -> dict:
    """A validated prompt row, or raise Rejected naming the field."""
    if isinstance(record, Rejected):
        raise record
    if not isinstance(record, dict):
        raise Rejected(None, f"row is a {type(record).__name__}, not an object")
    row = {
        "id": _text_field(record, "id", required=False, numbers_ok=True) or f"row-{number}",
        "slice": _text_field(record, "slice", required=True),
        "prompt": _text_field(record, "prompt", required=True),
        "reference": _text_field(record, "reference", required=False, numbers_ok=True),
        "timestamp": None,
    }
    stamp = _text_field(record, "timestamp", required=False)
    if stamp is not None:
        try:
            row["timestamp"] = _utc(datetime.fromisoformat(stamp)).isoformat()
        except ValueError:
            raise Rejected("timestamp", f"field 'timestamp' is not an ISO 8601 time: {stamp[:40]!r}") from None
    return row


def in_window(row: dict, since: datetime | None, until: datetime | None) -> bool:
    """Whether a row falls in [since, until); rows without a time fall outside any window."""
    if since is None and until is None:
        return True
    if row["timestamp"] is None:
        return False
    when = datetime.fromisoformat(row["timestamp"])
    return (since is None or when >= _utc(since)) and (until is None or when < _utc(until))


# ----------------------------------------------------------------------------- splitting and sampling
def allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` across slices in proportion to `counts` (largest remainder), capped by each count."""
    available = sum(counts.values())
    total = min(total, available)
    if total == 0:
        return {name: 0 for name in counts}
    exact = {name: total * n / available for name, n in counts.items()}
    share = {name: int(x) for name, x in exact.items()}
    by_remainder = sorted(counts, key=lambda name: (exact[name] - share[name], counts[name], name), reverse=True)
    for name in by_remainder[: total - sum(share.values())]:
        share[name] += 1
    return share


def _rank(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{normalize_text(text)}".encode()).hexdigest()


def split_eval(rows: list[dict], eval_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out `eval_size` distinct prompts, stratified by slice; every copy of them leaves the rest."""
    first_seen: dict[str, dict] = {}
    for row in rows:
        first_seen.setdefault(normalize_text(row["prompt"]), row)
    by_slice: dict[str, list[str]] = defaultdict(list)
    for key, row in first_seen.items():
        by_slice[row["slice"]].append(key)
    quota = allocate({name: len(keys) for name, keys in by_slice.items()}, eval_size)
    held_out: set[str] = set()
    for name, keys in by_slice.items():
        held_out.update(sorted(keys, key=lambda k: _rank(seed, k))[: quota[name]])
    eval_rows = [first_seen[key] for key in sorted(held_out, key=lambda k: _rank(seed, k))]
    rest = [row for row in rows if normalize_text(row["prompt"]) not in held_out]
    return eval_rows, rest


def stratified_sample(rows: list[dict], size: int, seed: int) -> list[dict]:
    """`size` rows whose slice mix matches the input's (largest-remainder quotas, seeded draw)."""
    by_slice: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_slice[row["slice"]].append(row)
    quota = allocate({name: len(group) for name, group in by_slice.items()}, size)
    rng = random.Random(seed)
    sample = []
    for name in sorted(by_slice):
        sample += rng.sample(by_slice[name], quota[name])
    return sample


# ----------------------------------------------------------------------------- the stage
def log_digest(path: str) -> str:
    """The prompt log's content digest (part of the source stage's cache key)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"no prompt log at {path}: set source.path, or write the demo's with `redistill demo-data --out {path}`"
        )
    return storage.digest(path)


def label_sets(rows: list[dict], slices: list[str]) -> dict[str, list[str]]:
    """Each named slice's label set: the distinct reference answers of all its rows."""
    labels: dict[str, set[str]] = {name: set() for name in slices}
    for row in rows:
        if row["slice"] in labels and row["reference"]:
            labels[row["slice"]].add(row["reference"])
    return {name: sorted(values) for name, values in labels.items()}


def source(config: SourceConfig, label_slices: list[str], out_uri: str) -> Sourced:
    """Read, validate, window, hold out, sample; write prompts and quarantine."""
    with Timer() as timer:
        valid, quarantine, outside, rows_in = [], [], 0, 0
        seen_ids: set[str] = set()
        for number, raw, record in read_records(Path(config.path)):
            rows_in += 1
            try:
                row = parse_row(number, record)
                if row["id"] in seen_ids:
                    raise Rejected("id", f"field 'id' repeats an earlier row's id {row['id']!r}")
            except Rejected as e:
                quarantine.append({"row": number, "field": e.field, "reason": f"row {number}: {e.reason}", "raw": raw})
                continue
            seen_ids.add(row["id"])
            if in_window(row, config.since, config.until):
                valid.append(row)
            else:
                outside += 1
        eval_rows, pool = split_eval(valid, config.eval_size, config.seed)
        train_rows = stratified_sample(pool, config.sample_size, config.seed)
        # held-out prompts' other copies are not sampled either: they count as not sampled
        not_sampled = len(valid) - len(eval_rows) - len(train_rows)
    report = StageReport(
        stage="source",
        rows_in=rows_in,
        rows_out=len(eval_rows) + len(train_rows),
        dropped={"malformed": len(quarantine), "outside_window": outside, "not_sampled": not_sampled},
        metrics={
            "train_prompts": len(train_rows),
            "eval_prompts": len(eval_rows),
            **{
                f"train_share.{k}": v / max(len(train_rows), 1)
                for k, v in Counter(r["slice"] for r in train_rows).items()
            },
        },
        seconds=timer.seconds,
        notes=[q["reason"] for q in quarantine[:20]],
    )
    return Sourced(
        train_prompts=write_dataset(train_rows, storage.join(out_uri, "train_prompts.parquet"), PROMPTS),
        eval_prompts=write_dataset(eval_rows, storage.join(out_uri, "eval_prompts.parquet"), PROMPTS),
        quarantine=write_dataset(quarantine, storage.join(out_uri, "quarantine.parquet"), QUARANTINE),
        labels=label_sets(valid, label_slices),
        report=report,
    )


@task(name="source_prompts", cache_policy=STAGE_CACHE, persist_result=True)
def source_prompts(config: SourceConfig, label_slices: list[str], log_digest: str, work_dir: str) -> Sourced:
    """Read the prompt log (identified by its digest), quarantine bad rows, split and sample."""
    return source(config, label_slices, stage_uri(work_dir, "source", config, label_slices, log_digest))
