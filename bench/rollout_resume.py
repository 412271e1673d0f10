"""Resume cost: after a SIGKILL mid-run, how much does the rerun ask the teacher for again?

    .venv/bin/python bench/rollout_resume.py [prompts]        (needs .venv-vllm)

A child process rolls out `prompts` x 4 samples from vLLM's OpenAI-compatible server (the embedded
teacher) through a counting proxy; it is SIGKILLed once half the samples are in the store, then the
rollout runs again. Printed: samples finished (committed) before the kill, how many of those the
rerun generated again (target: at most 1%), and samples the teacher had answered but the dead
process never committed (in flight: at most max_concurrency requests).
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _setup import ROOT, demo_prompts, embedded_teacher

from tasks import storage
from tasks.llm.config import LLMConfig
from tasks.llm.store import open_store
from tasks.llm.vllm_server import VLLMServer
from tasks.refs import DatasetRef
from tasks.rollout import RolloutConfig, rollout
from tasks.stage import prompt_id
from tests.proxy import CountingProxy

N = 4


def committed(store: Path) -> set[tuple[str, int]]:
    if not store.exists():
        return set()
    with sqlite3.connect(store) as db:
        return set(db.execute("SELECT request_id, sample_index FROM requests WHERE purpose = 'rollout'"))


def child(args: dict) -> None:
    rollout(
        RolloutConfig(samples_per_prompt=N),
        LLMConfig.model_validate(args["teacher"]),
        None,
        DatasetRef.model_validate(args["prompts"]),
        open_store(args["store"]),
        args["out"],
    )


def main(n_prompts: int = 96) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="rollout-resume-"))
    checkpoint = embedded_teacher()
    prompts = demo_prompts(n_prompts, scratch / "prompts.parquet")
    server = VLLMServer(storage.local_folder(checkpoint.uri), scratch / "vllm").start()
    proxy = CountingProxy(server.base_url.removesuffix("/v1"))
    try:
        teacher = LLMConfig(
            backend="openai",
            model="teacher",
            server={"base_url": proxy.base_url, "max_concurrency": 8},
            sampling={"max_new_tokens": 32},
        )
        store = scratch / "requests.sqlite"
        args = {
            "teacher": teacher.model_dump(mode="json"),
            "prompts": prompts.model_dump(),
            "store": str(store),
            "out": str(scratch / "first"),
        }
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(args)],
            cwd=ROOT,
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        while len(committed(store)) < n_prompts * N // 2 and process.poll() is None:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        before_kill = committed(store)
        time.sleep(3)  # the server still answers what the dead process had in flight: count those as before
        answered_before = proxy.answered(200)

        rollout(
            RolloutConfig(samples_per_prompt=N), teacher, None, prompts, open_store(str(store)), str(scratch / "second")
        )
        answered_after = proxy.answered(200) - answered_before
        finished_ids = {pid for pid, _ in before_kill}
        regenerated = sum(N for p in answered_after.elements() if prompt_id(p) in finished_ids)
        in_flight = sum(n for p, n in answered_before.items() if prompt_id(p) not in finished_ids) * N
        total = len(committed(store))
    finally:
        proxy.close()
        server.stop()
    print(f"{'samples':<40}{'count':>8}")
    print(f"{'finished (committed) before the kill':<40}{len(before_kill):>8}")
    print(f"{'  of those generated again':<40}{regenerated:>8}   {regenerated / max(len(before_kill), 1):.2%}")
    print(f"{'answered, not committed (in flight)':<40}{in_flight:>8}   {in_flight / max(len(before_kill), 1):.2%}")
    print(f"{'in the store after the rerun':<40}{total:>8}   (expected {n_prompts * N})")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 96)
