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

One sweep per variant, so that the study can span sessions: with ``--reuse``, a sweep whose dir is gone but whose
runs (every seed) are in ``cause_evaluations.csv`` in ``--out`` (copied there from the committed file) is taken
from it and not run again.
"""

from __future__ import annotations

import pandas as pd

from fedrl_cli.curves import EVALUATIONS_SCORED
from fedrl_cli.reproduce.common import Options, markdown, scale_note, scaled, sweep, sweeps_wall_minutes
from fedrl_cli.reproduce.hopper_data import NORMS, evaluation_rows, run_rows
from fedrl_cli.stats import Estimate, difference, interval_name, mean_estimate, permutation_p_value

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
LAYERS = {"both": [], "actor": ["algo.shared_layers=[actor_mean.0,actor_mean.2]"],
          "critic": ["algo.shared_layers=[critic.0,critic.2]"]}  # fmt: skip
# sweep name → its overrides beyond BASE: one variant each
SWEEPS: dict[str, list[str]] = {
    "single_ppo": ["algo=single_ppo"],
    **{
        f"{shared}_{init}": [SUBSPACE, f"algo.shared_init={init}", *layers]
        for shared, layers in LAYERS.items()
        for init in ("common", "independent")
    },
    "rescaled": [SUBSPACE, "algo.shared_init=independent", "algo.rescale_first_average=true"],
    "half_scale": [SUBSPACE, "algo.shared_init=common", "algo.shared_init_scale=0.5"],
    "adam_reset": [SUBSPACE, "algo.shared_init=common", "algo.shared_adam=reset"],
}
REFERENCE, EARLIER = "single_ppo", "actor+critic, independent"
DEFAULT = "actor+critic, common"  # conf/algo/fedsubspace_ac.yaml's variant
KEYS = ["variant", "seed"]


def _per_seed(rows: pd.DataFrame) -> pd.Series:
    """Each run's score (the mean over its agents), indexed by variant and seed."""
    return rows.groupby(["variant", "seed"])["score"].mean()


def _paired_estimate(scores: pd.Series, against: pd.Series) -> tuple[Estimate, float] | None:
    """The paired per-seed difference with its interval, and its exact permutation p-value, on the seeds both
    have; None below two such seeds."""
    seeds = scores.index.intersection(against.index)
    if len(seeds) < 2:
        return None
    a, b = scores.loc[seeds].to_numpy(), against.loc[seeds].to_numpy()
    return difference(a, b, paired=True), permutation_p_value(a, b, paired=True)


def _paired(scores: pd.Series, against: pd.Series) -> str:
    """``difference [low, high] (n seeds), p = …`` of :func:`_paired_estimate`, or – ."""
    found = _paired_estimate(scores, against)
    if found is None:
        return "–"
    return f"{found[0].text('+.0f')} ({found[0].seeds} seeds), p = {found[1]:.3g}"


def chosen_variant(rows: pd.DataFrame) -> tuple[str, str]:
    """The variant the study makes fedsubspace_ac's default, and why: a variant replaces :data:`DEFAULT` only when
    its paired interval against it lies above 0 (the one with the largest such difference); else the default
    stays."""
    per_seed = _per_seed(rows)
    variants = set(per_seed.index.get_level_values("variant"))
    if DEFAULT not in variants:
        return DEFAULT, f"{DEFAULT} was not run, so nothing is compared with it"
    better = {}
    for name in variants - {REFERENCE, DEFAULT}:
        found = _paired_estimate(per_seed.loc[name], per_seed.loc[DEFAULT])
        if found is not None and found[0].low > 0:
            better[name] = found[0]
    if not better:
        return DEFAULT, f"no variant's paired interval against {DEFAULT} lies above 0"
    best = max(better, key=lambda name: better[name].point)
    return best, f"its paired interval against {DEFAULT} is {better[best].text('+.0f')}, above 0"


