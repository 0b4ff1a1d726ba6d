"""The round loop shared by every algorithm: one federated round, then measure, log and check.

Round 0 is measured before any learning. Each round's row reaches ``metrics.csv`` and ``agent_metrics.csv``
before the next round starts; a metric that turns NaN or infinite stops the run (after its row is written).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedrl_cli.errors import Diverged, RunFailed
from fedrl_cli.metrics import LEADING_COLUMNS, CsvLog
from fedrl_cli.progress import RoundProgress


@dataclass
class Measurement:
    """What one round reports: transitions drawn and floats communicated so far, the global metrics
    (None where unknown) and per-agent metrics as arrays over the agent axis."""

    samples: int
    comm_floats: int
    metrics: dict[str, float | None]
    agent_metrics: dict[str, np.ndarray]


def _first_non_finite(metrics: dict[str, float | None]) -> str | None:
    for key, value in metrics.items():
        if value is not None and not math.isfinite(value):
            return f"{key} is {value}"
    return None


def run_rounds(
    step: Callable[[], object],
    measure: Callable[[], Measurement],
    rounds: int,
    n_agents: int,
    run_dir: Path,
    progress: RoundProgress,
) -> dict[str, Any]:
    """Run ``rounds`` rounds of ``step``, logging ``measure()`` after each (and before the first).

    Returns the last row of ``metrics.csv``; raises :class:`RunFailed` naming the round when a metric is not
    finite or a round raises.
    """
    start = time.perf_counter()
    metrics_log = agent_log = None
    row: dict[str, Any] = {}
    try:
        for round_index in range(rounds + 1):
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    if round_index > 0:
                        step()
                    measured = measure()
            except Exception as error:
                raise RunFailed(f"round {round_index}: {type(error).__name__}: {error}") from error
            samples_per_agent, remainder = divmod(measured.samples, n_agents)
            row = {
                "round": round_index,
                "samples": measured.samples,
                "samples_per_agent": measured.samples / n_agents if remainder else samples_per_agent,
                "comm_floats": measured.comm_floats,
                "wall_s": round(time.perf_counter() - start, 6),
                **measured.metrics,
            }
            if metrics_log is None:
                metrics_log = CsvLog(run_dir / "metrics.csv", [*LEADING_COLUMNS, *measured.metrics])
                agent_log = CsvLog(run_dir / "agent_metrics.csv", ["round", "agent", *measured.agent_metrics])
            metrics_log.write(row)
            for agent in range(n_agents):
                values = {
                    key: None if array[agent] is None else float(array[agent])
                    for key, array in measured.agent_metrics.items()
                }
                agent_log.write({"round": round_index, "agent": agent, **values})
            progress.update(round_index, measured.metrics)
            problem = _first_non_finite(measured.metrics)
            if problem is not None:
                raise Diverged(f"round {round_index}: {problem} (the run diverged)")
    finally:
        for log in (metrics_log, agent_log):
            if log is not None:
                log.close()
    return row
