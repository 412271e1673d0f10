"""The local stack (`redistill stack up`), started once for these tests on free ports in a temp folder, and
stopped at the end: real PostgreSQL, SeaweedFS, Prefect server and worker, MLflow server."""

import os
import random
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest
import yaml

from infra.services import port_in_use
from infra.settings import StackSettings


def _free_run(width: int) -> int:
    """A port p with p..p+width and their gRPC twins (p+10000..) free: SeaweedFS takes both."""
    while True:
        base = random.randrange(20000, 30000)
        if not any(
            port_in_use("127.0.0.1", p)
            for p in [*range(base, base + width), *range(base + 10000, base + 10000 + width)]
        ):
            return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory) -> dict[str, str]:
    """The REDISTILL_* variables that point `redistill stack` at the test stack."""
    return {
        "REDISTILL_STACK_DIR": str(tmp_path_factory.mktemp("stack")),
        "REDISTILL_PG_PORT": str(_free_port()),
        "REDISTILL_S3_PORT": str(_free_run(7)),
        "REDISTILL_PREFECT_PORT": str(_free_port()),
        "REDISTILL_MLFLOW_PORT": str(_free_port()),
    }


def stack_command(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`redistill <args>` in a fresh process, pointed at the test stack."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "AWS_", "REDISTILL_"))}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], env={**clean, **env}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def stack(stack_env) -> StackSettings:
    """The running stack's settings; `redistill stack down` at the end of the session."""
    up = stack_command({**stack_env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, "stack", "up")  # runs start within 1 s
    assert up.returncode == 0, up.stdout + up.stderr
    print(up.stdout)
    yield StackSettings(**{k.removeprefix("REDISTILL_").lower(): v for k, v in stack_env.items()})
    down = stack_command(stack_env, "stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture
def s3_env(stack, monkeypatch):
    """This process reaches the stack's S3 (credentials from the environment, endpoint from the storage config)."""
    import fsspec

    from tasks import storage

    for name, value in stack.s3_env().items():
        monkeypatch.setenv(name, value)
    storage.configure(storage.StorageConfig(s3_endpoint_url=stack.s3_endpoint, s3_region=stack.s3_region))
    yield stack
    fsspec.config.conf.pop("s3", None)


TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _config(tiny_teacher, bucket: str) -> dict:
    """The deployment's defaults: a tiny teacher, a small sample, the log's hourly partitions on S3."""
    return {
        "run_name": "deployed-e2e",
        "teacher": {"model": str(tiny_teacher), "sampling": {"max_new_tokens": 8}},
        "source": {"path": f"s3://{bucket}/logs/2026/11/30/*.jsonl", "sample_size": 16, "eval_size": 6},
        "rollout": {"samples_per_prompt": 2},
        "verify": {"by_slice": {"arithmetic": {"kind": "number"}}},
        "filter": {"drop_truncated": False},
        "train": {"epochs": 1, "batch_size": 4, "eval_every_steps": 2},
        "evaluate": {"max_new_tokens": 8, "latency_prompts": 2},
        "export": {"calibration_rows": 8, "check_prompts": 2, "max_new_tokens": 8},
        "serve": {"check": "off"},
        "gate": {"min_transfer_ratio": 0.0},
    }


@pytest.fixture(scope="session")
def deployed(stack, stack_env, tiny_teacher, demo_log, tmp_path_factory):
    """Both deployments registered with `redistill deploy --config`, the demo log on S3 in three partitions: what
    was planted in it, and the config file."""
    from infra.services import ObjectStore

    log, traffic = demo_log
    lines = log.read_bytes().splitlines(keepends=True)
    s3 = ObjectStore(stack).client()
    for hour, start in enumerate(range(0, len(lines), 70)):
        s3.put_object(
            Bucket=stack.s3_bucket, Key=f"logs/2026/11/30/h{hour:02d}.jsonl", Body=b"".join(lines[start : start + 70])
        )
    config_file = tmp_path_factory.mktemp("deploy") / "deploy.yaml"
    config_file.write_text(yaml.safe_dump(_config(tiny_teacher, stack.s3_bucket)))
    done = stack_command(stack_env, "deploy", "--config", str(config_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deployed distill/on-demand" in done.stdout and "deployed distill/scheduled" in done.stdout
    return SimpleNamespace(pii=traffic.pii, config_file=config_file)


def api(stack, method: str, path: str, **kwargs) -> dict:
    response = httpx.request(method, f"{stack.prefect_api}{path}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def wait_for(stack, flow_run_id: str, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = api(stack, "GET", f"/flow_runs/{flow_run_id}")
        if run["state"]["type"] in TERMINAL:
            return run
        time.sleep(1)
    raise TimeoutError(f"flow run {flow_run_id} still {run['state']['type']} after {timeout_s}s")


def mlflow_run_of(stack, flow_run_id: str):
    """The MLflow run a flow run logged to (tagged with its id)."""
    from mlflow import MlflowClient

    client = MlflowClient(stack.mlflow_url)
    experiment = client.get_experiment_by_name("redistill").experiment_id
    [run] = client.search_runs([experiment], filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}'")
    return run
