"""Reading run dirs and sweep dirs into one tidy pandas table.

A run dir is any folder with a ``summary.json`` (and ``metrics.csv``); paths are searched recursively, so any
mix of runs and sweeps can be loaded together. Each metrics row is joined to its run's config: the
flattened keys (``algo.lr``, ``env.gamma``, ...), the names ``algo`` and ``env``, and short aliases for the
keys sweeps usually vary (``local_steps``, ``reward_heterogeneity``, ...).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fedrl_cli.runs import Run, find_run_dirs, read_regular, read_run

# short column names for the config keys sweeps vary most
ALIASES = {
    "local_steps": "algo.local_steps",
    "gradient": "algo.gradient",
    "reward_heterogeneity": "env.reward_heterogeneity",
    "transition_heterogeneity": "env.transition_heterogeneity",
}
# config keys that never separate two runs into different groups: the seed (with the other seeds, the replicate
# axis) and the keys that by contract do not change a run's numbers (display, checkpoints, where it computes)
NOT_GROUPING = {
    "seed",
    "progress",
    "checkpoint_every",
    "agent_metrics_every",
    "loggers",
    "overwrite",
    "backend",
    "workers",
    "ray_address",
}


# the keys that lead a group's label and order: algorithm, environment, N, H
LEADING_KEYS = ("algo", "env", "n_agents", "local_steps")


class NoRuns(ValueError):
    """Nothing to read: no run under the given paths, or none that completed and can be read."""


class Unreadable(ValueError):
    """A run's files cannot be used: the message names the file (relative to the run dir) and says why."""


@dataclass
class Results:
    """``frame``: one row per (run, round) of the loaded runs; ``runs``: every run found, with its status;
    ``config_columns``: the config columns of ``frame``; ``tuned``: config keys chosen per group by
    :func:`fedrl_cli.stats.tune` (they no longer separate groups); ``notes``: what loading changed (a partial last
    row dropped)."""

    frame: pd.DataFrame
    runs: list[Run]
    config_columns: list[str]
    tuned: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[Run]:
        loaded = set(self.frame["run_dir"]) if len(self.frame) else set()
        return [run for run in self.runs if str(run.path) not in loaded]

    def tuned_columns(self) -> set[str]:
        """The tuned keys with their short aliases and full names (``local_steps`` ↔ ``algo.local_steps``)."""
        full = {ALIASES.get(key, key) for key in self.tuned}
        return {*self.tuned, *full, *(alias for alias, key in ALIASES.items() if key in full)}

    def _varies(self, column: str) -> bool:
        """Two runs differ in ``column``: two values, or, within one algorithm, a value and null (a transfer run
        with ``algo.trunk_from`` and one without; a key that only another algorithm has is not a difference)."""
        values = self.frame[column].astype(str)
        if values.nunique() > 1:
            return True
        return "algo" in self.frame and bool((values.groupby(self.frame["algo"]).nunique(dropna=False) > 1).any())

    def varying(self) -> list[str]:
        """Config columns whose value differs between loaded runs, except seeds (the replicate axis) and tuned keys."""
        tuned = self.tuned_columns()
        columns = [c for c in self.config_columns if c not in NOT_GROUPING and not is_replicate(c) and c not in tuned]
        varied = [c for c in columns if self._varies(c)]
        # a short alias and its full key vary together: keep the alias only
        return [c for c in varied if not any(ALIASES.get(alias) == c for alias in varied)]

    def group_keys(self) -> list[str]:
        """The config keys that separate groups of runs (curves): algorithm, env, N, H first, then every other
        varying key; runs of one group differ only in their seeds."""
        tuned = self.tuned_columns()
        present = [key for key in LEADING_KEYS if key in self.frame and key not in tuned]
        return present + [key for key in self.varying() if key not in present]

    def replicate_columns(self) -> list[str]:
        """The seed columns (:func:`is_replicate`): runs of one group that differ in them are replicates."""
        return [c for c in self.config_columns if is_replicate(c) and c in self.frame]

    def subset(self, rows: pd.Series) -> Results:
        """The same runs, config columns and tuned keys, with only the rows of ``frame`` where ``rows`` is true."""
        return dataclasses.replace(self, frame=self.frame[rows].reset_index(drop=True))


def is_replicate(key: str) -> bool:
    """Seeds (``seed``, ``env.mdp_seed``, ...) are replicates: runs that differ only in them are averaged."""
    return key.endswith("seed")


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """``{"algo": {"name": "x", "lr": 1, "layers": ["a", "b"]}}`` → ``{"algo": "x", "algo.lr": 1, "algo.layers":
    "a,b"}``, plus the short aliases (a list becomes one comma-joined value, so runs that differ in it are
    different groups)."""

    def joined(item: Any) -> Any:
        return ",".join(map(str, item)) if isinstance(item, list) else item

    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat[key] = value.get("name")
            flat.update(
                {
                    f"{key}.{sub}": joined(item)
                    for sub, item in value.items()
                    if sub != "name" and not isinstance(item, dict)
                }
            )
        elif key != "hydra":
            flat[key] = joined(value)
    flat.update({alias: flat[full] for alias, full in ALIASES.items() if full in flat})
    return flat


