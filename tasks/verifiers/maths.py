"""The math verifier: the answer's final expression equals the reference, by math-verify (LaTeX, fractions,
decimals, percentages, sets, units dropped), else the normalised reference as the answer's last words.

math-verify guards parsing and comparison with a SIGALRM timeout, which only works on the main thread; a stage
running in a worker thread gets no timeout, so answers are cut to their last `max_chars` characters first (a
final answer is at the end; a pathological expression mid-answer is not parsed).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Literal

from pydantic import Field

from tasks.config import Config
from tasks.stage import normalize_text
from tasks.verifiers.base import Verdict

logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call made without a timeout


def _timeout() -> int | None:
    return 5 if threading.current_thread() is threading.main_thread() else None


def as_latex(reference: str) -> str:
    """A reference written in LaTeX without delimiters (`\\frac{3}{4}`) read as LaTeX, not as the number 3."""
    return f"${reference}$" if "\\" in reference and "$" not in reference else reference


class Math(Config):
    """Right when the answer's final expression equals the reference mathematically."""

    kind: Literal["math"] = "math"
    max_chars: int = Field(2000, ge=50, description="Only the answer's last characters are parsed.")

    def verify(self, answer: str, row: dict) -> Verdict:
        from math_verify import parse, verify

        timeout = _timeout()
        gold = parse(as_latex(row["reference"]), parsing_timeout=timeout)
        stated = parse(answer[-self.max_chars :], parsing_timeout=timeout)
        if gold and stated:
            ok = verify(gold, stated, timeout_seconds=timeout)
            return Verdict.of(ok, "equal" if ok else f"stated {stated[-1]}")
        return self._by_text(answer, row["reference"])

    @staticmethod
    def _by_text(answer: str, reference: str) -> Verdict:
        """Neither side parses as math (a word, a name): the normalised reference must end the answer."""
        expected, said = normalize_text(reference), normalize_text(answer)
        ok = bool(expected) and re.search(rf"(?<!\w){re.escape(expected)}$", said) is not None
        return Verdict.of(ok, "same text" if ok else "reference not stated at the end")
