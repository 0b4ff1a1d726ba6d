"""Independent random streams: one generator per purpose, derived from a seed with a ``SeedSequence``.

Every stream is keyed by what it is for, so two streams built from equal seeds (``seed == env.mdp_seed``, both 0
by default) are still independent: the MDP family never shares numbers with the learner's sampling. The
environment's own streams (the tabular family, Hopper's action maps) are the root sequence of their seed, i.e.
``default_rng(seed)``, so families and maps are those of earlier versions; every learning stream has its own key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# the purposes of the project's streams; a key's number is its SeedSequence spawn key, fixed forever
PURPOSES: dict[str, tuple[int, ...]] = {
    "mdp_family": (),  # tabular rewards and kernels (env.mdp_seed): the root stream; its per-pair and value-shape
    # children take keys that start with 0 (envs.tabular.PAIR_TABLES, VALUE_COMMON, VALUE_LOCAL, AGENT_TABLES)
    "action_maps": (),  # Hopper agents' action maps (env.action_map_seed): the root stream
    # keys of the learning streams start at 1, so no learning stream meets a family child, whatever the seeds
    "gradients": (1,),  # sampled policy-gradient trajectories (seed)
    "subspace": (2,),  # the subspace actor-critic's features, initial basis, initial states and chains (seed)
    "action_noise": (3,),  # PPO rollouts' action sampling (seed), one stream per agent
    "ppo_weights": (4,),  # PPO networks' initial weights (seed), one stream per agent
    "minibatches": (5,),  # PPO minibatch order (seed), one stream per agent
    "shared_init": (6,),  # the server's one draw of a federated PPO's shared parameters (seed)
}


def generator(seed: int, purpose: str) -> np.random.Generator:
    """The numpy generator for ``purpose`` (a key of :data:`PURPOSES`) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=PURPOSES[purpose]))


def agent_generators(seed: int, purpose: str, agents: range) -> list[np.random.Generator]:
    """One numpy generator per agent of ``agents`` (global indices) for ``purpose``: agent i's stream depends on
    ``seed`` and ``i`` only, so an agent draws the same numbers whichever other agents share its process."""
    return [
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(*PURPOSES[purpose], agent))) for agent in agents
    ]


def agent_torch_generators(seed: int, purpose: str, agents: range) -> list[torch.Generator]:
    """The torch counterpart of :func:`agent_generators` (seeded from the same per-agent ``SeedSequence``)."""
    import torch

    streams = agent_generators(seed, purpose, agents)
    return [torch.Generator().manual_seed(int(rng.integers(2**63))) for rng in streams]
