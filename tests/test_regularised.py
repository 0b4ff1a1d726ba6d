"""Fast-FedPG's objective in Theorem 2's terms: replicated heterogeneity, the entropy-regularised objective J_τ
(exact, optimal and sampled), the reward-to-go estimator, and starting at the optimum; with τ = 0 and Eq. (5)
every number stays what it was."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import run_into
from scipy.optimize import minimize
from test_tabular import central_differences, truncated_objective

from fedrl_cli.envs.tabular import TabularFamily, make_family, softmax

# the last row of four small runs, recorded before J_τ, the reward-to-go estimator and replicated families existed
# (compared to 1e-12: numpy's SIMD kernels round the last bit differently on other processors, while any change of
# the estimator or the objective moves every digit)
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
    found = (float(row["objective"]), float(row["gap"]), float(row["grad_norm"]))
    assert found == pytest.approx((objective, gap, grad_norm), rel=1e-12, abs=0)
    assert int(row["samples"]) == samples


def test_tau_zero_exact_gradients_are_bit_identical_to_before(tmp_path: Path) -> None:
    result, run_dir = run_into(tmp_path, "exact", *EXACT)
    assert result.returncode == 0, result.stderr
    row = last_row(run_dir)
    found = (float(row["objective"]), float(row["gap"]), float(row["grad_norm"]))
    assert found == pytest.approx((6.514584430044717, 0.42117005541485586, 0.18939611508772783), rel=1e-12, abs=0)


# --- the entropy-regularised objective ---------------------------------------------------------------------------

TAU = 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_regularised_objective_is_the_soft_return_and_its_gradient_matches_finite_differences(seed: int) -> None:
    family = make_family(3, 4, 3, 0.85, 0.7, 0.5, mdp_seed=seed)
    theta = np.random.default_rng(seed).normal(scale=2.0, size=(3, 4, 3))
    long_run = truncated_objective(family, theta, 400, TAU)
    np.testing.assert_allclose(family.objective(theta, TAU), long_run, atol=1e-10)
    assert (family.objective(theta, TAU) > family.objective(theta)).all()  # the entropy bonus is positive
    numeric = central_differences(lambda th: family.objective(th, TAU), theta)
    np.testing.assert_allclose(family.gradient(theta, TAU), numeric, atol=1e-7)


def test_soft_value_iteration_finds_the_maximum_of_the_regularised_objective() -> None:
    family = make_family(4, 4, 3, 0.8, 0.9, 0.0, mdp_seed=3)
    optimum, theta_star = family.soft_optimum(TAU)
    average = TabularFamily(family.rewards.mean(axis=0)[None], family.transitions[:1], family.initial, 0.8, True)

    def negative(flat: np.ndarray) -> float:
        return -float(average.objective(flat.reshape(1, 4, 3), TAU)[0])

    def negative_gradient(flat: np.ndarray) -> np.ndarray:
        return -average.gradient(flat.reshape(1, 4, 3), TAU).reshape(-1)

    found = minimize(negative, np.zeros(12), jac=negative_gradient, method="BFGS", options={"gtol": 1e-12})
    assert -found.fun == pytest.approx(optimum, abs=1e-9)
    best = found.x.reshape(4, 3)
    np.testing.assert_allclose(softmax(best), softmax(theta_star), atol=1e-5)
    # the agents' mean objective at θ*_τ is J*_τ, and its gradient vanishes there
    stacked = np.broadcast_to(theta_star, (4, 4, 3))
    assert family.objective(stacked, TAU).mean() == pytest.approx(optimum, abs=1e-12)
    assert np.abs(family.gradient(stacked, TAU).mean(axis=0)).max() < 1e-10
    assert make_family(2, 4, 3, 0.8, 0.5, 0.3, mdp_seed=3).soft_optimum(TAU) is None  # heterogeneous kernels


@pytest.mark.parametrize("estimator", ["reinforce", "reward_to_go"])
def test_both_estimators_are_unbiased_for_the_truncated_regularised_gradient(estimator: str) -> None:
    family = make_family(4, 5, 3, 0.9, 0.8, 0.4, mdp_seed=3)
    theta = np.random.default_rng(5).normal(size=(4, 5, 3))
    horizon = 6
    exact = central_differences(lambda th: truncated_objective(family, th, horizon, TAU), theta)
    rng = np.random.default_rng(11)
    estimates = np.stack([family.sample_gradient(theta, 200, horizon, rng, TAU, estimator) for _ in range(400)])
    standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    z = np.abs(estimates.mean(axis=0) - exact) / np.maximum(standard_error, 1e-12)
    assert z.max() < 4.5, f"largest deviation {z.max():.2f} standard errors"
    assert standard_error.max() < 0.2 * np.abs(exact).max()


def test_reward_to_go_has_less_variance_than_reinforce_at_the_optimum() -> None:
    family = make_family(2, 5, 3, 0.9, 0.9, 0.0, mdp_seed=1)
    _, theta_star = family.soft_optimum(0.05)
    theta = np.broadcast_to(theta_star, (2, 5, 3)).copy()
    variances = {}
    for estimator in ("reinforce", "reward_to_go"):
        rng = np.random.default_rng(0)  # the same trajectories for both
        draws = np.stack([family.sample_gradient(theta, 1, 30, rng, 0.05, estimator) for _ in range(3000)])
        variances[estimator] = draws.var(axis=0).sum()
    assert variances["reward_to_go"] < 0.5 * variances["reinforce"], variances


# --- replicated heterogeneity ------------------------------------------------------------------------------------


def test_replicated_families_share_the_average_mdp_for_every_multiple_of_m() -> None:
    families = [make_family(n, 5, 3, 0.9, 0.9, 0.0, 4, "replicated", distinct_mdps=2) for n in (2, 4, 8)]
    independent = make_family(2, 5, 3, 0.9, 0.9, 0.0, 4, "independent")
    np.testing.assert_array_equal(families[0].rewards, independent.rewards)  # N = m is the independent family
    for family in families:
        np.testing.assert_array_equal(family.rewards, independent.rewards[np.arange(family.n_agents) % 2])
        assert family.optimal_objective() == pytest.approx(independent.optimal_objective(), abs=1e-12)
        optimum, theta = family.soft_optimum(TAU)
        reference, reference_theta = independent.soft_optimum(TAU)
        assert optimum == pytest.approx(reference, abs=1e-12)
        np.testing.assert_allclose(theta, reference_theta, atol=1e-10)
    assert np.abs(independent.rewards[0] - independent.rewards[1]).max() > 0.3  # and the agents do differ
    heterogeneous = make_family(6, 4, 3, 0.9, 0.5, 0.5, 4, "replicated", distinct_mdps=3)
    np.testing.assert_array_equal(heterogeneous.transitions[3], heterogeneous.transitions[0])
    assert not np.array_equal(heterogeneous.transitions[1], heterogeneous.transitions[0])


def test_replicated_families_give_one_round_zero_gap_and_one_fedavg_bias_through_the_cli(tmp_path: Path) -> None:
    exact = ("algo=fedavg_pg", "algo.gradient=exact", "algo.lr=0.5", "algo.rounds=300", "progress=false")
    family = ("env.heterogeneity_design=replicated", "env.distinct_mdps=2", "env.reward_heterogeneity=0.9")
    rows = {}
    for n in (2, 4, 8):
        result, run_dir = run_into(tmp_path, f"n{n}", *exact, *family, "algo.entropy_coef=0.1", f"n_agents={n}")
        assert result.returncode == 0, result.stderr
        rows[n] = list(csv.DictReader((run_dir / "metrics.csv").open()))
    first, final = ({n: float(r[i]["gap"]) for n, r in rows.items()} for i in (0, -1))
    assert max(first.values()) - min(first.values()) < 1e-12  # the same J*_τ and the same start for every N
    assert max(final.values()) - min(final.values()) < 1e-9 and min(final.values()) > 1e-4  # one bias, not 0
    assert float(rows[8][-1]["gradient_domination"]) > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("env.heterogeneity_design=replicated", "env.distinct_mdps=3", "n_agents=4"),
            "n_agents=4 is not allowed with env.heterogeneity_design=replicated and env.distinct_mdps=3: it must be "
            "a multiple of 3 (agent i gets MDP i mod 3)",
        ),
        (
            ("algo.init=optimum",),
            "algo.init=optimum is not allowed with algo.entropy_coef=0: the unregularised optimum θ* is at infinity "
            "(a deterministic policy); set algo.entropy_coef > 0",
        ),
        (
            ("algo.init=optimum", "algo.entropy_coef=0.1", "env.transition_heterogeneity=0.5"),
            "algo.init=optimum is not allowed with env.transition_heterogeneity=0.5: θ*_τ of the agents' mean "
            "objective is known only with a shared kernel (transition_heterogeneity=0)",
        ),
        (
            ("algo.estimator=gpomdp",),
            "algo.estimator='gpomdp' is not allowed: it must be one of reinforce, reward_to_go",
        ),
        (("algo.entropy_coef=-1",), "algo.entropy_coef=-1 is not allowed: it must be a finite number ≥ 0"),
    ],
)
def test_bad_regularised_settings_exit_2_in_one_line(tmp_path: Path, overrides: tuple[str, ...], message: str) -> None:
    result, _ = run_into(tmp_path, "run", *overrides, "progress=false")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"fedrl: error: {message}"]


def test_a_run_started_at_the_optimum_stays_near_it_with_exact_gradients(tmp_path: Path) -> None:
    result, run_dir = run_into(
        tmp_path, "opt", "algo.init=optimum", "algo.entropy_coef=0.1", "algo.gradient=exact", "algo.rounds=3"
    )
    assert result.returncode == 0, result.stderr
    gaps = [float(row["gap"]) for row in csv.DictReader((run_dir / "metrics.csv").open())]
    assert abs(gaps[0]) < 1e-9  # θ̄⁰ = θ*_τ: no gap
