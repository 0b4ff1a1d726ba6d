"""Shared test helpers: small tabular families, a subprocess runner for the `fedrl` CLI and a small disk (tmpfs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedrl_cli.envs.tabular import make_family


def fedrl(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed `fedrl` command in ``cwd`` (no terminal, so no progress bar)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "fedrl_cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def run_into(tmp_path: Path, name: str, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`fedrl run OVERRIDES` with its run dir at ``tmp_path/name``."""
    run_dir = tmp_path / name
    return fedrl("run", *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path), run_dir


@pytest.fixture
def small_family():
    """Five states, three actions, four agents, heterogeneous rewards and transitions."""
    return make_family(4, 5, 3, 0.9, 0.8, 0.4, mdp_seed=3)


# a PPO run small enough for a test: one 64-step iteration per round, evaluated every round
TINY_PPO = (
    "env=hopper",
    "algo.local_steps=1",
    "algo.rollout_steps=64",
    "algo.minibatches=4",
    "algo.update_epochs=2",
    "algo.eval_every=1",
    "algo.eval_episodes=1",
    "progress=false",
)


def tiny_ppo(n_agents: int, seed: int = 0):
    """PPO learners for ``n_agents`` Hopper agents with signed-permutation maps and 64-step rollouts."""
    from fedrl_cli.algos.ppo import PPOAgents, PPOSettings
    from fedrl_cli.envs.mujoco import FederatedMujoco, action_maps

    envs = FederatedMujoco(action_maps("signed_permutation", n_agents, 3, 0, True), 1, 0.99, seed=seed)
    return PPOAgents(envs, PPOSettings(rollout_steps=64, update_epochs=2, minibatches=4), 4, seed=seed)


def compose_config(*overrides: str) -> dict:
    """The config `fedrl run OVERRIDES` would run, as a plain dict."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fedrl_cli.app import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


def tiny_agents(n_agents: int, algo: str = "fedavg_ppo", *overrides: str):
    """:class:`ShardedAgents` (local backend) for ``n_agents`` Hopper agents with signed-permutation maps and
    64-step rollouts."""
    from fedrl_cli.workers import ShardedAgents

    tiny = [o for o in TINY_PPO if not o.startswith("progress")]
    cfg = compose_config(f"algo={algo}", *tiny, f"n_agents={n_agents}", "env.action_map=signed_permutation", *overrides)
    return ShardedAgents(cfg)


def mount_tmpfs(path: Path, size: str, *options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "96k")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


# the slowest tests (a minute or more on 2 cores), run first: pytest-xdist then hands them to different workers at
# the start, instead of leaving one to finish alone at the end
SLOWEST = (  # longest first; the first two start on different workers
    "test_the_demo_tells_the_papers_story_on_its_own_seeds",
    "test_reproduce_fastfedpg_on_a_tiny_budget_writes_its_report_and_data",
    "test_reproduce_subspace_tabular_part_on_a_tiny_budget",
    "test_a_killed_worker_fails_the_run_in_one_line_and_resume_finishes_it",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(SLOWEST)}
    items.sort(key=lambda item: rank.get(item.originalname, len(SLOWEST)))  # stable: the rest keep their order
