"""Federated subspace actor-critic, linear form (arXiv 2605.14423), on tabular MDPs.

Every agent follows one continuing trajectory of its own MDP (Markovian sampling, never reset). Its critic is
``V_i(s) = φ(s)ᵀ B w_i`` with a shared subspace ``B ∈ R^{d×r}`` (orthonormal columns) and a personal head
``w_i ∈ R^r``; its actor is a personal softmax policy ``θ_i``. Each local step, on one timescale, with the TD
error ``δ = r + γ V_i(s') − V_i(s)``:
``w_i ← w_i + β δ B_iᵀφ(s)``, ``B_i ← B_i + β_B δ φ(s) w_iᵀ`` (its local copy), ``θ_i ← θ_i + α δ ∇log π_i(a|s)``,
on one timescale: β, β_B, α share one schedule over rounds (constant, or ∝ 1/(1 + t/t0) or 1/√(1 + t/t0)).
``basis_update="projected"`` steps ``B_i`` along ``(I − B Bᵀ) δ φ(s) w_iᵀ`` instead, the part of the gradient
outside the round's broadcast subspace ``B`` (the abstract's "projected subspace updates"): the subspace moves,
the coordinates within it are left to the heads.
Shared: each round the agents send their ``B_i``; the server averages them, re-orthonormalises by QR and
broadcasts the result ``B``. Heads and actors never leave the agent. Ours, not the abstract's (switch it off
with ``reexpress_heads=False``): each agent re-expresses its head in the new basis, ``w_i ← Bᵀ B_i w_i`` (the
projection of its current estimate onto the new subspace), so the QR step does not discard what its head had
learnt.
"""

from __future__ import annotations

import numpy as np

from fedrl_cli.algos.common import Channel, StepSizeSchedule
from fedrl_cli.envs.tabular import TabularFamily, softmax


def orthonormalise(matrix: np.ndarray) -> np.ndarray:
    """The Q factor of ``matrix`` (d, r), with signs fixed so that diag(R) > 0 (a unique, deterministic basis)."""
    q, r = np.linalg.qr(matrix)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def make_features(kind: str, n_states: int, feature_dim: int, rng: np.random.Generator) -> np.ndarray:
    """Φ (S, d): one-hot (d = S) or Gaussian random features scaled by 1/√d."""
    if kind == "onehot":
        return np.eye(n_states)
    return rng.normal(size=(n_states, feature_dim)) / np.sqrt(feature_dim)


class FedSubspaceAC:
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
        reexpress_heads: bool = True,
        basis_update: str = "gradient",
    ) -> None:
        self.family, self.features, self.local_steps = family, features, local_steps
        self.lr_head, self.lr_basis, self.lr_actor, self.rng = lr_head, lr_basis, lr_actor, rng
        self.schedule = schedule or StepSizeSchedule()
        self.reexpress_heads, self.projected = reexpress_heads, basis_update == "projected"
        self.completed_rounds = 0
        n, d = family.n_agents, features.shape[1]
        self.channel = Channel(n)
        self.basis = orthonormalise(rng.normal(size=(d, rank)))  # the server's B, known to all at start
        self.local_bases = np.repeat(self.basis[None], n, axis=0)  # (N, d, r)
        self.heads = np.zeros((n, rank))
        self.actors = np.zeros((n, family.n_states, family.n_actions))
        self.states = rng.integers(family.n_states, size=n)  # the chains' current states, kept across rounds
        self.samples = 0

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
        direction = phi - (phi @ self.basis) @ self.basis.T if self.projected else phi  # (I − B Bᵀ) φ(s)
        self.local_bases += (
            (scale * self.lr_basis * delta)[:, None, None] * direction[:, :, None] * self.heads[:, None, :]
        )
        self.heads = heads
        score = -probabilities
        score[agents, actions] += 1.0
        self.actors[agents, self.states] += scale * self.lr_actor * delta[:, None] * score
        self.states = next_states
        self.samples += self.family.n_agents

    def round(self) -> None:
        scale = self.schedule.factor(self.completed_rounds)
        for _ in range(self.local_steps):
            self.local_step(scale)
        average = self.channel.up(self.local_bases).mean(axis=0)
        self.basis = self.channel.broadcast(orthonormalise(average))
        if self.reexpress_heads:
            # B w_i becomes the projection of the agent's B_i w_i onto the new subspace
            self.heads = np.einsum("dr,ndk,nk->nr", self.basis, self.local_bases, self.heads)
        self.local_bases[:] = self.basis
        self.completed_rounds += 1

    def value_estimates(self) -> np.ndarray:
        """``Φ B_i w_i`` for every agent: (N, S)."""
        return np.einsum("sd,ndr,nr->ns", self.features, self.local_bases, self.heads)
