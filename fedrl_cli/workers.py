"""A Hopper run's agents split over workers: contiguous slices of the agent axis, each owned by an :class:`AgentShard`.

A shard holds its agents' environment copies, stacked parameters, Adam moments, normalisation statistics and
generators, and runs their PPO iterations. ``backend=local`` keeps one shard with every agent in this process;
``backend=ray`` makes each of ``workers`` shards a Ray actor (with ``env.physics_threads`` CPUs), so that between
communications the agents run in parallel and only what the algorithm shares crosses between the driver and the
workers. Results do not depend on the split: every agent's randomness, environment seeds and arithmetic are its own
(:mod:`fedrl_cli.seeding`, :class:`fedrl_cli.algos.ppo.PPOAgents`), which the tests check bit for bit.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
from typing import Any

import numpy as np
import torch

from fedrl_cli.envs.tasks import vector_kind
from fedrl_cli.errors import ConfigError, RunFailed, first_line

log = logging.getLogger("fedrl")


def agent_slices(n_agents: int, workers: int) -> list[range]:
    """The agent axis cut into ``workers`` contiguous slices as even as possible (the first ones one larger)."""
    size, larger = divmod(n_agents, workers)
    bounds = np.cumsum([0] + [size + 1] * larger + [size] * (workers - larger))
    return [range(int(start), int(stop)) for start, stop in itertools.pairwise(bounds)]


def span(agents: range) -> str:
    return f"agent {agents.start}" if len(agents) == 1 else f"agents {agents.start}–{agents.stop - 1}"


class AgentShard:
    """Agents ``agents`` (global indices) of the Hopper run configured by ``cfg``, with their action ``maps``
    (A, A each) and the shared ``trunk`` (parameter name → one agent's values) loaded into them when the run
    transfers one."""

    def __init__(
        self, cfg: dict[str, Any], agents: range, maps: np.ndarray, trunk: dict[str, torch.Tensor] | None = None
    ) -> None:
        from fedrl_cli.algos.ppo import PPOAgents, PPOSettings
        from fedrl_cli.algos.trunk import apply_trunk
        from fedrl_cli.envs.mujoco import FederatedMujoco

        torch.set_num_threads(1)  # tiny matrices: threads cost more than they give, and the env needs the cores
        env, algo = cfg["env"], cfg["algo"]
        self.cfg, self.agents, self.maps = cfg, agents, maps
        self.envs = FederatedMujoco(
            self.maps,
            env["n_envs"],
            algo["gamma"],
            cfg["seed"],
            env["vector"],
            first_agent=agents.start,
            physics_threads=env["physics_threads"],
            env_id=env["id"],
        )
        settings = PPOSettings(**{key: algo[key] for key in PPOSettings.__dataclass_fields__})
        self.ppo = PPOAgents(self.envs, settings, max(1, algo["rounds"] * algo["local_steps"]), cfg["seed"])
        if trunk:
            apply_trunk(self.ppo.model, trunk, algo["freeze_trunk"])

    def describe(self) -> dict[str, Any]:
        """Where the shard runs and what its model looks like."""
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "parameters": [name for name, _ in self.ppo.model.named_parameters()],
            "obs_dim": self.envs.obs_dim,
            "action_dim": self.envs.action_dim,
        }

    def iterate(self, iterations: int) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        """``iterations`` PPO iterations for every agent: the last update's statistics, per agent the returns of
        the training episodes that ended, and the environment steps taken."""
        steps = self.ppo.env_steps
        stats: dict[str, np.ndarray] = {}
        finished: list[list[float]] = [[] for _ in self.agents]
        for _ in range(iterations):
            stats, ended = self.ppo.iterate()
            for agent, returns in enumerate(ended):
                finished[agent].extend(returns)
        return stats, finished, self.ppo.env_steps - steps

    def parameters(self, names: list[str]) -> dict[str, torch.Tensor]:
        """The agents' values of the parameters ``names``, stacked (agents, ...), copied."""
        named = dict(self.ppo.model.named_parameters())
        return {name: named[name].detach().clone() for name in names}

    def reset_moments(self, names: list[str]) -> None:
        self.ppo.reset_moments(names)

    def load_parameters(self, values: dict[str, torch.Tensor]) -> None:
        """Every agent adopts ``values`` (parameter name → one agent's values, leading axis 1)."""
        named = dict(self.ppo.model.named_parameters())
        with torch.no_grad():
            for name, value in values.items():
                named[name].copy_(value.expand_as(named[name]))

    def evaluate(self, episodes: int, seed: int) -> np.ndarray:
        """Mean return per agent of the deterministic policy on the agent's own environment."""
        from fedrl_cli.algos.ppo import deterministic_policy
        from fedrl_cli.envs.mujoco import evaluate

        policy = deterministic_policy(self.ppo.model)
        env = self.cfg["env"]
        return evaluate(
            policy, self.maps, self.envs.obs_stats, episodes, seed, self.agents.start, env["id"], env["vector"]
        )

    def states(self) -> list[dict[str, Any]]:
        return self.ppo.agent_states()

    def restore(self, states: list[dict[str, Any]]) -> None:
        self.ppo.restore_agents(states)

    def model(self) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
        """The parameters (stacked over the shard's agents) and observation statistics, for ``model.pt``."""
        statistics = self.envs.obs_stats
        return self.ppo.model.state_dict(), {"mean": statistics.mean, "var": statistics.var, "count": statistics.count}

    def close(self) -> None:
        self.envs.close()


class WorkerLost(RunFailed):
    """A worker's process ended while the run needed it."""


class ShardedAgents:
    """Every agent of a Hopper run, whichever backend holds them: the driver's view of the shards.

    Each method calls every shard (in parallel with Ray) and joins the results along the agent axis.
    """

    def __init__(self, cfg: dict[str, Any], trunk: dict[str, torch.Tensor] | None = None) -> None:
        from fedrl_cli.envs.mujoco import action_maps
        from fedrl_cli.envs.tasks import TASKS

        env, self.n_agents = cfg["env"], cfg["n_agents"]
        map_seed = cfg["seed"] if env["action_map_seed"] is None else env["action_map_seed"]
        actions = TASKS[env["id"]].actions
        self.maps = action_maps(env["action_map"], self.n_agents, actions, map_seed, env["identity_first"])
        self.remote = cfg["backend"] == "ray"
        self.slices = agent_slices(self.n_agents, cfg["workers"] if self.remote else 1)
        self.started_ray = False
        if self.remote:
            batched = vector_kind(env["vector"], env["id"]) == "batched"
            threads = env["physics_threads"] if batched else 1  # CPUs per worker
            self.started_ray = start_ray(cfg["ray_address"], len(self.slices) * threads)
            import ray

            actor = ray.remote(num_cpus=threads)(AgentShard)
            self.shards: list[Any] = [
                actor.remote(cfg, agents, self.maps[agents.start : agents.stop], trunk) for agents in self.slices
            ]
        else:
            self.shards = [AgentShard(cfg, self.slices[0], self.maps, trunk)]
        described = self._call("describe")
        self.parameter_names: list[str] = described[0]["parameters"]
        self.obs_dim, self.action_dim = described[0]["obs_dim"], described[0]["action_dim"]
        self.places = [f"pid {d['pid']} on {d['host']}" for d in described]
        if self.remote:
            for index, (agents, place) in enumerate(zip(self.slices, self.places, strict=True)):
                log.info("fedrl: Ray worker %d: %s (%s)", index, span(agents), place)

    def _call(self, method: str, *args: Any, per_shard: list[tuple[Any, ...]] | None = None) -> list[Any]:
        """``method(*args)`` on every shard (or ``method(*per_shard[k])`` on shard k); the results in shard order.

        A worker whose process ended raises :class:`WorkerLost` naming it and its agents; an exception inside a
        worker is raised here as itself."""
        arguments = per_shard or [args] * len(self.shards)
        if not self.remote:
            return [getattr(shard, method)(*a) for shard, a in zip(self.shards, arguments, strict=True)]
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        futures = [getattr(shard, method).remote(*a) for shard, a in zip(self.shards, arguments, strict=True)]
        try:
            return ray.get(futures)
        except RayActorError as error:
            raise WorkerLost(self._lost(error)) from None
        except RayTaskError as error:
            raise error.as_instanceof_cause() from None

    def _lost(self, error: Exception) -> str:
        """One line naming the worker that died and its agents."""
        dead = getattr(error, "actor_id", None)
        for index, shard in enumerate(self.shards):
            if dead is not None and shard._actor_id.hex() == dead:
                agents = self.slices[index]
                return f"Ray worker {index} ({span(agents)}, {self.places[index]}) died: its process ended"
        return f"a Ray worker died: its process ended ({type(error).__name__})"

    def iterate(self, iterations: int) -> tuple[dict[str, np.ndarray], list[list[float]], int]:
        """:meth:`AgentShard.iterate` on every agent, joined."""
        results = self._call("iterate", iterations)
        stats = {key: np.concatenate([r[0][key] for r in results]) for key in results[0][0]}
        finished = [returns for r in results for returns in r[1]]
        return stats, finished, sum(r[2] for r in results)

    def parameters(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Every agent's values of ``names``, stacked (N, ...)."""
        parts = self._call("parameters", names)
        return {name: torch.cat([part[name] for part in parts]) for name in names}

    def load_parameters(self, values: dict[str, torch.Tensor]) -> None:
        self._call("load_parameters", values)

    def evaluate(self, episodes: int, seed: int) -> np.ndarray:
        return np.concatenate(self._call("evaluate", episodes, seed))

    def reset_moments(self, names: list[str]) -> None:
        """Every agent's Adam moments of ``names`` restart (:meth:`fedrl_cli.algos.ppo.PPOAgents.reset_moments`)."""
        self._call("reset_moments", names)

    def states(self) -> list[dict[str, Any]]:
        """Every agent's state (:meth:`fedrl_cli.algos.ppo.PPOAgents.agent_states`), in agent order."""
        return [state for part in self._call("states") for state in part]

    def restore(self, states: list[dict[str, Any]]) -> None:
        """Give each shard its agents' states, whatever split they were saved from."""
        self._call("restore", per_shard=[(states[agents.start : agents.stop],) for agents in self.slices])

    def model(self) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
        """Every agent's parameters and observation statistics, stacked."""
        parts = self._call("model")
        state = {key: torch.cat([p[0][key] for p in parts]) for key in parts[0][0]}
        statistics = {key: np.concatenate([p[1][key] for p in parts]) for key in parts[0][1]}
        return state, statistics

    def close(self) -> None:
        """Close the environments and end the workers (and the Ray instance this run started)."""
        if not self.remote:
            for shard in self.shards:
                shard.close()
            return
        import ray

        for shard in self.shards:
            with contextlib.suppress(Exception):  # a dead worker has nothing left to close
                ray.get(shard.close.remote())
            ray.kill(shard)
        if self.started_ray:
            ray.shutdown()


RAY_CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """:class:`ConfigError` when nothing answers at ``address`` (``HOST:PORT``) within
    :data:`RAY_CONNECT_TIMEOUT_S`: Ray itself would retry for minutes. ``auto`` is left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = (error.strerror or str(error) or type(error).__name__).lower()
        raise ConfigError(
            f"ray_address={address}: nothing answers there ({reason}; waited at most {RAY_CONNECT_TIMEOUT_S:g} s); "
            "start the cluster (`ray start --head`) or leave ray_address null for a local Ray"
        ) from None


def start_ray(address: str | None, cpus: int) -> bool:
    """Connect to Ray: join the cluster at ``address`` (``auto`` or ``HOST:PORT``), or start a local instance with
    at least ``cpus`` CPUs when it is None. Returns whether this call started it (and must shut it down);
    a run launched inside a Ray job (the Ray sweep launcher) uses the running one."""
    import ray

    if ray.is_initialized():
        return False
    settings: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        # Ray runs its workers at nice 15, below every other process; ours do the run's work (the driver mostly
        # waits), so they run at normal priority, or any other load on the machine would starve them
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=max(cpus, os.cpu_count() or 1), **settings)
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, **settings)
        except (ConnectionError, TimeoutError) as error:  # `auto` with no cluster running, a cluster gone
            reason = first_line(error)
            raise ConfigError(f"ray_address={address}: no Ray cluster to join ({reason})") from None
    available = ray.cluster_resources().get("CPU", 0)
    if available < cpus:
        ray.shutdown()
        where = f"the Ray cluster at {address}" if address else "the local Ray instance"
        raise RunFailed(f"the workers need {cpus} CPUs (workers × env.physics_threads); {where} has {available:g}")
    return True
