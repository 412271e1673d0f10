"""Redact: replace PII in every prompt with numbered placeholders before the teacher sees anything.

The finding and replacing is tasks.pii's (Presidio with spaCy NER and its recognizers, plus ours for
names in context, IBAN-shaped and long account numbers, phones in any national format and street
addresses); placeholders are numbered per prompt (`<PERSON_1>`, `<PERSON_2>`), across the turns of a
chat row's conversation and production's response. Output: the training and the held-out prompts with
`prompt` (and a chat row's `messages`, and `response`) redacted and `pii` (entity types found), and the
quarantine without its rows' content: it is logged to MLflow, and a malformed row (a 200 kB paste, a
broken record) is where redaction is least sure; row, field and reason say what is wrong, and the row as
read stays in the source stage's folder beside the log it came from.
"""

from __future__ import annotations

from collections import Counter

from prefect import task

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.pii import RedactConfig, Redaction, Redactor
from tasks.refs import DatasetRef
from tasks.schemas import QUARANTINE, REDACTED_PROMPTS
from tasks.stage import StageReport, StageResult, Timer, read_dataset, render_turns, write_dataset


class Redacted(StageResult):
    train_prompts: DatasetRef
    eval_prompts: DatasetRef
    quarantine: DatasetRef


def _texts(row: dict, reference_slices: list[str]) -> list[str]:
    """What is redacted as one conversation, so a name has one placeholder throughout: the prompt or its turns,
    the reference where it holds PII, and production's response (shown in the shadow report)."""
    turns = [m["content"] for m in row["messages"]] if row["messages"] else [row["prompt"]]
    reference = [row["reference"]] if row["slice"] in reference_slices and row["reference"] else []
    return turns + reference + ([row["response"]] if row.get("response") else [])


def _kept(row: dict, reference_slices: list[str]) -> list[str]:
    """What stays in production's response as it stays in any model's answer (Redactor.redact_answers): the
    reference answer, its task, outside the slices whose references are redacted."""
    keep = row.get("response") and row["reference"] and row["slice"] not in reference_slices
    return [row["reference"]] if keep else []


def _redacted_row(row: dict, redaction: Redaction, reference_slices: list[str]) -> dict:
    """The row with its text, or each turn of its conversation, its reference (where redacted) and its
    response redacted."""
    count = len(row["messages"]) if row["messages"] else 1
    turns, rest = redaction.texts[:count], redaction.texts[count:]
    if row["slice"] in reference_slices and row["reference"]:
        row, rest = {**row, "reference": rest[0]}, rest[1:]
    out = {**row, "response": rest[0] if rest else None, "pii": redaction.entities}
    if not row["messages"]:
        return {**out, "prompt": turns[0]}
    messages = [{**m, "content": text} for m, text in zip(row["messages"], turns, strict=True)]
    return {**out, "messages": messages, "prompt": render_turns(messages)}


def redact(
    config: RedactConfig, train: DatasetRef, held_out: DatasetRef, quarantine: DatasetRef, out_uri: str
) -> Redacted:
    """Redact every prompt, training and held out; drop the quarantined rows' content."""
    with Timer() as timer:
        redactor = Redactor(config)
        train_rows, eval_rows, bad = read_dataset(train), read_dataset(held_out), read_dataset(quarantine)
        rows = train_rows + eval_rows
        texts = [_texts(r, config.reference_slices) for r in rows]
        redacted = redactor.redact_conversations(
            texts, "redact prompts", [_kept(r, config.reference_slices) for r in rows]
        )
        entities = Counter(t for r in redacted for t in r.entities)
        out_rows = [_redacted_row(r, done, config.reference_slices) for r, done in zip(rows, redacted, strict=True)]
        out_bad = [{**q, "raw": None} for q in bad]
    report = StageReport(
        stage="redact",
        rows_in=len(rows),
        rows_out=len(out_rows),
        metrics={
            "rows_with_pii": sum(1 for r in redacted if r.entities),
            **{f"entities.{name}": n for name, n in sorted(entities.items())},
        },
        seconds=timer.seconds,
        notes=[f"the quarantine's {len(out_bad)} rows are logged without their content (row, field, reason)"],
    )
    return Redacted(
        train_prompts=write_dataset(
            out_rows[: len(train_rows)], storage.join(out_uri, "train_prompts.parquet"), REDACTED_PROMPTS
        ),
        eval_prompts=write_dataset(
            out_rows[len(train_rows) :], storage.join(out_uri, "eval_prompts.parquet"), REDACTED_PROMPTS
        ),
        quarantine=write_dataset(out_bad, storage.join(out_uri, "quarantine.parquet"), QUARANTINE),
        report=report,
    )


@task(name="redact_prompts", **STAGE_TASK)
def redact_prompts(
    config: RedactConfig, train: DatasetRef, held_out: DatasetRef, quarantine: DatasetRef, work_dir: str
) -> Redacted:
    """Replace PII with numbered placeholders in the prompts; the quarantine goes on without row content."""
    out_uri = stage_uri(work_dir, "redact", config, train, held_out, quarantine)
    return redact(config, train, held_out, quarantine, out_uri)
