"""The subspace actor-critic's deep form on Hopper-v5 (parts (ii) and (iii) of :mod:`fedrl_cli.reproduce.subspace`;
report.md): the abstract's "gains over Single PPO and FedAvg PPO and downstream transfer from the learned shared
trunk", tested with the power to tell.

(ii) fedsubspace_ac, single_ppo and fedavg_ppo on 4 agents with distinct signed-permutation maps drawn from each
seed (every algorithm of a seed has the same maps), :data:`HOPPER_SEEDS` paired seeds
from :data:`FIRST_SEED` on (apart from the cause study's). A run's score is the mean
over its agents of each agent's last three evaluations of 10 episodes; algorithms are compared on per-seed scores
by the paired t interval and the exact sign-flip permutation test. Per agent, each algorithm's agent k against
single_ppo's agents pooled: sharing nothing, single_ppo's agents are interchangeable (a signed permutation of the
actions is an exact symmetry of an agent alone). Aggregates over runs and agents (IQM, mean, probability of
improvement; Agarwal et al. 2021) beside them.

(iii) Transfer to a new agent with an unseen map, from the hidden layers of :data:`SOURCE_SEEDS` source runs of
each algorithm of (ii): fedsubspace_ac's shared trunk, and as controls of the same budget single_ppo's agent 0 and
fedavg_ppo's. Each trunk frozen or trainable, :data:`TRANSFER_SEEDS` target seeds each, against the new agent
from scratch; scored by the curve area (the mean of its evaluations: how fast it learns) and the final score.

Every number comes from hopper_evaluations.csv and transfer_evaluations.csv (one row per evaluation), through
:func:`hopper_analysis` and :func:`transfer_analysis`; the claims are in hopper_claims.csv.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from fedrl_cli.algos.ppo import load_model
from fedrl_cli.curves import Curve, aggregate_tables
from fedrl_cli.plots import convergence_figure, make_plots
from fedrl_cli.reproduce.common import (
    Claim,
    Options,
    claims_markdown,
    claims_table,
    markdown,
    scale_note,
    scaled,
    sweep,
    sweeps_wall_minutes,
)
from fedrl_cli.reproduce.hopper_data import NORMS, describe, evaluation_rows, run_rows
from fedrl_cli.results import load_results
from fedrl_cli.stats import Estimate, mean_and_ci, mean_estimate, permutation_p_value, t_difference

OURS, SINGLE, FEDAVG = "fedsubspace_ac", "single_ppo", "fedavg_ppo"
ALGOS = (OURS, SINGLE, FEDAVG)
HOPPER_SEEDS, SOURCE_SEEDS, TRANSFER_SEEDS = 10, 3, 5
# The comparison's seeds start after the cause study's (subspace_cause.SEEDS), on which fedsubspace_ac's variant
# was chosen: the variant is evaluated on seeds it was not chosen on.
FIRST_SEED = 10
ROUND_STEPS = 2 * 2048  # algo.local_steps=2 PPO iterations of 2,048 steps: environment steps per agent per round
HOPPER_BUDGETS = {  # rounds of the comparison and of each transfer run
    "reduced": {"main": 74, "transfer": 24},  # 303,104 and 98,304 steps per agent
    "full": {"main": 244, "transfer": 60},  # 999,424 (CleanRL's 1M) and 245,760
}
TARGET_MAP_SEED = 999  # the new agent's map: drawn from this seed, without the identity
BASE = ["env=hopper", "env.action_map=signed_permutation", "++algo.eval_episodes=10", "++algo.local_steps=2",
        "progress=false"]  # fmt: skip
RUN_KEYS = ["algo", "variant", "seed"]
TRANSFER_KEYS = ["source", "trunk", "source_seed", "seed"]
SCRATCH = "scratch"


def transfer_columns(config: dict, out: Path) -> dict[str, object]:
    """A transfer run's leading columns: whose trunk it started from (algo and seed of the source run, or
    ``scratch``), frozen or trainable, and its own (target) seed. The source run is read where the run's config
    says, else at the same sweep and job dir under ``out`` (runs unpacked or analysed from another directory)."""
    algo, run = config["algo"], describe(config)
    if not algo.get("trunk_from"):
        return {**run, "source": SCRATCH, "trunk": SCRATCH, "source_seed": None}
    recorded = Path(algo["trunk_from"])
    found = recorded if recorded.is_dir() else out / recorded.parent.name / recorded.name
    source = load_model(found / "model.pt")[3]
    trunk = "frozen" if algo.get("freeze_trunk") else "trainable"
    return {**run, "source": source["algo"]["name"], "trunk": trunk, "source_seed": source["seed"]}


def _test(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[Estimate, float]:
    return t_difference(a, b, paired), permutation_p_value(a, b, paired)


def _test_text(found: Estimate, p: float, unit: str = "pairs") -> str:
    return f"{found.text('+,.0f')} ({found.method}, {found.seeds} {unit}), p = {p:.2g}"


def per_seed_scores(rows: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """Seeds × algorithms: each run's mean over its agents of ``value``."""
    return rows.groupby(["seed", "algo"])[value].mean().unstack("algo")


