"""Validation of a composed config: every key of the contract, its type and its allowed range.

A bad value raises :class:`ConfigError` with one line naming the key, the value and what is allowed; the CLI
turns it into exit code 2. The YAML files under ``conf/`` document each key; this module enforces them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedrl_cli.envs.tasks import BATCHED, TASKS
from fedrl_cli.errors import ConfigError
from fedrl_cli.event_log import LOGGERS
from fedrl_cli.runs import read_summary


@dataclass(frozen=True)
class Rule:
    """One key's constraint: ``check(value)`` is True when allowed; ``allowed`` says so in words."""

    check: Callable[[Any], bool]
    allowed: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(low: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= low, f"an integer ≥ {low}")


def positive() -> Rule:
    return Rule(lambda v: _is_number(v) and v > 0, "a finite number > 0")


def number_in(low: float, high: float, high_open: bool = False) -> Rule:
    right = ")" if high_open else "]"

    def check(v: Any) -> bool:
        return _is_number(v) and low <= v and (v < high if high_open else v <= high)

    return Rule(check, f"a number in [{low:g}, {high:g}{right}")


def optional_integer(low: int) -> Rule:
    return Rule(lambda v: v is None or (_is_int(v) and v >= low), f"null or an integer ≥ {low}")


def positive_at_most_one() -> Rule:
    return Rule(lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(choices))


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")


def seed() -> Rule:
    return Rule(lambda v: _is_int(v) and 0 <= v <= SEED_MAX, f"an integer in [0, {SEED_MAX}]")


SEED_MAX = 2**32 - 1
# the most floats a run's largest arrays may hold (1 GiB of float64): far beyond any experiment here, far below
# what exhausts a machine's memory, so a mistyped size fails at once with one line instead of a crash
MAX_FLOATS = 2**27
# one Hopper-v5 copy's MuJoCo model and data, in 8-byte floats (about 1.1 MB)
MUJOCO_COPY_FLOATS = 140_000

# agent_metrics.csv: about this many bytes a row; a run that would write more than AGENT_METRICS_WARN_BYTES is warned
AGENT_ROW_BYTES = 100
AGENT_METRICS_WARN_BYTES = 10**9

TOP_LEVEL: dict[str, Rule] = {
    "n_agents": integer(1),
    "seed": seed(),
    "checkpoint_every": integer(0),
    "agent_metrics_every": integer(0),
    "progress": BOOLEAN,
    "overwrite": BOOLEAN,
    "backend": one_of("local", "ray"),
    "workers": integer(1),
    "loggers": Rule(
        lambda v: isinstance(v, list) and "csv" in v and all(item in LOGGERS for item in v),
        "a list of " + " and ".join(LOGGERS) + " that holds csv (plots and resume read it), e.g. [csv,tensorboard]",
    ),
    "ray_address": Rule(
        lambda v: v is None or v == "auto" or (isinstance(v, str) and re.fullmatch(r"(ray://)?[\w.\-]+:\d+", v)),
        "null (start a local Ray instance), auto or HOST:PORT",
    ),
}
# keys that say where a run's agents compute, not what they compute: `fedrl resume` may change them
PLACEMENT_KEYS = ("backend", "workers", "ray_address")

ENVIRONMENTS: dict[str, dict[str, Rule]] = {
    "tabular": {
        "n_states": integer(1),
        "n_actions": integer(1),
        "gamma": number_in(0, 1, high_open=True),
        "reward_heterogeneity": number_in(0, 1),
        "transition_heterogeneity": number_in(0, 1),
        "mdp_seed": seed(),
        "heterogeneity_design": one_of("independent", "nested", "balanced", "replicated"),
        "distinct_mdps": integer(1),
        "value_rank": optional_integer(1),
        "value_level": one_of("centred", "offset"),
    },
    "mujoco": {
        "id": Rule(lambda v: v in TASKS, "one of " + ", ".join(TASKS)),
        "n_envs": integer(1),
        "action_map": one_of("none", "signed_permutation", "permutation", "gain"),
        "action_map_seed": Rule(
            lambda v: v is None or (_is_int(v) and 0 <= v <= SEED_MAX),
            f"null (the run's seed) or an integer in [0, {SEED_MAX}]",
        ),
        "identity_first": BOOLEAN,
        "vector": one_of("auto", "batched", "sync", "async"),
        "physics_threads": integer(1),
    },
}
# env=hopper: env=mujoco's preset for Hopper-v5
ENVIRONMENTS["hopper"] = {
    **ENVIRONMENTS["mujoco"],
    "id": Rule(lambda v: v == "Hopper-v5", "Hopper-v5 (env=hopper is its preset; other tasks: env=mujoco env.id=...)"),
}
MUJOCO_ENVS = ("hopper", "mujoco")  # the PPO families: a gymnasium MuJoCo task with action maps

