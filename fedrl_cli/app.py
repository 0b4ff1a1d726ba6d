"""The Hydra task: config → environment family + algorithm → federated round loop → run dir.

``main`` is a module-level ``@hydra.main`` task, so multirun and launcher plugins work; the CLI calls it after
rewriting ``sys.argv``. A job never raises for bad input or a failed run: its ``summary.json`` records the
status and why (``error_type``: ``bad_input``, ``diverged``, ``error`` or ``interrupted``), so the other jobs
of a sweep go on, whatever the launcher. :class:`RecordRunDirs` tells the CLI where to read the outcomes.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fedrl_cli.config import validate
from fedrl_cli.errors import ConfigError, Diverged, RunFailed
from fedrl_cli.experiments import build
from fedrl_cli.federation import run_rounds
from fedrl_cli.metrics import environment_versions, git_commit, write_json_atomic
from fedrl_cli.progress import RoundProgress

CONF_DIR = Path(__file__).resolve().parent / "conf"
log = logging.getLogger("fedrl")


# the run dirs (one run) or sweep dirs (multirun) this process launched; the CLI reads their summaries
LAUNCHED: list[Path] = []


class RecordRunDirs(Callback):
    """Hydra callback, called in the launching process once a run or a whole sweep has ended."""

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        LAUNCHED.append(Path(config.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        LAUNCHED.append(Path(config.hydra.sweep.dir))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_experiment(cfg: DictConfig, run_dir: Path, in_sweep: bool = False) -> dict[str, Any]:
    """Run one experiment into ``run_dir``; returns the final metrics row. Jobs of a sweep show no progress
    bar (parallel bars would garble the terminal)."""
    started, clock = _now(), time.perf_counter()
    summary: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run_dir),
        "started": started,
        "versions": environment_versions(),
        "git_commit": git_commit(),
    }

    def record(**fields: Any) -> None:
        summary.update(fields, wall_s=round(time.perf_counter() - clock, 6))
        write_json_atomic(run_dir / "summary.json", summary)

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
        summary["config"] = config
        validate(config)
    except Exception as error:  # a bad value, or an interpolation that cannot resolve
        message = str(error) if isinstance(error, ConfigError) else str(error).splitlines()[0]
        record(status="failed", error_type="bad_input", error=message, finished=_now())
        raise ConfigError(message) from error
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
    experiment = None
    try:
        experiment = build(config)
        show = config["progress"] and not in_sweep
        with RoundProgress(config["algo"]["rounds"], show, f"{algo}/{env}") as progress:
            final = run_rounds(
                experiment.round, experiment.measure, config["algo"]["rounds"], config["n_agents"], run_dir, progress
            )
        experiment.finish(run_dir)
    except BaseException as error:  # record why, then let the caller decide what follows
        if isinstance(error, RunFailed):
            kind, reason = ("diverged" if isinstance(error, Diverged) else "error"), str(error)
        elif isinstance(error, KeyboardInterrupt):
            kind, reason = "interrupted", "interrupted"
        else:
            kind, reason = "error", f"{type(error).__name__}: {error}"
        record(status="failed", error_type=kind, error=reason, finished=_now())
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
    try:
        hydra_config = HydraConfig.get()
        run_experiment(cfg, Path(hydra_config.runtime.output_dir), hydra_config.mode == RunMode.MULTIRUN)
    except (ConfigError, RunFailed):
        pass  # summary.json says why; the CLI reports it
    except Exception:
        log.exception("fedrl: the run crashed")
