"""Runs side by side: for runs that differ in a few settings (three training objectives, this week's traffic
against last week's), each student's accuracy per slice with its 95% interval, the transfer ratio, and what its
training cost. Read from MLflow; logged back as a run of its own, so the comparison lives beside what it compares.
"""

from __future__ import annotations

from tasks.comparison import ALL, table_cell

COSTS = {"train.steps": "steps", "train.seconds": "train (s)", "train.eval_divergence_best": "divergence"}


def runs_compared(tracking_uri: str, run_ids: list[str], incidental: tuple[str, ...] = ()) -> list[dict]:
    """One row per run: what sets it apart (the params that differ, less those named or prefixed in `incidental`:
    where things are, say nothing about what was trained), the student's accuracy per slice with its interval, the
    transfer ratio, and the training's steps, seconds and held-out divergence (kd)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = [client.get_run(run_id) for run_id in run_ids]
    params = sorted({key for run in runs for key in run.data.params if not key.startswith(incidental)})
    differing = [key for key in params if len({run.data.params.get(key) for run in runs}) > 1]
    rows = []
    for run in runs:
        metrics = run.data.metrics
        slices = sorted(key.removeprefix("evaluate.student.accuracy.") for key in metrics
                        if key.startswith("evaluate.student.accuracy."))  # fmt: skip
        rows.append(
            {
                "run": run.info.run_id,
                "setting": ", ".join(f"{key.removeprefix('train.')} {run.data.params.get(key)}" for key in differing)
                or run.info.run_name,
                "accuracy": {name: _interval(metrics, "evaluate.student.accuracy", name) for name in slices},
                "transfer": _interval(metrics, "evaluate.transfer_ratio", ALL),
                **{label: metrics.get(key) for key, label in COSTS.items()},
            }
        )
    return rows


def _interval(metrics: dict[str, float], name: str, slice_name: str) -> tuple[float, float, float] | None:
    found = [metrics.get(f"{name}{part}.{slice_name}") for part in ("", "_low", "_high")]
    return None if found[0] is None else tuple(found)


def markdown(rows: list[dict]) -> str:
    """The rows as one table: a column per slice (`all` first, with its interval), then transfer and costs."""
    slices = sorted({name for row in rows for name in row["accuracy"]} - {ALL})
    head = ["setting", ALL, *slices, "transfer", *COSTS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        cells = [table_cell(row["setting"], 60), _shown(row["accuracy"].get(ALL), interval=True)]
        cells += [_shown(row["accuracy"].get(name)) for name in slices]
        cells += [_shown(row["transfer"], interval=True)]
        cells += ["-" if row[label] is None else f"{row[label]:.4g}" for label in COSTS.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shown(value: tuple[float, float, float] | None, interval: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]" if interval else f"{value[0]:.2f}"


def flat(row: dict) -> dict:
    """A row as MLflow's table view shows it: one column per number."""
    accuracy = {f"accuracy.{name}": value[0] for name, value in row["accuracy"].items() if value}
    transfer = row["transfer"][0] if row["transfer"] else None
    return {"setting": row["setting"], "run": row["run"], **accuracy, "transfer": transfer,
            **{label: row[label] for label in COSTS.values()}}  # fmt: skip


def log_comparison(tracking_uri: str, rows: list[dict], name: str = "compare") -> str:
    """A run of its own, in the first compared run's experiment, holding the table (`summaries/compare.md`, and
    `compare.json` for MLflow's table view), tagged with the runs it compares; returns its id."""
    import pandas as pd
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.get_run(rows[0]["run"]).info.experiment_id
    compared = ",".join(row["run"] for row in rows)
    run_id = client.create_run(experiment_id, run_name=name, tags={"compares": compared}).info.run_id
    client.log_text(run_id, markdown(rows), "summaries/compare.md")
    client.log_table(run_id, data=pd.DataFrame([flat(row) for row in rows]), artifact_file="compare.json")
    client.set_terminated(run_id)
    return run_id
