"""The stack's settings: the env file's defaults, the environment over them, a relative data folder anchored in
the checkout (not the working directory), and no password in a URL meant for showing."""

from pathlib import Path

from infra.settings import ENV_FILE, StackSettings


def test_the_environment_overrides_the_env_file_and_the_data_folder_does_not_move_with_the_cwd(monkeypatch, tmp_path):
    monkeypatch.setenv("REDISTILL_PREFECT_PORT", "4300")
    monkeypatch.chdir(tmp_path)
    settings = StackSettings()
    assert settings.prefect_api == "http://127.0.0.1:4300/api" and settings.pg_port == 55432  # from stack.env
    assert settings.root == ENV_FILE.parents[1] / ".redistill" / "stack"
    assert StackSettings(stack_dir=Path("/srv/stack")).root == Path("/srv/stack")
    secret = settings.pg_password.get_secret_value()
    assert secret not in settings.request_store and secret not in settings.postgres_url("prefect", "asyncpg")
    assert secret in settings.client_env()["PGPASSWORD"]  # the environment carries it, not the URL
