"""Dedup: drop teacher samples that repeat another, keeping the best of each group.

`level: response` (default) compares samples by question and answer, each on its own: both must be alike (two
reviews under one long template, both answered "Negative.", are two examples). The N samples of one prompt often
repeat, and two prompts asked alike get answers alike. `level: prompt` compares questions: a prompt near-duplicate of a
kept one goes with all its samples. A chat row's question is its user turns: the system prompt every row shares
would make any two short questions look alike.

Near-duplicates are texts at exact Jaccard similarity >= `near_threshold` over word shingles; MinHash LSH only
proposes the pairs to check (tasks/minhash.py). A row is dropped only for a row that is kept, never for one
that was itself dropped; within a group the best row is kept: a verifier pass first, then the judge's score, then a
complete answer (not cut off), then the shortest, then the first. Rejected rows name the row kept in their place and the
similarity (`near_duplicate:p1/0 jaccard 0.86`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.minhash import Banding, Duplicates, exact_jaccard, near_duplicates
from tasks.refs import DatasetRef
from tasks.schemas import ROLLOUTS
from tasks.semdedup import semantic_duplicates
from tasks.stage import (
    StageReport,
    StageResult,
    Timer,
    count_reasons,
    read_table,
    user_text,
    with_reason,
    write_dataset,
)


class DedupConfig(Config):
    """Which teacher samples count as one, and how hard to look for them."""

    level: Literal["response", "prompt"] = Field(
        "response",
        description="`response`: samples alike in prompt and answer are one; `prompt`: prompts alike are one, and "
        "a dropped prompt takes all its samples with it.",
    )
    near_threshold: float = Field(
        0.8, gt=0, le=1, description="Exact Jaccard similarity of word shingles at which two texts are near duplicates."
    )
    shingle_words: int = Field(5, ge=1, description="Words per shingle (a shorter text is one shingle).")
    bands: int = Field(
        32, ge=1, description="LSH bands: they only propose pairs to check, so more bands find more pairs near the "
        "threshold, at the cost of checking more.",
    )  # fmt: skip
    rows_per_band: int = Field(4, ge=1, description="MinHash values per band (bands x rows permutations).")
    semantic_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="After MinHash, SemDedup: what is left is embedded, and a text whose cosine similarity to a better "
        "kept one reaches this is dropped too (0.95 is SemDedup's usual); none: off.",
    )

    def banding(self) -> Banding:
        return Banding(shingle_words=self.shingle_words, bands=self.bands, rows=self.rows_per_band)


class Deduped(StageResult):
    rollouts: DatasetRef
    rejected: DatasetRef


def _verdict_rank(table: pa.Table, verdicts: pa.Table) -> np.ndarray:
    """Per sample: 0 the verifier passed it, 1 unchecked, 2 it failed."""
    columns = (verdicts[c].to_pylist() for c in ("prompt_id", "sample_index", "ok"))
    ok = {(p, s): v for p, s, v in zip(*columns, strict=True)}
    keys = zip(table["prompt_id"].to_pylist(), table["sample_index"].to_pylist(), strict=True)
    return np.array([{True: 0, None: 1, False: 2}[ok.get(key)] for key in keys], dtype=np.int64)


def _judge_score(table: pa.Table, judgments: pa.Table | None) -> np.ndarray:
    """Per sample: the judge's score (0 where it scored none)."""
    if judgments is None:
        return np.zeros(len(table), dtype=np.int64)
    columns = (judgments[c].to_pylist() for c in ("prompt_id", "sample_index", "score"))
    scored = {(p, s): v for p, s, v in zip(*columns, strict=True)}
    keys = zip(table["prompt_id"].to_pylist(), table["sample_index"].to_pylist(), strict=True)
    return np.array([scored.get(key) or 0 for key in keys], dtype=np.int64)


def best_first(table: pa.Table, verdicts: pa.Table, judgments: pa.Table | None = None) -> np.ndarray:
    """Sample indices, the best first: verifier pass, judge score, a complete answer, the shortest, table order."""
    cut_off = pc.equal(table["finish_reason"], "length").fill_null(False).to_numpy(zero_copy_only=False)
    length = pc.utf8_length(table["completion"]).fill_null(0).to_numpy(zero_copy_only=False)
    judged = -_judge_score(table, judgments)
    return np.lexsort((np.arange(len(table)), length, cut_off, judged, _verdict_rank(table, verdicts)))


def _asked(table: pa.Table) -> list[str]:
    """Per sample, what the user asked (chat rows: the user turns, not the system prompt every row shares)."""
    prompts, messages = table["prompt"].to_pylist(), table["messages"].to_pylist()
    return [user_text({"prompt": p, "messages": m}) for p, m in zip(prompts, messages, strict=True)]


def _keys(table: pa.Table) -> list[str]:
    ids, samples = table["prompt_id"].to_pylist(), table["sample_index"].to_pylist()
    return [f"{p}/{s}" for p, s in zip(ids, samples, strict=True)]


def _reasons(found: Duplicates, names: list[str], kind: str) -> dict[int, str]:
    """{position in `names`: reason} for each dropped text."""
    reasons = {}
    for i in found.dropped().tolist():
        original, similarity = names[found.original[i]], found.jaccard[i]
        exact = found.exact[i]
        reasons[i] = f"exact_duplicate:{original}" if exact else f"{kind}:{original} jaccard {similarity:.2f}"
    return reasons


