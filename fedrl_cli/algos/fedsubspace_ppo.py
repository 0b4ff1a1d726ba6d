"""Federated subspace actor-critic, deep form (arXiv 2605.14423): PPO whose trunk is shared, heads personal.

Locally every agent runs ``local_steps`` PPO iterations (CleanRL's PPO). Shared: the trunk, the layers named
by ``shared_layers`` (by default the actor's and critic's hidden layers): agents send them up, the server
broadcasts their mean. Kept local: the heads (actor mean layer, log-std, value head), the Adam moments and
the normalisation statistics, which is what lets each agent fit its own action map.

Transfer: :func:`read_trunk` and :func:`apply_trunk` start a new run's agents from the trunk of a finished run,
frozen or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from fedrl_cli.algos.fedavg_ppo import FedAvgPPO
from fedrl_cli.algos.ppo import load_model

if TYPE_CHECKING:
    from fedrl_cli.workers import ShardedAgents


def in_layers(name: str, layers: list[str]) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


class FedSubspacePPO(FedAvgPPO):
    def __init__(self, agents: ShardedAgents, local_steps: int, shared_layers: list[str]) -> None:
        super().__init__(agents, local_steps)
        self.shared_layers = shared_layers

    def shared(self) -> list[str]:
        return [name for name in self.agents.parameter_names if in_layers(name, self.shared_layers)]


def read_trunk(run_dir: Path) -> dict[str, torch.Tensor]:
    """The shared trunk of the fedsubspace_ac run in ``run_dir``: parameter name → its values (leading axis 1)."""
    source, _, _, config = load_model(run_dir / "model.pt")
    if config["algo"]["name"] != "fedsubspace_ac":
        raise ValueError(f"{run_dir} is a {config['algo']['name']} run; a trunk comes from a fedsubspace_ac run")
    layers = config["algo"]["shared_layers"]
    # the trunk is identical across the source's agents
    return {name: p.detach()[:1].clone() for name, p in source.named_parameters() if in_layers(name, layers)}


def apply_trunk(model: nn.Module, trunk: dict[str, torch.Tensor], freeze: bool) -> None:
    """Copy ``trunk`` (from :func:`read_trunk`) into every agent of ``model``; with ``freeze`` it stops learning."""
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trunk.items():
            named[name].copy_(value.expand_as(named[name]))
            named[name].requires_grad_(not freeze)