# step-size schedules η_t = η·f(t) over rounds t = 0, 1, ... (algos.common.StepSizeSchedule)
_SCHEDULE: dict[str, Rule] = {
    "lr_schedule": one_of("constant", "inverse_time", "inverse_sqrt"),
    "lr_decay_rounds": positive(),
}


def non_negative() -> Rule:
    return Rule(lambda v: _is_number(v) and v >= 0, "a finite number ≥ 0")


_POLICY_GRADIENT: dict[str, Rule] = {
    **_SCHEDULE,
    "rounds": integer(0),
    "local_steps": integer(1),
    "lr": positive(),
    "gradient": one_of("exact", "sampled"),
    "batch_size": integer(1),
    "horizon": integer(1),
    "entropy_coef": non_negative(),
    "estimator": one_of("reinforce", "reward_to_go"),
    "init": one_of("zero", "optimum"),
}


_PPO: dict[str, Rule] = {
    "rounds": integer(0),
    "local_steps": integer(1),
    "rollout_steps": integer(1),
    "update_epochs": integer(1),
    "minibatches": integer(1),
    "lr": positive(),
    "anneal_lr": BOOLEAN,
    "gamma": number_in(0, 1, high_open=True),
    "gae_lambda": number_in(0, 1),
    "clip_coef": positive(),
    "clip_vloss": BOOLEAN,
    "norm_adv": BOOLEAN,
    "ent_coef": non_negative(),
    "vf_coef": non_negative(),
    "max_grad_norm": positive(),
    "eval_every": integer(0),
    "eval_episodes": integer(1),
}

_SUBSPACE_LINEAR: dict[str, Rule] = {
    **_SCHEDULE,
    "rounds": integer(0),
    "local_steps": integer(1),
    "features": one_of("onehot", "random"),
    "feature_dim": integer(1),
    "rank": integer(1),
    "lr_head": positive(),
    "lr_basis": non_negative(),
    "lr_actor": non_negative(),
    "reexpress_heads": Rule(
        lambda v: v in ("project", "rotate", "none") or isinstance(v, bool),
        "one of project, rotate, none (true = project, false = none)",
    ),
    "basis_update": one_of("gradient", "projected", "preconditioned"),
    "basis_init": one_of("random", "value_span"),
}

LAYERS = ("actor_mean.0", "actor_mean.2", "actor_mean.4", "actor_logstd", "critic.0", "critic.2", "critic.4")


def layer_list() -> Rule:
    return Rule(
        lambda v: isinstance(v, list) and all(item in LAYERS for item in v),
        "a list of layer names from " + ", ".join(LAYERS),
    )


def optional_path() -> Rule:
    return Rule(lambda v: v is None or (isinstance(v, str) and v != ""), "null or the path of a run dir")


_PPO_ALL = {**_PPO, "trunk_from": optional_path(), "freeze_trunk": BOOLEAN}
_PPO_FEDERATED = {
    **_PPO_ALL,
    "shared_init": one_of("common", "independent"),
    "shared_init_scale": positive(),
    "rescale_first_average": BOOLEAN,
    "shared_adam": one_of("keep", "reset"),
}

_PPO_SUBSPACE = {**_PPO_FEDERATED, "shared_layers": layer_list()}

# the keys of each algorithm on each environment family it runs on
ALGORITHMS: dict[str, dict[str, dict[str, Rule]]] = {
    "fastfedpg": {"tabular": {**_POLICY_GRADIENT, "global_lr": positive_at_most_one()}},
    "fedavg_pg": {"tabular": {**_POLICY_GRADIENT, "global_lr": positive_at_most_one()}},
    "local_pg": {"tabular": dict(_POLICY_GRADIENT)},
    "single_ppo": {env: _PPO_ALL for env in MUJOCO_ENVS},
    "fedavg_ppo": {env: _PPO_FEDERATED for env in MUJOCO_ENVS},
    "fedsubspace_ac": {"tabular": _SUBSPACE_LINEAR, **{env: _PPO_SUBSPACE for env in MUJOCO_ENVS}},
}


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _check_section(prefix: str, section: Mapping[str, Any], rules: Mapping[str, Rule]) -> None:
    for key in section:
        if key != "name" and key not in rules:
            allowed = ", ".join(sorted(rules))
            raise ConfigError(f"{prefix}{key}: unknown key; allowed keys: {allowed}")
    for key, rule in rules.items():
        if key not in section:
            raise ConfigError(f"{prefix}{key} is missing; it must be {rule.allowed}")
        value = section[key]
        if not rule.check(value):
            raise ConfigError(f"{prefix}{key}={_show(value)} is not allowed: it must be {rule.allowed}")


