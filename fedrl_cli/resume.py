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

import csv
import io
import math
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fedrl_cli import checkpoint, event_log, rundir
from fedrl_cli.app import RESUME_ENV
from fedrl_cli.config import PLACEMENT_KEYS, validate
from fedrl_cli.errors import ConfigError, ResumeError, first_line
from fedrl_cli.rundir import quoted
from fedrl_cli.runs import find_run_dirs, read_regular, read_summary

RESUME_OVERRIDE = f"++hydra.job.env_set.{RESUME_ENV}='1'"
# Hydra overrides of the original command that resume sets itself
_REPLACED = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra.mode=", f"++hydra.job.env_set.{RESUME_ENV}=")


# the only Hydra settings a resume replays from the saved command: the launcher and its plain settings (a key
# starting with "_", such as _target_, would make Hydra instantiate anything) and the sweep's job dir names
_REPLAYED_HYDRA = re.compile(r"[+~]*(hydra/launcher=|hydra\.launcher\.(?!_)[\w.]+=|hydra\.sweep\.subdir=)")


def _saved_overrides(path: Path, *keys: str) -> list[str]:
    """The overrides saved in the YAML file ``path`` under ``keys`` (none: the file is the list), as written: not
    resolved (the job dir names hold interpolations such as ``${n_agents}``). :class:`ResumeError` in one line when
    the file is missing, not a regular file, not YAML or holds no such list of strings."""
    try:
        node = OmegaConf.create(read_regular(path).decode())
        for key in keys:
            node = node[key]
        listed = OmegaConf.to_container(node, resolve=False)
    except Exception as error:
        reason = first_line(error)
        raise ResumeError(f"{path} cannot be read as fedrl wrote it ({reason}): restore it, or start again") from None
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        where = ".".join(keys) or "the file"
        raise ResumeError(f"{path} cannot be read as fedrl wrote it ({where} is not a list of overrides)")
    return listed


def _replayed(task: list[str], hydra: list[str], source: Path) -> tuple[list[str], list[str]]:
    """The saved command's overrides that a resume replays: fedrl's own config keys, and of Hydra's settings only
    the launcher's and the job dir names (:data:`_REPLAYED_HYDRA`). Anything else in the saved files (say
    ``hydra.job.env_set``, which sets the job's environment) is left out, with a warning naming it."""
    own = [o for o in task if not o.lstrip("+~").startswith("hydra")]
    settings = [o for o in hydra if _REPLAYED_HYDRA.match(o) and not o.startswith(_REPLACED)]
    left_out = [o for o in [*task, *hydra] if o not in own and o not in settings and not o.startswith(_REPLACED)]
    if left_out:
        print(
            f"fedrl: warning: resume leaves out {', '.join(left_out)} from {source} (it replays only fedrl's config "
            "keys and the launcher's settings)",
            file=sys.stderr,
        )
    return own, settings


def _refuse_if_written(directory: Path) -> None:
    """:class:`ResumeError` when a live process holds ``directory``'s lock (it is still being written)."""
    holder = rundir.owner(directory)
    if holder is not None:
        raise ResumeError(f"{directory} is still being written by fedrl ({holder}): let it end or stop it first")


def _nothing_to_lose(run_dir: Path) -> bool:
    """Whether a run whose summary cannot be read can still be resumed: it has Hydra's record of its config, and a
    checkpoint to go on from or no rows that starting over would lose."""
    metrics = run_dir / "metrics.csv"
    rows = metrics.is_file() and metrics.read_bytes().count(b"\n") > 1
    return (run_dir / ".hydra" / "config.yaml").is_file() and ((run_dir / checkpoint.FILE).is_file() or not rows)


# the files a resumed run writes (its results, Hydra's record of the command and the job's log)
WRITTEN = (*rundir.RESULT_FILES, ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "fedrl.log")


def _check_written(run_dir: Path) -> None:
    """:class:`ResumeError` when a file the run would write is not a regular file of its own: writing through a
    link could change a file elsewhere, and opening a FIFO to write waits for a reader forever."""
    events = run_dir / event_log.FOLDER
    if events.is_symlink() or (events.exists() and not events.is_dir()):
        raise ResumeError(f"{events} is not a folder of its own: a run writes its TensorBoard events there; remove it")
    event_files = [f"{event_log.FOLDER}/{path.name}" for path in events.iterdir()] if events.is_dir() else []
    for name in (*WRITTEN, *event_files):
        path = run_dir / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            kind = "a symbolic link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file"
            raise ResumeError(f"{path} is {kind}: a run writes only regular files of its own there; remove it")


def _csv_intact(data: bytes) -> bool:
    """Whether ``data`` reads as a CSV that fedrl wrote: text, a header whose first column is ``round``, and rows
    as long as the header."""
    try:
        text = data.decode()
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error):
        return False
    return "\0" not in text and bool(rows) and rows[0][:1] == ["round"] and all(len(r) == len(rows[0]) for r in rows)


