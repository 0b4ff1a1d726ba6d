"""Reading run dirs and sweep dirs into one tidy pandas table.

A run dir is any folder with a ``summary.json`` (and ``metrics.csv``); paths are searched recursively, so any
mix of runs and sweeps can be loaded together. Each metrics row is joined to its run's config: the
flattened keys (``algo.lr``, ``env.gamma``, ...), the names ``algo`` and ``env``, and short aliases for the
keys sweeps usually vary (``local_steps``, ``reward_heterogeneity``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fedrl_cli.runs import Run, find_run_dirs, read_run

# short column names for the config keys sweeps vary most
ALIASES = {
    "local_steps": "algo.local_steps",
    "rounds": "algo.rounds",
    "gradient": "algo.gradient",
    "reward_heterogeneity": "env.reward_heterogeneity",
    "transition_heterogeneity": "env.transition_heterogeneity",
}
# config keys that never separate two runs into different groups
NOT_GROUPING = {"seed", "progress", "algo.rounds", "rounds"}


class NoRuns(ValueError):
    """Nothing to read: no run under the given paths, or none that completed."""


@dataclass
class Results:
    """``frame``: one row per (run, round) of the loaded runs; ``runs``: every run found, with its status;
    ``config_columns``: the config columns of ``frame``; ``tuned``: config keys chosen per group by
    :func:`fedrl_cli.plots.tune` (they no longer separate groups)."""

    frame: pd.DataFrame
    runs: list[Run]
    config_columns: list[str]
    tuned: tuple[str, ...] = ()

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


def is_replicate(key: str) -> bool:
    """Seeds (``seed``, ``env.mdp_seed``, ...) are replicates: runs that differ only in them are averaged."""
    return key.endswith("seed")


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """``{"algo": {"name": "x", "lr": 1, "layers": ["a", "b"]}}`` → ``{"algo": "x", "algo.lr": 1, "algo.layers":
    "a,b"}``, plus the short aliases (a list becomes one comma-joined value, so runs that differ in it are
    different groups)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat[key] = value.get("name")
            flat.update(
                {
                    f"{key}.{sub}": ",".join(map(str, item)) if isinstance(item, list) else item
                    for sub, item in value.items()
                    if sub != "name" and not isinstance(item, dict)
                }
            )
        elif key != "hydra":
            flat[key] = value
    flat.update({alias: flat[full] for alias, full in ALIASES.items() if full in flat})
    return flat


def load_results(paths: Iterable[Path], include_failed: bool = False) -> Results:
    """Load the runs under ``paths``; runs not completed are listed in ``runs`` but left out of ``frame``
    unless ``include_failed`` (their rows up to the failure are then kept)."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise NoRuns(f"{path}: no such file or directory")
    runs = [read_run(path) for path in find_run_dirs(paths)]
    if not runs:
        raise NoRuns(f"no runs found under {', '.join(map(str, paths))} (a run dir holds summary.json)")
    frames, config_columns = [], {}
    for run in runs:
        if run.status != "completed" and not include_failed:
            continue
        metrics_file = run.path / "metrics.csv"
        if not metrics_file.is_file() or metrics_file.stat().st_size == 0:
            continue
        metrics = pd.read_csv(metrics_file)
        config = flatten_config(run.config)
        config_columns.update(dict.fromkeys(config))
        metrics = metrics.assign(
            run_dir=str(run.path), status=run.status, **{k: v for k, v in config.items() if k not in metrics}
        )
        frames.append(metrics)
    if not frames:
        statuses = ", ".join(sorted({run.status for run in runs}))
        raise NoRuns(
            f"none of the {len(runs)} runs found is completed (statuses: {statuses}); "
            "--include-failed plots their rows anyway"
        )
    frame = pd.concat(frames, ignore_index=True)
    return Results(frame, runs, [c for c in config_columns if c in frame])
