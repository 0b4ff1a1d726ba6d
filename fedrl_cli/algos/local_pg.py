"""Local policy gradient: no communication; every agent ascends its own objective alone.

Each round is H steps ``θ_{i,ℓ+1} = θ_{i,ℓ} + η_t ĝ_i(θ_{i,ℓ})``, so rounds stay comparable with the federated
algorithms. Nothing is shared. No policy is common to the agents, so the global metrics are measured at every
agent's own parameters and averaged (``objective`` = mean_i J(θ_i)), never at the mean of the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedrl_cli.algos.common import Channel, GradientOracle, StepSizeSchedule, replicate


@dataclass
class LocalPG:
    oracle: GradientOracle
    theta0: np.ndarray
    n_agents: int
    local_steps: int
    lr: float
    schedule: StepSizeSchedule = field(default_factory=StepSizeSchedule)
    channel: Channel = field(init=False)
    agent_params: np.ndarray = field(init=False)
    completed_rounds: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.channel = Channel(self.n_agents)
        self.agent_params = replicate(self.theta0, self.n_agents)

    def round(self) -> None:
        lr = self.lr * self.schedule.factor(self.completed_rounds)
        for _ in range(self.local_steps):
            self.agent_params += lr * self.oracle(self.agent_params)
        self.completed_rounds += 1

    @property
    def policies(self) -> np.ndarray:
        """Every agent's own policy: no common one exists, so the global metrics average over these."""
        return self.agent_params
