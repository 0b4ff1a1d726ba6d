"""The README's measured numbers are generated from the committed data (scripts/readme_tables.py), and the
committed verdicts of the Fast-FedPG and subspace reproductions follow from the per-seed data beside them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from fedrl_cli.reproduce.fastfedpg_regularised import budget_claims, stationary_claims
from fedrl_cli.reproduce.hopper_data import run_rows
from fedrl_cli.reproduce.subspace_cause import KEYS
from fedrl_cli.reproduce.subspace_tabular import verdicts

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "reproduce_fastfedpg"


def readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_numbers_equal_what_the_committed_data_gives() -> None:
    module = readme_tables()
    readme = (ROOT / "README.md").read_text()
    assert module.render(readme, module.blocks()) == readme, "run scripts/readme_tables.py"


def test_committed_verdicts_follow_from_the_per_seed_data() -> None:
    committed = pd.read_csv(DATA / "claims.csv").set_index("claim")
    claims, premises, _ = stationary_claims(pd.read_csv(DATA / "stationary.csv"), pd.read_csv(DATA / "floors.csv"))
    budget = pd.read_csv(DATA / "budget.csv")
    speedup = pd.read_csv(DATA / "budget_plots" / "speedup.csv")
    claims += budget_claims(budget, speedup)[0]
    for claim, held, measured in claims + premises:
        assert bool(committed.loc[claim, "held"]) == held, claim
        assert committed.loc[claim, "measured"] == measured, claim


def test_committed_subspace_verdicts_follow_from_the_per_seed_data() -> None:
    folder = ROOT / "docs" / "reproduce_subspace"
    committed = pd.read_csv(folder / "tabular_claims.csv").set_index("claim")
    claims, checks, secondary = verdicts(
        pd.read_csv(folder / "tabular_stationary_replicated.csv"),
        pd.read_csv(folder / "tabular_stationary.csv"),
        pd.read_csv(folder / "tabular_head_floor.csv"),
        pd.read_csv(folder / "tabular_actor_critic.csv"),
        pd.read_csv(folder / "tabular_random_start_subspace_angle" / "speedup.csv"),
    )
    assert len(committed) == len(claims) + len(checks) + len(secondary)
    for claim, held, measured in claims + checks + secondary:
        assert bool(committed.loc[claim, "held"]) == held, claim
        assert committed.loc[claim, "measured"] == measured, claim


def test_the_committed_cause_table_follows_from_every_evaluation() -> None:
    """cause.csv (the README's cause table) is what the committed evaluations of the cause study give."""
    data = ROOT / "docs" / "reproduce_subspace"
    found = run_rows(pd.read_csv(data / "cause_evaluations.csv"), KEYS)
    committed = pd.read_csv(data / "cause.csv")
    pd.testing.assert_frame_equal(found.reset_index(drop=True), committed, check_dtype=False)
