"""Ask a model for what the durable store lacks, exactly once: the one way every stage talks to an LLM.

`ask(...)` looks up the store, builds the backend only if something is missing, sends only the
missing (request, sample) pairs, and commits each finished request before the next goes out. A
crash, a Prefect retry or a new run with the same model and sampling asks only for what is still
missing; raising N from 4 to 8 pays only for samples 4-7.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass

from tasks.llm.config import LLMConfig
from tasks.llm.store import RequestStore
from tasks.llm.types import Backend, Completion, Prompt, Request
from tasks.refs import ModelRef


def fingerprint(config: LLMConfig, checkpoint: ModelRef | None) -> str:
    """What makes two answers comparable: backend, model identity, sampling (not N, not batching, and
    not whether log-probabilities were asked for). A served model is known by its served name."""
    served = config.served()
    identity = served.fingerprint if served else checkpoint.fingerprint
    plain = json.dumps([config.backend, identity, config.sampling.model_dump(exclude={"logprobs"})], sort_keys=True)
    return hashlib.sha256(plain.encode()).hexdigest()[:16]


def make_backend(config: LLMConfig, checkpoint: ModelRef | None) -> Backend:
    """The configured backend, ready to sample (`checkpoint`: the weights, for local and vllm)."""
    match config.backend:
        case "local":
            from tasks.llm.local import LocalBackend

            return LocalBackend.from_checkpoint(checkpoint.uri, config.sampling, config.batch_size, config.seed)
        case "openai":
            from tasks.llm.http import resolve_api_key
            from tasks.llm.openai_server import OpenAIBackend

            api_key = resolve_api_key(config.server)
            return OpenAIBackend(config.server, config.model, config.sampling, config.seed, api_key)
        case "vllm":
            from tasks import storage
            from tasks.llm.vllm_engine import VLLMBackend

            path = str(storage.local_folder(checkpoint.uri))
            return VLLMBackend(path, config.vllm, config.sampling, config.batch_size, config.seed)
        case other:
            raise ValueError(f"unknown backend {other!r}")


@dataclass
class Spend:
    """What this run actually asked the model for, and what it cost."""

    config: LLMConfig
    requests: int = 0
    samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # sampling time, not model load: for tokens/s

    def add(self, completions: list[Completion]) -> None:
        self.requests += 1
        self.samples += len(completions)
        self.prompt_tokens += completions[0].prompt_tokens if completions else 0  # a prompt is billed once per request
        self.completion_tokens += sum(c.completion_tokens for c in completions)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.config.price_per_million_prompt_tokens
            + completion_tokens * self.config.price_per_million_completion_tokens
        ) / 1e6

    def metrics(self) -> dict[str, float]:
        return {
            "requests_sent": self.requests,
            "samples_generated": self.samples,
            "prompt_tokens_sent": self.prompt_tokens,
            "completion_tokens_generated": self.completion_tokens,
            "tokens_per_s": self.completion_tokens / self.seconds if self.seconds else 0.0,
            "cost_usd_this_run": self.cost(self.prompt_tokens, self.completion_tokens),
        }


@dataclass
class Answers:
    """What the store holds for the requests after asking (under `fingerprint`), what the model refused (with
    its message), and what this call paid for."""

    completions: dict[tuple[str, int], Completion]
    rejected: dict[str, str]
    spend: Spend
    fingerprint: str


def missing_samples(request_ids: list[str], n: int, stored: dict) -> dict[str, list[int]]:
    """Per request, the sample indices below n that the store does not hold yet."""
    return {rid: todo for rid in request_ids if (todo := [i for i in range(n) if (rid, i) not in stored])}


def ask(
    store: RequestStore,
    purpose: str,
    config: LLMConfig,
    checkpoint: ModelRef | None,
    prompts: dict[str, Prompt],
    n: int,
    on_progress: Callable[[int], None] = lambda samples: None,
    backend: Backend | None = None,
) -> Answers:
    """`n` answers to each prompt (by request id), from the store where it has them, else from the model.

    `backend`: one the caller has open (and closes); else one is built only if something is missing."""
    key = fingerprint(config, checkpoint)
    ids = list(prompts)
    spend, refused = Spend(config), {}
    todo = missing_samples(ids, n, store.get(purpose, key, ids))

    def on_done(request: Request, completions: list[Completion]) -> None:
        # committed first; a server that ignores `n` returns fewer: keep those, say so, never crash the retry loop
        store.add(purpose, key, request.id, dict(zip(request.indices, completions, strict=False)))
        spend.add(completions)
        on_progress(len(completions))
        if len(completions) < len(request.indices):
            refused[request.id] = f"returned {len(completions)} of the {len(request.indices)} samples asked for"

    def on_rejected(request: Request, message: str) -> None:
        refused[request.id] = message

    if todo:
        requests = [Request(rid, prompts[rid], tuple(indices)) for rid, indices in todo.items()]
        with closing(make_backend(config, checkpoint)) if backend is None else nullcontext(backend) as model:
            start = time.perf_counter()
            try:
                model.sample(requests, on_done, on_rejected)
            finally:
                spend.seconds += time.perf_counter() - start
    return Answers(store.get(purpose, key, ids), refused, spend, key)
