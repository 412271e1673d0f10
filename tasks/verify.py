"""Verify: one verdict per teacher sample, by the slice's verifier (tasks.verifiers), written once.

Output `verdicts.parquet` (schemas.VERDICTS): prompt id, sample index, verifier, ok, score,
reason. The filter reads it to drop wrong answers; the report says how much N samples plus a
verifier buy over a single sample. A row without the reference its slice's number or label verifier needs (a
synthetic prompt, say) is judged by a majority vote over its samples on the same kind of answer.
"""

from __future__ import annotations

from collections import defaultdict

from prefect import task

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.refs import DatasetRef
from tasks.schemas import VERDICTS
from tasks.stage import StageReport, StageResult, Timer, read_dataset, write_dataset
from tasks.verifiers import Label, Majority, Number, Verdict, Verifier, VerifyConfig, verdict


class Verified(StageResult):
    verdicts: DatasetRef


def voted(verifier: Verifier | None, row: dict) -> Majority | None:
    """How a row's samples are judged together: a majority-vote slice's own vote; and a row without the reference
    its slice's number or label verifier needs (a synthetic prompt, say) by a vote on the same kind of answer."""
    if isinstance(verifier, Majority):
        return verifier
    if row.get("reference") or verifier is None:
        return None
    if isinstance(verifier, Number):  # not math: its first number may be a step of the working
        return Majority(votes_on="number")
    if isinstance(verifier, Label) and verifier.labels:
        return Majority(votes_on="label", labels=verifier.labels)
    return None  # free text or code without its tests: left unchecked, and counted


def verdict_rows(config: VerifyConfig, rollouts: list[dict]) -> list[dict]:
    """A VERDICTS row per rollout; rows that cannot be checked say why. A majority-vote slice's samples are judged
    together, per prompt."""
    found: dict[int, Verdict | None] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    votes: dict[str, Majority] = {}
    for i, row in enumerate(rollouts):
        if vote := voted(config.by_slice.get(row["slice"]), row):
            groups[row["prompt_id"]].append(i)
            votes[row["prompt_id"]] = vote
        else:
            found[i] = verdict(config, row, row["completion"])
    for pid, members in groups.items():
        found |= dict(zip(members, votes[pid].verify_group([rollouts[i]["completion"] for i in members]), strict=True))
    rows = []
    for i, row in enumerate(rollouts):
        checked = found[i]
        verifier = config.by_slice.get(row["slice"])
        if verifier is None:
            unchecked = f"no verifier for slice {row['slice']}"
        else:
            unchecked = "too few samples state an answer to vote" if voted(verifier, row) else "no reference"
        rows.append(
            {
                "prompt_id": row["prompt_id"],
                "sample_index": row["sample_index"],
                "verifier": (voted(verifier, row) or verifier).kind if checked else "none",
                "ok": checked.ok if checked else None,
                "score": checked.score if checked else None,
                "reason": checked.reason if checked else unchecked,
                "extracted": checked.extracted if checked else None,
            }
        )
    return rows


def verifier_metrics(rows: list[dict]) -> dict[str, float]:
    """Per-sample accuracy against best-of-N: how much the verifier plus N samples buy."""
    checked = [r for r in rows if r["ok"] is not None]
    any_correct: dict[str, bool] = defaultdict(bool)
    for r in checked:
        any_correct[r["prompt_id"]] |= r["ok"]
    return {
        "unverified": len(rows) - len(checked),
        "teacher_sample_accuracy": sum(r["ok"] for r in checked) / max(len(checked), 1),
        "prompts_with_a_correct_sample": sum(any_correct.values()) / max(len(any_correct), 1),
    }


def verify(config: VerifyConfig, rollouts: DatasetRef, out_uri: str) -> Verified:
    with Timer() as timer:
        samples = read_dataset(rollouts)
        rows = verdict_rows(config, samples)
    by_slice: dict[str, list[bool]] = defaultdict(list)
    for row, rollout in zip(rows, samples, strict=True):
        if row["ok"] is not None:
            by_slice[rollout["slice"]].append(row["ok"])
    report = StageReport(
        stage="verify",
        rows_in=len(rows),
        rows_out=len(rows),
        metrics=verifier_metrics(rows) | {f"sample_accuracy.{k}": sum(v) / len(v) for k, v in sorted(by_slice.items())},
        seconds=timer.seconds,
    )
    return Verified(verdicts=write_dataset(rows, storage.join(out_uri, "verdicts.parquet"), VERDICTS), report=report)


@task(name="verify_rollouts", **STAGE_TASK)
def verify_rollouts(config: VerifyConfig, rollouts: DatasetRef, work_dir: str) -> Verified:
    """Judge every teacher sample with its slice's verifier."""
    return verify(config, rollouts, stage_uri(work_dir, "verify", config, rollouts))
