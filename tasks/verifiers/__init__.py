"""Verifiers: is an answer right for its row? One contract, `verify(answer, row) -> Verdict`.

Each verifier is a config class with its own parameters, told apart by `kind` (a pydantic
discriminated union), chosen per slice in `verify.by_slice`. The verify stage writes one verdict
per teacher sample that the filter reads; evaluate and export judge the models' answers with the
same verifiers, so "correct" means one thing everywhere.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from tasks.config import Config
from tasks.verifiers.base import Verdict
from tasks.verifiers.code import Code
from tasks.verifiers.majority import Majority
from tasks.verifiers.maths import Math
from tasks.verifiers.number import Number
from tasks.verifiers.structured import Json
from tasks.verifiers.text import Contains, Label

Verifier = Annotated[Contains | Label | Number | Math | Json | Code | Majority, Field(discriminator="kind")]


class VerifyConfig(Config):
    """How answers are checked, per slice. Slices not listed are kept unverified (and counted)."""

    by_slice: dict[str, Verifier] = Field(
        default={
            "capitals": Contains(),
            "uppercase": Contains(case_sensitive=True),
            "sentiment": Label(),
            "arithmetic": Number(),
            "sounds": Contains(),
            "halves": Math(),
            "place": Json(
                json_schema={
                    "type": "object",
                    "properties": {"country": {"type": "string"}, "capital": {"type": "string"}},
                    "required": ["country", "capital"],
                }
            ),
            "python": Code(),
        },
        description="Verifier per slice, by `kind`: `contains` (the reference as a whole word; `case_sensitive`), "
        "`number` (the stated result equals the reference within `tolerance`), `label` (the first of the slice's "
        "`labels` named is the reference), `math` (the final expression equals the reference: LaTeX, fractions, "
        "units), `json` (the answer's JSON validates against `json_schema`; the JSON alone is trained on), `code` "
        "(the answer's Python passes the reference's tests in a sandbox; `limits`), `majority` (no reference: the "
        "answer most samples state; `votes_on`). A bare kind (`capitals: contains`) takes the defaults.",
    )

    @field_validator("by_slice", mode="before")
    @classmethod
    def _bare_kinds(cls, value):
        if isinstance(value, dict):
            return {name: {"kind": v} if isinstance(v, str) else v for name, v in value.items()}
        return value

    def code_slices(self) -> set[str]:
        """The slices whose answers are run (in the sandbox, which must then be buildable here)."""
        return {name for name, v in self.by_slice.items() if isinstance(v, Code)}

    def slices_needing_labels(self) -> list[str]:
        """Slices whose label verifier has no fixed labels: the source stage computes them."""
        return sorted(name for name, v in self.by_slice.items() if isinstance(v, Label) and v.labels is None)


def with_labels(config: VerifyConfig, labels: dict[str, list[str]]) -> VerifyConfig:
    """The config with every label verifier's missing label set filled from `labels` (by slice)."""
    by_slice = {
        name: v.model_copy(update={"labels": labels.get(name, [])}) if isinstance(v, Label) and v.labels is None else v
        for name, v in config.by_slice.items()
    }
    return config.model_copy(update={"by_slice": by_slice})


def verdict(config: VerifyConfig, row: dict, answer: str) -> Verdict | None:
    """The slice's verifier's verdict on one answer; None where it cannot be checked alone (no verifier for its
    slice, no reference where one is needed, a majority vote, which needs the prompt's other samples)."""
    verifier = config.by_slice.get(row["slice"])
    if verifier is None or isinstance(verifier, Majority):
        return None
    if getattr(verifier, "needs_reference", True) and not row.get("reference"):
        return None
    return verifier.verify(answer, row)


__all__ = [
    "Code", "Contains", "Json", "Label", "Majority", "Math", "Number", "Verdict", "Verifier", "VerifyConfig", "verdict",
    "with_labels",
]  # fmt: skip