def comparison_tables(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple[str, str], tuple]]:
    """Per algorithm its score and curve area over seeds with their intervals and the hidden layers' final norms;
    the paired differences (ours − single_ppo, ours − fedavg_ppo, fedavg_ppo − single_ppo) on both, on the seeds
    every algorithm has; and those tests by (a, b)."""
    summary, tests, differences = [], {}, []
    scores, areas = per_seed_scores(rows).dropna(), per_seed_scores(rows, "curve_area").dropna()
    norms = rows.groupby("algo")[NORMS].mean()
    for algo in [a for a in ALGOS if a in scores]:
        score, area = mean_estimate(scores[algo].to_numpy()), mean_estimate(areas[algo].to_numpy())
        summary.append({"algo": algo, "seeds": len(scores), "score [95% CI]": score.text(",.0f"),
                        "curve area [95% CI]": area.text(",.0f"), **norms.loc[algo].round(2).to_dict()})  # fmt: skip
    for a, b in ((OURS, SINGLE), (OURS, FEDAVG), (FEDAVG, SINGLE)):
        if a in scores and b in scores:
            tests[a, b] = _test(scores[a].to_numpy(), scores[b].to_numpy(), paired=True)
            area = _test(areas[a].to_numpy(), areas[b].to_numpy(), paired=True)
            differences.append({"difference": f"{a} − {b}", "score": _test_text(*tests[a, b]),
                                "curve area": _test_text(*area)})  # fmt: skip
    return pd.DataFrame(summary), pd.DataFrame(differences), tests


def per_agent_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per agent: each federated algorithm's agent against single_ppo's agents pooled over agents and seeds (Welch t
    interval and permutation p of the difference of means), with the maps that agent had."""
    pool = rows.loc[rows.algo == SINGLE, "score"].to_numpy()
    table = []
    for agent, part in rows.groupby("agent"):
        line: dict[str, object] = {"agent": agent, "maps": part["map"].nunique(), f"{SINGLE} (all agents)": pool.mean()}
        for algo in (OURS, FEDAVG):
            ours = part.loc[part.algo == algo, "score"].to_numpy()
            if len(ours) >= 2 and len(pool) >= 2:
                line[algo] = ours.mean()
                line[f"{algo} − pooled"] = _test_text(*_test(ours, pool, paired=False), "seeds")
        table.append(line)
    return pd.DataFrame(table)


def aggregates(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """IQM and mean over runs and agents with stratified-bootstrap intervals, and the probability of improvement
    (:func:`~fedrl_cli.curves.aggregate_tables`; a run is a seed, a task an agent)."""
    scores = rows.assign(group=rows["algo"], run_dir=rows["seed"])[["group", "run_dir", "agent", "score"]]
    return aggregate_tables(scores)


def map_checks(evaluations: pd.DataFrame) -> list[Claim]:
    """The design's premises, from the data: every run's agents have distinct maps, and every algorithm of a seed
    the same maps."""
    maps = evaluations.drop_duplicates(["algo", "seed", "agent"])
    distinct = maps.groupby(["algo", "seed"])["map"].nunique() == maps.groupby(["algo", "seed"])["agent"].nunique()
    shared = maps.groupby(["seed", "agent"])["map"].nunique() == 1
    return [
        ("Premise: every run's agents have distinct action maps", bool(distinct.all()),
         f"{int(distinct.sum())} of {len(distinct)} runs"),
        ("Premise: paired seeds: every algorithm of a seed has the same maps", bool(shared.all()),
         f"{int(shared.groupby(level='seed').all().sum())} of {maps['seed'].nunique()} seeds"),
    ]  # fmt: skip


def hopper_analysis(evaluations: pd.DataFrame) -> dict[str, object]:
    """Everything (ii) reports, from hopper_evaluations.csv's rows."""
    rows = run_rows(evaluations, RUN_KEYS)
    summary, differences, tests = comparison_tables(rows)
    claims = []
    for other in (SINGLE, FEDAVG):
        if (OURS, other) in tests:
            found, p = tests[OURS, other]
            claims.append((f"Gains over {other}: {OURS}'s score above {other}'s (paired t interval of the per-seed "
                           f"difference above 0)", bool(found.low > 0), _test_text(found, p)))  # fmt: skip
    return {
        "rows": rows,
        "summary": summary,
        "differences": differences,
        "claims": claims,
        "checks": map_checks(evaluations),
        "per_agent": per_agent_table(rows),
        "aggregates": aggregates(rows),
    }


