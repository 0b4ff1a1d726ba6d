"""The `fedrl` command end to end, in subprocesses with tiny budgets: run-dir contract, sweeps, errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import compose_config, fedrl, run_into

TINY = ("algo.rounds=3", "algo.batch_size=4", "algo.horizon=5", "n_agents=2", "progress=false")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_dir(tmp_path: Path, name: str = "run") -> str:
    return f"hydra.run.dir={tmp_path / name}"


def test_run_writes_the_run_dir_contract(tmp_path: Path) -> None:
    result = fedrl("run", "algo=fastfedpg", "env=tabular", *TINY, run_dir(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "run"
    assert yaml.safe_load((out / ".hydra" / "config.yaml").read_text())["algo"]["name"] == "fastfedpg"
    assert "n_agents=2" in yaml.safe_load((out / ".hydra" / "overrides.yaml").read_text())

    rows = read_csv(out / "metrics.csv")
    with open(out / "metrics.csv") as handle:
        header = handle.readline().strip().split(",")
    assert header[:8] == [
        "round",
        "samples",
        "samples_per_agent",
        "comm_floats",
        "wall_s",
        "objective",
        "gap",
        "grad_norm",
    ]
    assert [int(r["round"]) for r in rows] == [0, 1, 2, 3]
    samples = [int(r["samples"]) for r in rows]
    # ĝ(θ̄⁰) at round 0, then H local estimates and one at θ̄ per round: 2 agents · 4 trajectories · 5 steps each
    assert samples == [40 * (1 + 6 * t) for t in range(4)]
    assert [int(r["samples_per_agent"]) for r in rows] == [s // 2 for s in samples]
    assert [int(r["comm_floats"]) for r in rows] == [2 * 2 * 15 * (1 + 2 * t) for t in range(4)]
    assert all(float(r["gap"]) > 0 for r in rows)
    assert float(rows[-1]["objective"]) > float(rows[0]["objective"])

    agents = read_csv(out / "agent_metrics.csv")
    assert [(int(r["round"]), int(r["agent"])) for r in agents] == [(t, i) for t in range(4) for i in range(2)]
    assert {"objective", "grad_norm"} <= set(agents[0])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["final"]["round"] == 3
    assert summary["final"]["objective"] == pytest.approx(float(rows[-1]["objective"]))
    assert summary["config"]["algo"]["local_steps"] == 5
    assert {"python", "numpy", "hydra-core"} <= set(summary["versions"])
    assert summary["wall_s"] > 0


def test_heterogeneous_transitions_leave_gap_empty(tmp_path: Path) -> None:
    result = fedrl("run", "algo=local_pg", "env.transition_heterogeneity=0.5", *TINY, run_dir(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert all(r["gap"] == "" for r in rows)
    assert all(float(r["grad_norm"]) > 0 for r in rows)
    assert all(int(r["comm_floats"]) == 0 for r in rows)


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    tables = []
    for name in ("a", "b"):
        result = fedrl("run", "algo=fedavg_pg", "seed=7", *TINY, run_dir(tmp_path, name), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = read_csv(tmp_path / name / "metrics.csv")
        tables.append([{k: v for k, v in r.items() if k != "wall_s"} for r in rows])
    assert tables[0] == tables[1]
    other = fedrl("run", "algo=fedavg_pg", "seed=8", *TINY, run_dir(tmp_path, "c"), cwd=tmp_path)
    assert other.returncode == 0
    assert read_csv(tmp_path / "c" / "metrics.csv")[-1]["objective"] != tables[0][-1]["objective"]


BAD_INPUTS = {
    "algo=nope": "algo=nope",
    "env=nope": "env=nope",
    "n_agents=0": "n_agents=0",
    "n_agents=abc": "n_agents='abc'",
    "env.gamma=1.0": "env.gamma=1.0",
    "env.gamma=-0.1": "env.gamma=-0.1",
    "env.reward_heterogeneity=1.5": "env.reward_heterogeneity=1.5",
    "env.transition_heterogeneity=-1": "env.transition_heterogeneity=-1",
    "algo.local_steps=0": "algo.local_steps=0",
    "algo.rounds=-1": "algo.rounds=-1",
    "algo.lr=0": "algo.lr=0",
    "algo.lr=-0.5": "algo.lr=-0.5",
    "algo.batch_size=0": "algo.batch_size=0",
    "algo.horizon=0": "algo.horizon=0",
    "algo.gradient=approximate": "algo.gradient='approximate'",
    "n_agent=3": "n_agent",
    "+algo.momentum=0.9": "algo.momentum",
    "progress=maybe": "progress='maybe'",
    "algo.global_lr=1.5": "algo.global_lr=1.5",
    "algo.lr_schedule=cosine": "algo.lr_schedule='cosine'",
    "algo.lr_decay_rounds=0": "algo.lr_decay_rounds=0",
    "env.heterogeneity_design=paired": "env.heterogeneity_design='paired'",
    "env.value_rank=0": "env.value_rank=0",
    "env.value_rank=9": "env.value_rank=9",
}

# keys of one algorithm: (the algorithm, the override, what the error line names)
ALGORITHM_BAD_INPUTS = [
    ("fedsubspace_ac", "algo.basis_update=sideways", "algo.basis_update='sideways'"),
    ("fedsubspace_ac", "algo.reexpress_heads=maybe", "algo.reexpress_heads='maybe'"),
    ("fedsubspace_ac", "algo.lr_schedule=linear", "algo.lr_schedule='linear'"),
    ("local_pg", "algo.lr_decay_rounds=-3", "algo.lr_decay_rounds=-3"),
]


@pytest.mark.parametrize(("algo", "override", "named"), ALGORITHM_BAD_INPUTS)
def test_bad_algorithm_key_exits_2_with_one_line(tmp_path: Path, algo: str, override: str, named: str) -> None:
    result = fedrl("run", f"algo={algo}", override, run_dir(tmp_path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


@pytest.mark.parametrize("override", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, override: str) -> None:
    result = fedrl("run", override, run_dir(tmp_path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fedrl: error: ")
    assert BAD_INPUTS[override] in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_diverging_run_fails_and_keeps_its_rows(tmp_path: Path) -> None:
    result = fedrl("run", "algo.gradient=exact", "algo.lr=1e308", *TINY, run_dir(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "round 1: drift is inf" in summary["error"]
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [r["round"] for r in rows] == ["0", "1"]
    assert rows[1]["drift"] == "inf"


def test_list_help_and_cfg(tmp_path: Path) -> None:
    listing = fedrl("list", cwd=tmp_path)
    assert listing.returncode == 0
    for name in (
        "tabular",
        "hopper",
        "fastfedpg",
        "fedavg_pg",
        "local_pg",
        "single_ppo",
        "fedavg_ppo",
        "fedsubspace_ac",
        "agents",
    ):
        line = next(line for line in listing.stdout.splitlines() if line.strip().startswith(name))
        assert len(line.split()) > 2  # a description follows the name
    helped = fedrl("run", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert "algo: fastfedpg, fedavg_pg, fedavg_ppo, fedsubspace_ac, local_pg, single_ppo" in helped.stdout
    assert "env: hopper, mujoco, tabular" in helped.stdout
    assert "local_steps" in helped.stdout
    assert "130 interrupted by Ctrl-C or SIGTERM" in helped.stdout
    hint = 'eval "$(fedrl -sc install=bash)"'
    assert hint in helped.stdout
    script = fedrl("-sc", "install=bash", cwd=tmp_path)  # the hint works
    assert script.returncode == 0 and "complete -o nospace -o default -F hydra_bash_completion fedrl" in script.stdout
    for line, offered in (
        ("fedrl run algo=fe", "algo=fedavg_pg"),
        ("fedrl run env.ga", "env.gamma="),
        ("fedrl re", "resume"),
    ):
        completed = subprocess.run(
            [sys.executable, "-m", "fedrl_cli", "-sc", "query=bash"],
            env={**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))},
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert offered in completed.stdout.split(), (line, completed.stdout, completed.stderr)
    for command, shown in (("plot", "Usage: fedrl plot [OPTIONS] {PATH}..."), ("evaluate", "--episodes N")):
        text = fedrl(command, "--help", cwd=tmp_path).stdout
        assert shown in text, text  # Typer marks a required argument with braces
    assert "<bool>" not in fedrl("--help", cwd=tmp_path).stdout
    shown = fedrl("run", "--cfg", "job", "algo=local_pg", "n_agents=3", cwd=tmp_path)
    assert shown.returncode == 0
    config = yaml.safe_load(shown.stdout)
    assert config["algo"]["name"] == "local_pg" and config["n_agents"] == 3
    assert not (tmp_path / "outputs").exists()  # --cfg runs nothing


def test_agent_metrics_every_thins_or_turns_off_the_per_agent_rows(tmp_path: Path) -> None:
    for every, rounds in ((4, [0, 4, 8, 10]), (0, [])):
        result, run_dir = run_into(
            tmp_path, f"every{every}", "algo.rounds=10", "n_agents=2", f"agent_metrics_every={every}"
        )
        assert result.returncode == 0, result.stderr
        agent_rows = pd.read_csv(run_dir / "agent_metrics.csv")
        assert sorted(set(agent_rows["round"])) == rounds and len(agent_rows) == 2 * len(rounds)
        assert len(pd.read_csv(run_dir / "metrics.csv")) == 11
    from fedrl_cli.config import warnings

    big = compose_config("n_agents=100000", "algo.rounds=200", "algo.gradient=exact")
    assert any("agent_metrics.csv would take about 2.0 GB" in warning for warning in warnings(big))
    assert not any("agent_metrics.csv" in warning for warning in warnings({**big, "agent_metrics_every": 10}))


def test_a_run_dir_that_cannot_be_a_folder_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    for target in ("afile", "afile/run"):
        result = fedrl("run", "algo.rounds=1", f"hydra.run.dir={tmp_path / target}", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "must be a folder fedrl can create and write" in lines[0], result.stderr
        assert str(tmp_path / target) in lines[0]
    assert (tmp_path / "afile").read_text() == "not a folder"
