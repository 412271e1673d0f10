"""The `openai` backend: any OpenAI-compatible /v1/chat/completions server (vLLM, llama.cpp's server,
a hosted API). Async requests with bounded concurrency, a per-request timeout, retries with
exponential backoff and jitter on 429, 5xx, timeouts and lost connections (Retry-After honoured).
Stdlib, pydantic and httpx only (vLLM's environment has them).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any

from tasks.llm.config import SamplingConfig, ServerConfig
from tasks.llm.types import (
    Completion,
    ModelUnavailable,
    OnDone,
    OnRejected,
    Request,
    chat_messages,
    request_seed,
    split_reasoning,
)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def retry_after_s(header: str | None) -> float | None:
    """Seconds a Retry-After header asks for (a number of seconds, or an HTTP date)."""
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(header)
        return max(when.timestamp() - time.time(), 0.0) if when else None


def backoff_s(config: ServerConfig, attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: base * 2^attempt, capped, times a random 0.5-1.5."""
    return min(config.backoff_max_s, config.backoff_s * 2**attempt) * rng.uniform(0.5, 1.5)


def server_message(response) -> str:
    """The server's error message (OpenAI or vLLM error JSON), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error", body) if isinstance(body, dict) else body
    return str(error.get("message", error) if isinstance(error, dict) else error)[:500]


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
        self.server, self.model, self.sampling, self.seed = server, model, sampling, seed
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
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
        import httpx

        slots = asyncio.Semaphore(self.server.max_concurrency)
        timeout = httpx.Timeout(self.server.request_timeout_s, connect=10.0)
        async with httpx.AsyncClient(base_url=self.server.base_url, headers=self.headers, timeout=timeout) as client:

            async def one(request: Request) -> None:
                async with slots:  # the answer is handed over (committed) before the slot is freed
                    outcome = await self._post(client, self.request_body(request))
                    if isinstance(outcome, str):
                        on_rejected(request, outcome)
                    else:
                        on_done(request, parse_choices(outcome))

            await asyncio.gather(*(one(request) for request in requests))

    async def _post(self, client, body: dict[str, Any]) -> dict[str, Any] | str:
        """The response JSON, or the rejection message of a request not worth retrying."""
        import httpx

        for attempt in range(self.server.max_retries + 1):
            wait = None
            try:
                response = await client.post("/chat/completions", json=body)
            except httpx.TransportError as e:  # refused, reset, timed out: the server may come back
                failure = f"{type(e).__name__}: {e}"
            else:
                if response.status_code == 200:
                    return response.json()
                if response.status_code not in RETRYABLE_STATUS:
                    return f"HTTP {response.status_code}: {server_message(response)}"
                failure = f"HTTP {response.status_code}: {server_message(response)}"
                wait = retry_after_s(response.headers.get("retry-after"))
            if attempt < self.server.max_retries:
                await asyncio.sleep(wait if wait is not None else backoff_s(self.server, attempt, self.rng))
        raise ModelUnavailable(f"{self.server.base_url} after {self.server.max_retries + 1} attempts: {failure}")


def resolve_api_key(server: ServerConfig) -> str | None:
    """The API key from the Prefect Secret block, else the environment; never logged or stored."""
    import os

    if server.api_key_secret_block:
        from prefect.blocks.system import Secret

        return Secret.load(server.api_key_secret_block).get()
    return os.environ.get(server.api_key_env) if server.api_key_env else None
