# Two commands for a newcomer: `make serve` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install serve worker test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The local CPU build first, so nothing below pulls a CUDA torch.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/embedtune serve

worker: $(STAMP)
	$(BIN)/embedtune worker

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/task_queue.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/feedback.py
	$(BIN)/python benchmarks/feedback_quality.py
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/stream.py
	$(BIN)/python benchmarks/metrics.py

clean:
	rm -rf $(VENV) .embedtune .mypy_cache .pytest_cache .ruff_cache
