"""What the tabular policy-gradient algorithms share: the communication channel and the gradient oracle."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from fedrl_cli.envs.tabular import TabularFamily

Array = TypeVar("Array")  # a numpy array or a torch tensor


class Channel:
    """Agent ↔ server messages, counted in floats: ``up`` for one message per agent, ``broadcast`` for one
    message from the server to every agent."""

    def __init__(self, n_agents: int) -> None:
        self.n_agents = n_agents
        self.floats = 0

    def up(self, per_agent: Array) -> Array:
        """Every agent sends its slice of ``per_agent`` (leading axis = agents) to the server."""
        self.floats += math.prod(per_agent.shape)
        return per_agent

    def broadcast(self, message: Array) -> Array:
        """The server sends ``message`` to every agent."""
        self.floats += math.prod(message.shape) * self.n_agents
        return message


class GradientOracle:
    """Per-agent policy gradients at per-agent parameters, exact or sampled (Fast-FedPG Eq. (5)).

    ``samples`` counts every transition drawn so far, by every agent.
    """

    def __init__(
        self,
        family: TabularFamily,
        gradient: str,
        batch_size: int,
        horizon: int,
        rng: np.random.Generator,
    ) -> None:
        self.family = family
        self.exact = gradient == "exact"
        self.batch_size = batch_size
        self.horizon = horizon
        self.rng = rng
        self.samples = 0

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` (N, S, A) → ``ĝ_i(θ_i)`` (N, S, A)."""
        if self.exact:
            return self.family.gradient(theta)
        self.samples += theta.shape[0] * self.batch_size * self.horizon
        return self.family.sample_gradient(theta, self.batch_size, self.horizon, self.rng)


def server_average(channel: Channel, theta_bar: np.ndarray, local: np.ndarray, global_lr: float) -> np.ndarray:
    """Agents send ``θ_{i,H} − θ̄``; the server steps ``θ̄ + α_g · mean_i(θ_{i,H} − θ̄)`` (Fast-FedPG Eq. (7))
    and broadcasts the new ``θ̄``."""
    deltas = channel.up(local - theta_bar)
    return channel.broadcast(theta_bar + global_lr * deltas.mean(axis=0))


def replicate(theta_bar: np.ndarray, n_agents: int) -> np.ndarray:
    """Each agent's own writable copy of the server parameters: (S, A) → (N, S, A)."""
    return np.repeat(theta_bar[None], n_agents, axis=0)


@dataclass
class ServerAveragedPG:
    """State common to the algorithms whose server averages the agents' local iterates each round."""

    oracle: GradientOracle
    theta_bar: np.ndarray
    n_agents: int
    local_steps: int
    lr: float
    global_lr: float
    channel: Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = Channel(self.n_agents)

    @property
    def agent_params(self) -> np.ndarray:
        """After a round every agent holds the broadcast ``θ̄``."""
        return replicate(self.theta_bar, self.n_agents)
