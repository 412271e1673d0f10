"""The `vllm` backend: vLLM's offline engine (`LLM.chat`, `SamplingParams(n=…)`) on a GPU worker.

vLLM is imported only when this backend is built; this module imports stdlib and pydantic only, so
vLLM's own environment (no Prefect, other pins) runs it.
"""

from __future__ import annotations

from tasks.llm.config import SamplingConfig, VLLMConfig
from tasks.llm.types import (
    Completion,
    OnDone,
    OnRejected,
    Request,
    by_missing_count,
    chat_messages,
    request_seed,
    split_reasoning,
)


class VLLMBackend:
    """vLLM's `LLM.chat` with `SamplingParams(n=…)`; imported only when chosen."""

    def __init__(self, model_path: str, vllm: VLLMConfig, sampling: SamplingConfig, batch_size: int, seed: int):
        try:
            from vllm import LLM
        except ImportError as e:
            raise ImportError(
                "backend 'vllm' needs vLLM in the environment this stage runs in (a GPU worker; on CPU, "
                "`make vllm-env`); or serve the model with vLLM's API server and use backend 'openai'"
            ) from e

        self.llm = LLM(
            model=model_path,
            tensor_parallel_size=vllm.tensor_parallel_size,
            gpu_memory_utilization=vllm.gpu_memory_utilization,
            max_model_len=vllm.max_model_len,
            dtype=vllm.dtype,
            seed=seed,
        )
        self.sampling, self.batch_size, self.seed = sampling, batch_size, seed

    def sample(self, requests: list[Request], on_done: OnDone, on_rejected: OnRejected) -> None:
        from vllm import SamplingParams

        for n, batch in by_missing_count(requests, self.batch_size):
            params = [
                SamplingParams(
                    n=n,
                    temperature=self.sampling.temperature,
                    top_p=self.sampling.top_p,
                    max_tokens=self.sampling.max_new_tokens,
                    logprobs=self.sampling.logprobs,
                    seed=request_seed(self.seed, request.id),
                )
                for request in batch
            ]
            messages = [chat_messages(request.prompt, self.sampling.system_prompt) for request in batch]
            outputs = self.llm.chat(messages, params, use_tqdm=False)
            for request, output in zip(batch, outputs, strict=True):
                on_done(request, [_vllm_completion(o, len(output.prompt_token_ids)) for o in output.outputs])

    def close(self) -> None:
        """Stop the engine processes and free the GPU now, not at interpreter exit."""
        self.llm.llm_engine.engine_core.shutdown()


def _vllm_completion(output, prompt_tokens: int) -> Completion:
    reasoning, answer = split_reasoning(output.text)
    logprobs = (
        [step[token].logprob for step, token in zip(output.logprobs, output.token_ids, strict=True)]
        if output.logprobs
        else None
    )
    return Completion(
        text=answer,
        finish_reason=output.finish_reason or "stop",
        prompt_tokens=prompt_tokens,
        completion_tokens=len(output.token_ids),
        reasoning=reasoning,
        logprobs=logprobs,
    )
