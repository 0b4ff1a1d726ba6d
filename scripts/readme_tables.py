"""Write the README's measured numbers from the committed data, so that none of them is typed by hand.

Each generated block of README.md sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``:

- ``fastfedpg-claims``: the verdicts of docs/reproduce_fastfedpg/claims.csv, which `fedrl reproduce fastfedpg`
  computes from the per-seed CSVs beside it;
- ``subspace-tabular-claims``: those of docs/reproduce_subspace/tabular_claims.csv (`fedrl reproduce subspace
  --part tabular`, from the tabular_*.csv per-seed files beside it);
- ``subspace-hopper-claims``: those of docs/reproduce_subspace/hopper_claims.csv (`fedrl reproduce subspace --part
  hopper`, from hopper_evaluations.csv and transfer_evaluations.csv beside it);
- ``subspace-cause``: the cause study's table and the default it chose, from docs/reproduce_subspace/cause.csv
  (`fedrl reproduce subspace --part cause`, from cause_evaluations.csv beside it);
- ``demo``: the demo's final gaps and speedups over N, from docs/demo/agents_summary.csv and agents_speedup.csv;
- ``demo-local-steps``: its final gaps over H, from docs/demo/local_steps_summary.csv (the three are copies of
  outputs/demo/plots/*/summary.csv and speedup.csv after `make demo`);
- ``hopper-check`` and ``halfcheetah-check``: the Hopper-v5 and HalfCheetah-v5 learning checks' final
  evaluations, from docs/hopper_learning_check/eval_returns.csv and docs/halfcheetah_learning_check/eval_returns.csv
  (agent_metrics.csv's evaluations of those runs);
- ``tasks``: the MuJoCo tasks, their sizes and env steps/s, from docs/benchmarks/mujoco_tasks.csv
  (`python scripts/bench_physics.py --tasks-csv docs/benchmarks/mujoco_tasks.csv`).

Run `python scripts/readme_tables.py` after a reproduction or the demo; `--check` changes nothing and exits 1 when
README.md is not what the data gives (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from fedrl_cli.reproduce.common import markdown
from fedrl_cli.reproduce.subspace_cause import DEFAULT, cause_table, chosen_variant

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.DOTALL)


def claims_block(claims: pd.DataFrame) -> str:
    """The paper's claims and the checks apart, as the report states them."""
    lines = []
    for kind, title in (("paper", "claim of the paper"), ("check", "check (not counted)")):
        part = claims[claims["kind"] == kind]
        lines += [f"| {title} | held | measured |", "|---|---|---|"]
        lines += [f"| {row.claim} | {'yes' if row.held else '**no**'} | {row.measured} |" for row in part.itertuples()]
        lines.append("")
    paper = claims[claims["kind"] == "paper"]
    lines.append(f"{int(paper['held'].sum())} of {len(paper)} of the paper's claims held.")
    return "\n".join(lines) + "\n"


def cause_block(rows: pd.DataFrame) -> str:
    """cause.md's table (per variant: score, paired differences, trunk norms) and the default the study's rule
    picks."""
    chosen, reason = chosen_variant(rows)
    verdict = "stays" if chosen == DEFAULT else f"is replaced by **{chosen}**"
    return f"{markdown(cause_table(rows))}\n\nThe default ({DEFAULT}) {verdict}: {reason}.\n"


