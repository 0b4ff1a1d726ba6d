"""FedAvg PPO: ``local_steps`` PPO iterations per agent, then the server averages every actor and critic parameter and
broadcasts the mean.

Shared: the parameters (up and down); with ``initial`` (``algo.shared_init=common``) the server broadcasts its one
draw of them at round 0, so every agent starts from the same model, as in FedAvg. Kept local: each agent's Adam
moments, which stay matched to its own gradient statistics (averaging them would mix second moments of different
objectives; resetting them would restart Adam's bias correction every round), and its observation and reward
normalisation statistics, which describe its own environment (under heterogeneous action maps they differ by design)
and are raw data statistics that FedAvg does not send.
"""

from __future__ import annotations

import numpy as np
import torch

from fedrl_cli.algos.single_ppo import SinglePPO, StackedAgents


class FedAvgPPO(SinglePPO):
    def __init__(
        self,
        agents: StackedAgents,
        local_steps: int,
        initial: dict[str, torch.Tensor] | None = None,
        rescale_first_average: bool = False,
        reset_moments: bool = False,
    ) -> None:
        super().__init__(agents, local_steps)
        self.rescale_first_average, self.reset_moments = rescale_first_average, reset_moments
        self.averages = 0  # the averages done so far (a resumed run sets it)
        if initial is not None:
            self.start_from(initial)

    def start_from(self, initial: dict[str, torch.Tensor]) -> None:
        """Round 0: the server broadcasts ``initial``'s shared parameters (leading axis 1); every agent adopts
        them. Names missing from ``initial`` (a transferred trunk, already common) keep their values."""
        shared = {name: self.channel.broadcast(initial[name]) for name in self.shared() if name in initial}
        self.agents.load_parameters(shared)

    def round(self) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        result = super().round()
        self.average()
        return result

    def shared(self) -> list[str]:
        """What the agents share: every actor and critic parameter."""
        return self.agents.parameter_names

    def average(self) -> None:
        """Every agent sends its shared parameters; the server broadcasts their mean, which every agent adopts.

        Options for the study of what averaging unrelated networks costs: ``rescale_first_average`` gives each
        weight matrix of the first average the agents' mean Frobenius norm (the mean of N independent draws is about
        1/√N as large); ``reset_moments`` restarts every agent's Adam moments of the shared parameters after each
        average."""
        with torch.no_grad():
            local = self.agents.parameters(self.shared())
            mean = {name: self.channel.up(v).mean(0, keepdim=True) for name, v in local.items()}
            if self.rescale_first_average and self.averages == 0:
                for name, value in mean.items():
                    if name.endswith("weight"):
                        value *= local[name].flatten(1).norm(dim=1).mean() / value.norm()
            mean = {name: self.channel.broadcast(value) for name, value in mean.items()}
        self.agents.load_parameters(mean)
        if self.reset_moments:
            self.agents.reset_moments(list(mean))
        self.averages += 1
