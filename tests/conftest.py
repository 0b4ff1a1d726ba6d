"""Shared test helpers: small tabular families and a subprocess runner for the `fedrl` CLI."""

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


@pytest.fixture
def small_family():
    """Five states, three actions, four agents, heterogeneous rewards and transitions."""
    return make_family(4, 5, 3, 0.9, 0.8, 0.4, mdp_seed=3)
