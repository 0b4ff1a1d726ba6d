"""Local policy gradient: no communication; every agent ascends its own objective alone.

Each round is H steps ``θ_{i,ℓ+1} = θ_{i,ℓ} + η ĝ_i(θ_{i,ℓ})``, so rounds stay comparable with the federated
algorithms. Nothing is shared; ``theta_bar`` is the mean of the agents' parameters, reported as the global point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedrl_cli.algos.common import Channel, GradientOracle, replicate


@dataclass
class LocalPG:
    oracle: GradientOracle
    theta0: np.ndarray
    n_agents: int
    local_steps: int
    lr: float
    channel: Channel = field(init=False)
    agent_params: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.channel = Channel(self.n_agents)
        self.agent_params = replicate(self.theta0, self.n_agents)

    def round(self) -> None:
        for _ in range(self.local_steps):
            self.agent_params += self.lr * self.oracle(self.agent_params)

    @property
    def theta_bar(self) -> np.ndarray:
        return self.agent_params.mean(axis=0)
