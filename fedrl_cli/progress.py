"""A rich progress bar over rounds with elapsed time, ETA and the latest metrics; silent when off or not on a tty."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

SHOWN_METRICS = 3  # the leading metrics of a round, shown beside the bar


class RoundProgress:
    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self._bar = None
        if enabled and sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
            )
            self._task = self._bar.add_task(label, total=total, status="")

    def __enter__(self) -> RoundProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def update(self, completed: int, metrics: dict[str, float | None]) -> None:
        if self._bar is None:
            return
        shown = [(key, value) for key, value in metrics.items() if value is not None][:SHOWN_METRICS]
        status = "  ".join(f"{key} {value:.4g}" for key, value in shown)
        self._bar.update(self._task, completed=completed, status=status)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
