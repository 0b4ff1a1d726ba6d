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

# the demo: Fast-FedPG against FedAvg PG on a replicated heterogeneous tabular family (2 MDPs with independent rewards;
# the average MDP and FedAvg's bias are the same for every N), entropy-regularised, two sweeps and their figures,
# about a minute and a half on 2 cores:
#   over N = 2, 4, 8, 16 with sampled gradients: convergence, speedup and the level over the last half of the rounds
#   vs agents (+sweep=demo_agents); over H = 1 … 40 with exact gradients: FedAvg's bias vs H (+sweep=demo_local_steps).
DEMO_DIR := outputs/demo
demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/fedrl run -m +sweep=demo_agents hydra.sweep.dir=$(DEMO_DIR)/agents $(ARGS)
	$(BIN)/fedrl run -m +sweep=demo_local_steps hydra.sweep.dir=$(DEMO_DIR)/local_steps $(ARGS)
	$(BIN)/fedrl plot $(DEMO_DIR)/agents --out $(DEMO_DIR)/plots/agents --window 0.5
	$(BIN)/fedrl plot $(DEMO_DIR)/local_steps --out $(DEMO_DIR)/plots/local_steps
	@echo "demo: figures and tables in $(DEMO_DIR)/plots/agents and $(DEMO_DIR)/plots/local_steps"

# two test processes (pytest-xdist): the tests are isolated (each in its own tmp_path); the Ray tests share one
# process (xdist_group "ray"), as they share a Ray instance
test: dev
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup $(ARGS)

bench: install
	$(BIN)/python scripts/bench_tabular.py
	$(BIN)/python scripts/bench_hopper.py
	$(BIN)/python scripts/bench_checkpoint.py
	$(BIN)/python scripts/bench_physics.py
	$(BIN)/python scripts/bench_subspace.py
	$(BIN)/python scripts/bench_sweeper.py

reproduce: install
	$(BIN)/fedrl reproduce fastfedpg $(ARGS)

reproduce-subspace: install
	$(BIN)/fedrl reproduce subspace $(ARGS)

lint: dev
	$(BIN)/ruff check fedrl_cli tests scripts
	$(BIN)/ruff format --check fedrl_cli tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
