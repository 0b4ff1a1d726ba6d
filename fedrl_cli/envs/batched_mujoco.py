"""C copies of a gymnasium MuJoCo locomotion task (``Hopper-v5``, ``Walker2d-v5`` or ``HalfCheetah-v5``, with its
1000-step time limit) whose physics is stepped in one batched MuJoCo call per step, with observations, rewards,
terminations, truncations and resets computed in numpy.

A drop-in for ``gym.vector.SyncVectorEnv([Resumable(gym.make(ID))] * C, autoreset_mode=SAME_STEP)``
(see :mod:`fedrl_cli.envs.mujoco`): same spaces, same per-copy seeding of the reset noise, same ``SAME_STEP``
autoreset, and ``get_attr``/``set_attr("simulator_state")`` with the dicts of ``Resumable.simulator_state``, so a
snapshot taken from either env restores into the other. The three tasks differ only in what
:class:`~fedrl_cli.envs.tasks.Locomotion` states; their weights, ranges and noise scale are read from gymnasium's
env object.

Every copy's whole MuJoCo integration state (``mjSTATE_INTEGRATION``: time, qpos, qvel, solver warm start,
controls, applied forces) is a row of one (C, nstate) array, which ``mujoco.batch.Batch`` (MuJoCo ≥ 4) steps
``frame_skip`` times per copy in one call, on ``threads`` threads: bit for bit gymnasium's task (the tests
compare observations, rewards, terminations and truncations over thousands of steps with resets).
``mujoco.rollout`` was measured too and left out: its states lack the constraint solver's warm start, which
gymnasium's ``MjData`` carries from step to step and which the solver's result depends on (a standing hopper
drifts from gymnasium's by 1e-4 after 1000 steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

from fedrl_cli.envs.tasks import TASKS

SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


def state_slice(model: mujoco.MjModel, component: mujoco.mjtState) -> slice:
    """Where one state component (a single ``mjtState`` bit) lies in a ``mjSTATE_INTEGRATION`` row: components
    are laid out in the order of their bits."""
    bit = int(component)
    start = mujoco.mj_stateSize(model, (bit - 1) & int(SPEC))
    return slice(start, start + mujoco.mj_stateSize(model, bit))


class BatchedLocomotion(gym.vector.VectorEnv):
    """``copies`` copies of the task ``env_id`` (one of :data:`fedrl_cli.envs.tasks.BATCHED`) with ``SAME_STEP``
    autoreset, stepped by one MuJoCo call per step on ``threads`` (≥ 1) threads. Unlike ``SyncVectorEnv`` its
    infos carry only ``final_obs`` / ``_final_obs``, not the task's per-step reward terms and positions."""

    def __init__(self, copies: int, env_id: str = "Hopper-v5", threads: int = 1) -> None:
        from mujoco import batch

        self.task = TASKS[env_id].batched
        reference = gym.make(env_id)
        base = reference.unwrapped
        self.model, self.threads = base.model, threads
        self.num_envs = copies
        self.single_observation_space = reference.observation_space
        self.single_action_space = reference.action_space
        self.observation_space = batch_space(self.single_observation_space, copies)
        self.action_space = batch_space(self.single_action_space, copies)
        self.metadata = {**reference.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.max_episode_steps = reference.spec.max_episode_steps
        # the task's parameters, read from the reference so that the arithmetic below uses its very values
        self.frame_skip, self.dt = base.frame_skip, base.dt
        self.forward_reward_weight, self.ctrl_cost_weight = base._forward_reward_weight, base._ctrl_cost_weight
        self.reset_noise_scale = base._reset_noise_scale
        if self.task.health != "none":
            self.healthy_reward, self.terminate_when_unhealthy = base._healthy_reward, base._terminate_when_unhealthy
            self.healthy_z_range, self.healthy_angle_range = base._healthy_z_range, base._healthy_angle_range
        if self.task.health == "state_z_angle":
            self.healthy_state_range = base._healthy_state_range
        if not base._exclude_current_positions_from_observation:
            raise ValueError("only the default observation (x position excluded) is supported")
        self.init_qpos, self.init_qvel = base.init_qpos.copy(), base.init_qvel.copy()
        reference.close()

        model = self.model
        self._qpos = state_slice(model, mujoco.mjtState.mjSTATE_QPOS)
        self._qvel = state_slice(model, mujoco.mjtState.mjSTATE_QVEL)
        self._ctrl = state_slice(model, mujoco.mjtState.mjSTATE_CTRL)
        # the row of a copy just reset: mj_resetData's state (zero time, controls, warm start, applied forces)
        fresh = mujoco.MjData(model)
        mujoco.mj_resetData(model, fresh)
        self._reset_row = np.empty(mujoco.mj_stateSize(model, SPEC))
        mujoco.mj_getState(model, fresh, self._reset_row, SPEC)

        self._batch = batch.Batch(model, nsim=copies, nthread=threads)
        self._state = self._batch.state  # live (copies, nstate) rows
        self._state[:] = self._reset_row
        self._elapsed = np.zeros(copies, dtype=np.int64)
        self._generators: list[np.random.Generator | None] = [None] * copies
        self._was_reset = False

    # -- physics -------------------------------------------------------------------------------------------------

    def _simulate(self, actions: np.ndarray) -> None:
        """Apply ``actions`` as controls (as ``data.ctrl[:] = action``) and advance every copy by ``frame_skip``
        MuJoCo steps."""
        self._state[:, self._ctrl] = actions
        self._batch.step(nstep=self.frame_skip)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        """The task's observation of state rows: ``qpos[1:]`` and ``qvel`` (clipped to ±10 where the task does)."""
        velocity = rows[:, self._qvel]
        return np.concatenate((rows[:, self._qpos][:, 1:], np.clip(velocity, -10, 10) if self.task.clip_velocity
                               else velocity), axis=1)  # fmt: skip

    def _reset_copies(self, copies: np.ndarray) -> None:
        """Start new episodes in ``copies``: ``reset_model``'s noise on qpos, then qvel, drawn from each copy's
        generator, on ``mj_resetData``'s state."""
        low, high, nq, nv = -self.reset_noise_scale, self.reset_noise_scale, self.model.nq, self.model.nv
        qpos = np.empty((len(copies), nq))
        qvel = np.empty((len(copies), nv))
        for row, copy in enumerate(copies):
            generator = self._generators[copy]
            qpos[row] = self.init_qpos + generator.uniform(low=low, high=high, size=nq)
            if self.task.velocity_noise == "uniform":
                qvel[row] = self.init_qvel + generator.uniform(low=low, high=high, size=nv)
            else:
                qvel[row] = self.init_qvel + self.reset_noise_scale * generator.standard_normal(nv)
        rows = np.repeat(self._reset_row[None], len(copies), axis=0)
        rows[:, self._qpos], rows[:, self._qvel] = qpos, qvel
        self._state[copies] = rows
        self._elapsed[copies] = 0

    # -- vector env API ------------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy; ``seed`` as ``SyncVectorEnv``'s (``None``, an int ``s`` for ``s, s+1, ...``, or one
        per copy), each seeding its copy's generator as ``Env.reset(seed=...)`` does. ``options`` is ignored."""
        if seed is None:
            seed = [None] * self.num_envs
        elif isinstance(seed, int):
            seed = [seed + copy for copy in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seed)}")
        for copy, single in enumerate(seed):
            if single is not None or self._generators[copy] is None:
                self._generators[copy], _ = seeding.np_random(single)
        self._reset_copies(np.arange(self.num_envs))
        self._was_reset = True
        return self._observe(self._state), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy with ``actions`` (C, A); copies whose episode ends are reset at once (``SAME_STEP``):
        their observation is the new episode's, the last one is in ``info["final_obs"]`` (masked by
        ``info["_final_obs"]``)."""
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        state = self._state
        x_before = state[:, self._qpos.start].copy()
        self._simulate(actions)
        qpos, qvel = state[:, self._qpos], state[:, self._qvel]
        x_velocity = (qpos[:, 0] - x_before) / self.dt
        observation = self._observe(state)

        forward = self.forward_reward_weight * x_velocity
        if self.task.health == "none":
            rewards, terminated = forward, np.zeros(self.num_envs, dtype=bool)
        else:
            healthy = self._healthy(qpos, qvel)
            rewards = forward + healthy * self.healthy_reward
            terminated = ~healthy & self.terminate_when_unhealthy
        # as _get_rew: (forward [+ healthy]) - ctrl_cost, the cost on the unclipped action in its own dtype
        reward = rewards - self.ctrl_cost_weight * np.sum(np.square(actions), axis=1)
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps

        info: dict[str, Any] = {}
        done = terminated | truncated
        if done.any():
            ended = np.flatnonzero(done)
            final = np.full(self.num_envs, None, dtype=object)
            for copy in ended:
                final[copy] = observation[copy].copy()
            info = {"final_obs": final, "_final_obs": done}
            self._reset_copies(ended)
            observation[ended] = self._observe(state[ended])
        return observation, reward.astype(np.float64, copy=False), terminated, truncated, info

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """``is_healthy`` per copy: torso height and angle in their ranges (and, for Hopper, the state)."""
        min_z, max_z = self.healthy_z_range
        min_angle, max_angle = self.healthy_angle_range
        z, angle = qpos[:, 1], qpos[:, 2]
        healthy = (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)
        if self.task.health == "state_z_angle":
            min_state, max_state = self.healthy_state_range
            checked = np.concatenate((qpos[:, 2:], qvel), axis=1)  # state_vector()[2:]
            healthy &= np.all((min_state < checked) & (checked < max_state), axis=1)
        return healthy

    def get_attr(self, name: str) -> list[Any]:
        """Per-copy ``simulator_state`` dicts (``Resumable``'s: ``physics``, ``elapsed_steps``, ``reset_rng``)."""
        if name != "simulator_state":
            raise AttributeError(f"BatchedLocomotion only exposes 'simulator_state', not {name!r}")
        if not self._was_reset:
            raise RuntimeError("call reset() before reading the simulator state")
        return [
            {
                "physics": self._state[copy].copy(),
                "elapsed_steps": int(self._elapsed[copy]),
                "reset_rng": self._generators[copy].bit_generator.state,
            }
            for copy in range(self.num_envs)
        ]

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Restore each copy from a ``simulator_state`` dict (one for all copies, or a list with one per copy)."""
        if name != "simulator_state":
            raise AttributeError(f"BatchedLocomotion only exposes 'simulator_state', not {name!r}")
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} states, got {len(values)}")
        for copy, value in enumerate(values):
            self._state[copy] = value["physics"]
            self._elapsed[copy] = value["elapsed_steps"]
            generator = np.random.Generator(np.random.PCG64())
            generator.bit_generator.state = value["reset_rng"]
            self._generators[copy] = generator
        self._was_reset = True

    def close_extras(self, **kwargs: Any) -> None:
        """Release the thread pool."""
        self._batch = None
