"""Fast-FedPG's objective in Theorem 2's terms: replicated heterogeneity, the entropy-regularised objective J_τ
(exact, optimal and sampled), the reward-to-go estimator, and starting at the optimum; with τ = 0 and Eq. (5)
every number stays what it was."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import run_into

# the last row of four small runs, recorded before J_τ, the reward-to-go estimator and replicated families existed
FROZEN = {
    "fastfedpg": ("algo=fastfedpg", 5.488053921140787, 1.6841782120408588, 0.44247882327922466, 1953),
    "fedavg_pg": ("algo=fedavg_pg", 5.499189189499891, 1.6730429436817547, 0.42510629509427295, 1575),
    "local_pg": ("algo=local_pg", 5.490635161113169, 1.6815969720684762, 0.42752999037531714, 1575),
}
SAMPLED = ("algo.rounds=5", "algo.batch_size=3", "algo.horizon=7", "n_agents=3", "seed=11", "progress=false")
EXACT = ("algo=fastfedpg", "algo.gradient=exact", "algo.rounds=5", "n_agents=4", "algo.lr=0.5", "progress=false")


def last_row(run_dir: Path) -> dict[str, str]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))[-1]


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_tau_zero_with_reinforce_is_bit_identical_to_before(tmp_path: Path, name: str) -> None:
    algo, objective, gap, grad_norm, samples = FROZEN[name]
    result, run_dir = run_into(tmp_path, name, algo, *SAMPLED)
    assert result.returncode == 0, result.stderr
    row = last_row(run_dir)
    assert (float(row["objective"]), float(row["gap"]), float(row["grad_norm"])) == (objective, gap, grad_norm)
    assert int(row["samples"]) == samples


def test_tau_zero_exact_gradients_are_bit_identical_to_before(tmp_path: Path) -> None:
    result, run_dir = run_into(tmp_path, "exact", *EXACT)
    assert result.returncode == 0, result.stderr
    row = last_row(run_dir)
    assert (float(row["objective"]), float(row["gap"]), float(row["grad_norm"])) == (
        6.514584430044717,
        0.42117005541485586,
        0.18939611508772783,
    )
