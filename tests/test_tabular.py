"""Exact evaluation and the sampled estimator of the tabular family against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from fedrl_cli.envs.tabular import TabularFamily, _cdf_columns, _inverse_sample, make_family, softmax


def central_differences(function, theta: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """∂f_i/∂θ_i[s,a] for a per-agent function f: (N, S, A) → (N,), one coordinate (all agents) at a time."""
    grad = np.zeros_like(theta)
    for index in np.ndindex(theta.shape[1:]):
        step = np.zeros_like(theta)
        step[(slice(None), *index)] = eps
        grad[(slice(None), *index)] = (function(theta + step) - function(theta - step)) / (2 * eps)
    return grad


def truncated_objective(family: TabularFamily, theta: np.ndarray, horizon: int, tau: float = 0.0) -> np.ndarray:
    """J_i^K(θ_i) = E[Σ_{t<K} γ^t (r_t − τ log π(a_t|s_t))], by propagating the state distribution K steps."""
    pi = softmax(theta)
    p_pi = np.einsum("nsa,nsat->nst", pi, family.transitions)
    r_pi = np.einsum("nsa,nsa->ns", pi, family.rewards - tau * np.log(pi))
    distribution = np.broadcast_to(family.initial, r_pi.shape).copy()
    total = np.zeros(theta.shape[0])
    for t in range(horizon):
        total += family.gamma**t * (distribution * r_pi).sum(axis=1)
        distribution = np.einsum("ns,nst->nt", distribution, p_pi)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_gradient_matches_finite_differences(seed: int) -> None:
    family = make_family(3, 4, 3, 0.85, 0.7, 0.5, mdp_seed=seed)
    theta = np.random.default_rng(seed).normal(scale=2.0, size=(3, 4, 3))
    numeric = central_differences(family.objective, theta)
    exact = family.gradient(theta)
    np.testing.assert_allclose(exact, numeric, atol=1e-7)
    assert np.abs(exact).max() > 1e-3  # not trivially zero


def test_objective_is_discounted_return_of_the_chain(small_family: TabularFamily) -> None:
    theta = np.random.default_rng(0).normal(size=(4, 5, 3))
    long_horizon = truncated_objective(small_family, theta, horizon=600)
    np.testing.assert_allclose(small_family.objective(theta), long_horizon, rtol=1e-12)


def test_proposition_1_shared_transitions_average_gradient() -> None:
    """With a shared kernel, mean_i ∇J_i(θ) is the gradient of the MDP with the mean reward."""
    family = make_family(5, 6, 3, 0.9, 0.9, 0.0, mdp_seed=4)
    theta = np.random.default_rng(1).normal(size=(6, 3))
    average_mdp = TabularFamily(
        rewards=family.rewards.mean(axis=0, keepdims=True),
        transitions=family.transitions[:1],
        initial=family.initial,
        gamma=family.gamma,
        shared_transitions=True,
    )
    per_agent = family.gradient(np.broadcast_to(theta, (5, 6, 3)))
    np.testing.assert_allclose(per_agent.mean(axis=0), average_mdp.gradient(theta[None])[0], atol=1e-12)
    # and not trivially: the agents' own gradients differ from the average
    assert np.abs(per_agent - per_agent.mean(axis=0)).max() > 1e-2


def test_optimal_objective_is_the_supremum_over_softmax_policies() -> None:
    family = make_family(3, 5, 3, 0.9, 0.6, 0.0, mdp_seed=2)
    optimum = family.optimal_objective()
    rng = np.random.default_rng(0)
    for _ in range(20):
        theta = np.broadcast_to(rng.normal(scale=3.0, size=(5, 3)), (3, 5, 3))
        assert family.objective(theta).mean() <= optimum + 1e-12
    # the greedy policy of the optimal Q, as a near-deterministic softmax, attains it
    rewards, transitions = family.rewards.mean(axis=0), family.transitions[0]
    values = np.zeros(5)
    for _ in range(2000):
        values = (rewards + family.gamma * transitions @ values).max(axis=1)
    greedy = (rewards + family.gamma * transitions @ values).argmax(axis=1)
    theta = np.broadcast_to(60.0 * np.eye(3)[greedy], (3, 5, 3))
    assert family.objective(theta).mean() == pytest.approx(optimum, abs=1e-9)


def test_heterogeneous_transitions_have_no_known_optimum(small_family: TabularFamily) -> None:
    assert small_family.optimal_objective() is None


def test_heterogeneity_zero_gives_identical_agents() -> None:
    family = make_family(3, 4, 2, 0.9, 0.0, 0.0, mdp_seed=0)
    assert np.array_equal(family.rewards[0], family.rewards[2])
    assert np.array_equal(family.transitions[0], family.transitions[1])
    mixed = make_family(3, 4, 2, 0.9, 1.0, 1.0, mdp_seed=0)
    assert not np.allclose(mixed.rewards[0], mixed.rewards[1])
    assert np.all((mixed.rewards >= 0) & (mixed.rewards <= 1))
    np.testing.assert_allclose(mixed.transitions.sum(axis=-1), 1.0)


@pytest.mark.parametrize("horizon", [1, 6])
def test_sampled_estimator_is_unbiased_for_the_truncated_gradient(small_family: TabularFamily, horizon: int) -> None:
    """The mean of many independent estimates sits within a few standard errors of ∇J^K, elementwise."""
    theta = np.random.default_rng(5).normal(size=(4, 5, 3))
    exact = central_differences(lambda th: truncated_objective(small_family, th, horizon), theta)
    rng = np.random.default_rng(11)
    estimates = np.stack([small_family.sample_gradient(theta, 200, horizon, rng) for _ in range(500)])
    standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    z = np.abs(estimates.mean(axis=0) - exact) / np.maximum(standard_error, 1e-12)
    assert z.max() < 4.5, f"largest deviation {z.max():.2f} standard errors"
    # the estimator resolves the gradient: the standard errors are small next to it
    assert standard_error.max() < 0.2 * np.abs(exact).max()


def test_sampled_estimator_differs_from_infinite_horizon_gradient_when_truncated(small_family) -> None:
    """A control: at horizon 2 the estimate is far from the untruncated gradient, so the test above can fail."""
    theta = np.random.default_rng(5).normal(size=(4, 5, 3))
    estimate = small_family.sample_gradient(theta, 40_000, 2, np.random.default_rng(0))
    assert np.abs(estimate - small_family.gradient(theta)).max() > 0.1


def test_inverse_sampling_picks_the_category_each_uniform_falls_in() -> None:
    probabilities = np.array([[0.2, 0.0, 0.5, 0.3], [0.0, 1.0, 0.0, 0.0]])
    columns = _cdf_columns(probabilities)
    rows = np.array([0, 0, 0, 0, 0, 1, 1])
    uniforms = np.array([0.0, 0.19, 0.2, 0.69, 0.99, 0.0, 0.999])
    np.testing.assert_array_equal(_inverse_sample(columns, rows, uniforms), [0, 0, 2, 2, 3, 1, 1])
