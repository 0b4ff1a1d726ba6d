# fedrl — set-up and common tasks. On a fresh machine `make demo` and `make test` do everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch is installed first so that a CPU machine never pulls CUDA packages.
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: install dev demo test bench reproduce reproduce-subspace lint clean

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

# the default experiment, Fast-FedPG against FedAvg PG on a strongly heterogeneous tabular family with exact
# gradients and H = 1, 5, 10 local steps, then its figures (convergence, bias vs H, summary table)
DEMO_DIR := outputs/demo
demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/fedrl run -m algo=fastfedpg,fedavg_pg algo.local_steps=1,5,10 algo.gradient=exact \
		env.reward_heterogeneity=0.9 hydra.sweep.dir=$(DEMO_DIR) $(ARGS)
	$(BIN)/fedrl plot $(DEMO_DIR)
	@echo "demo: figures and tables in $(DEMO_DIR)/plots"

test: dev
	$(BIN)/python -m pytest -q $(ARGS)

bench: install
	$(BIN)/python scripts/bench_tabular.py
	$(BIN)/python scripts/bench_hopper.py
	$(BIN)/python scripts/bench_checkpoint.py

reproduce: install
	$(BIN)/python scripts/reproduce_fastfedpg.py $(ARGS)

reproduce-subspace: install
	$(BIN)/python scripts/reproduce_subspace.py $(ARGS)

lint: dev
	$(BIN)/ruff check fedrl_cli tests scripts
	$(BIN)/ruff format --check fedrl_cli tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
