"""Rollout overhead: our rollout stage against the bare backend, same prompts and sampling.

    .venv/bin/python bench/rollout_overhead.py [prompts]

Local: transformers `generate` in a plain loop vs the stage (store commits, Parquet, bookkeeping).
Server: plain async httpx requests to vLLM's OpenAI-compatible server vs the stage's `openai`
backend (needs .venv-vllm). Same seeds, so both sides generate the same tokens. Best of 2 runs
each, alternating. Target: overhead at most 5%.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from _setup import demo_prompts, embedded_teacher

from tasks import storage
from tasks.llm.config import LLMConfig, SamplingConfig, ServerConfig
from tasks.llm.local import chat_prompts
from tasks.llm.store import open_store
from tasks.llm.types import Request, by_missing_count, chat_messages, request_seed
from tasks.llm.vllm_server import VLLMServer, vllm_python
from tasks.models import load_model
from tasks.rollout import RolloutConfig, rollout
from tasks.stage import prompt_id, read_dataset

N, MAX_NEW = 4, 32


def bare_local(checkpoint, prompts: list[str], config: LLMConfig) -> tuple[float, int]:
    import torch

    start, tokens = time.perf_counter(), 0
    model, tokenizer = load_model(checkpoint.uri)
    requests = [Request(prompt_id(p), p, tuple(range(N))) for p in prompts]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for n, batch in by_missing_count(requests, config.batch_size):
        torch.manual_seed(request_seed(config.seed, batch[0].id))
        texts = chat_prompts(tokenizer, [a.prompt for a in batch], None)
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **encoded,
                do_sample=True,
                temperature=0.7,
                top_p=0.95,
                max_new_tokens=MAX_NEW,
                num_return_sequences=n,
                eos_token_id=end,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[:, encoded["input_ids"].shape[1] :]
        tokens += int((new != tokenizer.pad_token_id).sum()) + int((new == end).any(dim=1).sum())  # eos is pad here
    return time.perf_counter() - start, tokens


def bare_server(base_url: str, prompts: list[str], config: LLMConfig) -> tuple[float, int]:
    import httpx

    tokens = 0

    async def run() -> None:
        slots = asyncio.Semaphore(config.server.max_concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:

            async def one(prompt: str) -> None:
                body = {
                    "model": "teacher",
                    "messages": chat_messages(prompt, None),
                    "n": N,
                    "temperature": 0.7,
                    "top_p": 0.95,
                    "max_tokens": MAX_NEW,
                    "seed": request_seed(config.seed, prompt_id(prompt)),
                }
                nonlocal tokens
                async with slots:
                    response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]

            await asyncio.gather(*(one(p) for p in prompts))

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start, tokens


def ours(teacher: LLMConfig, checkpoint, prompts_ref, scratch: Path) -> tuple[float, int]:
    fresh = Path(tempfile.mkdtemp(dir=scratch))  # an empty store: everything is generated
    start = time.perf_counter()
    store = open_store(str(fresh / "requests.sqlite"))
    result = rollout(RolloutConfig(samples_per_prompt=N), teacher, checkpoint, prompts_ref, store, str(fresh))
    store.close()
    return time.perf_counter() - start, int(result.report.metrics["completion_tokens_generated"])


def compare(name: str, bare, mine) -> None:
    """Best of 2, alternating; the token counts show both sides generated the same."""
    runs = {"bare": [], "ours": []}
    for _ in range(2):
        runs["bare"].append(bare())
        runs["ours"].append(mine())
    (b, b_tokens), (o, o_tokens) = min(runs["bare"]), min(runs["ours"])
    print(f"{name:<8}{b:>10.2f}{o:>10.2f}{(o / b - 1) * 100:>11.1f}%{b_tokens:>10}{o_tokens:>10}")


def main(n_prompts: int = 16) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="rollout-overhead-"))
    checkpoint = embedded_teacher()
    prompts_ref = demo_prompts(n_prompts, scratch / "prompts.parquet")
    prompts = [r["prompt"] for r in read_dataset(prompts_ref)]
    sampling = SamplingConfig(max_new_tokens=MAX_NEW)
    print(f"{n_prompts} prompts x {N} samples, {MAX_NEW} new tokens; seconds, best of 2")
    print(f"{'backend':<8}{'bare':>10}{'ours':>10}{'overhead':>12}{'tok bare':>10}{'tok ours':>10}")
    local = LLMConfig(sampling=sampling)
    compare(
        "local",
        lambda: bare_local(checkpoint, prompts, local),
        lambda: ours(local, checkpoint, prompts_ref, scratch),
    )
    if not vllm_python().exists():
        print("server  (skipped: no .venv-vllm; `make vllm-env`)")
        return
    server = VLLMServer(storage.local_folder(checkpoint.uri), scratch / "vllm").start()
    try:
        remote = LLMConfig(
            backend="openai", model="teacher", sampling=sampling, server=ServerConfig(base_url=server.base_url)
        )
        bare_server(server.base_url, prompts, remote)  # warm the server up
        compare(
            "server",
            lambda: bare_server(server.base_url, prompts, remote),
            lambda: ours(remote, None, prompts_ref, scratch),
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
