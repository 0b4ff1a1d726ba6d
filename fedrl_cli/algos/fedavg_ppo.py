"""FedAvg PPO: ``local_steps`` PPO iterations per agent, then the server averages every actor and critic
parameter and broadcasts the mean.

Shared: the parameters (up and down). Kept local: each agent's Adam moments, which stay matched to its own
gradient statistics (averaging them would mix second moments of different objectives; resetting them would
restart Adam's bias correction every round), and its observation and reward normalisation statistics, which
describe its own environment (under heterogeneous action maps they differ by design) and are raw data
statistics that FedAvg does not send.
"""

from __future__ import annotations

import numpy as np
import torch

from fedrl_cli.algos.single_ppo import SinglePPO


class FedAvgPPO(SinglePPO):
    def round(self) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        result = super().round()
        self.average()
        return result

    def shared(self) -> list[str]:
        """What the agents share: every actor and critic parameter."""
        return self.agents.parameter_names

    def average(self) -> None:
        """Every agent sends its shared parameters; the server broadcasts their mean, which every agent adopts."""
        with torch.no_grad():
            local = self.agents.parameters(self.shared())
            mean = {name: self.channel.broadcast(self.channel.up(v).mean(0, keepdim=True)) for name, v in local.items()}
        self.agents.load_parameters(mean)
