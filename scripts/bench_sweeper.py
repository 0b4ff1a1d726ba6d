"""Benchmark: what checking a sweep's jobs before it runs costs. The same sweep of 40 short tabular jobs (2 algorithms
× 5 N × 4 step sizes, 2 rounds each, one job at a time) with Hydra's basic sweeper, which composes every job's config
before the sweep and again in the job, and with fedrl's default sweeper, which composes one job of each kind before
it (hydra_plugins/fedrl_sweeper). Run with `make bench` or `python scripts/bench_sweeper.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["algo=fastfedpg,fedavg_pg", "n_agents=2,4,8,16,32", "algo.lr=0.025,0.05,0.1,0.2", "algo.rounds=2",
         "algo.gradient=sampled", "checkpoint_every=0", "progress=false", "hydra.launcher.n_jobs=1"]  # fmt: skip


def sweep_seconds(sweeper: str, into: Path) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "fedrl_cli", "run", "-m", f"hydra/sweeper={sweeper}", *SWEEP]
    subprocess.run([*command, f"hydra.sweep.dir={into / sweeper}"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        seconds = {sweeper: sweep_seconds(sweeper, Path(folder)) for sweeper in ("basic", "fedrl")}
    for sweeper, taken in seconds.items():
        print(f"{sweeper:>6} sweeper: 40 jobs in {taken:5.1f} s ({taken / 40:.2f} s per job)")
    print(f"fedrl's sweeper is {seconds['basic'] / seconds['fedrl']:.2f}x as fast on this sweep")


if __name__ == "__main__":
    main()
