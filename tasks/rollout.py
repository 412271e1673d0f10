"""Rollout: the teacher writes N answers per training prompt, through the LLM layer's durable store.

Every finished request is committed to the request store (tasks.llm.store) as it completes, under
purpose `rollout` and the teacher's fingerprint (backend, identity, sampling, system prompt): a
retried task or a new run over the same prompts sends only what is missing, and a changed teacher
gets new rollouts, never a silent mix. A prompt longer than the teacher's context less its answer's
tokens is refused before any call (`too_long`); one the server refuses (HTTP 400) is quarantined
with the server's message. The teacher's answers and reasoning are redacted as the prompts were (a
teacher may echo or invent PII), numbered after the prompt's placeholders. Outputs
`rollouts.parquet` (schemas.ROLLOUTS: this run's prompts x N, read back from the store) and
`rejected.parquet` (schemas.REJECTED_PROMPTS).
"""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_CACHE, stage_uri
from tasks.config import Config
from tasks.llm.ask import ask
from tasks.llm.config import LLMConfig
from tasks.llm.context import over_context
from tasks.llm.store import RequestStore, open_store
from tasks.pii import RedactConfig, Redactor
from tasks.refs import DatasetRef, ModelRef
from tasks.schemas import REJECTED_PROMPTS, ROLLOUTS
from tasks.stage import (
    Progress,
    StageReport,
    StageResult,
    Timer,
    conversation,
    prompt_id,
    read_dataset,
    write_dataset,
)

PURPOSE = "rollout"


class RolloutConfig(Config):
    """How many answers the teacher writes per prompt (the teacher itself is the `teacher` section)."""

    samples_per_prompt: int = Field(4, ge=1, le=8, description="Answers the teacher writes per prompt (N).")


class Rollouts(StageResult):
    rollouts: DatasetRef
    rejected: DatasetRef


def rollout(
    config: RolloutConfig,
    redact: RedactConfig,
    teacher: LLMConfig,
    checkpoint: ModelRef | None,
    prompts: DatasetRef,
    store: RequestStore,
    out_uri: str,
) -> Rollouts:
    """Ask the teacher for what the store lacks, then write this run's rollouts from the store."""
    with Timer() as timer:
        train = read_dataset(prompts)
        by_id: dict[str, dict] = {}
        repeated = []  # a prompt asked again in the log is asked of the teacher once, and said so
        for row in train:
            pid = prompt_id(row["prompt"])
            if pid in by_id:
                repeated.append((pid, row, f"repeated_prompt: the same text as {by_id[pid]['id']}, asked once"))
            else:
                by_id[pid] = row
        n = config.samples_per_prompt
        asked = {pid: conversation(row) for pid, row in by_id.items()}
        too_long = over_context(teacher, checkpoint, asked)  # refused here: nothing over-long reaches a model
        progress = Progress("rollout", (len(by_id) - len(too_long)) * n, unit="samples")
        answers = ask(
            store,
            PURPOSE,
            teacher,
            checkpoint,
            {pid: prompt for pid, prompt in asked.items() if pid not in too_long},
            n,
            on_progress=progress.advance,
        )
        key = answers.fingerprint
        complete = [pid for pid in by_id if pid not in answers.rejected and pid not in too_long]
        rows = []
        for pid in complete:
            prompt_fields = {k: by_id[pid][k] for k in ("slice", "prompt", "reference", "messages")}
            for i in range(n):
                c = answers.completions[(pid, i)]
                rows.append(
                    {
                        "prompt_id": pid,
                        **prompt_fields,
                        "sample_index": i,
                        "teacher": key,
                        "completion": c.text,
                        "reasoning": c.reasoning,
                        "finish_reason": c.finish_reason,
                        "prompt_tokens": c.prompt_tokens,
                        "completion_tokens": c.completion_tokens,
                        "logprobs": c.logprobs,
                    }
                )
        redacted = _redact_answers(Redactor(redact), rows)
        why = too_long | {pid: f"teacher_rejected: {message}" for pid, message in answers.rejected.items()}
        rejected = [(pid, by_id[pid], reason) for pid, reason in why.items()] + repeated
        rejected = [
            {"prompt_id": pid, **{k: row[k] for k in ("slice", "prompt", "reference")}, "reason": reason}
            for pid, row, reason in rejected
        ]
    spend = answers.spend
    prompt_tokens = sum(answers.completions[(pid, 0)].prompt_tokens for pid in complete)
    completion_tokens = sum(r["completion_tokens"] for r in rows)
    report = StageReport(
        stage="rollout",
        rows_in=len(train),
        rows_out=len(rows),
        dropped={
            "repeated_prompt": len(repeated),
            "too_long": len(too_long),
            "teacher_rejected": len(answers.rejected),
        },
        metrics={
            "prompts": len(by_id),
            "samples_from_store": len(rows) - spend.samples,
            **spend.metrics(),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd_dataset": spend.cost(prompt_tokens, completion_tokens),
            "finished_by_length": sum(r["finish_reason"] == "length" for r in rows) / max(len(rows), 1),
            "with_reasoning": sum(r["reasoning"] is not None for r in rows) / max(len(rows), 1),
            "answers_with_pii": redacted,
        },
        seconds=timer.seconds,
        notes=[f"backend {teacher.backend}, teacher fingerprint {key}, store {store.where}"]
        + [r["reason"][:300] for r in rejected[:10]],
    )
    return Rollouts(
        rollouts=write_dataset(rows, storage.join(out_uri, "rollouts.parquet"), ROLLOUTS),
        rejected=write_dataset(rejected, storage.join(out_uri, "rejected.parquet"), REJECTED_PROMPTS),
        report=report,
    )


def _redact_answers(redactor: Redactor, rows: list[dict]) -> int:
    """Redact each sample's answer and reasoning in place, after its prompt (Redactor.redact_answers);
    returns how many samples held PII of their own."""
    answers = [[r["completion"], r["reasoning"] or ""] for r in rows]
    held_pii = 0
    for row, before, (completion, reasoning) in zip(
        rows, answers, redactor.redact_answers(rows, answers, "redact teacher answers"), strict=True
    ):
        held_pii += [completion, reasoning] != before
        row["completion"], row["reasoning"] = completion, reasoning if row["reasoning"] is not None else None
    return held_pii


@task(
    name="rollout_teacher",
    cache_policy=STAGE_CACHE,
    persist_result=True,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),  # the default of `server.outage_retry_s` (placement)
    retry_jitter_factor=0.5,
)
def rollout_teacher(
    config: RolloutConfig,
    redact: RedactConfig,
    teacher: LLMConfig,
    checkpoint: ModelRef | None,
    prompts: DatasetRef,
    store: str,
    work_dir: str,
) -> Rollouts:
    """N teacher answers per training prompt; a retry resumes from the durable store."""
    out_uri = stage_uri(work_dir, "rollout", config, redact, teacher, checkpoint, prompts)
    request_store = open_store(store)
    try:
        return rollout(config, redact, teacher, checkpoint, prompts, request_store, out_uri)
    finally:
        request_store.close()
