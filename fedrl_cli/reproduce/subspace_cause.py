"""Why sharing a trunk costs the mapped agents (the cause study of :mod:`fedrl_cli.reproduce.subspace`,
`--part cause`; cause.md and cause.csv).

Four Hopper-v5 agents with distinct signed-permutation maps (drawn from each run's seed, so every variant of one
seed has the same maps), 196,608 steps per agent (where the curves already separate), paired seeds. Variants of
fedsubspace_ac: which hidden layers are shared (actor and critic, actor only, critic only) × how they start (the
server's one draw, ``common``, or every agent its own, ``independent``), and three probes of what averaging
unrelated networks does: ``independent`` with the first average rescaled to the agents' weight norms, ``common``
at half scale, and ``common`` with the shared layers' Adam moments restarted after each average. Each variant is
compared with single_ppo (the same seeds and maps) and with the earlier default (actor and critic, independent),
as paired differences of the runs' scores (each agent's mean of its last three evaluations of 10 episodes, averaged
over the agents) with t intervals and exact permutation p-values, beside the trunk's final weight norms.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedrl_cli.algos.ppo import load_model
from fedrl_cli.curves import EVALUATIONS_SCORED
from fedrl_cli.reproduce.common import Options, markdown, scale_note, scaled, sweep, sweeps_wall_minutes
from fedrl_cli.results import load_results
from fedrl_cli.stats import difference, interval_name, mean_estimate, permutation_p_value

SEEDS = 8
ROUNDS = 48  # × 2 PPO iterations × 2,048 steps = 196,608 steps per agent
BASE = [
    "env=hopper",
    "n_agents=4",
    "env.action_map=signed_permutation",
    "algo.eval_every=4",
    "algo.eval_episodes=10",
    "progress=false",
]
SUBSPACE = "algo=fedsubspace_ac"
BOTH_INITS = "algo.shared_init=common,independent"
# sweep name → its overrides beyond BASE
SWEEPS: dict[str, list[str]] = {
    "fedsubspace_init": [SUBSPACE, BOTH_INITS],
    "single_ppo": ["algo=single_ppo"],
    "fedsubspace_layers": [SUBSPACE, BOTH_INITS, "algo.shared_layers=[actor_mean.0,actor_mean.2],[critic.0,critic.2]"],
    "fedsubspace_rescaled": [SUBSPACE, "algo.shared_init=independent", "algo.rescale_first_average=true"],
    "fedsubspace_half_scale": [SUBSPACE, "algo.shared_init=common", "algo.shared_init_scale=0.5"],
    "fedsubspace_adam_reset": [SUBSPACE, "algo.shared_init=common", "algo.shared_adam=reset"],
}
TRUNK = ("actor_mean.0", "actor_mean.2", "critic.0", "critic.2")
REFERENCE, EARLIER = "single_ppo", "actor+critic, independent"


def variant(config: dict) -> str:
    """A run's variant in words: ``single_ppo``, or the layers fedsubspace_ac shares, its init and any probe."""
    algo = config["algo"]
    if algo["name"] != "fedsubspace_ac":
        return algo["name"]
    shared = sorted({layer.split(".")[0] for layer in algo["shared_layers"]})
    words = ["+".join({"actor_mean": "actor", "critic": "critic"}[name] for name in shared), algo["shared_init"]]
    if algo.get("rescale_first_average"):
        words.append("first average rescaled")
    if algo.get("shared_init_scale", 1.0) != 1.0:
        words.append(f"× {algo['shared_init_scale']:g}")
    if algo.get("shared_adam") == "reset":
        words.append("Adam reset")
    return ", ".join(words)


def evaluation_rows(sweep_dirs: list[Path]) -> pd.DataFrame:
    """cause_evaluations.csv: every evaluation of every completed run's agents (variant, seed, agent, map, round,
    samples_per_agent, eval_return), and the trunk's final weight norms (Frobenius, that agent's)."""
    rows = []
    for run in load_results(sweep_dirs).runs:
        if run.status != "completed":  # a sweep still running, or a run to resume: its finished runs count
            continue
        agents = pd.read_csv(run.path / "agent_metrics.csv").dropna(subset=["eval_return"])
        steps = pd.read_csv(run.path / "metrics.csv").set_index("round")["samples_per_agent"]
        model, _, maps, _ = load_model(run.path / "model.pt")
        weights = {name: parameter.detach() for name, parameter in model.named_parameters()}
        for row in agents.sort_values(["agent", "round"]).itertuples():
            rows.append(
                {
                    "variant": variant(run.config),
                    "seed": run.config["seed"],
                    "agent": row.agent,
                    "map": " ".join(f"{v + 0.0:g}" for v in maps[row.agent].ravel()),  # no "-0"
                    "round": row.round,
                    "samples_per_agent": steps.loc[row.round],
                    "eval_return": row.eval_return,
                    **{f"{layer} norm": float(weights[f"{layer}.weight"][row.agent].norm()) for layer in TRUNK},
                }
            )
    return pd.DataFrame(rows)


