"""What every claim reproduction shares: its options, running a `fedrl run -m` sweep, the sweeps' wall time and the
report's tables."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from fedrl_cli.stats import Estimate, interval_name

Claim = tuple[str, bool, str]  # (what is claimed, whether it held, what was measured)


class ReproduceError(RuntimeError):
    """A sweep of a reproduction failed; the message says which, and how to go on."""


@dataclass(frozen=True)
class Options:
    """The options of ``fedrl reproduce`` (None: the reproduction's own default)."""

    out: Path
    jobs: int = -1  # parallel runs (joblib n_jobs; -1 = one per core)
    reuse: bool = False  # analyse the sweeps already in ``out`` instead of running them again
    seeds: int | None = None
    scale: float = 1.0  # multiplies every round budget
    part: str | None = None
    hopper_budget: str | None = None
    hopper_seeds: int | None = None
    transfer_seeds: int | None = None
    workers: int = 1


def scaled(rounds: int, scale: float) -> int:
    """A round budget times ``scale``, at least one round."""
    return max(1, round(rounds * scale))


def scale_note(scale: float) -> str:
    """A report's warning when its round budgets were scaled (``--scale``); empty at scale 1."""
    if scale == 1:
        return ""
    return (
        f"\n\n**Every round budget scaled by {scale:g} (`--scale`): a look at the pipeline, not the claims' budget.**"
    )


def _quoted(argument: str) -> str:
    """``argument`` as a shell needs it: in double quotes when it holds single quotes, in single quotes when it holds
    brackets."""
    if "'" in argument:
        return f'"{argument}"'
    return f"'{argument}'" if "(" in argument or "[" in argument else argument


def sweep(target: Path, overrides: list[str], jobs: int, reuse: bool = False, run: bool = True) -> str:
    """Run `fedrl run -m OVERRIDES` into ``target``; returns the command line, as a user would type it. With
    ``reuse``, a sweep already in ``target`` (its multirun.yaml written) is analysed as it is, not run again; with
    ``run`` false nothing runs (its results come from elsewhere). :class:`ReproduceError` when the sweep fails."""
    args = ["run", "-m", *overrides, f"hydra.sweep.dir={target}", f"hydra.launcher.n_jobs={jobs}"]
    command = "fedrl " + " ".join(_quoted(a) for a in args[:-1])
    if not run:
        return command
    if reuse and (target / "multirun.yaml").is_file():
        print(f"[reproduce] reusing {target}", flush=True)
        return command
    print(f"[reproduce] {command}", flush=True)
    done = subprocess.run([sys.executable, "-m", "fedrl_cli", *args], stdout=subprocess.DEVNULL, check=False)
    if done.returncode == 2:
        raise ReproduceError(f"the sweep into {target} was refused (bad input, see the line above)")
    if done.returncode:
        raise ReproduceError(
            f"the sweep into {target} failed (exit {done.returncode}; see the lines above): fix it and run "
            f"`fedrl resume {target}`, then this command again with --reuse"
        )
    return command


def sweeps_wall_minutes(sweep_dirs: list[Path]) -> float:
    """Minutes the sweeps took, each from its first job's start to its last job's end (from the runs' summaries),
    the time covered by any of them (sweeps that overlapped count once), so that a report analysed again with
    --reuse still states how long its sweeps took."""
    spans = []
    for sweep_dir in sweep_dirs:
        summaries = [json.loads(path.read_text()) for path in sweep_dir.glob("*/summary.json")]
        ends = [(s["started"], s["finished"]) for s in summaries if s.get("started") and s.get("finished")]
        if ends:
            begin = min(datetime.fromisoformat(start) for start, _ in ends)
            spans.append((begin, max(datetime.fromisoformat(end) for _, end in ends)))
    total, covered_until = 0.0, None
    for begin, end in sorted(spans):
        start = begin if covered_until is None else max(begin, covered_until)
        total += max(0.0, (end - start).total_seconds())
        covered_until = end if covered_until is None else max(covered_until, end)
    return total / 60


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def claims_markdown(claims: list[Claim], title: str = "claim") -> str:
    lines = [f"| {title} | held | measured |", "|---|---|---|"]
    lines += [f"| {claim} | {'yes' if held else '**no**'} | {measured} |" for claim, held, measured in claims]
    return "\n".join(lines)


def claims_table(kinds: list[tuple[str, list[Claim]]]) -> pd.DataFrame:
    """A reproduction's claims.csv: one row per claim, ``kind`` saying which table it is in (``paper``: the
    paper's claims, the ones counted; ``check``: premises and sanity checks; ...)."""
    rows = [{"kind": kind, "claim": c, "held": h, "measured": m} for kind, found in kinds for c, h, m in found]
    return pd.DataFrame(rows, columns=["kind", "claim", "held", "measured"])


def slope_text(slope: Estimate) -> str:
    """``slope −0.52, 95% bootstrap CI [−0.71, −0.33]`` (or a t interval, by the rule of :mod:`fedrl_cli.stats`)."""
    return f"slope {slope.point:.2f}, {interval_name(slope.seeds)} [{slope.low:.2f}, {slope.high:.2f}]"
