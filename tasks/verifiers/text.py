"""Verifiers over text: the reference named in the answer, or the first label the answer names."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from tasks.config import Config
from tasks.verifiers.base import Verdict, whole_word


class Contains(Config):
    """Right when the answer contains the reference as a whole word or phrase."""

    kind: Literal["contains"] = "contains"
    case_sensitive: bool = Field(False, description="Match the reference's case exactly (for 'in uppercase' tasks).")

    def verify(self, answer: str, row: dict) -> Verdict:
        found = whole_word(row["reference"], 0 if self.case_sensitive else re.IGNORECASE).search(answer)
        return Verdict.of(bool(found), "reference named" if found else "reference not named")


def first_label(text: str, labels: list[str]) -> str | None:
    """Which of `labels` the answer names first (case-insensitive, whole words)."""
    found = [(m.start(), label) for label in labels if (m := whole_word(label, re.IGNORECASE).search(text))]
    return min(found)[1] if found else None


class Label(Config):
    """Right when the first of the slice's labels that the answer names is the reference."""

    kind: Literal["label"] = "label"
    labels: list[str] | None = Field(
        None,
        description="The slice's label set; none: computed once at source, from the distinct references of all the "
        "slice's rows.",
    )

    def verify(self, answer: str, row: dict) -> Verdict:
        if self.labels is None:
            raise ValueError("label verifier without labels: resolve them first (tasks.verifiers.with_labels)")
        named = first_label(answer, self.labels)
        if named is None:
            return Verdict.of(False, "no label named")
        ok = named.lower() == row["reference"].lower()
        return Verdict.of(ok, "label matches" if ok else f"named {named}")
