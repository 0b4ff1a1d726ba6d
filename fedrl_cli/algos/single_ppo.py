"""Single PPO: every agent runs CleanRL's PPO on its own environment; nothing is shared.

A round is ``local_steps`` PPO iterations, so rounds line up with the federated algorithms'.
"""

from __future__ import annotations

import numpy as np

from fedrl_cli.algos.common import Channel
from fedrl_cli.algos.ppo import PPOAgents


class SinglePPO:
    def __init__(self, ppo: PPOAgents, local_steps: int) -> None:
        self.ppo, self.local_steps = ppo, local_steps
        self.channel = Channel(ppo.model.n_agents)

    def round(self) -> tuple[list[dict[str, np.ndarray]], list[list[float]]]:
        """Run the round's iterations; their statistics and the training episodes they finished, per agent."""
        return run_iterations(self.ppo, self.local_steps)


def run_iterations(ppo: PPOAgents, iterations: int) -> tuple[list[dict[str, np.ndarray]], list[list[float]]]:
    stats, finished = [], [[] for _ in range(ppo.model.n_agents)]
    for _ in range(iterations):
        iteration_stats, ended = ppo.iterate()
        stats.append(iteration_stats)
        for agent, returns in enumerate(ended):
            finished[agent].extend(returns)
    return stats, finished
