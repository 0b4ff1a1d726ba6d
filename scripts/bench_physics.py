"""Benchmark: batched physics (BatchedLocomotion) against gymnasium's SyncVectorEnv (env steps/s), on Hopper-v5 and
on every task of ``env=mujoco``.

In one process, for C = 4, 8, 16, 32 Hopper-v5 copies driven by random actions (episodes end every few dozen
steps, so autoresets are included): the reference, ``SyncVectorEnv`` of ``Resumable(gym.make("Hopper-v5"))`` with
``SAME_STEP`` autoreset (``env.vector=sync``), then ``BatchedLocomotion`` (``env.vector=batched``: one
``mujoco.batch`` call per step, bit for bit the same results) on 1 and 2 threads, with their ratios to the
reference (each the best of three spans). Then every task with C = 4 copies (a 4-agent run's): the
``SyncVectorEnv`` rate, the batched rate where the task has batched physics, and each task's rate relative to
Hopper-v5's (its default path: batched where implemented), also written to ``--tasks-csv`` (the README's table of
tasks is generated from docs/benchmarks/mujoco_tasks.csv). Run with ``python scripts/bench_physics.py [--seconds S]
[--tasks-csv PATH]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pandas as pd

from fedrl_cli.envs.batched_mujoco import BatchedLocomotion
from fedrl_cli.envs.mujoco import DEFAULT_ID, Resumable
from fedrl_cli.envs.tasks import TASKS

THREADS = (1, 2)


def reference_envs(copies: int, env_id: str = DEFAULT_ID) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: Resumable(gym.make(env_id))] * copies, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def rate(make: Callable[[int], gym.vector.VectorEnv], copies: int, seconds: float) -> float:
    """Env steps (copies × vector steps) per second, the best of three spans of ``seconds / 3`` (other load on
    the machine only slows spans down), after a short warm-up; random actions within the task's bounds."""
    envs = make(copies)
    envs.reset(seed=list(range(copies)))
    bound = envs.single_action_space.high
    actions = np.random.default_rng(0).uniform(-bound, bound, (256, copies, len(bound)))
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
    parser.add_argument("--tasks-csv", type=Path, help="also write the table of tasks to this CSV")
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
    print(f"\nEvery task, C = 4 copies (relative: the task's default path against {DEFAULT_ID}'s)\n")
    print(f"{'task':<19} {'actions':>7} {'SyncVectorEnv':>13} {'batched':>17} {'relative':>8}")
    rates, rows = {}, []
    for env_id, task in TASKS.items():
        sync = rate(lambda c, e=env_id: reference_envs(c, e), 4, args.seconds)
        batched = rate(lambda c, e=env_id: BatchedLocomotion(c, e), 4, args.seconds) if task.batched else None
        rates[env_id] = batched or sync
        shown = f"{batched:>9,.0f} ({batched / sync:4.1f}×)" if batched else f"{'–':>17}"
        relative = rates[env_id] / rates[DEFAULT_ID]
        print(f"{env_id:<19} {task.actions:>7} {sync:>13,.0f} {shown} {relative:>7.2f}×", flush=True)
        rows.append({"task": env_id, "actions": task.actions, "observations": task.observations,
                     "batched": task.batched is not None, "sync_steps_per_s": round(sync),
                     "batched_steps_per_s": round(batched) if batched else None,
                     "relative": round(relative, 3)})  # fmt: skip
    if args.tasks_csv:
        pd.DataFrame(rows).to_csv(args.tasks_csv, index=False)


if __name__ == "__main__":
    main()
