"""Helpers shared by the claim-reproduction scripts: run a `fedrl` sweep, fit slopes, write tables."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

Claim = tuple[str, bool, str]  # (what is claimed, whether it held, what was measured)


def reproduction_parser(description: str, name: str) -> argparse.ArgumentParser:
    """The options every reproduction has: --out (default a stamped folder under outputs/reproduce), --jobs, --reuse."""
    parser = argparse.ArgumentParser(description=description)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    parser.add_argument("--out", type=Path, default=Path("outputs/reproduce") / f"{name}_{stamp}")
    parser.add_argument("--jobs", type=int, default=-1, help="parallel jobs (joblib n_jobs; -1 = one per core)")
    parser.add_argument("--reuse", action="store_true", help="analyse the sweeps already in --out instead of rerunning")
    return parser


def sweep(target: Path, overrides: list[str], jobs: int, reuse: bool = False) -> str:
    """Run `fedrl run -m OVERRIDES` into ``target``; returns the command line, as a user would type it. With
    ``reuse``, a sweep already in ``target`` (its multirun.yaml written) is analysed as it is, not run again."""
    args = ["run", "-m", *overrides, f"hydra.sweep.dir={target}", f"hydra.launcher.n_jobs={jobs}"]
    command = "fedrl " + " ".join(f"'{a}'" if "(" in a or "[" in a else a for a in args[:-1])
    if reuse and (target / "multirun.yaml").is_file():
        print(f"[reproduce] reusing {target}", flush=True)
        return command
    print(f"[reproduce] {command}", flush=True)
    subprocess.run([sys.executable, "-m", "fedrl_cli", *args], check=True, stdout=subprocess.DEVNULL)
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


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def slope_with_ci(frame: pd.DataFrame, x: str, y: str, resamples: int = 2000) -> tuple[float, float, float]:
    """Log-log slope of the mean of ``y`` over replicates against ``x``, with a 95% percentile-bootstrap interval
    (replicates resampled with replacement within each ``x``)."""
    groups = [(value, part[y].to_numpy()) for value, part in frame.groupby(x)]
    xs = np.array([value for value, _ in groups], dtype=float)
    slope = loglog_slope(xs, np.array([values.mean() for _, values in groups]))
    rng = np.random.default_rng(0)
    means = np.stack(
        [values[rng.integers(len(values), size=(resamples, len(values)))].mean(axis=1) for _, values in groups]
    )  # (x values, resamples)
    design = np.vstack([np.log(xs), np.ones_like(xs)]).T
    slopes = np.linalg.lstsq(design, np.log(means), rcond=None)[0][0]
    low, high = np.percentile(slopes, [2.5, 97.5])
    return slope, float(low), float(high)


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def claims_markdown(claims: list[Claim]) -> str:
    lines = ["| claim | held | measured |", "|---|---|---|"]
    lines += [f"| {claim} | {'yes' if held else '**no**'} | {measured} |" for claim, held, measured in claims]
    return "\n".join(lines)
