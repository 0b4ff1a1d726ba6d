"""Tabular heterogeneous MDPs: N agents that share states and actions but not rewards or transitions.

Agent ``i`` sees rewards ``R_i = (1-h_r)·R_common + h_r·R_i^local`` in [0,1] and transitions
``P_i = (1-h_p)·P_common + h_p·P_i^local`` (the independent design; :func:`make_family` also builds balanced and
realizable low-rank families); every agent starts from the uniform distribution ρ. Policies are
tabular softmax, ``π_θ(a|s) ∝ exp θ[s,a]``; every quantity carries the agent index on its leading axis, so
``θ`` is ``(N, S, A)`` and one call evaluates, differentiates or samples for all agents at once.

Exact evaluation follows the policy gradient theorem with the discounted occupancy ``d = ρᵀ(I − γP_π)^{-1}``;
the sampled estimator is Fast-FedPG's Eq. (5), the truncated REINFORCE gradient, or its reward-to-go form. With an
entropy coefficient τ > 0 every quantity is the entropy-regularised one, ``J_τ(θ) = E[Σ_t γ^t (r_t − τ log
π(a_t|s_t))]`` (Mei et al., 2020), whose optimum θ*_τ is finite and found by soft value iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def softmax(theta: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last (action) axis, stable for large logits."""
    z = np.exp(theta - theta.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def log_softmax(theta: np.ndarray) -> np.ndarray:
    """``log π(a|s)`` of the softmax policy, over the last (action) axis, without forming π."""
    shifted = theta - theta.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


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
    initial: ``(S,)``; ``shared_transitions`` is True when all agents have the same kernel; ``value_basis``
    ``(S, r)``: for a realizable family, orthonormal columns spanning every agent's value under the uniform policy.
    """

    rewards: np.ndarray
    transitions: np.ndarray
    initial: np.ndarray
    gamma: float
    shared_transitions: bool
    value_basis: np.ndarray | None = None
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
    def _policy_evaluation(self, theta: np.ndarray, entropy_coef: float = 0.0) -> tuple[np.ndarray, ...]:
        """π, V_i^π, Q_i^π and the discounted occupancy d_i for per-agent parameters ``theta`` (..., N, S, A):
        agent i's policy evaluated on agent i's MDP, for any leading batch axes. With ``entropy_coef`` τ > 0 the
        values are the soft ones, for the rewards ``r(s,a) − τ log π(a|s)``, and ``Q(s,a) = r(s,a) + γ P V``."""
        pi = softmax(theta)
        p_pi = np.einsum("...nsa,nsat->...nst", pi, self.transitions)
        if entropy_coef:
            r_pi = np.einsum("...nsa,...nsa->...ns", pi, self.rewards - entropy_coef * log_softmax(theta))
        else:
            r_pi = np.einsum("...nsa,nsa->...ns", pi, self.rewards)
        resolvent = np.eye(self.n_states) - self.gamma * p_pi
        values = np.linalg.solve(resolvent, r_pi[..., None])[..., 0]
        q_values = self.rewards + self.gamma * np.einsum("nsat,...nt->...nsa", self.transitions, values)
        rho = np.broadcast_to(self.initial, values.shape)[..., None]
        occupancy = np.linalg.solve(np.swapaxes(resolvent, -1, -2), rho)[..., 0]
        return pi, values, q_values, occupancy

    def objective(self, theta: np.ndarray, entropy_coef: float = 0.0) -> np.ndarray:
        """``J_i(θ_i) = ρᵀ V_i^{π_{θ_i}}`` (``J_τ`` with ``entropy_coef`` τ) for every agent: (..., N, S, A) →
        (..., N)."""
        _, values, _, _ = self._policy_evaluation(theta, entropy_coef)
        return values @ self.initial

    def gradient(self, theta: np.ndarray, entropy_coef: float = 0.0) -> np.ndarray:
        """Exact ``∇J_i(θ_i)`` (policy gradient theorem): ``∂J/∂θ[s,a] = d(s) π(a|s) (Q(s,a) − V(s))``; with τ > 0,
        ``d(s) π(a|s) (Q(s,a) − τ log π(a|s) − V(s))`` (Mei et al., 2020, Lemma 10)."""
        return self.objective_and_gradient(theta, entropy_coef)[1]

    def objective_and_gradient(self, theta: np.ndarray, entropy_coef: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Both ``J_i(θ_i)`` (..., N) and ``∇J_i(θ_i)`` (..., N, S, A) from one policy evaluation."""
        return self._objective_and_gradient(theta, entropy_coef, *self._policy_evaluation(theta, entropy_coef))

    def _objective_and_gradient(
        self, theta: np.ndarray, entropy_coef: float, *evaluated: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        pi, values, q_values, occupancy = evaluated
        advantage = q_values - values[..., None]
        if entropy_coef:
            advantage = advantage - entropy_coef * log_softmax(theta)
        return values @ self.initial, occupancy[..., None] * pi * advantage

    def values_and_stationary(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``V_i^{π_i}`` (N, S) and the stationary distribution ``μ_i`` of each agent's chain under its policy
        (N, S), solving ``μ (I − P_π) = 0`` with ``Σ μ = 1``."""
        return self.evaluate(theta)[:2]

    def evaluate(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``V_i^{π_i}`` and ``μ_i`` (:meth:`values_and_stationary`), ``J_i(θ_i)`` and ``∇J_i(θ_i)``
        (:meth:`objective_and_gradient`), from one policy evaluation, for per-agent ``theta`` (N, S, A)."""
        evaluated = self._policy_evaluation(theta)
        objective, gradient = self._objective_and_gradient(theta, 0.0, *evaluated)
        pi, values = evaluated[:2]
        p_pi = np.einsum("nsa,nsat->nst", pi, self.transitions)
        system = np.swapaxes(np.eye(self.n_states) - p_pi, 1, 2) + 1.0  # adds the row Σ μ = 1 to every row
        stationary = np.linalg.solve(system, np.ones((self.n_agents, self.n_states, 1)))[..., 0]
        return values, stationary, objective, gradient

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

    def soft_optimum(self, entropy_coef: float) -> tuple[float, np.ndarray] | None:
        """``(J*_τ, θ*_τ)`` of the average MDP for τ = ``entropy_coef`` > 0, or None when transitions differ.

        Soft value iteration ``V ← τ log Σ_a exp((r̄ + γ P V)/τ)``, a γ-contraction, to convergence; ``θ*_τ = Q*/τ``
        (centred per state) is the optimal softmax policy ``π* ∝ exp(Q*/τ)``, and ``J*_τ = J_τ(θ*_τ)`` is evaluated
        exactly, so the gap at θ*_τ is 0 to rounding. With a shared kernel ``mean_i J_τ,i`` is the average MDP's J_τ
        (the entropy term is the same for every agent)."""
        if not self.shared_transitions:
            return None
        rewards, transitions = self.rewards.mean(axis=0), self.transitions[0]
        values = np.zeros(self.n_states)
        for _ in range(100_000):
            q_values = rewards + self.gamma * transitions @ values
            top = q_values.max(axis=1)
            updated = top + entropy_coef * np.log(np.exp((q_values - top[:, None]) / entropy_coef).sum(axis=1))
            converged = np.abs(updated - values).max() <= 1e-14 * max(1.0, np.abs(updated).max())
            values = updated
            if converged:
                break
        theta = (rewards + self.gamma * transitions @ values) / entropy_coef
        theta = theta - theta.mean(axis=1, keepdims=True)
        average = TabularFamily(rewards[None], transitions[None], self.initial, self.gamma, True)
        return float(average.objective(theta[None], entropy_coef)[0]), theta

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
    def sample_gradient(
        self,
        theta: np.ndarray,
        batch_size: int,
        horizon: int,
        rng: np.random.Generator,
        entropy_coef: float = 0.0,
        estimator: str = "reinforce",
    ) -> np.ndarray:
        """Truncated policy-gradient estimate for every agent at its own ``θ_i``, from M = ``batch_size``
        trajectories of K = ``horizon`` steps from ρ, with rewards ``r̃_t = r_t − τ log π(a_t|s_t)`` (τ =
        ``entropy_coef``; the plain rewards at τ = 0).

        ``reinforce``, Fast-FedPG Eq. (5): ``ĝ_i = (1/M) Σ_m [Σ_{t<K} γ^t r̃_t] · [Σ_{k<K} ∇log π(a_k|s_k)]``.
        ``reward_to_go`` (G(PO)MDP): ``ĝ_i = (1/M) Σ_m Σ_{k<K} ∇log π(a_k|s_k) · Σ_{k≤t<K} γ^t r̃_t``, which drops
        the score terms' products with earlier rewards (zero in expectation). Both are unbiased for the gradient of
        ``J_i^K = E[Σ_{t<K} γ^t r̃_t]`` (the θ-dependence of r̃ adds ``−τ E[Σ_t γ^t ∇log π(a_t|s_t)] = 0``).
        All N·M trajectories advance together, one vectorised step per time step. For softmax policies a weighted
        sum of score terms ``Σ_k w_k ∇log π(a_k|s_k) = C_w − diag(C_w·1)·π``, with C_w the weighted (s, a) visit
        counts, so the estimate is one weighted count of visited pairs.
        """
        n, s_count, a_count = theta.shape
        pi = softmax(theta)
        policy_cdf = _cdf_columns(pi)
        flat_rewards = self.rewards.reshape(-1)
        flat_log_pi = log_softmax(theta).reshape(-1) if entropy_coef else None
        to_go = estimator == "reward_to_go"
        chains = n * batch_size
        agent_rows = np.repeat(np.arange(n) * s_count, batch_size)
        uniforms = rng.random((horizon, 2, chains))
        states = _inverse_sample(_cdf_columns(self.initial), np.zeros(chains, dtype=np.intp), rng.random(chains))
        returns = np.zeros(chains)
        step_returns = np.empty((horizon, chains)) if to_go else None
        visited = np.empty((horizon, chains), dtype=np.int64)
        discount = 1.0
        for step in range(horizon):
            rows = agent_rows + states
            actions = _inverse_sample(policy_cdf, rows, uniforms[step, 0])
            pairs = rows * a_count + actions
            rewards = flat_rewards[pairs]
            if flat_log_pi is not None:
                rewards = rewards - entropy_coef * flat_log_pi[pairs]
            if step_returns is not None:
                step_returns[step] = discount * rewards
            else:
                returns += discount * rewards
            visited[step] = pairs
            if step + 1 < horizon:
                states = _inverse_sample(self.transition_cdf, pairs, uniforms[step, 1])
            discount *= self.gamma
        if step_returns is not None:  # each step's weight: the discounted rewards from it on
            weights = np.cumsum(step_returns[::-1], axis=0)[::-1].reshape(-1)
        else:
            weights = np.broadcast_to(returns, (horizon, chains)).reshape(-1)
        weighted = np.bincount(visited.reshape(-1), weights=weights, minlength=n * s_count * a_count)
        weighted = weighted.reshape(n, s_count, a_count)
        return (weighted - weighted.sum(axis=-1, keepdims=True) * pi) / batch_size


def _mix(common: np.ndarray, local: np.ndarray, heterogeneity: float) -> np.ndarray:
    return (1.0 - heterogeneity) * common + heterogeneity * local


# Spawn keys of the family's child streams under ``mdp_seed`` (the root stream draws the common tables). They start
# with 0, which no purpose of :mod:`fedrl_cli.seeding` uses, so they never share numbers with a learning stream.
PAIR_TABLES = (0, 0)  # + (k,): pair k's local reward and transition draws (balanced design)
VALUE_COMMON = (0, 1)  # the realizable family's basis U and common coefficients
VALUE_LOCAL = (0, 2)  # + (k,): pair k's (balanced) or agent k's (independent, nested) value coefficients
AGENT_TABLES = (0, 3)  # + (k,): agent k's local reward and transition draws (nested design)

# a realizable family's rewards: 0.5 ± VALUE_SPREAD from the values, ± ACTION_SPREAD from the per-action deviations
VALUE_SPREAD, ACTION_SPREAD = 0.3, 0.2


def _child(mdp_seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(mdp_seed, spawn_key=key))


def _antithetic(common: np.ndarray, deviations: np.ndarray, n_agents: int) -> np.ndarray:
    """Agents ``2k, 2k+1`` get ``common ± deviations[k]`` (N even); a single agent gets ``common`` itself."""
    if n_agents == 1:
        return common[None].copy()
    signs = np.tile([1.0, -1.0], n_agents // 2).reshape(-1, *(1,) * common.ndim)
    return common + signs * np.repeat(deviations[: n_agents // 2], 2, axis=0)


def _reward_deviation(common: np.ndarray, local: np.ndarray, heterogeneity: float) -> np.ndarray:
    """``D = h (L − R_c)``, clipped elementwise to ``|D| ≤ min(R_c, 1 − R_c)`` so that ``R_c ± D ∈ [0, 1]``."""
    room = np.minimum(common, 1.0 - common)
    return np.clip(heterogeneity * (local - common), -room, room)


def _transition_deviation(common: np.ndarray, local: np.ndarray, heterogeneity: float) -> np.ndarray:
    """``Δ = h (Q − P_c)`` (rows sum to 0), each row scaled by one factor ``c ≤ 1`` so that ``P_c − cΔ ≥ 0``
    (``P_c + cΔ = (1 − ch) P_c + ch Q ≥ 0`` already)."""
    delta = heterogeneity * (local - common)
    positive = delta > 0
    limits = np.where(positive, common, np.inf) / np.where(positive, delta, 1.0)
    return np.minimum(1.0, limits.min(axis=-1, keepdims=True)) * delta


def _local_tables(
    common_rewards: np.ndarray,
    common_transitions: np.ndarray,
    n_draws: int,
    mdp_seed: int,
    draw_transitions: bool,
    key: tuple[int, ...] = PAIR_TABLES,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw k's local tables ``L_k ~ U[0,1]``, ``Q_k ~ Dirichlet(1)`` from its own stream ``key + (k,)`` (so a
    family's first draws do not depend on how many follow): the stacked local rewards (K, S, A) and transitions
    (K, S, A, S)."""
    rewards = np.empty((n_draws, *common_rewards.shape))
    transitions = np.empty((n_draws, *common_transitions.shape)) if draw_transitions else None
    for pair in range(n_draws):
        rng = _child(mdp_seed, *key, pair)
        rewards[pair] = rng.random(common_rewards.shape)
        if transitions is not None:
            transitions[pair] = rng.dirichlet(np.ones(common_transitions.shape[-1]), size=common_rewards.shape)
    return rewards, transitions


def _balanced_tables(
    common_rewards: np.ndarray,
    common_transitions: np.ndarray,
    n_agents: int,
    reward_heterogeneity: float,
    transition_heterogeneity: float,
    mdp_seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Antithetic pairs: ``R_i = R_c + s_i D_k``, ``P_i = P_c + s_i Δ_k`` for agents ``i = 2k, 2k+1``, ``s = ±1``."""
    shared = transition_heterogeneity == 0
    local_rewards, local_transitions = _local_tables(
        common_rewards, common_transitions, n_agents // 2, mdp_seed, not shared
    )
    rewards = _antithetic(
        common_rewards, _reward_deviation(common_rewards, local_rewards, reward_heterogeneity), n_agents
    )
    if shared:
        return rewards, common_transitions[None]
    deviations = _transition_deviation(common_transitions, local_transitions, transition_heterogeneity)
    # P_c − cΔ may round a zero to −1e-17
    return rewards, np.maximum(_antithetic(common_transitions, deviations, n_agents), 0.0)


def qr_positive(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``matrix = Q R`` with the signs fixed so that diag(R) > 0."""
    q, r = np.linalg.qr(matrix)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * signs, signs[:, None] * r


def _value_basis(n_states: int, rank: int, level: str, rng: np.random.Generator) -> np.ndarray:
    """``U`` (S, r), orthonormal. ``offset``: the constant vector ``1/√S`` and ``r − 1`` random directions orthogonal
    to it; ``centred``: ``r`` random directions orthogonal to the constant vector (at most S − 1 of them)."""
    random = rng.normal(size=(n_states, rank - 1 if level == "offset" else rank))
    q = qr_positive(np.column_stack([np.ones(n_states), random]))[0]
    return q if level == "offset" else q[:, 1:]


def _unit_shapes(directions: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``g = Ũ c / ‖Ũ c‖_∞`` for each row of ``coefficients`` (..., r − 1): (..., S), 0 when Ũ has no column. Each
    row is summed on its own (einsum, not a BLAS product, whose rounding can depend on how many rows there are), so
    the first N agents of a family are the N-agent family bit for bit on every processor."""
    shapes = np.einsum("...r,sr->...s", coefficients, directions)
    if directions.shape[1] == 0:
        return shapes
    return shapes / np.abs(shapes).max(axis=-1, keepdims=True)


def _value_shapes(
    directions: np.ndarray, n_agents: int, heterogeneity: float, design: str, mdp_seed: int, rng: np.random.Generator
) -> np.ndarray:
    """The agents' value shapes ``G_i ∈ span(Ũ)``, ``‖G_i‖_∞ ≤ 1``: (N, S).

    Common ``G_c = ½ g(c_c)``, local ``L = g(ℓ)`` with Gaussian coefficients. Independent: ``G_i = (1−h)G_c + h L_i``.
    Balanced: ``G_i = G_c + s_i t_k h (L_k − G_c)``, one factor ``t_k ≤ 1`` per pair so that both stay in [−1, 1].
    """
    dimension = directions.shape[1]
    common = 0.5 * _unit_shapes(directions, rng.normal(size=dimension))
    balanced = design == "balanced"
    draws = n_agents // 2 if balanced else n_agents
    coefficients = np.empty((draws, dimension))
    for k in range(draws):
        coefficients[k] = _child(mdp_seed, *VALUE_LOCAL, k).normal(size=dimension)
    local = _unit_shapes(directions, coefficients)
    if not balanced:
        return _mix(common, local, heterogeneity)
    deviation = heterogeneity * (local - common)
    room = (1.0 - np.abs(common)) / np.maximum(np.abs(deviation), 1e-300)
    return _antithetic(common, np.minimum(1.0, room.min(axis=-1, keepdims=True)) * deviation, n_agents)


def _realizable_rewards(
    base_rewards: np.ndarray,
    transitions: np.ndarray,
    gamma: float,
    value_rank: int,
    heterogeneity: float,
    design: str,
    mdp_seed: int,
    level: str = "centred",
) -> tuple[np.ndarray, np.ndarray]:
    """Rewards whose uniform-policy values ``V_i = U c_i`` share the rank-r span of ``U``; returns them and ``U``.

    ``V_i = v₀·1 + a G_i`` with ``a = VALUE_SPREAD/(1+γ)`` and ``G_i`` from :func:`_value_shapes`; the
    uniform-policy reward is the Bellman residual ``r_i^π = (I − γ P_i^π) V_i = (1−γ)v₀ + a (I − γ P_i^π) G_i`` and
    ``R_i(s,a) = r_i^π(s) + ACTION_SPREAD·(B_i(s,a) − mean_a B_i(s,a))``, the base table ``B_i`` of the design
    centred over actions (so it leaves ``r_i^π`` unchanged). ``|r_i^π − (1−γ)v₀| ≤ a(1+γ) = VALUE_SPREAD`` and
    ``|deviation| < ACTION_SPREAD``, so ``R_i`` lies within ½ of ``(1−γ)v₀``.

    ``level`` = ``centred``: ``v₀ = 0`` and ``G_i`` spans all r directions of U (orthogonal to 1): rewards in
    [−½, ½], values without a constant level, so every direction of U carries a comparable share of the values
    (well conditioned). ``offset`` (the construction before centring): ``v₀ = ½/(1−γ)`` along U's first column
    ``1/√S``, ``G_i`` in the other r − 1: rewards in [0, 1], and a level (5 at γ = 0.9) that dwarfs the shapes.
    """
    n_agents, n_states, _ = base_rewards.shape
    rng = _child(mdp_seed, *VALUE_COMMON)
    basis = _value_basis(n_states, value_rank, level, rng)
    directions = basis[:, 1:] if level == "offset" else basis
    shapes = _value_shapes(directions, n_agents, heterogeneity, design, mdp_seed, rng)
    uniform_kernel = transitions.mean(axis=2)  # P_i^π under the uniform policy, (N, S, S)
    residual = shapes - gamma * np.einsum("nst,nt->ns", uniform_kernel, shapes)  # (I − γ P_i^π) G_i
    uniform_rewards = (0.5 if level == "offset" else 0.0) + VALUE_SPREAD / (1.0 + gamma) * residual
    deviations = base_rewards - base_rewards.mean(axis=2, keepdims=True)
    return uniform_rewards[..., None] + ACTION_SPREAD * deviations, basis


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
    distinct_mdps: int = 2,
    value_level: str = "centred",
) -> TabularFamily:
    """Draw a heterogeneous family from ``mdp_seed``: uniform rewards, Dirichlet(1) next-state rows.

    The common tables ``R_c``, ``P_c`` are drawn first from the root stream, so the same ``mdp_seed`` gives the
    same average structure whatever the heterogeneity levels; with ``transition_heterogeneity = 0`` the kernel is
    exactly shared. ``heterogeneity_design``:

    - ``independent``: every agent mixes its own local draw, ``R_i = (1−h_r) R_c + h_r L_i``,
      ``P_i = (1−h_p) P_c + h_p Q_i`` (local draws from the root stream, after the common tables).
    - ``nested``: the same mixtures, each agent's local draw ``L_i``, ``Q_i`` from its own stream, so the first K
      agents of a larger family are the K-agent family, kernels included (a sweep over K compares nested
      families).
    - ``balanced``: agents ``2k, 2k+1`` are an antithetic pair, ``R_i = R_c ± D_k``, ``P_i = P_c ± Δ_k``, with
      ``D_k = h_r (L_k − R_c)`` clipped elementwise so both stay in [0, 1] and ``Δ_k = h_p (Q_k − P_c)`` scaled by
      one factor per row so both stay ≥ 0 (rows still sum to 1). The mean over agents is exactly ``(R_c, P_c)``
      for every even N, and N = 1 is the common MDP itself. Each pair draws from its own stream, so the first N
      agents of a larger family are the N-agent family: with a shared kernel, J(θ), J* and the optimal policy
      are the same for N = 1, 2, 4, ... (with h_p > 0 only the average tables are).

    - ``replicated``: ``distinct_mdps`` m MDPs drawn as ``independent`` draws N = m, agent i given MDP i mod m
      (N a multiple of m): the average MDP, J*, θ* and FedAvg PG's heterogeneity bias are the m-MDP family's for
      every such N, and N = m is the independent family itself.

    ``value_rank = r`` replaces the rewards by :func:`_realizable_rewards`: every agent's value under the
    uniform policy lies in one common rank-r subspace (``value_basis``), its coordinates heterogeneous by h_r
    (antithetic with the balanced design, so the values average to the common ones), kernels as the design draws
    them; the design's reward tables only lend their action-centred part. ``value_level``: ``centred`` (values
    without a constant level, rewards in [−½, ½]) or ``offset`` (a level ½/(1−γ) along ``1``, rewards in [0, 1]),
    as :func:`_realizable_rewards` says.
    """
    if heterogeneity_design == "replicated":
        base = make_family(
            distinct_mdps, n_states, n_actions, gamma, reward_heterogeneity, transition_heterogeneity, mdp_seed,
            "independent", value_rank, value_level=value_level,
        )  # fmt: skip
        mdp = np.arange(n_agents) % distinct_mdps
        transitions = (
            np.broadcast_to(base.transitions[0], (n_agents, *base.transitions.shape[1:]))
            if base.shared_transitions
            else base.transitions[mdp]
        )
        return TabularFamily(
            base.rewards[mdp], transitions, base.initial, gamma, base.shared_transitions, base.value_basis
        )
    rng = np.random.default_rng(mdp_seed)
    shape = (n_states, n_actions)
    common_rewards = rng.random(shape)
    common_transitions = rng.dirichlet(np.ones(n_states), size=shape)
    shared = transition_heterogeneity == 0
    if heterogeneity_design == "balanced":
        rewards, transitions = _balanced_tables(
            common_rewards, common_transitions, n_agents, reward_heterogeneity, transition_heterogeneity, mdp_seed
        )
    elif heterogeneity_design in ("independent", "nested"):
        if heterogeneity_design == "nested":
            local_rewards, local_transitions = _local_tables(
                common_rewards, common_transitions, n_agents, mdp_seed, not shared, AGENT_TABLES
            )
        else:
            local_rewards = rng.random((n_agents, *shape))
            local_transitions = rng.dirichlet(np.ones(n_states), size=(n_agents, *shape))
        rewards = _mix(common_rewards, local_rewards, reward_heterogeneity)
        if not shared:
            transitions = _mix(common_transitions, local_transitions, transition_heterogeneity)
    else:
        raise ValueError(
            f"heterogeneity_design={heterogeneity_design!r}: it must be independent, nested, balanced or replicated"
        )
    if shared:  # exactly P_c, as a broadcast view
        transitions = np.broadcast_to(common_transitions, (n_agents, *shape, n_states))
    basis = None
    if value_rank is not None:
        rewards, basis = _realizable_rewards(
            rewards, transitions, gamma, value_rank, reward_heterogeneity, heterogeneity_design, mdp_seed, value_level
        )
    return TabularFamily(
        rewards=rewards,
        transitions=transitions,
        initial=np.full(n_states, 1.0 / n_states),
        gamma=gamma,
        shared_transitions=shared,
        value_basis=basis,
    )


# a gap below this share of |J*| is rounding (a run at θ*_τ), where ‖∇J‖²/gap means nothing
GAP_RESOLUTION = 1e-10


class ExactMetrics:
    """Exact per-round metrics of a tabular run, from the model itself (no sampling).

    Global, at the policies the algorithm stands for (``policies`` (P, S, A): the server point θ̄ for the
    federated algorithms, every agent's own θ_i for local PG, which has no common policy), averaged over them:
    ``objective`` mean_p J(θ_p) with J = mean_i J_i, ``gap`` J* − objective (None when J* is unknown, i.e.
    transitions differ), ``grad_norm`` mean_p ‖∇J(θ_p)‖, ``gradient_domination`` mean_p ‖∇J(θ_p)‖² / (J* − J(θ_p)),
    the ratio that Theorem 2's gradient domination (Eq. (12)) bounds below by μ (None where J* is unknown or the
    gap is at rounding level, :data:`GAP_RESOLUTION`). With ``entropy_coef`` τ > 0 every one of them is the
    regularised J_τ's, J* being J*_τ. At the agents' own parameters θ_i (the end-of-round
    iterates θ_{i,H}, before the server averages them): ``local_objective`` mean_i J_i(θ_i) and ``drift``
    mean_i ‖θ_i − mean_j θ_j‖, the client drift that Fast-FedPG's correction counters. Per agent:
    ``objective`` J_i(θ_i) and ``grad_norm`` ‖∇J_i(θ_i)‖.
    """

    def __init__(self, family: TabularFamily, entropy_coef: float = 0.0) -> None:
        self.family, self.entropy_coef = family, entropy_coef
        if entropy_coef:
            found = family.soft_optimum(entropy_coef)
            self.optimum = None if found is None else found[0]
        else:
            self.optimum = family.optimal_objective()

    def __call__(
        self, policies: np.ndarray, agent_params: np.ndarray
    ) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
        n = self.family.n_agents
        # every policy p played by every agent i: (P, N, S, A) → J_i(θ_p) (P, N), ∇J_i(θ_p) (P, N, S, A)
        global_values, global_gradients = self.family.objective_and_gradient(
            np.broadcast_to(policies[:, None], (policies.shape[0], n, *policies.shape[1:])), self.entropy_coef
        )
        objective = float(global_values.mean())
        global_norms = np.linalg.norm(global_gradients.mean(axis=1).reshape(policies.shape[0], -1), axis=1)
        agent_values, agent_gradients = self.family.objective_and_gradient(agent_params, self.entropy_coef)
        spread = (agent_params - agent_params.mean(axis=0)).reshape(n, -1)
        gaps = None if self.optimum is None else self.optimum - global_values.mean(axis=1)
        metrics = {
            "objective": objective,
            "gap": None if self.optimum is None else self.optimum - objective,
            "grad_norm": float(global_norms.mean()),
            "local_objective": float(agent_values.mean()),
            "drift": float(np.linalg.norm(spread, axis=1).mean()),
            "gradient_domination": None
            if gaps is None or (gaps <= GAP_RESOLUTION * max(1.0, abs(self.optimum))).any()
            else float((global_norms**2 / gaps).mean()),
        }
        per_agent = {
            "objective": agent_values,
            "grad_norm": np.linalg.norm(agent_gradients.reshape(n, -1), axis=1),
        }
        return metrics, per_agent


def weighted_norms(vectors: np.ndarray, stationary: np.ndarray) -> np.ndarray:
    """``‖x_i‖_{μ_i} = √(Σ_s μ_i(s) x_i(s)²)`` for every row: (N, S) → (N,)."""
    return np.sqrt((stationary * vectors**2).sum(axis=-1))


def weighted_fit(basis: np.ndarray, values: np.ndarray, stationary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each agent's best head ``w_i = argmin_w ‖A w − V_i‖_{μ_i}`` in ``A = basis`` ((S, k), or (N, S, k) per
    agent) and the residuals ``(I − Π_i) V_i = V_i − A w_i``, Π_i the μ_i-weighted projection onto span(A):
    heads (N, k) and residuals (N, S). A pseudo-inverse of ``√μ_i ⊙ A``, so a rank-deficient A is fine."""
    root = np.sqrt(stationary)
    heads = (np.linalg.pinv(root[..., None] * basis) @ (root * values)[..., None])[..., 0]
    return heads, values - (basis @ heads[..., None])[..., 0]


def subspace_distance(feature_basis: np.ndarray, values: np.ndarray, stationary: np.ndarray) -> float:
    """The share of the agents' value energy outside ``span(ΦB)`` (``feature_basis`` = ΦB, (S, r)):
    ``Σ_i ‖(I − Π_i) V_i‖²_{μ_i} / Σ_i ‖V_i‖²_{μ_i}`` with Π_i the μ_i-weighted projection onto the span. In [0, 1],
    0 when the span holds every ``V_i`` (values (N, S), stationary μ_i (N, S)); each direction counts by how much
    of the values it carries, so a direction that the values barely use barely moves it."""
    return _outside_share(weighted_fit(feature_basis, values, stationary)[1], values, stationary)


def _outside_share(residuals: np.ndarray, values: np.ndarray, stationary: np.ndarray) -> float:
    """``Σ_i ‖residual_i‖²_{μ_i} / Σ_i ‖V_i‖²_{μ_i}`` (0 when the values are 0)."""
    energy = (stationary * values**2).sum()
    return float((stationary * residuals**2).sum() / energy) if energy > 0 else 0.0


def _column_space(features: np.ndarray) -> np.ndarray:
    """``Q`` (S, q): orthonormal columns spanning the columns of Φ (q = rank Φ); the identity when Φ has rank S
    (one-hot features), so that the fit's weighted Gram matrices are diagonal."""
    left, singular, _ = np.linalg.svd(features, full_matrices=False)
    span = left[:, singular > singular.max(initial=0.0) * max(features.shape) * np.finfo(float).eps]
    return np.eye(features.shape[0]) if span.shape[1] == features.shape[0] else span


def _start(span: np.ndarray, values: np.ndarray, stationary: np.ndarray, rank: int) -> np.ndarray:
    """The SVD start: the exact optimum when every agent has the mean weights μ̄. With ``√μ̄ ⊙ Q = Q̃R`` and Y the
    top-``rank`` left singular vectors of ``Q̃ᵀ(√μ̄ ⊙ V)``, the best subspace is ``span(Q R⁻¹Y)``: C = orth(R⁻¹Y)."""
    root = np.sqrt(stationary.mean(axis=0))[:, None]
    weighted, triangle = np.linalg.qr(root * span)
    top = np.linalg.svd(weighted.T @ (root * values.T))[0][:, :rank]
    return np.linalg.qr(np.linalg.pinv(triangle) @ top)[0]


def _basis_step(gram: np.ndarray | None, moments: np.ndarray, heads: np.ndarray, stationary: np.ndarray) -> np.ndarray:
    """Given the heads, the coordinates ``C`` (q, k) of the basis ``QC`` minimising ``Σ_i ‖QCw_i − V_i‖²_{μ_i}``:
    the normal equations ``Σ_i M_i C w_i w_iᵀ = Σ_i b_i w_iᵀ`` (``M_i = QᵀD_iQ``, ``b_i = QᵀD_iV_i``), i.e.
    ``(Σ_i w_i w_iᵀ ⊗ M_i) vec C = vec Σ_i b_i w_iᵀ``, with a 1e-12 relative ridge for heads of rank < k; then
    orthonormalised (only the span matters). ``gram`` None means Q = I (features of rank S): every ``M_i =
    D_i`` is diagonal and the system splits into one k × k system per state, ``C_s Σ_i μ_i(s) w_i w_iᵀ =
    Σ_i μ_i(s) V_i(s) w_iᵀ``."""
    q, k = moments.shape[1], heads.shape[1]
    outer = heads[:, :, None] * heads[:, None, :]
    right = moments.T @ heads
    if gram is None:
        blocks = np.einsum("ns,nkl->skl", stationary, outer)
        ridge = 1e-12 * np.einsum("skk->", blocks) / (q * k) + np.finfo(float).tiny
        return np.linalg.qr(np.linalg.solve(blocks + ridge * np.eye(k), right[..., None])[..., 0])[0]
    system = np.tensordot(gram, outer, axes=(0, 0)).transpose(0, 2, 1, 3).reshape(q * k, q * k)
    ridge = 1e-12 * np.trace(system) / (q * k) + np.finfo(float).tiny
    return np.linalg.qr(np.linalg.solve(system + ridge * np.eye(q * k), right.reshape(q * k)).reshape(q, k))[0]


def shared_subspace_fit(
    features: np.ndarray,
    values: np.ndarray,
    stationary: np.ndarray,
    rank: int,
    iterations: int = 30,
    tolerance: float = 1e-7,
) -> np.ndarray:
    """The best shared rank-``rank`` subspace ``span(ΦB)`` with each agent's best head: the per-agent errors
    ``‖ΦBw_i − V_i‖_{μ_i}`` (N,) of the B and heads that minimise the sum of squares ``Σ_i ‖ΦBw_i − V_i‖²_{μ_i}``.

    A weighted low-rank fit over the column space ``Q`` of Φ, by alternating least squares from :func:`_start`:
    heads by weighted least squares (:func:`weighted_fit`), then the basis from the normal equations
    (:func:`_basis_step`); at most ``iterations`` steps, stopping when the sum of squares falls by less than
    ``tolerance`` (relative) or would rise. Every accepted step lowers it, so the result is never worse than the
    start. ``iterations=0`` gives the start's fit. With ``rank ≥ rank Φ`` it is each agent's projection onto span(Φ).
    """
    span = _column_space(features)
    if rank >= span.shape[1]:
        return weighted_norms(weighted_fit(span, values, stationary)[1], stationary)
    full = span.shape[1] == features.shape[0]  # Q = I: the Gram matrices are D_i themselves
    gram = None if full else span.T @ (stationary[:, :, None] * span)  # M_i = QᵀD_iQ (N, q, q)
    moments = (stationary * values) @ span
    heads, residuals = weighted_fit(span @ _start(span, values, stationary, rank), values, stationary)
    loss = (stationary * residuals**2).sum()
    for _ in range(iterations):
        basis = span @ _basis_step(gram, moments, heads, stationary)
        new_heads, new_residuals = weighted_fit(basis, values, stationary)
        new_loss = (stationary * new_residuals**2).sum()
        if not new_loss < loss:
            break
        converged = loss - new_loss <= tolerance * loss
        heads, residuals, loss = new_heads, new_residuals, new_loss
        if converged:
            break
    return weighted_norms(residuals, stationary)


def subspace_angle(feature_basis: np.ndarray, value_basis: np.ndarray) -> float:
    """The sine of the largest principal angle between ``span(U)`` (``value_basis``, orthonormal (S, r)) and
    ``span(ΦB)`` (``feature_basis`` = ΦB, (S, k)): ``‖(I − QQᵀ)U‖₂`` with Q an orthonormal basis of span(ΦB),
    the largest distance of a unit vector of span(U) from span(ΦB). 0 when span(ΦB) holds U, 1 when some
    direction of U is orthogonal to it (always so when k < r)."""
    span = np.linalg.qr(feature_basis)[0]
    return float(np.linalg.norm(value_basis - span @ (span.T @ value_basis), ord=2))


def value_condition(family: TabularFamily) -> float | None:
    """``σ₁/σ_r`` of the agents' uniform-policy values in the coordinates of a realizable family's ``U`` (the
    (N, r) matrix of rows ``Uᵀ V_i``): how unevenly the values use the r directions (1 = evenly).
    None for a family that is not realizable, or whose values do not fill U (N < r: σ_r = 0)."""
    if family.value_basis is None:
        return None
    values, _ = family.values_and_stationary(np.zeros(family.rewards.shape))
    singular = np.linalg.svd(values @ family.value_basis, compute_uv=False)
    rank = family.value_basis.shape[1]
    if len(singular) < rank or singular[rank - 1] <= singular[0] * 1e-10:
        return None
    return float(singular[0] / singular[rank - 1])


class CriticMetrics:
    """Exact metrics of per-agent actor-critic learners (subspace actor-critic), from the tabular model.

    With ``V_i`` the value of agent i's policy π_i, ``μ_i`` its chain's stationary distribution and ``Π_i`` the
    μ_i-weighted projection onto span(ΦB) (``feature_basis`` = ΦB, the broadcast subspace):
    ``critic_error``: mean over agents of ``‖V̂_i − V_i‖_{μ_i}``, the error of the agent's value estimate;
    ``critic_subspace_error``: mean of ``‖(I − Π_i)V_i‖_{μ_i}``, the part of V_i outside the shared subspace, which
    no head can reach; ``critic_head_error``: mean of ``‖V̂_i − Π_iV_i‖_{μ_i}``, the head's miss inside it (with
    V̂_i in span(ΦB), as after every broadcast, ``err_i² = head_i² + sub_i²`` per agent);
    ``subspace_angle``: :func:`subspace_angle` of span(ΦB) from a realizable family's value span U (None for
    other families); ``grad_norm``: mean of ``‖∇J_i(θ_i)‖``; ``objective``: mean of ``J_i(θ_i)``;
    ``subspace_distance``: :func:`subspace_distance` of span(ΦB) from the values, the share of their μ-weighted
    energy outside it; ``critic_floor``: mean over agents of ``‖ΦB*w_i* − V_i‖_{μ_i}`` for the best
    shared rank-r subspace of the features and each agent's best head (:func:`shared_subspace_fit`, r = the
    columns of ``feature_basis``), the least error a shared rank-r critic can reach at the current policies;
    ``critic_excess`` = critic_error − critic_floor, what learning can still remove (the floor minimises the sum of
    squares, not the mean of norms, so the excess can dip just below 0). Per agent: ``critic_error``,
    ``critic_subspace_error``, ``critic_head_error``, ``objective``, ``grad_norm``, ``critic_floor`` (the agent's
    error in the shared fit). What depends only on the policies is computed once per distinct set of policies (so
    policy evaluation, whose policies never move, pays for it once).
    """

    def __init__(self, family: TabularFamily, features: np.ndarray | None = None) -> None:
        self.family = family
        self.features = np.eye(family.n_states) if features is None else features  # Φ (S, d); one-hot if None
        self._policies: tuple[np.ndarray, int, tuple[np.ndarray, ...]] | None = None

    def _at_policies(self, actors: np.ndarray, rank: int) -> tuple[np.ndarray, ...]:
        """Values, stationary distributions, objectives, gradient norms and floors at ``actors``, cached."""
        cached = self._policies
        if cached is not None and cached[1] == rank and np.array_equal(cached[0], actors):
            return cached[2]
        values, stationary, objective, gradient = self.family.evaluate(actors)
        grad_norms = np.linalg.norm(gradient.reshape(self.family.n_agents, -1), axis=1)
        if np.isfinite(values).all() and np.isfinite(stationary).all():
            floors = shared_subspace_fit(self.features, values, stationary, rank)
        else:  # the policies diverged: NaN, which the round loop reports
            floors = np.full(self.family.n_agents, np.nan)
        found = (values, stationary, objective, grad_norms, floors)
        self._policies = (actors.copy(), rank, found)
        return found

    def __call__(
        self, actors: np.ndarray, estimates: np.ndarray, feature_basis: np.ndarray
    ) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
        values, stationary, objective, grad_norms, floors = self._at_policies(actors, feature_basis.shape[1])
        errors = weighted_norms(estimates - values, stationary)
        if np.isfinite(values).all() and np.isfinite(stationary).all():
            residuals = weighted_fit(feature_basis, values, stationary)[1]
            outside = weighted_norms(residuals, stationary)
            inside = weighted_norms(estimates - (values - residuals), stationary)
            distance = _outside_share(residuals, values, stationary)
        else:
            outside = inside = np.full(self.family.n_agents, np.nan)
            distance = float("nan")
        basis = self.family.value_basis
        metrics = {
            "critic_error": float(errors.mean()),
            "critic_subspace_error": float(outside.mean()),
            "critic_head_error": float(inside.mean()),
            "subspace_angle": None if basis is None else subspace_angle(feature_basis, basis),
            "grad_norm": float(grad_norms.mean()),
            "objective": float(objective.mean()),
            "subspace_distance": distance,
            "critic_floor": float(floors.mean()),
            "critic_excess": float(errors.mean() - floors.mean()),
        }
        per_agent = {
            "critic_error": errors,
            "critic_subspace_error": outside,
            "critic_head_error": inside,
            "objective": objective,
            "grad_norm": grad_norms,
            "critic_floor": floors,
        }
        return metrics, per_agent
