"""Tracking: one MLflow run per flow run, and each stage's summary as a Prefect artifact too.

Logging happens in the flow, not inside the cached tasks, so a run served from cache is tracked
as fully as one that computed everything. The run is addressed by id through an MlflowClient
(not the thread-local fluent API), so it does not matter which thread a task runs in.
By default MLflow is $MLFLOW_TRACKING_URI, else a sqlite store with artifacts under the work dir;
`tracking.tracking_uri` points it elsewhere. Config fields typed SecretStr never become params.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from contextlib import contextmanager

from pydantic import BaseModel, Field, SecretStr

from tasks import storage
from tasks.config import Config
from tasks.funnel import Funnel
from tasks.refs import STUDENT, DatasetRef
from tasks.stage import StageReport, StageResult
from tasks.urls import masked

EXPERIMENT = "redistill"
STUDENT_TAG = "redistill.student"  # the run's tag naming the student it shipped


class TrackingConfig(Config):
    """Where runs, metrics, artifacts and model versions go."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (a server, say); none means $MLFLOW_TRACKING_URI if set, else sqlite + "
        "files under the work dir.",
    )
    experiment: str = Field(EXPERIMENT, description="MLflow experiment name.")


class Run(BaseModel):
    """The MLflow run a flow run logs to, and the stage after which it was asked to stop (a dry run)."""

    run_id: str
    tracking_uri: str
    experiment_id: str
    stop_after: str | None = None
    reports: list[StageReport] = []  # every stage logged so far, in order
    datasets: dict[str, str] = {}  # `stage.name` -> URI of every dataset logged so far