TRUNK_SOURCES = ("fedsubspace_ac", "single_ppo", "fedavg_ppo")


def _check_trunk_source(path: str, env_id: str) -> None:
    """``algo.trunk_from`` must name a completed PPO run on the task ``env_id``, which saved its model: a
    fedsubspace_ac run (its shared trunk) or, as a control, a single_ppo or fedavg_ppo run (agent 0's hidden
    layers)."""
    allowed = f"it must be the run dir of a completed {', '.join(TRUNK_SOURCES)} run on {env_id}"
    summary = read_summary(Path(path))
    if summary is None:
        raise ConfigError(f"algo.trunk_from={path} is not allowed: no run there; {allowed}")
    config = summary.get("config") if isinstance(summary.get("config"), dict) else {}
    algo, env = (config.get(key) if isinstance(config.get(key), dict) else {} for key in ("algo", "env"))
    source = (algo.get("name"), env.get("name"), summary.get("status"))
    usable = source[0] in TRUNK_SOURCES and source[1] in MUJOCO_ENVS and source[2] == "completed"
    if not usable or not (Path(path) / "model.pt").is_file():
        raise ConfigError(
            f"algo.trunk_from={path} is not allowed: it holds a {source[2]} {source[0]} run on {source[1]}; {allowed}"
        )
    from fedrl_cli.algos.trunk import read_trunk  # torch, only for transfer runs

    try:
        read_trunk(Path(path), TASKS[env_id].observations, TASKS[env_id].actions)
    except ValueError as error:
        raise ConfigError(f"algo.trunk_from={path} is not allowed: {error}; {allowed}") from None


def _check_tabular_family(env: Mapping[str, Any], n_agents: int) -> None:
    """Balanced families pair agents (so N is 1 or even), replicated ones repeat m MDPs (so m divides N); a
    realizable value rank fits the state space."""
    if env["heterogeneity_design"] == "balanced" and n_agents > 1 and n_agents % 2:
        raise ConfigError(
            f"n_agents={n_agents} is not allowed with env.heterogeneity_design=balanced: it must be 1 or even "
            "(agents come in antithetic pairs)"
        )
    distinct = env["distinct_mdps"]
    if env["heterogeneity_design"] == "replicated" and n_agents % distinct:
        raise ConfigError(
            f"n_agents={n_agents} is not allowed with env.heterogeneity_design=replicated and env.distinct_mdps="
            f"{distinct}: it must be a multiple of {distinct} (agent i gets MDP i mod {distinct})"
        )
    centred = env["value_level"] == "centred"
    rank, most = env["value_rank"], env["n_states"] - centred
    if rank is not None and rank > most:
        less = ", less the constant direction that centred values leave out" if centred else ""
        raise ConfigError(
            f"env.value_rank={rank} is not allowed with env.value_level={env['value_level']}: it must be at most "
            f"{most} (env.n_states={env['n_states']}{less})"
        )


def _check_linear_subspace(env: Mapping[str, Any], algo: Mapping[str, Any]) -> None:
    """The subspace fits the features; ``basis_init=value_span`` needs a value span of the same rank."""
    dimension = env["n_states"] if algo["features"] == "onehot" else algo["feature_dim"]
    if algo["rank"] > dimension:
        raise ConfigError(
            f"algo.rank={algo['rank']} is not allowed: it must be at most the feature dimension {dimension}"
        )
    if algo["basis_init"] == "value_span" and env["value_rank"] != algo["rank"]:
        raise ConfigError(
            f"algo.basis_init=value_span is not allowed with env.value_rank={_show(env['value_rank'])} and "
            f"algo.rank={algo['rank']}: it starts at the family's value span, so it needs a realizable family "
            "(env.value_rank set) of the subspace's rank (env.value_rank = algo.rank)"
        )


