"""Local services as plain processes (no Docker engine on our machines): for tests and dev boxes. vLLM's
server is tasks.llm.vllm_server (the export stage serves its model with it).

with mlflow_server(Path("/tmp/mlflow")) as uri:
    ...  # DistillConfig(tracking=TrackingConfig(tracking_uri=uri))
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.processes import free_port, wait_healthy


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
