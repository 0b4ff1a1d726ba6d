"""Federated subspace actor-critic, deep form (arXiv 2605.14423): PPO whose trunk is shared, heads personal.

Locally every agent runs ``local_steps`` PPO iterations (CleanRL's PPO). Shared: the trunk, the layers named
by ``shared_layers`` (by default the actor's and critic's hidden layers): agents send them up, the server
broadcasts their mean. Kept local: the heads (actor mean layer, log-std, value head), the Adam moments and
the normalisation statistics, which is what lets each agent fit its own action map.

Transfer: :func:`load_trunk` starts a new run's agents from the trunk of a finished run, frozen or not.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fedrl_cli.algos.fedavg_ppo import FedAvgPPO
from fedrl_cli.algos.ppo import PPOAgents, load_model


def in_layers(name: str, layers: list[str]) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


class FedSubspacePPO(FedAvgPPO):
    def __init__(self, ppo: PPOAgents, local_steps: int, shared_layers: list[str]) -> None:
        super().__init__(ppo, local_steps)
        self.shared_layers = shared_layers

    def shared(self) -> list[nn.Parameter]:
        return [p for name, p in self.ppo.model.named_parameters() if in_layers(name, self.shared_layers)]


def load_trunk(model: nn.Module, run_dir: Path, freeze: bool) -> list[str]:
    """Copy the shared trunk of the fedsubspace_ac run in ``run_dir`` into every agent of ``model``; with
    ``freeze`` it stops learning. Returns the names of the parameters loaded."""
    source, _, _, config = load_model(run_dir / "model.pt")
    if config["algo"]["name"] != "fedsubspace_ac":
        raise ValueError(f"{run_dir} is a {config['algo']['name']} run; a trunk comes from a fedsubspace_ac run")
    layers = config["algo"]["shared_layers"]
    loaded = []
    with torch.no_grad():
        for (name, parameter), (_, trunk) in zip(model.named_parameters(), source.named_parameters(), strict=True):
            if in_layers(name, layers):
                parameter.copy_(trunk[:1].expand_as(parameter))  # the trunk is identical across source agents
                parameter.requires_grad_(not freeze)
                loaded.append(name)
    return loaded
