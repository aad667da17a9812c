# `make run` and `make test` work on a fresh machine: each creates .venv and installs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# GPU=1: the GPU build of TensorFlow (the `gpu` extra) instead of tensorflow-cpu; each build
# has its own stamp, so `make install GPU=1` after a CPU install switches the venv over.
GPU ?=
TF_BUILD := $(if $(GPU),tensorflow,tensorflow-cpu)
OTHER_TF := $(if $(GPU),tensorflow-cpu,tensorflow)
STAMP := $(VENV)/.installed-$(TF_BUILD)
PARAMS ?= params/lesson16.yaml
ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist; a file's tests stay in one). The suite is CPU-bound: two
# processes keep both cores about 95% busy (vmstat over a whole run), so a third gains nothing;
# on 2 cores `make test` (the smoke tests apart) takes about 7.5 minutes.
# --no-loadscope-reorder keeps tests/conftest.py's order (the long end-to-end modules first);
# xdist would otherwise sort the modules by their number of tests, and a long module taken
# last leaves the other process idle.
TEST_WORKERS ?= 2
DATA ?=
BENCH_ARGS ?=

comma := ,

.PHONY: install run test smoke lint bench clean

# tensorflow-cpu and tensorflow install the same `tensorflow` module: where the other build is
# installed too, uninstall it (its files are this one's) and put this build's files back.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev$(if $(GPU),$(comma)gpu)]'
	if $(BIN)/python -m pip show --quiet $(OTHER_TF) 2>/dev/null; then \
	  version=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("$(TF_BUILD)"))') \
	  && $(BIN)/python -m pip uninstall --quiet -y $(OTHER_TF) \
	  && $(BIN)/python -m pip install --quiet --no-deps --force-reinstall "$(TF_BUILD)==$$version"; \
	fi
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# DATA=<path or URL>: run on that dataset (`rnnflow run --data`), e.g. a local copy offline.
# RNNFLOW_MAKE_RUN tells the run it was started here, so that a failure's way on is printed
# as a `make run` command (MAKELEVEL would also be set under `make test` and any other make).
run: $(STAMP)
	RNNFLOW_MAKE_RUN=1 $(BIN)/rnnflow run $(PARAMS) $(if $(DATA),--data $(DATA)) $(ARGS)

# The suite without the smoke tests; `make smoke`: only them (building and installing the
# wheel, `make bench` and bench.gpu on tiny data), each run as a user would. CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not smoke" $(PYTEST_ARGS)

smoke: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m smoke $(PYTEST_ARGS)

# The lesson four ways side by side (bench/run.py); DATA=<aclImdb .tar.gz> picks the archive
# (default: the shared 5,000-review sample, bench.SAMPLE).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(DATA),--data $(DATA)) $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf data mlruns/*-* mlruns/[0-9]* mlflow.db .pytest_cache
