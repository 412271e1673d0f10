"""The number verifier: the result an answer states equals the reference, within a tolerance.

Small models ramble ("The sum of 3 and 4 is 7. This is because..."): the stated result is the
number after '=', 'is', 'equals' or 'makes' if there is one, else the first number.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from tasks.config import Config
from tasks.verifiers.base import Verdict

_STATED_NUMBER = re.compile(r"(?:=|\bis\b|\bequals\b|\bmakes\b)\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
# not the 1 of a placeholder (`<PERSON_1>`) or of an id like `A3`; after any other script's letters, a number
# (答えは42です)
_ANY_NUMBER = re.compile(r"(?<![A-Za-z_])-?\d+(?:\.\d+)?")


def answer_number(text: str) -> str | None:
    """The number an answer states: after '=', 'is', 'equals' or 'makes' if present, else the first one."""
    stated = _STATED_NUMBER.search(text)
    if stated:
        return stated.group(1)
    first = _ANY_NUMBER.search(text)
    return first.group(0) if first else None


class Number(Config):
    """Right when the stated number equals the reference within `tolerance`."""

    kind: Literal["number"] = "number"
    tolerance: float = Field(0.0, ge=0, description="Largest absolute difference still counted right.")

    def verify(self, answer: str, row: dict) -> Verdict:
        try:
            expected = float(row["reference"])
        except ValueError:
            return Verdict.of(False, "reference is not a number")
        stated = answer_number(answer)
        if stated is None:
            return Verdict.of(False, "no number stated")
        ok = abs(float(stated) - expected) <= self.tolerance
        return Verdict.of(ok, "number matches" if ok else f"stated {stated}")
