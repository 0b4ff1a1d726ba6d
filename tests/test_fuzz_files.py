"""Fuzzed run-dir files: hypothesis mutates one file of a real interrupted run (or of a PPO run's model.pt) — cut
short, a byte flipped, a JSON or YAML value of another type, emptied, a symbolic link, a FIFO, a folder — and
`fedrl resume`, `fedrl plot` and `fedrl evaluate` must each work, or exit 1 or 2 with one line: never a
traceback, a hang or a signal, and a command that refused (exit 2) changes no file.

Commands run in-process (Typer's runner), each under an alarm: a hang fails the example instead of the suite.
Examples are derandomised: the suite tests the same draws on every machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import TINY_PPO, fedrl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_resume import mark_killed, run_keeping_checkpoint
from typer.testing import CliRunner

from fedrl_cli import rundir
from fedrl_cli.cli import app

RUN_FILES = ["summary.json", "metrics.csv", "agent_metrics.csv", "checkpoint.pkl", ".hydra/config.yaml",
             ".hydra/overrides.yaml", ".hydra/hydra.yaml"]  # fmt: skip
VALUES = [None, 0, -1, 1.5, "x", "", [], {}, True, [1, "a"], {"a": None}]
SECONDS = 60  # an example that takes longer has hung


class Hung(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` on the way can swallow it."""


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def swap_value(tree: object, path: list[int], value: object) -> object:
    """``tree`` with one of its leaves or branches (chosen by ``path``, indices taken modulo the sizes) replaced by
    ``value``."""
    if not path or not isinstance(tree, dict | list) or not tree:
        return value
    keys = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
    key = keys[path[0] % len(keys)]
    tree[key] = swap_value(tree[key], path[1:], value)
    return tree


def mutate(path: Path, kind: str, where: float, value: object, branch: list[int], outside: Path) -> None:
    data = path.read_bytes()
    position = int(where * len(data))
    if kind == "cut":
        path.write_bytes(data[:position])
    elif kind == "flip":
        path.write_bytes(data[:position] + bytes([(data[position] if data else 0) ^ 0xFF]) + data[position + 1 :])
    elif kind == "swap":
        try:
            loaded = json.loads(data) if path.suffix == ".json" else yaml.safe_load(data)
        except (ValueError, yaml.YAMLError):
            loaded = None
        swapped = swap_value(loaded, branch, value)
        path.write_text(json.dumps(swapped) if path.suffix == ".json" else yaml.safe_dump(swapped))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "link":
        path.unlink()
        path.symlink_to(outside)
    elif kind == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif kind == "folder":
        path.unlink()
        path.mkdir()


def files(directory: Path) -> dict[str, bytes | str]:
    """Every entry under ``directory`` (regular files by content, others by kind), the lock file aside."""
    found: dict[str, bytes | str] = {}
    for entry in sorted(directory.rglob("*")):
        if entry.name == rundir.LOCK_FILE:
            continue
        name = str(entry.relative_to(directory))
        found[name] = entry.read_bytes() if entry.is_file() and not entry.is_symlink() else entry.stat().st_mode
    return found


def check(arguments: list[str], directory: Path) -> int:
    """Run `fedrl ARGUMENTS` in-process and check how it ended; returns the exit code."""
    before = files(directory)
    with alarm(SECONDS):
        result = CliRunner().invoke(app, arguments)
    shown = f"{arguments} → exit {result.exit_code}:\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output, shown
    assert result.exit_code in (0, 1, 2), shown
    if result.exit_code:
        errors = [line for line in result.stderr.splitlines() if line.startswith("fedrl: ")]
        assert len(errors) == 1, shown
    if result.exit_code == 2:
        assert files(directory) == before, f"a refused command changed files: {shown}"
    return result.exit_code


MUTATIONS = st.tuples(
    st.sampled_from(["cut", "flip", "swap", "empty", "link", "fifo", "folder"]),
    st.floats(0, 0.999),
    st.sampled_from(VALUES),
    st.lists(st.integers(0, 50), max_size=3),
)
SETTINGS = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tabular run killed after round 2 of 4, with its checkpoint."""
    base = tmp_path_factory.mktemp("interrupted")
    run_dir = run_keeping_checkpoint(base, "run", "n_agents=2", "algo.rounds=4", "checkpoint_every=2", "progress=false")
    mark_killed(run_dir)
    return run_dir


def test_fuzzed_run_dir_files_resume_or_plot_or_exit_in_one_line(
    tmp_path: Path, interrupted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not fedrl's\n")
    codes: dict[str, list[int]] = {"resume": [], "plot": []}

    @SETTINGS
    @given(st.sampled_from(RUN_FILES), MUTATIONS)
    def example(name: str, mutation: tuple) -> None:
        copy = tmp_path / f"run{sum(map(len, codes.values()))}"
        shutil.copytree(interrupted, copy, symlinks=True)
        mutate(copy / name, *mutation, outside)
        codes["plot"].append(check(["plot", str(copy), "--include-failed", "--out", str(tmp_path / "plots")], copy))
        codes["resume"].append(check(["resume", str(copy)], copy))
        assert outside.read_text() == "not fedrl's\n"

    example()
    assert {0, 2} <= set(codes["resume"]), codes  # some mutations are harmless, many refused


def test_fuzzed_model_files_evaluate_or_exit_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = [o for o in TINY_PPO if not o.startswith("algo.eval_every")]
    source = tmp_path / "source"
    trained = fedrl("run", "algo=fedavg_ppo", *tiny, "n_agents=2", "algo.rounds=1", f"hydra.run.dir={source}",
                    cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    outside = tmp_path / "outside.txt"
    outside.write_text("not fedrl's\n")
    codes: list[int] = []

    @SETTINGS
    @given(MUTATIONS)
    def example(mutation: tuple) -> None:
        copy = tmp_path / f"model{len(codes)}"
        copy.mkdir()
        shutil.copy(source / "model.pt", copy / "model.pt")
        mutate(copy / "model.pt", *mutation, outside)
        codes.append(check(["evaluate", str(copy), "--episodes", "1"], copy))

    example()
    assert 2 in codes, codes
