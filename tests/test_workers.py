"""Hopper runs sharded over Ray workers: the same numbers as one process, checkpoints that move between backends,
a killed worker reported in one line and resumed, and refused placements.

The runs join one Ray instance started here for the module (``ray_address=HOST:PORT``, the cluster path), except the
killed-worker run, which starts its own (``ray_address=null``)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_PPO, fedrl, run_into
from test_resume import wait_for_rows, without_wall_time

from fedrl_cli.workers import agent_slices

pytestmark = pytest.mark.xdist_group("ray")  # one Ray instance for the module: its tests in one test process

BASE4 = (*TINY_PPO, "n_agents=4", "env.action_map=signed_permutation", "checkpoint_every=1")
N4 = (*BASE4, "algo.rounds=3")


@pytest.fixture(scope="module")
def ray_address():
    import ray

    from fedrl_cli.workers import start_ray

    assert start_ray(None, 4)  # as a run starts its own instance (workers at normal priority)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def same_runs(first: Path, second: Path) -> None:
    """Equal CSVs (apart from timings) and an equal saved model (parameters, statistics, maps)."""
    for name in ("metrics.csv", "agent_metrics.csv"):
        assert without_wall_time(first / name) == without_wall_time(second / name), name
    a, b = (torch.load(run / "model.pt", weights_only=False) for run in (first, second))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for key, value in a["normalisation"].items():
        np.testing.assert_array_equal(value, b["normalisation"][key])
    np.testing.assert_array_equal(a["maps"], b["maps"])


def test_agent_slices_are_contiguous_and_as_even_as_possible() -> None:
    assert agent_slices(4, 3) == [range(0, 2), range(2, 3), range(3, 4)]
    assert agent_slices(8, 2) == [range(0, 4), range(4, 8)]
    assert agent_slices(5, 5) == [range(i, i + 1) for i in range(5)]
    for n, workers in [(7, 3), (16, 5), (3, 1)]:
        slices = agent_slices(n, workers)
        assert [a for s in slices for a in s] == list(range(n))
        assert max(map(len, slices)) - min(map(len, slices)) <= 1


@pytest.mark.parametrize(
    ("algo", "splits", "task"),
    [
        ("fedavg_ppo", (3,), ()),
        ("fedsubspace_ac", (2,), ()),
        ("fedsubspace_ac", (2,), ("env=mujoco", "env.id=HalfCheetah-v5")),
    ],
)
def test_sharded_runs_equal_the_local_run(
    tmp_path: Path, ray_address: str, algo: str, splits: tuple[int, ...], task: tuple[str, ...]
) -> None:
    """Per-agent generators, seeds and arithmetic: splitting 4 agents over 2 or 3 workers changes no number (on
    Hopper, and on HalfCheetah with its 6 actuators)."""
    local, local_dir = run_into(tmp_path, "local", f"algo={algo}", *N4, *task)
    assert local.returncode == 0, local.stderr
    for workers in splits:
        sharded, sharded_dir = run_into(
            tmp_path, f"ray{workers}", f"algo={algo}", *N4, *task, "backend=ray", f"workers={workers}",
            f"ray_address={ray_address}",
        )  # fmt: skip
        assert sharded.returncode == 0, sharded.stderr
        assert len(re.findall(r"Ray worker \d: agents? ", sharded.stdout)) == workers
        same_runs(local_dir, sharded_dir)
    communicated = [int(row.split(",")[3]) for row in (local_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert communicated[-1] > 0
    # the agents differ from each other, so equal files are not a coincidence of identical agents
    returns = np.genfromtxt(local_dir / "agent_metrics.csv", delimiter=",", skip_header=1)[-4:, 4]
    assert len(set(returns)) > 1


def test_a_ray_run_interrupted_resumes_on_the_local_backend(tmp_path: Path, ray_address: str) -> None:
    """A checkpoint holds every agent's state whatever the split: a run on 3 workers stopped by SIGINT continues
    with `fedrl resume RUN backend=local` and ends as the uninterrupted local run."""
    overrides = ["algo=fedavg_ppo", *BASE4, "algo.rounds=20"]
    reference, reference_dir = run_into(tmp_path, "reference", *overrides)
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "sharded"
    command = [sys.executable, "-m", "fedrl_cli", "run", *overrides, "backend=ray", "workers=3"]
    command.append(f"ray_address={ray_address}")
    process = subprocess.Popen(
        [*command, f"hydra.run.dir={run_dir}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_rows(process, run_dir / "metrics.csv", 3)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    resumed = fedrl("resume", str(run_dir), "backend=local", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["backend"] == "local"
    assert summary["resumed"][0]["from_round"] < 20
    same_runs(reference_dir, run_dir)


def test_a_killed_worker_fails_the_run_in_one_line_and_resume_finishes_it(tmp_path: Path) -> None:
    """SIGKILL one worker's process: the run fails naming the worker and its agents, keeps its last checkpoint,
    and `fedrl resume` (on Ray again, with a local instance of its own) ends it as an uninterrupted run."""
    overrides = ["algo=fedavg_ppo", *TINY_PPO, "n_agents=2", "algo.rounds=30", "checkpoint_every=2"]
    reference, reference_dir = run_into(tmp_path, "reference", *overrides)
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "sharded"
    command = [sys.executable, "-m", "fedrl_cli", "run", *overrides, "backend=ray", "workers=2"]
    process = subprocess.Popen(
        [*command, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    pid = None
    for line in process.stdout:
        found = re.search(r"Ray worker 1: agent 1 \(pid (\d+)", line)
        if found:
            pid = int(found.group(1))
            break
    assert pid is not None
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.pkl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    failure = [line for line in stderr.splitlines() if line.startswith("fedrl:")]
    assert len(failure) == 1 and "Ray worker 1 (agent 1, pid" in failure[0] and "died" in failure[0], stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "Ray worker 1 (agent 1" in summary["error"]
    rows_at_failure = len((run_dir / "metrics.csv").read_text().splitlines()) - 1
    assert rows_at_failure < 31
    resumed = fedrl("resume", str(run_dir), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Ray worker 1: agent 1" in resumed.stdout  # on its own backend again
    for name in ("metrics.csv", "agent_metrics.csv"):
        assert without_wall_time(run_dir / name) == without_wall_time(reference_dir / name), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("backend=ray",), "backend=ray is not allowed with env=tabular"),
        (
            ("algo=fedavg_ppo", "env=hopper", "backend=ray", "n_agents=2", "workers=3"),
            "workers=3 is not allowed: it must be at most",
        ),
        (("backend=spark",), "backend='spark' is not allowed: it must be one of local, ray"),
        (
            ("algo=fedavg_ppo", "env=hopper", "backend=ray", "workers=0"),
            "workers=0 is not allowed: it must be an integer ≥ 1",
        ),
        (("algo=fedavg_ppo", "env=hopper", "ray_address=nowhere"), "ray_address='nowhere' is not allowed"),
    ],
)
def test_bad_placements_exit_2_in_one_line(tmp_path: Path, overrides: tuple[str, ...], message: str) -> None:
    result = fedrl("run", *overrides, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_placement_keys_ignored_by_the_local_backend_are_warned_about(tmp_path: Path) -> None:
    result, _ = run_into(tmp_path, "run", "algo.rounds=1", "workers=3", "progress=false")
    assert result.returncode == 0, result.stderr
    assert "workers=3 and ray_address=null are ignored with backend=local" in result.stdout
