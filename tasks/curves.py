"""Training curves: train and eval loss and the learning rate per step, from the trainer's log, and their plot."""

from __future__ import annotations

from pydantic import BaseModel

from tasks.plots import figure, png

SERIES = ("loss", "eval_loss", "learning_rate")


class CurvePoint(BaseModel):
    """One logged step: what the trainer reported there (train and eval logs of a step merged)."""

    step: int
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None


def curve_from(log_history: list[dict]) -> list[CurvePoint]:
    """The trainer's `state.log_history` as one point per logged step; the closing summary entry (no loss
    of its own, only `train_loss`) and the evaluation before training (step 0) are left out."""
    by_step: dict[int, dict] = {}
    for entry in log_history:
        values = {k: float(entry[k]) for k in SERIES if k in entry}
        if values and entry.get("step", 0) > 0:
            by_step.setdefault(int(entry["step"]), {}).update(values)
    return [CurvePoint(step=step, **values) for step, values in sorted(by_step.items())]


def series(points: list[CurvePoint]) -> dict[str, list[tuple[int, float]]]:
    """Each series as (step, value) pairs, for step metrics."""
    found = {name: [(p.step, getattr(p, name)) for p in points if getattr(p, name) is not None] for name in SERIES}
    return {name: pairs for name, pairs in found.items() if pairs}


def plot(points: list[CurvePoint]) -> bytes:
    """Train and eval loss against the step, the learning rate on its own axis."""
    drawn, axes = figure(figsize=(7, 3.5))
    lines = series(points)
    for name, style in (("loss", "-"), ("eval_loss", "o-")):
        if name in lines:
            steps, values = zip(*lines[name], strict=True)
            axes.plot(steps, values, style, label=name.replace("_", " "))
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    if "learning_rate" in lines:
        rate = axes.twinx()
        steps, values = zip(*lines["learning_rate"], strict=True)
        rate.plot(steps, values, ":", color="grey", label="learning rate")
        rate.set_ylabel("learning rate")
    axes.legend(loc="upper right")
    axes.set_title("training curves")
    return png(drawn)
