"""Federated subspace actor-critic, deep form (arXiv 2605.14423): PPO whose trunk is shared, heads personal.

Locally every agent runs ``local_steps`` PPO iterations (CleanRL's PPO). Shared: the trunk, the layers named by
``shared_layers`` (by default the actor's and critic's hidden layers): agents send them up, the server broadcasts
their mean; with ``algo.shared_init=common`` the server first broadcasts its one draw of the trunk, so every agent
starts from the same trunk (the heads keep their per-agent draws). Kept local: the heads (actor mean layer, log-std,
value head), the Adam moments and the normalisation statistics, which is what lets each agent fit its own action
map.

Transfer (a new run's agents starting from a finished run's trunk) is in :mod:`fedrl_cli.algos.trunk`.
"""

from __future__ import annotations

import torch

from fedrl_cli.algos.fedavg_ppo import FedAvgPPO
from fedrl_cli.algos.single_ppo import StackedAgents
from fedrl_cli.algos.trunk import in_layers


class FedSubspacePPO(FedAvgPPO):
    def __init__(
        self,
        agents: StackedAgents,
        local_steps: int,
        shared_layers: list[str],
        initial: dict[str, torch.Tensor] | None = None,
        rescale_first_average: bool = False,
        reset_moments: bool = False,
    ) -> None:
        self.shared_layers = shared_layers  # before the round-0 broadcast, which sends the trunk only
        super().__init__(agents, local_steps, initial, rescale_first_average, reset_moments)

    def shared(self) -> list[str]:
        return [name for name in self.agents.parameter_names if in_layers(name, self.shared_layers)]
