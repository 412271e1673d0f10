"""`redistill stack up | status | down` against the real services."""

import httpx

from infra.services import Postgres
from tests.stack.conftest import stack_command

SERVICES = ("postgres", "s3", "prefect", "mlflow", "worker")


def test_up_again_starts_nothing_and_status_shows_each_service_healthy_without_secrets(stack, stack_env):
    again = stack_command(stack_env, "stack", "up")
    assert again.returncode == 0, again.stdout
    assert [line.split()[0] for line in again.stdout.splitlines()[:5]] == list(SERVICES)
    assert again.stdout.count("(already up)") == 5
    status = stack_command(stack_env, "stack", "status")
    assert status.returncode == 0, status.stdout
    for name, line in zip(SERVICES, status.stdout.splitlines(), strict=True):
        assert line.split()[:2] == [name, "up"], line
    assert f"127.0.0.1:{stack.pg_port}" in status.stdout and stack.prefect_ui in status.stdout
    printed = again.stdout + status.stdout + again.stderr + status.stderr
    assert stack.pg_password.get_secret_value() not in printed
    assert stack.s3_secret_key.get_secret_value() not in printed
    assert sorted(p.name for p in (stack.root / "logs").iterdir()) == sorted(f"{s}.log" for s in SERVICES)


def test_postgres_down_is_named_with_its_url_and_up_brings_back_only_it_with_its_data(stack, stack_env, demo_log):
    postgres = Postgres(stack)
    variable = {"name": "kept-across-a-restart", "value": "yes"}
    httpx.post(f"{stack.prefect_api}/variables/", json=variable, timeout=30).raise_for_status()
    assert postgres.down() == "stopped"
    status = stack_command(stack_env, "stack", "status")
    assert status.returncode == 1
    line = next(line for line in status.stdout.splitlines() if line.startswith("postgres"))
    assert "DOWN" in line and f"postgresql://{stack.pg_user}@127.0.0.1:{stack.pg_port}/postgres" in line
    assert "refused" in line and "Traceback" not in status.stdout + status.stderr
    # a run pointed at the stack stops before any work, naming the service and its URL
    pointed = ["--work_dir", stack.work_dir, "--request_store", stack.request_store, "--source.path", str(demo_log[0]),
               "--tracking.tracking_uri", stack.mlflow_url, "--storage.s3_endpoint_url", stack.s3_endpoint]  # fmt: skip
    run = stack_command({**stack_env, **stack.s3_env()}, "run", *pointed, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"the request store's PostgreSQL at {stack.request_store} does not answer (connection refused)" in run.stderr
    assert f"the MLflow server at {stack.mlflow_url} " in run.stderr  # its database is down: it fails or hangs
    assert "Traceback" not in run.stderr and stack.pg_password.get_secret_value() not in run.stdout + run.stderr
    up = stack_command(stack_env, "stack", "up")
    assert up.returncode == 0, up.stdout
    assert "(started)" in next(line for line in up.stdout.splitlines() if line.startswith("postgres"))
    assert up.stdout.count("(already up)") == 4
    with postgres.connect("prefect") as db:  # the data stayed: what Prefect wrote before the restart is there
        assert db.execute("select value from variable where name = %s", [variable["name"]]).fetchone() == ("yes",)
