"""The subspace actor-critic's deep form on Hopper-v5 (parts (ii) and (iii) of :mod:`fedrl_cli.reproduce.subspace`):
fedsubspace_ac against single_ppo and fedavg_ppo, what it shares, and transfer to a new agent; report.md with
hopper_final.csv and transfer_final.csv, the per-seed data its numbers come from."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fedrl_cli.plots import make_plots
from fedrl_cli.reproduce.common import (
    Claim,
    Options,
    claims_markdown,
    markdown,
    scale_note,
    scaled,
    sweep,
    sweeps_wall_minutes,
)
from fedrl_cli.results import load_results
from fedrl_cli.stats import difference, interval_name, mean_estimate, permutation_p_value, window_means

ALGOS = ("fedsubspace_ac", "single_ppo", "fedavg_ppo")
HOPPER_SEEDS, TRANSFER_SEEDS = 3, 5  # seeds of the comparison and the ablation; of each transfer setting
# Hopper budgets, in rounds of 4 PPO iterations of 2,048 steps (8,192 environment steps per agent per round)
HOPPER_BUDGETS = {
    "reduced": {"main": 20, "transfer": 8},  # 163,840 and 65,536 steps per agent: about an hour on 2 cores
    "full": {"main": 122, "transfer": 30},  # 999,424 (CleanRL's 1M) and 245,760 steps per agent
}
ABLATION_ROUNDS = 20  # the sharing ablation runs at the reduced budget in both modes
SHARED_LAYERS = {  # what fedsubspace_ac shares in the ablation (the first is the default)
    "actor+critic hidden": "[actor_mean.0,actor_mean.2,critic.0,critic.2]",
    "actor hidden": "[actor_mean.0,actor_mean.2]",
    "critic hidden": "[critic.0,critic.2]",
}


def final_evaluations(sweep_dir: Path) -> pd.DataFrame:
    """Each run's evaluation return per agent at its last round, with its config, its budget and the mean of its
    agents' evaluations over the whole run (the area under its learning curve)."""
    rows = []
    for run in load_results([sweep_dir]).runs:
        agents = pd.read_csv(run.path / "agent_metrics.csv")
        steps = int(pd.read_csv(run.path / "metrics.csv")["samples_per_agent"].iloc[-1])
        curve_mean = window_means(agents, "eval_return", ["agent"])
        last = agents[agents["round"] == agents["round"].max()]
        algo = run.config["algo"]
        names = {value: name for name, value in SHARED_LAYERS.items()}
        for agent, value in zip(last["agent"], last["eval_return"], strict=True):
            rows.append(
                {
                    "algo": algo["name"],
                    "seed": run.config["seed"],
                    "agent": agent,
                    "eval_return": value,
                    "samples_per_agent": steps,
                    "curve_mean": curve_mean[agent],
                    "run_dir": str(run.path),
                    "trunk": ("frozen" if algo.get("freeze_trunk") else "trainable")
                    if algo.get("trunk_from")
                    else "scratch",
                    "shared": names.get("[" + ",".join(algo.get("shared_layers") or []) + "]", ""),
                    "sps": pd.read_csv(run.path / "metrics.csv")["sps"].mean(),
                }
            )
    return pd.DataFrame(rows)


def seed_means(frame: pd.DataFrame, key: str, value: str = "eval_return") -> dict[object, np.ndarray]:
    """Per value of ``key``: each seed's mean over agents of ``value``."""
    return {k: part.groupby("seed")[value].mean().to_numpy() for k, part in frame.groupby(key)}


def beats(name: str, a: np.ndarray, b: np.ndarray) -> Claim:
    """``name`` held when the 95% interval of mean(a) − mean(b) over seeds lies above 0 (:func:`difference`); the
    exact permutation test's p-value is given beside it."""
    found = difference(a, b)
    return (
        name,
        bool(found.low > 0),
        f"{a.mean():.0f} vs {b.mean():.0f}: difference {found.point:+.0f}, {interval_name(found.seeds)} "
        f"[{found.low:+.0f}, {found.high:+.0f}]; permutation p = {permutation_p_value(a, b):.2g}",
    )


