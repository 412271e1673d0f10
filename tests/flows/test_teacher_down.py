"""A teacher still down after the rollout's retries ends the run Failed, naming the teacher, its URL and the
last error, in one line (the UI shows it; a retry of the run asks only for what the store lacks)."""

import socket

from flows.distill import DistillConfig, distill
from tasks.llm.config import LLMConfig, ServerConfig
from tasks.rollout import rollout_teacher
from tasks.source import SourceConfig
from tasks.student import StudentConfig


def test_a_teacher_that_stays_down_fails_the_run_naming_it_and_its_last_error(
    prefect_server, tiny_teacher, demo_log, tmp_path, monkeypatch
):
    monkeypatch.setattr(rollout_teacher, "retries", 0)  # the task's own retries (minutes of backoff) are not the point
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    config = DistillConfig(
        work_dir=str(tmp_path / "work"),
        teacher=LLMConfig(backend="openai", model="support-teacher-v3",
                          server=ServerConfig(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_s=0.1)),
        student=StudentConfig(init="checkpoint", checkpoint=str(tiny_teacher)),
        source=SourceConfig(path=str(demo_log[0]), sample_size=4, eval_size=2),
    )  # fmt: skip
    state = distill(config, return_state=True)
    assert state.is_failed() and state.name == "TeacherUnavailable"
    assert state.message.startswith(
        f"the teacher (support-teacher-v3) did not answer: http://127.0.0.1:{port}/v1 after 2"
    )
    assert "ConnectError" in state.message and "\n" not in state.message
