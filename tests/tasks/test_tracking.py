from pydantic import BaseModel, SecretStr

from tasks.tracking import flat_params


class Inner(BaseModel):
    api_key: SecretStr = SecretStr("sk-do-not-log")
    samples: int = 4
    layers: list[int] = [0, 2]


class Outer(BaseModel):
    name: str = "demo"
    inner: Inner = Inner()


def test_params_are_dotted_and_secrets_never_become_params():
    params = flat_params(Outer())
    assert params == {"name": "demo", "inner.samples": "4", "inner.layers": "[0, 2]"}
    assert "sk-do-not-log" not in str(params)


class WithStore(BaseModel):
    request_store: str = "postgresql://redistill:hunter2-secret@db.internal:5432/llm"
    other_store: str = "postgresql://db.internal/llm?user=r&password=hunter3-secret&sslmode=require"


def test_passwords_in_urls_are_masked_in_params():
    params = flat_params(WithStore())
    assert params == {
        "request_store": "postgresql://redistill:***@db.internal:5432/llm",
        "other_store": "postgresql://db.internal/llm?user=r&password=***&sslmode=require",
    }


def test_configs_inside_values_become_json_params():
    from tasks.verifiers import VerifyConfig

    params = flat_params(VerifyConfig())
    assert '"uppercase": {"kind": "contains", "case_sensitive": true}' in params["by_slice"]


def test_the_champion_is_found_in_a_local_store_as_the_demo_keeps_it(tmp_path):
    """`make demo` twice: the second run finds the first's champion in the sqlite store under the work dir."""
    from tasks.tracking import TrackingConfig, champion, register_version, set_alias, start_run

    first = start_run(TrackingConfig(), str(tmp_path), {"run": "1"}, "first")
    version = register_version(first, "file:///nowhere", "student", {})
    set_alias(first, "student", "champion", version)
    found = champion(start_run(TrackingConfig(), str(tmp_path), {"run": "2"}, "second"), "student", "champion")
    assert found.version == version == "1" and found.run_id == first.run_id
