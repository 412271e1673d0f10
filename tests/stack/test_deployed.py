"""A deployed run, as users run it: `redistill deploy` on the stack, a run triggered through the REST API the
way the UI's form does (one field changed), the worker runs it to Completed from a partitioned log on S3;
MLflow's server holds the run and S3 the stage datasets and Prefect's results, with no planted PII and no
secret in either."""

import json
import time

import httpx
import pyarrow.parquet as pq

from tests.stack.conftest import api, mlflow_run_of, wait_for


def test_the_form_schema_carries_descriptions_bounds_and_the_schedule(stack, deployed):
    on_demand = api(stack, "GET", "/deployments/name/distill/on-demand")
    definitions = on_demand["parameter_openapi_schema"]["definitions"]
    samples = definitions["RolloutConfig"]["properties"]["samples_per_prompt"]
    assert samples["minimum"] == 1 and samples["maximum"] == 8 and "teacher writes" in samples["description"]
    assert (
        on_demand["enforce_parameter_schema"]
        and on_demand["parameters"]["config"]["rollout"]["samples_per_prompt"] == 2
    )
    assert on_demand["schedules"] == []
    scheduled = api(stack, "GET", "/deployments/name/distill/scheduled")
    [schedule] = scheduled["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * 1" and schedule["schedule"]["timezone"] == "UTC"
    bad = httpx.post(
        f"{stack.prefect_api}/deployments/{on_demand['id']}/create_flow_run",
        timeout=30,
        json={"parameters": {"config": {**on_demand["parameters"]["config"], "rollout": {"samples_per_prompt": 9}}}},
    )
    assert bad.status_code == 409 and "samples_per_prompt" in bad.text  # the server validates the form
    gpu = api(stack, "GET", "/work_pools/gpu")  # created through the API, which validated its template
    assert (
        gpu["type"] == "kubernetes" and gpu["base_job_template"]["variables"]["properties"]["gpu_count"]["default"] == 1
    )


def test_a_run_triggered_like_the_ui_completes_on_the_worker_and_leaves_no_pii_or_secret(stack, deployed):
    from mlflow import MlflowClient

    on_demand = api(stack, "GET", "/deployments/name/distill/on-demand")
    config = json.loads(json.dumps(on_demand["parameters"]["config"]))
    config["rollout"]["samples_per_prompt"] = 1  # the one field changed in the form
    flow_run = api(
        stack, "POST", f"/deployments/{on_demand['id']}/create_flow_run", json={"parameters": {"config": config}}
    )
    finished = wait_for(stack, flow_run["id"])
    assert finished["state"]["type"] == "COMPLETED", finished["state"]

    client = MlflowClient(stack.mlflow_url)
    run = mlflow_run_of(stack, flow_run["id"])
    assert run.data.tags["prefect.deployment"] == "distill/on-demand"
    assert run.info.status == "FINISHED"
    assert run.data.params["rollout.samples_per_prompt"] == "1"
    assert run.data.params["source.path"].startswith(f"s3://{stack.s3_bucket}/logs/")
    assert run.data.metrics["source.train_prompts"] == 16
    assert len(run.inputs.dataset_inputs) >= 5
    assert client.search_model_versions(f"run_id = '{run.info.run_id}'")

    import fsspec

    s3 = fsspec.filesystem(
        "s3", endpoint_url=stack.s3_endpoint, key=stack.s3_access_key, secret=stack.s3_secret_key.get_secret_value()
    )
    work = f"{stack.s3_bucket}/work"
    assert {"source", "redact", "rollout", "dedup", "verify", "filter", "train", "evaluate", "export"} <= {
        p.rsplit("/", 1)[-1] for p in s3.ls(work)
    }
    assert s3.ls(f"{work}/prefect-results") and s3.ls(f"{stack.s3_bucket}/mlflow")

    secrets = [stack.pg_password.get_secret_value(), stack.s3_secret_key.get_secret_value()]
    planted = sorted(deployed.pii)
    params_and_tags = json.dumps([run.data.params, run.data.tags])
    assert not [s for s in secrets + planted if s in params_and_tags]
    leaks = []
    for path in s3.find(stack.s3_bucket):
        if path.startswith((f"{work}/source/", f"{stack.s3_bucket}/logs/")):
            continue  # the log itself, and the source stage's copy of it: the redacted prompts start at redact
        if path.endswith(".parquet"):
            with s3.open(path, "rb") as f:
                text = json.dumps(pq.read_table(f).to_pylist(), default=str, ensure_ascii=False)
        elif path.endswith((".safetensors", ".bin", ".pt")):
            continue
        else:
            text = s3.cat_file(path).decode("utf-8", errors="ignore")
        leaks += [(path, value) for value in secrets + planted if value in text]
    assert leaks == []


def _task_runs(stack, flow_run_id: str) -> list[dict]:
    return api(stack, "POST", "/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}})


def test_the_s3_server_killed_mid_run_and_restarted_costs_a_stage_retry_not_the_run(stack, deployed):
    from infra.services import ObjectStore

    on_demand = api(stack, "GET", "/deployments/name/distill/on-demand")
    config = json.loads(json.dumps(on_demand["parameters"]["config"]))
    config["run_name"], config["source"]["seed"] = "s3-outage", 7  # a new sample: nothing served from cache
    flow_run = api(
        stack, "POST", f"/deployments/{on_demand['id']}/create_flow_run", json={"parameters": {"config": config}}
    )
    deadline = time.monotonic() + 600
    # training touches S3 only at its end (the adapter, then Prefect's result): it ends inside the outage
    while not any(
        t["name"].startswith("train_student") and t["state_type"] == "RUNNING"
        for t in _task_runs(stack, flow_run["id"])
    ):
        assert (
            time.monotonic() < deadline and api(stack, "GET", f"/flow_runs/{flow_run['id']}")["state_type"] != "FAILED"
        )
        time.sleep(0.5)
    s3 = ObjectStore(stack)
    assert s3.down() == "stopped"
    while not any(  # training has failed for it, and waits for its retry
        t["name"].startswith("train_student")
        and (t["state_name"] in ("AwaitingRetry", "Retrying") or t["run_count"] > 1)
        for t in _task_runs(stack, flow_run["id"])
    ):
        assert time.monotonic() < deadline, "training never failed while S3 was down"
        time.sleep(0.5)
    assert s3.up() == "started"  # same data folder: nothing written before the outage is lost
    finished = wait_for(stack, flow_run["id"])
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    retried = [t["name"] for t in _task_runs(stack, flow_run["id"]) if t["run_count"] > 1]
    assert [name.split("-")[0] for name in retried] == ["train_student"]
    run = mlflow_run_of(stack, flow_run["id"])
    assert run.info.status == "FINISHED" and run.data.metrics["source.train_prompts"] == 16


def test_a_rerun_with_the_same_parameters_is_served_from_the_results_on_s3(stack, deployed):
    on_demand = api(stack, "GET", "/deployments/name/distill/on-demand")
    config = json.loads(json.dumps(on_demand["parameters"]["config"]))
    config["rollout"]["samples_per_prompt"] = 1  # what the first test's run computed
    first = api(
        stack, "POST", f"/deployments/{on_demand['id']}/create_flow_run", json={"parameters": {"config": config}}
    )
    assert wait_for(stack, first["id"])["state"]["type"] == "COMPLETED"
    again = api(
        stack, "POST", f"/deployments/{on_demand['id']}/create_flow_run", json={"parameters": {"config": config}}
    )
    assert wait_for(stack, again["id"])["state"]["type"] == "COMPLETED"
    states = {t["name"].rsplit("-", 1)[0]: t["state_name"] for t in _task_runs(stack, again["id"])}
    stages = ["source_prompts", "redact_prompts", "rollout_teacher", "dedup_rollouts", "verify_rollouts",
              "filter_rollouts", "train_student", "evaluate_models", "export_student"]  # fmt: skip
    assert {stage: states[stage] for stage in stages} == dict.fromkeys(stages, "Cached")  # the teacher not asked


def test_a_stage_placed_on_a_pool_runs_as_its_own_flow_run_there(stack, stack_env, deployed):
    from tests.stack.conftest import stack_command

    config_file = deployed.config_file
    placed = stack_command(stack_env, "deploy", "--config", str(config_file), "--placement.train", stack.work_pool)
    try:
        assert placed.returncode == 0 and f"deployed distill-stage/{stack.work_pool}" in placed.stdout, placed.stderr
        on_demand = api(stack, "GET", "/deployments/name/distill/on-demand")
        config = json.loads(json.dumps(on_demand["parameters"]["config"]))
        assert config["placement"]["train"] == stack.work_pool
        config["source"]["seed"] = 11  # a new sample: the training really runs, on the pool's worker
        parent = api(
            stack, "POST", f"/deployments/{on_demand['id']}/create_flow_run", json={"parameters": {"config": config}}
        )
        assert wait_for(stack, parent["id"])["state"]["type"] == "COMPLETED"
        children = api(
            stack, "POST", "/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": [parent["id"]]}}}
        )
        [child] = [c for c in children if c["parameters"].get("stage") == "train"]
        assert child["state_type"] == "COMPLETED" and child["work_pool_name"] == stack.work_pool
        assert [t["name"].rsplit("-", 1)[0] for t in _task_runs(stack, child["id"])] == ["train_student"]
        assert mlflow_run_of(stack, parent["id"]).data.metrics["train.rows_in"] > 0  # the parent logged its result
    finally:  # the other tests' deployments train in-process again
        assert stack_command(stack_env, "deploy", "--config", str(config_file)).returncode == 0
