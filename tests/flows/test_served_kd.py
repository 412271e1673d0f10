"""`kd` through the flow with a served teacher: vLLM's own server answers the rollout and scores the kept rows;
a student whose tokenizer splits otherwise ends the run Failed in one line, before training."""

import shutil

import pytest

from flows.distill import DistillConfig, distill
from tasks.filter import FilterConfig
from tasks.llm.config import LLMConfig, SamplingConfig, ServerConfig
from tasks.llm.vllm_server import vllm_python
from tasks.rollout import RolloutConfig
from tasks.source import SourceConfig
from tasks.student import StudentConfig
from tasks.train import TrainConfig
from tasks.verifiers import Number, VerifyConfig

pytestmark = pytest.mark.skipif(not vllm_python().exists(), reason="needs vLLM's environment (make vllm-env)")


def _config(vllm_teacher, student, demo_log, work) -> DistillConfig:
    return DistillConfig(
        work_dir=str(work),
        stop_after="train",
        teacher=LLMConfig(backend="openai", model="teacher", sampling=SamplingConfig(max_new_tokens=8),
                          server=ServerConfig(base_url=vllm_teacher.base_url, max_retries=1, backoff_s=0.1)),
        student=StudentConfig(init="checkpoint", checkpoint=str(student)),
        source=SourceConfig(path=str(demo_log[0]), sample_size=16, eval_size=4),
        rollout=RolloutConfig(samples_per_prompt=1),
        verify=VerifyConfig(by_slice={"arithmetic": Number()}),  # a random teacher is never right: the rest unverified
        filter=FilterConfig(drop_truncated=False),
        train=TrainConfig(objective="kd", epochs=1, batch_size=4, eval_every_steps=2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One work dir for both runs: the second is served its source, redact and rollout from the first's cache."""
    return tmp_path_factory.mktemp("served-kd")


def test_kd_from_a_served_teacher_runs_through_the_flow(prefect_server, vllm_teacher, tiny_teacher, demo_log, work):
    stopped = distill(_config(vllm_teacher, tiny_teacher, demo_log, work), return_state=True).result()
    [trained] = [report for report in stopped.reports if report.stage == "train"]
    assert trained.metrics["teacher_top_k_computed"] == trained.rows_in > 0  # every kept row scored by the server


def test_a_student_that_tokenizes_otherwise_fails_the_run_in_one_line(
    prefect_server, vllm_teacher, tiny_teacher, demo_log, work, tmp_path
):
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    other = tmp_path / "lowercase"
    shutil.copytree(tiny_teacher, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.backend_tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.save_pretrained(other)
    state = distill(_config(vllm_teacher, other, demo_log, work), return_state=True)
    assert state.is_failed() and state.name == "NoTeacherSignal"
    assert state.message.startswith("train.objective 'kd' needs the student to share the teacher's tokenizer")
    assert "\n" not in state.message
