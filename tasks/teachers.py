"""Teacher backends behind one interface: in-process transformers, an OpenAI-compatible server, vLLM.

A backend gets asks (prompt id, prompt, the sample indices still missing) and reports each one
the moment it finishes, through `on_done(ask, completions)`, so the caller can commit it before
anything else goes out; a request the server will never answer (HTTP 400, 404, 413, 422) goes to
`on_rejected(ask, message)`. Anything else that still fails after its retries raises: the Prefect
task retry then resumes from the durable store, and nothing finished is asked for again.

Only stdlib and pydantic are imported here at module level: vLLM's own environment imports this
module to run the `vllm` backend, and it has neither Prefect nor our torch/transformers pins.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from tasks.config import Config

Backend = Literal["local", "openai", "vllm"]


class SamplingConfig(Config):
    """How the teacher samples: everything that, changed, makes its answers not comparable."""

    system_prompt: str | None = Field(None, description="System message for the teacher; none uses the template's.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens; longer ones end as `length`.")
    logprobs: int | None = Field(
        None, ge=0, le=20, description="Ask for token log-probabilities (this many alternatives); none: don't."
    )


@dataclass
class Completion:
    """One sampled answer: the final answer, its reasoning (chain of thought) apart, and its cost."""

    text: str
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)
    prompt_tokens: int
    completion_tokens: int
    reasoning: str | None = None
    logprobs: list[float] | None = None  # chosen-token log-probabilities, when asked for and offered


@dataclass(frozen=True)
class Ask:
    """A prompt and the sample indices of it the store does not hold yet."""

    prompt_id: str
    prompt: str
    indices: tuple[int, ...]


OnDone = Callable[[Ask, list[Completion]], None]
OnRejected = Callable[[Ask, str], None]


class TeacherUnavailable(RuntimeError):
    """The teacher did not answer after every retry: the task fails and Prefect retries it later."""


# ----------------------------------------------------------------------------- shared pieces
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, answer): `<think>…</think>` segments apart from the rest; an unclosed `<think>`
    (cut off by max_new_tokens) is all reasoning and no answer yet."""
    segments = _THINK.findall(text)
    if segments:
        return "\n\n".join(s.strip() for s in segments), _THINK.sub("", text).strip()
    if "<think>" in text:
        answer, _, reasoning = text.partition("<think>")
        return reasoning.strip(), answer.strip()
    return None, text.strip()


