"""What a found span becomes: `<PERSON_1>`, numbered per conversation, or a salted, stable pseudonym.

Within one conversation (a prompt's turns, then the teacher's answer to it) the same value gets the
same placeholder and another value the next number, so "<PERSON_1> asked <PERSON_2> to call
<PERSON_1>" keeps who did what. Numbering continues after any placeholders the text already holds
(a teacher's answer to a redacted prompt). A pseudonym (`<PERSON_3f9a1c2b>`) is an HMAC of the value
under a secret salt: the same user gets the same token in every conversation and run, the value
cannot be read back without the salt.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass, field

import regex

PLACEHOLDER = regex.compile(r"<([A-Z_]+?)_(\d+|[0-9a-f]{8})>")


@dataclass(frozen=True)
class Span:
    """A found piece of PII: [start, end) in its text, the entity type and the recognizer's score."""

    start: int
    end: int
    entity: str
    score: float


def merge(spans: list[Span]) -> list[Span]:
    """Overlapping spans become one covering both (recall: never cut a span short), typed by the longer one (an
    address that holds a street named after a person is an address)."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            typed = max(last, span, key=lambda s: (s.end - s.start, s.score))
            merged[-1] = Span(last.start, max(last.end, span.end), typed.entity, max(last.score, span.score))
        else:
            merged.append(span)
    return merged


def _identity(value: str) -> str:
    """The same person written twice ("Maria  Garcia", "maria garcia") is one value."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


@dataclass
class Placeholders:
    """Placeholders for one conversation: numbered (the default), or pseudonyms when a salt is given."""

    salt: bytes | None = None
    numbers: dict[tuple[str, str], int] = field(default_factory=dict)
    next_number: dict[str, int] = field(default_factory=dict)

    def continue_after(self, text: str) -> None:
        """Number after the placeholders already in `text` (an answer to a redacted prompt)."""
        for entity, number in PLACEHOLDER.findall(text):
            if number.isdigit():
                self.next_number[entity] = max(self.next_number.get(entity, 1), int(number) + 1)

    def token(self, entity: str, value: str) -> str:
        key = (entity, _identity(value))
        if self.salt is not None:
            return f"<{entity}_{hmac.new(self.salt, '|'.join(key).encode(), hashlib.sha256).hexdigest()[:8]}>"
        if key not in self.numbers:
            self.numbers[key] = self.next_number.get(entity, 1)
            self.next_number[entity] = self.numbers[key] + 1
        return f"<{entity}_{self.numbers[key]}>"

    def replace(self, text: str, spans: list[Span]) -> str:
        """`text` with each span replaced, numbered in reading order."""
        pieces, at = [], 0
        for span in sorted(spans, key=lambda s: s.start):
            pieces += [text[at : span.start], self.token(span.entity, text[span.start : span.end])]
            at = span.end
        return "".join(pieces) + text[at:]
