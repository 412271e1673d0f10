"""The durable request store: every finished LLM request, committed once, found again by its key.

Key: (purpose, request id, sample index, fingerprint). The purpose says who asked (`rollout`,
`evaluate`, later `judge`, `synthesize`); the fingerprint says what was asked (model identity,
sampling, system prompt), so a changed model never reuses old answers. The first write of a key
wins, and each `add` commits before it returns: a crash after it loses nothing, and whatever is
stored is never asked for again.

Two implementations, one SQL: SQLite in WAL mode for one machine (`sqlite:///path` or a path), and
PostgreSQL for many workers sharing one store (`postgresql://…`; psycopg is imported only then).
Stdlib only at import time: vLLM's environment imports the LLM layer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tasks.llm.types import Completion

KEY = ("purpose", "request_id", "sample_index", "fingerprint")
VALUES = ("text", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens", "logprobs")
COLUMNS = (*KEY, *VALUES, "created_at")
CREATE = (
    "CREATE TABLE IF NOT EXISTS requests (purpose TEXT NOT NULL, request_id TEXT NOT NULL,"
    " sample_index INTEGER NOT NULL, fingerprint TEXT NOT NULL, text TEXT NOT NULL, reasoning TEXT,"
    " finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
    " logprobs TEXT, created_at DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (purpose, fingerprint, request_id, sample_index))"
)
CHUNK = 500  # request ids per lookup (SQLite caps bound parameters)


class RequestStore:
    """Stored completions by (purpose, fingerprint, request id, sample index). Subclasses connect."""

    placeholder = "?"
    create_lock: str | None = None  # a statement that serialises table creation across connections
    begin: str | None = None  # how a write transaction starts, where the driver does not start one itself

    def __init__(self, connection, where: str):
        self.db, self.where = connection, where
        self._commit(CREATE, [()], before=self.create_lock)
        found = self._columns()
        if found != COLUMNS:
            self.db.close()
            raise RuntimeError(f"request store {where} has columns {found}, not {COLUMNS}: move it aside")

    def _columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    def add(self, purpose: str, fingerprint: str, request_id: str, completions: dict[int, Completion]) -> None:
        """Store finished samples (by sample index) and commit; a key already present keeps its first value."""
        now = time.time()
        rows = [
            (purpose, request_id, index, fingerprint, c.text, c.reasoning, c.finish_reason, c.prompt_tokens,
             c.completion_tokens, json.dumps(c.logprobs) if c.logprobs is not None else None, now)
            for index, c in completions.items()
        ]  # fmt: skip
        marks = ", ".join([self.placeholder] * len(COLUMNS))
        self._commit(f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows)

    def _commit(self, sql: str, rows: list[tuple], before: str | None = None) -> None:
        """Run a statement for each row in one transaction (not `with connection:`: psycopg's closes it)."""
        try:
            cursor = self.db.cursor()
            for statement in (self.begin, before):
                if statement:
                    cursor.execute(statement)
            cursor.executemany(sql, rows)
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def get(self, purpose: str, fingerprint: str, request_ids: list[str]) -> dict[tuple[str, int], Completion]:
        """Stored samples of these requests, keyed by (request id, sample index)."""
        found = {}
        try:
            for start in range(0, len(request_ids), CHUNK):
                found |= self._select(purpose, fingerprint, request_ids[start : start + CHUNK])
            self.db.commit()  # end the read transaction (PostgreSQL would hold it open)
        except BaseException:
            self.db.rollback()  # a failed PostgreSQL transaction would refuse every later statement
            raise
        return found

    def _select(self, purpose: str, fingerprint: str, request_ids: list[str]) -> dict[tuple[str, int], Completion]:
        p = self.placeholder
        cursor = self.db.cursor()
        cursor.execute(
            f"SELECT request_id, sample_index, {', '.join(VALUES)} FROM requests"
            f" WHERE purpose = {p} AND fingerprint = {p} AND request_id IN ({', '.join([p] * len(request_ids))})",
            [purpose, fingerprint, *request_ids],
        )
        return {
            (request_id, index): Completion(
                text, finish, prompt_tokens, completion_tokens, reasoning, json.loads(logprobs) if logprobs else None
            )
            for request_id, index, text, reasoning, finish, prompt_tokens, completion_tokens, logprobs in cursor
        }

    def close(self) -> None:
        self.db.close()


class SqliteStore(RequestStore):
    """One machine: a SQLite file in WAL mode (readers never block the writer)."""

    # take the write lock when the transaction starts, waiting up to `timeout` for it: a deferred transaction
    # that upgrades later can be refused at once ("database is locked") when writers collide
    begin = "BEGIN IMMEDIATE"

    def __init__(self, path: Path, timeout_s: float = 30.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)  # transactions are ours (begin)
        _set_wal(db, timeout_s)
        super().__init__(db, str(path))

    def _columns(self) -> tuple[str, ...]:
        return tuple(row[1] for row in self.db.execute("PRAGMA table_info(requests)"))


def _set_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Switch a new database to WAL. The switch needs the database to itself, and SQLite may refuse it at once
    rather than wait while other workers open the same new file: try again until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class PostgresStore(RequestStore):
    """Many workers: one PostgreSQL table; `ON CONFLICT DO NOTHING` keeps the first write of a key."""

    placeholder = "%s"
    # concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalog: one at a time
    create_lock = "SELECT pg_advisory_xact_lock(20261130)"

    def __init__(self, url: str):
        import psycopg

        super().__init__(psycopg.connect(url), url.split("@")[-1].split("?")[0])  # no credentials in notes

    def _columns(self) -> tuple[str, ...]:
        cursor = self.db.cursor()
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'"
            " AND table_schema = current_schema() ORDER BY ordinal_position"
        )
        columns = tuple(name for (name,) in cursor)
        self.db.commit()
        return columns


def open_store(url: str) -> RequestStore:
    """The store at `url`: `postgresql://…` (or `postgres://…`), `sqlite:///path`, or a plain path."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if "://" in url and not url.startswith("sqlite:///"):
        raise ValueError(f"request store {url.split('://')[0]}://…: use a postgresql:// URL, sqlite:///path or a path")
    return SqliteStore(Path(url.removeprefix("sqlite:///")))
