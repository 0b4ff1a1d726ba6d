"""Benchmark: a round of the tabular subspace actor-critic and its exact per-round metrics, at S = 200 states,
K = 32 agents, rank 3 (the size the subspace reproduction's claims need).

In one process: the algorithm's round (20 local steps of all K chains), the metrics of a policy-evaluation round
(the policies never move, so the values, stationary distributions and the floor's fit are computed once), those of
an actor-critic round (all of it again each round, the floor's fit by one r × r solve per state for one-hot
features), and, as the reference, the same fit through the general Kronecker system (features of rank S − 1, which
take that path). Run with `make bench` or `python scripts/bench_subspace.py [--rounds R]`.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from fedrl_cli.algos.common import StepSizeSchedule
from fedrl_cli.algos.fedsubspace_ac import FedSubspaceAC
from fedrl_cli.envs.tabular import CriticMetrics, make_family, shared_subspace_fit

STATES, AGENTS, RANK = 200, 32, 3


def seconds_per_call(work: Callable[[], object], calls: int) -> float:
    """Mean seconds per call of ``work`` over ``calls`` calls, after one call to warm up."""
    work()
    start = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="calls timed per measurement")
    args = parser.parse_args()
    print(f"fedrl subspace benchmark — {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"S={STATES} states, K={AGENTS} agents, rank {RANK}, 20 local steps per round\n")
    family = make_family(AGENTS, STATES, 3, 0.9, 0.5, 0.5, 0, heterogeneity_design="nested", value_rank=RANK)
    features = np.eye(STATES)
    algorithm = FedSubspaceAC(
        family, features, RANK, 20, 0.1, 0.3, 0.05, np.random.default_rng(0), StepSizeSchedule(), "rotate"
    )
    metrics = CriticMetrics(family, features)
    still = algorithm.actors.copy()

    def evaluation() -> object:
        return metrics(still, algorithm.value_estimates(), algorithm.basis)

    def actor_critic() -> object:
        algorithm.actors[0, 0, 0] += 1e-9  # a new policy each call, as when the actors learn
        return metrics(algorithm.actors, algorithm.value_estimates(), algorithm.basis)

    values, stationary = family.values_and_stationary(algorithm.actors)
    lower = np.linalg.qr(np.random.default_rng(1).normal(size=(STATES, STATES)))[0][:, : STATES - 1]
    found = {
        "round (20 local steps)": seconds_per_call(algorithm.round, args.rounds),
        "metrics, policy evaluation": seconds_per_call(evaluation, args.rounds),
        "metrics, actor-critic": seconds_per_call(actor_critic, max(1, args.rounds // 4)),
        "  of which the floor's fit": seconds_per_call(
            lambda: shared_subspace_fit(features, values, stationary, RANK), max(1, args.rounds // 4)
        ),
        "  the fit, general path (rank S − 1)": seconds_per_call(
            lambda: shared_subspace_fit(lower, values, stationary, RANK), 2
        ),
    }
    reference = found["round (20 local steps)"]
    print(f"{'part':38} {'ms per call':>12} {'vs a round':>11} {'2,000 rounds':>13}")
    for label, seconds in found.items():
        print(f"{label:38} {1e3 * seconds:>12.2f} {seconds / reference:>10.2f}x {2000 * seconds / 60:>10.1f} min")
    general, fast = found["  the fit, general path (rank S − 1)"], found["  of which the floor's fit"]
    print(f"\nthe per-state fit is {general / fast:.0f}x faster than the general path at this size")


if __name__ == "__main__":
    main()
