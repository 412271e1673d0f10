"""These tests run in vLLM's own environment (`make test` runs them with .venv-vllm/bin/python)."""

import os

# before vllm is imported: leave logging to pytest (vLLM's own handler writes to pytest's closed capture
# streams from exit-time finalizers), and a small KV cache is plenty for the tiny test model
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import pytest  # noqa: E402

pytest.importorskip("vllm", reason="run in vLLM's environment: .venv-vllm/bin/python -m pytest tests/vllm")
