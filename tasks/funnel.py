"""The run's funnel: from the redacted prompts to the training rows, what each filter dropped and why, per slice.

Counted from the datasets the stages wrote (every dropped row is in a stage's `rejected` dataset with its
reason), so the funnel cannot disagree with them: prompts until the teacher answers, samples after.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tasks.plots import figure, png
from tasks.refs import DatasetRef
from tasks.stage import read_table

ALL = "all"


@dataclass(frozen=True)
class Step:
    """A stage that drops rows, the rows it dropped, and whether they are prompts or teacher samples."""

    stage: str
    rejected: DatasetRef
    unit: str  # "prompt" or "sample"


@dataclass
class Funnel:
    """Rows per slice at each line of the funnel: counts in, drops by (stage, reason), counts out."""

    slices: list[str]
    lines: list[tuple[str, str, Counter]]  # (label, unit, count per slice); drops are negative

    def markdown(self, judge_precision: float | None = None) -> str:
        header = ["step", "unit", ALL, *self.slices]
        out = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (1 + len(self.slices))]
        for label, unit, counts in self.lines:
            if label.startswith("filter: judge_below_threshold") and judge_precision is not None:
                label += f" (judge precision {judge_precision:.2f})"
            cells = [str(counts[name]) for name in (ALL, *self.slices)]
            out.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
        return "\n".join(out)

    def metrics(self) -> dict[str, float]:
        """`<step>.<slice>` counts (drops as positive numbers), for MLflow."""
        found = {}
        for label, _, counts in self.lines:
            name = label.replace(": ", ".").replace(" ", "_")
            found |= {f"{name}.{slice_name}": abs(n) for slice_name, n in counts.items()}
        return found


def _by_slice(ref: DatasetRef, reason: str | None = None) -> Counter:
    table = read_table(ref)
    counts = Counter(table["slice"].to_pylist()) if reason is None else Counter()
    if reason is not None:
        for slice_name, why in zip(table["slice"].to_pylist(), table["reason"].to_pylist(), strict=True):
            if why.split(":")[0] == reason:
                counts[slice_name] += 1
    counts[ALL] = sum(counts.values())
    return counts


def funnel(prompts: DatasetRef, samples: DatasetRef, rows: DatasetRef, steps: list[Step]) -> Funnel:
    """The funnel of one run: `prompts` (redacted, for training), the teacher's `samples`, the training `rows`."""
    lines = [("prompts in", "prompt", _by_slice(prompts))]
    for step in steps:
        if step.unit == "sample" and lines[-1][1] == "prompt":
            lines.append(("teacher samples", "sample", _by_slice(samples)))
        reasons = Counter(r.split(":")[0] for r in read_table(step.rejected)["reason"].to_pylist())
        for reason in sorted(reasons):
            dropped = _by_slice(step.rejected, reason)
            lines.append((f"{step.stage}: {reason}", step.unit, Counter({k: -n for k, n in dropped.items()})))
    lines.append(("training rows", "sample", _by_slice(rows)))
    slices = sorted({name for _, _, counts in lines for name in counts} - {ALL})
    return Funnel(slices=slices, lines=lines)


def plot(found: Funnel) -> bytes:
    """Per slice, the teacher's samples as a bar split into the training rows and each reason they were dropped."""
    drops = [(label, counts) for label, unit, counts in found.lines if unit == "sample" and label.count(": ")]
    kept = next(counts for label, _, counts in found.lines if label == "training rows")
    drawn, axes = figure(figsize=(9, 1.2 + 0.5 * len(found.slices)))
    left = [0] * len(found.slices)
    for label, counts in [("training rows", kept), *drops]:
        widths = [abs(counts[name]) for name in found.slices]
        axes.barh(found.slices, widths, left=left, label=label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlabel("teacher samples")
    axes.set_title("what became of the teacher's samples")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8)
    return png(drawn, bbox_inches="tight")