def _csv_rows(path: Path) -> tuple[list[list[str]], str]:
    """The rows of ``path`` (header first) and its text; :class:`Unreadable` when it is missing, empty or not text."""
    try:
        data = read_regular(path)
    except OSError as error:
        raise Unreadable(f"{path.name} cannot be read ({error.strerror or error})") from None
    if not data:
        raise Unreadable(f"{path.name} is empty")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise Unreadable(f"{path.name} is not a text CSV file (binary data)") from None
    if "\0" in text:
        raise Unreadable(f"{path.name} is not a text CSV file (binary data)")
    try:
        return list(csv.reader(io.StringIO(text, newline=""))), text
    except csv.Error as error:
        raise Unreadable(f"{path.name} is not a valid CSV file ({error})") from None


def read_metrics(run: Run) -> tuple[pd.DataFrame, str | None]:
    """``run``'s ``metrics.csv``, and a note when its last row, cut short (a killed or still running writer), was
    dropped. :class:`Unreadable` when the file is missing, empty, binary, has no ``round`` column first, a row with
    more or fewer fields than the header (the last one of a completed run included), or a value that is not a
    number."""
    path = run.path / "metrics.csv"
    rows, text = _csv_rows(path)
    header, note = rows[0], None
    if not header or header[0] != "round":
        raise Unreadable(f"{path.name} does not start with a header row whose first column is round")
    ended = text.endswith("\n")
    if len(rows) > 1 and (len(rows[-1]) < len(header) or not ended):
        detail = f"({len(rows[-1])} of {len(header)} fields{'' if ended else ', no end of line'})"
        if run.status == "completed":
            raise Unreadable(f"{path.name}: its last row is cut short {detail}, although the run completed")
        body = text.removesuffix("\n")
        rows, text = rows[:-1], body[: body.rfind("\n") + 1]
        note = f"{path}: its last row, cut short {detail}, is left out ({run.status} run)"
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise Unreadable(f"{path.name}: line {number} has {len(row)} fields, the header {len(header)}")
    if len(rows) == 1:
        raise Unreadable(f"{path.name} has a header but no complete row")
    frame = pd.read_csv(io.StringIO(text))
    text_columns = [column for column in frame if not pd.api.types.is_numeric_dtype(frame[column])]
    if text_columns or frame["round"].isna().any():
        column = text_columns[0] if text_columns else "round"
        raise Unreadable(f"{path.name}: column {column} holds values that are not numbers")
    return frame.astype({"round": int}), note


def _check_config(config: dict[str, Any]) -> None:
    """:class:`Unreadable` unless ``config`` has what grouping runs needs: ``algo`` and ``env`` with their names,
    ``n_agents`` and ``seed`` whole numbers."""
    for section in ("algo", "env"):
        if not isinstance(config.get(section), dict) or not isinstance(config[section].get("name"), str):
            raise Unreadable(f"summary.json's config has no {section} name: it is not a fedrl run's config")
    for key in ("n_agents", "seed"):
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise Unreadable(f"summary.json's config has {key}={value!r}: a fedrl run's is a whole number")


def _load_run(run: Run) -> tuple[pd.DataFrame, dict[str, Any], str | None]:
    """One run's metrics rows with its flattened config as columns; :class:`Unreadable` when it cannot be used."""
    if not run.config:
        raise Unreadable("summary.json has no config")
    _check_config(run.config)
    metrics, note = read_metrics(run)
    config = flatten_config(run.config)
    metrics = metrics.assign(
        run_dir=str(run.path), status=run.status, **{k: v for k, v in config.items() if k not in metrics}
    )
    return metrics, config, note


def _nothing_to_plot(runs: list[Run]) -> NoRuns:
    """Why no run can be plotted, in one line naming the first unreadable file when there is one."""
    unreadable = [run for run in runs if run.status == "unreadable"]
    others = sorted({run.status for run in runs if run.status not in ("completed", "unreadable")})
    reasons = []
    if unreadable:
        more = f" (and {len(unreadable) - 1} more unreadable runs)" if len(unreadable) > 1 else ""
        reasons.append(f"{unreadable[0].path / unreadable[0].error}{more}")
    if others:
        not_completed = sum(run.status in others for run in runs)
        reasons.append(
            f"{not_completed} of the {len(runs)} runs found are not completed (statuses: {', '.join(others)}); "
            "--include-failed plots their rows anyway"
        )
    return NoRuns(f"nothing to plot: {'; '.join(reasons)}")


def load_results(paths: Iterable[Path], include_failed: bool = False) -> Results:
    """Load the runs under ``paths``; runs not completed are listed in ``runs`` but left out of ``frame``
    unless ``include_failed`` (their complete rows up to the failure are then kept). A run whose files cannot be
    used is listed with status ``unreadable`` and the reason as its ``error``. :class:`NoRuns` when nothing
    can be plotted."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise NoRuns(f"{path}: no such file or directory")
    runs = [read_run(path) for path in find_run_dirs(paths)]
    if not runs:
        raise NoRuns(f"no runs found under {', '.join(map(str, paths))} (a run dir holds summary.json)")
    frames, config_columns, notes = [], {}, []
    for index, run in enumerate(runs):
        if run.status == "unreadable" or (run.status != "completed" and not include_failed):
            continue
        try:
            metrics, config, note = _load_run(run)
        except Unreadable as error:
            runs[index] = dataclasses.replace(run, status="unreadable", error=str(error))
            continue
        config_columns.update(dict.fromkeys(config))
        frames.append(metrics)
        notes += [note] if note else []
    if not frames:
        raise _nothing_to_plot(runs)
    frame = pd.concat(frames, ignore_index=True)
    return Results(frame, runs, [c for c in config_columns if c in frame], notes=notes)