def _paired_cells(rows: pd.DataFrame, value: str, a: tuple[str, str], b: tuple[str, str]) -> tuple[Estimate, float]:
    """(source, trunk) cell a against cell b on ``value``, paired by target seed: each cell's runs of one target seed
    averaged over their source seeds first, so that the pairs are the independent target seeds (the source × target
    runs share sources and targets, and are not independent pairs)."""

    def per_target(cell: tuple[str, str]) -> pd.Series:
        part = rows[(rows.source == cell[0]) & (rows.trunk == cell[1])]
        return part.groupby("seed")[value].mean()

    joined = pd.concat([per_target(a), per_target(b)], axis=1, join="inner")
    return _test(joined.iloc[:, 0].to_numpy(), joined.iloc[:, 1].to_numpy(), paired=True)


def transfer_analysis(evaluations: pd.DataFrame) -> dict[str, object]:
    """Everything (iii) reports, from transfer_evaluations.csv's rows."""
    rows = run_rows(evaluations, TRANSFER_KEYS)
    cells = rows.groupby(["source", "trunk"], sort=False)
    summary = pd.DataFrame(
        [
            {"trunk from": source, "trunk": trunk, "runs": len(part),
             "curve area [95% CI]": mean_estimate(part["curve_area"].to_numpy()).text(",.0f"),
             "final score [95% CI]": mean_estimate(part["score"].to_numpy()).text(",.0f")}
            for (source, trunk), part in cells
        ]
    )  # fmt: skip
    found, claims, secondary = [], [], []
    for trunk in ("trainable", "frozen"):
        for other in (SCRATCH, SINGLE, FEDAVG):
            against = (SCRATCH, SCRATCH) if other == SCRATCH else (other, trunk)
            if (OURS, trunk) not in cells.groups or against not in cells.groups:
                continue
            tests = {value: _paired_cells(rows, value, (OURS, trunk), against) for value in ("curve_area", "score")}
            what = "scratch" if other == SCRATCH else f"a {trunk} {other} trunk of the same budget"
            found.append({"difference": f"{OURS} {trunk} trunk − {what}",
                          **{name: _test_text(*tests[value]) for value, name in
                             (("curve_area", "curve area"), ("score", "final score"))}})  # fmt: skip
            claim = (f"Transfer: a new agent learns faster from {OURS}'s {trunk} trunk than from {what} (curve "
                     f"area; paired t interval above 0)", bool(tests["curve_area"][0].low > 0),
                     _test_text(*tests["curve_area"]))  # fmt: skip
            (claims if trunk == "trainable" else secondary).append(claim)
    return {"rows": rows, "summary": summary, "differences": pd.DataFrame(found), "claims": claims,
            "secondary": secondary}  # fmt: skip


def transfer_figure(evaluations: pd.DataFrame, path: Path) -> Path:
    """The new agent's evaluation return against its steps, one curve per (trunk source, frozen or trainable): the
    mean over its runs with the rule's 95% band, from transfer_evaluations.csv's rows."""
    found = []
    for (source, trunk), part in evaluations.groupby(["source", "trunk"], sort=False):
        runs = part.pivot_table(index=["source_seed", "seed"], columns="samples_per_agent", values="eval_return",
                                dropna=False)  # fmt: skip
        mean, low, high = mean_and_ci(runs.to_numpy())
        steps = runs.columns.to_numpy()
        label = source if source == SCRATCH else f"{source} trunk, {trunk}"
        found.append(Curve({}, label, len(runs), steps, steps, mean, low, high, runs=runs.to_numpy()))
    fixed = f"a new agent with an unseen map; curves over target and source seeds ({len(found)} settings)"
    return convergence_figure(found, "eval_return", "samples_per_agent", path, fixed)


