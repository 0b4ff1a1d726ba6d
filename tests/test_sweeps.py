"""Sweeps through Hydra launchers: parallel jobs, presets, fault isolation, submitit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_PPO, fedrl
from hydra.types import HydraContext, RunMode

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
    result, sweep = multirun(tmp_path, "algo.lr=0.5,1e308", "algo.gradient=exact", "algo.rounds=3", "progress=false")
    assert result.returncode == 1
    statuses = {s["config"]["algo"]["lr"]: s for s in job_summaries(sweep).values()}
    assert statuses[0.5]["status"] == "completed" and statuses[0.5]["final"]["round"] == 3
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


def test_the_demo_tells_the_papers_story_on_its_own_seeds(tmp_path: Path) -> None:
    """`make demo`'s sweep over N, on the first 6 of its 8 seeds and its smallest and largest N (suite time), one job
    at a time: one objective for every N on a replicated family, and on its own output Fast-FedPG ends below FedAvg
    PG at the largest N with intervals apart, its speedup larger at the largest N."""
    result, sweep = multirun(tmp_path, "+sweep=demo_agents", "n_agents=2,8", "seed=range(6)", "hydra.launcher.n_jobs=1")
    assert result.returncode == 0, result.stderr
    summaries = list(job_summaries(sweep).values())
    assert {s["config"]["env"]["heterogeneity_design"] for s in summaries} == {"replicated"}
    first_rows = [pd.read_csv(Path(s["run_dir"]) / "metrics.csv").iloc[0] for s in summaries]
    assert np.ptp([row["gap"] for row in first_rows]) < 1e-12  # one objective for every N
    plotted = fedrl("plot", str(sweep), "--out", str(tmp_path / "plots"), "--window", "0.5", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    summary = pd.read_csv(tmp_path / "plots" / "summary.csv").set_index(["algo", "n_agents"])
    largest = summary.index.get_level_values("n_agents").max()
    fast, fedavg = summary.loc[("fastfedpg", largest)], summary.loc[("fedavg_pg", largest)]
    assert fast["final_ci_high"] < fedavg["final_ci_low"], (fast, fedavg)
    speedup = pd.read_csv(tmp_path / "plots" / "speedup.csv")
    ours = speedup[speedup.algo == "fastfedpg"].sort_values("n_agents")["speedup"].to_numpy()
    assert (np.diff(ours) > 0).all(), ours
    for name in ("speedup.png", "window.png", "convergence.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 10_000


def test_submitit_local_launcher(tmp_path: Path) -> None:
    result, sweep = multirun(tmp_path, "hydra/launcher=submitit_local", "n_agents=1,2", *TINY)
    assert result.returncode == 0, result.stderr
    summaries = job_summaries(sweep)
    assert sorted(s["config"]["n_agents"] for s in summaries.values()) == [1, 2]
    assert all(s["status"] == "completed" for s in summaries.values())
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit


# the Ray launcher's sweep runs in the test process of the other Ray tests (xdist_group "ray"), never beside them
LAUNCHERS = ["basic", "parallel", "submitit_local", pytest.param("ray", marks=pytest.mark.xdist_group("ray"))]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_launcher_isolates_a_diverging_job_and_bad_input(tmp_path: Path, name: str) -> None:
    result, sweep = multirun(
        tmp_path,
        f"hydra/launcher={name}",
        "algo.lr=0.5,1e308,-1",
        "algo.gradient=exact",
        "algo.rounds=3",
        "progress=false",
    )
    assert result.returncode == 2, result.stderr  # bad input outranks a failure in the exit code
    jobs = {s["config"]["algo"]["lr"]: s for s in job_summaries(sweep).values()}
    assert jobs[0.5]["status"] == "completed" and jobs[0.5]["final"]["round"] == 3
    assert jobs[1e308]["error_type"] == "diverged" and "round 1: drift is inf" in jobs[1e308]["error"]
    assert jobs[-1]["error_type"] == "bad_input"
    assert "sweep of 3 jobs: 1 completed, 1 failed, 1 with bad input" in result.stderr


def corrupt_trunk_source(tmp_path: Path) -> Path:
    """What a killed transfer source could leave: a completed fedsubspace_ac run whose model.pt is truncated."""
    source = tmp_path / "source"
    source.mkdir()
    config = {"algo": {"name": "fedsubspace_ac", "shared_layers": ["critic.0"]}, "env": {"name": "hopper"}}
    (source / "summary.json").write_text(json.dumps({"status": "completed", "config": config}))
    (source / "model.pt").write_bytes(b"\x80\x04truncated")
    return source


@pytest.mark.parametrize("name", ["basic", "parallel"])
def test_a_job_with_a_damaged_trunk_source_is_bad_input_and_the_others_complete(tmp_path: Path, name: str) -> None:
    source = corrupt_trunk_source(tmp_path)
    result, sweep = multirun(
        tmp_path,
        f"hydra/launcher={name}",
        *TINY_PPO,
        "algo=fedsubspace_ac",
        f"algo.trunk_from={source},null",
        "algo.rounds=1",
    )
    assert result.returncode == 2
    jobs = {s["config"]["algo"]["trunk_from"]: s for s in job_summaries(sweep).values()}
    assert jobs[None]["status"] == "completed"
    assert jobs[str(source)]["status"] == "failed" and jobs[str(source)]["error_type"] == "bad_input"
    assert "model.pt is not a model this fedrl can read" in jobs[str(source)]["error"]
    assert "sweep of 2 jobs: 1 completed, 0 failed, 1 with bad input" in result.stderr


def test_job_dirs_name_their_swept_values(tmp_path: Path) -> None:
    result, sweep = multirun(
        tmp_path, "algo=fastfedpg,fedavg_pg", "n_agents=1,2", "env.reward_heterogeneity=0.5", *TINY
    )
    assert result.returncode == 0, result.stderr
    names = sorted(path.name for path in sweep.iterdir() if path.is_dir())
    assert names == [
        "0_fastfedpg_tabular_n_agents=1",
        "1_fastfedpg_tabular_n_agents=2",
        "2_fedavg_pg_tabular_n_agents=1",
        "3_fedavg_pg_tabular_n_agents=2",
    ]  # a value that is not swept is not in the name
    for name, summary in job_summaries(sweep).items():
        assert name.endswith(f"n_agents={summary['config']['n_agents']}")
        assert f"[{name}] completed 2 rounds" in result.stdout  # each job's lines name it
    preset, preset_sweep = fedrl("run", "-m", "+sweep=seeds", *TINY, cwd=tmp_path), None
    assert preset.returncode == 0, preset.stderr
    preset_sweep = next((tmp_path / "outputs" / "sweeps").glob("*/*"))
    assert all("_seed=" in path.name for path in preset_sweep.iterdir() if path.is_dir())


def test_an_algorithm_sweep_takes_a_key_every_swept_algorithm_has(tmp_path: Path) -> None:
    tiny = [override for override in TINY_PPO if not override.startswith("algo.")]
    overrides = ("algo=single_ppo,fedavg_ppo", *tiny, "algo.rollout_steps=64", "algo.rounds=1", "algo.eval_every=0")
    result, sweep = multirun(tmp_path, *overrides, "algo.minibatches=2", "algo.update_epochs=1", "n_agents=1")
    assert result.returncode == 0, result.stderr
    assert {name: s["config"]["algo"]["rollout_steps"] for name, s in job_summaries(sweep).items()} == {
        "0_single_ppo_hopper": 64,
        "1_fedavg_ppo_hopper": 64,
    }
    refused, _ = multirun(tmp_path, "algo=fastfedpg,fedsubspace_ac", "algo.rank=2", *TINY)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("fedrl: error: algo.rank: unknown key")
    assert "`++algo.rank=...` for a key that only some of them have" in refused.stderr


def test_the_sweeper_composes_one_job_of_each_kind_before_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs that differ only in values are composed once before the sweep runs; each config group option (and each
    set of keys) once: so a bad option or key among the swept ones is still refused before any job starts."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.errors import ConfigCompositionException

    from fedrl_cli.app import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        loader = GlobalHydra.instance().config_loader()
        config = loader.load_configuration("config", [], run_mode=RunMode.MULTIRUN)
        composed: list[list[str]] = []
        compose = loader.load_sweep_config
        monkeypatch.setattr(
            loader,
            "load_sweep_config",
            lambda master_config, sweep_overrides: (
                composed.append(sweep_overrides) or compose(master_config, sweep_overrides)
            ),
        )
        context = HydraContext(config_loader=loader, callbacks=None)
        sweeper = Plugins.instance().instantiate_sweeper(config=config, hydra_context=context, task_function=print)
        assert type(sweeper).__name__ == "FedrlSweeper"  # the default of `fedrl run -m`
        seeds = [["algo=fedavg_pg", f"seed={seed}", f"algo.lr={lr}"] for seed in range(5) for lr in (0.1, 0.2)]
        sweeper.validate_batch_is_legal(seeds)
        assert composed == [seeds[0]]
        composed.clear()
        kinds = [["algo=fastfedpg", "seed=0"], ["algo=fedavg_pg", "seed=0"], ["algo=fastfedpg", "seed=1", "+x=1"]]
        sweeper.validate_batch_is_legal([*kinds, ["algo=fedavg_pg", "seed=1"]])
        assert composed == kinds
        with pytest.raises(ConfigCompositionException):
            sweeper.validate_batch_is_legal([["algo=fastfedpg", "seed=0"], ["algo=fastfedpg", "seed=1", "algo.nope=1"]])
        with pytest.raises(ConfigCompositionException):
            sweeper.validate_batch_is_legal([["algo=fastfedpg", "seed=0"], ["algo=nope", "seed=0"]])
    GlobalHydra.instance().clear()
