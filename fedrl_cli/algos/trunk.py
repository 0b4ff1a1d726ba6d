"""The shared trunk of the federated subspace PPO: which parameters belong to it, and how a finished run's trunk
starts a new run's agents (transfer, arXiv 2605.14423). Beside the PPO core, so that both the algorithm and the
workers that hold the agents can import it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fedrl_cli.algos.ppo import ActorCritic, load_model


def in_layers(name: str, layers: list[str]) -> bool:
    """Whether parameter ``name`` (``actor_mean.0.weight``) belongs to one of ``layers`` (``actor_mean.0``)."""
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


# the hidden layers of the actor and the critic: fedsubspace_ac's default trunk, and the trunk taken from a control
HIDDEN_LAYERS = ["actor_mean.0", "actor_mean.2", "critic.0", "critic.2"]


def read_trunk(run_dir: Path, obs_dim: int, action_dim: int) -> dict[str, torch.Tensor]:
    """The trunk of the PPO run in ``run_dir``: parameter name → agent 0's values (leading axis 1). From a
    fedsubspace_ac run its shared layers (identical across its agents); from a single_ppo or fedavg_ppo run, a
    control, its hidden layers (:data:`HIDDEN_LAYERS`). :class:`ValueError` in one line when model.pt cannot be
    read, names no such layers, or holds layers of another shape than an ``obs_dim`` → ``action_dim`` agent's."""
    source, _, _, config = load_model(run_dir / "model.pt")
    algo = config.get("algo") if isinstance(config, dict) else None
    if not isinstance(algo, dict) or algo.get("name") not in ("fedsubspace_ac", "single_ppo", "fedavg_ppo"):
        raise ValueError(f"{run_dir / 'model.pt'} does not say which PPO algorithm made it")
    layers = algo.get("shared_layers") if algo["name"] == "fedsubspace_ac" else HIDDEN_LAYERS
    expected = {name: p.shape[1:] for name, p in ActorCritic(1, obs_dim, action_dim).named_parameters()}
    trunk = {name: p.detach()[:1].clone() for name, p in source.named_parameters() if in_layers(name, layers or [])}
    wrong = [name for name, value in trunk.items() if value.shape[1:] != expected[name]]
    if not trunk or wrong:
        what = f"layer {wrong[0]} of shape {tuple(trunk[wrong[0]].shape[1:])}" if wrong else "no trunk layers"
        raise ValueError(f"{run_dir / 'model.pt'} holds {what} (the new agents have {obs_dim} inputs)")
    return trunk


def apply_trunk(model: nn.Module, trunk: dict[str, torch.Tensor], freeze: bool) -> None:
    """Copy ``trunk`` (from :func:`read_trunk`) into every agent of ``model``; with ``freeze`` it stops learning."""
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trunk.items():
            named[name].copy_(value.expand_as(named[name]))
            named[name].requires_grad_(not freeze)
