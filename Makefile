# `make run` and `make test` work on a fresh machine: each creates .venv and installs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PARAMS ?= params/lesson16.yaml
ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist; a file's tests stay in one). Most of a test's time is one
# `rnnflow run` starting up on one core, so two processes on two cores take 10 minutes, not 18.
TEST_WORKERS ?= 2
DATA ?=
BENCH_ARGS ?=

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/rnnflow run $(PARAMS) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The lesson four ways side by side (bench/run.py); DATA=<aclImdb .tar.gz> picks the archive
# (default: the shared 5,000-review sample, bench.SAMPLE).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(DATA),--data $(DATA)) $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf data mlruns/*-* mlruns/[0-9]* mlflow.db .pytest_cache
