"""Gate: register every exported student as an MLflow model version; promote the ones that pass.

Promotion is an alias (`champion` by default) on the registered model. Today's bar: the export
passed its check (tasks.export) and the student's transfer ratio reaches `min_transfer_ratio`.
The champion/challenger policy grows here.
"""

from __future__ import annotations

from prefect import task
from pydantic import BaseModel, Field

from tasks.config import Config
from tasks.tracking import Champion, Run, log_directory, log_markdown, register_version, set_alias


class GateConfig(Config):
    """When an exported student is promoted in the MLflow model registry."""

    registered_model: str = Field("redistill-student", description="MLflow registered model name.")
    min_transfer_ratio: float = Field(0.5, ge=0, description="Student/teacher accuracy needed to promote.")
    alias: str = Field("champion", description="Registry alias the promoted version gets.")


class Promotion(BaseModel):
    """The registered model version and the gate's verdict on it."""

    registered_model: str
    version: str
    promoted: bool
    reason: str


def gate_decision(config: GateConfig, transfer_ratio: float, check_passed: bool) -> tuple[bool, str]:
    """Whether to promote, and why, in words for the summary."""
    if not check_passed:
        return False, "not promoted: the export failed its check"
    if transfer_ratio < config.min_transfer_ratio:
        return False, f"not promoted: transfer ratio {transfer_ratio:.2f} < {config.min_transfer_ratio:.2f}"
    return True, f"promoted to @{config.alias}: transfer ratio {transfer_ratio:.2f} >= {config.min_transfer_ratio:.2f}"


def versus_champion(accuracy: dict[str, float], champion: Champion, prompts: int) -> tuple[dict[str, float], str]:
    """This student against the champion on the same held-out prompts: metrics and a table, per slice."""
    theirs = {
        key.removeprefix("evaluate.student.accuracy."): value
        for key, value in champion.metrics.items()
        if key.startswith("evaluate.student.accuracy.")
    }
    names = sorted((set(accuracy) | set(theirs)) - {"all"}) + ["all"]
    lines = [
        "## against the champion",
        "",
        f"The same {prompts} held-out prompts the champion (version {champion.version}) was scored on.",
        "",
        "| slice | champion | this student | difference |",
        "|---|---:|---:|---:|",
    ]
    metrics = {}
    for name in names:
        ours, before = accuracy.get(name, 0.0), theirs.get(name, 0.0)
        metrics[f"champion.accuracy.{name}"], metrics[f"vs_champion.{name}"] = before, ours - before
        lines.append(f"| {name} | {before:.2f} | {ours:.2f} | {ours - before:+.2f} |")
    return metrics, "\n".join(lines) + "\n"


@task(name="promote_student")
def promote_student(
    config: GateConfig, run: Run, model_uri: str, tags: dict[str, str], transfer_ratio: float, check_passed: bool
) -> Promotion:
    """Register the export as a model version in this run; promote it if it passes the gate."""
    promoted, reason = gate_decision(config, transfer_ratio, check_passed)
    source = log_directory(run, model_uri, "student")
    version = register_version(run, source, config.registered_model, tags | {"transfer_ratio": f"{transfer_ratio:.3f}"})
    if promoted:
        set_alias(run, config.registered_model, config.alias, version)
    log_markdown(run, "gate", f"## gate\n\n`{config.registered_model}` version {version}: {reason}\n")
    return Promotion(registered_model=config.registered_model, version=version, promoted=promoted, reason=reason)
