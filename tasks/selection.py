"""Select: under a budget, the training rows most worth training on (DEITA-style), or a random draw of the size.

DEITA (Liu et al., 2024) scores each example for complexity and quality and takes the best first, skipping any
too close in embedding to one already taken. Its scorers are trained models; ours are the signals the run already
has: quality is the row's own verdict, its prompt's pass rate over the teacher's samples and the judge's score
(each where it exists), complexity the question's length (log words, a CJK or Thai character counting as one: as
instructions that ask more are longer). Each slice keeps its share of the budget as it is among the rows the filter
kept (a slice the teacher often fails has fewer); within it, rows are taken best first while their cosine to every
row taken stays under `novelty_threshold`, and when that leaves the quota short the best of those skipped fill it:
the budget is exact. Rows not taken go to `rejected` as `not_selected`. The DPO pairs are the filter's, all of them.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Literal

import numpy as np
from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.embed import embed
from tasks.refs import DatasetRef
from tasks.sampling import allocate
from tasks.schemas import TRAINING_ROWS
from tasks.stage import (
    StageReport,
    StageResult,
    Timer,
    count_reasons,
    read_dataset,
    user_text,
    with_reason,
    words,
    write_dataset,
)


class SelectionConfig(Config):
    """How many training rows to keep, and which."""

    budget: int | None = Field(None, ge=1, description="Training rows to keep; none: every row the filter kept.")
    method: Literal["score", "random"] = Field(
        "score",
        description="score: best first by quality x complexity, diverse (DEITA-style); random: a seeded draw "
        "(the baseline to compare with).",
    )
    novelty_threshold: float = Field(
        0.85,
        gt=0,
        le=1,
        description="score: a row this alike (cosine) to one already taken waits until no other is left (DEITA used "
        "0.9 in its own embedding; in all-MiniLM-L6-v2 a reworded question with the same answer is 0.86).",
    )
    seed: int = Field(0, description="Seed of the random draw.")


class Selected(StageResult):
    rows: DatasetRef
    rejected: DatasetRef


def scores(rows: list[dict], verdicts: list[dict], judgments: list[dict]) -> list[float]:
    """quality x complexity per row (see the module's docstring); quality 0.5 where nothing judged the row."""
    ok = {(v["prompt_id"], v["sample_index"]): v["ok"] for v in verdicts}
    by_prompt: dict[str, list[bool]] = defaultdict(list)  # the verdicts on each prompt's samples
    for (prompt_id, _), passed in ok.items():
        if passed is not None:
            by_prompt[prompt_id].append(passed)
    judged = {(j["prompt_id"], j["sample_index"]): j["score"] for j in judgments if j["score"] is not None}
    out = []
    for row in rows:
        key = (row["prompt_id"], row["sample_index"])
        rates = by_prompt.get(row["prompt_id"])
        signals = [float(ok[key])] if ok.get(key) is not None else []
        signals += [sum(rates) / len(rates)] if rates else []
        signals += [(judged[key] - 1) / 4] if key in judged else []  # the judge's 1-5
        quality = sum(signals) / len(signals) if signals else 0.5
        out.append(quality * math.log1p(len(words(user_text(row)))))
    return out


def diverse_best(order: list[int], vectors: np.ndarray, quota: int, threshold: float) -> list[int]:
    """`quota` of `order` (best first): each taken only if unlike every one taken, then the skipped, best first."""
    taken, skipped = np.empty(quota, dtype=np.int64), []  # taken[:n]: no copy of a growing list per row
    n = 0
    for i in order:
        if n == quota:
            break
        if n and float(np.max(vectors[taken[:n]] @ vectors[i])) >= threshold:
            skipped.append(i)
        else:
            taken[n], n = i, n + 1
    return taken[:n].tolist() + skipped[: quota - n]


def choose(config: SelectionConfig, rows: list[dict], row_scores: list[float]) -> set[int]:
    """The positions of the rows kept: per slice its share of the budget, by score or at random."""
    by_slice: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_slice[row["slice"]].append(i)
    quota = allocate({name: len(members) for name, members in by_slice.items()}, config.budget)
    if config.budget >= len(rows):
        return set(range(len(rows)))
    if config.method == "random":
        rng = random.Random(config.seed)
        return {i for name in sorted(by_slice) for i in rng.sample(by_slice[name], quota[name])}
    vectors = embed([user_text(row) + "\n" + row["messages"][-1]["content"] for row in rows], stage="selection")
    chosen = set()
    for name, members in by_slice.items():
        order = sorted(members, key=lambda i: -row_scores[i])
        chosen |= set(diverse_best(order, vectors, quota[name], config.novelty_threshold))
    return chosen


def select(
    config: SelectionConfig, rows_ref: DatasetRef, verdicts: DatasetRef, judgments: DatasetRef | None, out_uri: str
) -> Selected:
    """The budget's rows and the rest, rejected with their score."""
    with Timer() as timer:
        rows = read_dataset(rows_ref)
        row_scores = scores(rows, read_dataset(verdicts), read_dataset(judgments) if judgments else [])
        chosen = choose(config, rows, row_scores)
        kept = [row for i, row in enumerate(rows) if i in chosen]
        why = "not_selected: random draw" if config.method == "random" else "not_selected: score {:.2f}"
        rejected = [row | {"reason": why.format(row_scores[i])} for i, row in enumerate(rows) if i not in chosen]
    taken = [row_scores[i] for i in chosen]
    report = StageReport(
        stage="selection",
        rows_in=len(rows),
        rows_out=len(kept),
        dropped=count_reasons(rejected),
        metrics={
            "mean_score_kept": sum(taken) / max(len(taken), 1),
            "mean_score_all": sum(row_scores) / max(len(row_scores), 1),
        },  # fmt: skip
        seconds=timer.seconds,
        notes=[f"{config.method}: {len(kept)} of {len(rows)} rows, each slice its share of the budget"],
    )
    return Selected(
        rows=write_dataset(kept, storage.join(out_uri, "rows.parquet"), TRAINING_ROWS),
        rejected=write_dataset(rejected, storage.join(out_uri, "rejected.parquet"), with_reason(TRAINING_ROWS)),
        report=report,
    )


@task(name="select_rows", **STAGE_TASK)
def select_rows(
    config: SelectionConfig, rows: DatasetRef, verdicts: DatasetRef, judgments: DatasetRef | None, work_dir: str
) -> Selected:
    """Keep `budget` training rows: the best and most diverse (or a random draw), each slice its share."""
    uri = stage_uri(work_dir, "selection", config, rows, verdicts, judgments)
    return select(config, rows, verdicts, judgments, uri)
