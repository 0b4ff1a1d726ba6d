"""Wiring a validated config into an experiment: environment family + algorithm + what a round reports.

Every experiment is a :class:`fedrl_cli.federation.Experiment`: ``round()``, ``measure()``, ``state()`` and
``restore()`` for checkpoints, ``finish(run_dir)`` and ``close()``. Modules are imported per family, so a tabular
run never imports torch or MuJoCo.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedrl_cli.config import MUJOCO_ENVS
from fedrl_cli.federation import Experiment, Measurement
from fedrl_cli.seeding import generator

if TYPE_CHECKING:
    from fedrl_cli.algos.common import StepSizeSchedule
    from fedrl_cli.envs.tabular import TabularFamily

log = logging.getLogger("fedrl")


def schedule(algo: dict[str, Any]) -> StepSizeSchedule:
    """The algorithm's step-size schedule over rounds (``algo.lr_schedule``, ``algo.lr_decay_rounds``)."""
    from fedrl_cli.algos.common import StepSizeSchedule

    return StepSizeSchedule(algo["lr_schedule"], algo["lr_decay_rounds"])


def tabular_family(cfg: dict[str, Any]) -> TabularFamily:
    """The config's tabular family: ``n_agents`` MDPs drawn with the ``env.*`` keys."""
    from fedrl_cli.envs.tabular import make_family

    return make_family(cfg["n_agents"], **{key: value for key, value in cfg["env"].items() if key != "name"})


class TabularAlgorithm:
    """Tabular experiments: the result is the CSVs (nothing to save at the end, nothing to release), and the
    algorithm object is the whole state: its parameters, gradient memory, generator, chain states and counters
    are checkpointed as they are, the MDP family aside (the config rebuilds it)."""

    algorithm: Any
    family: TabularFamily

    def round(self) -> None:
        self.algorithm.round()

    def state(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm}

    def restore(self, state: dict[str, Any]) -> None:
        self.algorithm = state["algorithm"]

    def rebuilt(self) -> dict[str, object]:
        return {"family": self.family}

    def facts(self) -> dict[str, Any]:
        """Nothing about the instance beyond its config."""
        return {}

    def finish(self, run_dir: Path) -> None:
        """Nothing beyond the CSVs."""

    def close(self) -> None:
        """Nothing to release."""


class TabularExperiment(TabularAlgorithm):
    """Fast-FedPG, FedAvg PG or local PG on a tabular family, measured exactly."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from fedrl_cli.algos.common import GradientOracle
        from fedrl_cli.algos.fastfedpg import FastFedPG
        from fedrl_cli.algos.fedavg_pg import FedAvgPG
        from fedrl_cli.algos.local_pg import LocalPG
        from fedrl_cli.envs.tabular import ExactMetrics

        algo, n_agents = cfg["algo"], cfg["n_agents"]
        self.family = family = tabular_family(cfg)
        tau = algo["entropy_coef"]
        oracle = GradientOracle(
            family,
            algo["gradient"],
            algo["batch_size"],
            algo["horizon"],
            generator(cfg["seed"], "gradients"),
            tau,
            algo["estimator"],
        )
        if algo["init"] == "optimum":  # θ*_τ of the average MDP (validated: τ > 0, a shared kernel)
            theta0 = family.soft_optimum(tau)[1]
        else:
            theta0 = np.zeros((family.n_states, family.n_actions))  # the uniform policy, known to every agent
        common = dict(
            oracle=oracle, n_agents=n_agents, local_steps=algo["local_steps"], lr=algo["lr"], schedule=schedule(algo)
        )
        if algo["name"] == "local_pg":
            self.algorithm = LocalPG(theta0=theta0, **common)
        else:
            federated = FastFedPG if algo["name"] == "fastfedpg" else FedAvgPG
            self.algorithm = federated(theta_bar=theta0, global_lr=algo["global_lr"], **common)
        self.exact_metrics = ExactMetrics(family, tau)

    def measure(self) -> Measurement:
        metrics, per_agent = self.exact_metrics(self.algorithm.policies, self.algorithm.agent_params)
        return Measurement(self.algorithm.oracle.samples, self.algorithm.channel.floats, metrics, per_agent)


class SubspaceTabularExperiment(TabularAlgorithm):
    """The federated subspace actor-critic, linear form, on a tabular family, measured exactly."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from fedrl_cli.algos.fedsubspace_ac import FedSubspaceAC, make_features
        from fedrl_cli.envs.tabular import CriticMetrics

        algo = cfg["algo"]
        self.family = family = tabular_family(cfg)
        rng = generator(cfg["seed"], "subspace")
        features = make_features(algo["features"], family.n_states, algo["feature_dim"], rng)
        # value_span: the coordinates whose span(ΦB) is the projection of U onto span(Φ) (U itself for one-hot Φ)
        start = np.linalg.pinv(features) @ family.value_basis if algo["basis_init"] == "value_span" else None
        self.algorithm = FedSubspaceAC(
            family,
            features,
            algo["rank"],
            algo["local_steps"],
            algo["lr_head"],
            algo["lr_basis"],
            algo["lr_actor"],
            rng,
            schedule(algo),
            algo["reexpress_heads"],
            algo["basis_update"],
            start,
        )
        self.metrics = CriticMetrics(family, features)

    def facts(self) -> dict[str, Any]:
        from fedrl_cli.envs.tabular import value_condition

        return {"value_condition": value_condition(self.family)}

    def measure(self) -> Measurement:
        a = self.algorithm
        metrics, per_agent = self.metrics(a.actors, a.value_estimates(), a.features @ a.basis)
        return Measurement(a.samples, a.channel.floats, metrics, per_agent)


