"""Fast-FedPG, FedAvg PG and local PG: their equations, their accounting and the paper's qualitative claims."""

from __future__ import annotations

import numpy as np
import pytest

from fedrl_cli.algos.common import GradientOracle
from fedrl_cli.algos.fastfedpg import FastFedPG
from fedrl_cli.algos.fedavg_pg import FedAvgPG
from fedrl_cli.algos.local_pg import LocalPG
from fedrl_cli.envs.tabular import ExactMetrics, TabularFamily, make_family


def build(
    cls,
    family: TabularFamily,
    local_steps: int,
    lr: float,
    gradient: str = "exact",
    seed: int = 0,
    batch_size: int = 8,
    horizon: int = 6,
    global_lr: float = 1.0,
):
    oracle = GradientOracle(family, gradient, batch_size, horizon, np.random.default_rng(seed))
    theta0 = np.zeros((family.n_states, family.n_actions))
    common = dict(oracle=oracle, n_agents=family.n_agents, local_steps=local_steps, lr=lr)
    if cls is LocalPG:
        return cls(theta0=theta0, **common)
    return cls(theta_bar=theta0, global_lr=global_lr, **common)


def gaps(algorithm, family: TabularFamily, rounds: int, at: tuple[int, ...]) -> dict[int, float]:
    metrics = ExactMetrics(family)
    found = {}
    for t in range(1, rounds + 1):
        algorithm.round()
        if t in at:
            found[t] = metrics(algorithm.policies, algorithm.agent_params)[0]["gap"]
    return found


def test_fastfedpg_removes_the_heterogeneity_bias_that_fedavg_keeps() -> None:
    """Exact gradients, reward heterogeneity 0.9, H = 10: Fast-FedPG's gap keeps falling towards 0 while
    FedAvg PG's plateaus, and ends at least 5× larger (Fast-FedPG paper, Theorem 1 vs. FedAvg's bias)."""
    family = make_family(4, 5, 3, 0.9, 0.9, 0.0, mdp_seed=0)
    fast = gaps(build(FastFedPG, family, 10, 1.0), family, 200, at=(100, 200))
    fedavg = gaps(build(FedAvgPG, family, 10, 1.0), family, 200, at=(100, 200))
    assert fast[200] < 0.7 * fast[100]  # still falling
    assert fedavg[200] > 0.95 * fedavg[100]  # stuck on its plateau
    assert fedavg[200] > 5 * fast[200]
    assert fedavg[200] > 0.05  # the bias is material, not a rounding effect


def test_fedavg_bias_grows_with_local_steps() -> None:
    family = make_family(4, 5, 3, 0.9, 0.9, 0.0, mdp_seed=0)
    plateau = [gaps(build(FedAvgPG, family, h, 0.5), family, 300, at=(300,))[300] for h in (2, 5, 10)]
    assert plateau[0] < plateau[1] < plateau[2]


def test_with_one_local_step_fastfedpg_and_fedavg_coincide() -> None:
    family = make_family(4, 5, 3, 0.9, 0.9, 0.3, mdp_seed=1)
    fast, fedavg = build(FastFedPG, family, 1, 0.7), build(FedAvgPG, family, 1, 0.7)
    for _ in range(30):
        fast.round()
        fedavg.round()
    np.testing.assert_allclose(fast.theta_bar, fedavg.theta_bar, atol=1e-12)
    assert np.abs(fast.theta_bar).max() > 0.1


def test_identical_agents_make_all_three_algorithms_one_policy_gradient() -> None:
    """Without heterogeneity the correction vanishes and averaging changes nothing: all equal centralised PG."""
    family = make_family(3, 4, 3, 0.9, 0.0, 0.0, mdp_seed=2)
    runs = [build(cls, family, 4, 0.5) for cls in (FastFedPG, FedAvgPG, LocalPG)]
    for _ in range(10):
        for algorithm in runs:
            algorithm.round()
    reference = np.zeros((4, 3))
    for _ in range(40):
        reference = reference + 0.5 * family.gradient(reference[None])[0]
    for algorithm in runs:
        np.testing.assert_allclose(algorithm.agent_params, np.broadcast_to(reference, (3, 4, 3)), atol=1e-10)


def test_fastfedpg_round_follows_equations_6_and_7() -> None:
    """One round with exact gradients, written out by hand, with a server step size α_g ≠ 1."""
    family = make_family(3, 4, 2, 0.8, 0.7, 0.5, mdp_seed=5)
    theta_bar = np.random.default_rng(0).normal(size=(4, 2))
    oracle = GradientOracle(family, "exact", 1, 1, np.random.default_rng(0))
    algorithm = FastFedPG(oracle=oracle, theta_bar=theta_bar, n_agents=3, local_steps=3, lr=0.4, global_lr=0.6)
    algorithm.round()

    grad = family.gradient
    anchor_local = grad(np.broadcast_to(theta_bar, (3, 4, 2)))
    anchor_global = anchor_local.mean(axis=0)
    local = np.broadcast_to(theta_bar, (3, 4, 2)).copy()
    for _ in range(3):
        local = local + 0.4 * (grad(local) - anchor_local + anchor_global)
    expected = theta_bar + 0.6 * (local - theta_bar).mean(axis=0)
    np.testing.assert_allclose(algorithm.theta_bar, expected, atol=1e-14)
    # the stored corrections are the gradients at the new server point
    np.testing.assert_allclose(algorithm.local_gradient_at_server, grad(np.broadcast_to(expected, (3, 4, 2))))
    # the agents' own parameters are their end-of-round iterates θ_{i,H}, before averaging
    np.testing.assert_allclose(algorithm.agent_params, local, atol=1e-14)