def seed_summary(frame: pd.DataFrame, key: str, value: str = "eval_return") -> pd.DataFrame:
    """Mean over seeds (of each run's mean over agents) with its 95% interval (:func:`mean_estimate`)."""
    rows = []
    for name, per_seed in seed_means(frame, key, value).items():
        found = mean_estimate(per_seed)
        rows.append(
            {
                key: name,
                "seeds": len(per_seed),
                f"{value} (mean over seeds)": found.point,
                "95% CI low": found.low,
                "95% CI high": found.high,
                "interval": found.method,
                "per seed": ", ".join(f"{v:.0f}" for v in per_seed),
            }
        )
    return pd.DataFrame(rows)


def hopper_part(options: Options) -> str:
    """Sweeps for (ii), the sharing ablation and (iii), their figures, data files, and the text of report.md."""
    out, jobs, reuse, scale, workers = options.out, options.jobs, options.reuse, options.scale, options.workers
    budget = options.hopper_budget or "reduced"
    seeds, transfer_seeds = options.hopper_seeds or HOPPER_SEEDS, options.transfer_seeds or TRANSFER_SEEDS
    rounds = {part: scaled(value, scale) for part, value in HOPPER_BUDGETS[budget].items()}
    placement = ["backend=ray", f"workers={workers}"] if workers > 1 else []
    if jobs == -1 and workers > 1:  # each run holds `workers` cores: as many runs at once as the cores allow
        jobs = max(1, (os.cpu_count() or 1) // workers)
    seed_list = ",".join(map(str, range(seeds)))
    # `++` sets keys that the default algorithm, which composes the sweep's base config, lacks
    hopper = [
        "env=hopper",
        "n_agents=4",
        "env.action_map=signed_permutation",
        f"seed={seed_list}",
        "++algo.eval_every=5",
        "++algo.eval_episodes=5",
        "progress=false",
        f"algo.rounds={rounds['main']}",
        "++algo.local_steps=4",
        *placement,
    ]
    hopper_command = sweep(out / "hopper", [f"algo={','.join(ALGOS)}", *hopper], jobs, reuse)
    hopper_runs = load_results([out / "hopper"])
    make_plots(hopper_runs, out / "hopper_plots", metric="eval_return_mean", x="samples_per_agent")
    evaluations = final_evaluations(out / "hopper")
    columns = ["algo", "seed", "agent", "eval_return", "samples_per_agent"]
    evaluations[columns].sort_values(columns[:3]).to_csv(out / "hopper_final.csv", index=False)
    by_algo, by_algo_curve = seed_summary(evaluations, "algo"), seed_summary(evaluations, "algo", "curve_mean")
    per_algo = seed_means(evaluations, "algo")
    hopper_found = [
        beats(f"fedsubspace_ac beats {other} (mean over agents and seeds)", per_algo["fedsubspace_ac"], per_algo[other])
        for other in ("single_ppo", "fedavg_ppo")
    ]
    per_agent_rows, agent_wins = [], 0
    for agent, part in evaluations.groupby("agent"):
        ours = part[part.algo == "fedsubspace_ac"].sort_values("seed")["eval_return"].to_numpy()
        single = part[part.algo == "single_ppo"].sort_values("seed")["eval_return"].to_numpy()
        gain = difference(ours, single)
        agent_wins += gain.low > 0
        row = {"agent": agent, **{a: part[part.algo == a]["eval_return"].mean() for a in ALGOS}}
        per_agent_rows.append(
            {
                **row,
                "fedsubspace_ac − single_ppo": gain.point,
                "95% CI": f"[{gain.low:+.0f}, {gain.high:+.0f}]",
                "low": gain.low,
                "high": gain.high,
            }
        )
    per_agent = pd.DataFrame(per_agent_rows)
    ahead = ", ".join(map(str, per_agent.loc[per_agent["low"] > 0, "agent"])) or "none"
    behind = ", ".join(map(str, per_agent.loc[per_agent["high"] < 0, "agent"])) or "none"
    per_agent = per_agent.drop(columns=["low", "high"])
    hopper_found.append(
        (
            "fedsubspace_ac beats single_ppo for every agent (95% CI of each agent's difference above 0)",
            bool(agent_wins == len(per_agent)),
            f"above 0 for {agent_wins} of {len(per_agent)} agents",
        )
    )
    speed = evaluations.groupby("algo")["sps"].mean()
    table = per_agent.set_index("agent")

    ablation = [
        "algo=fedsubspace_ac",
        *[o for o in hopper if not o.startswith("algo.rounds")],
        f"algo.rounds={scaled(ABLATION_ROUNDS, scale)}",
        "algo.shared_layers=" + ",".join(SHARED_LAYERS.values()),
    ]
    ablation_command = sweep(out / "ablation", ablation, jobs, reuse)
    shared = final_evaluations(out / "ablation")
    by_shared = seed_summary(shared, "shared")
    make_plots(
        load_results([out / "ablation"]), out / "ablation_plots", metric="eval_return_mean", x="samples_per_agent"
    )

    source = evaluations[(evaluations.algo == "fedsubspace_ac") & (evaluations.seed == 0)]["run_dir"].iloc[0]
    new_agent = [
        "algo=single_ppo",
        "env=hopper",
        "n_agents=1",
        "env.action_map=signed_permutation",
        "env.action_map_seed=999",
        "env.identity_first=false",
        f"seed={','.join(map(str, range(transfer_seeds)))}",
        "++algo.eval_every=2",
        "++algo.eval_episodes=5",
        "progress=false",
        f"algo.rounds={rounds['transfer']}",
        "++algo.local_steps=4",
    ]
    transfer_jobs = jobs if workers == 1 else -1  # one agent: nothing to split
    scratch_command = sweep(out / "transfer_scratch", new_agent, transfer_jobs, reuse)
    transfer_command = sweep(
        out / "transfer_trunk",
        [*new_agent, f"algo.trunk_from='{source}'", "algo.freeze_trunk=true,false"],  # quoted: job dirs hold '='
        transfer_jobs,
        reuse,
    )
    transfer = pd.concat([final_evaluations(out / "transfer_scratch"), final_evaluations(out / "transfer_trunk")])
    transfer[["trunk", "seed", "eval_return", "samples_per_agent"]].sort_values(["trunk", "seed"]).to_csv(
        out / "transfer_final.csv", index=False
    )
    by_trunk, curve_by_trunk_table = seed_summary(transfer, "trunk"), seed_summary(transfer, "trunk", "curve_mean")
    make_plots(
        load_results([out / "transfer_scratch", out / "transfer_trunk"]),
        out / "transfer_plots",
        metric="eval_return_mean",
        x="samples_per_agent",
    )
    final_by_trunk, curve_by_trunk = seed_means(transfer, "trunk"), seed_means(transfer, "trunk", "curve_mean")
    transfer_found = []
    for kind in ("frozen", "trainable"):
        transfer_found.append(
            beats(f"a new agent from the {kind} trunk beats scratch at the end of the budget",
                  final_by_trunk[kind], final_by_trunk["scratch"])
        )  # fmt: skip
        transfer_found.append(
            beats(f"… and over the whole learning curve (mean of its evaluations), {kind} trunk",
                  curve_by_trunk[kind], curve_by_trunk["scratch"])
        )  # fmt: skip
    minutes = sweeps_wall_minutes([out / name for name in ("hopper", "ablation", "transfer_scratch", "transfer_trunk")])
    found = hopper_found + transfer_found
    total_steps = sum(
        int(pd.read_csv(run.path / "metrics.csv")["samples"].iloc[-1])
        for name in ("hopper", "ablation", "transfer_scratch", "transfer_trunk")
        for run in load_results([out / name]).runs
    )
    steps = int(evaluations["samples_per_agent"].max())
    where = f"`backend=ray workers={workers}` per run" if workers > 1 else "`backend=local`, one run per core"
    text = f"""# Federated subspace actor-critic on Hopper-v5, reproduced with fedrl

{sum(h for _, h, _ in found)} of {len(found)} claims held (a claim holds when the 95% interval of the
difference lies above 0: Welch's t below 10 seeds a side, a bootstrap from 10 on; the exact permutation test's
p-value beside it). Wall time of the sweeps {minutes:.0f} min on this machine ({os.cpu_count()} cores,
{where}; sweeps that overlapped are counted once): {total_steps / 1e6:.1f}M environment steps,
{total_steps / (minutes * 60):,.0f} steps/s over the machine; steps/s per run (4 agents, sharing the cores with
the other runs): {", ".join(f"{a} {v:,.0f}" for a, v in speed.items())}.
Data: [hopper_final.csv](hopper_final.csv), [transfer_final.csv](transfer_final.csv). The linear form on tabular
MDPs is reproduced in [tabular.md](tabular.md).{scale_note(scale)}

## (ii) Deep form on Hopper-v5 with signed-permutation action maps

`{hopper_command}`

4 agents (agent 0 keeps the identity map), {seeds} seeds, {steps:,} environment steps per agent ({budget} budget;
CleanRL's is 1M). `fedsubspace_ac` shares the actor's and critic's hidden layers; heads, log-std, Adam moments
and normalisation stay personal; `fedavg_ppo` averages everything; `single_ppo` shares nothing.

{claims_markdown(hopper_found)}

Final evaluation return (deterministic policy, each agent on its own environment, 5 episodes), per seed the mean
over the 4 agents:

{markdown(by_algo)}

Mean of the evaluations over the whole run (the area under the learning curve: how fast each learns):

{markdown(by_algo_curve)}

Per agent (mean over seeds; the difference's 95% interval is over seeds, by the rule above):

{markdown(per_agent)}

Where it holds and where not: `fedsubspace_ac` is ahead of `single_ppo` for agent(s) {ahead} and
behind for agent(s) {behind} (95% intervals). `fedavg_ppo`, which shares everything, reaches
{", ".join(f"{table.loc[a, 'fedavg_ppo']:.0f}" for a in table.index)} on agents {", ".join(map(str, table.index))}:
the agents on which one shared policy fails are the ones whose maps conflict with the others', and sharing the
hidden layers still costs them part of their return while it helps the agent the shared trunk suits. The
ablation below compares sharing both hidden stacks with sharing only the actor's or only the critic's.

![evaluation return vs steps per agent, seed mean, 95% band over seeds](hopper_plots/convergence.png)

## What is shared: an ablation at {scaled(ABLATION_ROUNDS, scale) * 8192:,} steps per agent

`{ablation_command}`

{markdown(by_shared)}

![ablation](ablation_plots/convergence.png)

## (iii) Transfer to a new agent with an unseen action map

`{scratch_command}`

`{transfer_command}`

The trunk comes from the seed-0 `fedsubspace_ac` run of (ii); the new agent's map is drawn from seed 999;
{transfer_seeds} seeds per setting. The
budget ({rounds["transfer"] * 8192:,} steps) is one where scratch is still learning: the curves below show it.
`curve_mean` is the mean of the agent's evaluations over the run (how fast it learns).

{claims_markdown(transfer_found)}

At the end of the budget:

{markdown(by_trunk)}

Over the learning curve:

{markdown(curve_by_trunk_table)}

![transfer: evaluation return vs steps, seed mean, 95% band over seeds](transfer_plots/convergence.png)
"""
    return text
