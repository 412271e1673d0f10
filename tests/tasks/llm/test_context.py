from tasks.llm.config import LLMConfig, SamplingConfig, VLLMConfig
from tasks.llm.context import over_context
from tasks.models import model_ref


def test_the_room_is_the_context_less_the_answer_and_vllm_s_reservation_counts(tiny_teacher):
    checkpoint = model_ref(str(tiny_teacher))  # max_position_embeddings 512
    prompts = {"short": "What is 2 + 2?", "mid": "word " * 100, "chat": [{"role": "user", "content": "word " * 600}]}
    local = LLMConfig(model=str(tiny_teacher), sampling=SamplingConfig(max_new_tokens=16))
    assert set(over_context(local, checkpoint, prompts)) == {"chat"}
    reserved = local.model_copy(update={"backend": "vllm", "vllm": VLLMConfig(max_model_len=64)})
    assert set(over_context(reserved, checkpoint, prompts)) == {"mid", "chat"}
    served = local.model_copy(update={"backend": "openai", "model": "big-teacher"})
    assert over_context(served, None, prompts) == {}  # its server refuses them itself