PPO_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


class MujocoExperiment:
    """Single PPO, FedAvg PPO or the subspace actor-critic on a federated MuJoCo task, its agents held by
    :class:`fedrl_cli.workers.ShardedAgents` (in this process, or split over Ray workers with ``backend=ray``)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from fedrl_cli.algos.fedavg_ppo import FedAvgPPO
        from fedrl_cli.algos.fedsubspace_ppo import FedSubspacePPO
        from fedrl_cli.algos.ppo import server_parameters
        from fedrl_cli.algos.single_ppo import SinglePPO
        from fedrl_cli.algos.trunk import read_trunk
        from fedrl_cli.envs.tasks import TASKS
        from fedrl_cli.workers import ShardedAgents

        algo, n_agents = cfg["algo"], cfg["n_agents"]
        self.cfg, self.rounds, self.eval_every = cfg, algo["rounds"], algo["eval_every"]
        source = Path(algo["trunk_from"]) if algo["trunk_from"] else None
        task = TASKS[cfg["env"]["id"]]
        trunk = read_trunk(source, task.observations, task.actions) if source else None
        self.agents = ShardedAgents(cfg, trunk)
        if trunk:
            state = "frozen" if algo["freeze_trunk"] else "trainable"
            log.info("fedrl: trunk %s (%s) loaded from %s", ", ".join(trunk), state, algo["trunk_from"])
        initial = None
        if algo.get("shared_init") == "common":  # the server's one draw; a transferred trunk stays as loaded
            drawn = server_parameters(cfg["seed"], self.agents.obs_dim, self.agents.action_dim)
            scale = algo["shared_init_scale"]
            initial = {
                name: value * scale if name.endswith("weight") else value
                for name, value in drawn.items()
                if name not in (trunk or {})
            }
        if algo["name"] in ("fedsubspace_ac", "fedavg_ppo"):
            options = {
                "initial": initial,
                "rescale_first_average": algo["rescale_first_average"],
                "reset_moments": algo["shared_adam"] == "reset",
            }
            if algo["name"] == "fedsubspace_ac":
                self.algorithm = FedSubspacePPO(self.agents, algo["local_steps"], algo["shared_layers"], **options)
            else:
                self.algorithm = FedAvgPPO(self.agents, algo["local_steps"], **options)
        else:
            self.algorithm = SinglePPO(self.agents, algo["local_steps"])
        self.round_index, self.round_seconds, self.round_steps, self.env_steps = 0, 0.0, 0, 0
        self.stats: dict[str, np.ndarray] = {}
        self.returns: list[list[float]] = [[] for _ in range(n_agents)]
        self.eval_returns: np.ndarray | None = None

    def round(self) -> None:
        start = time.perf_counter()
        self.stats, self.returns, self.round_steps = self.algorithm.round()  # the round's last PPO update's stats
        self.env_steps += self.round_steps
        self.round_index += 1
        self.round_seconds = time.perf_counter() - start
        due = self.eval_every and (self.round_index % self.eval_every == 0 or self.round_index == self.rounds)
        self.eval_returns = self.evaluate(self.cfg["algo"]["eval_episodes"]) if due else None

    def evaluate(self, episodes: int) -> np.ndarray:
        """Mean return per agent of the deterministic policy on the agent's own environment."""
        return self.agents.evaluate(episodes, 10_000 + self.cfg["seed"] * 100 + self.round_index)

    def measure(self) -> Measurement:
        n = len(self.returns)
        trained = self.round_index > 0
        metrics: dict[str, float | None] = {
            "sps": self.round_steps / self.round_seconds if trained else None,
            "return_mean": _mean_or_none([r for agent in self.returns for r in agent]),
            "eval_return_mean": None if self.eval_returns is None else float(self.eval_returns.mean()),
            **{key: float(self.stats[key].mean()) if trained else None for key in PPO_STATS},
        }
        nothing = np.full(n, None)
        per_agent = {
            "return": np.array([_mean_or_none(agent) for agent in self.returns], dtype=object),
            "eval_return": nothing if self.eval_returns is None else self.eval_returns,
            **{key: self.stats[key] if trained else nothing for key in PPO_STATS},
        }
        return Measurement(self.env_steps, self.algorithm.channel.floats, metrics, per_agent)

    def state(self) -> dict[str, Any]:
        """Every agent's state, gathered from the workers (parameters, Adam moments, generators, environment copies
        mid-episode: :meth:`fedrl_cli.algos.ppo.PPOAgents.agent_states`), and the counters. It does not depend on
        how the agents were split, so a run resumes on any backend."""
        return {
            "agents": self.agents.states(),
            "env_steps": self.env_steps,
            "comm_floats": self.algorithm.channel.floats,
            "round_index": self.round_index,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.agents.restore(state["agents"])
        self.env_steps, self.round_index = state["env_steps"], state["round_index"]
        self.algorithm.channel.floats = state["comm_floats"]
        if hasattr(self.algorithm, "averages"):  # one average per round
            self.algorithm.averages = self.round_index

    def rebuilt(self) -> dict[str, object]:
        return {}

    def facts(self) -> dict[str, Any]:
        """The agents' action maps, agent by agent (rows of M_i: simulator action = clip(M_i a))."""
        return {"action_maps": self.agents.maps.tolist()}

    def finish(self, run_dir: Path) -> None:
        """Save the final model: parameters, observation statistics and action maps (``model.pt``)."""
        from fedrl_cli.algos.ppo import ActorCritic, save_model
        from fedrl_cli.envs.mujoco import RunningMoments

        parameters, statistics = self.agents.model()
        model = ActorCritic(self.cfg["n_agents"], self.agents.obs_dim, self.agents.action_dim)
        model.load_state_dict(parameters)
        save_model(run_dir / "model.pt", model, RunningMoments(**statistics), self.agents.maps, self.cfg)

    def close(self) -> None:
        self.agents.close()


def build(cfg: dict[str, Any]) -> Experiment:
    """The experiment for the config's (algorithm, environment) pair."""
    algo, env = cfg["algo"]["name"], cfg["env"]["name"]
    if env in MUJOCO_ENVS:
        return MujocoExperiment(cfg)
    return SubspaceTabularExperiment(cfg) if algo == "fedsubspace_ac" else TabularExperiment(cfg)
