"""TensorBoard event files beside the CSVs (``loggers=[csv,tensorboard]``): ``RUN_DIR/tensorboard/``.

Every metrics.csv column is a scalar of its own tag against ``samples_per_agent`` as the step (the ``round``
column is one of them), per-agent metrics are ``agent_<i>/<metric>`` (when agent_metrics.csv gets rows), and the
run's config is recorded once as TensorBoard hyper-parameters. Written with PyTorch's ``SummaryWriter`` over the
``tensorboard`` package's event-file writer, flushed after every round so that a failed write (a full disk) is
raised in the round that made it, as the CSV's is. CSV stays the contract: plots and resume read only CSV.

A checkpoint records every event file's size (:meth:`EventLog.sizes`); :func:`cut_back` returns the folder to
that moment on resume (files cut to their sizes, files begun since removed), and the resumed run writes a new
file beside them, so no step is written twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fedrl_cli.errors import ResumeError
from fedrl_cli.metrics import naming
from fedrl_cli.runs import config_leaves

FOLDER = "tensorboard"
LOGGERS = ("csv", "tensorboard")


def _hyper_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """``{"algo.lr": 0.1, ...}``: the config's leaves, None and lists as text (TensorBoard's hyper-parameters are
    numbers, booleans and strings)."""
    leaves = config_leaves(config).items()
    return {key: str(value) if value is None or isinstance(value, list | tuple) else value for key, value in leaves}


def cut_back(run_dir: Path, sizes: dict[str, int]) -> None:
    """Return ``run_dir/tensorboard`` to a checkpoint's moment: each event file it recorded cut to its size, any
    other file (begun after it) removed; :class:`ResumeError` when a recorded file is missing or shorter."""
    folder = run_dir / FOLDER
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name not in sizes:
            path.unlink()
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size < size:
            raise ResumeError(f"{path} is shorter than when the checkpoint was written: it was changed since")
        with naming(path):
            os.truncate(path, size)


class EventLog:
    """The run's TensorBoard event file; ``config`` (a new run's) is written as hyper-parameters, with
    ``metrics`` the scalar tags TensorBoard's hyper-parameter table shows beside it."""

    def __init__(self, run_dir: Path, config: dict[str, Any] | None, metrics: list[str]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.folder = run_dir / FOLDER
        with naming(self.folder):
            self.folder.mkdir(exist_ok=True)
            earlier = set(self.folder.iterdir())
            self._writer = SummaryWriter(str(self.folder), max_queue=1000, flush_secs=3600)
        self.path = next(iter(set(self.folder.iterdir()) - earlier), self.folder)  # the file this run writes
        self._failed = False
        if config is not None:
            file_writer = self._writer._get_file_writer()
            for summary in hparams(_hyper_parameters(config), dict.fromkeys(metrics, 0.0)):
                file_writer.add_summary(summary)

    def write(self, row: dict[str, Any], agent_rows: list[dict[str, Any]]) -> None:
        """One round: ``row`` (metrics.csv's) and its per-agent rows, at step ``samples_per_agent``; then flushed."""
        step = round(row["samples_per_agent"])
        for tag, value in row.items():
            if value is not None:
                self._writer.add_scalar(tag, value, step)
        for agent, values in enumerate(agent_rows):
            for tag, value in values.items():
                if value is not None:
                    self._writer.add_scalar(f"agent_{agent}/{tag}", value, step)
        try:
            with naming(self.path):
                self._writer.flush()
        except OSError:
            self._failed = True
            raise

    def sizes(self) -> dict[str, int]:
        """Every event file's size in bytes (all written: each round is flushed), what a checkpoint records."""
        return {path.name: path.stat().st_size for path in sorted(self.folder.iterdir()) if path.is_file()}

    def close(self) -> None:
        """Close the file; after a failed write the error was raised once and closing may fail again."""
        try:
            self._writer.close()
        except Exception:
            if not self._failed:
                raise
