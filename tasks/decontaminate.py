"""Decontaminate: drop training prompts that overlap an evaluation set, before the teacher is asked for them.

Compared: what the user asked (a chat row's user turns; its system prompt is the same for every row), after
normalising (lowercase, sentence punctuation dropped). A training prompt is contaminated by an evaluation
prompt when it
1. is the same text (`exact`);
2. shares a span of `ngram_words` words with it (13 by default, as in GPT-3's decontamination and most since);
   an evaluation prompt shorter than that is one span, so a training prompt that contains it is caught;
3. or is a near duplicate of it: exact Jaccard similarity of 5-word shingles >= `near_threshold` (`near`).
A span found in `boilerplate_prompts` or more training prompts is a template (a system prompt, a greeting, "classify
the sentiment of this review as positive or negative: the …"), not an item leaking: it counts for nothing.
The sets checked: the run's held-out prompts, and the evaluation sets named in `eval_sets` (a file, glob or
`s3://` URI of JSONL, CSV or Parquet, with a prompt column, `prompt` unless named, or chat `messages`). Drops
are counted per set (`eval_overlap.<set>`); a rejected row names the set, the check and the evaluation row,
never its text. An evaluation prompt shorter than `min_span_words` is checked whole only (exact, near).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from prefect import task
from pydantic import Field, field_validator

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import PLACE, Config
from tasks.logfile.files import log_files, logs_digest
from tasks.logfile.read import Rejected, read_log
from tasks.logfile.rows import Columns, prompt_and_messages
from tasks.minhash import Banding, Shingler, near_neighbour_of
from tasks.refs import DatasetRef
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import (
    StageReport,
    StageResult,
    Timer,
    normalize_text,
    read_dataset,
    user_text,
    with_reason,
    write_dataset,
)

HELD_OUT = "held_out"


class EvalSet(Config):
    """An evaluation set on disk: where it is, and which column holds its prompts."""

    path: str = Field(description="A file, glob or s3:// URI of JSONL, CSV or Parquet.", json_schema_extra=PLACE)
    prompt_column: str = Field("prompt", description="The prompt's column (a `messages` column is read as chat).")


class DecontaminateConfig(Config):
    """Which evaluation prompts training must not see, and how alike counts as seen."""

    ngram_words: int = Field(13, ge=3, description="A shared span of this many words makes a prompt contaminated.")
    near_threshold: float | None = Field(
        0.8, gt=0, le=1, description="Exact Jaccard similarity of 5-word shingles at which a prompt is a near "
        "duplicate of an evaluation prompt (none: no near check).",
    )  # fmt: skip
    min_span_words: int = Field(
        4, ge=1, description="An evaluation prompt shorter than this is checked as a whole text only (exact, near), "
        "not as a span: a one-word question would otherwise claim every prompt with that word.",
    )  # fmt: skip
    boilerplate_prompts: int = Field(
        5,
        ge=2,
        description="A span shared by this many training prompts or more is a template, not a leak: ignored.",
    )
    eval_sets: dict[str, EvalSet] = Field(
        default={},
        description="Extra evaluation sets by name: a file, glob or s3:// URI (JSONL, CSV, Parquet), or {path, "
        "prompt_column}, e.g. {gsm8k: {path: s3://evals/gsm8k/test.jsonl, prompt_column: question}}.",
    )

    @field_validator("eval_sets", mode="before")
    @classmethod
    def _bare_paths(cls, value):
        if isinstance(value, dict):
            return {name: {"path": v} if isinstance(v, str) else v for name, v in value.items()}
        return value


class EvalSetUnreadable(ValueError):
    """An evaluation set with no prompt to compare with: one line naming the set and the column."""


class Decontaminated(StageResult):
    train_prompts: DatasetRef
    rejected: DatasetRef


def read_eval_set(name: str, found: EvalSet) -> tuple[list[str], int]:
    """What an evaluation set's rows ask (user turns of chat rows), and how many rows have no prompt (counted in
    the report, never guessed). A set with no prompt at all is a mistake, said in one line."""
    prompts, unreadable = [], 0
    columns = Columns(prompt=found.prompt_column)
    for record in read_log(found.path):
        if record.fields is None:  # a blank line
            continue
        try:
            if not isinstance(record.fields, dict):
                raise Rejected(None, "not_object", "not an object")
            prompt, messages = prompt_and_messages(record.fields, columns)
            prompts.append(user_text({"prompt": prompt, "messages": messages}))
        except Rejected:
            unreadable += 1
    if not prompts:
        raise EvalSetUnreadable(
            f"decontaminate.eval_sets.{name}: none of its {unreadable} rows has a '{found.prompt_column}' or "
            "'messages' column: name its prompt column (prompt_column)"
        )
    return prompts, unreadable


def span_lengths(prompts: list[str], n: int, shortest: int) -> dict[int, list[int]]:
    """{span length: evaluation rows}: n words, or the whole prompt for one shorter than that (and not shorter
    than `shortest`)."""
    lengths: dict[int, list[int]] = {}
    for row, prompt in enumerate(prompts):
        words = len(normalize_text(prompt).split())
        if words >= shortest:
            lengths.setdefault(min(words, n), []).append(row)
    return lengths


def shared_spans(train: list[str], evaluation: list[str], length: int, rows: list[int], boilerplate: int) -> list:
    """Per training prompt, the first evaluation row (of `rows`) it shares a `length`-word span with, or None;
    spans in `boilerplate` training prompts or more are ignored."""
    shingler = Shingler(length)
    known, bounds = shingler.batch([evaluation[r] for r in rows])
    owner: dict[int, int] = {}
    for span, row in zip(known.tolist(), np.repeat(rows, np.diff(bounds)).tolist(), strict=True):
        owner.setdefault(span, row)  # the first evaluation row with it
    hashes, bounds = shingler.batch(train)
    per_prompt = [
        np.unique(hashes[a:b]) if len(normalize_text(text).split()) >= length else np.empty(0, np.uint64)
        for text, a, b in zip(train, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    ]  # a prompt shorter than the span has no span of it
    distinct = {normalize_text(text): spans for text, spans in zip(train, per_prompt, strict=True)}
    # counted over distinct prompts: a leaked item asked five times is still a leak, not a template
    spans, counts = np.unique(np.concatenate([*distinct.values(), np.empty(0, np.uint64)]), return_counts=True)
    common = set(spans[counts >= boilerplate].tolist())
    return [next((owner[h] for h in mine.tolist() if h in owner and h not in common), None) for mine in per_prompt]


class Overlap:
    """One evaluation set, checked three ways."""

    def __init__(self, prompts: list[str], config: DecontaminateConfig):
        self.config, self.prompts = config, prompts
        self.exact: dict[str, int] = {}
        for row, prompt in enumerate(prompts):
            self.exact.setdefault(normalize_text(prompt), row)

    def first_overlap(self, train: list[str]) -> list[tuple[str, int] | None]:
        """Per training prompt: (check, evaluation row) of its first overlap, or None."""
        found: list[tuple[str, int] | None] = [
            ("exact", row) if (row := self.exact.get(normalize_text(text))) is not None else None for text in train
        ]
        spans_by_length = span_lengths(self.prompts, self.config.ngram_words, self.config.min_span_words)
        for length, rows in sorted(spans_by_length.items()):
            spans = shared_spans(train, self.prompts, length, rows, self.config.boilerplate_prompts)
            for i, row in enumerate(spans):
                if found[i] is None and row is not None:
                    found[i] = (f"{length}-gram", row)
        if self.config.near_threshold:
            todo = [i for i in range(len(train)) if found[i] is None]
            banding = Banding.for_threshold(self.config.near_threshold, shingle_words=5)
            near = near_neighbour_of([train[i] for i in todo], self.prompts, self.config.near_threshold, banding)
            for i, row in zip(todo, near.tolist(), strict=True):
                if row >= 0:
                    found[i] = ("near", row)
        return found


def decontaminate(
    config: DecontaminateConfig, train_prompts: DatasetRef, held_out: DatasetRef, out_uri: str
) -> Decontaminated:
    with Timer() as timer:
        rows = read_dataset(train_prompts)
        sets = {HELD_OUT: ([user_text(r) for r in read_dataset(held_out)], 0)}
        sets |= {name: read_eval_set(name, found) for name, found in config.eval_sets.items()}
        reasons: dict[int, str] = {}
        for name, (prompts, _) in sets.items():
            todo = [i for i in range(len(rows)) if i not in reasons]
            hits = Overlap(prompts, config).first_overlap([user_text(rows[i]) for i in todo])
            for i, hit in zip(todo, hits, strict=True):
                if hit:
                    reasons[i] = f"eval_overlap.{name}: {hit[0]} of its row {hit[1] + 1}"
        kept = [r for i, r in enumerate(rows) if i not in reasons]
        rejected = [{**rows[i], "reason": reason} for i, reason in sorted(reasons.items())]
    unreadable = {f"unreadable_eval_rows.{name}": n for name, (_, n) in sets.items() if n}
    report = StageReport(
        stage="decontaminate",
        rows_in=len(rows),
        rows_out=len(kept),
        dropped=dict(Counter(r["reason"].split(":")[0] for r in rejected)),
        metrics={f"eval_prompts.{name}": len(prompts) for name, (prompts, _) in sets.items()} | unreadable,
        seconds=timer.seconds,
    )
    return Decontaminated(
        train_prompts=write_dataset(kept, storage.join(out_uri, "train_prompts.parquet"), REDACTED_PROMPTS),
        rejected=write_dataset(rejected, storage.join(out_uri, "rejected.parquet"), with_reason(REDACTED_PROMPTS)),
        report=report,
    )


def eval_sets_digest(config: DecontaminateConfig) -> str:
    """The evaluation sets by file name and version: a rewritten set changes the cache key."""
    return logs_digest([f for found in config.eval_sets.values() for f in log_files(found.path)])


@task(name="decontaminate_prompts", **STAGE_TASK)
def decontaminate_prompts(
    config: DecontaminateConfig, train_prompts: DatasetRef, held_out: DatasetRef, eval_digest: str, work_dir: str
) -> Decontaminated:
    """Drop training prompts that overlap the held-out prompts or a named evaluation set."""
    uri = stage_uri(work_dir, "decontaminate", config, train_prompts, held_out, eval_digest)
    return decontaminate(config, train_prompts, held_out, uri)
