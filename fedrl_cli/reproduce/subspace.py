"""Reproduce the federated subspace actor-critic's claims (arXiv 2605.14423) with `fedrl` sweeps.

(i) Linear form on tabular MDPs (tabular.md, :mod:`fedrl_cli.reproduce.subspace_tabular`): the abstract's
    Õ(1/√(TK)) in the number of agents K, tested on the part of the critic that is averaged (the learnt subspace:
    its angle to the values' span and the error outside it), on a well-conditioned realizable family nested
    across K, beside the heads' floor that no K moves; the actor-critic alongside. About 25 minutes on 2 cores.
(ii) Deep form on Hopper-v5 with distinct signed-permutation action maps: fedsubspace_ac against single_ppo and
    fedavg_ppo, 4 agents, 10 paired seeds, per-seed scores compared by paired t intervals and permutation tests,
    per agent against single_ppo's agents pooled, and aggregates over runs and agents.
(iii) Transfer: a new agent with an unseen action map, starting from the hidden layers of 3 source runs of each
    algorithm of (ii) (fedsubspace_ac's shared trunk; single_ppo's and fedavg_ppo's as controls), frozen or
    trainable, 5 target seeds each, against the same agent from scratch.
(iv) `--part cause` (not in `all`): why sharing a trunk costs the mapped agents, the initialisation of what is
    shared and three probes of averaging unrelated networks (:mod:`fedrl_cli.reproduce.subspace_cause`; cause.md).

(ii) and (iii) are the Hopper part (report.md, hopper_evaluations.csv, transfer_evaluations.csv, hopper_claims.csv;
:mod:`fedrl_cli.reproduce.subspace_hopper`). `--hopper-budget full` runs it at CleanRL's 1M steps per agent; the
default `reduced` at 303,104. Run with `fedrl reproduce subspace [--out DIR] [--part tabular|hopper|cause|all]
[--hopper-budget reduced|full] [--hopper-seeds S] [--transfer-seeds S] [--workers W] [--scale F] [--seeds S]
[--reuse]` (or `make reproduce-subspace`): `--workers W` shards each Hopper run over W Ray workers and runs
cores // W runs at once; `--scale 0.1` shrinks every round budget tenfold, for a quick look.
"""

from __future__ import annotations

from pathlib import Path

from fedrl_cli.reproduce import subspace_cause, subspace_hopper, subspace_tabular
from fedrl_cli.reproduce.common import Options, claims_table, scale_note, sweeps_wall_minutes


def tabular_report(options: Options) -> str:
    """tabular.md's text (and tabular_claims.csv beside it)."""
    text, claims, checks, secondary = subspace_tabular.tabular_part(options)
    kinds = [("paper", claims), ("check", checks), ("secondary", secondary)]
    claims_table(kinds).to_csv(options.out / "tabular_claims.csv", index=False)
    held = sum(h for _, h, _ in claims)
    minutes = sweeps_wall_minutes(sorted(options.out.glob("tabular_*/")))
    return f"""# Federated subspace actor-critic, linear form: the speedup in the number of agents, where it can hold

{held} of {len(claims)} of the abstract's claims held.{scale_note(options.scale)}

{text}
Wall time of the sweeps {minutes:.1f} min on 2 cores.
"""


def run(options: Options) -> list[Path]:
    """Run (or, with ``reuse``, reuse) the sweeps of ``options.part`` (default all) into ``options.out``, draw their
    figures and write tabular.md and/or report.md; returns the reports' paths."""
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    part, reports = options.part or "all", []
    if part in ("tabular", "all"):
        (out / "tabular.md").write_text(tabular_report(options))
        reports.append(out / "tabular.md")
    if part in ("hopper", "comparison", "all"):
        (out / "report.md").write_text(subspace_hopper.hopper_part(options))
        reports.append(out / "report.md")
    if part == "cause":
        (out / "cause.md").write_text(subspace_cause.cause_part(options))
        reports.append(out / "cause.md")
    return reports