def cause_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant: its seeds, mean score with its interval, the paired differences against single_ppo, against
    the earlier default and against the default, and the mean trunk norms."""
    per_seed = _per_seed(rows)
    norms = rows.groupby("variant")[NORMS].mean()
    reference = per_seed.get(REFERENCE, pd.Series(dtype=float))
    earlier = per_seed.get(EARLIER, pd.Series(dtype=float))
    default = per_seed.get(DEFAULT, pd.Series(dtype=float))
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
                f"− ({DEFAULT})": "–" if name in (REFERENCE, DEFAULT) else _paired(scores, default),
                **{column: round(value, 2) for column, value in norms.loc[name].items()},
            }
        )
    return pd.DataFrame(table)


def carried_rows(earlier: pd.DataFrame, name: str, seeds: int) -> pd.DataFrame | None:
    """The rows of sweep ``name`` in an earlier ``cause_evaluations.csv``, when they hold every one of its
    ``seeds`` seeds (a sweep cut short is run again); else None."""
    if "sweep" not in earlier:  # no earlier file, or not one of this study's
        return None
    rows = earlier[earlier["sweep"] == name]
    return rows if set(rows["seed"]) >= set(range(seeds)) else None


def cause_part(options: Options) -> str:
    """Run (or reuse) the sweeps into ``options.out``, write cause.csv, and return cause.md's text.
    cause_evaluations.csv is rewritten after each sweep, so a study stopped midway keeps the sweeps it finished."""
    out, seeds = options.out, options.hopper_seeds or SEEDS
    rounds = f"algo.rounds={scaled(ROUNDS, options.scale)}"
    path = out / "cause_evaluations.csv"
    earlier = pd.read_csv(path) if options.reuse and path.is_file() else pd.DataFrame()
    commands, parts, carried = {}, [], []
    for name, overrides in SWEEPS.items():
        rows = None
        if options.reuse and not (out / name / "multirun.yaml").is_file():
            rows = carried_rows(earlier, name, seeds)
        if rows is not None:
            print(f"[reproduce] {name}: its {rows['seed'].nunique()} runs taken from {path}", flush=True)
            carried.append(name)
        overrides = [*overrides, *BASE, rounds, f"seed=range({seeds})"]
        commands[name] = sweep(out / name, overrides, options.jobs, options.reuse, run=rows is None)
        parts.append(rows if rows is not None else evaluation_rows([out / name]).assign(sweep=name))
        later = earlier[~earlier["sweep"].isin(commands)] if "sweep" in earlier else earlier.iloc[:0]
        pd.concat([*parts, later], ignore_index=True).to_csv(path, index=False)
    evaluations = pd.concat(parts, ignore_index=True)
    evaluations.to_csv(path, index=False)
    rows = run_rows(evaluations, KEYS)
    rows.to_csv(out / "cause.csv", index=False)
    chosen = chosen_variant(rows)
    steps = scaled(ROUNDS, options.scale) * 2 * 2048
    listing = "\n".join(f"`{command}`" for command in commands.values())
    minutes = sweeps_wall_minutes([out / name for name in SWEEPS if name not in carried])
    timing = f"Wall time of the sweeps run here {minutes:.1f} min on 2 cores" + (
        f" (taken from an earlier session's rows: {', '.join(carried)})" if carried else ""
    )
    return f"""# Why sharing a trunk costs the mapped agents: the initialisation of what is shared

{scale_note(options.scale).strip()}

Four Hopper-v5 agents with distinct signed-permutation maps drawn from each run's seed (so every variant of a seed
has the same maps), {steps:,} steps per agent, {seeds} paired seeds. A run's score is the mean over its agents of
each agent's last {EVALUATIONS_SCORED} evaluations (10 episodes each); per-agent scores, maps and final trunk weight
norms in [cause.csv](cause.csv), computed from every evaluation in
[cause_evaluations.csv](cause_evaluations.csv). Differences are paired by seed: {interval_name(seeds)}, and the
exact permutation p-value of the paired difference.

{markdown(cause_table(rows))}

**fedsubspace_ac's default: {chosen[0]}**, because {chosen[1]}. The rule (set midway
through the study, after four of its ten sweeps): a variant replaces the default (actor and critic trunks shared,
from the server's one draw) only when its paired interval
against it lies above 0.

Norms: the Frobenius norm of each shared hidden layer's weight matrix at the end, mean over agents and seeds
(CleanRL's orthogonal initialisation starts them at √2 × √64 ≈ 11.3 for the 64 × 64 layers and about 4.7 for the
first layers).

{listing}

{timing}.
"""
