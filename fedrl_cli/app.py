"""The Hydra task: config → environment family + algorithm → federated round loop → run dir.

``main`` is a module-level ``@hydra.main`` task, so multirun and launcher plugins work; the CLI calls it after
rewriting ``sys.argv``. A job never raises for bad input or a failed run: its ``summary.json`` records the
status and why (``error_type``: ``bad_input``, ``diverged``, ``write_error``, ``error`` or ``interrupted``), so the
other jobs of a sweep go on, whatever the launcher. :class:`RunDirs` gives each run dir one writer and tells the CLI
where to read the outcomes.
An interrupted job (SIGINT, SIGTERM) stops the whole command. With ``FEDRL_RESUME=1`` in its environment
(``fedrl resume``) a job continues the run already in its run dir instead of starting a new one.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from fedrl_cli import checkpoint, rundir
from fedrl_cli.config import PLACEMENT_KEYS, validate, warnings
from fedrl_cli.errors import (
    ConfigError,
    DirRefused,
    Diverged,
    Escalated,
    Interrupted,
    ResumeError,
    RunFailed,
    WriteFailed,
)
from fedrl_cli.experiments import build
from fedrl_cli.federation import run_rounds
from fedrl_cli.metrics import environment_versions, git_commit, write_json_atomic, write_json_in_place
from fedrl_cli.progress import RoundProgress
from fedrl_cli.runs import find_run_dirs, read_summary

CONF_DIR = Path(__file__).resolve().parent / "conf"
log = logging.getLogger("fedrl")
# swept values in job dir names (:func:`fedrl_cli.rundir.job_subdir`); registered wherever a job runs, as it
# imports this module
OmegaConf.register_new_resolver("fedrl_name", rundir.job_name, replace=True)


# set to "1" (by `fedrl resume`, through hydra.job.env_set) to continue the runs already in the run dirs
RESUME_ENV = "FEDRL_RESUME"
# the run dirs (one run) or sweep dirs (multirun) this process launched; the CLI reads their summaries
LAUNCHED: list[Path] = []
# the sweep dirs this process started (where `fedrl resume` continues a sweep interrupted before its end)
STARTED: list[Path] = []
# runs whose failure the job itself reported, because their summary.json could not be written
REPORTED: list[Path] = []


class RunDirs(Callback):
    """Hydra callback, called in the launching process. Before Hydra writes into a run or sweep dir, it claims the
    dir (a default one is made unique: :func:`fedrl_cli.rundir.claim_new`), locks it, and refuses it when another
    live process writes there or, for a new run, when it holds another run's results (unless ``overwrite=true``).
    Once the run or sweep has ended it tells the CLI where to read the outcomes."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _escalated():
            if not _resuming(config):
                checked_config(config)  # bad input is refused before anything is written (an older run's dir too)
            directory = _claimed(config, "run")
            if not _resuming(config):
                if (directory / "multirun.yaml").exists():
                    raise DirRefused(f"{directory} is a sweep dir (it holds multirun.yaml): choose another run dir")
                found = rundir.results_in(directory)
                if found and not config.get("overwrite"):
                    rundir.refuse_results(directory, "hydra.run.dir", f"another run's results ({', '.join(found)})")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        LAUNCHED.append(Path(config.hydra.runtime.output_dir))
        rundir.release(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _escalated():
            directory = _claimed(config, "sweep")
            STARTED.append(directory)
            if not _user_set(config, "hydra.sweep.subdir"):
                subdir = rundir.job_subdir(config.hydra.sweeper.get("params"), list(config.hydra.overrides.task))
                _set_hydra(config, "hydra.sweep.subdir", subdir, f"'{subdir}'")
            if not _resuming(config):
                runs = find_run_dirs([directory])
                if runs and not config.get("overwrite"):
                    rundir.refuse_results(directory, "hydra.sweep.dir", f"{len(runs)} runs (the first: {runs[0]})")
                for run in runs:  # overwrite=true replaces the earlier sweep: none of its runs is left to plot
                    rundir.clear_results(run)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        LAUNCHED.append(Path(config.hydra.sweep.dir))
        rundir.release(Path(config.hydra.sweep.dir))


@contextmanager
def _escalated() -> Iterator[None]:
    try:
        yield
    except (ConfigError, OSError) as error:
        raise Escalated(error) from None


def _resuming(config: DictConfig) -> bool:
    return str(config.hydra.job.env_set.get(RESUME_ENV)) == "1"


def _claimed(config: DictConfig, mode: str) -> Path:
    """The run (``mode`` run) or sweep dir, created and locked. A default one, named to the second, gets a suffix
    when another run already has it; the new name is set in the config (and, for a sweep, as an override, so that
    every job's config, composed anew from the overrides, has it too)."""
    key = f"hydra.{mode}.dir"
    value = OmegaConf.select(config, key)
    if not str(value).strip():
        raise ConfigError(f"{key}={value!r} is not allowed: it must name a folder (for this one, say '.')")
    directory = Path(value)
    if _user_set(config, key):
        directory.mkdir(parents=True, exist_ok=True)
    else:
        claimed = rundir.claim_new(directory)
        if claimed != directory:
            _set_hydra(config, key, str(claimed), rundir.quoted(claimed))
            directory = claimed
    rundir.acquire(directory)
    return directory


def _user_set(config: DictConfig, key: str) -> bool:
    written = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)  # as typed: ${hydra.job.num} stays
    return any(override.lstrip("+~").startswith(f"{key}=") for override in written)


