"""How a placed stage's retries follow its arguments: a rollout waits out a teacher's outage as its server config
says."""

from flows.placement import PLACEABLE, with_retries
from tasks.llm.config import LLMConfig
from tasks.llm.served import ServerConfig
from tasks.rollout import RolloutConfig


def test_a_rollout_waits_out_an_outage_as_the_teacher_s_server_config_says():
    def args(teacher: LLMConfig) -> tuple:
        return (RolloutConfig(), None, teacher, None, None, "store", "work")

    assert with_retries("rollout", args(LLMConfig())).retry_delay_seconds == [10, 20, 40]  # the default
    patient = LLMConfig(backend="openai", model="teacher", server=ServerConfig(outage_retry_s=60))
    stage = with_retries("rollout", args(patient))
    assert stage.retry_delay_seconds == [60, 120, 240] and stage.retries == 3
    assert with_retries("train", ()) is PLACEABLE["train"]  # other stages keep their decorator's
