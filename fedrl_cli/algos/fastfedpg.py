"""Fast-FedPG (Zhu, Heath, Mitra), Algorithm 1: federated policy gradient with drift correction.

Locally, from ``θ_{i,0} = θ̄``, agent i takes H steps (Eq. (6), ascent since we maximise reward):
``θ_{i,ℓ+1} = θ_{i,ℓ} + η (ĝ_i(θ_{i,ℓ}) − ĝ_i(θ̄) + ĝ(θ̄))``.
Shared: the deltas ``θ_{i,H} − θ̄`` up, the new ``θ̄`` (Eq. (7)) down, then every agent's fresh ``ĝ_i(θ̄)`` up and
their mean ``ĝ(θ̄)`` down; both correction terms of the next round reuse them. ``ĝ(θ̄⁰)`` is computed at start.
"""

from __future__ import annotations

import numpy as np

from fedrl_cli.algos.common import ServerAveragedPG, replicate


class FastFedPG(ServerAveragedPG):
    def __post_init__(self) -> None:
        super().__post_init__()
        self._share_gradients_at_server_point()

    def _share_gradients_at_server_point(self) -> None:
        self.local_gradient_at_server = self.channel.up(self.oracle(replicate(self.theta_bar, self.n_agents)))
        self.global_gradient = self.channel.broadcast(self.local_gradient_at_server.mean(axis=0))

    def local_direction(self, theta: np.ndarray) -> np.ndarray:
        """Eq. (6): ``ĝ_i(θ_{i,ℓ}) − ĝ_i(θ̄) + ĝ(θ̄)``."""
        return self.oracle(theta) + (self.global_gradient - self.local_gradient_at_server)

    def round(self) -> None:
        super().round()
        self._share_gradients_at_server_point()
