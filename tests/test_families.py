"""Tabular family designs (independent, balanced, realizable low rank) and the subspace critic's floor metrics."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_into

from fedrl_cli.envs.tabular import CriticMetrics, make_family, shared_subspace_fit, subspace_distance


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def uniform_values(family):
    """``V_i`` and ``μ_i`` of every agent under the uniform policy (θ = 0)."""
    return family.values_and_stationary(np.zeros(family.rewards.shape))


def balanced(n_agents: int, reward_heterogeneity=0.7, transition_heterogeneity=0.0, value_rank=None, n_states=6):
    return make_family(
        n_agents,
        n_states,
        3,
        0.9,
        reward_heterogeneity,
        transition_heterogeneity,
        mdp_seed=5,
        heterogeneity_design="balanced",
        value_rank=value_rank,
    )


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# ---- independent design: bit for bit what it was -------------------------------------------------------------


def test_independent_design_is_unchanged_bit_for_bit() -> None:
    """Numbers frozen from the code before the balanced and realizable designs existed."""
    family = make_family(4, 5, 3, 0.9, 0.5, 0.3, mdp_seed=7)
    assert family.rewards[1, 2, 0] == 0.005222085190503434
    assert family.rewards[3, 4, 1] == 0.6255577265723777
    assert family.transitions[2, 1, 2, 3] == 0.13907992238301778
    assert family.transitions[0, 3, 1, 0] == 0.15686620639914275
    assert digest(family.rewards) == "e6eeac032074cc9638b9d5d8d8a427a4b5c4fac66f8508416146aff8bb1ea3cd"
    assert digest(family.transitions) == "216ec7b271099ee3dfd265378db34e38b7ac8211cb4d95cd2521ee08404ddef8"
    theta = np.random.default_rng(0).normal(size=family.rewards.shape)
    expected = [4.825170478603612, 4.263886139684251, 5.225104025532652, 5.409746240376719]
    np.testing.assert_allclose(family.objective(theta), expected, rtol=1e-13)

    shared = make_family(3, 4, 2, 0.9, 0.8, 0.0, mdp_seed=0, heterogeneity_design="independent", value_rank=None)
    assert shared.rewards[1, 2, 0] == 0.43154769627658274 and shared.rewards[2, 3, 1] == 0.6834952145618871
    assert shared.transitions[2, 1, 1, 3] == 0.3917634565737072
    assert digest(shared.rewards) == "a2867e5333b93de464bfa3990207daa79618cf9de441b499785acad3e9347e83"
    assert digest(shared.transitions) == "c7a24515dae4be1e57a92b4ae86092347918c3f91f223916b9db026f6844bc3b"
    assert shared.optimal_objective() == pytest.approx(5.656251694458222, rel=1e-13)
    assert shared.transitions.strides[0] == 0  # still a broadcast view


# ---- balanced design ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_agents", [2, 4, 8])
@pytest.mark.parametrize(("h_r", "h_p"), [(0.7, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_balanced_mean_over_agents_is_the_common_mdp(n_agents: int, h_r: float, h_p: float) -> None:
    common = balanced(1, h_r, h_p)  # N = 1 is the common MDP itself
    family = balanced(n_agents, h_r, h_p)
    np.testing.assert_allclose(family.rewards.mean(axis=0), common.rewards[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(family.transitions.mean(axis=0), common.transitions[0], rtol=0, atol=1e-15)
    # and the agents do differ, in antithetic pairs around it
    assert np.abs(family.rewards[0] - family.rewards[1]).max() > 0.1
    pair_sums = family.rewards[::2] + family.rewards[1::2]
    np.testing.assert_allclose(pair_sums, np.broadcast_to(2 * common.rewards[0], pair_sums.shape), atol=1e-15)
    if h_p > 0:
        assert np.abs(family.transitions[0] - family.transitions[1]).max() > 0.05


@pytest.mark.parametrize(("h_r", "h_p"), [(1.0, 1.0), (0.5, 0.3), (0.0, 1.0)])
@pytest.mark.parametrize("value_rank", [None, 2])
def test_balanced_tables_are_valid(h_r: float, h_p: float, value_rank: int | None) -> None:
    family = balanced(8, h_r, h_p, value_rank)
    low = 0.0 if value_rank is None else -0.5  # centred realizable rewards lie in [−½, ½]
    assert family.rewards.min() >= low and family.rewards.max() <= low + 1
    assert family.transitions.min() >= 0
    np.testing.assert_allclose(family.transitions.sum(axis=-1), 1.0, atol=1e-14)
    assert family.shared_transitions is False


def test_balanced_shared_kernel_stays_a_shared_view() -> None:
    family = balanced(4, 0.7, 0.0)
    assert family.shared_transitions and family.transitions.strides[0] == 0
    assert family.optimal_objective() is not None


@pytest.mark.parametrize(("h_p", "value_rank"), [(0.0, None), (0.6, None), (0.6, 3)])
def test_balanced_families_are_prefix_consistent(h_p: float, value_rank: int | None) -> None:
    """The first N agents of the 8-agent family are the N-agent family, bit for bit."""
    largest = balanced(8, 0.7, h_p, value_rank)
    for n_agents in (2, 4, 6):
        family = balanced(n_agents, 0.7, h_p, value_rank)
        assert np.array_equal(family.rewards, largest.rewards[:n_agents])
        assert np.array_equal(family.transitions, largest.transitions[:n_agents])


def test_balanced_objective_and_optimum_are_the_same_for_every_n() -> None:
    families = {n: balanced(n) for n in (1, 2, 4, 8)}
    optima = {n: family.optimal_objective() for n, family in families.items()}
    assert all(optimum == pytest.approx(optima[1], rel=1e-14) for optimum in optima.values())
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta = rng.normal(scale=2.0, size=(6, 3))
        objectives = [f.objective(np.broadcast_to(theta, (n, 6, 3))).mean() for n, f in families.items()]
        np.testing.assert_allclose(objectives, objectives[0], rtol=1e-13)
        assert objectives[0] < optima[1]
    # the agents' own objectives differ: the heterogeneity is real
    assert np.ptp(families[8].objective(np.zeros((8, 6, 3)))) > 0.1


def test_balanced_through_the_cli_gives_one_objective_and_gap_for_every_n(tmp_path: Path) -> None:
    found = {}
    for n_agents in (1, 2, 4, 8):
        result, run_dir = run_into(
            tmp_path,
            f"n{n_agents}",
            f"n_agents={n_agents}",
            "env.heterogeneity_design=balanced",
            "env.reward_heterogeneity=0.7",
            "algo.rounds=1",
            "progress=false",
        )
        assert result.returncode == 0, result.stderr
        first = metrics_rows(run_dir)[0]
        assert first["round"] == "0"
        found[n_agents] = (float(first["objective"]), float(first["gap"]))
    # J(θ̄) = mean_i J_i(θ̄) is the common MDP's J up to rounding in that mean
    np.testing.assert_allclose(list(found.values()), [found[1]] * 4, rtol=1e-13)
    odd, _ = run_into(tmp_path, "odd", "n_agents=3", "env.heterogeneity_design=balanced", "algo.rounds=1")
    assert odd.returncode == 2
    assert len(odd.stderr.strip().splitlines()) == 1 and "n_agents=3 is not allowed" in odd.stderr


# ---- realizable low-rank families ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["centred", "offset"])
@pytest.mark.parametrize("design", ["independent", "nested", "balanced"])
@pytest.mark.parametrize(
    ("n_agents", "n_states", "value_rank", "h_p"), [(8, 10, 3, 0.5), (4, 6, 1, 0.5), (2, 6, 5, 0.0)]
)
def test_realizable_values_lie_in_one_common_subspace(level, design, n_agents, n_states, value_rank, h_p) -> None:
    family = make_family(
        n_agents, n_states, 3, 0.9, 0.8, h_p, 2, heterogeneity_design=design, value_rank=value_rank, value_level=level
    )
    basis = family.value_basis
    assert basis.shape == (n_states, value_rank)
    np.testing.assert_allclose(basis.T @ basis, np.eye(value_rank), atol=1e-12)
    if level == "offset":  # the constant vector is one direction, rewards in [0, 1]
        np.testing.assert_allclose(basis[:, 0], 1 / np.sqrt(n_states))
        low = 0.0
    else:  # every direction is orthogonal to it, rewards in [−½, ½]
        np.testing.assert_allclose(basis.T @ np.ones(n_states), 0.0, atol=1e-12)
        low = -0.5
    values, _ = uniform_values(family)
    assert np.abs(values - values @ basis @ basis.T).max() < 1e-10
    assert family.rewards.min() >= low and family.rewards.max() <= low + 1
    if value_rank > 1:  # heterogeneous values: the agents do not all share one value function
        assert np.abs(values - values.mean(axis=0)).max() > 0.01


@pytest.mark.parametrize("h_p", [0.0, 0.7])
def test_realizable_balanced_values_average_to_the_common_values(h_p: float) -> None:
    common, _ = uniform_values(balanced(1, 0.8, h_p, value_rank=3))
    values, _ = uniform_values(balanced(8, 0.8, h_p, value_rank=3))
    np.testing.assert_allclose(values.mean(axis=0), common[0], atol=1e-12)


def test_realizable_rewards_vary_across_actions_and_agents() -> None:
    family = balanced(4, 0.8, 0.5, value_rank=3)
    assert np.abs(family.rewards - family.rewards.mean(axis=2, keepdims=True)).max() > 0.05
    assert np.abs(family.rewards[0] - family.rewards[1]).max() > 0.05


# ---- the critic's floor and the subspace distance ------------------------------------------------------------


def floor_metrics(family, theta: np.ndarray, rank: int) -> dict[str, float]:
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(family.n_states, rank)))[0]
    return CriticMetrics(family)(theta, np.zeros(family.rewards.shape[:2]), basis)[0]


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("design", ["independent", "balanced"])
def test_floor_vanishes_on_realizable_families_at_the_uniform_policy(rank: int, design: str) -> None:
    family = make_family(8, 10, 3, 0.9, 0.5, 0.5, 1, heterogeneity_design=design, value_rank=3)
    metrics = floor_metrics(family, np.zeros((8, 10, 3)), rank)
    assert metrics["critic_floor"] <= 1e-8
    assert metrics["critic_excess"] == pytest.approx(metrics["critic_error"], abs=1e-8)


def test_floor_is_positive_on_unstructured_families() -> None:
    family = make_family(8, 5, 3, 0.9, 0.5, 0.5, mdp_seed=0)
    metrics = floor_metrics(family, np.zeros((8, 5, 3)), 3)
    assert metrics["critic_floor"] > 1e-3
    assert metrics["critic_excess"] == pytest.approx(metrics["critic_error"] - metrics["critic_floor"])


def test_alternating_least_squares_never_exceeds_the_svd_start() -> None:
    """The fit minimises the sum of squared weighted errors; every accepted step lowers it."""
    improved = 0
    for seed in range(6):
        family = make_family(8, 8, 3, 0.9, 0.7, 0.6, mdp_seed=seed)
        theta = np.random.default_rng(seed).normal(scale=2.0, size=(8, 8, 3))
        values, stationary = family.values_and_stationary(theta)
        start = shared_subspace_fit(np.eye(8), values, stationary, 2, iterations=0)
        fitted = shared_subspace_fit(np.eye(8), values, stationary, 2)
        assert (fitted**2).sum() <= (start**2).sum()
        improved += (fitted**2).sum() < (1 - 1e-6) * (start**2).sum()
    assert improved >= 3  # the iterations do something


def test_floor_with_equal_weights_is_the_exact_svd_floor() -> None:
    """When every μ_i is the same μ, the best shared subspace is exact: with Q̃ orthonormal spanning √μ ⊙ Φ and
    X = Q̃ᵀ(√μ ⊙ V), the best rank-r span is Q̃ times X's top-r left singular vectors."""
    rng = np.random.default_rng(3)
    n_agents, n_states, rank = 5, 7, 2
    features = rng.normal(size=(n_states, 4))
    values = rng.normal(size=(n_agents, n_states)) + rng.normal(size=(n_agents, 1)) * rng.normal(size=n_states)
    weights = rng.dirichlet(np.ones(n_states))
    root = np.sqrt(weights)[:, None]
    span = np.linalg.qr(root * features)[0]
    coordinates = span.T @ (root * values.T)
    top = np.linalg.svd(coordinates)[0][:, :rank]
    residuals = root * values.T - span @ top @ top.T @ coordinates  # √μ ⊙ (V_i − best fit), (S, N)
    exact = np.linalg.norm(residuals, axis=0)
    found = shared_subspace_fit(features, values, np.broadcast_to(weights, values.shape), rank)
    np.testing.assert_allclose(found, exact, rtol=1e-9, atol=1e-12)
    assert exact.min() > 0.1