def _set_hydra(config: DictConfig, key: str, value: str, override_value: str) -> None:
    """Set Hydra's ``key`` in the config and as an override (a sweep's jobs are composed anew from the overrides)."""
    with read_write(config.hydra):
        OmegaConf.update(config, key, value)
        config.hydra.overrides.hydra.append(f"{key}={override_value}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _first_line(error: Exception) -> str:
    """An OmegaConf error (a broken interpolation) in one line, naming the key when it knows it."""
    key = getattr(error, "full_key", None)
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{key}: {first}" if key else first


def _saved_config(cfg: DictConfig, run_dir: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The config a resumed run continues with: its own, from its summary (the checkpoint belongs to it), even
    if the config tree has changed since; Hydra's ``.hydra/config.yaml`` is put back to match it."""
    composed = OmegaConf.to_container(cfg, resolve=True)
    saved = (previous or {}).get("config")
    if not saved:
        return composed
    launch = (*PLACEMENT_KEYS, "overwrite")  # where it runs may change; overwrite concerns only new runs
    added = {key: value for key, value in composed.items() if key not in saved}  # keys newer than the run
    saved = {**added, **saved, **{key: composed[key] for key in launch if key in composed}}
    if saved != composed:
        log.warning("fedrl: the config tree changed since %s started; it goes on with its own saved config", run_dir)
        OmegaConf.save(OmegaConf.create(saved), run_dir / ".hydra" / "config.yaml")
    return saved


def run_experiment(cfg: DictConfig, run_dir: Path, in_sweep: bool = False, resume: bool = False) -> dict[str, Any]:
    """Run one experiment into ``run_dir``, holding its lock; returns the final metrics row. Jobs of a sweep show
    no progress bar (parallel bars would garble the terminal).

    With ``resume``, a run dir that already holds a run continues it: a completed run is left as it is, any
    other goes on from its last checkpoint (or from the start when it has none), with its own saved config.
    Without it, the result files of an earlier run in ``run_dir`` are replaced (the launcher refused the dir
    unless ``overwrite=true``).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with rundir.held(run_dir):
        return _run_experiment(cfg, run_dir, in_sweep, resume)


def checked_config(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """``cfg`` as a plain dict (Hydra's own settings left out), validated: :class:`ConfigError` in one line for a
    bad value or an interpolation that cannot resolve."""
    try:
        config = {
            key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            for key, value in (cfg.items() if isinstance(cfg, dict) else cfg.items_ex(resolve=False))
            if key != "hydra"
        }
        validate(config)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(_first_line(error)) from error
    return config


def _run_experiment(cfg: DictConfig, run_dir: Path, in_sweep: bool, resume: bool) -> dict[str, Any]:
    previous = read_summary(run_dir) if resume else None
    if resume and previous is None and (run_dir / "summary.json").exists():
        previous = {}  # unreadable (a full disk at its first write): the run goes on from its checkpoint, if any
    if previous is not None and previous.get("status") == "completed":
        log.info("fedrl: %s already completed; nothing to resume", run_dir)
        return previous.get("final") or {}
    started, clock = _now(), time.perf_counter()
    summary: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run_dir),
        "started": (previous or {}).get("started", started),
        "versions": environment_versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    resumed: checkpoint.Header | None = None

    def record(**fields: Any) -> None:
        before = resumed.elapsed_s if resumed else 0.0
        summary.update(fields, wall_s=round(before + time.perf_counter() - clock, 6))
        write_json_atomic(run_dir / "summary.json", summary)

    experiment = None
    try:
        try:
            config = _saved_config(cfg, run_dir, previous) if resume else OmegaConf.to_container(cfg, resolve=True)
            summary["config"] = config
            checked_config(config)
            resumed = checkpoint.read_header(run_dir) if previous is not None else None
        except OSError:
            raise
        except Exception as error:  # a bad value, an interpolation that cannot resolve, an unusable checkpoint
            message = str(error) if isinstance(error, ConfigError | ResumeError) else _first_line(error)
            raise ConfigError(message) from error
        if not resume:  # an earlier run's results, replaced (overwrite=true) once the new config is known good
            rundir.clear_results(run_dir)
        if previous is not None:
            resumed_at = {"at": started, "from_round": resumed and resumed.round}
            summary["resumed"] = [*previous.get("resumed", []), resumed_at]
        record()
        algo, env = config["algo"]["name"], config["env"]["name"]
        rounds, every = config["algo"]["rounds"], config["checkpoint_every"]
        job = f"[{run_dir.name}] " if in_sweep else ""  # parallel jobs' lines interleave: each names its job
        start = f"resuming from round {resumed.round}" if resumed else "resuming from the start (no checkpoint)"
        start = f", {start}" if previous is not None else ""
        shape = f"{algo} on {env}, n_agents={config['n_agents']}, rounds={rounds}"
        log.info("fedrl: %s%s → %s%s", job, shape, run_dir, start)
        for warning in warnings(config):
            log.warning("fedrl: %swarning: %s", job, warning)
        experiment = build(config)
        record(**experiment.facts())
        if resumed is not None:
            experiment.restore(checkpoint.load_state(run_dir, experiment.rebuilt()))
        show = config["progress"] and not in_sweep
        with RoundProgress(rounds, show, f"{algo}/{env}") as progress:
            final = run_rounds(
                experiment,
                rounds,
                config["n_agents"],
                run_dir,
                progress,
                every,
                resumed,
                config["agent_metrics_every"],
                config,
            )
        experiment.finish(run_dir)
        record(status="completed", final=final, finished=_now())
        checkpoint.discard(run_dir)  # after the summary says completed: a kill in between loses nothing
    except BaseException as error:  # record why, then let the caller decide what follows
        status, kind, reason, raised = _failure(error, run_dir)
        _record_failure(summary, record, status=status, error_type=kind, error=reason, finished=_now())
        if raised is error:
            raise
        raise raised from None
    finally:
        if experiment is not None:
            experiment.close()
    shown = ", ".join(f"{k}={v:.6g}" for k, v in final.items() if isinstance(v, float) and k != "wall_s")
    job = f"[{run_dir.name}] " if in_sweep else ""
    log.info("fedrl: %scompleted %d rounds in %.2fs: %s", job, final["round"], summary["wall_s"], shown)
    return final


def _failure(error: BaseException, run_dir: Path) -> tuple[str, str, str, BaseException]:
    """How a run that raised ``error`` ended: status, ``error_type``, the reason, and what to raise."""
    if isinstance(error, ConfigError):
        return "failed", "bad_input", str(error), error
    if isinstance(error, RunFailed):
        return "failed", "diverged" if isinstance(error, Diverged) else "error", str(error), error
    if isinstance(error, Interrupted | KeyboardInterrupt):
        reason = f"{str(error) or 'KeyboardInterrupt'}; continue it with `fedrl resume {run_dir}`"
        return "interrupted", "interrupted", reason, error
    if isinstance(error, OSError):
        reason = _write_failure(error, run_dir)
        return "failed", "write_error", reason, WriteFailed(reason)
    return "failed", "error", f"{type(error).__name__}: {error}", error


FILE_LIMIT_REMEDY = "raise the limit of open files (ulimit -n)"
# what to do about a write the file system refused, by errno
_REMEDIES = {
    errno.ENOSPC: "free space",
    errno.EDQUOT: "free space",
    errno.EROFS: "make the file system writable",
    errno.EACCES: "fix the permissions",
    errno.EPERM: "fix the permissions",
    errno.EMFILE: FILE_LIMIT_REMEDY,
    errno.ENFILE: FILE_LIMIT_REMEDY,
}


def failed_action(error: OSError) -> str:
    """What the file system refused: ``opening`` a file at all (too many open files), or ``writing`` it."""
    return "opening" if error.errno in (errno.EMFILE, errno.ENFILE) else "writing"


def _write_failure(error: OSError, run_dir: Path) -> str:
    """One line for a write the file system refused: what, where, what is kept and how to go on."""
    what = (error.strerror or str(error)).lower()
    where = error.filename or run_dir
    kept = checkpoint.last_round(run_dir)
    rows = f"rows up to round {kept} are kept" if kept is not None else "no checkpoint yet, so resume starts over"
    remedy = _REMEDIES.get(error.errno, "fix it")
    return f"{what} {failed_action(error)} {where}; {rows}; {remedy} and run `fedrl resume {run_dir}`"


def _record_failure(summary: dict[str, Any], record: Any, **fields: Any) -> None:
    """Record a failure in ``summary.json``. On a full disk the usual write (a temp file renamed over it) needs
    space that the old file still holds, so it is then written in place; when even that fails, the failure is
    said here, on stderr, and the CLI does not say it again."""
    try:
        record(**fields)
        return
    except OSError:
        pass
    path = Path(summary["run_dir"]) / "summary.json"
    try:
        write_json_in_place(path, summary)
    except OSError as error:
        either = f"{path} could not be written either ({error.strerror})"
        print(f"fedrl: error: {fields['error']}; {either}", file=sys.stderr)
        REPORTED.append(path.parent)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: one job of a run or of a sweep. Failures are recorded in the run dir, not raised,
    so that the other jobs of a sweep still run."""
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks; the run says why it stops
    hydra_config = HydraConfig.get()
    run_dir, in_sweep = Path(hydra_config.runtime.output_dir), hydra_config.mode == RunMode.MULTIRUN
    try:
        run_experiment(cfg, run_dir, in_sweep, resume=os.environ.get(RESUME_ENV) == "1")
    except DirRefused as error:  # another process writes this job's dir: its summary is not ours to touch
        print(f"fedrl: error: {error}", file=sys.stderr)
        REPORTED.append(run_dir)
    except (ConfigError, RunFailed):
        pass  # summary.json says why; the CLI reports it
    except (Interrupted, KeyboardInterrupt):  # stop the whole command, sweep included; the CLI says how to go on
        LAUNCHED.append(Path(hydra_config.sweep.dir) if in_sweep else run_dir)
        raise KeyboardInterrupt from None
    except Exception:
        log.exception("fedrl: the run crashed")
