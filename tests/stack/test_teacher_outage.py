"""The teacher killed in a deployed run: vLLM's server (serving the tiny teacher) dies mid-rollout, the run ends
Failed naming the teacher once the rollout's retries are spent, and the UI's retry of that flow run, with the
server back, re-uses every finished stage and asks the teacher only for the samples the request store lacks."""

import json
import time

from tests.proxy import CountingProxy
from tests.stack.conftest import api, wait_for


def _rollout_answers(proxy: CountingProxy, since: float = 0.0, until: float = float("inf")) -> list[str]:
    """Prompts the teacher answered for the rollout (two samples a request; evaluation asks for one)."""
    return [s.prompt for s in proxy.seen if s.status == 200 and s.samples == 2 and since <= s.at < until]


def _task_states(stack, flow_run_id: str) -> dict[str, list[str]]:
    runs = api(stack, "POST", "/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}})
    states: dict[str, list[str]] = {}
    for run in sorted(runs, key=lambda r: r["created"]):
        states.setdefault(run["name"].rsplit("-", 1)[0], []).append(run["state_name"])
    return states


def test_a_killed_teacher_fails_the_run_and_its_ui_retry_asks_only_for_the_missing_samples(
    stack, deployed, vllm_teacher, tiny_teacher
):
    from mlflow import MlflowClient

    proxy = CountingProxy(vllm_teacher.base_url.removesuffix("/v1"))
    proxy.after_ok = (5, vllm_teacher.kill)  # SIGKILL after five answers, as a crash would
    on_demand = api(stack, "GET", "/deployments/name/distill/on-demand")
    config = json.loads(json.dumps(on_demand["parameters"]["config"]))
    config["run_name"], config["source"]["seed"] = "teacher-outage", 17  # a new sample: nothing from cache
    config["teacher"] = {
        "backend": "openai",
        "model": "teacher",  # its served name: the checkpoint is on the server's side
        "sampling": {"max_new_tokens": 8},
        "server": {
            "base_url": proxy.base_url,
            "max_concurrency": 2,
            "max_retries": 1,
            "backoff_s": 0.2,
            "outage_retry_s": 0.5,
        },  # the stage's retries, 0.5 + 1 + 2 s: still three, still failed after them
    }
    config["student"] = {"init": "checkpoint", "checkpoint": str(tiny_teacher)}
    config["stop_after"] = "rollout"  # what an outage costs is the rollout's business: the stages after it are not
    try:
        flow_run = api(
            stack, "POST", f"/deployments/{on_demand['id']}/create_flow_run", json={"parameters": {"config": config}}
        )
        failed = wait_for(stack, flow_run["id"])
        state = failed["state"]
        assert state["type"] == "FAILED" and state["name"] == "TeacherUnavailable", state
        assert state["message"].startswith(f"the teacher (teacher) did not answer: {proxy.base_url} after 2 attempts")
        assert "HTTP 502" in state["message"] and "\n" not in state["message"]
        assert _task_states(stack, flow_run["id"])["rollout_teacher"] == ["Failed"]  # after its own retries
        before = _rollout_answers(proxy)
        assert 0 < len(before) < 16

        vllm_teacher.start()  # the operator brings the teacher back, then presses Retry in the UI
        retried_at = time.time()
        api(
            stack,
            "POST",
            f"/flow_runs/{flow_run['id']}/set_state",
            json={
                "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"},
                "force": True,
            },
        )  # fmt: skip  (what the UI's Retry button sends)
        finished = wait_for(stack, flow_run["id"])
        assert finished["state"]["type"] == "COMPLETED", finished["state"]
        assert finished["run_count"] == 2

        after = _rollout_answers(proxy, since=retried_at)
        assert after and not set(before) & set(after)  # no prompt answered twice
        states = _task_states(stack, flow_run["id"])
        assert states["source_prompts"] == ["Completed", "Cached"] and states["redact_prompts"] == [
            "Completed",
            "Cached",
        ]
        assert states["rollout_teacher"] == ["Failed", "Completed"]

        client = MlflowClient(stack.mlflow_url)
        experiment = client.get_experiment_by_name("redistill").experiment_id
        runs = client.search_runs([experiment], filter_string=f"tags.`prefect.flow_run_id` = '{flow_run['id']}'")
        attempts = {r.data.tags["prefect.flow_run_attempt"]: r.data for r in runs}
        assert sorted(attempts) == ["1", "2"] and runs[0].info.status == "FINISHED"  # newest first
        rollout = {k.removeprefix("rollout."): v for k, v in attempts["2"].metrics.items() if k.startswith("rollout.")}
        assert rollout["requests_sent"] == len(after) and rollout["prompts"] == len(before) + len(after)
        assert rollout["samples_from_store"] == 2 * len(before)  # what the failed attempt paid for, not paid again
    finally:
        proxy.close()
        if vllm_teacher.process.poll() is not None:
            vllm_teacher.start()  # for the tests after this one
