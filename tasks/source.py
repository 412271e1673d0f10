"""Source: read a prompt log, quarantine malformed rows, hold out an eval set, sample by slice.

Input: a .jsonl, .parquet or .csv log (tasks.logfile) whose columns `source.columns` names: the
prompt and its slice, optionally an id, a time and a reference answer. Outputs (schemas.PROMPTS)
`eval_prompts.parquet`, held out by prompt text before anything else sees it, and
`train_prompts.parquet`, a sample stratified by slice to match the log's distribution: no later
stage splits again. Malformed rows go to `quarantine.parquet` (schemas.QUARANTINE) with row, field
and a reason that never quotes the row. When no training prompt is left, the report says why
(`report.stop`) and the flow ends there, before any model is loaded.
For the slices named in `label_slices` (label verifiers without fixed labels), the label set is
computed here, once, from every valid row of the slice: its distinct reference answers.
With `coverage.enabled`, the window's prompts are mapped first (tasks.coverage_map: embedded, clustered), the
sample may be drawn by cluster within each slice (`coverage.stratify`), and `coverage_map.parquet`
(schemas.COVERAGE_MAP) says where each production and sampled prompt landed, for the coverage stage.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from datetime import datetime

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import PLACE, Config
from tasks.coverage_map import CoverageConfig, Space, fit_space, population
from tasks.logfile.files import LogError, log_files, logs_digest
from tasks.logfile.read import Record, Rejected, declared_columns, read_log
from tasks.logfile.rows import Columns, parse_row, utc
from tasks.refs import DatasetRef
from tasks.sampling import allocate, cluster_stratified_sample, rank, stratified_sample
from tasks.schemas import COVERAGE_MAP, PROMPTS, QUARANTINE
from tasks.stage import Progress, StageReport, StageResult, Timer, normalize_text, write_dataset

_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,40}")


class SourceConfig(Config):
    """Where prompts come from and how they are sampled."""

    path: str = Field(
        "data/demo_traffic.jsonl",
        json_schema_extra=PLACE,  # the log enters cache keys by its digest
        description="Prompt log: a local .jsonl, .parquet or .csv file (columns: see source.columns). "
        "`redistill demo-data` writes one.",
    )
    columns: Columns = Columns()
    since: datetime | None = Field(None, description="Keep rows at or after this time (naive times are UTC).")
    until: datetime | None = Field(None, description="Keep rows before this time (naive times are UTC).")
    sample_size: int = Field(128, ge=1, description="Training prompts to sample, stratified by slice.")
    eval_size: int = Field(
        48, ge=0, description="Held-out prompts, split off by prompt text first and stratified by slice."
    )
    max_prompt_chars: int = Field(
        16_000, ge=1, description="Longer prompts are quarantined (a 200 kB paste is not a question to distil)."
    )
    seed: int = Field(0, description="Seed for the held-out split, the sample and the coverage map.")
    coverage: CoverageConfig = CoverageConfig()
    min_new_prompts: int = Field(
        0,
        ge=0,
        description="With `since`: fewer new training prompts than this ends the run after the source stage, "
        "completed, as 'not enough new traffic' (nothing else runs; the new rows wait for the next run).",
    )


class Sourced(StageResult):
    train_prompts: DatasetRef
    eval_prompts: DatasetRef
    quarantine: DatasetRef
    coverage_map: DatasetRef | None = None  # with coverage.enabled: where each prompt landed on the map
    labels: dict[str, list[str]] = {}  # label set of each slice in `label_slices`


def in_window(row: dict, since: datetime | None, until: datetime | None) -> bool:
    """Whether a row falls in [since, until); rows without a time fall outside any window."""
    if since is None and until is None:
        return True
    if row["timestamp"] is None:
        return False
    when = datetime.fromisoformat(row["timestamp"])
    return (since is None or when >= utc(since)) and (until is None or when < utc(until))


# ----------------------------------------------------------------------------- splitting and sampling
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
        held_out.update(sorted(keys, key=lambda k: rank(seed, k))[: quota[name]])
    eval_rows = [first_seen[key] for key in sorted(held_out, key=lambda k: rank(seed, k))]
    rest = [row for row in rows if normalize_text(row["prompt"]) not in held_out]
    return eval_rows, rest


# ----------------------------------------------------------------------------- reading
class LogPass:
    """What a pass over the log found: valid rows, quarantined rows, and what to tell the user about both."""

    def __init__(self):
        self.valid: list[dict] = []
        self.quarantine: list[dict] = []
        self.kinds: Counter[str] = Counter()
        self.rows = self.blank = self.outside = self.unreadable_responses = 0
        self.columns_seen: set[str] = set()
        self.first_time: str | None = None
        self.last_time: str | None = None

    def reject(self, record: Record, error: Rejected) -> None:
        self.kinds[error.kind] += 1
        reason = f"{record.where}: {error.reason}"
        self.quarantine.append({"row": record.row, "field": error.field, "reason": reason, "raw": record.raw})

    def saw_time(self, when: str) -> None:
        self.first_time = min(self.first_time or when, when)
        self.last_time = max(self.last_time or when, when)


def read_prompts(config: SourceConfig) -> LogPass:
    """One streaming pass: validate each row, quarantine the malformed with a reason, keep the rest in the window."""
    read, first_row_with_id = LogPass(), {}
    read.columns_seen |= declared_columns(config.path)
    progress = Progress("source", None, unit="rows", every_s=15)
    for record in read_log(config.path):
        progress.advance()
        if record.fields is None:
            read.blank += 1
            continue
        read.rows += 1
        if isinstance(record.fields, dict):
            read.columns_seen.update(record.fields)
        try:
            row = parse_row(record.row, record.fields, config.columns, config.max_prompt_chars, record.file)
            if (earlier := first_row_with_id.setdefault(row["id"], record.where)) != record.where:
                reason = f"field '{config.columns.id}' repeats the id of {earlier}"
                raise Rejected(config.columns.id, "duplicate_id", reason)
        except Rejected as error:
            read.reject(record, error)
            continue
        if row["response"] is None and record.fields.get(config.columns.response) not in (None, ""):
            read.unreadable_responses += 1  # the prompt is kept; only the shadow report goes without its answer
        if row["timestamp"]:
            read.saw_time(row["timestamp"])
        if in_window(row, config.since, config.until):
            read.valid.append(row)
        else:
            read.outside += 1
    return read


def columns_problem(config: SourceConfig, seen: set[str]) -> str | None:
    """A named column the log does not have, or a window over a log without times: the cause, in one line."""
    missing = config.columns.missing_from(seen)
    if missing:
        named = ", ".join(f"source.columns.{name} '{column}'" for name, column in missing.items())
        return f"{named}: not a column of {config.path}; its columns are {_listed(seen)}"
    if (config.since or config.until) and config.columns.timestamp not in seen:
        return (
            f"source.since/until select by time, but {config.path} has no column '{config.columns.timestamp}' "
            "(map yours with source.columns.timestamp)"
        )
    return None


def _listed(columns: set[str]) -> str:
    """Column names for a message, only those shaped like names: a CSV without a header has a data row there."""
    names = sorted(c for c in columns if _COLUMN_NAME.fullmatch(c))
    others = len(columns) - len(names)
    return ", ".join(names) + (f" (and {others} that are not names)" if others else "") if names else "none"


def why_nothing_is_left(config: SourceConfig, read: LogPass, train_rows: int) -> str | None:
    """When no training prompt is left (or a named column is missing), the cause, in one line; else None."""
    if read.rows and (problem := columns_problem(config, read.columns_seen)):
        return problem
    if (config.since or config.until) and not read.first_time and read.rows > len(read.quarantine):
        return f"source.since/until select by time, but no row of {config.path} has a time in it"
    if train_rows:
        return None
    if read.rows == 0:
        return f"{config.path} holds no rows" + (f" ({read.blank} blank lines)" if read.blank else "")
    if not read.valid and not read.outside:
        kinds = ", ".join(f"{n} {kind}" for kind, n in read.kinds.most_common())
        return f"all {read.rows} rows of {config.path} were quarantined ({kinds}); see the quarantine for each row"
    if not read.valid:
        return (
            f"source.since/until [{config.since}, {config.until}) excluded all {read.outside} valid rows "
            f"(their times run from {read.first_time} to {read.last_time})"
        )
    return f"source.eval_size {config.eval_size} took every distinct prompt of the {len(read.valid)} rows: lower it"


def not_enough_traffic(config: SourceConfig, new_prompts: int) -> str | None:
    """With a window that starts (`since`: a scheduled run's watermark), too few new prompts end the run
    completed: the new rows wait for the next run."""
    if config.since is not None and new_prompts < config.min_new_prompts:
        return f"not enough new traffic ({new_prompts} < {config.min_new_prompts} new prompts since {config.since})"
    return None


# ----------------------------------------------------------------------------- the stage
def log_digest(path: str) -> str:
    """The prompt log's content digest (part of the source stage's cache key): its files by name and content
    (ETags on S3), so a new hourly partition makes a new source run and an unchanged log none."""
    return logs_digest(log_files(path))


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
        read = read_prompts(config)
        eval_rows, pool = split_eval(read.valid, config.eval_size, config.seed)
        space = fit_space(read.valid, config.coverage, config.seed) if config.coverage.enabled and pool else None
        train_rows = [r | {"origin": "traffic"} for r in sample(config, pool, space)]
        eval_rows = [r | {"origin": "traffic"} for r in eval_rows]
        mapped = space.map_rows(population(read.valid, config.coverage, config.seed), "production") if space else []
        mapped += space.map_rows(train_rows, "train") if space else []
        # held-out prompts' other copies are not sampled either: they count as not sampled
        not_sampled = len(read.valid) - len(eval_rows) - len(train_rows)
    # a misnamed column is a mistake to say, never "not enough traffic"
    mistake = read.rows and columns_problem(config, read.columns_seen)
    finish = None if mistake else not_enough_traffic(config, len(train_rows))
    stop = None if finish else why_nothing_is_left(config, read, len(train_rows))
    report = StageReport(
        stage="source",
        rows_in=read.rows,
        rows_out=len(eval_rows) + len(train_rows),
        dropped={
            "malformed": len(read.quarantine),
            "outside_window": read.outside,
            "not_sampled": not_sampled,
        },
        metrics={
            "train_prompts": len(train_rows),
            "eval_prompts": len(eval_rows),
            "blank_lines": read.blank,
            "responses_unreadable": read.unreadable_responses,
            **{f"quarantined.{kind}": n for kind, n in sorted(read.kinds.items())},
            **{
                f"train_share.{k}": v / max(len(train_rows), 1)
                for k, v in Counter(r["slice"] for r in train_rows).items()
            },
            **(space.metrics() if space else {}),
        },
        seconds=timer.seconds,
        notes=[q["reason"] for q in read.quarantine[:20]] + unreadable_note(config, read.unreadable_responses),
        stop=stop,
        finish=finish,
    )
    return Sourced(
        train_prompts=write_dataset(train_rows, storage.join(out_uri, "train_prompts.parquet"), PROMPTS),
        eval_prompts=write_dataset(eval_rows, storage.join(out_uri, "eval_prompts.parquet"), PROMPTS),
        quarantine=write_dataset(read.quarantine, storage.join(out_uri, "quarantine.parquet"), QUARANTINE),
        coverage_map=write_dataset(mapped, storage.join(out_uri, "coverage_map.parquet"), COVERAGE_MAP)
        if space
        else None,
        labels=label_sets(read.valid, label_slices),
        report=report,
    )


def sample(config: SourceConfig, pool: list[dict], space: Space | None) -> list[dict]:
    """The training sample: by slice, and within each slice by cluster with `coverage.stratify`."""
    if space and config.coverage.stratify:
        clusters, floor = space.clusters_of(pool, stage="source"), config.coverage.min_per_cluster
        return cluster_stratified_sample(pool, clusters, config.sample_size, config.seed, floor)
    return stratified_sample(pool, config.sample_size, config.seed)


def unreadable_note(config: SourceConfig, count: int) -> list[str]:
    if not count:
        return []
    column = config.columns.response
    return [f"{count} rows' '{column}' is neither text nor a message: kept as prompts without production's answer"]


@task(name="source_prompts", **STAGE_TASK)
def source_prompts(config: SourceConfig, label_slices: list[str], log_digest: str, work_dir: str) -> Sourced:
    """Read the prompt log (identified by its digest), quarantine bad rows, split and sample."""
    return source(config, label_slices, stage_uri(work_dir, "source", config, label_slices, log_digest))


def check_source(config: SourceConfig, rows: int = 1000) -> None:
    """Before any run: the log can be read, and the columns the user named are in its first rows (LogError)."""
    seen = declared_columns(config.path)
    for record in itertools.islice(read_log(config.path), rows):
        if isinstance(record.fields, dict):
            seen.update(record.fields)
    if seen and (problem := columns_problem(config, seen)):
        raise LogError(problem)
