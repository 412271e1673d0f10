"""Filter: keep teacher answers worth learning from, as chat `messages` training rows.

Checked in order, first match wins: empty, too_short, too_long, truncated (hit max_new_tokens),
refusal, wrong_answer (the verify stage's verdict says no, with its reason), judge_below_threshold (the
judge stage scored it under its calibrated threshold). Samples without a
verdict are kept (the verify summary counts them). Output `rows.parquet` (schemas.TRAINING_ROWS)
and `rejected.parquet`; and `pairs.parquet` for DPO (schemas.PREFERENCE_PAIRS): per prompt, kept answers a
verifier passed against answers a verifier failed.
The verifier checks the final answer; the chain of thought, when the teacher gives one, goes into the
assistant turn as `<think>…</think>` unless `include_reasoning` is off.
The teacher's system prompt is not copied into the rows: the student learns the behaviour from
the user turn alone, as it will be asked in production.
"""

from __future__ import annotations

import re

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.refs import DatasetRef
from tasks.schemas import PREFERENCE_PAIRS, ROLLOUTS, TRAINING_ROWS
from tasks.stage import (
    StageReport,
    StageResult,
    Timer,
    count_reasons,
    partition,
    read_dataset,
    with_reason,
    write_dataset,
)

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
    verify: bool = Field(True, description="Drop answers the slice's verifier rejects (see the `verify` section).")
    judge: bool = Field(True, description="Drop answers the judge scores below its calibrated threshold.")
    include_reasoning: bool = Field(
        True,
        description="Train on the chain of thought too: the assistant turn is `<think>reasoning</think>` + answer.",
    )


class Filtered(StageResult):
    rows: DatasetRef
    rejected: DatasetRef
    pairs: DatasetRef  # (right, wrong) answer pairs for DPO


def reason_to_drop(config: FilterConfig, row: dict, verdict: dict | None, judgment: dict | None = None) -> str | None:
    """Why a rollout is dropped, or None to keep it (`verdict`: its VERDICTS row; `judgment`: its JUDGMENTS row)."""
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
    if config.verify and verdict is not None and verdict["ok"] is False:
        return f"wrong_answer: {verdict['reason']}"
    if config.judge and judgment is not None and judgment["score"] is None:
        return "judge_unscored: the judge's reply held no score"  # calibration counts it as failing too
    if config.judge and judgment is not None and judgment["ok"] is False:
        return f"judge_below_threshold: scored {judgment['score']} < {judgment['threshold']}"
    return None


def assistant_turn(row: dict, include_reasoning: bool, answer: str | None = None) -> str:
    """What the student learns to say: the answer (or what its verifier extracted of it, the JSON alone, say),
    after the reasoning if that is kept."""
    answer = (answer or row["completion"]).strip()
    if include_reasoning and row["reasoning"]:
        return f"<think>\n{row['reasoning']}\n</think>\n\n{answer}"
    return answer


def training_row(row: dict, include_reasoning: bool, verdict: dict | None = None) -> dict:
    """A kept rollout as a chat row for SFT: the prompt (a chat row's whole conversation), then the answer."""
    answer = verdict["extracted"] if verdict else None
    return {
        "messages": (row.get("messages") or [{"role": "user", "content": row["prompt"]}])
        + [{"role": "assistant", "content": assistant_turn(row, include_reasoning, answer)}],
        "prompt_id": row["prompt_id"],
        "slice": row["slice"],
        "sample_index": row["sample_index"],
    }


def sample_key(row: dict) -> tuple[str, int]:
    return row["prompt_id"], row["sample_index"]


def preference_pairs(
    config: FilterConfig, kept: list[dict], rejected: list[dict], by_sample: dict[tuple[str, int], dict]
) -> list[dict]:
    """Per prompt, as many (chosen, rejected) pairs as it has of both: chosen, a kept answer a verifier passed, as
    SFT learns it; rejected, a non-empty answer a verifier failed. Pairs in sample order."""
    right: dict[str, list[dict]] = {}
    wrong: dict[str, list[dict]] = {}
    for row in sorted(kept, key=sample_key):
        if (found := by_sample.get(sample_key(row))) and found["ok"] is True:
            right.setdefault(row["prompt_id"], []).append(row)
    for row in sorted(rejected, key=sample_key):
        if (found := by_sample.get(sample_key(row))) and found["ok"] is False and row["completion"].strip():
            wrong.setdefault(row["prompt_id"], []).append(row)
    pairs = []
    for prompt_id in sorted(right.keys() & wrong.keys()):
        for index, (good, bad) in enumerate(zip(right[prompt_id], wrong[prompt_id], strict=False)):
            chosen = training_row(good, config.include_reasoning, by_sample[sample_key(good)])["messages"]
            pairs.append(
                {
                    "prompt": chosen[:-1],
                    "chosen": chosen[-1:],
                    "rejected": [{"role": "assistant", "content": assistant_turn(bad, config.include_reasoning)}],
                    "prompt_id": prompt_id,
                    "slice": good["slice"],
                    "pair_index": index,
                }
            )
    return pairs


def filter_rows(
    config: FilterConfig, rollouts: DatasetRef, verdicts: DatasetRef, judgments: DatasetRef | None, out_uri: str
) -> Filtered:
    with Timer() as timer:
        rows = read_dataset(rollouts)
        by_sample = {sample_key(v): v for v in read_dataset(verdicts)}
        judged = {sample_key(j): j for j in read_dataset(judgments)} if judgments else {}
        kept, rejected = partition(
            rows, lambda row: reason_to_drop(config, row, by_sample.get(sample_key(row)), judged.get(sample_key(row)))
        )
        pairs = preference_pairs(config, kept, rejected, by_sample)
    report = StageReport(
        stage="filter",
        rows_in=len(rows),
        rows_out=len(kept),
        dropped=count_reasons(rejected),
        metrics={"prompts_kept": len({r["prompt_id"] for r in kept}), "preference_pairs": len(pairs)},
        seconds=timer.seconds,
    )
    return Filtered(
        rows=write_dataset(
            [training_row(r, config.include_reasoning, by_sample.get(sample_key(r))) for r in kept],
            storage.join(out_uri, "rows.parquet"),
            TRAINING_ROWS,
        ),
        rejected=write_dataset(rejected, storage.join(out_uri, "rejected.parquet"), with_reason(ROLLOUTS)),
        pairs=write_dataset(pairs, storage.join(out_uri, "pairs.parquet"), PREFERENCE_PAIRS),
        report=report,
    )


@task(name="filter_rollouts", **STAGE_TASK)
def filter_rollouts(
    config: FilterConfig, rollouts: DatasetRef, verdicts: DatasetRef, judgments: DatasetRef | None, work_dir: str
) -> Filtered:
    """Drop empty, truncated, refused, wrong and poorly judged answers; write chat rows for training."""
    uri = stage_uri(work_dir, "filter", config, rollouts, verdicts, judgments)
    return filter_rows(config, rollouts, verdicts, judgments, uri)