def test_metrics_at_the_agents_own_iterates_and_their_drift() -> None:
    """local_objective is mean_i J_i(θ_{i,H}) and drift mean_i ‖θ_{i,H} − mean_j θ_{j,H}‖, by hand; both differ
    from the server-point metrics once the agents have drifted."""
    family = make_family(3, 4, 2, 0.8, 0.9, 0.0, mdp_seed=5)
    algorithm = build(FedAvgPG, family, 5, 0.5)
    algorithm.round()
    local = algorithm.agent_params
    metrics = ExactMetrics(family)(algorithm.policies, local)[0]
    by_hand = np.mean([family.objective(np.broadcast_to(local[i], (3, 4, 2)))[i] for i in range(3)])
    drift = np.mean([np.linalg.norm(local[i] - local.mean(axis=0)) for i in range(3)])
    assert metrics["local_objective"] == pytest.approx(by_hand, rel=1e-12)
    assert metrics["drift"] == pytest.approx(drift, rel=1e-12)
    assert metrics["drift"] > 0.01
    assert abs(metrics["local_objective"] - metrics["objective"]) > 1e-3


def test_local_pg_is_measured_at_the_agents_policies_not_their_mean() -> None:
    """local PG's objective is mean_i J(θ_i), J the global objective, and its gap J* minus that."""
    family = make_family(3, 4, 2, 0.8, 1.0, 0.0, mdp_seed=6)
    algorithm = build(LocalPG, family, 5, 1.0)
    for _ in range(5):
        algorithm.round()
    metrics = ExactMetrics(family)(algorithm.policies, algorithm.agent_params)[0]
    theta = algorithm.agent_params
    by_hand = np.mean([family.objective(np.broadcast_to(theta[i], (3, 4, 2))).mean() for i in range(3)])
    at_mean = family.objective(np.broadcast_to(theta.mean(axis=0), (3, 4, 2))).mean()
    assert metrics["objective"] == pytest.approx(by_hand, rel=1e-12)
    assert metrics["gap"] == pytest.approx(family.optimal_objective() - by_hand, rel=1e-12)
    assert abs(by_hand - at_mean) > 1e-3  # the mean of the parameters is another policy


def test_sample_and_communication_accounting() -> None:
    family = make_family(3, 4, 2, 0.9, 0.5, 0.0, mdp_seed=0)
    n, d, h, batch, horizon, rounds = 3, 8, 4, 5, 7, 6
    per_estimate = n * batch * horizon
    fast = build(FastFedPG, family, h, 0.1, "sampled", batch_size=batch, horizon=horizon)
    fedavg = build(FedAvgPG, family, h, 0.1, "sampled", batch_size=batch, horizon=horizon)
    local = build(LocalPG, family, h, 0.1, "sampled", batch_size=batch, horizon=horizon)
    # Fast-FedPG starts with ĝ(θ̄⁰): N·d up and N·d down
    assert (fast.oracle.samples, fast.channel.floats) == (per_estimate, 2 * n * d)
    for _ in range(rounds):
        for algorithm in (fast, fedavg, local):
            algorithm.round()
    # per round: H local estimates + one at θ̄; deltas up, θ̄ down, ĝ_i(θ̄) up, ĝ(θ̄) down
    assert fast.oracle.samples == per_estimate * (1 + rounds * (h + 1))
    assert fast.channel.floats == 2 * n * d + rounds * 4 * n * d
    assert fedavg.oracle.samples == per_estimate * rounds * h
    assert fedavg.channel.floats == rounds * 2 * n * d
    assert local.oracle.samples == per_estimate * rounds * h
    assert local.channel.floats == 0


@pytest.mark.parametrize("cls", [FastFedPG, FedAvgPG, LocalPG])
def test_sampled_runs_improve_the_objective_and_are_reproducible(cls) -> None:
    family = make_family(4, 5, 3, 0.9, 0.5, 0.0, mdp_seed=0)
    metrics = ExactMetrics(family)
    finals = []
    for _ in range(2):
        algorithm = build(cls, family, 5, 0.5, "sampled", seed=3, batch_size=20, horizon=20)
        start = metrics(algorithm.policies, algorithm.agent_params)[0]
        for _ in range(40):
            algorithm.round()
        finals.append(metrics(algorithm.policies, algorithm.agent_params)[0])
    assert finals[0] == finals[1]
    assert finals[0]["local_objective"] > start["local_objective"] + 0.3


def test_local_pg_agents_optimise_their_own_objectives() -> None:
    """Alone, each agent beats the shared policy on its own MDP, as the federated point cannot."""
    family = make_family(4, 5, 3, 0.9, 1.0, 0.0, mdp_seed=0)
    metrics = ExactMetrics(family)
    local, fast = build(LocalPG, family, 5, 1.0), build(FastFedPG, family, 5, 1.0)
    for _ in range(100):
        local.round()
        fast.round()
    local_metrics = metrics(local.policies, local.agent_params)[0]
    fast_metrics = metrics(fast.policies, fast.agent_params)[0]
    assert local_metrics["local_objective"] > fast_metrics["local_objective"] + 0.1
    assert fast_metrics["objective"] > local_metrics["objective"]
