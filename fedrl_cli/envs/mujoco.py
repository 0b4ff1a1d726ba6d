"""A federated gymnasium MuJoCo task (Hopper-v5 by default; any of :data:`fedrl_cli.envs.tasks.TASKS`): N agents,
each with its own action map ``M_i`` and ``n_envs`` environment copies.

Agent i's action ``a`` reaches the simulator as ``clip(M_i clip(a, low, high), low, high)``, with the task's action
bounds (±1, or ±0.4 for the humanoids). Around the simulator the
copies get what CleanRL's ``ppo_continuous_action`` wrappers give each environment: episode statistics on raw
rewards, action clipping, running observation normalisation (clipped to ±10) and discounted-return reward
normalisation (clipped to ±10), each copy with its own statistics (with the default ``n_envs = 1``, one set
per agent). The statistics follow gymnasium's ``NormalizeObservation`` / ``NormalizeReward`` update rules but
are computed for all copies in one vectorised step: per-copy wrappers cost more than the simulator itself.
All N·n_envs copies step through one vector env, agent-major (copy k of agent i is sub-environment
``i·n_envs + k``): where the task has it, :class:`~fedrl_cli.envs.batched_mujoco.BatchedLocomotion`, whose physics
for all copies is one batched MuJoCo call per step (bit for bit gymnasium's, about twice as fast), or gymnasium's
own copies of the task in a sync or async vector env, the reference path. A worker that owns agents ``first_agent``
onwards seeds its copies as the whole run would (copy k of global agent i from ``seed + i·n_envs + k``), so the
agents' environments do not depend on how the agent axis is split. :meth:`FederatedMujoco.agent_snapshots`
captures every agent's copies mid-episode (MuJoCo's full integration state, step counts, reset-noise
generators, statistics), so a restored run steps bit for bit as the original would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import gymnasium as gym
import mujoco
import numpy as np

from fedrl_cli.envs.batched_mujoco import BatchedLocomotion
from fedrl_cli.envs.tasks import vector_kind
from fedrl_cli.seeding import generator

DEFAULT_ID = "Hopper-v5"
OBS_CLIP = 10.0
REWARD_CLIP = 10.0
EPSILON = 1e-8


def action_maps(
    kind: str,
    n_agents: int,
    action_dim: int,
    seed: int,
    identity_first: bool,
    gain_range: tuple[float, float] = (0.5, 1.5),
) -> np.ndarray:
    """The agents' action maps ``M`` (N, A, A), drawn from ``seed``, every agent's different from the others'.

    ``signed_permutation``: a permutation matrix with random signs; ``permutation``: without signs; ``gain``:
    a diagonal of gains drawn uniformly from ``gain_range``; ``none``: the identity. With ``identity_first``
    agent 0 keeps the identity whatever the kind. A (signed) permutation equal to an earlier agent's is drawn
    again, so N may not exceed the number of distinct maps (:func:`fedrl_cli.config.distinct_maps` refuses it).
    """
    rng = generator(seed, "action_maps")
    maps = np.repeat(np.eye(action_dim)[None], n_agents, axis=0)
    if kind == "none":
        return maps
    first = 1 if identity_first else 0
    for agent in range(first, n_agents):
        while True:
            if kind == "gain":
                maps[agent] = np.diag(rng.uniform(*gain_range, size=action_dim))
                break
            maps[agent] = np.eye(action_dim)[rng.permutation(action_dim)]
            if kind == "signed_permutation":
                maps[agent] *= rng.choice([-1.0, 1.0], size=(action_dim, 1))
            if not any(np.array_equal(maps[agent], maps[other]) for other in range(agent)):
                break
    return maps


class Resumable(gym.Wrapper):
    """A MuJoCo environment whose ``simulator_state`` attribute reads and writes everything its next steps
    depend on: MuJoCo's integration state (positions, velocities, controls, solver warm start, time), the time
    limit's step count and the generator of the reset noise. Vector envs reach it with ``get_attr``/``set_attr``."""

    SPEC = mujoco.mjtState.mjSTATE_INTEGRATION

    @property
    def simulator_state(self) -> dict[str, object]:
        base = self.unwrapped
        physics = np.empty(mujoco.mj_stateSize(base.model, self.SPEC))
        mujoco.mj_getState(base.model, base.data, physics, self.SPEC)
        return {
            "physics": physics,
            "elapsed_steps": self.env.get_wrapper_attr("_elapsed_steps"),
            "reset_rng": base.np_random.bit_generator.state,
        }

    @simulator_state.setter
    def simulator_state(self, state: dict[str, object]) -> None:
        base = self.unwrapped
        mujoco.mj_setState(base.model, base.data, state["physics"], self.SPEC)
        self.env.set_wrapper_attr("_elapsed_steps", state["elapsed_steps"])
        base.np_random.bit_generator.state = state["reset_rng"]


