"""FedAvg policy gradient: the biased baseline of Fast-FedPG.

Locally, from ``θ_{i,0} = θ̄``, agent i takes H plain steps ``θ_{i,ℓ+1} = θ_{i,ℓ} + η ĝ_i(θ_{i,ℓ})`` on its own
objective. Shared: the deltas ``θ_{i,H} − θ̄`` up and the new ``θ̄ = θ̄ + α_g · mean_i Δ_i`` down. Its fixed point
drifts towards the agents' own optima, the heterogeneity bias that grows with H.
"""

from __future__ import annotations

from fedrl_cli.algos.common import ServerAveragedPG, replicate, server_average


class FedAvgPG(ServerAveragedPG):
    def round(self) -> None:
        theta = replicate(self.theta_bar, self.n_agents)
        for _ in range(self.local_steps):
            theta += self.lr * self.oracle(theta)
        self.theta_bar = server_average(self.channel, self.theta_bar, theta, self.global_lr)
