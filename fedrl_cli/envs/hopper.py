"""Federated Hopper-v5: N agents, each with its own action map ``M_i`` and ``n_envs`` environment copies.

Agent i's action ``a`` reaches the simulator as ``clip(M_i a, −1, 1)``. Every copy is wrapped as CleanRL's
``ppo_continuous_action`` does: episode statistics (raw rewards), action clipping, the action map, running
observation normalisation (clipped to ±10) and running discounted-return reward normalisation (clipped to
±10). Each copy keeps its own statistics, as in CleanRL; with the default ``n_envs = 1`` that is one set per
agent. All N·n_envs copies step through one gymnasium vector env (sync, or async with one process each),
agent-major: copy k of agent i is sub-environment ``i·n_envs + k``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd

ENV_ID = "Hopper-v5"
ACTION_MAPS = ("none", "signed_permutation", "permutation", "gain")
OBS_CLIP = 10.0
REWARD_CLIP = 10.0


def action_maps(
    kind: str,
    n_agents: int,
    action_dim: int,
    seed: int,
    identity_first: bool,
    gain_range: tuple[float, float] = (0.5, 1.5),
) -> np.ndarray:
    """The agents' action maps ``M`` (N, A, A), drawn from ``seed``.

    ``signed_permutation``: a permutation matrix with random signs; ``permutation``: without signs; ``gain``:
    a diagonal of gains drawn uniformly from ``gain_range``; ``none``: the identity. With ``identity_first``
    agent 0 keeps the identity whatever the kind.
    """
    rng = np.random.default_rng(seed)
    maps = np.repeat(np.eye(action_dim)[None], n_agents, axis=0)
    if kind == "none":
        return maps
    for agent in range(1 if identity_first else 0, n_agents):
        if kind == "gain":
            maps[agent] = np.diag(rng.uniform(*gain_range, size=action_dim))
            continue
        maps[agent] = np.eye(action_dim)[rng.permutation(action_dim)]
        if kind == "signed_permutation":
            maps[agent] *= rng.choice([-1.0, 1.0], size=(action_dim, 1))
    return maps


def apply_action_map(matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``a ↦ clip(M a, −1, 1)`` for one agent's map ``M``."""
    return lambda action: np.clip(matrix @ action, -1.0, 1.0).astype(np.float32)


def make_env(env_id: str, matrix: np.ndarray, gamma: float, seed: int, training: bool = True) -> Callable[[], gym.Env]:
    """A thunk building one wrapped copy (CleanRL's wrapper stack with the action map inserted after clipping)."""

    def thunk() -> gym.Env:
        env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = gym.wrappers.ClipAction(env)
        env = gym.wrappers.TransformAction(env, apply_action_map(matrix), env.action_space)
        env = gym.wrappers.NormalizeObservation(env)
        env = gym.wrappers.TransformObservation(
            env, lambda obs: np.clip(obs, -OBS_CLIP, OBS_CLIP), env.observation_space
        )
        if training:
            env = gym.wrappers.NormalizeReward(env, gamma=gamma)
            env = gym.wrappers.TransformReward(env, lambda reward: float(np.clip(reward, -REWARD_CLIP, REWARD_CLIP)))
        env.action_space.seed(seed)
        return env

    return thunk


def finished_episodes(info: dict) -> list[tuple[int, float]]:
    """(sub-env index, raw return) of each episode that ended at this vector step (same-step autoreset keeps the
    ended episode's statistics under ``final_info``)."""
    final = info.get("final_info", {})
    if "episode" not in final:
        return []
    return [(int(i), float(final["episode"]["r"][i])) for i in np.flatnonzero(final["_episode"])]


@dataclass
class Normalisation:
    """Observation statistics of every copy, (N, n_envs, obs_dim) means and variances and (N, n_envs) counts."""

    mean: np.ndarray
    var: np.ndarray
    count: np.ndarray


class FederatedHopper:
    """The N agents' environment copies as one vector env, with agent-major reshaping of its arrays."""

    def __init__(
        self, env_id: str, maps: np.ndarray, n_envs: int, gamma: float, seed: int, vector: str = "sync"
    ) -> None:
        self.env_id, self.maps, self.n_envs, self.gamma = env_id, maps, n_envs, gamma
        self.n_agents = maps.shape[0]
        thunks = [
            make_env(env_id, maps[agent], gamma, seed + agent * n_envs + k)
            for agent in range(self.n_agents)
            for k in range(n_envs)
        ]
        kind = gym.vector.AsyncVectorEnv if vector == "async" else gym.vector.SyncVectorEnv
        self.envs = kind(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.obs_dim = self.envs.single_observation_space.shape[0]
        self.action_dim = self.envs.single_action_space.shape[0]
        self.seed = seed

    def _agent_major(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(self.n_agents, self.n_envs, *array.shape[1:])

    def reset(self) -> np.ndarray:
        """Observations (N, n_envs, obs_dim)."""
        obs, _ = self.envs.reset(seed=[self.seed + i for i in range(self.n_agents * self.n_envs)])
        return self._agent_major(obs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[float]]]:
        """``actions`` (N, n_envs, A) → observations, normalised rewards, dones (N, n_envs) and, per agent, the
        raw returns of the episodes that ended at this step."""
        obs, rewards, terminated, truncated, info = self.envs.step(actions.reshape(-1, self.action_dim))
        finished: list[list[float]] = [[] for _ in range(self.n_agents)]
        for index, episode_return in finished_episodes(info):
            finished[index // self.n_envs].append(episode_return)
        dones = self._agent_major(np.logical_or(terminated, truncated))
        return self._agent_major(obs), self._agent_major(rewards), dones, finished

    def normalisation(self) -> Normalisation:
        stats: list[RunningMeanStd] = self.envs.get_attr("obs_rms")
        return Normalisation(
            mean=self._agent_major(np.stack([s.mean for s in stats])),
            var=self._agent_major(np.stack([s.var for s in stats])),
            count=self._agent_major(np.array([s.count for s in stats])),
        )

    def close(self) -> None:
        self.envs.close()


def evaluation_envs(env_id: str, maps: np.ndarray, normalisation: Normalisation, seed: int) -> gym.vector.VectorEnv:
    """One copy per agent with its action map and frozen observation statistics (copy 0's), raw rewards."""
    thunks = [make_env(env_id, maps[agent], 0.99, seed + agent, training=False) for agent in range(len(maps))]
    envs = gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    for agent, env in enumerate(envs.envs):
        normaliser = env.get_wrapper_attr("obs_rms")
        normaliser.mean = normalisation.mean[agent, 0].copy()
        normaliser.var = normalisation.var[agent, 0].copy()
        normaliser.count = float(normalisation.count[agent, 0])
        env.set_wrapper_attr("update_running_mean", False)
    return envs


def evaluate(
    policy: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    maps: np.ndarray,
    normalisation: Normalisation,
    episodes: int,
    seed: int,
) -> np.ndarray:
    """Mean raw return of ``episodes`` episodes per agent under ``policy``: (N, obs_dim) → (N, A) actions."""
    envs = evaluation_envs(env_id, maps, normalisation, seed)
    n_agents = len(maps)
    returns: list[list[float]] = [[] for _ in range(n_agents)]
    obs, _ = envs.reset(seed=[seed + agent for agent in range(n_agents)])
    while min(len(r) for r in returns) < episodes:
        obs, _, _, _, info = envs.step(policy(obs))
        for agent, episode_return in finished_episodes(info):
            if len(returns[agent]) < episodes:
                returns[agent].append(episode_return)
    envs.close()
    return np.array([np.mean(r) for r in returns])
