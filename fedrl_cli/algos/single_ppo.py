"""Single PPO: every agent runs CleanRL's PPO on its own environment; nothing is shared.

A round is ``local_steps`` PPO iterations, so rounds line up with the federated algorithms'.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from fedrl_cli.algos.common import Channel


class StackedAgents(Protocol):
    """What a PPO algorithm needs of its agents, wherever they live (one process or Ray workers: that is
    :class:`fedrl_cli.workers.ShardedAgents`): parameters stacked along the agent axis."""

    n_agents: int
    parameter_names: list[str]

    def iterate(self, iterations: int) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        """``iterations`` PPO iterations on every agent: the last update's statistics per agent, the finished
        training episodes' returns per agent and the environment steps taken."""
        ...

    def parameters(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Every agent's values of ``names``, stacked (N, ...)."""
        ...

    def load_parameters(self, values: dict[str, torch.Tensor]) -> None:
        """Every agent adopts ``values`` (parameter name → one value for all agents, leading axis 1)."""
        ...

    def reset_moments(self, names: list[str]) -> None:
        """Every agent's optimiser state of ``names`` restarts."""
        ...


class SinglePPO:
    def __init__(self, agents: StackedAgents, local_steps: int) -> None:
        self.agents, self.local_steps = agents, local_steps
        self.channel = Channel(agents.n_agents)

    def round(self) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        """Every agent runs the round's PPO iterations: the last update's statistics, the training episodes'
        returns and the environment steps taken (:meth:`StackedAgents.iterate`)."""
        return self.agents.iterate(self.local_steps)
