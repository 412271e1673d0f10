"""The local stack (`redistill stack up`), started once for these tests on free ports in a temp folder, and
stopped at the end: real PostgreSQL, SeaweedFS, Prefect server and worker, MLflow server."""

import os
import random
import socket
import subprocess
import sys

import pytest

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
    up = stack_command(stack_env, "stack", "up")
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
