"""Step-size schedules: η_t = η·f(t) over rounds, applied to every step size of every tabular algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedrl_cli.algos.common import StepSizeSchedule
from fedrl_cli.algos.fastfedpg import FastFedPG
from fedrl_cli.algos.fedavg_pg import FedAvgPG
from fedrl_cli.algos.fedsubspace_ac import FedSubspaceAC
from fedrl_cli.algos.local_pg import LocalPG
from fedrl_cli.envs.tabular import make_family


class ConstantOracle:
    """A gradient oracle that returns ones everywhere: every local step then moves θ by exactly η_t."""

    samples = 0

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        return np.ones_like(theta)


# three rounds with t0 = 2: factors 1, 1/(1 + 1/2), 1/(1 + 2/2), by hand
HAND = {
    "constant": 1 + 1 + 1,
    "inverse_time": 1 + 1 / 1.5 + 1 / 2,
    "inverse_sqrt": 1 + 1 / math.sqrt(1.5) + 1 / math.sqrt(2),
}


@pytest.mark.parametrize("kind", HAND)
def test_schedule_factors_follow_the_formula(kind: str) -> None:
    schedule = StepSizeSchedule(kind, 2.0)
    assert sum(schedule.factor(t) for t in range(3)) == pytest.approx(HAND[kind], rel=1e-15)


@pytest.mark.parametrize("kind", HAND)
@pytest.mark.parametrize("cls", [FastFedPG, FedAvgPG, LocalPG])
def test_three_rounds_move_theta_by_the_scheduled_steps(cls, kind: str) -> None:
    """With unit gradients, H = 2 local steps of η_t per round: θ moves by H·η·Σ_t f(t) in every entry."""
    common = dict(oracle=ConstantOracle(), n_agents=2, local_steps=2, lr=0.3, schedule=StepSizeSchedule(kind, 2.0))
    theta0 = np.zeros((3, 2))
    algorithm = cls(theta0=theta0, **common) if cls is LocalPG else cls(theta_bar=theta0, global_lr=1.0, **common)
    for _ in range(3):
        algorithm.round()
    np.testing.assert_allclose(algorithm.agent_params, 2 * 0.3 * HAND[kind], rtol=1e-14)


def test_subspace_actor_critic_scales_all_three_step_sizes() -> None:
    """One schedule for the heads, the basis and the actors: a scheduled run equals a constant-schedule run
    whose three step sizes are set to η·f(t) by hand before each round t."""
    family = make_family(2, 4, 2, 0.9, 0.5, 0.3, mdp_seed=1)
    base = (0.1, 0.01, 0.05)
    schedule = StepSizeSchedule("inverse_time", 2.0)

    def learner(schedule: StepSizeSchedule | None) -> FedSubspaceAC:
        return FedSubspaceAC(family, np.eye(4), 2, 5, *base, np.random.default_rng(0), schedule)

    scheduled, by_hand, constant = learner(schedule), learner(None), learner(None)
    for t in range(3):
        by_hand.lr_head, by_hand.lr_basis, by_hand.lr_actor = (lr * schedule.factor(t) for lr in base)
        for algorithm in (scheduled, by_hand, constant):
            algorithm.round()
    for name in ("heads", "local_bases", "actors", "basis"):
        np.testing.assert_allclose(getattr(scheduled, name), getattr(by_hand, name), rtol=1e-12, atol=1e-14)
    assert not np.allclose(constant.actors, scheduled.actors)  # the schedule did act