def _check_job(run_dir: Path) -> dict[str, Any]:
    """The summary of the run in ``run_dir``; :class:`ResumeError` if it is running, its summary cannot be read (a
    silent restart would lose it), its checkpoint is unusable or its CSVs are shorter than the checkpoint says."""
    _check_written(run_dir)
    summary = read_summary(run_dir)
    if summary is None and _nothing_to_lose(run_dir):
        summary = {"status": "unknown"}  # e.g. a full disk at its first write
    if summary is None or not isinstance(summary, dict):
        raise ResumeError(
            f"{run_dir / 'summary.json'} cannot be read (not a JSON object) and the run has rows but no checkpoint: "
            "resuming would start it over; restore the file, or start the run again in another dir"
        )
    _refuse_if_written(run_dir)
    header = checkpoint.read_header(run_dir)
    differs = checkpoint.other_config(header, summary.get("config") or {}) if header else None
    if differs:
        raise ResumeError(
            f"{run_dir / checkpoint.FILE} was written by another config ({differs}): a checkpoint belongs to the "
            "run that wrote it; restore this run's, or start the run again"
        )
    for name, size in (header.csv_bytes if header else {}).items():
        found = (run_dir / name).stat().st_size if (run_dir / name).is_file() else 0
        if found < size:
            raise ResumeError(
                f"{run_dir / name} holds {found} bytes, fewer than the {size} it had at the checkpoint of round "
                f"{header.round}: it was cut since; restore it, or start the run again"
            )
        if not _csv_intact(read_regular(run_dir / name)[:size]):
            raise ResumeError(
                f"{run_dir / name} was changed since the checkpoint of round {header.round} (its rows are not the "
                "CSV fedrl wrote): restore it, or start the run again"
            )
    return summary


def _placement(extra: list[str]) -> dict[str, Any]:
    """The keys of where a run computes that ``extra`` changes, with their values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in extra if not o.startswith("-")])
    return {o.get_key_element().lstrip("+~"): o.value() for o in parsed if o.get_key_element().lstrip("+~") in
            PLACEMENT_KEYS}  # fmt: skip


def _check_placement(run_dir: Path, summary: dict[str, Any], changes: dict[str, Any]) -> None:
    """:class:`ResumeError` when the run in ``run_dir`` cannot compute where ``changes`` say (``backend=ray`` for a
    tabular run, more workers than agents): refused before anything is launched, so the run dir stays as it is."""
    config = summary.get("config")
    if not changes or not isinstance(config, dict):
        return
    try:
        validate(config)
    except ConfigError:
        return  # the saved config itself does not pass (a newer config tree): the job says why
    try:
        validate({**config, **changes})
    except ConfigError as error:
        raise ResumeError(f"{error} (resuming {run_dir}, which is left as it was)") from None


def _sweep_size(multirun: Path, task: list[str]) -> int | None:
    """How many jobs the sweep has: the product of its sweep overrides' lengths (None if that cannot be told)."""
    try:
        params = OmegaConf.create(read_regular(multirun).decode()).hydra.sweeper.get("params")
        parsed = rundir.sweep_overrides(params, task)
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
        if override.lstrip("+~").startswith("hydra.mode="):
            raise ResumeError(
                f"{override}: fedrl resume sets the mode itself: a sweep dir resumes as a sweep, a run dir as a run"
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
    if "${" in str(path):
        raise ResumeError(
            f"{path}: Hydra reads ${{...}} in a path as an interpolation, so this dir cannot be resumed in place; "
            "rename it without '${' and resume the renamed dir"
        )
    if (path / "multirun.yaml").is_file():
        _refuse_if_written(path)
        multirun = path / "multirun.yaml"
        task = _saved_overrides(multirun, "hydra", "overrides", "task")
        hydra = _saved_overrides(multirun, "hydra", "overrides", "hydra")
        summaries = {run_dir: _check_job(run_dir) for run_dir in find_run_dirs([path])}
        for run_dir, summary in summaries.items():
            if summary.get("status") != "completed":
                _check_placement(run_dir, summary, _placement(extra))
        statuses = [summary.get("status") for summary in summaries.values()]
        if (
            statuses
            and all(status == "completed" for status in statuses)
            and len(statuses) == _sweep_size(multirun, task)
        ):
            raise ResumeError(f"all {len(statuses)} jobs of the sweep {path} completed: nothing to resume")
        task, hydra = _replayed(task, hydra, multirun)
        return ["-m", *task, *hydra, f"hydra.sweep.dir={quoted(path)}", RESUME_OVERRIDE, *extra]
    if (path / "summary.json").is_file():
        summary = _check_job(path)
        if summary.get("status") == "completed":
            rounds = summary.get("final", {}).get("round", "all its")
            raise ResumeError(f"{path} completed {rounds} rounds: nothing to resume")
        if summary.get("error_type") == "bad_input":
            raise ResumeError(f"{path} failed on bad input ({summary.get('error')}): fix it and start a new run")
        _check_placement(path, summary, _placement(extra))
        if not (path / ".hydra" / "overrides.yaml").is_file():
            raise ResumeError(f"{path} has no .hydra/overrides.yaml: it was not made by `fedrl run`")
        saved = path / ".hydra"
        task = _saved_overrides(saved / "overrides.yaml")
        hydra = _saved_overrides(saved / "hydra.yaml", "hydra", "overrides", "hydra")
        task, hydra = _replayed(task, hydra, saved)
        return [*task, *hydra, f"hydra.run.dir={quoted(path)}", RESUME_OVERRIDE, *extra]
    if not path.is_dir():
        raise ResumeError(f"{path}: no such directory")
    raise ResumeError(f"{path} is not a run dir or a sweep dir: it holds neither summary.json nor multirun.yaml")
