"""BatchedLocomotion against gymnasium: C copies of Hopper-v5 (Walker2d-v5, HalfCheetah-v5) in a ``SyncVectorEnv``
with ``SAME_STEP`` autoreset.

Compared with ``np.testing.assert_array_equal``: ``mujoco.batch`` keeps each copy's whole integration state,
solver warm start included, and runs the same ``mj_step`` calls on it, and the numpy code repeats gymnasium's
arithmetic operation for operation, so nothing can differ.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_PPO, run_into
from test_workers import same_runs

from fedrl_cli.envs.batched_mujoco import BatchedLocomotion
from fedrl_cli.envs.mujoco import FederatedMujoco, Resumable, action_maps
from fedrl_cli.envs.tasks import TASKS

COPIES = 4
STEPS = 2500
FALL = np.full(3, -1.5)  # the hopper falls within ~6 steps


def reference_envs(copies: int = COPIES, env_id: str = "Hopper-v5") -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: Resumable(gym.make(env_id))] * copies, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def stand(obs: np.ndarray) -> np.ndarray:
    """A PD controller on the joint angles: the hopper stands still, healthy, until the time limit."""
    return np.clip(-10.0 * obs[..., 2:5] - obs[..., 8:11], -1.5, 1.5)


def policy(t: int, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random actions in [-1.5, 1.5] (clipped by MuJoCo, not by the reward), except: copy 0 stands (truncated at
    steps 1000 and 2000), copy 2 keeps falling fast, copy 3 stands and flails in turns."""
    actions = rng.uniform(-1.5, 1.5, (COPIES, 3))
    actions[0] = stand(obs[0])
    if t % 100 < 30:
        actions[2] = FALL
    if (t // 250) % 2:
        actions[3] = stand(obs[3])
    return actions


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """Gymnasium's trajectory: the actions and every step's results, and the copies' physics every 100 steps."""
    envs = reference_envs()
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=list(range(COPIES)))
    names = ("actions", "obs", "reward", "terminated", "truncated", "final_obs")
    record: dict[str, list] = {"reset": [obs], "physics": [], **{name: [] for name in names}}
    for t in range(STEPS):
        actions = policy(t, obs, rng)
        obs, reward, terminated, truncated, info = envs.step(actions)
        results = (actions, *_copy(obs, reward, terminated, truncated), final_observations(info))
        for name, value in zip(names, results, strict=True):
            record[name].append(value)
        if t % 100 == 99:
            record["physics"].append(np.stack([s["physics"] for s in envs.get_attr("simulator_state")]))
    envs.close()
    return {name: np.stack(values) for name, values in record.items()}


def _copy(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.array(array) for array in arrays]


def final_observations(info: dict, observations: int = 11) -> np.ndarray:
    """``info["final_obs"]`` as a (C, observations) array, NaN for the copies whose episode did not end."""
    final = np.full((COPIES, observations), np.nan)
    if "final_obs" in info:
        final[info["_final_obs"]] = np.stack(info["final_obs"][info["_final_obs"]])
    return final


