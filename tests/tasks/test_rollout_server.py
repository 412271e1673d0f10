"""The `openai` backend against a real OpenAI-compatible server: vLLM's API server (CPU build, its own
environment) serving the tiny teacher, behind a counting, fault-injecting proxy."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from tasks.llm.config import LLMConfig, SamplingConfig, ServerConfig
from tasks.llm.store import open_store
from tasks.llm.vllm_server import vllm_python
from tasks.pii import RedactConfig
from tasks.rollout import RolloutConfig, rollout, rollout_teacher
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import prompt_id, read_dataset, write_dataset
from tests.proxy import CountingProxy, Fault

pytestmark = pytest.mark.skipif(not vllm_python().exists(), reason="needs vLLM's environment (make vllm-env)")

TOO_LONG = "word " * 900  # past the server's 512-token context: vLLM answers 400
SECRET = "sk-redistill-test-key-0451"


@pytest.fixture
def server(vllm_teacher):
    return vllm_teacher


@pytest.fixture
def proxy(server):
    counting = CountingProxy(server.base_url.removesuffix("/v1"))
    yield counting
    counting.close()


def _prompts(path: Path, texts: list[str]):
    rows = [
        {"id": str(i), "timestamp": None, "slice": "s", "prompt": t, "reference": None, "pii": []}
        for i, t in enumerate(texts)
    ]
    return write_dataset(rows, path, REDACTED_PROMPTS)


REDACT = RedactConfig(workers=1)
CONFIG = RolloutConfig(samples_per_prompt=2)


def _teacher(proxy: CountingProxy, **server) -> LLMConfig:
    """The teacher as served: known by its served name, no checkpoint on this side."""
    return LLMConfig(
        backend="openai",
        model="teacher",
        sampling=SamplingConfig(max_new_tokens=8, logprobs=0),
        server=ServerConfig(base_url=proxy.base_url, backoff_s=0.2, backoff_max_s=1.0, **server),
    )


def _store_keys(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT request_id, sample_index, fingerprint FROM requests WHERE purpose = 'rollout'"
        ).fetchall()


def test_429_and_5xx_are_retried_with_backoff_and_400_is_quarantined(proxy, tmp_path):
    texts = [f"What is {i} + 1?" for i in range(1, 6)] + [TOO_LONG]
    proxy.inject("What is 1 + 1?", Fault(429, {"Retry-After": "1"}, "slow down"))
    proxy.inject("What is 2 + 1?", Fault(500, {}, "boom"), Fault(503, {}, "still warming up"))
    store = open_store(str(tmp_path / "s.sqlite"))
    result = rollout(
        CONFIG, REDACT, _teacher(proxy), None, _prompts(tmp_path / "p.parquet", texts), store, str(tmp_path)
    )

    def attempts(part: str) -> list:
        return [s for s in proxy.seen if part in s.prompt]

    limited = attempts("What is 1 + 1?")
    assert [s.status for s in limited] == [429, 200]
    assert limited[1].at - limited[0].at >= 1.0  # Retry-After honoured
    assert [s.status for s in attempts("What is 2 + 1?")] == [500, 503, 200]
    assert [s.status for s in attempts(TOO_LONG)] == [400]  # a bad request is not retried
    [refused] = read_dataset(result.rejected)
    assert refused["prompt"] == TOO_LONG
    assert refused["reason"].startswith("teacher_rejected: HTTP 400: This model's maximum context length is 512")
    rows = read_dataset(result.rollouts)
    assert len(rows) == 5 * 2 and all(r["completion_tokens"] == len(r["logprobs"]) for r in rows)
    assert result.report.dropped["teacher_rejected"] == 1
    assert result.report.metrics["requests_sent"] == 5 and result.report.metrics["prompt_tokens_sent"] > 0


@flow
def rollout_only(teacher: LLMConfig, prompts, store: str, work_dir: str):
    """The rollout task alone, with quick task retries so a test can watch them."""
    task = rollout_teacher.with_options(retries=40, retry_delay_seconds=2, refresh_cache=True)
    return task(CONFIG, REDACT, teacher, None, prompts, store, work_dir)


def test_a_killed_teacher_costs_a_retry_never_a_lost_or_repaid_prompt(prefect_server, server, proxy, tmp_path):
    texts = [f"Name a colour, number {i}." for i in range(24)]
    prompts = _prompts(tmp_path / "p.parquet", texts)

    def crash_and_come_back():
        server.kill()  # SIGKILL: requests in flight get no answer
        server.start()  # the operator (or orchestrator) brings it back

    proxy.after_ok = (8, crash_and_come_back)
    teacher = _teacher(proxy, max_concurrency=4, max_retries=2)
    store = str(tmp_path / "work" / "requests.sqlite")
    state = rollout_only(teacher, prompts, store, str(tmp_path / "work"), return_state=True)
    result = state.result()

    assert proxy.answered(502), "the outage was seen"
    answered = proxy.answered(200)
    assert sorted(answered) == sorted(texts) and set(answered.values()) == {1}  # nothing asked twice once answered
    keys = _store_keys(Path(store))
    assert len(keys) == len(set(keys)) == 24 * 2
    assert len(read_dataset(result.rollouts)) == 24 * 2
    with get_client(sync_client=True) as client:
        flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        [task_run] = client.read_task_runs(flow_run_filter=flow_run)
    assert task_run.run_count > 1  # the Prefect task retry is what resumed it


def test_a_killed_flow_loses_at_most_the_requests_in_flight(
    prefect_server, server, proxy, tiny_teacher, demo_log, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    log, _ = demo_log
    max_concurrency = 4
    config = {
        "work_dir": str(tmp_path / "work"),
        "source": {"path": str(log), "sample_size": 32, "eval_size": 4},
        "teacher": {
            "backend": "openai",
            "model": "teacher",
            "sampling": {"max_new_tokens": 16},
            "server": {"base_url": proxy.base_url, "max_concurrency": max_concurrency},
        },
        "student": {"prune_from": str(tiny_teacher)},  # the served teacher's weights, as a local copy
        "rollout": {"samples_per_prompt": 2},
        "filter": {"verify": False, "drop_truncated": False},
        "train": {"epochs": 1, "batch_size": 4, "eval_every_steps": 2},
        "evaluate": {"max_new_tokens": 8, "latency_prompts": 1},
        "export": {"calibration_rows": 8, "check_prompts": 1, "max_new_tokens": 8},
        "serve": {"check": "off"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "flows.cli", "run", "--config", str(tmp_path / "run.yaml")]
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_LOCAL_STORAGE_PATH": str(prefect_server),  # this session's results: cache keys hold no paths
        "OPENAI_API_KEY": SECRET,
    }
    process = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proxy.after_ok = (10, lambda: os.killpg(process.pid, signal.SIGKILL))  # the flow dies mid-rollout
    assert process.wait(timeout=300) == -signal.SIGKILL
    store = tmp_path / "work" / "llm" / "requests.sqlite"
    committed = {pid for pid, _, _ in _store_keys(store)}
    before = proxy.answered(200)
    assert committed and len(before) < 32  # it died part-way

    time.sleep(0.5)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # the key from the environment reached the teacher, and nothing else: not logs, MLflow, or files
    assert {s.authorization for s in proxy.seen} == {f"Bearer {SECRET}"}
    assert SECRET not in rerun.stdout + rerun.stderr
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    # the held-out prompts went to the teacher too: it is scored through its server
    [held_out] = (tmp_path / "work" / "redact").rglob("eval_prompts.parquet")
    scored = set(pq.read_table(held_out).column("prompt").to_pylist())
    assert scored and scored <= set(proxy.answered(200))
    after = proxy.answered(200) - before
    asked_again = {p for p in after if p in before}
    assert not {prompt_id(p) for p in asked_again} & committed  # nothing stored is ever asked again
    assert len(asked_again) <= max_concurrency  # only what was in flight when it died
    keys = _store_keys(store)
    assert len(keys) == len(set(keys))
    [train] = (tmp_path / "work" / "decontaminate").rglob("train_prompts.parquet")  # what the teacher is asked
    trained_on = set(pq.read_table(train).column("prompt").to_pylist())
    assert trained_on <= set(before + after)  # every training prompt reached the teacher
    rows = pq.read_table(next((tmp_path / "work" / "rollout").rglob("rollouts.parquet"))).num_rows
    assert rows == len(trained_on) * 2