def demo_block(summary: pd.DataFrame, speedup: pd.DataFrame) -> str:
    """Per N: each algorithm's final gap with its 95% interval and its speedup."""
    table = summary.merge(speedup[["algo", "n_agents", "speedup"]], on=["algo", "n_agents"])
    lines = [
        "| N | " + " | ".join(f"{a}: final gap [95% CI] | {a}: speedup" for a in sorted(table["algo"].unique())) + " |"
    ]
    lines.append("|---|" + "---|---|" * table["algo"].nunique())
    for n, part in table.groupby("n_agents"):
        cells = [
            f"{row.final_mean:.3g} [{row.final_ci_low:.3g}, {row.final_ci_high:.3g}] | {row.speedup:.2g}"
            for row in part.sort_values("algo").itertuples()
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def local_steps_block(summary: pd.DataFrame) -> str:
    """Per H: each algorithm's final gap with its 95% interval (exact gradients: one run, no interval)."""
    algos = sorted(summary["algo"].unique())
    lines = ["| H | " + " | ".join(f"{a}: final gap" for a in algos) + " |", "|---|" + "---|" * len(algos)]
    for steps, part in summary.groupby("local_steps"):
        lines.append(f"| {steps} | " + " | ".join(f"{v:.3g}" for v in part.sort_values("algo")["final_mean"]) + " |")
    return "\n".join(lines) + "\n"


def tasks_block(tasks: pd.DataFrame) -> str:
    """Per task: actuators, observation size, its physics and env steps/s (4 copies), and relative to Hopper."""
    lines = ["| task (`env.id`) | actions | observations | physics | env steps/s, sync | batched | vs Hopper-v5 |"]
    lines.append("|---|---|---|---|---|---|---|")
    for row in tasks.itertuples():
        physics = "batched (`auto`)" if row.batched else "gymnasium's vector env"
        batched = f"{row.batched_steps_per_s:,.0f} ({row.batched_steps_per_s / row.sync_steps_per_s:.1f}×)" if (
            row.batched) else "–"  # fmt: skip
        lines.append(f"| `{row.task}` | {row.actions} | {row.observations} | {physics} | {row.sync_steps_per_s:,.0f} "
                     f"| {batched} | {row.relative:.2f}× |")  # fmt: skip
    return "\n".join(lines) + "\n"


def learning_check_block(evaluations: pd.DataFrame) -> str:
    """Each agent's deterministic-policy return (10 episodes) at the last evaluation, and their mean."""
    last = evaluations[evaluations["round"] == evaluations["round"].max()].sort_values("agent")
    returns = ", ".join(f"{value:,.0f}" for value in last["eval_return"])
    mean = last["eval_return"].mean()
    return f"At the last evaluation: **{returns}** (agents 0–{len(last) - 1}; mean {mean:,.0f}).\n"


def blocks(root: Path = ROOT) -> dict[str, str]:
    docs, demo = root / "docs", root / "docs" / "demo"
    cheetah = docs / "halfcheetah_learning_check"
    return {
        "fastfedpg-claims": claims_block(pd.read_csv(docs / "reproduce_fastfedpg" / "claims.csv")),
        "subspace-tabular-claims": claims_block(pd.read_csv(docs / "reproduce_subspace" / "tabular_claims.csv")),
        "subspace-hopper-claims": claims_block(pd.read_csv(docs / "reproduce_subspace" / "hopper_claims.csv")),
        "subspace-cause": cause_block(pd.read_csv(docs / "reproduce_subspace" / "cause.csv")),
        "demo": demo_block(pd.read_csv(demo / "agents_summary.csv"), pd.read_csv(demo / "agents_speedup.csv")),
        "demo-local-steps": local_steps_block(pd.read_csv(demo / "local_steps_summary.csv")),
        "hopper-check": learning_check_block(pd.read_csv(docs / "hopper_learning_check" / "eval_returns.csv")),
        "halfcheetah-check": learning_check_block(pd.read_csv(cheetah / "eval_returns.csv")),
        "tasks": tasks_block(pd.read_csv(docs / "benchmarks" / "mujoco_tasks.csv")),
    }


def render(readme: str, generated: dict[str, str]) -> str:
    """``readme`` with every generated block's body replaced; a block the README lacks is an error."""
    missing = set(generated) - {match["name"] for match in BLOCK.finditer(readme)}
    if missing:
        raise SystemExit(f"README.md has no block for {', '.join(sorted(missing))}")
    return BLOCK.sub(lambda m: m.group(1) + generated.get(m["name"], m["body"]) + m.group(4), readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md differs from the data")
    args = parser.parse_args()
    path = ROOT / "README.md"
    current = path.read_text()
    wanted = render(current, blocks())
    if args.check:
        if wanted != current:
            print("README.md's generated blocks differ from the committed data: run scripts/readme_tables.py")
            sys.exit(1)
        return
    path.write_text(wanted)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