def chat_messages(prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return system + [{"role": "user", "content": prompt}]


def by_missing_count(asks: list[Ask], batch_size: int) -> Iterator[tuple[int, list[Ask]]]:
    """Batches of asks that need the same number of samples (one `n` per batched call)."""
    groups: dict[int, list[Ask]] = defaultdict(list)
    for ask in asks:
        groups[len(ask.indices)].append(ask)
    for n, group in sorted(groups.items()):
        for start in range(0, len(group), batch_size):
            yield n, group[start : start + batch_size]


def request_seed(seed: int, prompt_id: str) -> int:
    """A per-prompt seed: the same prompt asked again samples the same (where the backend honours it)."""
    return int(hashlib.sha256(f"{seed}:{prompt_id}".encode()).hexdigest()[:8], 16) % 2**31


# ----------------------------------------------------------------------------- local (transformers)
class LocalTeacher:
    """The teacher in this process with transformers, batched: the embedded CPU default."""

    def __init__(self, model_path: str, sampling: SamplingConfig, batch_size: int, seed: int):
        from tasks.models import load_model

        self.model, self.tokenizer = load_model(model_path)
        self.sampling, self.batch_size, self.seed = sampling, batch_size, seed

    def sample(self, asks: list[Ask], on_done: OnDone, on_rejected: OnRejected) -> None:
        import torch

        from tasks.models import generate

        for n, batch in by_missing_count(asks, self.batch_size):
            torch.manual_seed(request_seed(self.seed, batch[0].prompt_id))
            answers = generate(
                self.model,
                self.tokenizer,
                [a.prompt for a in batch],
                n=n,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                max_new_tokens=self.sampling.max_new_tokens,
                system_prompt=self.sampling.system_prompt,
                logprobs=self.sampling.logprobs is not None,
            )
            for ask, completions in zip(batch, answers, strict=True):
                on_done(ask, completions)

    def close(self) -> None:
        del self.model


# ----------------------------------------------------------------------------- OpenAI-compatible server
class ServerConfig(Config):
    """Where an OpenAI-compatible teacher lives and how patiently it is asked."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="The server's /v1 root.")
    model: str = Field(
        "teacher", description="Model name the server serves. It identifies the teacher: change it when weights change."
    )
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    api_key_secret_block: str | None = Field(
        None, description="Prefect Secret block holding the API key (used before the environment variable)."
    )
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    request_timeout_s: float = Field(120, gt=0, description="Seconds one request may take.")
    max_retries: int = Field(6, ge=0, description="Retries of one request on 429, 5xx, timeouts and lost connections.")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each retry, with +-50% jitter.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest retry delay (a Retry-After header is honoured).")


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


class OpenAITeacher:
    """Any OpenAI-compatible /v1/chat/completions server: async, bounded concurrency, retries."""

    def __init__(self, server: ServerConfig, sampling: SamplingConfig, seed: int, api_key: str | None):
        self.server, self.sampling, self.seed = server, sampling, seed
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.rng = random.Random(seed)

    def request_body(self, ask: Ask) -> dict[str, Any]:
        body = {
            "model": self.server.model,
            "messages": chat_messages(ask.prompt, self.sampling.system_prompt),
            "n": len(ask.indices),
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_new_tokens,
            "seed": request_seed(self.seed, ask.prompt_id),
        }
        if self.sampling.logprobs is not None:
            body |= {"logprobs": True, "top_logprobs": self.sampling.logprobs}
        return body

    def sample(self, asks: list[Ask], on_done: OnDone, on_rejected: OnRejected) -> None:
        asyncio.run(self._sample(asks, on_done, on_rejected))

    def close(self) -> None:
        pass  # each sample() opens and closes its own connections

    async def _sample(self, asks: list[Ask], on_done: OnDone, on_rejected: OnRejected) -> None:
        import httpx

        slots = asyncio.Semaphore(self.server.max_concurrency)
        timeout = httpx.Timeout(self.server.request_timeout_s, connect=10.0)
        async with httpx.AsyncClient(base_url=self.server.base_url, headers=self.headers, timeout=timeout) as client:

            async def one(ask: Ask) -> None:
                async with slots:  # the answer is handed over (committed) before the slot is freed
                    outcome = await self._post(client, self.request_body(ask))
                    if isinstance(outcome, str):
                        on_rejected(ask, outcome)
                    else:
                        on_done(ask, parse_choices(outcome))

            await asyncio.gather(*(one(ask) for ask in asks))

    async def _post(self, client, body: dict[str, Any]) -> dict[str, Any] | str:
        """The response JSON, or the rejection message of a request not worth retrying."""
        import httpx

        for attempt in range(self.server.max_retries + 1):
            wait = None
            try:
                response = await client.post("/chat/completions", json=body)
            except httpx.TransportError as e:  # refused, reset, timed out: the teacher may come back
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
        raise TeacherUnavailable(f"{self.server.base_url} after {self.server.max_retries + 1} attempts: {failure}")


def resolve_api_key(server: ServerConfig) -> str | None:
    """The API key from the Prefect Secret block, else the environment; never logged or stored."""
    import os

    if server.api_key_secret_block:
        from prefect.blocks.system import Secret

        return Secret.load(server.api_key_secret_block).get()
    return os.environ.get(server.api_key_env) if server.api_key_env else None


# ----------------------------------------------------------------------------- vLLM (offline engine)
class VLLMConfig(Config):
    """vLLM's offline engine, for GPU workers (its CPU build runs the tests)."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the teacher is sharded over.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    max_model_len: int | None = Field(None, ge=16, description="Context length to reserve (none: the model's).")
    dtype: str = Field("auto", description="Weights dtype (auto, bfloat16, float16).")


class VLLMTeacher:
    """vLLM's `LLM.chat` with `SamplingParams(n=…)`; imported only when chosen."""

    def __init__(self, model_path: str, vllm: VLLMConfig, sampling: SamplingConfig, batch_size: int, seed: int):
        try:
            from vllm import LLM
        except ImportError as e:
            raise ImportError(
                "rollout.backend 'vllm' needs vLLM in the environment the rollout runs in (a GPU worker; on CPU, "
                "`make vllm-env`); or serve the teacher with vLLM's API server and use rollout.backend 'openai'"
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

    def sample(self, asks: list[Ask], on_done: OnDone, on_rejected: OnRejected) -> None:
        from vllm import SamplingParams

        for n, batch in by_missing_count(asks, self.batch_size):
            params = [
                SamplingParams(
                    n=n,
                    temperature=self.sampling.temperature,
                    top_p=self.sampling.top_p,
                    max_tokens=self.sampling.max_new_tokens,
                    logprobs=self.sampling.logprobs,
                    seed=request_seed(self.seed, ask.prompt_id),
                )
                for ask in batch
            ]
            messages = [chat_messages(ask.prompt, self.sampling.system_prompt) for ask in batch]
            outputs = self.llm.chat(messages, params, use_tqdm=False)
            for ask, output in zip(batch, outputs, strict=True):
                on_done(ask, [_vllm_completion(o, len(output.prompt_token_ids)) for o in output.outputs])

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
