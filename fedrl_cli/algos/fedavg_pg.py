"""FedAvg policy gradient: the biased baseline of Fast-FedPG.

Locally, from ``θ_{i,0} = θ̄``, agent i takes H plain steps ``θ_{i,ℓ+1} = θ_{i,ℓ} + η ĝ_i(θ_{i,ℓ})`` on its own
objective. Shared: the deltas ``θ_{i,H} − θ̄`` up and the new ``θ̄ = θ̄ + α_g · mean_i Δ_i`` down. Its fixed point
drifts towards the agents' own optima, the heterogeneity bias that grows with H.
"""

from __future__ import annotations

import numpy as np

from fedrl_cli.algos.common import ServerAveragedPG


class FedAvgPG(ServerAveragedPG):
    def local_direction(self, theta: np.ndarray) -> np.ndarray:
        """The agent's own gradient ``ĝ_i(θ_{i,ℓ})``."""
        return self.oracle(theta)
