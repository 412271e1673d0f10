"""Cleaning what the recognizers found, before it is replaced: spans the NER got wrong trimmed or dropped,
operands and key names left out, and a value found once looked for everywhere else in its conversation."""

from __future__ import annotations

import regex

from tasks.pii.names import NOT_NAMES
from tasks.pii.numbers import OPERATOR
from tasks.pii.placeholders import Span, merge


def _by_ner(result) -> bool:
    return (result.recognition_metadata or {}).get("recognizer_name") == "SpacyRecognizer"


def trusted(text: str, result) -> bool:
    """spaCy reads `question="Which` as one token and may call it a PERSON; `key=value` names are ours to find."""
    return not (_by_ner(result) and "=" in text[result.start : result.end])


def as_span(text: str, result) -> Span:
    """A recognizer's result as a Span; the NER's ends at a line break (it may run into the next paragraph)."""
    end = result.end
    if _by_ner(result):
        newline = text.find("\n", result.start, result.end)
        end = newline if newline > result.start else end
    return Span(result.start, end, result.entity_type, result.score)


_NOT_A_NAME = regex.compile(rf"(?:{NOT_NAMES})")
_WORD = regex.compile(r"[\w'’.-]+")
_NUMERIC = {"PHONE_NUMBER", "ACCOUNT_NUMBER", "US_BANK_NUMBER", "CREDIT_CARD"}
_OPERAND_BEFORE = regex.compile(rf"\d[ \t]?{OPERATOR}[ \t]?$")
_OPERAND_AFTER = regex.compile(rf"[ \t]?{OPERATOR}[ \t]?\d")


def name_words_only(text: str, span: Span) -> Span | None:
    """A PERSON span without the words at either end that are no names ("Convert …", "… T. Which"); None if
    nothing is left."""
    if span.entity != "PERSON":
        return span
    words = list(_WORD.finditer(text, span.start, span.end))
    while words and _NOT_A_NAME.fullmatch(words[0].group()):
        words.pop(0)
    while words and _NOT_A_NAME.fullmatch(words[-1].group()):
        words.pop()
    return Span(words[0].start(), words[-1].end(), span.entity, span.score) if words else None


def is_operand(text: str, span: Span) -> bool:
    """Digits beside an arithmetic operator are a task's operands ("2^31 - 1 = 2147483647"), not a phone."""
    return span.entity in _NUMERIC and bool(
        _OPERAND_BEFORE.search(text, max(0, span.start - 4), span.start) or _OPERAND_AFTER.match(text, span.end)
    )


def everywhere(found: dict[str, list[Span]]) -> dict[str, list[Span]]:
    """A value found once in a conversation is replaced wherever else it stands there too ("Thanks, Kwame
    Mensah" found by its cue, and "Kwame Mensah" or "Mensah" alone in another turn)."""
    values = {text[s.start : s.end]: s for text, spans in found.items() for s in spans}
    # and each capitalised word of a name alone ("Mr. Mensah"), as the NER may split a repeated name badly
    names = [(value, span) for value, span in values.items() if span.entity == "PERSON"]
    values |= {word: span for value, span in names for word in _NAME_WORD.findall(value)}
    values = {value: span for value, span in values.items() if len(value) >= 4}
    if not values:
        return found
    pattern = regex.compile("|".join(rf"(?<!\w){regex.escape(v)}(?!\w)" for v in sorted(values, key=len, reverse=True)))
    return {
        text: merge(spans + [Span(m.start(), m.end(), values[m.group()].entity, values[m.group()].score)
                             for m in pattern.finditer(text)])
        for text, spans in found.items()
    }  # fmt: skip


def inside_any(text: str, span: Span, terms: list[str]) -> bool:
    """Whether the span's text is (part of) one of the terms."""
    found = text[span.start : span.end].strip()
    return any(found and found in term for term in terms)


_NAME_WORD = regex.compile(r"\p{Lu}[\p{Ll}\p{M}'’-]{3,}")
_KEY = regex.compile(r"[\w-]+=[\"']?")


def without_key(text: str, span: Span) -> Span:
    key = _KEY.match(text, span.start, span.end)
    return Span(key.end(), span.end, span.entity, span.score) if key and key.end() < span.end else span