def _check_optimum_start(env: Mapping[str, Any], algo: Mapping[str, Any]) -> None:
    """``algo.init=optimum`` starts at θ*_τ of the average MDP: it exists for τ > 0 and is known with a shared
    kernel."""
    if algo["entropy_coef"] == 0:
        raise ConfigError(
            "algo.init=optimum is not allowed with algo.entropy_coef=0: the unregularised optimum θ* is at infinity "
            "(a deterministic policy); set algo.entropy_coef > 0"
        )
    if env["transition_heterogeneity"] != 0:
        raise ConfigError(
            f"algo.init=optimum is not allowed with env.transition_heterogeneity={env['transition_heterogeneity']}: "
            "θ*_τ of the agents' mean objective is known only with a shared kernel (transition_heterogeneity=0)"
        )


def distinct_maps(kind: str, action_dim: int) -> int | None:
    """How many different maps of ``kind`` exist for ``action_dim`` actuators (None: unbounded, or no maps)."""
    if kind == "signed_permutation":
        return math.factorial(action_dim) * 2**action_dim
    if kind == "permutation":
        return math.factorial(action_dim)
    return None


def _check_task(env: Mapping[str, Any], n_agents: int) -> None:
    """Batched physics only where the task has it; every agent gets a map of its own, so N may not exceed the
    number of distinct maps."""
    if env["vector"] == "batched" and env["id"] not in BATCHED:
        raise ConfigError(
            f"env.vector=batched is not allowed with env.id={env['id']}: batched physics exists for "
            f"{', '.join(BATCHED)}; use env.vector=auto or sync"
        )
    actions = TASKS[env["id"]].actions
    most = distinct_maps(env["action_map"], actions)
    if most is not None and n_agents > most:
        raise ConfigError(
            f"n_agents={n_agents} is not allowed with env.action_map={env['action_map']}: every agent gets a map of "
            f"its own and only {most} distinct ones exist for {env['id']}'s {actions} actuators"
        )


def _check_placement(cfg: Mapping[str, Any]) -> None:
    """``backend=ray`` shards a Hopper run's agents, at least one per worker; tabular runs are one process."""
    if cfg["backend"] != "ray":
        return
    if cfg["env"]["name"] == "tabular":
        raise ConfigError(
            "backend=ray is not allowed with env=tabular: the tabular algorithms are vectorised in one process; "
            "use backend=local (sweeps run in parallel with hydra/launcher=ray)"
        )
    if cfg["workers"] > cfg["n_agents"]:
        raise ConfigError(
            f"workers={cfg['workers']} is not allowed: it must be at most n_agents={cfg['n_agents']} "
            "(each worker owns at least one agent)"
        )


