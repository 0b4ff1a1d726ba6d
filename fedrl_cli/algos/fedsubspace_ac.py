"""Federated subspace actor-critic, linear form (arXiv 2605.14423), on tabular MDPs.

Every agent follows one continuing trajectory of its own MDP (Markovian sampling, never reset). Its critic is
``V_i(s) = φ(s)ᵀ B w_i`` with a shared subspace ``B ∈ R^{d×r}`` (orthonormal columns) and a personal head
``w_i ∈ R^r``; its actor is a personal softmax policy ``θ_i``. Each local step, on one timescale, with the TD
error ``δ = r + γ V_i(s') − V_i(s)``:
``w_i ← w_i + β δ B_iᵀφ(s)``, ``B_i ← B_i + β_B δ φ(s) w_iᵀ`` (its local copy), ``θ_i ← θ_i + α δ ∇log π_i(a|s)``;
β, β_B, α share one schedule over rounds (constant, or ∝ 1/(1 + t/t0) or 1/√(1 + t/t0)).

The local basis step (``basis_update``):
``gradient``, as above; ``projected``, ``(I − B Bᵀ) δ φ(s) w_iᵀ``, the part outside the round's broadcast subspace
``B`` (the abstract's "projected subspace updates": the subspace moves, the coordinates within it are left to the
heads); ``preconditioned``, ``δ φ(s) w_iᵀ (M + λI)⁻¹`` with ``M = mean_i w_i w_iᵀ`` the heads' second moment at
the round's start (each agent sends ``w_i w_iᵀ``, the server broadcasts the inverse) and λ = 10⁻³·tr(M)/r, so
every direction of the subspace moves at one rate β_B instead of β_B·w_k² (ours, not the abstract's).

Shared: each round the agents send their ``B_i``; the server averages them, ``B̄ = mean_i B_i``, takes its QR
factors ``B̄ = B R`` and broadcasts ``B``. Heads and actors never leave the agent. After the QR step each agent
re-expresses its head in the new basis (``reexpress_heads``; ours, not the abstract's): ``project``,
``w_i ← Bᵀ B_i w_i``, the projection of its own estimate onto the new subspace (it keeps the agent's own in-span
basis step, which acts as an extra head step of size β_B‖w‖²); ``rotate``, ``w_i ← R w_i``, which keeps the
function ``Φ B̄ w_i`` that the agent's head gives under the averaged basis; ``none`` keeps the coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedrl_cli.algos.common import Channel, StepSizeSchedule
from fedrl_cli.envs.tabular import TabularFamily, qr_positive, softmax
from fedrl_cli.errors import Diverged

# the preconditioner's ridge, relative to the mean eigenvalue of the heads' second moment
PRECONDITIONER_RIDGE = 1e-3
# a local basis whose largest column norm passes this within one round (it starts orthonormal) has diverged
BASIS_GROWTH_LIMIT = 1e3
# the values reexpress_heads took before it named its rule
HEAD_ALIASES = {True: "project", False: "none"}


def orthonormalise(matrix: np.ndarray) -> np.ndarray:
    """The Q factor of ``matrix`` (d, r), with signs fixed so that diag(R) > 0 (a unique, deterministic basis)."""
    return qr_positive(matrix)[0]


def make_features(kind: str, n_states: int, feature_dim: int, rng: np.random.Generator) -> np.ndarray:
    """Φ (S, d): one-hot (d = S) or Gaussian random features scaled by 1/√d."""
    if kind == "onehot":
        return np.eye(n_states)
    return rng.normal(size=(n_states, feature_dim)) / np.sqrt(feature_dim)


class FedSubspaceAC:
    # class-level defaults for the attributes a checkpoint of an older version lacks (:meth:`__setstate__`)
    head_reexpression = "project"
    basis_step = "gradient"
    preconditioner: np.ndarray | None = None

    def __init__(
        self,
        family: TabularFamily,
        features: np.ndarray,
        rank: int,
        local_steps: int,
        lr_head: float,
        lr_basis: float,
        lr_actor: float,
        rng: np.random.Generator,
        schedule: StepSizeSchedule | None = None,
        reexpress_heads: str = "project",
        basis_update: str = "gradient",
        initial_basis: np.ndarray | None = None,
    ) -> None:
        self.family, self.features, self.local_steps = family, features, local_steps
        self.lr_head, self.lr_basis, self.lr_actor, self.rng = lr_head, lr_basis, lr_actor, rng
        self.schedule = schedule or StepSizeSchedule()
        self.head_reexpression, self.basis_step = HEAD_ALIASES.get(reexpress_heads, reexpress_heads), basis_update
        self.completed_rounds = 0
        n, d = family.n_agents, features.shape[1]
        self.channel = Channel(n)
        self.basis = orthonormalise(rng.normal(size=(d, rank)))  # the server's B, known to all at start
        if initial_basis is not None:  # drawn all the same, so the chains below are the random start's
            self.basis = orthonormalise(initial_basis)
        self.local_bases = np.repeat(self.basis[None], n, axis=0)  # (N, d, r)
        self.heads = np.zeros((n, rank))
        self.actors = np.zeros((n, family.n_states, family.n_actions))
        self.states = rng.integers(family.n_states, size=n)  # the chains' current states, kept across rounds
        self.samples = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A checkpoint written before the rules had names holds booleans ``reexpress_heads`` and ``projected``."""
        if "projected" in state:
            state["basis_step"] = "projected" if state.pop("projected") else "gradient"
            state["head_reexpression"] = HEAD_ALIASES[state.pop("reexpress_heads")]
        self.__dict__.update(state)

    def local_step(self, scale: float = 1.0) -> None:
        """One transition of every agent's chain and its TD, basis and actor steps, at ``scale`` × the step sizes."""
        agents = np.arange(self.family.n_agents)
        probabilities = softmax(self.actors[agents, self.states])
        actions, rewards, next_states = self.family.step(self.states, probabilities, self.rng)
        phi, phi_next = self.features[self.states], self.features[next_states]
        projected = np.einsum("nd,ndr->nr", phi, self.local_bases)  # B_iᵀ φ(s)
        value = np.einsum("nr,nr->n", projected, self.heads)
        next_value = np.einsum("nd,ndr,nr->n", phi_next, self.local_bases, self.heads)
        delta = rewards + self.family.gamma * next_value - value
        heads = self.heads + (scale * self.lr_head * delta)[:, None] * projected
        direction = phi - (phi @ self.basis) @ self.basis.T if self.basis_step == "projected" else phi
        coefficients = self.heads if self.preconditioner is None else self.heads @ self.preconditioner
        step = (scale * self.lr_basis * delta)[:, None, None] * direction[:, :, None]
        self.local_bases += step * coefficients[:, None]
        self.heads = heads
        score = -probabilities
        score[agents, actions] += 1.0
        self.actors[agents, self.states] += scale * self.lr_actor * delta[:, None] * score
        self.states = next_states
        self.samples += self.family.n_agents

    def _precondition(self) -> None:
        """``basis_update=preconditioned``: the server's ``(M + λI)⁻¹`` from the agents' ``w_i w_iᵀ``."""
        moments = self.channel.up(self.heads[:, :, None] * self.heads[:, None, :]).mean(axis=0)
        rank = moments.shape[0]
        ridge = PRECONDITIONER_RIDGE * np.trace(moments) / rank
        inverse = np.linalg.inv(moments + ridge * np.eye(rank)) if ridge > 0 else np.eye(rank)
        self.preconditioner = self.channel.broadcast(inverse)

    def round(self) -> None:
        scale = self.schedule.factor(self.completed_rounds)
        if self.basis_step == "preconditioned":
            self._precondition()
        for _ in range(self.local_steps):
            self.local_step(scale)
        growth = np.linalg.norm(self.local_bases, axis=1).max()
        if not growth <= BASIS_GROWTH_LIMIT:  # also NaN
            raise Diverged(
                f"a local basis column reached norm {growth:.3g} in one round (it starts at 1): the basis steps "
                f"diverged with algo.basis_update={self.basis_step}; lower algo.lr_basis"
            )
        average = self.channel.up(self.local_bases).mean(axis=0)
        self.basis, triangle = qr_positive(average)
        self.channel.broadcast(self.basis)
        if self.head_reexpression == "project":
            # B w_i becomes the projection of the agent's B_i w_i onto the new subspace
            self.heads = np.einsum("dr,ndk,nk->nr", self.basis, self.local_bases, self.heads)
        elif self.head_reexpression == "rotate":  # B (R w_i) = B̄ w_i
            self.heads = self.heads @ triangle.T
        self.local_bases[:] = self.basis
        self.completed_rounds += 1

    def value_estimates(self) -> np.ndarray:
        """``Φ B_i w_i`` for every agent: (N, S)."""
        return np.einsum("sd,ndr,nr->ns", self.features, self.local_bases, self.heads)
