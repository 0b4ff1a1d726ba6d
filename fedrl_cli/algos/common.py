"""What the tabular policy-gradient algorithms share: the communication channel and the gradient oracle."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
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
    """Per-agent policy gradients of ``J_τ`` (τ = ``entropy_coef``; the plain return at 0) at per-agent
    parameters, exact or sampled (Fast-FedPG Eq. (5), or its reward-to-go form: ``estimator``).

    ``samples`` counts every transition drawn so far, by every agent.
    """

    # class-level defaults: an oracle from a checkpoint written before these keys existed is the plain objective's
    entropy_coef: float = 0.0
    estimator: str = "reinforce"

    def __init__(
        self,
        family: TabularFamily,
        gradient: str,
        batch_size: int,
        horizon: int,
        rng: np.random.Generator,
        entropy_coef: float = 0.0,
        estimator: str = "reinforce",
    ) -> None:
        self.family = family
        self.exact = gradient == "exact"
        self.batch_size = batch_size
        self.horizon = horizon
        self.rng = rng
        self.entropy_coef = entropy_coef
        self.estimator = estimator
        self.samples = 0

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` (N, S, A) → ``ĝ_i(θ_i)`` (N, S, A)."""
        if self.exact:
            return self.family.gradient(theta, self.entropy_coef)
        self.samples += theta.shape[0] * self.batch_size * self.horizon
        return self.family.sample_gradient(
            theta, self.batch_size, self.horizon, self.rng, self.entropy_coef, self.estimator
        )


@dataclass(frozen=True)
class StepSizeSchedule:
    """Step sizes over rounds ``t = 0, 1, ...`` (t counts the rounds completed before this one): ``η_t = η·f(t)``.

    ``constant``: f = 1 (Fast-FedPG's Theorems 2 and 3 take one η chosen for the budget N, H, T);
    ``inverse_time``: f = 1 / (1 + t/t0), the anytime schedule of O(1/t) rates under gradient domination;
    ``inverse_sqrt``: f = 1 / √(1 + t/t0), the schedule of Õ(1/√T) rates (Theorem 3; the subspace actor-critic's
    Õ(1/√(TK)) single-timescale steps). ``t0`` is ``decay_rounds``.
    """

    kind: str = "constant"
    decay_rounds: float = 1.0

    def factor(self, round_index: int) -> float:
        if self.kind == "constant":
            return 1.0
        decay = 1.0 + round_index / self.decay_rounds
        return 1.0 / decay if self.kind == "inverse_time" else 1.0 / math.sqrt(decay)


def server_average(channel: Channel, theta_bar: np.ndarray, local: np.ndarray, global_lr: float) -> np.ndarray:
    """Agents send ``θ_{i,H} − θ̄``; the server steps ``θ̄ + α_g · mean_i(θ_{i,H} − θ̄)`` (Fast-FedPG Eq. (7))
    and broadcasts the new ``θ̄``."""
    deltas = channel.up(local - theta_bar)
    return channel.broadcast(theta_bar + global_lr * deltas.mean(axis=0))


def replicate(theta_bar: np.ndarray, n_agents: int) -> np.ndarray:
    """Each agent's own writable copy of the server parameters: (S, A) → (N, S, A)."""
    return np.repeat(theta_bar[None], n_agents, axis=0)


@dataclass
class ServerAveragedPG(ABC):
    """State common to the algorithms whose server averages the agents' local iterates each round.

    ``agent_params`` are the agents' own end-of-round iterates ``θ_{i,H}``, before the server averages them
    (``θ̄⁰`` for all at the start); ``completed_rounds`` is the schedule's ``t``.
    """

    oracle: GradientOracle
    theta_bar: np.ndarray
    n_agents: int
    local_steps: int
    lr: float
    global_lr: float
    schedule: StepSizeSchedule = field(default_factory=StepSizeSchedule)
    channel: Channel = field(init=False)
    agent_params: np.ndarray = field(init=False)
    completed_rounds: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.channel = Channel(self.n_agents)
        self.agent_params = replicate(self.theta_bar, self.n_agents)

    def round(self) -> None:
        """H local steps from ``θ̄`` with this round's step size, then the server average (Eq. (7))."""
        theta = replicate(self.theta_bar, self.n_agents)
        lr = self.lr * self.schedule.factor(self.completed_rounds)
        for _ in range(self.local_steps):
            theta += lr * self.local_direction(theta)
        self.agent_params = theta
        self.theta_bar = server_average(self.channel, self.theta_bar, theta, self.global_lr)
        self.completed_rounds += 1

    @property
    def policies(self) -> np.ndarray:
        """The policy the federation stands for, measured as the global point: ``θ̄`` (1, S, A)."""
        return self.theta_bar[None]

    @abstractmethod
    def local_direction(self, theta: np.ndarray) -> np.ndarray:
        """The ascent direction of every agent's local step at its iterate ``theta`` (N, S, A)."""
