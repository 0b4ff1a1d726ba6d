"""Tabular heterogeneous MDPs: N agents that share states and actions but not rewards or transitions.

Agent ``i`` sees rewards ``R_i = (1-h_r)·R_common + h_r·R_i^local`` in [0,1] and transitions
``P_i = (1-h_p)·P_common + h_p·P_i^local``; every agent starts from the uniform distribution ρ. Policies are
tabular softmax, ``π_θ(a|s) ∝ exp θ[s,a]``; every quantity carries the agent index on its leading axis, so
``θ`` is ``(N, S, A)`` and one call evaluates, differentiates or samples for all agents at once.

Exact evaluation follows the policy gradient theorem with the discounted occupancy ``d = ρᵀ(I − γP_π)^{-1}``;
the sampled estimator is Fast-FedPG's Eq. (5), the truncated REINFORCE gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def softmax(theta: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last (action) axis, stable for large logits."""
    z = np.exp(theta - theta.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _cdf_columns(probabilities: np.ndarray) -> list[np.ndarray]:
    """The cumulative distribution over the last axis as contiguous columns, each over all flattened rows;
    the last column (1) is left out."""
    cdf = np.cumsum(probabilities, axis=-1).reshape(-1, probabilities.shape[-1])
    return [np.ascontiguousarray(cdf[:, j]) for j in range(cdf.shape[1] - 1)]


def _inverse_sample(cdf_columns: list[np.ndarray], rows: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, one per entry of ``rows``: the category of row ``rows[k]`` that ``uniforms[k]`` falls
    in, i.e. how many of the row's cumulative values lie at or below it (one vectorised pass per category)."""
    drawn = np.zeros(rows.shape, dtype=np.intp)
    for column in cdf_columns:
        drawn += column.take(rows) <= uniforms
    return drawn


@dataclass
class TabularFamily:
    """A family of N tabular MDPs with common state and action spaces.

    rewards: ``(N, S, A)`` in [0, 1]; transitions: ``(N, S, A, S)`` (a broadcast view when shared);
    initial: ``(S,)``; ``shared_transitions`` is True when all agents have the same kernel.
    """

    rewards: np.ndarray
    transitions: np.ndarray
    initial: np.ndarray
    gamma: float
    shared_transitions: bool
    transition_cdf: list[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # next-state CDFs of every (agent, state, action) row, kept for inverse sampling
        self.transition_cdf = _cdf_columns(np.asarray(self.transitions, dtype=float))

    @property
    def n_agents(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_states(self) -> int:
        return self.rewards.shape[1]

    @property
    def n_actions(self) -> int:
        return self.rewards.shape[2]

    # ---- exact evaluation -------------------------------------------------------------------------------
    def _policy_evaluation(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """π, V_i^π, Q_i^π and the discounted occupancy d_i for per-agent parameters ``theta`` (..., N, S, A):
        agent i's policy evaluated on agent i's MDP, for any leading batch axes."""
        pi = softmax(theta)
        p_pi = np.einsum("...nsa,nsat->...nst", pi, self.transitions)
        r_pi = np.einsum("...nsa,nsa->...ns", pi, self.rewards)
        resolvent = np.eye(self.n_states) - self.gamma * p_pi
        values = np.linalg.solve(resolvent, r_pi[..., None])[..., 0]
        q_values = self.rewards + self.gamma * np.einsum("nsat,...nt->...nsa", self.transitions, values)
        rho = np.broadcast_to(self.initial, values.shape)[..., None]
        occupancy = np.linalg.solve(np.swapaxes(resolvent, -1, -2), rho)[..., 0]
        return pi, values, q_values, occupancy

    def objective(self, theta: np.ndarray) -> np.ndarray:
        """``J_i(θ_i) = ρᵀ V_i^{π_{θ_i}}`` for every agent: ``theta`` (..., N, S, A) → (..., N)."""
        _, values, _, _ = self._policy_evaluation(theta)
        return values @ self.initial

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Exact ``∇J_i(θ_i)`` (policy gradient theorem): ``∂J/∂θ[s,a] = d(s) π(a|s) (Q(s,a) − V(s))``."""
        return self.objective_and_gradient(theta)[1]

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both ``J_i(θ_i)`` (..., N) and ``∇J_i(θ_i)`` (..., N, S, A) from one policy evaluation."""
        pi, values, q_values, occupancy = self._policy_evaluation(theta)
        advantage = q_values - values[..., None]
        return values @ self.initial, occupancy[..., None] * pi * advantage

    def values_and_stationary(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``V_i^{π_i}`` (N, S) and the stationary distribution ``μ_i`` of each agent's chain under its policy
        (N, S), solving ``μ (I − P_π) = 0`` with ``Σ μ = 1``."""
        pi, values, _, _ = self._policy_evaluation(theta)
        p_pi = np.einsum("nsa,nsat->nst", pi, self.transitions)
        system = np.swapaxes(np.eye(self.n_states) - p_pi, 1, 2) + 1.0  # adds the row Σ μ = 1 to every row
        stationary = np.linalg.solve(system, np.ones((self.n_agents, self.n_states, 1)))[..., 0]
        return values, stationary

    def step(
        self, states: np.ndarray, action_probabilities: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One transition per agent from ``states`` (N,) with actions drawn from ``action_probabilities``
        (N, A): the actions, rewards and next states, each (N,)."""
        uniforms = rng.random((2, self.n_agents))
        actions = _inverse_sample(_cdf_columns(action_probabilities), np.arange(self.n_agents), uniforms[0])
        pairs = (np.arange(self.n_agents) * self.n_states + states) * self.n_actions + actions
        next_states = _inverse_sample(self.transition_cdf, pairs, uniforms[1])
        return actions, self.rewards.reshape(-1)[pairs], next_states

    def optimal_objective(self) -> float | None:
        """``J*`` of the average MDP, or None when transitions differ across agents.

        With a shared kernel the global objective ``J = mean_i J_i`` is the objective of the MDP with the mean
        reward (Fast-FedPG, Proposition 1), so its optimum is found exactly by policy iteration.
        """
        if not self.shared_transitions:
            return None
        rewards, transitions = self.rewards.mean(axis=0), self.transitions[0]
        states = np.arange(self.n_states)
        policy = np.zeros(self.n_states, dtype=int)
        for _ in range(10 * self.n_states * self.n_actions + 100):
            p_pi, r_pi = transitions[states, policy], rewards[states, policy]
            values = np.linalg.solve(np.eye(self.n_states) - self.gamma * p_pi, r_pi)
            q_values = rewards + self.gamma * transitions @ values
            improved = q_values.argmax(axis=1)
            # keep the current action on ties so that the iteration terminates
            stable = q_values[states, improved] <= q_values[states, policy] + 1e-12
            if stable.all():
                break
            policy = np.where(stable, policy, improved)
        return float(values @ self.initial)

    # ---- sampling ---------------------------------------------------------------------------------------
    def sample_gradient(self, theta: np.ndarray, batch_size: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
        """Truncated REINFORCE estimate, Fast-FedPG Eq. (5), for every agent at its own ``θ_i``.

        ``ĝ_i = (1/M) Σ_m [Σ_{t<K} γ^t r_t] · [Σ_{k<K} ∇log π(a_k|s_k)]`` over M = ``batch_size`` trajectories
        of K = ``horizon`` steps from ρ; unbiased for the gradient of ``J_i^K = E[Σ_{t<K} γ^t r_t]``.
        All N·M trajectories advance together, one vectorised step per time step. For softmax policies
        ``Σ_k ∇log π(a_k|s_k) = C − diag(C·1)·π`` with C the trajectory's (s, a) visit counts, so the estimate is
        one weighted count of visited pairs.
        """
        n, s_count, a_count = theta.shape
        pi = softmax(theta)
        policy_cdf = _cdf_columns(pi)
        flat_rewards = self.rewards.reshape(-1)
        chains = n * batch_size
        agent_rows = np.repeat(np.arange(n) * s_count, batch_size)
        uniforms = rng.random((horizon, 2, chains))
        states = _inverse_sample(_cdf_columns(self.initial), np.zeros(chains, dtype=np.intp), rng.random(chains))
        returns = np.zeros(chains)
        visited = np.empty((horizon, chains), dtype=np.int64)
        discount = 1.0
        for step in range(horizon):
            rows = agent_rows + states
            actions = _inverse_sample(policy_cdf, rows, uniforms[step, 0])
            pairs = rows * a_count + actions
            returns += discount * flat_rewards[pairs]
            visited[step] = pairs
            if step + 1 < horizon:
                states = _inverse_sample(self.transition_cdf, pairs, uniforms[step, 1])
            discount *= self.gamma
        weights = np.broadcast_to(returns, (horizon, chains)).reshape(-1)
        weighted = np.bincount(visited.reshape(-1), weights=weights, minlength=n * s_count * a_count)
        weighted = weighted.reshape(n, s_count, a_count)
        return (weighted - weighted.sum(axis=-1, keepdims=True) * pi) / batch_size


def _mix(common: np.ndarray, local: np.ndarray, heterogeneity: float) -> np.ndarray:
    return (1.0 - heterogeneity) * common + heterogeneity * local


def make_family(
    n_agents: int,
    n_states: int,
    n_actions: int,
    gamma: float,
    reward_heterogeneity: float,
    transition_heterogeneity: float,
    mdp_seed: int,
    heterogeneity_design: str = "independent",
    value_rank: int | None = None,
) -> TabularFamily:
    """Draw a heterogeneous family from ``mdp_seed``: uniform rewards, Dirichlet(1) next-state rows.

    The common tables are drawn first, so the same ``mdp_seed`` gives the same average structure whatever
    the heterogeneity levels; with ``transition_heterogeneity = 0`` the kernel is exactly shared.
    """
    rng = np.random.default_rng(mdp_seed)
    shape = (n_states, n_actions)
    common_rewards = rng.random(shape)
    common_transitions = rng.dirichlet(np.ones(n_states), size=shape)
    local_rewards = rng.random((n_agents, *shape))
    local_transitions = rng.dirichlet(np.ones(n_states), size=(n_agents, *shape))
    shared = transition_heterogeneity == 0
    if shared:
        transitions = np.broadcast_to(common_transitions, (n_agents, *shape, n_states))
    else:
        transitions = _mix(common_transitions, local_transitions, transition_heterogeneity)
    return TabularFamily(
        rewards=_mix(common_rewards, local_rewards, reward_heterogeneity),
        transitions=transitions,
        initial=np.full(n_states, 1.0 / n_states),
        gamma=gamma,
        shared_transitions=shared,
    )


class ExactMetrics:
    """Exact per-round metrics of a tabular run, from the model itself (no sampling).

    Global, at the policies the algorithm stands for (``policies`` (P, S, A): the server point θ̄ for the
    federated algorithms, every agent's own θ_i for local PG, which has no common policy), averaged over them:
    ``objective`` mean_p J(θ_p) with J = mean_i J_i, ``gap`` J* − objective (None when J* is unknown, i.e.
    transitions differ), ``grad_norm`` mean_p ‖∇J(θ_p)‖. At the agents' own parameters θ_i (the end-of-round
    iterates θ_{i,H}, before the server averages them): ``local_objective`` mean_i J_i(θ_i) and ``drift``
    mean_i ‖θ_i − mean_j θ_j‖, the client drift that Fast-FedPG's correction counters. Per agent:
    ``objective`` J_i(θ_i) and ``grad_norm`` ‖∇J_i(θ_i)‖.
    """

    def __init__(self, family: TabularFamily) -> None:
        self.family = family
        self.optimum = family.optimal_objective()

    def __call__(
        self, policies: np.ndarray, agent_params: np.ndarray
    ) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
        n = self.family.n_agents
        # every policy p played by every agent i: (P, N, S, A) → J_i(θ_p) (P, N), ∇J_i(θ_p) (P, N, S, A)
        global_values, global_gradients = self.family.objective_and_gradient(
            np.broadcast_to(policies[:, None], (policies.shape[0], n, *policies.shape[1:]))
        )
        objective = float(global_values.mean())
        global_norms = np.linalg.norm(global_gradients.mean(axis=1).reshape(policies.shape[0], -1), axis=1)
        agent_values, agent_gradients = self.family.objective_and_gradient(agent_params)
        spread = (agent_params - agent_params.mean(axis=0)).reshape(n, -1)
        metrics = {
            "objective": objective,
            "gap": None if self.optimum is None else self.optimum - objective,
            "grad_norm": float(global_norms.mean()),
            "local_objective": float(agent_values.mean()),
            "drift": float(np.linalg.norm(spread, axis=1).mean()),
        }
        per_agent = {
            "objective": agent_values,
            "grad_norm": np.linalg.norm(agent_gradients.reshape(n, -1), axis=1),
        }
        return metrics, per_agent


def subspace_distance(basis: np.ndarray, vectors: np.ndarray, rank: int) -> float:
    """Sine of the largest principal angle between the best rank-k subspace of ``vectors`` (S, N) (its top
    k = min(rank, N, S) left singular vectors) and the span of ``basis`` (S, r): 0 when the span contains it."""
    k = min(rank, *vectors.shape)
    top = np.linalg.svd(vectors, full_matrices=False)[0][:, :k]
    q, _ = np.linalg.qr(basis)
    return float(np.linalg.norm(top - q @ (q.T @ top), ord=2))


class CriticMetrics:
    """Exact metrics of per-agent actor-critic learners (subspace actor-critic), from the tabular model.

    ``critic_error``: mean over agents of ``‖V̂_i − V_i^{π_i}‖_{μ_i}``, the error of the agent's value estimate
    weighted by its chain's stationary distribution; ``grad_norm``: mean of ``‖∇J_i(θ_i)‖``; ``objective``:
    mean of ``J_i(θ_i)``; ``subspace_distance``: :func:`subspace_distance` between the span of ``Φ B`` and the
    agents' true value functions. Per agent: ``critic_error``, ``objective``, ``grad_norm``.
    """

    def __init__(self, family: TabularFamily) -> None:
        self.family = family

    def __call__(
        self, actors: np.ndarray, estimates: np.ndarray, feature_basis: np.ndarray
    ) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
        values, stationary = self.family.values_and_stationary(actors)
        objective, gradient = self.family.objective_and_gradient(actors)
        errors = np.sqrt((stationary * (estimates - values) ** 2).sum(axis=1))
        grad_norms = np.linalg.norm(gradient.reshape(self.family.n_agents, -1), axis=1)
        metrics = {
            "critic_error": float(errors.mean()),
            "grad_norm": float(grad_norms.mean()),
            "objective": float(objective.mean()),
            "subspace_distance": subspace_distance(feature_basis, values.T, feature_basis.shape[1]),
        }
        return metrics, {"critic_error": errors, "objective": objective, "grad_norm": grad_norms}
