"""Sweeps through Hydra launchers: parallel jobs, presets, fault isolation, submitit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from conftest import fedrl

TINY = ("algo.rounds=2", "algo.batch_size=2", "algo.horizon=3", "progress=false")


def multirun(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`fedrl run -m OVERRIDES` into ``tmp_path/sweep``."""
    sweep = tmp_path / "sweep"
    return fedrl("run", "-m", *overrides, f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=300), sweep


def job_summaries(sweep: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(sweep.glob("*/summary.json"))}


def test_default_multirun_runs_jobs_in_parallel_with_joblib(tmp_path: Path) -> None:
    result, sweep = multirun(tmp_path, "algo=fastfedpg,fedavg_pg", "n_agents=1,2", *TINY)
    assert result.returncode == 0, result.stderr
    summaries = job_summaries(sweep)
    assert len(summaries) == 4
    assert {(s["config"]["algo"]["name"], s["config"]["n_agents"]) for s in summaries.values()} == {
        ("fastfedpg", 1),
        ("fastfedpg", 2),
        ("fedavg_pg", 1),
        ("fedavg_pg", 2),
    }
    assert all(s["status"] == "completed" for s in summaries.values())
    hydra_config = yaml.safe_load(next(sweep.glob("*/.hydra/hydra.yaml")).read_text())["hydra"]
    assert hydra_config["launcher"]["_target_"].endswith("JoblibLauncher")
    assert hydra_config["launcher"]["n_jobs"] == -1
    assert "sweep of 4 jobs: 4 completed, 0 failed, 0 with bad input" in result.stderr


def test_a_failing_job_does_not_stop_the_others(tmp_path: Path) -> None:
    result, sweep = multirun(
        tmp_path, "algo.global_lr=1.0,1e308", "algo.lr=1e308", "algo.gradient=exact", "algo.rounds=3", "progress=false"
    )
    assert result.returncode == 1
    statuses = {s["config"]["algo"]["global_lr"]: s for s in job_summaries(sweep).values()}
    assert statuses[1.0]["status"] == "completed" and statuses[1.0]["final"]["round"] == 3
    assert statuses[1e308]["status"] == "failed" and statuses[1e308]["error_type"] == "diverged"
    assert "sweep of 2 jobs: 1 completed, 1 failed, 0 with bad input" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_job_with_bad_input_is_reported_and_the_rest_run(tmp_path: Path) -> None:
    result, sweep = multirun(tmp_path, "n_agents=0,2", *TINY)
    assert result.returncode == 2
    assert "fedrl: error: n_agents=0 is not allowed: it must be an integer ≥ 1" in result.stderr
    assert sorted(s["status"] for s in job_summaries(sweep).values()) == ["completed", "failed"]


def test_sweep_preset_sets_the_swept_values(tmp_path: Path) -> None:
    result, sweep = multirun(tmp_path, "+sweep=local_steps", "seed=0", *TINY)
    assert result.returncode == 0, result.stderr
    steps = sorted(s["config"]["algo"]["local_steps"] for s in job_summaries(sweep).values())
    assert steps == [1, 2, 5, 10, 20]


def test_submitit_local_launcher(tmp_path: Path) -> None:
    result, sweep = multirun(tmp_path, "hydra/launcher=submitit_local", "n_agents=1,2", *TINY)
    assert result.returncode == 0, result.stderr
    summaries = job_summaries(sweep)
    assert sorted(s["config"]["n_agents"] for s in summaries.values()) == [1, 2]
    assert all(s["status"] == "completed" for s in summaries.values())
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