def _aggregates_text(found: tuple[pd.DataFrame, pd.DataFrame, list[str]]) -> str:
    table, improvement, notes = found
    if not len(table):
        return f"No aggregates: {len(notes)} algorithms left out ({notes[0].split(': ', 2)[-1] if notes else ''})."
    table["estimate [95% CI]"] = [f"{r.point:,.0f} [{r.ci_low:,.0f}, {r.ci_high:,.0f}]" for r in table.itertuples()]
    improvement = improvement[improvement["x"] == OURS].copy()
    improvement["P(X > Y) [95% CI]"] = [
        f"{r.probability:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in improvement.itertuples()
    ]
    return (
        markdown(table[["group", "statistic", "estimate [95% CI]", "runs", "tasks"]])
        + "\n\nProbability of improvement (a run of X above a run of Y on an agent, averaged over agents):\n\n"
        + markdown(improvement[["x", "y", "P(X > Y) [95% CI]"]])
    )


def _sweeps(options: Options, rounds: dict[str, int], transfer: bool) -> tuple[dict[str, str], list[Path]]:
    """Run (or reuse) the comparison's and, with ``transfer``, the transfer's sweeps; their commands, and every
    sweep dir."""
    out, jobs, workers, reuse = options.out, options.jobs, options.workers, options.reuse
    seeds = options.hopper_seeds or HOPPER_SEEDS
    placement = ["backend=ray", f"workers={workers}"] if workers > 1 else []
    if jobs == -1 and workers > 1:  # each run holds `workers` cores: as many runs at once as the cores allow
        jobs = max(1, (os.cpu_count() or 1) // workers)
    commands, dirs = {}, []
    for algo in ALGOS:
        dirs.append(out / f"hopper_{algo}")
        seed_range = f"seed=range({FIRST_SEED},{FIRST_SEED + seeds})"
        commands[algo] = sweep(dirs[-1], [f"algo={algo}", *BASE, "n_agents=4", seed_range,
                                          f"algo.rounds={rounds['main']}", "++algo.eval_every=4", *placement],
                               jobs, reuse)  # fmt: skip
    if not transfer:
        return commands, dirs
    target = ["algo=single_ppo", *BASE, "n_agents=1", f"env.action_map_seed={TARGET_MAP_SEED}",
              "env.identity_first=false", f"seed=range({options.transfer_seeds or TRANSFER_SEEDS})",
              f"algo.rounds={rounds['transfer']}", "++algo.eval_every=2"]  # fmt: skip
    transfer_jobs = jobs if workers == 1 else -1  # one agent: nothing to split
    dirs.append(out / "transfer_scratch")
    commands[SCRATCH] = sweep(dirs[-1], target, transfer_jobs, reuse)
    for algo in ALGOS:
        sources = [run.path for run in load_results([out / f"hopper_{algo}"]).runs
                   if run.status == "completed" and run.config["seed"] < FIRST_SEED + SOURCE_SEEDS]  # fmt: skip
        trunks = ",".join(f"'{path}'" for path in sorted(sources))  # quoted: job dirs hold '='
        dirs.append(out / f"transfer_{algo}")
        commands[f"transfer_{algo}"] = sweep(
            dirs[-1], [*target, f"algo.trunk_from={trunks}", "algo.freeze_trunk=true,false"], transfer_jobs, reuse
        )
    return commands, dirs


def _transfer_text(moved: dict[str, object], rounds: int, sources: str, targets: int) -> str:
    """Section (iii) of report.md."""
    return f"""The new agent's map is drawn from seed {TARGET_MAP_SEED} without the identity; {rounds * ROUND_STEPS:,}
steps. Trunks: the hidden layers of seeds {sources} of each algorithm of (ii) (fedsubspace_ac's shared layers;
single_ppo's and fedavg_ppo's agent 0, the controls: trunks of the same budget without fedsubspace_ac's
federation), frozen or trainable, {targets} target seeds each. Differences are paired by target seed (the new
agent's seed, hence its draws), each setting's runs of a target seed first averaged over the source seeds: the
pairs are the {targets} independent target seeds, and the spread between source runs enters only through those
averages. With {targets} pairs the exact sign-flip p-value cannot go below 2/{2**targets} = {2 / 2**targets:.3g};
the claims use the t interval.

{markdown(moved["summary"])}

{markdown(moved["differences"])}

{claims_markdown(moved["secondary"], "secondary (not counted)")}

![transfer: evaluation return vs steps](transfer.png)"""


def hopper_part(options: Options) -> str:
    """Run (or reuse) the sweeps of (ii) and (iii) (``--part comparison``: (ii) only), write their data files,
    claims and figures into ``options.out``, and return report.md's text."""
    out, scale = options.out, options.scale
    budget = options.hopper_budget or "reduced"
    rounds = {part: scaled(value, scale) for part, value in HOPPER_BUDGETS[budget].items()}
    with_transfer = options.part != "comparison"
    commands, dirs = _sweeps(options, rounds, with_transfer)
    main_dirs, transfer_dirs = dirs[: len(ALGOS)], dirs[len(ALGOS) :]
    evaluations = evaluation_rows(main_dirs)
    evaluations.to_csv(out / "hopper_evaluations.csv", index=False)
    main = hopper_analysis(evaluations)
    if with_transfer:
        transfer = evaluation_rows(transfer_dirs, partial(transfer_columns, out=out)).astype({"source_seed": "Int64"})
        transfer.to_csv(out / "transfer_evaluations.csv", index=False)
        moved = transfer_analysis(transfer)
    else:
        transfer, moved = pd.DataFrame(columns=["map", "source_seed", "seed"]), {"claims": [], "secondary": []}
    make_plots(load_results(main_dirs), out / "hopper_plots", metric="eval_return_mean", x="samples_per_agent")
    if len(transfer):
        transfer_figure(transfer, out / "transfer.png")
    source_maps = set(evaluations.loc[evaluations.seed < FIRST_SEED + SOURCE_SEEDS, "map"])
    new_map = transfer["map"].iloc[0] if len(transfer) else ""
    claims = main["claims"] + moved["claims"]
    checks = main["checks"] + ([("Premise: the new agent's map is none of the source runs' agents' maps",
                                 new_map not in source_maps, f"map {new_map}")] if with_transfer else [])  # fmt: skip
    claims_table([("paper", claims), ("check", checks), ("secondary", moved["secondary"])]).to_csv(
        out / "hopper_claims.csv", index=False
    )
    steps = rounds["main"] * ROUND_STEPS
    sources = ", ".join(map(str, sorted(transfer["source_seed"].dropna().unique()))) if len(transfer) else "–"
    targets = transfer["seed"].nunique() if len(transfer) else 0
    minutes = sweeps_wall_minutes(dirs)
    listing = "\n".join(f"`{command}`" for command in commands.values())
    data_files = " and [transfer_evaluations.csv](transfer_evaluations.csv)" if with_transfer else ""
    transferred = (
        _transfer_text(moved, rounds["transfer"], sources, targets)
        if with_transfer
        else "Not run here (`--part comparison`): `--part hopper --reuse` with the same `--out` runs it."
    )
    return f"""# Federated subspace actor-critic on Hopper-v5: gains over Single PPO and FedAvg PPO, and transfer

{sum(h for _, h, _ in claims)} of {len(claims)} of the abstract's Hopper claims held (a claim holds when the paired
95% t interval of the difference lies above 0; the exact permutation test's p-value beside it).{scale_note(scale)}
Data: [hopper_evaluations.csv](hopper_evaluations.csv){data_files}
(every evaluation of every agent), claims in [hopper_claims.csv](hopper_claims.csv). Wall time of the sweeps
{minutes:.0f} min on {os.cpu_count()} cores.

{claims_markdown(claims)}

{claims_markdown(checks, "check (not counted)")}

## (ii) Gains over Single PPO and FedAvg PPO

4 agents with distinct signed-permutation maps drawn from each seed (agent 0 the identity; every algorithm of a
seed has the same maps), {main["rows"]["seed"].nunique()} paired seeds, {steps:,} environment steps per agent
({budget} budget; CleanRL's is 1M). A run's score: the mean over its agents of each agent's last 3 evaluations
(10 episodes each, deterministic policy, the agent's own map); curve area: the mean of all its evaluations (every
{4 * ROUND_STEPS:,} steps). Norms: Frobenius norms of the hidden layers' weights at the end, mean over agents and
seeds. Intervals of the means by the statistics rule (t below 10 seeds, bootstrap from 10 on).

{markdown(main["summary"])}

Paired differences (per-seed scores; paired t interval, exact sign-flip permutation p):

{markdown(main["differences"])}

Per agent against single_ppo's agents pooled (interchangeable, as they share nothing): Welch t interval over
seeds, Monte-Carlo permutation p.

{markdown(main["per_agent"])}

Aggregates over runs and agents (Agarwal et al. 2021: IQM and mean with stratified-bootstrap intervals):

{_aggregates_text(main["aggregates"])}

![evaluation return vs steps per agent](hopper_plots/convergence.png)

What fedsubspace_ac shares, and how it starts, is studied in [cause.md](cause.md).

## (iii) Transfer to a new agent with an unseen map

{transferred}

## Commands

{listing}
"""