class RunStops(Exception):
    """The run ends after a stage, logged: as asked (`stop_after`), or failed because nothing is left to do."""

    def __init__(self, run: Run, stage: str, reason: str, failed: bool):
        super().__init__(f"{stage}: {reason}")
        self.run, self.stage, self.reason, self.failed = run, stage, reason, failed


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def flat_params(config: BaseModel, prefix: str = "") -> dict[str, str]:
    """Config as dotted MLflow params (`rollout.samples_per_prompt`); secrets left out, and passwords in
    URLs (a `postgresql://user:password@host` store) masked."""
    params = {}
    for name, value in config:
        key = f"{prefix}{name}"
        if isinstance(value, SecretStr):
            continue
        if isinstance(value, BaseModel):
            params.update(flat_params(value, key + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=_plain)
            params[key] = masked(text)
    return params


def _plain(value):
    """JSON for what json cannot write itself: configs inside values (verifiers by slice), paths, times."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else str(value)


def tracking_uri(config: TrackingConfig, work_dir: str) -> str:
    """The configured MLflow, else $MLFLOW_TRACKING_URI, else sqlite in the work dir (which must be local)."""
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if not storage.is_local(work_dir):
        raise ValueError(f"work_dir {work_dir} is not on this machine: set tracking.tracking_uri (an MLflow server)")
    return f"sqlite:///{(storage.local_path(work_dir) / 'mlflow.db').resolve()}"


def start_run(
    config: TrackingConfig, work_dir: str, params: dict[str, str], run_name: str | None, stop_after: str | None = None
) -> Run:
    """Create the experiment if needed and a run with the config as params."""
    from mlflow.entities import Param

    uri = tracking_uri(config, work_dir)
    local = not (config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))  # artifacts beside the sqlite file
    client = _client(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        location = (storage.local_path(work_dir) / "mlartifacts").resolve().as_uri() if local else None
        experiment_id = client.create_experiment(config.experiment, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=run_name, tags=_prefect_tags())
    items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    return Run(run_id=run.info.run_id, tracking_uri=uri, experiment_id=experiment_id, stop_after=stop_after)


def _prefect_tags() -> dict[str, str]:
    """The Prefect flow run (and deployment) an MLflow run belongs to, so each can be found from the other."""
    from prefect.runtime import deployment, flow_run

    if not flow_run.id:
        return {}
    tags = {"prefect.flow_run_id": flow_run.id, "prefect.flow_run_name": flow_run.name}
    tags["prefect.flow_run_attempt"] = str(flow_run.run_count)  # a retried flow run logs one MLflow run per attempt
    if deployment.name:
        tags["prefect.deployment"] = f"{flow_run.flow_name}/{deployment.name}"
    return tags


@contextmanager
def tracked_run(
    config: TrackingConfig, work_dir: str, params: dict[str, str], run_name: str | None, stop_after: str | None = None
):
    """A run that ends FINISHED (a stop as asked, too), or FAILED if the body raises or nothing was left to do."""
    run = start_run(config, work_dir, params, run_name, stop_after)
    try:
        yield run
    except RunStops as stop:
        _client(run.tracking_uri).set_tag(run.run_id, "stopped_after", stop.stage)
        _client(run.tracking_uri).set_terminated(run.run_id, status="FAILED" if stop.failed else "FINISHED")
        raise
    except BaseException:
        _client(run.tracking_uri).set_terminated(run.run_id, status="FAILED")
        raise
    _client(run.tracking_uri).set_terminated(run.run_id, status="FINISHED")


def log_markdown(run: Run, name: str, markdown: str) -> None:
    """A summary, as `summaries/<name>.md` in MLflow and, inside a flow run, as its Prefect artifact."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    _client(run.tracking_uri).log_text(run.run_id, markdown, f"summaries/{name}.md")
    if FlowRunContext.get() or TaskRunContext.get():
        create_markdown_artifact(
            markdown=markdown, key=re.sub(r"[^a-z0-9-]", "-", f"{name}-summary".lower()), description=f"{name} summary"
        )


def log_dataset(run: Run, ref: DatasetRef, name: str, context: str) -> None:
    """Record a dataset as a run input: its source and digest (never its rows)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # MLflow registers its local-file source twice and warns about its own duplicate
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        try:
            source = resolve_dataset_source(ref.uri)
        except MlflowException:  # a protocol MLflow has no source type for (memory://): keep the URI as it is
            source = HTTPDatasetSource(ref.uri)
    dataset = MetaDataset(source, name=name, digest=ref.digest[:16])
    # the URI as written, so a later run finds the dataset again (the champion's training prompts, say)
    tags = [InputTag(key="mlflow.data.context", value=context), InputTag(key="redistill.uri", value=ref.uri)]
    _client(run.tracking_uri).log_inputs(run.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])


class Champion(BaseModel):
    """The model version under the registry alias, and what its run logged."""

    version: str
    run_id: str
    metrics: dict[str, float]
    datasets: dict[str, str]  # name -> URI, of the datasets still there
    student: str = STUDENT  # its name in its run's evaluation (STUDENT_TAG): a run may train several

    def dataset(self, *names: str) -> str | None:
        """The URI of the first of `names` the champion's run logged."""
        return next((self.datasets[name] for name in names if name in self.datasets), None)


def champion(run: Run, registered_model: str, alias: str) -> Champion | None:
    """The current champion, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    client = _client(run.tracking_uri)
    try:
        version = client.get_model_version_by_alias(registered_model, alias)
    except MlflowException:
        return None
    logged = client.get_run(version.run_id)
    uris = {
        found.dataset.name: {t.key: t.value for t in found.tags}.get("redistill.uri")
        for found in logged.inputs.dataset_inputs
    }
    return Champion(
        version=str(version.version),  # a str from a server, an int from a local (sqlite) store
        run_id=version.run_id,
        metrics=logged.data.metrics,
        datasets={name: uri for name, uri in uris.items() if uri and storage.exists(uri)},
        student=logged.data.tags.get(STUDENT_TAG, STUDENT),
    )


def tag_shipped_student(run: Run, student: str) -> None:
    """Which of the run's students was exported and registered: its answers and metrics carry this name."""
    _client(run.tracking_uri).set_tag(run.run_id, STUDENT_TAG, student)


def log_image(run: Run, uri: str, artifact_path: str, description: str) -> None:
    """A PNG into the run's artifacts and, inside a flow run, into the Prefect UI (an image artifact served by
    the MLflow server; with a local store, a markdown note of where it is)."""
    from prefect.artifacts import create_image_artifact, create_markdown_artifact
    from prefect.context import FlowRunContext

    _client(run.tracking_uri).log_artifact(run.run_id, str(storage.local_file(uri)), artifact_path.rsplit("/", 1)[0])
    if not FlowRunContext.get():
        return
    key = artifact_path.rsplit("/", 1)[-1].removesuffix(".png").replace("_", "-") + "-plot"
    if run.tracking_uri.startswith("http"):
        url = f"{run.tracking_uri}/get-artifact?path={artifact_path}&run_uuid={run.run_id}"
        create_image_artifact(image_url=url, key=key, description=description)
    else:
        create_markdown_artifact(markdown=f"{description}: `{artifact_path}` in MLflow run {run.run_id}", key=key)


def log_metrics(run: Run, prefix: str, values: dict[str, float]) -> None:
    """Metrics named `<prefix>.<name>`, at this moment."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"{prefix}.{k}", float(v), now, 0) for k, v in values.items()]
    _client(run.tracking_uri).log_batch(run.run_id, metrics=metrics)


def log_steps(run: Run, prefix: str, series: dict[str, list[tuple[int, float]]]) -> None:
    """Step metrics `<prefix>.<name>` (MLflow draws them as curves)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"{prefix}.{name}", float(v), now, step) for name, pairs in series.items() for step, v in pairs]
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
        _client(run.tracking_uri).log_batch(run.run_id, metrics=metrics[start : start + 1000])