def test_floor_matches_a_generic_optimiser() -> None:
    """Unequal weights: BFGS over the basis coordinates, heads eliminated, from several starts, finds no lower
    sum of squares than alternating least squares."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(4)
    n_agents, n_states, rank = 4, 5, 2
    values = rng.normal(size=(n_agents, n_states))
    stationary = rng.dirichlet(np.ones(n_states), size=n_agents)

    def loss(flat: np.ndarray) -> float:
        basis = flat.reshape(n_states, rank)
        root = np.sqrt(stationary)
        heads = np.linalg.pinv(root[..., None] * basis) @ (root * values)[..., None]
        return float((stationary * (values - (basis @ heads)[..., 0]) ** 2).sum())

    best = min(minimize(loss, rng.normal(size=n_states * rank), method="BFGS").fun for _ in range(8))
    found = (shared_subspace_fit(np.eye(n_states), values, stationary, rank) ** 2).sum()
    assert found == pytest.approx(best, rel=1e-6)


def test_floor_at_full_rank_is_each_agents_projection_onto_the_features() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(6, 3))
    values, stationary = rng.normal(size=(3, 6)), rng.dirichlet(np.ones(6), size=3)
    expected = []
    for v, mu in zip(values, stationary, strict=True):
        w = np.linalg.lstsq(np.sqrt(mu)[:, None] * features, np.sqrt(mu) * v, rcond=None)[0]
        expected.append(np.sqrt((mu * (v - features @ w) ** 2).sum()))
    np.testing.assert_allclose(shared_subspace_fit(features, values, stationary, 3), expected, rtol=1e-10)
    np.testing.assert_allclose(shared_subspace_fit(features, values, stationary, 5), expected, rtol=1e-10)


def test_subspace_distance_is_the_share_of_value_energy_outside_the_span() -> None:
    """By hand: span of (1, 1). Agent 1, V = (1, 0), μ = (¼, ¾): w = ¼, residual (¾, −¼), energy outside 3/16 of
    ¼. Agent 2, V = (0, 2), μ = (½, ½): w = 1, residual (−1, 1), 1 of 2. Share (3/16 + 1)/(¼ + 2) = 19/36."""
    values = np.array([[1.0, 0.0], [0.0, 2.0]])
    stationary = np.array([[0.25, 0.75], [0.5, 0.5]])
    assert subspace_distance(np.ones((2, 1)), values, stationary) == pytest.approx(19 / 36, rel=1e-12)
    assert subspace_distance(np.eye(2)[:, :1] + np.eye(2)[:, 1:], values, stationary) == pytest.approx(19 / 36)
    family = make_family(4, 6, 3, 0.9, 0.5, 0.5, 0, value_rank=2)
    values, stationary = uniform_values(family)
    holding = family.value_basis @ np.array([[1.0, 2.0], [-1.0, 0.5]])  # another basis of the values' span
    assert subspace_distance(holding, values, stationary) == pytest.approx(0, abs=1e-20)
    assert subspace_distance(holding[:, :1], values, stationary) > 1e-6


def test_diverged_policies_give_nan_metrics_not_an_error() -> None:
    family = make_family(2, 4, 3, 0.9, 0.5, 0.5, 0)
    metrics, per_agent = CriticMetrics(family)(np.full((2, 4, 3), np.nan), np.zeros((2, 4)), np.eye(4)[:, :2])
    assert np.isnan(metrics["critic_floor"]) and np.isnan(metrics["subspace_distance"])
    assert np.isnan(per_agent["critic_floor"]).all()


def test_policy_evaluation_through_the_cli_drives_the_excess_error_down(tmp_path: Path) -> None:
    result, run_dir = run_into(
        tmp_path,
        "evaluation",
        "algo=fedsubspace_ac",
        "env.value_rank=3",
        "env.value_level=offset",  # the level dominates the values: the error starts above 3
        "env.transition_heterogeneity=0.5",
        "algo.lr_actor=0",
        "algo.lr_basis=0.003",
        "algo.rounds=60",
        "progress=false",
    )
    assert result.returncode == 0, result.stderr
    rows = metrics_rows(run_dir)
    start, end = (float(rows[i]["critic_excess"]) for i in (0, -1))
    assert float(rows[0]["critic_floor"]) < 1e-8 and start > 3.0  # realizable: all of the error is excess
    assert end < 0.1 * start
    assert float(rows[-1]["subspace_distance"]) < 0.01 < float(rows[0]["subspace_distance"])
    header = (run_dir / "agent_metrics.csv").read_text().splitlines()[0]
    assert header == (
        "round,agent,critic_error,critic_subspace_error,critic_head_error,objective,grad_norm,critic_floor"
    )
