"""Majority vote (self-consistency): with no reference, the answer most of a prompt's samples agree on is taken
as right, and so is every sample that states it.

Answers are compared by what they state, not their wording: the number (`number`), the first of the slice's
labels named (`label`), or the normalised final line (`text`). A sample stating nothing is wrong; without an
answer shared by more than `min_share` of the samples that state one, no sample is right ("no majority"). Fewer
than `min_votes` stated answers are no vote: the samples stay unchecked.
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
    min_votes: int = Field(2, ge=2, description="Fewer samples stating an answer than this: no vote, left unchecked.")

    def stated(self, answer: str) -> str | None:
        if self.votes_on == "number":
            number = answer_number(answer)
            return None if number is None else repr(float(number))  # 51 and 51.0 agree; 1234567 and 1234568 do not
        if self.votes_on == "label":
            label = first_label(answer, self.labels)
            return label.lower() if label else None
        lines = [normalize_text(line) for line in answer.strip().splitlines() if normalize_text(line)]
        return lines[-1] if lines else None

    def verify_group(self, answers: list[str]) -> list[Verdict | None]:
        """One verdict per sample of one prompt; None for each where too few samples vote."""
        said = [self.stated(a) for a in answers]
        votes = Counter(s for s in said if s is not None)
        if sum(votes.values()) < self.min_votes:
            return [None] * len(answers)
        (winner, count), total = votes.most_common(1)[0], sum(votes.values())
        if count / total <= self.min_share or list(votes.values()).count(count) > 1:
            return [Verdict.of(False, f"no majority ({dict(votes)})")] * len(answers)
        shown = winner.removesuffix(".0")

        def judged(stated: str | None) -> Verdict:
            if stated is None:
                return Verdict.of(False, "states no answer")
            side = "agrees with" if stated == winner else "against"
            return Verdict(
                ok=stated == winner, score=count / total, reason=f"{side} the majority {shown} ({count} of {total})"
            )

        return [judged(stated) for stated in said]

    def verify(self, answer: str, row: dict) -> Verdict:
        raise TypeError("majority vote judges a prompt's samples together: use verify_group")
