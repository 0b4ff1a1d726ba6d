"""How fast can Hopper-v5's physics step for many copies? gymnasium's vector env against MuJoCo's batched rollout.

Issue 11 asks whether stepping all copies' physics in one batched call (`mujoco.rollout`, several threads) would
beat gymnasium's per-copy `step`. This measures, in one process: (a) gymnasium `Hopper-v5` copies in a
`SyncVectorEnv` (physics, observation, reward, termination, autoreset: the reference path), (b) the same number of
copies' physics alone through `mujoco.rollout.rollout` (4 substeps per env step, as Hopper's frame_skip), with 1
and 2 threads. (b) leaves out the observation, reward and reset work that a batched env would still do in numpy,
so it is an upper bound on what adopting it could gain.

Run: `python scripts/bench_physics.py [--seconds S]`.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import mujoco
import numpy as np
from mujoco import rollout

FRAME_SKIP = 4


def rate(step, seconds: float, per_call: int) -> float:
    step()  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    return calls * per_call / (time.perf_counter() - start)


def gymnasium_rate(copies: int, seconds: float) -> float:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("Hopper-v5") for _ in range(copies)])
    envs.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(64, copies, 3))
    counter = [0]

    def step() -> None:
        envs.step(actions[counter[0] % 64])
        counter[0] += 1

    found = rate(step, seconds, copies)
    envs.close()
    return found


def rollout_rate(copies: int, threads: int, seconds: float) -> float:
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    model = env.unwrapped.model
    datas = [mujoco.MjData(model) for _ in range(threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, env.unwrapped.data, state, spec)
    states = np.repeat(state[None], copies, axis=0)
    controls = np.random.default_rng(0).uniform(-1, 1, size=(copies, FRAME_SKIP, model.nu))

    def step() -> None:
        nonlocal states
        trajectory, _ = rollout.rollout(model, datas, states, controls, nstep=FRAME_SKIP, persistent_pool=threads > 1)
        states = trajectory[:, -1]

    found = rate(step, seconds, copies)
    if threads > 1:
        rollout.shutdown_persistent_pool()
    env.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement")
    args = parser.parse_args()
    print(f"Hopper-v5 env steps/s, one process, mujoco {mujoco.__version__}, gymnasium {gym.__version__}")
    print(f"{'copies':>6} {'gymnasium (full step)':>22} {'rollout physics, 1 thread':>26} {'2 threads':>10}")
    for copies in (4, 8, 16, 32):
        reference = gymnasium_rate(copies, args.seconds)
        one = rollout_rate(copies, 1, args.seconds)
        two = rollout_rate(copies, 2, args.seconds)
        print(
            f"{copies:>6} {reference:>20,.0f}/s {one:>14,.0f}/s ({one / reference:.2f}x) {two:>8,.0f}/s "
            f"({two / reference:.2f}x)"
        )


if __name__ == "__main__":
    main()
