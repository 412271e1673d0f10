"""Programmatic verifiers: is a model's answer right, given the row's reference answer?

Small models ramble ("The sum of 3 and 4 is 7. This is because..."), so each method extracts the
answer before comparing. The filter keeps only verified teacher samples; evaluate scores models
with the same functions, so "correct" means one thing everywhere.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Literal

from pydantic import Field

from tasks.config import Config

Method = Literal["contains", "contains_case", "number", "label"]


class VerifyConfig(Config):
    """How answers are checked, per slice. Slices not listed are kept unverified (and counted)."""

    by_slice: dict[str, Method] = Field(
        default={"capitals": "contains", "uppercase": "contains_case", "sentiment": "label", "arithmetic": "number"},
        description=(
            "Verifier per slice: `contains` (reference as a whole word, any case), `contains_case` (same, exact "
            "case), `number` (the stated result, e.g. after '=' or 'is', equals the reference), `label` (the first "
            "of the slice's labels - its distinct reference answers - named in the answer is the reference)."
        ),
    )


_STATED_NUMBER = re.compile(r"(?:=|\bis\b|\bequals\b|\bmakes\b)\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def answer_number(text: str) -> str | None:
    """The number an answer states: after '=', 'is', 'equals' or 'makes' if present, else the first one."""
    stated = _STATED_NUMBER.search(text)
    if stated:
        return stated.group(1)
    first = _ANY_NUMBER.search(text)
    return first.group(0) if first else None


def _whole_word(reference: str, flags: int = 0) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(reference)}(?!\w)", flags)


def first_label(text: str, labels: list[str]) -> str | None:
    """Which of `labels` the answer names first (case-insensitive, whole words)."""
    found = [(m.start(), label) for label in labels if (m := _whole_word(label, re.IGNORECASE).search(text))]
    return min(found)[1] if found else None


def is_correct(method: Method, answer: str, reference: str, labels: list[str] = ()) -> bool:
    """Whether `answer` is right under `method` (see VerifyConfig.by_slice)."""
    if method == "contains":
        return bool(_whole_word(reference, re.IGNORECASE).search(answer))
    if method == "contains_case":
        return bool(_whole_word(reference).search(answer))
    if method == "number":
        stated = answer_number(answer)
        return stated is not None and float(stated) == float(reference)
    if method == "label":
        named = first_label(answer, list(labels))
        return named is not None and named.lower() == reference.lower()
    raise ValueError(f"unknown verifier {method!r}")


def slice_labels(rows: list[dict]) -> dict[str, list[str]]:
    """Each slice's label set: its distinct reference answers (used by the `label` method)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.get("reference"):
            labels[row["slice"]].add(row["reference"])
    return {name: sorted(values) for name, values in labels.items()}


def verdict(config: VerifyConfig, row: dict, answer: str, labels: dict[str, list[str]]) -> bool | None:
    """True/False if the row's slice has a verifier and a reference; None if it cannot be checked."""
    method = config.by_slice.get(row["slice"])
    if method is None or not row.get("reference"):
        return None
    return is_correct(method, answer, row["reference"], labels.get(row["slice"], []))
