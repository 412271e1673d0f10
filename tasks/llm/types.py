"""Requests, completions and what every backend shares (stdlib only: vLLM's environment imports it).

A backend gets requests (id, prompt, the sample indices still missing) and reports each one the
moment it finishes, through `on_done(request, completions)`, so the caller can commit it before
anything else goes out; a request the model will never answer (HTTP 400, 404, 413, 422) goes to
`on_rejected(request, message)`. Anything else that still fails after its retries raises.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Completion:
    """One sampled answer: the final answer, its reasoning (chain of thought) apart, and its cost."""

    text: str
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)
    prompt_tokens: int
    completion_tokens: int
    reasoning: str | None = None
    logprobs: list[float] | None = None  # chosen-token log-probabilities, when asked for and offered


# What a model is asked: a user's text, or a conversation (chat `messages`: {role, content} dicts) that
# ends with the user's turn.
Prompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class Request:
    """A prompt, and the sample indices of it still to be answered."""

    id: str
    prompt: Prompt
    indices: tuple[int, ...] = (0,)


OnDone = Callable[[Request, list[Completion]], None]
OnRejected = Callable[[Request, str], None]


class Backend(Protocol):
    """What rollout, evaluation and (later) the judge ask of a model."""

    def sample(self, requests: list[Request], on_done: OnDone, on_rejected: OnRejected) -> None: ...

    def close(self) -> None: ...


class ModelUnavailable(RuntimeError):
    """The model did not answer after every retry: the task fails and Prefect retries it later."""


class NoTeacherSignal(ValueError):
    """`kd` cannot have the teacher's distribution: its server returns no log-probabilities over given tokens, or
    its tokenizer is not the student's (one line, before training)."""


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


def chat_messages(prompt: Prompt, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages for a prompt: the teacher's system prompt, unless the conversation has its own."""
    turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(t) for t in prompt]
    own_system = turns[0]["role"] == "system"
    return ([{"role": "system", "content": system_prompt}] if system_prompt and not own_system else []) + turns


def by_missing_count(requests: list[Request], batch_size: int) -> Iterator[tuple[int, list[Request]]]:
    """Batches of requests that need the same number of samples (one `n` per batched call)."""
    groups: dict[int, list[Request]] = defaultdict(list)
    for request in requests:
        groups[len(request.indices)].append(request)
    for n, group in sorted(groups.items()):
        for start in range(0, len(group), batch_size):
            yield n, group[start : start + batch_size]


def request_seed(seed: int, request_id: str) -> int:
    """A per-request seed: the same request asked again samples the same (where the backend honours it)."""
    return int(hashlib.sha256(f"{seed}:{request_id}".encode()).hexdigest()[:8], 16) % 2**31


def answer_each(
    backend: Backend, prompts: list[Prompt], on_progress: Callable[[int], None] = lambda n: None
) -> list[Completion]:
    """One answer per prompt, in order, straight from a backend: for the models under test, which are
    cheap to ask again (no store). A refusal is an error: every prompt must be scored."""
    done: dict[str, Completion] = {}

    def on_done(request: Request, completions: list[Completion]) -> None:
        done[request.id] = completions[0]
        on_progress(1)

    def on_rejected(request: Request, message: str) -> None:
        raise RuntimeError(f"the model refused prompt {int(request.id) + 1} of {len(prompts)}: {message}")

    backend.sample([Request(str(i), p) for i, p in enumerate(prompts)], on_done, on_rejected)
    return [done[str(i)] for i in range(len(prompts))]
