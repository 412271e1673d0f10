"""Dedup: drop rollouts that repeat another, or whose prompt is one of the held-out eval prompts.

Checked in order, first match wins, first occurrence kept:
1. eval_overlap: the prompt equals a held-out prompt (normalised) or is a MinHash near-duplicate of
   one, so the student is never trained on what it is scored on;
2. exact_duplicate: same normalised prompt and completion as a kept row (the teacher often writes
   the same answer twice);
3. near_duplicate: MinHash LSH (datasketch) over word shingles of prompt + completion, confirmed by
   the estimated Jaccard similarity reaching the threshold.
Rejected rows keep the id of the row they duplicate (`near_duplicate:<prompt_id>/<sample>`).
"""

from __future__ import annotations

import hashlib

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.minhash import NearDuplicateIndex
from tasks.refs import DatasetRef
from tasks.schemas import ROLLOUTS
from tasks.stage import (
    StageReport,
    StageResult,
    Timer,
    count_reasons,
    normalize_text,
    partition,
    read_dataset,
    with_reason,
    write_dataset,
)


class DedupConfig(Config):
    """How alike two rows must be to count as one."""

    near_threshold: float = Field(
        0.85, gt=0, le=1, description="Estimated Jaccard similarity of word shingles at which rows are near duplicates."
    )
    num_perm: int = Field(128, ge=16, description="MinHash permutations (more: slower, more precise).")
    shingle_words: int = Field(3, ge=1, description="Words per shingle.")
    decontaminate: bool = Field(True, description="Drop rollouts whose prompt matches a held-out eval prompt.")


class Deduped(StageResult):
    rollouts: DatasetRef
    rejected: DatasetRef


def dedup_rows(rows: list[dict], eval_prompts: list[str], config: DedupConfig) -> tuple[list[dict], list[dict]]:
    """Kept rows and rejected rows (with reasons), in input order."""
    held_out = {normalize_text(p) for p in eval_prompts}
    eval_index = NearDuplicateIndex(config.near_threshold, config.num_perm, config.shingle_words)
    for i, prompt in enumerate(eval_prompts):
        eval_index.add(f"eval-{i}", eval_index.signature(prompt))
    seen_exact: dict[str, str] = {}
    kept_index = NearDuplicateIndex(config.near_threshold, config.num_perm, config.shingle_words)

    def reason_to_drop(row: dict) -> str | None:
        key = f"{row['prompt_id']}/{row['sample_index']}"
        if config.decontaminate:
            if normalize_text(row["prompt"]) in held_out:
                return "eval_overlap:exact"
            if eval_index.find(eval_index.signature(row["prompt"])):
                return "eval_overlap:near"
        text = normalize_text(row["prompt"]) + "\n" + normalize_text(row["completion"])
        exact = hashlib.sha256(text.encode()).hexdigest()
        if exact in seen_exact:
            return f"exact_duplicate:{seen_exact[exact]}"
        signature = kept_index.signature(text)
        if original := kept_index.find(signature):
            return f"near_duplicate:{original}"
        seen_exact[exact] = key
        kept_index.add(key, signature)
        return None

    return partition(rows, reason_to_drop)


def dedup(config: DedupConfig, rollouts: DatasetRef, held_out: DatasetRef, out_uri: str) -> Deduped:
    with Timer() as timer:
        rows = read_dataset(rollouts)
        eval_prompts = [r["prompt"] for r in read_dataset(held_out)]
        kept, rejected = dedup_rows(rows, eval_prompts, config)
    report = StageReport(
        stage="dedup",
        rows_in=len(rows),
        rows_out=len(kept),
        dropped=count_reasons(rejected),
        metrics={"kept_share": len(kept) / max(len(rows), 1)},
        seconds=timer.seconds,
    )
    return Deduped(
        rollouts=write_dataset(kept, storage.join(out_uri, "rollouts.parquet"), ROLLOUTS),
        rejected=write_dataset(rejected, storage.join(out_uri, "rejected.parquet"), with_reason(ROLLOUTS)),
        report=report,
    )


@task(name="dedup_rollouts", **STAGE_TASK)
def dedup_rollouts(config: DedupConfig, rollouts: DatasetRef, held_out: DatasetRef, work_dir: str) -> Deduped:
    """Drop exact and near-duplicate rollouts and those overlapping the held-out prompts."""
    return dedup(config, rollouts, held_out, stage_uri(work_dir, "dedup", config, rollouts, held_out))