def response_reasons(table: pa.Table, order: np.ndarray, config: DedupConfig) -> dict[int, str]:
    """{row: reason} for the samples repeating a better kept sample (prompt and answer together)."""
    prompts, completions = _asked(table), table["completion"].to_pylist()
    questions, answers = [prompts[i] for i in order.tolist()], [completions[i] for i in order.tolist()]
    k = config.shingle_words

    def question_and_answer_alike(positions: list[int], pairs: np.ndarray) -> np.ndarray:
        # a long shared template would make "Negative." to two different reviews look alike: both parts must be
        at = np.asarray(positions)[pairs]
        threshold = config.near_threshold
        return (exact_jaccard(questions, at, k) >= threshold) & (exact_jaccard(answers, at, k) >= threshold)

    texts = [f"{q}\n{a}" for q, a in zip(questions, answers, strict=True)]
    found = near_duplicates(texts, config.near_threshold, config.banding(), confirm=question_and_answer_alike)
    keys = _keys(table)
    by_rank = _reasons(found, [keys[i] for i in order.tolist()], "near_duplicate")
    return {int(order[rank]): reason for rank, reason in by_rank.items()}


def prompt_reasons(table: pa.Table, order: np.ndarray, config: DedupConfig) -> dict[int, str]:
    """{row: reason} for every sample of a prompt that repeats a better kept prompt."""
    ids, prompts = table["prompt_id"].to_pylist(), _asked(table)
    ranked: list[str] = list(dict.fromkeys(ids[i] for i in order.tolist()))  # a prompt ranks as its best sample
    text = dict(zip(ids, prompts, strict=True))
    found = near_duplicates([text[p] for p in ranked], config.near_threshold, config.banding())
    dropped = {ranked[i]: reason for i, reason in _reasons(found, ranked, "near_duplicate_prompt").items()}
    return {row: dropped[pid] for row, pid in enumerate(ids) if pid in dropped}


def semantic_reasons(
    table: pa.Table, order: np.ndarray, reasons: dict[int, str], config: DedupConfig
) -> dict[int, str]:
    """{row: reason} for the rows MinHash kept that repeat a better kept row in meaning (question and answer both
    alike, or with `level: prompt` the question, with all its samples)."""
    keys, asked, ids = _keys(table), _asked(table), table["prompt_id"].to_pylist()
    answers = table["completion"].to_pylist()
    alive = [int(i) for i in order if int(i) not in reasons]  # best first
    if config.level == "prompt":
        ranked = list(dict.fromkeys(ids[i] for i in alive))
        text = dict(zip(ids, asked, strict=True))
        found = semantic_duplicates([[text[p] for p in ranked]], config.semantic_threshold)
        gone = {ranked[i]: f"semantic_duplicate_prompt:{ranked[j]} cosine {c:.2f}" for i, (j, c) in found.items()}
        return {row: gone[ids[row]] for row in alive if ids[row] in gone}
    found = semantic_duplicates([[asked[i] for i in alive], [answers[i] for i in alive]], config.semantic_threshold)
    return {alive[i]: f"semantic_duplicate:{keys[alive[j]]} cosine {c:.2f}" for i, (j, c) in found.items()}


def dedup_table(
    config: DedupConfig, table: pa.Table, verdicts: pa.Table, judgments: pa.Table | None = None
) -> tuple[pa.Table, pa.Table]:
    """Kept samples and rejected ones (with a `reason`), each in input order."""
    order = best_first(table, verdicts, judgments)
    reasons = (prompt_reasons if config.level == "prompt" else response_reasons)(table, order, config)
    if config.semantic_threshold:
        reasons |= semantic_reasons(table, order, reasons, config)
    dropped = np.zeros(len(table), dtype=bool)
    dropped[list(reasons)] = True
    rejected = table.filter(pa.array(dropped))
    why = pa.array([reasons[i] for i in np.flatnonzero(dropped).tolist()], pa.string())
    return table.filter(pa.array(~dropped)), rejected.append_column("reason", why)


def dedup(
    config: DedupConfig, rollouts: DatasetRef, verdicts: DatasetRef, judgments: DatasetRef | None, out_uri: str
) -> Deduped:
    with Timer() as timer:
        table = read_table(rollouts)
        kept, rejected = dedup_table(config, table, read_table(verdicts), read_table(judgments) if judgments else None)
    report = StageReport(
        stage="dedup",
        rows_in=len(table),
        rows_out=len(kept),
        dropped=count_reasons(rejected.select(["reason"]).to_pylist()),
        metrics={"kept_share": len(kept) / max(len(table), 1)},
        seconds=timer.seconds,
    )
    return Deduped(
        rollouts=write_dataset(kept, storage.join(out_uri, "rollouts.parquet"), ROLLOUTS),
        rejected=write_dataset(rejected, storage.join(out_uri, "rejected.parquet"), with_reason(ROLLOUTS)),
        report=report,
    )


@task(name="dedup_rollouts", **STAGE_TASK)
def dedup_rollouts(
    config: DedupConfig, rollouts: DatasetRef, verdicts: DatasetRef, judgments: DatasetRef | None, work_dir: str
) -> Deduped:
    """Drop exact and near-duplicate samples, keeping the best of each group."""
    uri = stage_uri(work_dir, "dedup", config, rollouts, verdicts, judgments)
    return dedup(config, rollouts, verdicts, judgments, uri)