def test_reference_trajectory_has_terminations_and_truncations(reference):
    assert reference["truncated"][:, 0].sum() == 2  # copy 0 ran into the time limit twice
    assert reference["truncated"][[999, 1999], 0].all()
    assert reference["terminated"][:, 0].sum() == 0
    assert reference["terminated"].sum() > 100
    assert (reference["terminated"].sum(axis=0)[1:] > 10).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_physics_equals_gymnasium_bit_for_bit(reference, threads):
    envs = BatchedLocomotion(COPIES, threads=threads)
    obs, _ = envs.reset(seed=list(range(COPIES)))
    np.testing.assert_array_equal(obs, reference["reset"][0])
    for t in range(STEPS):
        obs, reward, terminated, truncated, info = envs.step(reference["actions"][t])
        np.testing.assert_array_equal(obs, reference["obs"][t], err_msg=f"step {t}")
        np.testing.assert_array_equal(reward, reference["reward"][t], err_msg=f"step {t}")
        np.testing.assert_array_equal(terminated, reference["terminated"][t], err_msg=f"step {t}")
        np.testing.assert_array_equal(truncated, reference["truncated"][t], err_msg=f"step {t}")
        np.testing.assert_array_equal(final_observations(info), reference["final_obs"][t], err_msg=f"step {t}")
        assert obs.dtype == np.float64 and reward.dtype == np.float64 and terminated.dtype == truncated.dtype == bool
        if t % 100 == 99:  # the whole MuJoCo state too: time, positions, velocities, warm start, controls
            physics = np.stack([s["physics"] for s in envs.get_attr("simulator_state")])
            np.testing.assert_array_equal(physics, reference["physics"][t // 100], err_msg=f"step {t}")
    envs.close()


def test_snapshot_restore_continues_bit_for_bit(reference):
    envs = BatchedLocomotion(COPIES)
    envs.reset(seed=list(range(COPIES)))
    for t in range(120):
        envs.step(reference["actions"][t])
    snapshot = envs.get_attr("simulator_state")
    actions = reference["actions"][120:170]  # copy 2 falls and is reset in this window: its generator matters
    first = [_copy(*envs.step(a)[:4]) for a in actions]
    envs.set_attr("simulator_state", snapshot)
    second = [_copy(*envs.step(a)[:4]) for a in actions]
    for one, two in zip(first, second, strict=True):
        for x, y in zip(one, two, strict=True):
            np.testing.assert_array_equal(x, y)
    assert any(step[2][2] for step in first)
    envs.close()


def test_restores_a_gymnasium_snapshot_and_seeds_like_gymnasium(reference):
    """Snapshots are interchangeable with ``Resumable``'s; ``reset(seed=s)`` seeds copy k with ``s + k`` and a
    later ``reset()`` continues each copy's generator, as in ``SyncVectorEnv``."""
    gym_envs = reference_envs()
    gym_envs.reset(seed=list(range(COPIES)))
    for t in range(300):
        gym_envs.step(reference["actions"][t])
    envs = BatchedLocomotion(COPIES)
    envs.set_attr("simulator_state", list(gym_envs.get_attr("simulator_state")))
    for t in range(300, 500):
        expected, got = gym_envs.step(reference["actions"][t]), envs.step(reference["actions"][t])
        for x, y in zip(expected[:4], got[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(envs.reset(seed=7)[0], gym_envs.reset(seed=7)[0])
    np.testing.assert_array_equal(envs.reset()[0], gym_envs.reset()[0])
    gym_envs.close()
    envs.close()


def test_spaces_match_hopper():
    envs, single = BatchedLocomotion(3), gym.make("Hopper-v5")
    assert envs.num_envs == 3
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (3, 11) and envs.action_space.shape == (3, 3)


def test_a_run_on_batched_physics_equals_one_on_gymnasiums_envs(tmp_path):
    """End to end (normalisation, action maps, evaluation, the saved model): env.vector=batched, the default,
    and env.vector=sync write the same numbers."""
    runs = []
    for vector in ("batched", "sync"):
        result, run_dir = run_into(
            tmp_path, vector, "algo=fedavg_ppo", *TINY_PPO, "n_agents=3", "algo.rounds=2", "algo.rollout_steps=256",
            "env.action_map=signed_permutation", f"env.vector={vector}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        runs.append(run_dir)
    same_runs(*runs)
    returns = np.genfromtxt(runs[0] / "agent_metrics.csv", delimiter=",", skip_header=1)[:, 2]
    assert np.isfinite(returns).sum() >= 3  # 256 steps: episodes ended and were reset inside the runs


@pytest.mark.parametrize(("env_id", "steps"), [("Walker2d-v5", 400), ("HalfCheetah-v5", 1050)])
def test_walker_and_half_cheetah_equal_gymnasium_step_for_step(env_id: str, steps: int) -> None:
    """Random actions beyond the bounds, as for Hopper: the walker falls again and again (health test, uniform
    reset noise), the cheetah never ends but at the time limit (normal reset noise on the velocities)."""
    task = TASKS[env_id]
    reference, batched = reference_envs(COPIES, env_id), BatchedLocomotion(COPIES, env_id)
    assert batched.single_observation_space == reference.single_observation_space
    assert batched.single_action_space == reference.single_action_space
    rng = np.random.default_rng(1)
    seeds = list(range(10, 10 + COPIES))
    np.testing.assert_array_equal(batched.reset(seed=seeds)[0], reference.reset(seed=seeds)[0])
    ended = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        actions = rng.uniform(-1.5, 1.5, (COPIES, task.actions))
        expected, got = reference.step(actions), batched.step(actions)
        for x, y in zip(expected[:4], got[:4], strict=True):
            np.testing.assert_array_equal(y, x, err_msg=f"step {t}")
        finals = [final_observations(info, task.observations) for info in (expected[4], got[4])]
        np.testing.assert_array_equal(*finals, err_msg=f"step {t}")
        ended["terminated"] += expected[2].sum()
        ended["truncated"] += expected[3].sum()
        if t % 100 == 99:
            physics = [
                np.stack([s["physics"] for s in envs.get_attr("simulator_state")]) for envs in (reference, batched)
            ]
            np.testing.assert_array_equal(*physics, err_msg=f"step {t}")
    if env_id == "Walker2d-v5":
        assert ended["terminated"] > 10
    else:
        assert ended == {"terminated": 0, "truncated": COPIES}
    reference.close()
    batched.close()


def test_the_task_table_matches_gymnasium() -> None:
    for env_id, task in TASKS.items():
        env = gym.make(env_id)
        assert env.observation_space.shape == (task.observations,), env_id
        assert env.action_space.shape == (task.actions,), env_id
        assert env.spec.max_episode_steps == 1000, env_id
        env.close()


@pytest.mark.parametrize("env_id", list(TASKS))
def test_every_task_builds_steps_and_resets_with_action_maps(env_id: str) -> None:
    """Two agents with distinct signed-permutation maps on each task (batched physics where the task has it, else
    gymnasium's vector env): the simulator gets clip(M_i clip(a)) within the task's bounds (±0.4 for the humanoids)."""
    task = TASKS[env_id]
    maps = action_maps("signed_permutation", 2, task.actions, 0, identity_first=True)
    assert not np.array_equal(maps[0], maps[1])
    envs = FederatedMujoco(maps, 1, 0.99, seed=3, env_id=env_id)
    assert envs.vector == ("batched" if task.batched else "sync")
    low, high = envs.envs.single_action_space.low, envs.envs.single_action_space.high
    obs = envs.reset()
    assert obs.shape == (2, 1, task.observations)
    rng = np.random.default_rng(0)
    for _ in range(3):
        actions = rng.normal(0.0, 2.0, (2, 1, task.actions))
        simulated = envs.simulator_actions(actions)
        for agent in range(2):
            expected = np.clip(maps[agent] @ np.clip(actions[agent, 0], low, high), low, high)
            np.testing.assert_array_equal(simulated[agent], expected)
        assert (simulated >= low).all() and (simulated <= high).all()
        obs, reward, done, _ = envs.step(actions)
        assert obs.shape == (2, 1, task.observations) and reward.shape == done.shape == (2, 1)
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
    envs.reset()  # seeded again: the raw start is a fresh env's (the normalised one has moved statistics)
    fresh = FederatedMujoco(maps, 1, 0.99, seed=3, env_id=env_id)
    fresh.reset()
    np.testing.assert_array_equal(envs.raw_obs, fresh.raw_obs)
    envs.close()
    fresh.close()
