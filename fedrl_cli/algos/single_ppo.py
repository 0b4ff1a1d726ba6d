"""Single PPO: every agent runs CleanRL's PPO on its own environment; nothing is shared.

A round is ``local_steps`` PPO iterations, so rounds line up with the federated algorithms'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fedrl_cli.algos.common import Channel

if TYPE_CHECKING:
    from fedrl_cli.workers import ShardedAgents


class SinglePPO:
    def __init__(self, agents: ShardedAgents, local_steps: int) -> None:
        self.agents, self.local_steps = agents, local_steps
        self.channel = Channel(agents.n_agents)

    def round(self) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        """Every agent runs the round's PPO iterations: the last update's statistics, the training episodes'
        returns and the environment steps taken (:meth:`fedrl_cli.workers.ShardedAgents.iterate`)."""
        return self.agents.iterate(self.local_steps)
