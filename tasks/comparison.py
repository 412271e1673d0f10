"""What evaluation compares: each model's score per slice with its interval, the transfer ratio, and the
prompts the teacher got right and the student did not.

Works on ANSWERS rows (tasks.schemas): one per model and held-out prompt, `correct` None where no
verifier could score the answer (left out of every score).
"""

from __future__ import annotations

from collections import defaultdict

from tasks.llm.types import Completion
from tasks.plots import figure, png
from tasks.stats import Interval, mean_interval, ratio_interval
from tasks.verifiers import VerifyConfig, verdict

ALL = "all"


def judged(
    verify: VerifyConfig, rows: list[dict], texts: list[str], model: str, confidences: list[float | None] | None = None
) -> list[dict]:
    """ANSWERS rows: each answer with the slice's verdict on it (and the model's confidence, if measured)."""
    out = []
    for row, text, sure in zip(rows, texts, confidences or [None] * len(rows), strict=True):
        found = verdict(verify, row, text)
        out.append(
            {
                **{k: row[k] for k in ("id", "slice", "prompt", "reference")},
                "model": model,
                "answer": text,
                "correct": found.ok if found else None,
                "reason": found.reason if found else None,
                "confidence": sure,
            }
        )
    return out


def accuracy(verify: VerifyConfig, rows: list[dict], answers: list[Completion]) -> float | None:
    """Share of checkable answers the verifiers accept; none if nothing can be checked."""
    verdicts = [verdict(verify, row, a.text) for row, a in zip(rows, answers, strict=True)]
    checked = [v.ok for v in verdicts if v is not None]
    return sum(checked) / len(checked) if checked else None


def answered(answers: list[Completion]) -> float:
    """Share of answers that say anything: the measure where no verifier can score them."""
    return sum(1 for a in answers if a.text.strip()) / max(len(answers), 1)


def correct_by_prompt(answers: list[dict], model: str) -> dict[str, dict[str, float]]:
    """{slice: {prompt id: 1.0 right / 0.0 wrong}} for a model's scored answers, "all" included."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for a in answers:
        if a["model"] == model and a["correct"] is not None:
            found[a["slice"]][a["id"]] = found[ALL][a["id"]] = float(a["correct"])
    return dict(found)


def slice_intervals(answers: list[dict], model: str) -> dict[str, Interval]:
    """A model's accuracy per slice and overall, with bootstrap intervals over prompts."""
    return {name: mean_interval(list(scores.values())) for name, scores in correct_by_prompt(answers, model).items()}


def paired(ours: dict[str, float], theirs: dict[str, float]) -> tuple[list[float], list[float]]:
    """Both models' scores on the prompts both were scored on, in one order."""
    ids = sorted(ours.keys() & theirs.keys())
    return [ours[i] for i in ids], [theirs[i] for i in ids]


def transfer_intervals(answers: list[dict], student: str = "student", teacher: str = "teacher") -> dict[str, Interval]:
    """Student accuracy / teacher accuracy per slice and overall, on the prompts both were scored on."""
    students, teachers = correct_by_prompt(answers, student), correct_by_prompt(answers, teacher)
    return {name: ratio_interval(*paired(students.get(name, {}), scores)) for name, scores in teachers.items()}


def disagreements(answers: list[dict], student: str = "student", teacher: str = "teacher") -> list[dict]:
    """The prompts the teacher answered right and the student wrong, by slice: what to read first."""
    by_key = {(a["model"], a["id"]): a for a in answers}
    rows = []
    for a in answers:
        mine = by_key.get((student, a["id"]))
        if a["model"] == teacher and a["correct"] and mine is not None and mine["correct"] is False:
            rows.append(
                {
                    "slice": a["slice"],
                    "id": a["id"],
                    "prompt": a["prompt"],
                    "reference": a["reference"],
                    "teacher": a["answer"],
                    "student": mine["answer"],
                    "student_reason": mine["reason"],
                }
            )
    return sorted(rows, key=lambda r: (r["slice"], r["id"]))


def table_cell(text: str | None, width: int = 80) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def disagreements_markdown(rows: list[dict], per_slice: int = 5) -> str:
    """The first few disagreements per slice as a markdown table, with how many there are in all."""
    if not rows:
        return "No held-out prompt that the teacher answered right did the student answer wrong.\n"
    counts: dict[str, int] = defaultdict(int)
    lines = ["| slice | prompt | reference | teacher | student |", "|---|---|---|---|---|"]
    for r in rows:
        counts[r["slice"]] += 1
        if counts[r["slice"]] <= per_slice:
            answers = (table_cell(r["teacher"]), table_cell(r["student"]))
            cells = (r["slice"], table_cell(r["prompt"]), table_cell(r["reference"], 30), *answers)
            lines.append("| " + " | ".join(cells) + " |")
    shown = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    head = f"{len(rows)} held-out prompts the teacher got right and the student did not ({shown}); up to {per_slice} "
    return head + "per slice (all of them: the `disagreements` table in MLflow).\n\n" + "\n".join(lines) + "\n"


def plot_slices(intervals: dict[str, dict[str, Interval]]) -> bytes:
    """Grouped bars: each model's accuracy per slice, with its 95 % interval as an error bar."""
    models = list(intervals)
    slices = sorted(set().union(*intervals.values()) - {ALL}) + [ALL]
    width = 0.8 / max(len(models), 1)
    drawn, axes = figure(figsize=(max(6, 1.1 * len(slices) * max(len(models), 2) / 2), 4))
    for k, model in enumerate(models):
        found = [intervals[model].get(name) for name in slices]
        values = [f.value if f else float("nan") for f in found]  # not scored there: no bar, not a zero
        errors = [[f.value - f.low if f else 0 for f in found], [f.high - f.value if f else 0 for f in found]]
        positions = [i + (k - (len(models) - 1) / 2) * width for i in range(len(slices))]
        axes.bar(positions, values, width, yerr=errors, capsize=2, label=model)
    axes.set_xticks(range(len(slices)), slices, rotation=30, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("held-out accuracy (95 % interval)")
    axes.legend(fontsize="small")
    return png(drawn)
