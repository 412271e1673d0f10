"""Talking to an OpenAI-compatible server: one POST with retries (exponential backoff with jitter on 429, 5xx,
timeouts and lost connections; Retry-After honoured), and the API key. Stdlib, pydantic and httpx only (vLLM's
environment has them)."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any

from tasks.llm.served import ServerConfig
from tasks.llm.types import ModelUnavailable

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
    except ValueError:  # a proxy's HTML page, say: on one line, as every message here is
        return " ".join(response.text.split())[:500]
    error = body.get("error", body) if isinstance(body, dict) else body
    return " ".join(str(error.get("message", error) if isinstance(error, dict) else error).split())[:500]


def connect(server: ServerConfig, api_key: str | None, root: bool = False):
    """An httpx.AsyncClient for the server's /v1 (or, `root`, the server's own routes: vLLM's /tokenize)."""
    import httpx

    base_url = server.base_url.removesuffix("/").removesuffix("/v1") if root else server.base_url
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=httpx.Timeout(server.request_timeout_s,
                                                                                        connect=10.0))  # fmt: skip


async def post(client, server: ServerConfig, rng: random.Random, path: str, body: dict[str, Any]) -> dict | str:
    """The response JSON, or the rejection message of a request not worth retrying; ModelUnavailable once the
    retries are spent."""
    import httpx

    for attempt in range(server.max_retries + 1):
        wait = None
        try:
            response = await client.post(path, json=body)
        except httpx.TransportError as e:  # refused, reset, timed out: the server may come back
            failure = f"{type(e).__name__}: {e}"
        else:
            if response.status_code == 200:
                return response.json()
            if response.status_code not in RETRYABLE_STATUS:
                return f"HTTP {response.status_code}: {server_message(response)}"
            failure = f"HTTP {response.status_code}: {server_message(response)}"
            wait = retry_after_s(response.headers.get("retry-after"))
        if attempt < server.max_retries:
            await asyncio.sleep(wait if wait is not None else backoff_s(server, attempt, rng))
    raise ModelUnavailable(f"{server.base_url} after {server.max_retries + 1} attempts: {failure}")


def resolve_api_key(server: ServerConfig) -> str | None:
    """The API key from the Prefect Secret block, else the environment; never logged or stored."""
    import os

    if server.api_key_secret_block:
        from prefect.blocks.system import Secret

        return Secret.load(server.api_key_secret_block).get()
    return os.environ.get(server.api_key_env) if server.api_key_env else None
