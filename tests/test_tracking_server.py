"""Tracking against a real MLflow server process, as a deployment would use it."""

from mlflow import MlflowClient

from infra.local import mlflow_server
from tasks.refs import DatasetRef
from tasks.schemas import PROMPTS
from tasks.stage import StageReport, StageResult, write_dataset
from tasks.tracking import TrackingConfig, log_stage, register_version, set_alias, tracked_run


class Written(StageResult):
    prompts: DatasetRef


def test_stage_logging_and_registry_through_an_mlflow_server(tmp_path):
    with mlflow_server(tmp_path / "mlflow") as uri:
        ref = write_dataset([], str(tmp_path / "prompts.parquet"), PROMPTS)
        report = StageReport(stage="source", rows_in=3, rows_out=2, dropped={"malformed": 1}, tables={"t": [{"a": 1}]})
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "config.json").write_text("{}")
        with tracked_run(
            TrackingConfig(tracking_uri=uri), str(tmp_path), {"rollout.samples_per_prompt": "4"}, "t"
        ) as run:
            log_stage(run, Written(prompts=ref, report=report), artifacts=["prompts"])
            version = register_version(run, f"runs:/{run.run_id}/student", "server-student", {"transfer_ratio": "0.9"})
            set_alias(run, "server-student", "champion", version)
        client = MlflowClient(tracking_uri=uri)
        logged = client.get_run(run.run_id)
        assert logged.info.status == "FINISHED"
        assert logged.data.metrics["source.dropped.malformed"] == 1
        assert logged.data.params == {"rollout.samples_per_prompt": "4"}
        assert {a.path for a in client.list_artifacts(run.run_id, "source")} == {
            "source/prompts.parquet",
            "source/t.json",
        }
        assert client.get_model_version_by_alias("server-student", "champion").version == version
