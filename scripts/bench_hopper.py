"""Benchmark: federated Hopper-v5 PPO throughput (environment steps per second), end to end.

In one process: plain gymnasium Hopper-v5 stepped with random actions (the env-only rate, the reference),
then fedavg_ppo with CleanRL's default PPO settings (2048 steps per agent per iteration, 10 epochs of 32
minibatches) at N = 1, 4, 8 agents with signed-permutation action maps, rollouts and updates included.
Run with `make bench` or `python scripts/bench_hopper.py [--iterations K] [--agents 1 4 8]`.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from fedrl_cli.algos.fedavg_ppo import FedAvgPPO
from fedrl_cli.algos.ppo import PPOAgents, PPOSettings
from fedrl_cli.envs.hopper import ENV_ID, FederatedHopper, action_maps


def env_only_rate(seconds: float) -> float:
    """Steps per second of one plain Hopper-v5 with random actions, best of three spans."""
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    env.action_space.seed(0)
    best = 0.0
    for _ in range(3):
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            if terminated or truncated:
                env.reset()
        best = max(best, steps / (time.perf_counter() - start))
    env.close()
    return best


def fedavg_ppo_rate(n_agents: int, iterations: int, vector: str) -> tuple[float, float]:
    """End-to-end environment steps per second of fedavg_ppo (one PPO iteration per round), and the share
    of the time spent in rollouts."""
    envs = FederatedHopper(action_maps("signed_permutation", n_agents, 3, 0, True), 1, 0.99, 0, vector)
    ppo = PPOAgents(envs, PPOSettings(), total_iterations=iterations + 1, seed=0)
    algorithm = FedAvgPPO(ppo, local_steps=1)
    algorithm.round()  # warm-up
    start, steps, collecting = time.perf_counter(), ppo.env_steps, 0.0
    for _ in range(iterations):
        begin = time.perf_counter()
        batch, _ = ppo.collect()
        collecting += time.perf_counter() - begin
        ppo.update(batch)
        algorithm.average()
    elapsed = time.perf_counter() - start
    envs.close()
    return (ppo.env_steps - steps) / elapsed, collecting / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations per N (after one warm-up)")
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--vector", choices=["sync", "async"], default="sync")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference = env_only_rate(6.0)
    print(f"fedrl Hopper-v5 benchmark — torch {torch.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}")
    print(f"env-only: plain {ENV_ID}, random actions: {reference:,.0f} steps/s\n")
    print(f"{'fedavg_ppo':12} {'steps/s':>10} {'vs env-only':>12} {'in rollouts':>12}")
    for n_agents in args.agents:
        rate, rollout_share = fedavg_ppo_rate(n_agents, args.iterations, args.vector)
        print(f"{'N = ' + str(n_agents):12} {rate:>10,.0f} {rate / reference:>11.0%} {rollout_share:>11.0%}")


if __name__ == "__main__":
    main()
