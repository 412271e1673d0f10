"""A served model's log-probabilities over tokens it is given, nothing generated: vLLM's `prompt_logprobs` on
/v1/completions, each row sent as its token ids (so no re-tokenizing can shift a position); and its tokenizer,
read through vLLM's /tokenize, to check it is the student's. What `kd` needs from a served teacher.
Stdlib, pydantic and httpx only.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tasks.llm.http import connect, post
from tasks.llm.served import ServedModel
from tasks.llm.types import NoTeacherSignal

Scored = list[dict[int, float] | None]  # per position t: {token id: log-probability} given tokens < t; None at 0


class PromptLogprobs:
    """One served model, asked for its distribution at every position of given token ids."""

    def __init__(self, served: ServedModel, api_key: str | None, seed: int = 0):
        self.served, self.api_key, self.rng = served, api_key, random.Random(seed)

    def top_k(self, token_rows: list[list[int]], k: int) -> list[Scored]:
        """Each row's top-k log-probabilities at every position (vLLM's `--max-logprobs`, 20 by default, caps k)."""
        return asyncio.run(self._top_k(token_rows, k))

    def tokenize(self, text: str) -> list[int]:
        """The server's token ids for `text`, no special tokens added (NoTeacherSignal where it has no /tokenize)."""
        body = {"model": self.served.model, "prompt": text, "add_special_tokens": False}
        found = asyncio.run(self._post_once("/tokenize", body, root=True))
        if isinstance(found, str) and found.startswith(("HTTP 404", "HTTP 405")):
            raise NoTeacherSignal(
                f"the teacher's server has no tokenizer endpoint (vLLM's /tokenize: {found}), so its tokenizer cannot "
                "be checked against the student's: serve the teacher with vLLM, or use train.objective 'sft'"
            )
        if isinstance(found, str):
            raise NoTeacherSignal(f"the teacher's server refused the tokenizer probe (/tokenize): {found}")
        return found["tokens"]

    async def _post_once(self, path: str, body: dict[str, Any], root: bool = False) -> dict | str:
        async with connect(self.served.server, self.api_key, root=root) as client:
            return await post(client, self.served.server, self.rng, path, body)

    async def _top_k(self, token_rows: list[list[int]], k: int) -> list[Scored]:
        slots = asyncio.Semaphore(self.served.server.max_concurrency)
        async with connect(self.served.server, self.api_key) as client:

            async def one(ids: list[int]) -> Scored:
                body = {"model": self.served.model, "prompt": ids, "max_tokens": 1, "temperature": 0.0,
                        "prompt_logprobs": k}  # fmt: skip
                async with slots:
                    outcome = await post(client, self.served.server, self.rng, "/completions", body)
                if isinstance(outcome, str):
                    raise NoTeacherSignal(f"the teacher's server would not score a training row: {outcome}")
                scored = outcome["choices"][0].get("prompt_logprobs")
                if not scored:
                    raise NoTeacherSignal(
                        "the teacher's server returns no log-probabilities over given tokens (vLLM's "
                        "`prompt_logprobs` on /v1/completions), which train.objective 'kd' needs: serve the teacher "
                        "with vLLM, or use train.objective 'sft'"
                    )
                return [None if at is None else ranked_top(at, k) for at in scored]

            return list(await asyncio.gather(*(one(ids) for ids in token_rows)))


def ranked_top(position: dict[str, dict[str, Any]], k: int) -> dict[int, float]:
    """vLLM's entries at one position (its top-k, plus the token that is there when it is not among them) as
    {token id: log-probability} for the top k alone."""
    try:
        return {int(token): entry["logprob"] for token, entry in position.items() if entry["rank"] <= k}
    except (KeyError, TypeError, ValueError) as e:
        raise NoTeacherSignal(f"the teacher's server returns prompt log-probabilities not as vLLM does ({e!r})") from e
