"""The round loop shared by every algorithm: one federated round, then measure, log, check and checkpoint.

Round 0 is measured before any learning. Each round's row reaches ``metrics.csv`` and ``agent_metrics.csv``
before the next round starts; a metric that turns NaN or infinite stops the run (after its row is written).
Every ``checkpoint_every`` rounds, after the round's rows, the experiment's state is checkpointed; a run resumed
from that checkpoint cuts the CSVs back to those rows and goes on from the next round. SIGINT or SIGTERM stops
the loop after the current round, with a checkpoint, so the run can be resumed; a second SIGINT stops at once.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import numpy as np

from fedrl_cli import checkpoint, event_log
from fedrl_cli.errors import Diverged, Interrupted, RunFailed
from fedrl_cli.metrics import LEADING_COLUMNS, CsvLog
from fedrl_cli.progress import RoundProgress

METRICS, AGENT_METRICS = "metrics.csv", "agent_metrics.csv"
log = logging.getLogger("fedrl")


@dataclass
class Measurement:
    """What one round reports: transitions drawn and floats communicated so far, the global metrics
    (None where unknown) and per-agent metrics as arrays over the agent axis."""

    samples: int
    comm_floats: int
    metrics: dict[str, float | None]
    agent_metrics: dict[str, np.ndarray]


class Experiment(Protocol):
    """An environment family and an algorithm wired together (:mod:`fedrl_cli.experiments`)."""

    def round(self) -> None:
        """One federated round."""

    def measure(self) -> Measurement:
        """The current round's row."""

    def state(self) -> Any:
        """Everything a checkpoint must hold to continue exactly (picklable)."""

    def restore(self, state: Any) -> None:
        """Continue from ``state``, as returned by :meth:`state`."""

    def rebuilt(self) -> dict[str, object]:
        """Objects that ``state()`` refers to but that the config rebuilds exactly, so checkpoints leave them out."""

    def facts(self) -> dict[str, Any]:
        """Measured properties of the instance, recorded in ``summary.json`` (e.g. ``value_condition``)."""

    def finish(self, run_dir: Path) -> None:
        """Save what a completed run keeps besides its CSVs."""

    def close(self) -> None:
        """Release environments and processes."""


class StopRequest:
    """While active (in the main thread), SIGINT, SIGTERM and SIGHUP only ask the loop to stop after the current
    round; a second one raises KeyboardInterrupt at once (a round too long to wait for can still be stopped)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            raise KeyboardInterrupt(f"{name} again: stopped at once, during a round")
        self.requested = name
        log.warning("fedrl: %s: stopping after this round (Ctrl-C again stops at once)", self.requested)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _first_non_finite(metrics: dict[str, float | None]) -> str | None:
    for key, value in metrics.items():
        if value is not None and not math.isfinite(value):
            return f"{key} is {value}"
    return None


def run_rounds(
    experiment: Experiment,
    rounds: int,
    n_agents: int,
    run_dir: Path,
    progress: RoundProgress,
    checkpoint_every: int = 0,
    resumed: checkpoint.Header | None = None,
    agent_metrics_every: int = 1,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run rounds ``1..rounds`` of ``experiment`` (from ``resumed.round + 1`` when resuming from that checkpoint),
    logging ``measure()`` after each and before the first; per-agent rows every ``agent_metrics_every`` rounds
    and at the last (0: none, the file keeps its header). Checkpoints record ``config``, the run's, so that a
    checkpoint copied from another run is refused on resume. With ``tensorboard`` in ``config["loggers"]`` every
    row also goes to TensorBoard event files (:mod:`fedrl_cli.event_log`), cut back with the CSVs on resume.

    Returns the last row of ``metrics.csv``; raises :class:`RunFailed` naming the round when a metric is not
    finite or a round raises, :class:`Interrupted` when a signal stopped it.
    """
    first = 0 if resumed is None else resumed.round + 1
    start = time.perf_counter() - (0.0 if resumed is None else resumed.elapsed_s)
    logs: tuple[CsvLog, CsvLog] | None = None
    events: event_log.EventLog | None = None
    tensorboard = "tensorboard" in (config or {}).get("loggers", ())
    if tensorboard:  # a run starting afresh drops any earlier events; a resumed one cuts them back
        event_log.cut_back(run_dir, {} if resumed is None else resumed.event_bytes)
    if resumed is not None:
        logs = tuple(CsvLog.reopen(run_dir / name, resumed.csv_bytes[name]) for name in (METRICS, AGENT_METRICS))
    row: dict[str, Any] = {}
    try:
        with StopRequest() as stop:
            for round_index in range(first, rounds + 1):
                try:
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        if round_index > 0:
                            experiment.round()
                        measured = experiment.measure()
                except Diverged as error:  # an algorithm's own guard, already in words
                    raise Diverged(f"round {round_index}: {error}") from error
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
                if logs is None:
                    logs = (
                        CsvLog(run_dir / METRICS, [*LEADING_COLUMNS, *measured.metrics]),
                        CsvLog(run_dir / AGENT_METRICS, ["round", "agent", *measured.agent_metrics]),
                    )
                if tensorboard and events is None:
                    events = event_log.EventLog(run_dir, None if resumed else config, list(measured.metrics))
                metrics_log, agent_log = logs
                metrics_log.write(row)
                thinned = agent_metrics_every == 0 or (round_index % agent_metrics_every and round_index < rounds)
                agent_rows = [
                    {
                        key: None if array[agent] is None else float(array[agent])
                        for key, array in measured.agent_metrics.items()
                    }
                    for agent in range(0 if thinned else n_agents)
                ]
                for agent, values in enumerate(agent_rows):
                    agent_log.write({"round": round_index, "agent": agent, **values})
                if events is not None:
                    events.write(row, agent_rows)
                progress.update(round_index, measured.metrics)
                problem = _first_non_finite(measured.metrics)
                if problem is not None:
                    raise Diverged(f"round {round_index}: {problem} (the run diverged)")
                due = checkpoint_every > 0 and round_index > 0 and round_index % checkpoint_every == 0
                if round_index < rounds and (due or stop.requested):
                    sizes = {METRICS: metrics_log.sync(), AGENT_METRICS: agent_log.sync()}  # durable before it
                    elapsed = time.perf_counter() - start
                    event_sizes = {} if events is None else events.sizes()
                    header = checkpoint.Header(
                        round_index, elapsed, sizes, config=config or {}, event_bytes=event_sizes
                    )
                    checkpoint.save(run_dir, header, experiment.state(), experiment.rebuilt())
                if stop.requested and round_index < rounds:
                    raise Interrupted(f"{stop.requested}: stopped after round {round_index}")
    finally:
        for log_file in (*(logs or ()), *([events] if events else [])):
            log_file.close()
    return row
