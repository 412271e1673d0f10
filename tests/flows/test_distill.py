"""The whole flow on a tiny random teacher, twice, against a real (temporary) Prefect API."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.distill import DistillConfig, distill
from tasks.evaluate import EvaluateConfig
from tasks.export import ExportConfig, GateConfig
from tasks.filter import FilterConfig
from tasks.models import END_OF_TURN, generate, load_model
from tasks.rollout import RolloutConfig
from tasks.source import SourceConfig
from tasks.teachers import SamplingConfig
from tasks.train import TrainConfig

STAGE_TASKS = {
    "source_prompts",
    "redact_prompts",
    "rollout_teacher",
    "dedup_rollouts",
    "filter_rollouts",
    "train_student",
    "evaluate_models",
    "export_student",
}


@pytest.fixture(scope="module")
def runs(prefect_server, tiny_teacher, demo_log, tmp_path_factory):
    """The same config run twice: (config, [(flow_run_id, summary), ...], prefect result storage)."""
    log, _ = demo_log
    config = DistillConfig(
        work_dir=tmp_path_factory.mktemp("work"),
        source=SourceConfig(path=str(log), sample_size=24, eval_size=8),
        rollout=RolloutConfig(
            teacher=str(tiny_teacher), samples_per_prompt=2, sampling=SamplingConfig(max_new_tokens=8)
        ),
        filter=FilterConfig(verify=False, drop_truncated=False),  # a random teacher is never right
        train=TrainConfig(epochs=1, batch_size=4, eval_every_steps=2),
        evaluate=EvaluateConfig(max_new_tokens=8, latency_prompts=2),
        export=ExportConfig(calibration_rows=8, smoke_prompts=2, max_new_tokens=8),
        gate=GateConfig(min_transfer_ratio=0.0),
    )
    results = []
    for _ in range(2):
        state = distill(config, return_state=True)
        results.append((state.state_details.flow_run_id, state.result()))
    return config, results, prefect_server


def _task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state_name for run in task_runs}  # "source_prompts-616"


def _mlflow(config) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{Path(config.work_dir).resolve() / 'mlflow.db'}")


def _artifact_dir(client: MlflowClient, run_id: str) -> Path:
    return Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))


def _texts_under(root: Path):
    """(path, text) for every file at or under root: Parquet as its values (it is compressed), others as bytes."""
    for path in [root] if root.is_file() else root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            yield path, "\n".join(str(v) for row in pq.read_table(path).to_pylist() for v in row.values())
        else:
            yield path, path.read_bytes().decode("utf-8", errors="ignore")


def test_quarantine_logged_to_mlflow_holds_exactly_the_malformed_rows(runs, demo_log):
    config, [(_, summary), _], _ = runs
    _, traffic = demo_log
    quarantine = pq.read_table(_artifact_dir(_mlflow(config), summary.mlflow_run_id) / "redact" / "quarantine.parquet")
    assert set(quarantine.column("row").to_pylist()) == traffic.malformed_lines


def test_no_planted_pii_after_redaction_anywhere(runs, demo_log):
    config, results, prefect_storage = runs
    _, traffic = demo_log
    work = Path(config.work_dir)
    # everything after the source stage: rollouts, the rollout store, training rows, models, MLflow (db and
    # artifacts), and Prefect's persisted results; only the source stage's own copy of the log holds PII
    roots = [p for p in work.iterdir() if p.name != "source"] + [Path(prefect_storage)]
    leaks = [
        (str(path), pii) for root in roots for path, text in _texts_under(root) for pii in traffic.pii if pii in text
    ]
    assert leaks == []
    rollout_files = list((work / "rollout").rglob("rollouts.parquet")) + list((work / "filter").rglob("rows.parquet"))
    assert rollout_files and all(pq.read_table(f).num_rows for f in rollout_files)  # the scan saw real rows
    with get_client(sync_client=True) as client:
        for flow_run_id, _ in results:
            artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            assert {a.key for a in artifacts} >= {
                f"{s}-summary"
                for s in ("source", "redact", "rollout", "dedup", "filter", "train", "evaluate", "export", "gate")
            }
            assert not [pii for a in artifacts for pii in traffic.pii if pii in str(a.data)]


def test_second_run_is_served_from_cache_and_tracked_in_full(runs):
    config, [(first_id, first), (second_id, second)], _ = runs
    assert {name: state for name, state in _task_states(first_id).items() if name in STAGE_TASKS} == dict.fromkeys(
        STAGE_TASKS, "Completed"
    )
    assert {name: state for name, state in _task_states(second_id).items() if name in STAGE_TASKS} == dict.fromkeys(
        STAGE_TASKS, "Cached"
    )
    assert second.exported_path == first.exported_path and second.scores == first.scores
    client = _mlflow(config)
    for summary in (first, second):
        run = client.get_run(summary.mlflow_run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["rollout.samples_per_prompt"] == "2"
        assert run.data.metrics["source.dropped.malformed"] == 8
        assert {"rollout.rollouts", "filter.rows", "evaluate.answers"} <= {
            d.dataset.name for d in run.inputs.dataset_inputs
        }
        summaries = {a.path for a in client.list_artifacts(summary.mlflow_run_id, "summaries")}
        assert {
            f"summaries/{s}.md"
            for s in ("source", "redact", "rollout", "dedup", "filter", "train", "evaluate", "export", "gate")
        } <= summaries


def test_the_student_is_registered_and_the_export_loads_and_generates(runs):
    config, [(_, first), (_, second)], _ = runs
    client = _mlflow(config)
    versions = [client.get_model_version("redistill-student", s.promotion.version) for s in (first, second)]
    assert [v.run_id for v in versions] == [first.mlflow_run_id, second.mlflow_run_id]
    assert versions[0].source == f"runs:/{first.mlflow_run_id}/student"
    assert (_artifact_dir(client, first.mlflow_run_id) / "student" / "config.json").exists()
    model, tokenizer = load_model(first.exported_path)
    [[completion]] = generate(model, tokenizer, ["What is 2 + 2?"], max_new_tokens=4)
    assert completion.completion_tokens > 0
    # whoever loads the export (vLLM, plain transformers) stops where the teacher stops
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert tokenizer.eos_token == END_OF_TURN and model.generation_config.eos_token_id == end_of_turn
    assert first.scores["student"].params < first.scores["teacher"].params
