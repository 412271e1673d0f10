"""The verifier contract: `verify(answer, row) -> Verdict(ok, score, reason)`."""

from __future__ import annotations

import re

from pydantic import BaseModel


class Verdict(BaseModel):
    """Whether an answer is right for its row, a score in [0, 1], and why, in a few words."""

    ok: bool
    score: float
    reason: str
    extracted: str | None = None  # what the training row keeps instead of the whole answer (the JSON alone, say)

    @classmethod
    def of(cls, ok: bool, reason: str) -> Verdict:
        return cls(ok=ok, score=float(ok), reason=reason)


def whole_word(text: str, flags: int = 0) -> re.Pattern:
    """`text` as a whole word or phrase (not inside a longer word)."""
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", flags)
