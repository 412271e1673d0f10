"""The `openai` backend: any OpenAI-compatible /v1/chat/completions server (vLLM, llama.cpp's server,
a hosted API). Async requests with bounded concurrency, a per-request timeout, and tasks.llm.http's retries.
Stdlib, pydantic and httpx only (vLLM's environment has them).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tasks.llm.config import SamplingConfig, ServerConfig
from tasks.llm.http import connect, post
from tasks.llm.types import (
    Completion,
    OnDone,
    OnRejected,
    Request,
    chat_messages,
    request_seed,
    split_reasoning,
)


def parse_choices(body: dict[str, Any]) -> list[Completion]:
    """Completions from a /chat/completions response, reasoning apart (reasoning_content or <think>)."""
    choices = sorted(body["choices"], key=lambda c: c["index"])
    usage = body.get("usage") or {}
    completions = []
    for choice in choices:
        message = choice["message"]
        content = message.get("content") or ""
        separate = message.get("reasoning_content") or message.get("reasoning")
        reasoning, answer = (separate.strip(), content.strip()) if separate else split_reasoning(content)
        logprobs = [t["logprob"] for t in ((choice.get("logprobs") or {}).get("content") or [])] or None
        # per-choice token counts: the logprobs when present, else the usage total shared out
        tokens = len(logprobs) if logprobs else round(usage.get("completion_tokens", 0) / len(choices))
        completions.append(
            Completion(
                text=answer,
                finish_reason=choice.get("finish_reason") or "stop",
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=tokens,
                reasoning=reasoning,
                logprobs=logprobs,
            )
        )
    return completions


class OpenAIBackend:
    """Any OpenAI-compatible /v1/chat/completions server: async, bounded concurrency, retries."""

    def __init__(self, server: ServerConfig, model: str, sampling: SamplingConfig, seed: int, api_key: str | None):
        self.server, self.model, self.sampling, self.seed, self.api_key = server, model, sampling, seed, api_key
        self.rng = random.Random(seed)

    def request_body(self, request: Request) -> dict[str, Any]:
        body = {
            "model": self.model,
            "messages": chat_messages(request.prompt, self.sampling.system_prompt),
            "n": len(request.indices),
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_new_tokens,
            "seed": request_seed(self.seed, request.id),
        }
        if self.sampling.logprobs is not None:
            body |= {"logprobs": True, "top_logprobs": self.sampling.logprobs}
        return body

    def sample(self, requests: list[Request], on_done: OnDone, on_rejected: OnRejected) -> None:
        asyncio.run(self._sample(requests, on_done, on_rejected))

    def close(self) -> None:
        pass  # each sample() opens and closes its own connections

    async def _sample(self, requests: list[Request], on_done: OnDone, on_rejected: OnRejected) -> None:
        slots = asyncio.Semaphore(self.server.max_concurrency)
        async with connect(self.server, self.api_key) as client:

            async def one(request: Request) -> None:
                async with slots:  # the answer is handed over (committed) before the slot is freed
                    outcome = await post(client, self.server, self.rng, "/chat/completions", self.request_body(request))
                    if isinstance(outcome, str):
                        on_rejected(request, outcome)
                    else:
                        on_done(request, parse_choices(outcome))

            await asyncio.gather(*(one(request) for request in requests))