def _make_env(env_id: str) -> gym.Env:
    return Resumable(gym.make(env_id))


@dataclass
class RunningMoments:
    """Running mean and variance of a stream per copy (gymnasium's ``RunningMeanStd``, batched over copies):
    ``mean``, ``var`` (copies, *shape) and ``count`` (copies,), updated with one sample per copy."""

    mean: np.ndarray
    var: np.ndarray
    count: np.ndarray

    @classmethod
    def start(cls, copies: int, shape: tuple[int, ...] = ()) -> RunningMoments:
        return cls(np.zeros((copies, *shape)), np.ones((copies, *shape)), np.full(copies, 1e-4))

    def rows(self, copies: slice) -> RunningMoments:
        """The statistics of ``copies`` (copied)."""
        return RunningMoments(self.mean[copies].copy(), self.var[copies].copy(), self.count[copies].copy())

    @classmethod
    def stack(cls, parts: list[RunningMoments]) -> RunningMoments:
        """The copies of ``parts``, one after another."""
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("mean", "var", "count")))

    def update(self, sample: np.ndarray) -> None:
        count = self.count.reshape(-1, *([1] * (sample.ndim - 1)))
        delta = sample - self.mean
        total = count + 1
        self.mean = self.mean + delta / total
        self.var = (self.var * count + delta**2 * count / total) / total
        self.count = self.count + 1