def run_rows(evaluations: pd.DataFrame) -> pd.DataFrame:
    """cause.csv: per run and agent, its score (the mean of the agent's last evaluations), map and trunk norms."""
    keys = ["variant", "seed", "agent", "map"]
    last = evaluations.sort_values("round").groupby(keys).tail(EVALUATIONS_SCORED)
    return (
        last.groupby(keys)
        .agg(score=("eval_return", "mean"), **{f"{layer} norm": (f"{layer} norm", "first") for layer in TRUNK})
        .reset_index()
    )


def _paired(scores: pd.Series, against: pd.Series) -> str:
    """``difference [low, high], p`` of the paired per-seed difference, on the seeds both have."""
    seeds = scores.index.intersection(against.index)
    if len(seeds) < 2:
        return "–"
    a, b = scores.loc[seeds].to_numpy(), against.loc[seeds].to_numpy()
    found = difference(a, b, paired=True)
    return f"{found.text('+.0f')} ({len(seeds)} seeds), p = {permutation_p_value(a, b, paired=True):.3g}"


def cause_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant: its seeds, mean score with its interval, the paired differences against single_ppo and against
    the earlier default, and the mean trunk norms."""
    per_seed = rows.groupby(["variant", "seed"])["score"].mean()
    norms = rows.groupby("variant")[[f"{layer} norm" for layer in TRUNK]].mean()
    reference = per_seed.get(REFERENCE, pd.Series(dtype=float))
    earlier = per_seed.get(EARLIER, pd.Series(dtype=float))
    table = []
    for name in per_seed.index.get_level_values("variant").unique():
        scores = per_seed.loc[name]
        found = mean_estimate(scores.to_numpy())
        table.append(
            {
                "variant": name,
                "seeds": len(scores),
                "score": found.text(".0f"),
                f"− {REFERENCE}": "–" if name == REFERENCE else _paired(scores, reference),
                f"− ({EARLIER})": "–" if name in (REFERENCE, EARLIER) else _paired(scores, earlier),
                **{column: round(value, 2) for column, value in norms.loc[name].items()},
            }
        )
    return pd.DataFrame(table)


def cause_part(options: Options) -> str:
    """Run (or reuse) the sweeps into ``options.out``, write cause.csv, and return cause.md's text."""
    out, seeds = options.out, options.hopper_seeds or SEEDS
    rounds = f"algo.rounds={scaled(ROUNDS, options.scale)}"
    commands = {
        name: sweep(out / name, [*overrides, *BASE, rounds, f"seed=range({seeds})"], options.jobs, options.reuse)
        for name, overrides in SWEEPS.items()
    }
    evaluations = evaluation_rows([out / name for name in SWEEPS])
    evaluations.to_csv(out / "cause_evaluations.csv", index=False)
    rows = run_rows(evaluations)
    rows.to_csv(out / "cause.csv", index=False)
    steps = scaled(ROUNDS, options.scale) * 2 * 2048
    listing = "\n".join(f"`{command}`" for command in commands.values())
    minutes = sweeps_wall_minutes([out / name for name in SWEEPS])
    return f"""# Why sharing a trunk costs the mapped agents: the initialisation of what is shared

{scale_note(options.scale).strip()}

Four Hopper-v5 agents with distinct signed-permutation maps drawn from each run's seed (so every variant of a seed
has the same maps), {steps:,} steps per agent, {seeds} paired seeds. A run's score is the mean over its agents of
each agent's last {EVALUATIONS_SCORED} evaluations (10 episodes each); per-agent scores, maps and final trunk weight
norms in [cause.csv](cause.csv), computed from every evaluation in
[cause_evaluations.csv](cause_evaluations.csv). Differences are paired by seed: {interval_name(seeds)}, and the
exact permutation p-value of the paired difference.

{markdown(cause_table(rows))}

Norms: the Frobenius norm of each shared hidden layer's weight matrix at the end, mean over agents and seeds
(CleanRL's orthogonal initialisation starts them at √2 × √64 ≈ 11.3 for the 64 × 64 layers and about 4.7 for the
first layers).

{listing}

Wall time of the sweeps {minutes:.1f} min on 2 cores.
"""
