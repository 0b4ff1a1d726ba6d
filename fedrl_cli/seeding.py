"""Independent random streams: one generator per purpose, derived from a seed with a ``SeedSequence``.

Every stream is keyed by what it is for, so two streams built from equal seeds (``seed == env.mdp_seed``, both 0
by default) are still independent: the MDP family never shares numbers with the learner's sampling. The
environment's own streams (the tabular family, Hopper's action maps) are the root sequence of their seed, i.e.
``default_rng(seed)``, so families and maps are those of earlier versions; every learning stream has its own key.
"""

from __future__ import annotations

import numpy as np

# the purposes of the project's streams; a key's number is its SeedSequence spawn key, fixed forever
PURPOSES: dict[str, tuple[int, ...]] = {
    "mdp_family": (),  # tabular rewards and kernels (env.mdp_seed): the root stream; its per-pair and value-shape
    # children take keys that start with 0 (envs.tabular.PAIR_TABLES, VALUE_COMMON, VALUE_LOCAL)
    "action_maps": (),  # Hopper agents' action maps (env.action_map_seed): the root stream
    # keys of the learning streams start at 1, so no learning stream meets a family child, whatever the seeds
    "gradients": (1,),  # sampled policy-gradient trajectories (seed)
    "subspace": (2,),  # the subspace actor-critic's features, initial basis, initial states and chains (seed)
    "action_noise": (3,),  # PPO rollouts' action sampling (seed)
}


def generator(seed: int, purpose: str) -> np.random.Generator:
    """The numpy generator for ``purpose`` (a key of :data:`PURPOSES`) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=PURPOSES[purpose]))