def _sizes(cfg: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """The run's largest arrays: (the keys that set the size, floats, what holds them)."""
    env, algo, n = cfg["env"], cfg["algo"], cfg["n_agents"]
    if env["name"] in MUJOCO_ENVS:
        copies = n * env["n_envs"]
        keys = f"n_agents={n}, env.n_envs={env['n_envs']}"
        return [
            (
                f"{keys}, algo.rollout_steps={algo['rollout_steps']}",
                copies * (algo["rollout_steps"] * 32 + MUJOCO_COPY_FLOATS),
                "the rollout buffers (about 32 floats a transition) and the MuJoCo copies (about 1.1 MB each)",
            )
        ]
    states, actions = env["n_states"], env["n_actions"]
    sizes = [
        (
            f"n_agents={n}, env.n_states={states}, env.n_actions={actions}",
            2 * n * states * states * actions,
            "the MDP family (n_agents × n_states² × n_actions transitions and their CDFs)",
        )
    ]
    if algo.get("gradient") == "sampled":
        keys = f"n_agents={n}, algo.batch_size={algo['batch_size']}, algo.horizon={algo['horizon']}"
        sizes.append((keys, 3 * n * algo["batch_size"] * algo["horizon"], "one sampled gradient's trajectories"))
    if algo["name"] == "fedsubspace_ac":
        dimension = states if algo["features"] == "onehot" else algo["feature_dim"]
        keys = f"n_agents={n}, env.n_states={states}, algo.feature_dim={dimension}, algo.rank={algo['rank']}"
        sizes.append((keys, (states + n * algo["rank"]) * dimension, "the features and the agents' bases"))
    return sizes


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first key of ``cfg`` (a plain dict) that breaks the contract."""
    env, algo = cfg.get("env"), cfg.get("algo")
    if not isinstance(env, Mapping) or env.get("name") not in ENVIRONMENTS:
        name = env.get("name") if isinstance(env, Mapping) else env
        raise ConfigError(f"env={_show(name)} is not allowed: it must be one of {', '.join(ENVIRONMENTS)}")
    if not isinstance(algo, Mapping) or algo.get("name") not in ALGORITHMS:
        name = algo.get("name") if isinstance(algo, Mapping) else algo
        raise ConfigError(f"algo={_show(name)} is not allowed: it must be one of {', '.join(ALGORITHMS)}")
    _check_section("env.", env, ENVIRONMENTS[env["name"]])
    if env["name"] not in ALGORITHMS[algo["name"]]:
        pairs = "; ".join(f"{a} on {', '.join(envs)}" for a, envs in ALGORITHMS.items())
        raise ConfigError(f"algo={algo['name']} does not run on env={env['name']}; supported: {pairs}")
    top = {key: value for key, value in cfg.items() if key not in ("env", "algo", "hydra")}
    _check_section("", top, TOP_LEVEL)
    _check_section("algo.", algo, ALGORITHMS[algo["name"]][env["name"]])
    if algo.get("trunk_from"):
        _check_trunk_source(algo["trunk_from"], env["id"])
    if algo.get("shared_init") == "independent" and algo["shared_init_scale"] != 1:
        raise ConfigError(
            f"algo.shared_init_scale={algo['shared_init_scale']} is not allowed with algo.shared_init=independent: "
            "it scales the server's common draw; set algo.shared_init=common"
        )
    if algo.get("freeze_trunk") and not algo.get("trunk_from"):
        raise ConfigError("algo.freeze_trunk=true is not allowed without algo.trunk_from: there is no trunk to freeze")
    if env["name"] == "tabular":
        _check_tabular_family(env, cfg["n_agents"])
        if algo.get("init") == "optimum":
            _check_optimum_start(env, algo)
    if env["name"] in MUJOCO_ENVS:
        _check_task(env, cfg["n_agents"])
    _check_placement(cfg)
    if algo["name"] == "fedsubspace_ac" and env["name"] == "tabular":
        _check_linear_subspace(env, algo)
    for keys, floats, what in _sizes(cfg):
        if floats > MAX_FLOATS:
            raise ConfigError(
                f"{keys} is not allowed: {what} would take {floats:.3g} floats; at most {MAX_FLOATS:.3g} (1 GiB) fit"
            )
    batch = algo.get("rollout_steps", 0) * env.get("n_envs", 1)
    if "minibatches" in algo and batch // algo["minibatches"] < 2:  # advantages are normalised by their std
        most = f"at most {batch // 2}" if batch >= 2 else "raise algo.rollout_steps"
        raise ConfigError(
            f"algo.minibatches={algo['minibatches']} is not allowed with algo.rollout_steps × env.n_envs = {batch}: "
            f"each minibatch needs at least 2 samples (advantages are normalised by their spread); {most}"
        )


def theorem_horizon(n_agents: int, local_steps: int, rounds: int, gamma: float) -> float:
    """Fast-FedPG's horizon condition (Theorem 2): ``K ≥ log(N·H·T) / (2 log(1/γ))``."""
    return math.log(max(2, n_agents * local_steps * rounds)) / (2 * math.log(1 / gamma)) if gamma > 0 else 1.0


def warnings(cfg: Mapping[str, Any]) -> list[str]:
    """Valid settings that a user should know about: one line each."""
    env, algo = cfg["env"], cfg["algo"]
    found = []
    if cfg["backend"] == "local" and (cfg["workers"] > 1 or cfg["ray_address"] is not None):
        found.append(
            f"workers={cfg['workers']} and ray_address={_show(cfg['ray_address'])} are ignored with backend=local: "
            "every agent runs in this process (set backend=ray to split them over workers)"
        )
    every = cfg["agent_metrics_every"]
    size = AGENT_ROW_BYTES * cfg["n_agents"] * (algo["rounds"] // every + 1 if every else 0)
    if size > AGENT_METRICS_WARN_BYTES:
        found.append(
            f"agent_metrics.csv would take about {size / 1e9:.1f} GB (n_agents={cfg['n_agents']} rows every "
            f"{every} rounds of {algo['rounds']}): set agent_metrics_every=K to keep every K-th round, or 0 for none"
        )
    if algo.get("gradient") == "sampled":
        needed = theorem_horizon(cfg["n_agents"], algo["local_steps"], algo["rounds"], env["gamma"])
        if algo["horizon"] < needed:
            found.append(
                f"algo.horizon={algo['horizon']} is below Theorem 2's K ≥ log(N·H·T)/(2 log(1/γ)) = {needed:.1f}: "
                f"the estimates keep a truncation bias of order γ^K = {env['gamma'] ** algo['horizon']:.2g}"
            )
    return found
