"""Runs side by side, read from MLflow (sqlite here) and logged back as a run of its own."""

import pytest
from mlflow import MlflowClient

from flows.cli import incidental_params, main
from tasks.run_table import log_comparison, markdown, runs_compared


def _run(client: MlflowClient, experiment: str, objective: str, student: dict[str, float], seconds: float) -> str:
    run_id = client.create_run(experiment).info.run_id
    for key, value in {"train.objective": objective, "train.epochs": "3", "work_dir": f"/tmp/{objective}"}.items():
        client.log_param(run_id, key, value)
    for name, value in student.items():
        client.log_metric(run_id, f"evaluate.student.accuracy.{name}", value)
        client.log_metric(run_id, f"evaluate.student.accuracy_low.{name}", value - 0.1)
        client.log_metric(run_id, f"evaluate.student.accuracy_high.{name}", value + 0.1)
    for part, value in (("", 0.4), ("_low", 0.2), ("_high", 0.6)):
        client.log_metric(run_id, f"evaluate.transfer_ratio{part}.all", value)
    client.log_metric(run_id, "train.seconds", seconds)
    client.log_metric(run_id, "train.steps", 42)
    return run_id


def test_runs_are_set_apart_by_what_differs_and_logged_as_a_table(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("compare", artifact_location=(tmp_path / "artifacts").as_uri())
    sft = _run(client, experiment, "sft", {"all": 0.25, "capitals": 0.5, "sentiment": 0.0}, 206.0)
    kd = _run(client, experiment, "kd", {"all": 0.3, "capitals": 0.25}, 213.5)
    rows = runs_compared(uri, [sft, kd], incidental_params())
    # the objective sets them apart; the epochs are the same, and where each wrote is incidental
    assert [row["setting"] for row in rows] == ["objective sft", "objective kd"]
    assert rows[1]["accuracy"]["all"] == pytest.approx((0.3, 0.2, 0.4)) and rows[1]["train (s)"] == 213.5
    table = markdown(rows).splitlines()
    assert table[0] == "| setting | all | capitals | sentiment | transfer | steps | train (s) | divergence |"
    assert table[3] == "| objective kd | 0.30 [0.20, 0.40] | 0.25 | - | 0.40 [0.20, 0.60] | 42 | 213.5 | - |"

    logged = log_comparison(uri, rows)
    assert client.get_run(logged).data.tags["compares"] == f"{sft},{kd}"
    shown = client.download_artifacts(logged, "summaries/compare.md", str(tmp_path))
    assert open(shown).read() == markdown(rows)
    assert client.download_artifacts(logged, "compare.json", str(tmp_path))

    assert main(["compare", sft, kd, "--tracking-uri", uri]) == 0
    assert "| objective sft | 0.25 [0.15, 0.35] | 0.50 | 0.00 |" in capsys.readouterr().out
    assert main(["compare", sft, "0123abcd", "--tracking-uri", uri]) == 2  # a run that is not there: one line
    assert "0123abcd not found" in capsys.readouterr().err
    assert main(["compare", sft, "--work-dir", str(tmp_path / "elsewhere")]) == 2  # no MLflow there: not made one
    assert "no MLflow runs in" in capsys.readouterr().err and not (tmp_path / "elsewhere").exists()