def log_stage(run: Run, result: StageResult, artifacts: list[str] = ()) -> StageResult:
    """Log a stage's counts, metrics, summary and datasets, copying the datasets named in `artifacts`
    into the run's artifacts; return the result, or raise RunStops when the run ends after this stage."""

    report = result.report
    run.reports.append(report)
    run.datasets |= {f"{report.stage}.{name}": ref.uri for name, ref in result.datasets().items()}
    values = {"rows_in": report.rows_in, "rows_out": report.rows_out, "seconds": report.seconds}
    values |= {f"dropped.{k}": v for k, v in report.dropped.items()} | report.metrics
    log_metrics(run, report.stage, values)
    client = _client(run.tracking_uri)
    log_markdown(run, report.stage, report.markdown())
    for name, rows in report.tables.items():
        client.log_table(run.run_id, data=_columns(rows), artifact_file=f"{report.stage}/{name}.json")
    for name, ref in result.datasets().items():
        log_dataset(run, ref, f"{report.stage}.{name}", report.stage)
        if name in artifacts:
            client.log_artifact(run.run_id, str(storage.local_file(ref.uri)), report.stage)
    if report.stop:
        raise RunStops(run, report.stage, report.stop, failed=True)
    if report.finish:
        raise RunStops(run, report.stage, report.finish, failed=False)
    if run.stop_after == report.stage:
        raise RunStops(run, report.stage, "stopped here, as asked (stop_after)", failed=False)
    return result


def _columns(rows: list[dict]) -> dict[str, list]:
    return {key: [row.get(key) for row in rows] for key in rows[0]} if rows else {}


def log_directory(run: Run, folder_uri: str, artifact_path: str) -> str:
    """Copy a folder into the run's artifacts; returns its `runs:/` URI."""
    _client(run.tracking_uri).log_artifacts(run.run_id, str(storage.local_folder(folder_uri)), artifact_path)
    return f"runs:/{run.run_id}/{artifact_path}"


def register_version(run: Run, source: str, name: str, tags: dict[str, str]) -> str:
    """A new version of the registered model `name` from `source`; returns the version number."""
    from mlflow.exceptions import MlflowException

    client = _client(run.tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    return str(client.create_model_version(name, source=source, run_id=run.run_id, tags=tags).version)


def set_alias(run: Run, name: str, alias: str, version: str) -> None:
    _client(run.tracking_uri).set_registered_model_alias(name, alias, version)


def log_funnel(run: Run, found: Funnel, judge_precision: float | None, folder_uri: str) -> None:
    """The run's funnel: a markdown table (MLflow and the Prefect UI), per-slice metrics and a bar chart."""
    from tasks.funnel import plot

    log_markdown(run, "funnel", "# funnel: from prompts to training rows\n\n" + found.markdown(judge_precision))
    log_metrics(run, "funnel", found.metrics())
    uri = storage.join(folder_uri, run.run_id, "funnel.png")
    storage.write_bytes(plot(found), uri)
    log_image(run, uri, "funnel/funnel.png", "what became of the teacher's samples, per slice")
