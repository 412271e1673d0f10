"""`redistill stack up | status | down` against the real services."""

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


def test_postgres_down_is_named_with_its_url_and_up_brings_back_only_it_with_its_data(stack, stack_env):
    postgres = Postgres(stack)
    assert postgres.down() == "stopped"
    status = stack_command(stack_env, "stack", "status")
    assert status.returncode == 1
    line = next(line for line in status.stdout.splitlines() if line.startswith("postgres"))
    assert "DOWN" in line and f"postgresql://{stack.pg_user}@127.0.0.1:{stack.pg_port}/postgres" in line
    assert "refused" in line and "Traceback" not in status.stdout + status.stderr
    up = stack_command(stack_env, "stack", "up")
    assert up.returncode == 0, up.stdout
    assert "(started)" in next(line for line in up.stdout.splitlines() if line.startswith("postgres"))
    assert up.stdout.count("(already up)") == 4
    with postgres.connect("prefect") as db:  # the data stayed: Prefect's tables are still there
        assert db.execute("select count(*) from flow").fetchone() is not None
