"""Majority vote (self-consistency): with no reference, the answer most of a prompt's samples agree on is taken
as right, and so is every sample that states it.

Answers are compared by what they state, not their wording: the number (`number`), the first of the slice's
labels named (`label`), or the normalised final line (`text`). A sample stating nothing is wrong; without an
answer shared by more than `min_share` of the samples that state one, no sample is right ("no majority").
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Literal

from pydantic import Field

from tasks.config import Config
from tasks.stage import normalize_text
from tasks.verifiers.base import Verdict
from tasks.verifiers.number import answer_number
from tasks.verifiers.text import first_label


class Majority(Config):
    """Right when a sample states the answer most of its prompt's samples state."""

    kind: Literal["majority"] = "majority"
    needs_reference: ClassVar[bool] = False
    votes_on: Literal["number", "label", "text"] = Field(
        "number", description="What is compared: the stated number, the first label named, or the final line."
    )
    labels: list[str] = Field(default=[], description="The labels to look for (`votes_on: label`).")
    min_share: float = Field(0.5, ge=0, lt=1, description="The majority answer needs more than this share of votes.")

    def stated(self, answer: str) -> str | None:
        if self.votes_on == "number":
            number = answer_number(answer)
            return None if number is None else format(float(number), "g")
        if self.votes_on == "label":
            label = first_label(answer, self.labels)
            return label.lower() if label else None
        lines = [normalize_text(line) for line in answer.strip().splitlines() if normalize_text(line)]
        return lines[-1] if lines else None

    def verify_group(self, answers: list[str]) -> list[Verdict]:
        """One verdict per sample of one prompt."""
        said = [self.stated(a) for a in answers]
        votes = Counter(s for s in said if s is not None)
        if not votes:
            return [Verdict.of(False, "states no answer")] * len(answers)
        (winner, count), total = votes.most_common(1)[0], sum(votes.values())
        if count / total <= self.min_share or list(votes.values()).count(count) > 1:
            return [Verdict.of(False, f"no majority ({dict(votes)})")] * len(answers)
        return [
            Verdict(ok=s == winner, score=count / total, reason=f"{'agrees with' if s == winner else 'against'} "
                    f"the majority {winner} ({count} of {total})")
            for s in said
        ]  # fmt: skip

    def verify(self, answer: str, row: dict) -> Verdict:
        raise TypeError("majority vote judges a prompt's samples together: use verify_group")
