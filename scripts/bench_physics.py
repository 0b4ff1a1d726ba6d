"""Benchmark: batched physics (BatchedLocomotion) against gymnasium's SyncVectorEnv of Hopper-v5 copies (steps/s).

In one process, for C = 4, 8, 16, 32 copies driven by random actions (episodes end every few dozen steps, so
autoresets are included): the reference, ``SyncVectorEnv`` of ``Resumable(gym.make("Hopper-v5"))`` with
``SAME_STEP`` autoreset (``env.vector=sync``), then ``BatchedLocomotion`` (``env.vector=batched``: one
``mujoco.batch`` call per step, bit for bit the same results) on 1 and 2 threads, with their ratios to the
reference (each the best of three spans). Run with ``python scripts/bench_physics.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import gymnasium as gym
import mujoco
import numpy as np

from fedrl_cli.envs.batched_mujoco import BatchedLocomotion
from fedrl_cli.envs.mujoco import DEFAULT_ID, Resumable

THREADS = (1, 2)


def reference_envs(copies: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: Resumable(gym.make(DEFAULT_ID))] * copies, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def rate(make: Callable[[int], gym.vector.VectorEnv], copies: int, seconds: float) -> float:
    """Env steps (copies × vector steps) per second, the best of three spans of ``seconds / 3`` (other load on
    the machine only slows spans down), after a short warm-up."""
    envs = make(copies)
    envs.reset(seed=list(range(copies)))
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (256, copies, 3))
    for step in range(20):
        envs.step(actions[step])
    best, steps = 0.0, 0
    for _ in range(3):
        start, span = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            for _ in range(32):
                envs.step(actions[steps % len(actions)])
                steps += 1
            span += 32
        best = max(best, copies * span / (time.perf_counter() - start))
    envs.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per configuration")
    parser.add_argument("--copies", type=int, nargs="+", default=[4, 8, 16, 32])
    args = parser.parse_args()
    print(
        f"BatchedLocomotion on Hopper-v5: mujoco {mujoco.__version__}, gymnasium {gym.__version__}, "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs; env steps/s (× = ratio to the SyncVectorEnv reference)\n"
    )
    header = f"{'C':>3} {'SyncVectorEnv':>13}" + "".join(
        f" {f'batched, {t} thread' + 's' * (t > 1):>20}" for t in THREADS
    )
    print(header)
    for copies in args.copies:
        reference = rate(reference_envs, copies, args.seconds)
        row = f"{copies:>3} {reference:>13,.0f}"
        for threads in THREADS:
            batched = rate(lambda c, t=threads: BatchedLocomotion(c, threads=t), copies, args.seconds)
            row += f" {batched:>11,.0f} ({batched / reference:4.1f}×)"
        print(row, flush=True)


if __name__ == "__main__":
    main()
