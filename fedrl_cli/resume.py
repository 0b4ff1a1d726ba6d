"""What ``fedrl resume PATH`` launches: the run's own command again, into the same dirs, with ``FEDRL_RESUME=1``.

Only where the run computes (``backend``, ``workers``, ``ray_address``: results do not depend on them) and Hydra's
settings can be changed on resume; every other key stays as the run saved it.

A run dir is launched again as one run with its own overrides (``.hydra/overrides.yaml``) and
``hydra.run.dir=PATH``. A sweep dir (it holds Hydra's ``multirun.yaml``) is launched again as the same sweep,
with the same launcher, and ``hydra.sweep.dir=PATH``: Hydra numbers the jobs in the same order, so each lands in
its own dir again, where completed jobs stay as they are, the others continue from their last checkpoint and
jobs that never started run now. Every job continues with the config saved in its ``summary.json``.
Nothing is launched when the path cannot be resumed: :class:`ResumeError` says why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fedrl_cli import checkpoint, rundir
from fedrl_cli.app import RESUME_ENV
from fedrl_cli.config import PLACEMENT_KEYS
from fedrl_cli.errors import ResumeError
from fedrl_cli.rundir import quoted
from fedrl_cli.runs import find_run_dirs, read_summary

RESUME_OVERRIDE = f"++hydra.job.env_set.{RESUME_ENV}='1'"
# Hydra overrides of the original command that resume sets itself
_REPLACED = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra.mode=", f"++hydra.job.env_set.{RESUME_ENV}=")


def _listed(overrides: Any) -> list[str]:
    """Saved overrides as written: not resolved (the job dir names hold interpolations such as ``${n_agents}``)."""
    return list(OmegaConf.to_container(overrides, resolve=False))


def _kept(hydra_overrides: list[str]) -> list[str]:
    return [override for override in hydra_overrides if not override.startswith(_REPLACED)]


def _refuse_if_written(directory: Path) -> None:
    """:class:`ResumeError` when a live process holds ``directory``'s lock (it is still being written)."""
    holder = rundir.owner(directory)
    if holder is not None:
        raise ResumeError(f"{directory} is still being written by fedrl ({holder}): let it end or stop it first")


def _check_job(run_dir: Path) -> dict[str, Any]:
    """The summary of the run in ``run_dir``; :class:`ResumeError` if it is running, its summary cannot be read (a
    silent restart would lose it), its checkpoint is unusable or its CSVs are shorter than the checkpoint says."""
    summary = read_summary(run_dir)
    if summary is None or not isinstance(summary, dict):
        raise ResumeError(
            f"{run_dir / 'summary.json'} cannot be read (not a JSON object): fedrl cannot tell how the run ended; "
            "restore the file, or start the run again in another dir"
        )
    _refuse_if_written(run_dir)
    header = checkpoint.read_header(run_dir)
    for name, size in (header.csv_bytes if header else {}).items():
        found = (run_dir / name).stat().st_size if (run_dir / name).is_file() else 0
        if found < size:
            raise ResumeError(
                f"{run_dir / name} holds {found} bytes, fewer than the {size} it had at the checkpoint of round "
                f"{header.round}: it was cut since; restore it, or start the run again"
            )
    return summary


def _sweep_size(multirun: Any) -> int | None:
    """How many jobs the sweep has: the product of its sweep overrides' lengths (None if that cannot be told)."""
    try:
        parsed = rundir.sweep_overrides(multirun.hydra.sweeper.get("params"), _listed(multirun.hydra.overrides.task))
        return math.prod(len(list(o.sweep_iterator())) if o.is_sweep_override() else 1 for o in parsed.values())
    except Exception:
        return None


def plan(path: Path, extra: list[str]) -> list[str]:
    """The ``fedrl run`` arguments that resume ``path``, with the Hydra overrides ``extra`` (e.g. another launcher)."""
    placement = tuple(f"{key}=" for key in PLACEMENT_KEYS)
    for override in extra:
        if override in ("-m", "--multirun"):
            raise ResumeError(
                f"{override}: fedrl resume needs no -m; it resumes a sweep when given the sweep dir "
                "(the folder that holds multirun.yaml), a run when given the run dir"
            )
        if override.lstrip("+~").startswith(("hydra.run.dir=", "hydra.sweep.dir=")):
            raise ResumeError(
                f"{override}: a run resumes in its own dir; to continue it elsewhere, copy the dir and resume the copy"
            )
        if not override.lstrip("+~").startswith(("hydra.", "hydra/", *placement)) and not override.startswith("-"):
            raise ResumeError(
                f"{override}: a resumed run keeps its own config; only where it runs ({', '.join(PLACEMENT_KEYS)}) "
                "and Hydra's settings (hydra.*, hydra/...) can change"
            )
    path = path.resolve()
    if (path / "multirun.yaml").is_file():
        _refuse_if_written(path)
        multirun = OmegaConf.load(path / "multirun.yaml")
        statuses = [_check_job(run_dir).get("status") for run_dir in find_run_dirs([path])]
        if statuses and all(status == "completed" for status in statuses) and len(statuses) == _sweep_size(multirun):
            raise ResumeError(f"all {len(statuses)} jobs of the sweep {path} completed: nothing to resume")
        task, hydra = _listed(multirun.hydra.overrides.task), _kept(_listed(multirun.hydra.overrides.hydra))
        return ["-m", *task, *hydra, f"hydra.sweep.dir={quoted(path)}", RESUME_OVERRIDE, *extra]
    if (path / "summary.json").is_file():
        summary = _check_job(path)
        if summary.get("status") == "completed":
            rounds = summary.get("final", {}).get("round", "all its")
            raise ResumeError(f"{path} completed {rounds} rounds: nothing to resume")
        if summary.get("error_type") == "bad_input":
            raise ResumeError(f"{path} failed on bad input ({summary.get('error')}): fix it and start a new run")
        if not (path / ".hydra" / "overrides.yaml").is_file():
            raise ResumeError(f"{path} has no .hydra/overrides.yaml: it was not made by `fedrl run`")
        task = _listed(OmegaConf.load(path / ".hydra" / "overrides.yaml"))
        hydra = _kept(_listed(OmegaConf.load(path / ".hydra" / "hydra.yaml").hydra.overrides.hydra))
        return [*task, *hydra, f"hydra.run.dir={quoted(path)}", RESUME_OVERRIDE, *extra]
    if not path.is_dir():
        raise ResumeError(f"{path}: no such directory")
    raise ResumeError(f"{path} is not a run dir or a sweep dir: it holds neither summary.json nor multirun.yaml")
