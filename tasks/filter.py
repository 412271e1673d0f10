"""Filter: keep teacher answers worth learning from, as chat `messages` training rows.

Checked in order, first match wins: empty, too_short, too_long, truncated (hit max_new_tokens),
refusal, wrong_answer (the slice's verifier says no). Slices without a verifier are kept and
counted as unverified. Output `rows.parquet` (schemas.TRAINING_ROWS) and `rejected.parquet`.
The verifier checks the final answer; the chain of thought, when the teacher gives one, goes into the
assistant turn as `<think>…</think>` unless `include_reasoning` is off.
The teacher's system prompt is not copied into the rows: the student learns the behaviour from
the user turn alone, as it will be asked in production.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from prefect import task
from pydantic import Field

from tasks.config import Config
from tasks.schemas import ROLLOUTS, TRAINING_ROWS
from tasks.stage import (
    STAGE_CACHE,
    DatasetRef,
    StageReport,
    StageResult,
    Timer,
    count_reasons,
    partition,
    read_dataset,
    stage_dir,
    with_reason,
    write_dataset,
)
from tasks.verify import VerifyConfig, slice_labels, verdict

REFUSALS = [
    r"\bI(?:'m| am) sorry\b",
    r"\bI can(?:'t|not) (?:help|answer|assist)\b",
    r"\bas an AI\b",
    r"\bI(?:'m| am) unable\b",
]


class FilterConfig(Config):
    """Which teacher answers are dropped."""

    min_chars: int = Field(1, ge=0, description="Shorter answers are dropped as too_short.")
    max_chars: int = Field(2000, ge=1, description="Longer answers are dropped as too_long.")
    drop_truncated: bool = Field(
        True, description="Drop answers cut off at max_new_tokens (the student would learn to stop mid-sentence)."
    )
    refusal_patterns: list[str] = Field(REFUSALS, description="Regexes (case-insensitive) that mark a refusal.")
    verify: bool = Field(True, description="Drop answers the slice's verifier rejects (see `verify`).")
    include_reasoning: bool = Field(
        True,
        description="Train on the chain of thought too: the assistant turn is `<think>reasoning</think>` + answer.",
    )


class Filtered(StageResult):
    rows: DatasetRef
    rejected: DatasetRef


def reason_to_drop(config: FilterConfig, verify: VerifyConfig, labels: dict[str, list[str]], row: dict) -> str | None:
    """Why a rollout is dropped, or None to keep it."""
    answer = row["completion"].strip()
    if not answer:
        return "empty"
    if len(answer) < config.min_chars:
        return "too_short"
    if len(answer) > config.max_chars:
        return "too_long"
    if config.drop_truncated and row["finish_reason"] == "length":
        return "truncated"
    if any(re.search(p, answer, re.IGNORECASE) for p in config.refusal_patterns):
        return "refusal"
    if config.verify and verdict(verify, row, answer, labels) is False:
        return "wrong_answer"
    return None


def assistant_turn(row: dict, include_reasoning: bool) -> str:
    """What the student learns to say: the answer, after the reasoning if that is kept."""
    if include_reasoning and row["reasoning"]:
        return f"<think>\n{row['reasoning']}\n</think>\n\n{row['completion'].strip()}"
    return row["completion"].strip()


def training_row(row: dict, include_reasoning: bool) -> dict:
    """A kept rollout as a chat row for SFT."""
    return {
        "messages": [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": assistant_turn(row, include_reasoning)},
        ],
        "prompt_id": row["prompt_id"],
        "slice": row["slice"],
        "sample_index": row["sample_index"],
    }


def verifier_metrics(verify: VerifyConfig, labels: dict[str, list[str]], rows: list[dict]) -> dict[str, float]:
    """Per-sample accuracy against best-of-N: how much the verifier plus N samples buy."""
    verdicts = [(row["prompt_id"], verdict(verify, row, row["completion"], labels)) for row in rows]
    checked = [(pid, ok) for pid, ok in verdicts if ok is not None]
    any_correct: dict[str, bool] = defaultdict(bool)
    for pid, ok in checked:
        any_correct[pid] |= ok
    return {
        "unverified": len(verdicts) - len(checked),
        "teacher_sample_accuracy": sum(ok for _, ok in checked) / max(len(checked), 1),
        "prompts_with_a_correct_sample": sum(any_correct.values()) / max(len(any_correct), 1),
    }


def filter_rows(config: FilterConfig, verify: VerifyConfig, rollouts: DatasetRef, out_dir: Path) -> Filtered:
    with Timer() as timer:
        rows = read_dataset(rollouts)
        labels = slice_labels(rows)
        kept, rejected = partition(rows, lambda row: reason_to_drop(config, verify, labels, row))
    report = StageReport(
        stage="filter",
        rows_in=len(rows),
        rows_out=len(kept),
        dropped=count_reasons(rejected),
        metrics=verifier_metrics(verify, labels, rows) | {"prompts_kept": len({r["prompt_id"] for r in kept})},
        seconds=timer.seconds,
    )
    return Filtered(
        rows=write_dataset(
            [training_row(r, config.include_reasoning) for r in kept], out_dir / "rows.parquet", TRAINING_ROWS
        ),
        rejected=write_dataset(rejected, out_dir / "rejected.parquet", with_reason(ROLLOUTS)),
        report=report,
    )


@task(name="filter_rollouts", cache_policy=STAGE_CACHE, persist_result=True)
def filter_rollouts(config: FilterConfig, verify: VerifyConfig, rollouts: DatasetRef, work_dir: Path) -> Filtered:
    """Drop empty, truncated, refused and wrong answers; write chat rows for training."""
    return filter_rows(config, verify, rollouts, stage_dir(work_dir, "filter", config, verify, rollouts))
