"""The teacher's context window: prompts that leave no room for its answer are refused before any call.

A prompt of more tokens than the model's context minus `max_new_tokens` cannot be answered whole: a
local model would try (and allocate for) it anyway, a server answers HTTP 400. Counted with the
teacher's own tokenizer and chat template, for the backends that have the checkpoint here; a served
teacher's server refuses such prompts itself (quarantined with its message).
"""

from __future__ import annotations

from tasks.llm.config import LLMConfig
from tasks.llm.types import Prompt, chat_messages
from tasks.refs import ModelRef


def over_context(teacher: LLMConfig, checkpoint: ModelRef | None, prompts: dict[str, Prompt]) -> dict[str, str]:
    """{request id: why} for the prompts too long for the teacher's context; empty for a served teacher."""
    if checkpoint is None:
        return {}
    from transformers import AutoConfig, AutoTokenizer

    from tasks import storage

    path = storage.local_folder(checkpoint.uri)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # a multimodal config nests the language model's
    context = AutoConfig.from_pretrained(path).get_text_config().max_position_embeddings
    if teacher.backend == "vllm" and teacher.vllm.max_model_len:
        context = min(context, teacher.vllm.max_model_len)  # the engine refuses more than it reserved
    room = context - teacher.sampling.max_new_tokens
    too_long = {}
    for request_id, prompt in prompts.items():
        messages = chat_messages(prompt, teacher.sampling.system_prompt)
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if tokens > room:
            too_long[request_id] = (
                f"too_long: {tokens} tokens, over the teacher's context of {context} less "
                f"teacher.sampling.max_new_tokens {teacher.sampling.max_new_tokens}"
            )
    return too_long
