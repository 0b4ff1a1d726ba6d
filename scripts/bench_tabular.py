"""Benchmark: sampled policy-gradient throughput on tabular MDPs (transitions drawn per second).

In one process: the vectorised estimator (Fast-FedPG Eq. (5)) alone and inside Fast-FedPG rounds (H local
steps + the estimate at θ̄), at a small configuration and at a large batch, next to a plain per-transition
Python loop of the same estimator. Run with `make bench` or `python scripts/bench_tabular.py [--seconds S]`.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from fedrl_cli.algos.common import GradientOracle
from fedrl_cli.algos.fastfedpg import FastFedPG
from fedrl_cli.envs.tabular import TabularFamily, make_family, softmax


def loop_estimator(
    family: TabularFamily, theta: np.ndarray, batch_size: int, horizon: int, rng: np.random.Generator
) -> np.ndarray:
    """The same truncated REINFORCE estimate, one transition at a time (the reference)."""
    pi = softmax(theta)
    policy_cdf, transition_cdf = np.cumsum(pi, axis=-1), np.cumsum(family.transitions, axis=-1)
    initial_cdf = np.cumsum(family.initial)
    grad = np.zeros_like(theta)
    for agent in range(theta.shape[0]):
        for _ in range(batch_size):
            state = int(np.searchsorted(initial_cdf, rng.random(), side="right"))
            total, discount, score = 0.0, 1.0, np.zeros(theta.shape[1:])
            for _ in range(horizon):
                action = min(
                    int(np.searchsorted(policy_cdf[agent, state], rng.random(), side="right")), theta.shape[2] - 1
                )
                total += discount * family.rewards[agent, state, action]
                score[state] -= pi[agent, state]
                score[state, action] += 1.0
                discount *= family.gamma
                state = min(
                    int(np.searchsorted(transition_cdf[agent, state, action], rng.random(), side="right")),
                    theta.shape[1] - 1,
                )
            grad[agent] += total * score
    return grad / batch_size


def rate(work: Callable[[], int], seconds: float) -> float:
    """Transitions per second of ``work`` (which returns the transitions it drew), best of three spans."""
    work()  # warm up
    best = 0.0
    for _ in range(3):
        start, drawn = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            drawn += work()
        best = max(best, drawn / (time.perf_counter() - start))
    return best


def measure(n_agents: int, batch_size: int, horizon: int, local_steps: int, seconds: float) -> dict[str, float]:
    family = make_family(n_agents, 5, 4, 0.9, 0.5, 0.0, mdp_seed=0)
    theta = np.random.default_rng(0).normal(size=(n_agents, 5, 4))
    rng = np.random.default_rng(1)
    per_estimate = n_agents * batch_size * horizon

    def estimator() -> int:
        family.sample_gradient(theta, batch_size, horizon, rng)
        return per_estimate

    oracle = GradientOracle(family, "sampled", batch_size, horizon, rng)
    algorithm = FastFedPG(
        oracle=oracle, theta_bar=np.zeros((5, 4)), n_agents=n_agents, local_steps=local_steps, lr=0.1, global_lr=1.0
    )

    def rounds() -> int:
        before = oracle.samples
        algorithm.round()
        return oracle.samples - before

    return {"estimator": rate(estimator, seconds), "fastfedpg": rate(rounds, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each measurement")
    args = parser.parse_args()
    print(f"fedrl tabular benchmark — {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print("S=5 states, A=4 actions, horizon K=20, Fast-FedPG with H=5 local steps\n")

    family = make_family(4, 5, 4, 0.9, 0.5, 0.0, mdp_seed=0)
    theta = np.zeros((4, 5, 4))
    loop_rng = np.random.default_rng(2)
    reference = rate(lambda: (loop_estimator(family, theta, 20, 20, loop_rng), 4 * 20 * 20)[1], args.seconds)

    print(f"{'configuration':34} {'estimator':>14} {'Fast-FedPG':>14} {'vs loop':>9}")
    print(f"{'per-transition Python loop (N=4, M=20)':34} {reference:>12,.0f}/s {'':>14} {1:>8.1f}x")
    for label, n_agents, batch_size in (("small: N=4, M=20", 4, 20), ("large: N=4, M=2500 (N·M=10,000)", 4, 2500)):
        found = measure(n_agents, batch_size, 20, 5, args.seconds)
        print(
            f"{label:34} {found['estimator']:>12,.0f}/s {found['fastfedpg']:>12,.0f}/s "
            f"{found['estimator'] / reference:>8.0f}x"
        )


if __name__ == "__main__":
    main()
