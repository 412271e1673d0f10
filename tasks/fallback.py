"""A safety net for rollout: where the student is unsure, the teacher answers instead.

The student's confidence in an answer is the mean log-probability of its tokens. For each threshold on
it, the curve gives the share of traffic that would fall back to the teacher (confidence below the
threshold) and the student's accuracy on the rest. The chosen threshold is the lowest that keeps the
student's own answers at the target accuracy: as little fallback as the target allows. Measured on the
held-out answers a verifier scored; stored on the registered version for the serving side.
"""

from __future__ import annotations

from pydantic import BaseModel

from tasks.plots import figure, png


class Point(BaseModel):
    threshold: float  # answers with confidence below it go to the teacher
    fallback_share: float
    student_accuracy: float  # on the answers it keeps


class Fallback(BaseModel):
    """The curve, and the threshold chosen for the target (None: no threshold reaches it)."""

    target: float
    points: list[Point]
    chosen: Point | None

    def summary(self) -> str:
        if not self.points:
            return "fallback: no scored student answer with a confidence to measure it on"
        if self.chosen is None:
            best = max(p.student_accuracy for p in self.points)
            at_best = f"(at best {best:.2f})"
            return f"fallback: no threshold keeps the student at {self.target:.2f} {at_best}: all to the teacher"
        c = self.chosen
        return (
            f"fallback: below confidence {c.threshold:.3f} (mean token log-prob) the teacher answers, "
            f"{c.fallback_share:.0%} of traffic; the student is {c.student_accuracy:.2f} right on the rest "
            f"(target {self.target:.2f})"
        )


def confidence(logprobs: list[float] | None) -> float | None:
    """Mean log-probability of an answer's tokens; None when there are none."""
    return sum(logprobs) / len(logprobs) if logprobs else None


def fallback_curve(answers: list[dict], target: float, model: str = "student") -> Fallback:
    """The curve over every distinct confidence of the model's scored answers, and the chosen threshold."""
    scored = sorted(
        (a["confidence"], bool(a["correct"]))
        for a in answers
        if a["model"] == model and a["correct"] is not None and a.get("confidence") is not None
    )
    points = []
    for i, (threshold, _) in enumerate(scored):
        if i and threshold == scored[i - 1][0]:
            continue  # the same cut as the one before
        kept = [ok for _, ok in scored[i:]]
        points.append(
            Point(threshold=threshold, fallback_share=i / len(scored), student_accuracy=sum(kept) / len(kept))
        )
    chosen = next((p for p in points if p.student_accuracy >= target), None)
    return Fallback(target=target, points=points, chosen=chosen)


def plot(found: Fallback) -> bytes:
    """The student's accuracy on what it keeps against the share sent to the teacher."""
    drawn, axes = figure(figsize=(5, 3.5))
    axes.plot([p.fallback_share for p in found.points], [p.student_accuracy for p in found.points], marker=".")
    axes.axhline(found.target, linestyle="--", color="grey", label=f"target {found.target:.2f}")
    if found.chosen:
        axes.plot([found.chosen.fallback_share], [found.chosen.student_accuracy], "o", color="red", label="chosen")
    axes.set_xlabel("share of traffic to the teacher")
    axes.set_ylabel("student accuracy on the rest")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.05)
    axes.legend(fontsize="small")
    return png(drawn)
