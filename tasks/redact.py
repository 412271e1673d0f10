"""Redact: replace PII in every prompt with numbered placeholders before the teacher sees anything.

The finding and replacing is tasks.pii's (Presidio with spaCy NER and its recognizers, plus ours for
names in context, IBAN-shaped and long account numbers, phones in any national format and street
addresses); placeholders are numbered per prompt (`<PERSON_1>`, `<PERSON_2>`), across the turns of a
chat row's conversation; a held-out row's production response is redacted as a model's answer is, after its
prompt, and a training row's is dropped (nothing reads it). Output: the training and the held-out prompts with
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
    """What is redacted as one conversation: the prompt or its turns, and the reference where it holds PII."""
    turns = [m["content"] for m in row["messages"]] if row["messages"] else [row["prompt"]]
    return turns + ([row["reference"]] if row["slice"] in reference_slices and row["reference"] else [])


def _redacted_row(row: dict, redaction: Redaction) -> dict:
    """The row with its text, or each turn of its conversation (and its reference, if redacted), redacted."""
    count = len(row["messages"]) if row["messages"] else 1
    turns, reference = redaction.texts[:count], redaction.texts[count:]
    out = {**row, "reference": reference[0] if reference else row["reference"], "pii": redaction.entities}
    if not row["messages"]:
        return {**out, "prompt": turns[0]}
    messages = [{**m, "content": text} for m, text in zip(row["messages"], turns, strict=True)]
    return {**out, "messages": messages, "prompt": render_turns(messages)}


def _responses(redactor: Redactor, rows: list[dict], reference_slices: list[str]) -> list[str | None]:
    """Production's responses redacted as any model's answer is (Redactor.redact_answers): in one conversation
    with the prompt as the log has it, so a name has the prompt's placeholder, and the reference answer, the task,
    stays (not where the slice's references hold PII)."""
    answered = [i for i, r in enumerate(rows) if r.get("response")]
    if not answered:
        return [None] * len(rows)
    asked = [rows[i] | ({"reference": None} if rows[i]["slice"] in reference_slices else {}) for i in answered]
    done = redactor.redact_answers(asked, [[rows[i]["response"]] for i in answered], "redact responses")
    found: list[str | None] = [None] * len(rows)
    for i, [text] in zip(answered, done, strict=True):
        found[i] = text
    return found


def redact(
    config: RedactConfig, train: DatasetRef, held_out: DatasetRef, quarantine: DatasetRef, out_uri: str
) -> Redacted:
    """Redact every prompt, training and held out; drop the quarantined rows' content."""
    with Timer() as timer:
        redactor = Redactor(config)
        train_rows, eval_rows, bad = read_dataset(train), read_dataset(held_out), read_dataset(quarantine)
        rows = train_rows + eval_rows
        texts = [_texts(r, config.reference_slices) for r in rows]
        redacted = redactor.redact_conversations(texts, progress_label="redact prompts")
        entities = Counter(t for r in redacted for t in r.entities)
        out_rows = [_redacted_row(r, done) for r, done in zip(rows, redacted, strict=True)]
        # only held-out rows carry production's response: the shadow report compares the students with it
        responses = [None] * len(train_rows) + _responses(redactor, eval_rows, config.reference_slices)
        out_rows = [r | {"response": text} for r, text in zip(out_rows, responses, strict=True)]
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
