"""Scheduled re-distillation of fresh traffic, three simulated weeks on `distill/scheduled`: week 1 reads what
is there; week 2 reads only its own rows plus a replay share of week 1's, and the replayed prompts cost the
teacher nothing (their answers come from the store); a week with no new rows ends Completed with "not enough
new traffic", and leaves the watermark where it was."""

import json

import httpx
import pytest

from infra.services import ObjectStore
from tests.stack.conftest import api, mlflow_run_of, wait_for

ASKS = [
    "¿Cuál es la capital de Perú?",
    "Wie viel ist 7 mal 8?",
    "Translate 'merci' into English.",
    "東京の人口は？",
    "Combien font 12 + 30 ?",
    "What is the capital of Kenya?",
    "Skriv 'hej' baklänges.",
]


@pytest.fixture(scope="module")
def weekly_log(stack):
    """Week 1 (Nov 2-8): 12 rows; week 2 (Nov 9-15): 6 rows; nothing after. One partition per day."""
    s3, key = ObjectStore(stack).client(), "logs/weekly/2026-11-{day:02d}.jsonl"
    by_day: dict[int, list[str]] = {}
    for week, count, first_day in ((1, 12, 2), (2, 6, 9)):
        for i in range(count):
            day = first_day + i % 6
            row = {"slice": ("chat", "qa")[i % 2], "prompt": f"{ASKS[i % len(ASKS)]} (w{week}-{i})",
                   "timestamp": f"2026-11-{day:02d}T0{i % 9}:00:00Z"}  # fmt: skip
            by_day.setdefault(day, []).append(json.dumps(row, ensure_ascii=False))
    for day, lines in by_day.items():
        s3.put_object(Bucket=stack.s3_bucket, Key=key.format(day=day), Body=("\n".join(lines) + "\n").encode())
    return f"s3://{stack.s3_bucket}/logs/weekly/*.jsonl"


def _week(stack, until: str, weekly_log: str) -> tuple[dict, object]:
    """One scheduled run whose start is `until` (rows after it are not in yet): (flow run, MLflow run)."""
    scheduled = api(stack, "GET", "/deployments/name/distill/scheduled")
    config = json.loads(json.dumps(scheduled["parameters"]["config"]))
    assert config["schedule"]["fresh_traffic"] is True  # `redistill deploy` turned it on for this deployment
    config["source"] |= {"path": weekly_log, "until": until, "sample_size": 100, "eval_size": 2, "min_new_prompts": 3}
    config["replay"]["share"] = 0.5
    config["export"]["quantize"] = False  # the champion is chosen on the student's scores; the worker test quantizes
    config["gate"]["registered_model"] = "weekly-student"  # its own champion: week 1's student, then week 2's
    config["run_name"] = f"week-until-{until[:10]}"
    created = api(
        stack, "POST", f"/deployments/{scheduled['id']}/create_flow_run", json={"parameters": {"config": config}}
    )
    finished = wait_for(stack, created["id"])
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    return finished, mlflow_run_of(stack, created["id"])


def _dataset_uri(run, name: str) -> str:
    [uri] = [
        {tag.key: tag.value for tag in found.tags}["redistill.uri"]
        for found in run.inputs.dataset_inputs
        if found.dataset.name == name
    ]
    return uri


def _watermark(stack) -> str:
    return api(stack, "GET", "/variables/name/redistill-watermark-scheduled")["value"]


def test_three_weeks_read_only_fresh_rows_replay_from_the_store_and_skip_a_quiet_week(stack, deployed, weekly_log):
    from mlflow import MlflowClient

    _, week1 = _week(stack, "2026-11-09T00:00:00Z", weekly_log)
    assert week1.data.metrics["source.train_prompts"] == 10 and "replay.replayed_prompts" not in week1.data.metrics
    assert _watermark(stack) == "2026-11-09T00:00:00+00:00"
    champion = MlflowClient(stack.mlflow_url).get_model_version_by_alias("weekly-student", "champion")
    assert champion.run_id == week1.info.run_id  # week 1's student is the champion week 2 replays from

    week2_run, week2 = _week(stack, "2026-11-16T00:00:00Z", weekly_log)
    metrics = week2.data.metrics
    assert "2026-11-09 00:00:00+00:00" in week2.data.params["source.since"]  # from the watermark, on the server
    assert metrics["source.rows_in"] == 18
    assert (metrics["replay.new_prompts"], metrics["replay.replayed_prompts"]) == (4, 2)
    assert metrics["rollout.requests_sent"] == 4  # the two replayed prompts cost 0 teacher requests
    assert _watermark(stack) == "2026-11-16T00:00:00+00:00"
    # scored on the prompts the champion was scored on, and compared with it
    assert _dataset_uri(week2, "evaluate.held_out") == _dataset_uri(week1, "redact.eval_prompts")
    assert "evaluate.vs_champion.all" in metrics and "evaluate.champion.accuracy.all" in metrics
    # before the teacher was asked: this traffic against the champion's training prompts, with a plot
    assert 0 <= metrics["drift.without_near_neighbour"] <= 1 and "drift.slice_share_now.qa" in metrics
    plots = api(stack, "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [week2_run["id"]]}}})
    [image] = [a for a in plots if a["key"] == "drift-plot"]
    assert [a for a in plots if a["key"] == "champion-summary"]
    assert httpx.get(image["data"], timeout=30).content.startswith(b"\x89PNG")  # served by the MLflow server

    quiet, week3 = _week(stack, "2026-11-23T00:00:00Z", weekly_log)
    assert week3.data.tags["stopped_after"] == "source" and "rollout.requests_sent" not in week3.data.metrics
    artifacts = api(stack, "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [quiet["id"]]}}})
    [summary] = [a for a in artifacts if a["key"] == "source-summary"]
    assert "not enough new traffic (0 < 3 new prompts since 2026-11-16" in summary["data"]
    assert _watermark(stack) == "2026-11-16T00:00:00+00:00"  # the quiet week's rows would wait for the next run
