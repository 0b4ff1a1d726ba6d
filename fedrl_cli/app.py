"""The Hydra task: config → environment family + algorithm → federated round loop → run dir.

``main`` is a module-level ``@hydra.main`` task, so multirun and launcher plugins work; the CLI calls it after
rewriting ``sys.argv``. A job never raises for bad input or a failed run: its ``summary.json`` records the
status and why (``error_type``: ``bad_input``, ``diverged``, ``error`` or ``interrupted``), so the other jobs
of a sweep go on, whatever the launcher. :class:`RecordRunDirs` tells the CLI where to read the outcomes.
An interrupted job (SIGINT, SIGTERM) stops the whole command. With ``FEDRL_RESUME=1`` in its environment
(``fedrl resume``) a job continues the run already in its run dir instead of starting a new one.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fedrl_cli import checkpoint
from fedrl_cli.config import PLACEMENT_KEYS, validate, warnings
from fedrl_cli.errors import ConfigError, Diverged, Interrupted, ResumeError, RunFailed
from fedrl_cli.experiments import build
from fedrl_cli.federation import run_rounds
from fedrl_cli.metrics import environment_versions, git_commit, write_json_atomic
from fedrl_cli.progress import RoundProgress
from fedrl_cli.runs import read_summary

CONF_DIR = Path(__file__).resolve().parent / "conf"
log = logging.getLogger("fedrl")


# set to "1" (by `fedrl resume`, through hydra.job.env_set) to continue the runs already in the run dirs
RESUME_ENV = "FEDRL_RESUME"
# the run dirs (one run) or sweep dirs (multirun) this process launched; the CLI reads their summaries
LAUNCHED: list[Path] = []
# the sweep dirs this process started (where `fedrl resume` continues a sweep interrupted before its end)
STARTED: list[Path] = []


class RecordRunDirs(Callback):
    """Hydra callback, called in the launching process once a run or a whole sweep has ended."""

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        LAUNCHED.append(Path(config.hydra.runtime.output_dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        STARTED.append(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        LAUNCHED.append(Path(config.hydra.sweep.dir))


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
    saved = {**saved, **{key: composed[key] for key in PLACEMENT_KEYS if key in composed}}  # where it runs may change
    if saved != composed:
        log.warning("fedrl: the config tree changed since %s started; it goes on with its own saved config", run_dir)
        OmegaConf.save(OmegaConf.create(saved), run_dir / ".hydra" / "config.yaml")
    return saved


def run_experiment(cfg: DictConfig, run_dir: Path, in_sweep: bool = False, resume: bool = False) -> dict[str, Any]:
    """Run one experiment into ``run_dir``; returns the final metrics row. Jobs of a sweep show no progress
    bar (parallel bars would garble the terminal).

    With ``resume``, a run dir that already holds a run continues it: a completed run is left as it is, any
    other goes on from its last checkpoint (or from the start when it has none), with its own saved config.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_summary(run_dir) if resume else None
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

    try:
        config = _saved_config(cfg, run_dir, previous) if resume else OmegaConf.to_container(cfg, resolve=True)
        summary["config"] = config
        validate(config)
        resumed = checkpoint.read_header(run_dir) if previous is not None else None
    except Exception as error:  # a bad value, an interpolation that cannot resolve, an unusable checkpoint
        message = str(error) if isinstance(error, ConfigError | ResumeError) else _first_line(error)
        record(status="failed", error_type="bad_input", error=message, finished=_now())
        raise ConfigError(message) from error
    if previous is not None:
        summary["resumed"] = [*previous.get("resumed", []), {"at": started, "from_round": resumed and resumed.round}]
    record()
    algo, env = config["algo"]["name"], config["env"]["name"]
    log.info(
        "fedrl: %s on %s, n_agents=%d, rounds=%d → %s",
        algo,
        env,
        config["n_agents"],
        config["algo"]["rounds"],
        run_dir,
    )
    for warning in warnings(config):
        log.warning("fedrl: warning: %s", warning)
    if previous is not None:
        log.info("fedrl: resuming from %s", f"round {resumed.round}" if resumed else "the start (no checkpoint)")
    experiment = None
    try:
        experiment = build(config)
        if resumed is not None:
            experiment.restore(checkpoint.load_state(run_dir, experiment.rebuilt()))
        else:
            checkpoint.discard(run_dir)
        show = config["progress"] and not in_sweep
        rounds, every = config["algo"]["rounds"], config["checkpoint_every"]
        with RoundProgress(rounds, show, f"{algo}/{env}") as progress:
            final = run_rounds(experiment, rounds, config["n_agents"], run_dir, progress, every, resumed)
        experiment.finish(run_dir)
    except BaseException as error:  # record why, then let the caller decide what follows
        status = "failed"
        if isinstance(error, RunFailed):
            kind, reason = ("diverged" if isinstance(error, Diverged) else "error"), str(error)
        elif isinstance(error, Interrupted | KeyboardInterrupt):
            status, kind = "interrupted", "interrupted"
            reason = f"{error or 'KeyboardInterrupt'}; continue it with `fedrl resume {run_dir}`"
        else:
            kind, reason = "error", f"{type(error).__name__}: {error}"
        record(status=status, error_type=kind, error=reason, finished=_now())
        raise
    finally:
        if experiment is not None:
            experiment.close()
    record(status="completed", final=final, finished=_now())
    shown = ", ".join(f"{k}={v:.6g}" for k, v in final.items() if isinstance(v, float) and k != "wall_s")
    log.info("fedrl: completed %d rounds in %.2fs: %s", final["round"], summary["wall_s"], shown)
    return final


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: one job of a run or of a sweep. Failures are recorded in the run dir, not raised,
    so that the other jobs of a sweep still run."""
    hydra_config = HydraConfig.get()
    run_dir, in_sweep = Path(hydra_config.runtime.output_dir), hydra_config.mode == RunMode.MULTIRUN
    try:
        run_experiment(cfg, run_dir, in_sweep, resume=os.environ.get(RESUME_ENV) == "1")
    except (ConfigError, RunFailed):
        pass  # summary.json says why; the CLI reports it
    except (Interrupted, KeyboardInterrupt):  # stop the whole command, sweep included; the CLI says how to go on
        LAUNCHED.append(Path(hydra_config.sweep.dir) if in_sweep else run_dir)
        raise KeyboardInterrupt from None
    except Exception:
        log.exception("fedrl: the run crashed")
