# fedrl — set-up and common tasks. On a fresh machine `make demo` and `make test` do everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch is installed first so that a CPU machine never pulls CUDA packages.
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: install dev demo test bench lint clean

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/fedrl run $(ARGS)

test: dev
	$(BIN)/python -m pytest -q $(ARGS)

bench: install
	$(BIN)/python scripts/bench_tabular.py $(ARGS)

lint: dev
	$(BIN)/ruff check fedrl_cli tests scripts
	$(BIN)/ruff format --check fedrl_cli tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