class FederatedMujoco:
    """The N agents' copies of the task ``env_id`` as one vector env, with agent-major (N, n_envs, ...) arrays.

    ``vector``: ``batched``, ``sync``, ``async`` or ``auto`` (:func:`~fedrl_cli.envs.tasks.vector_kind`).
    ``training=False`` (evaluation) freezes the observation statistics and leaves rewards unnormalised.
    """

    def __init__(
        self,
        maps: np.ndarray,
        n_envs: int,
        gamma: float,
        seed: int,
        vector: str = "auto",
        training: bool = True,
        observation_statistics: RunningMoments | None = None,
        first_agent: int = 0,
        physics_threads: int = 1,
        env_id: str = DEFAULT_ID,
    ) -> None:
        self.maps, self.n_envs, self.gamma, self.seed, self.training = maps, n_envs, gamma, seed, training
        self.first_agent, self.env_id, self.vector = first_agent, env_id, vector_kind(vector, env_id)
        self.n_agents = maps.shape[0]
        copies = self.n_agents * n_envs
        if self.vector == "batched":
            self.envs: gym.vector.VectorEnv = BatchedLocomotion(copies, env_id, physics_threads)
        else:
            kind = gym.vector.AsyncVectorEnv if self.vector == "async" else gym.vector.SyncVectorEnv
            make = partial(_make_env, env_id)
            self.envs = kind([make] * copies, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.obs_dim = self.envs.single_observation_space.shape[0]
        self.action_dim = self.envs.single_action_space.shape[0]
        self.action_low = self.envs.single_action_space.low.astype(np.float64)
        self.action_high = self.envs.single_action_space.high.astype(np.float64)
        self.copy_maps = np.repeat(maps, n_envs, axis=0)  # (copies, A, A)
        self.obs_stats = observation_statistics or RunningMoments.start(copies, (self.obs_dim,))
        self.return_stats = RunningMoments.start(copies)
        self.discounted_return = np.zeros(copies)
        self.episode_return = np.zeros(copies)
        self.raw_obs = np.zeros((copies, self.obs_dim))

    def _agent_major(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(self.n_agents, self.n_envs, *array.shape[1:])

    def _normalise(self, raw_obs: np.ndarray) -> np.ndarray:
        self.raw_obs = raw_obs
        if self.training:
            self.obs_stats.update(raw_obs)
        scaled = (raw_obs - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + EPSILON)
        return self._agent_major(np.clip(scaled, -OBS_CLIP, OBS_CLIP).astype(np.float32))

    def simulator_actions(self, actions: np.ndarray) -> np.ndarray:
        """``actions`` (N, n_envs, A) as the simulator receives them: ``clip(M_i clip(a))`` per copy, within the
        task's action bounds."""
        low, high = self.action_low, self.action_high
        clipped = np.clip(actions.reshape(-1, self.action_dim), low, high)
        return np.clip(np.einsum("cij,cj->ci", self.copy_maps, clipped), low, high)

    def reset(self) -> np.ndarray:
        """Normalised observations (N, n_envs, obs_dim)."""
        first = self.seed + self.first_agent * self.n_envs
        obs, _ = self.envs.reset(seed=[first + i for i in range(self.n_agents * self.n_envs)])
        return self._normalise(obs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[float]]]:
        """``actions`` (N, n_envs, A) → observations, rewards (normalised when training) and dones (N, n_envs),
        and per agent the raw returns of the episodes that ended at this step."""
        obs, reward, terminated, truncated, _ = self.envs.step(self.simulator_actions(actions))
        done = np.logical_or(terminated, truncated)
        self.episode_return += reward
        finished: list[list[float]] = [[] for _ in range(self.n_agents)]
        for index in np.flatnonzero(done):
            finished[index // self.n_envs].append(float(self.episode_return[index]))
        self.episode_return[done] = 0.0
        if self.training:  # gymnasium's NormalizeReward: scale by the std of the discounted return
            self.discounted_return = self.discounted_return * self.gamma * (1 - terminated) + reward
            self.return_stats.update(self.discounted_return)
            reward = np.clip(reward / np.sqrt(self.return_stats.var + EPSILON), -REWARD_CLIP, REWARD_CLIP)
        return self._normalise(obs), self._agent_major(reward), self._agent_major(done), finished

    _PER_COPY = ("discounted_return", "episode_return", "raw_obs")

    def agent_snapshots(self) -> list[dict[str, object]]:
        """Per agent: its copies' simulator states, normalisation statistics and running sums (see
        :meth:`restore_agents`, which takes any agents' snapshots in the order of this env's agents)."""
        simulators = list(self.envs.get_attr("simulator_state"))
        snapshots = []
        for agent in range(self.n_agents):
            copies = slice(agent * self.n_envs, (agent + 1) * self.n_envs)
            snapshots.append(
                {
                    "simulators": simulators[copies],
                    "obs_stats": self.obs_stats.rows(copies),
                    "return_stats": self.return_stats.rows(copies),
                    **{name: getattr(self, name)[copies].copy() for name in self._PER_COPY},
                }
            )
        return snapshots

    def restore_agents(self, snapshots: list[dict[str, object]]) -> None:
        """Put every copy back where :meth:`agent_snapshots` found it (the vector env must have been reset once)."""
        self.envs.set_attr("simulator_state", [state for s in snapshots for state in s["simulators"]])
        self.obs_stats = RunningMoments.stack([s["obs_stats"] for s in snapshots])
        self.return_stats = RunningMoments.stack([s["return_stats"] for s in snapshots])
        for name in self._PER_COPY:
            setattr(self, name, np.concatenate([s[name] for s in snapshots]))

    def close(self) -> None:
        self.envs.close()


def evaluate(
    policy: Callable[[np.ndarray], np.ndarray],
    maps: np.ndarray,
    statistics: RunningMoments,
    episodes: int,
    seed: int,
    first_agent: int = 0,
    env_id: str = DEFAULT_ID,
    vector: str = "auto",
) -> np.ndarray:
    """Mean raw return per agent of ``episodes`` episodes on a fresh copy of the task with the agent's map and its
    first training copy's observation statistics, frozen; ``policy`` maps (N, obs_dim) to (N, A). Agent i (global
    index ``first_agent + i``) evaluates on a copy seeded ``seed + first_agent + i``."""
    n_agents = maps.shape[0]
    first_copies = np.arange(n_agents) * (statistics.count.shape[0] // n_agents)
    frozen = RunningMoments(statistics.mean[first_copies], statistics.var[first_copies], statistics.count[first_copies])
    envs = FederatedMujoco(maps, 1, 0.99, seed, vector, False, frozen, first_agent, env_id=env_id)
    returns: list[list[float]] = [[] for _ in range(n_agents)]
    obs = envs.reset()
    while min(len(r) for r in returns) < episodes:
        obs, _, _, finished = envs.step(policy(obs[:, 0])[:, None])
        for agent, ended in enumerate(finished):
            returns[agent].extend(ended[: episodes - len(returns[agent])])
    envs.close()
    return np.array([np.mean(r) for r in returns])
