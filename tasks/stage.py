"""What every stage shares: datasets by URI, keep/drop with reasons, a report (caching: tasks.cache).

A stage reads Parquet datasets, writes Parquet datasets (through tasks.storage), and returns a
`StageResult` holding `DatasetRef`s (URI, rows, digest) and a `StageReport` (rows in/out, drops per
reason, metrics).
Rejected rows are written beside the kept ones with their reason; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable

import pyarrow as pa
import regex
from pydantic import BaseModel

from tasks import storage
from tasks.refs import DatasetRef


def log(message: str) -> None:
    """Log to the Prefect run (its UI page and the console) inside one, else to the `redistill` logger."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        get_run_logger().info(message)
    except MissingContextError:
        logging.getLogger("redistill").info(message)


# ----------------------------------------------------------------------------- datasets by URI
def write_dataset(rows: list[dict] | pa.Table, uri: str, schema: pa.Schema) -> DatasetRef:
    """Write rows as Parquet with an explicit schema (so empty datasets keep their columns)."""
    uri = str(uri)  # a local Path is a URI too
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    storage.write_table(table, uri)
    return DatasetRef(uri=uri, rows=table.num_rows, digest=storage.digest(uri))


def dataset_ref(uri: str) -> DatasetRef:
    """The reference of a dataset written earlier (by another run, say), from the file as it is now."""
    return DatasetRef(uri=uri, rows=storage.read_table(uri).num_rows, digest=storage.digest(uri))


def read_table(ref: DatasetRef) -> pa.Table:
    """Read a dataset as a table, refusing one that changed since the stage that wrote it finished."""
    if not storage.exists(ref.uri) or storage.digest(ref.uri) != ref.digest:
        raise FileNotFoundError(
            f"{ref.uri} is missing or changed since it was written (a cached result points at it): "
            "rerun with --refresh-cache"
        )
    return storage.read_table(ref.uri)


def read_dataset(ref: DatasetRef) -> list[dict]:
    """Read a dataset's rows (see `read_table`)."""
    return read_table(ref).to_pylist()


def prompt_id(prompt: str) -> str:
    """Identity of a prompt as a model sees it (its redacted text): the request id in the LLM store."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


def conversation(row: dict) -> str | list[dict]:
    """What a model is asked for a prompt row: a chat row's conversation, else its text."""
    return row.get("messages") or row["prompt"]


def render_turns(messages: list[dict]) -> str:
    """A conversation as one text, a turn per line ("user: …"): a chat row's `prompt`, its identity for the
    request store, the held-out split and dedup."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def user_text(row: dict) -> str:
    """What the user asked: a chat row's user turns (its system prompt and the assistant's turns repeat across
    rows, and would make different questions look alike), else its prompt."""
    if row.get("messages"):
        return "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")
    return row["prompt"]


# scripts written without spaces between words: each character (with its marks) is a token
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_TOKEN = regex.compile(f"[{_UNSPACED}]\\p{{M}}*|(?:(?![{_UNSPACED}])[\\p{{L}}\\p{{M}}\\p{{N}}])+")


def words(text: str) -> list[str]:
    """Lower-cased words in any script, NFKC-normalised (a decomposed "café" is the composed one); letters of the
    unspaced scripts one by one. rouge-score's own tokenizer keeps only [a-z0-9], which drops every Cyrillic,
    Greek, Arabic, Devanagari or CJK word."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def normalize_text(text: str) -> str:
    """Lowercase, sentence punctuation dropped, whitespace folded: a text's identity for exact matching.

    Symbols that carry meaning (+ - * / = < >) stay: "3 + 4" and "3 - 4" are different prompts.
    """
    return " ".join(re.sub(r"[.,!?;:'\"`()\[\]]", " ", text.lower()).split())


# ----------------------------------------------------------------------------- keep / drop
def partition(rows: Iterable[dict], reason_to_drop: Callable[[dict], str | None]) -> tuple[list, list]:
    """Split rows into kept and rejected; each rejected row carries the `reason` it was dropped."""
    kept, rejected = [], []
    for row in rows:
        reason = reason_to_drop(row)
        if reason is None:
            kept.append(row)
        else:
            rejected.append({**row, "reason": reason})
    return kept, rejected


def with_reason(schema: pa.Schema) -> pa.Schema:
    """The schema of a stage's rejected rows: its output schema plus the drop reason."""
    return schema.append(pa.field("reason", pa.string()))


def count_reasons(rejected: list[dict]) -> dict[str, int]:
    """Drops per reason, the reason's first word only (details like `near_duplicate:<id>` stay in the rows)."""
    return dict(Counter(r["reason"].split(":")[0] for r in rejected))


# ----------------------------------------------------------------------------- reports
class StageReport(BaseModel):
    """What a stage did, in numbers: shown as a Prefect artifact and logged to MLflow."""

    stage: str
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = {}
    metrics: dict[str, float] = {}
    seconds: float = 0.0
    notes: list[str] = []
    details: str = ""  # markdown appended to the summary (the eval table, say)
    tables: dict[str, list[dict]] = {}  # named tables (rows of columns), logged as MLflow tables
    stop: str | None = None  # why the run cannot go on after this stage (nothing left to work on), for the user
    finish: str | None = None  # why the run is done after this stage, completed (not enough new traffic, say)

    def markdown(self) -> str:
        lines = [
            f"## {self.stage}",
            "",
            "| rows in | rows out | dropped | seconds |",
            "|---:|---:|---:|---:|",
            f"| {self.rows_in} | {self.rows_out} | {sum(self.dropped.values())} | {self.seconds:.1f} |",
        ]
        if self.dropped:
            lines += ["", "| drop reason | rows |", "|---|---:|"]
            lines += [f"| {reason} | {n} |" for reason, n in sorted(self.dropped.items())]
        if self.metrics:
            lines += ["", "| metric | value |", "|---|---:|"]
            lines += [f"| {name} | {_number(value)} |" for name, value in sorted(self.metrics.items())]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        if self.details:
            lines += ["", self.details]
        if self.stop:
            lines += ["", f"**The run stops here**: {self.stop}"]
        if self.finish:
            lines += ["", f"**The run ends here, completed**: {self.finish}"]
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Counts as integers, everything else to 4 significant digits."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


class StageResult(BaseModel):
    """What a stage hands to the next: its datasets (fields of type DatasetRef) and its report."""

    report: StageReport

    def datasets(self) -> dict[str, DatasetRef]:
        return {name: value for name, value in self if isinstance(value, DatasetRef)}

    def reusable(self) -> bool:
        """Whether a later run may take this result from the cache (a failed check is tried again instead)."""
        return True


class Timer:
    """Wall time of a stage body: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


class Progress:
    """Logs `done/total` with rate and ETA at most every `every_s` seconds, for long loops (`done` and the
    rate alone when the total is not known: a log read as a stream)."""

    def __init__(self, what: str, total: int | None, unit: str = "rows", every_s: float = 10.0):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done, self.start = 0, time.perf_counter()
        self.last = 0.0 if total is not None else self.start  # a stream's first line after `every_s`

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s or (self.total is not None and self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            if self.total is None:
                log(f"{self.what}: {self.done} {self.unit} so far ({rate:.1f}/s)")
                return
            eta = (self.total - self.done) / rate if rate else float("inf")
            log(f"{self.what}: {self.done}/{self.total} {self.unit} ({rate:.1f}/s, eta {eta:.0f}s)")
