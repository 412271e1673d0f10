"""Redact: replace PII in every prompt with numbered placeholders before the teacher sees anything.

The finding and replacing is tasks.pii's (Presidio with spaCy NER and its recognizers, plus ours for
names in context, IBAN-shaped and long account numbers, phones in any national format and street
addresses); placeholders are numbered per prompt (`<PERSON_1>`, `<PERSON_2>`). Output: the training
and the held-out prompts with `prompt` redacted and `pii` (entity types found), and the quarantine
with `raw` redacted, since it is logged to MLflow.
"""

from __future__ import annotations

from collections import Counter

from prefect import task

from tasks import storage
from tasks.cache import STAGE_CACHE, stage_uri
from tasks.pii import RedactConfig, Redactor
from tasks.refs import DatasetRef
from tasks.schemas import QUARANTINE, REDACTED_PROMPTS
from tasks.stage import StageReport, StageResult, Timer, read_dataset, write_dataset


class Redacted(StageResult):
    train_prompts: DatasetRef
    eval_prompts: DatasetRef
    quarantine: DatasetRef


def redact(
    config: RedactConfig, train: DatasetRef, held_out: DatasetRef, quarantine: DatasetRef, out_uri: str
) -> Redacted:
    """Redact every prompt, training and held out, and every quarantined raw row."""
    with Timer() as timer:
        redactor = Redactor(config)
        train_rows, eval_rows, bad = read_dataset(train), read_dataset(held_out), read_dataset(quarantine)
        rows = train_rows + eval_rows
        redacted = redactor.redact([r["prompt"] for r in rows], progress_label="redact prompts")
        raw = redactor.redact([q["raw"] for q in bad])
        entities = Counter(t for _, types in redacted + raw for t in types)
        out_rows = [{**r, "prompt": text, "pii": types} for r, (text, types) in zip(rows, redacted, strict=True)]
        out_bad = [{**q, "raw": text} for q, (text, _) in zip(bad, raw, strict=True)]
    report = StageReport(
        stage="redact",
        rows_in=len(rows),
        rows_out=len(out_rows),
        metrics={
            "rows_with_pii": sum(1 for _, types in redacted if types),
            **{f"entities.{name}": n for name, n in sorted(entities.items())},
        },
        seconds=timer.seconds,
        notes=[f"also redacted {len(out_bad)} quarantined rows (they are logged to MLflow)"],
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


@task(name="redact_prompts", cache_policy=STAGE_CACHE, persist_result=True)
def redact_prompts(
    config: RedactConfig, train: DatasetRef, held_out: DatasetRef, quarantine: DatasetRef, work_dir: str
) -> Redacted:
    """Replace PII with typed placeholders in the prompts and the quarantined rows."""
    out_uri = stage_uri(work_dir, "redact", config, train, held_out, quarantine)
    return redact(config, train, held_out, quarantine, out_uri)
