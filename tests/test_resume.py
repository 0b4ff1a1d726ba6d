"""Checkpoints and `fedrl resume`: runs killed (SIGKILL) or interrupted (SIGINT) and resumed end exactly as
uninterrupted ones; sweeps resume every unfinished job; paths that cannot be resumed are refused in one line."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import TINY_PPO, fedrl, run_into

from fedrl_cli.checkpoint import FORMAT
from fedrl_cli.metrics import atomic_file

# sampled gradients, ≈10 ms a round here: long enough to kill mid-way, short enough for a test
SAMPLED = (
    "algo.gradient=sampled",
    "algo.batch_size=200",
    "algo.horizon=30",
    "algo.local_steps=5",
    "algo.rounds=300",
    "checkpoint_every=10",
    "progress=false",
)
WALL_TIME = {"wall_s", "sps"}  # the only columns allowed to differ between a resumed run and an uninterrupted one


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def without_wall_time(path: Path) -> list[dict[str, str]]:
    return [{key: value for key, value in row.items() if key not in WALL_TIME} for row in rows(path)]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def checkpoint_header(run_dir: Path) -> dict:
    with (run_dir / "checkpoint.pkl").open("rb") as handle:
        return pickle.load(handle)


def start(tmp_path: Path, name: str, *overrides: str) -> tuple[subprocess.Popen, Path]:
    run_dir = tmp_path / name
    command = [sys.executable, "-m", "fedrl_cli", "run", *overrides, f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, run_dir


def wait_for_rows(process: subprocess.Popen, path: Path, count: int, timeout: float = 60) -> None:
    """Wait until ``path`` has ``count`` complete data rows (the run must still be going)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped: make its rounds longer"
        if path.is_file() and path.read_text().count("\n") > count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {count} rows in {timeout}s")


def assert_resumes_to(reference: Path, stopped: Path, tmp_path: Path) -> None:
    """Resume ``stopped``; its CSVs must equal ``reference``'s apart from wall time, and the rows it had up to
    its checkpoint must be kept byte for byte."""
    header = checkpoint_header(stopped)
    sizes = header["csv_bytes"]
    kept = {name: (stopped / name).read_bytes()[:size] for name, size in sizes.items()}
    result = fedrl("resume", str(stopped), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert without_wall_time(stopped / "metrics.csv") == without_wall_time(reference / "metrics.csv")
    assert (stopped / "agent_metrics.csv").read_bytes() == (reference / "agent_metrics.csv").read_bytes()
    for name, prefix in kept.items():
        assert (stopped / name).read_bytes().startswith(prefix)  # no row before the checkpoint lost or rewritten
    wall = [float(row["wall_s"]) for row in rows(stopped / "metrics.csv")]
    assert wall == sorted(wall)  # wall time goes on from the checkpoint's
    done = summary(stopped)
    assert done["status"] == "completed" and done["final"]["round"] == 300
    assert done["resumed"][-1]["from_round"] == header["round"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted sampled Fast-FedPG run."""
    tmp_path = tmp_path_factory.mktemp("reference")
    result, run_dir = run_into(tmp_path, "run", *SAMPLED)
    assert result.returncode == 0, result.stderr
    assert not (run_dir / "checkpoint.pkl").exists()  # a completed run leaves none behind
    return run_dir


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path, reference: Path) -> None:
    process, run_dir = start(tmp_path, "killed", *SAMPLED)
    wait_for_rows(process, run_dir / "metrics.csv", 25)
    process.kill()
    process.wait()
    assert summary(run_dir)["status"] == "running"  # a kill leaves no chance to say anything
    header = checkpoint_header(run_dir)
    written = len(rows(run_dir / "metrics.csv")) - 1
    assert header["round"] % 10 == 0 and 20 <= header["round"] <= written
    assert_resumes_to(reference, run_dir, tmp_path)


def test_sigint_stops_after_the_round_checkpoints_and_resumes(tmp_path: Path, reference: Path) -> None:
    process, run_dir = start(tmp_path, "interrupted", *SAMPLED)
    wait_for_rows(process, run_dir / "metrics.csv", 15)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert f"continue with `fedrl resume {run_dir}`" in stderr
    stopped = summary(run_dir)
    assert stopped["status"] == "interrupted" and stopped["error_type"] == "interrupted"
    last_round = int(rows(run_dir / "metrics.csv")[-1]["round"])
    assert checkpoint_header(run_dir)["round"] == last_round < 300  # checkpointed at the round it stopped after
    assert_resumes_to(reference, run_dir, tmp_path)


def test_resume_of_a_run_killed_before_any_checkpoint_starts_it_over(tmp_path: Path, reference: Path) -> None:
    process, run_dir = start(tmp_path, "early", *SAMPLED[:-2], "checkpoint_every=0", "progress=false")
    wait_for_rows(process, run_dir / "metrics.csv", 3)
    process.kill()
    process.wait()
    assert not (run_dir / "checkpoint.pkl").exists()
    result = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming from the start (no checkpoint)" in result.stdout
    assert without_wall_time(run_dir / "metrics.csv") == without_wall_time(reference / "metrics.csv")


# `fedrl` whose completed runs keep their last checkpoint (a completed run removes it)
KEEPING_CHECKPOINTS = (
    "import sys; from fedrl_cli import checkpoint, cli; checkpoint.discard = lambda run_dir: None; "
    "sys.argv[0] = 'fedrl'; cli.main()"
)


def run_keeping_checkpoint(tmp_path: Path, name: str, *overrides: str) -> Path:
    """A completed run (in ``tmp_path/name``) that still holds its last checkpoint, for :func:`mark_killed`."""
    run_dir = tmp_path / name
    command = [sys.executable, "-c", KEEPING_CHECKPOINTS, "run", *overrides, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "checkpoint.pkl").is_file()
    return run_dir


def mark_killed(run_dir: Path) -> None:
    """Make a run that completed keeping its checkpoint look killed after its last row: the state a SIGKILL
    leaves before the summary says completed."""
    data = summary(run_dir)
    data.update(status="running", pid=None)
    (run_dir / "summary.json").write_text(json.dumps(data))


@pytest.mark.parametrize("algo", ["fedavg_pg", "local_pg", "fedsubspace_ac"])
def test_every_tabular_algorithm_resumes_exactly(tmp_path: Path, algo: str) -> None:
    overrides = (f"algo={algo}", "n_agents=3", "algo.rounds=7", "checkpoint_every=3", "progress=false")
    if algo != "fedsubspace_ac":
        overrides += ("algo.gradient=sampled", "algo.batch_size=8", "algo.horizon=6")
    run_dir = run_keeping_checkpoint(tmp_path, "run", *overrides)
    reference = tmp_path / "reference"
    shutil.copytree(run_dir, reference)
    mark_killed(run_dir)
    assert checkpoint_header(run_dir)["round"] == 6  # rounds 3 and 6; never at the last round
    result = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert without_wall_time(run_dir / "metrics.csv") == without_wall_time(reference / "metrics.csv")
    assert (run_dir / "agent_metrics.csv").read_bytes() == (reference / "agent_metrics.csv").read_bytes()


@pytest.mark.parametrize("vector", ["batched", "sync", "async"])
def test_hopper_resume_is_bit_identical_mid_episode(tmp_path: Path, vector: str) -> None:
    """Parameters, Adam moments, both generators, normalisation statistics and every MuJoCo copy mid-episode
    are restored, so the resumed rounds (4 and 5, with an evaluation at 4) equal the uninterrupted ones."""
    overrides = (*TINY_PPO, "algo=fedavg_ppo", "n_agents=2", f"env.vector={vector}", "algo.eval_every=2")
    run_dir = run_keeping_checkpoint(tmp_path, "run", *overrides, "algo.rounds=5", "checkpoint_every=3")
    reference = tmp_path / "reference"
    shutil.copytree(run_dir, reference)
    mark_killed(run_dir)
    result = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming from round 3" in result.stdout
    resumed, expected = without_wall_time(run_dir / "metrics.csv"), without_wall_time(reference / "metrics.csv")
    assert [row["round"] for row in resumed] == [str(r) for r in range(6)]
    assert resumed == expected
    assert (run_dir / "agent_metrics.csv").read_bytes() == (reference / "agent_metrics.csv").read_bytes()
    import torch

    saved = [torch.load(path / "model.pt", weights_only=False)["state_dict"] for path in (run_dir, reference)]
    assert all(torch.equal(saved[0][key], saved[1][key]) for key in saved[0])


def test_a_sweep_resumes_its_unfinished_jobs_and_runs_those_never_started(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    overrides = ("n_agents=1,2,3", "algo.rounds=7", "checkpoint_every=3", "algo.batch_size=8", "progress=false")
    command = [sys.executable, "-c", KEEPING_CHECKPOINTS, "run", "-m", *overrides, "hydra/launcher=basic"]
    result = subprocess.run([*command, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir() and not path.name.startswith("."))
    reference = tmp_path / "reference"
    shutil.copytree(sweep, reference)
    completed_bytes = (jobs[0] / "metrics.csv").read_bytes(), (jobs[0] / "summary.json").read_bytes()
    mark_killed(jobs[1])  # killed after its checkpoint at round 6
    shutil.rmtree(jobs[2])  # never started

    result = fedrl("resume", str(sweep), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "sweep of 3 jobs: 3 completed" in result.stderr
    assert ((jobs[0] / "metrics.csv").read_bytes(), (jobs[0] / "summary.json").read_bytes()) == completed_bytes
    for job in jobs:
        assert without_wall_time(job / "metrics.csv") == without_wall_time(reference / job.name / "metrics.csv")
    assert summary(jobs[1])["resumed"][-1]["from_round"] == 6
    assert "resumed" not in summary(jobs[2])  # it started from scratch, as a new run

    again = fedrl("resume", str(sweep), cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip() == f"fedrl: error: all 3 jobs of the sweep {sweep} completed: nothing to resume"


def test_resume_refuses_what_it_cannot_resume(tmp_path: Path) -> None:
    result, done = run_into(tmp_path, "done", "algo.rounds=4", "checkpoint_every=2", "progress=false")
    assert result.returncode == 0, result.stderr
    assert run_into(tmp_path, "refused", "n_agents=0")[0].returncode == 2  # a run with bad input writes nothing
    assert not (tmp_path / "refused").exists()
    sweep = fedrl("run", "-m", "n_agents=0", "algo.rounds=1", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert sweep.returncode == 2  # a sweep's job with bad input records it
    (bad,) = (tmp_path / "sweep").glob("0_*")
    old = tmp_path / "old"
    shutil.copytree(done, old)
    mark_killed(old)
    with (old / "checkpoint.pkl").open("wb") as handle:  # a checkpoint from a future, incompatible fedrl
        pickle.dump({"round": 2, "elapsed_s": 0.1, "csv_bytes": {}, "format": 99, "fedrl": "9.0.0"}, handle)
    (tmp_path / "empty").mkdir()
    expected = {
        tmp_path / "missing": "no such directory",
        tmp_path / "empty": "is not a run dir or a sweep dir: it holds neither summary.json nor multirun.yaml",
        done: "completed 4 rounds: nothing to resume",
        bad: "failed on bad input (n_agents=0 is not allowed: it must be an integer ≥ 1): fix it and start a new run",
        old: f"in checkpoint format 99; this fedrl ({version('fedrl')}) reads format {FORMAT}",
    }
    for path, message in expected.items():
        result = fedrl("resume", str(path), cwd=tmp_path)
        assert result.returncode == 2, (path, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("fedrl: error: "), result.stderr
        assert message in result.stderr, result.stderr
    result = fedrl("resume", str(old), "algo.lr=2", cwd=tmp_path)
    assert result.returncode == 2
    assert "algo.lr=2: a resumed run keeps its own config" in result.stderr


def test_resume_mistakes_are_refused_in_one_line_and_nothing_restarts(tmp_path: Path) -> None:
    """A corrupt summary.json (never a silent restart from round 0), CSVs cut below the checkpoint, `-m` on a run
    dir and a new run or sweep dir: refused with exit 2, one line saying how to recover, the run left as it is."""
    done = run_keeping_checkpoint(tmp_path, "done", "algo.rounds=6", "checkpoint_every=2", "progress=false")
    corrupt, cut, killed = tmp_path / "corrupt", tmp_path / "cut", tmp_path / "killed"
    for run_dir in (corrupt, cut, killed):
        shutil.copytree(done, run_dir)
        mark_killed(run_dir)
    (corrupt / "summary.json").write_text('{"status": "runn')
    (corrupt / "checkpoint.pkl").unlink()  # with one, it would resume from it (tests/test_integrity.py)
    (cut / "metrics.csv").write_text((cut / "metrics.csv").read_text()[:60])
    cases = {
        (str(corrupt),): "summary.json cannot be read (not a JSON object) and the run has rows but no checkpoint",
        (str(cut),): "metrics.csv holds 60 bytes, fewer than the",
        (str(killed), "-m"): "-m: fedrl resume needs no -m",
        (str(killed), f"hydra.run.dir={tmp_path / 'elsewhere'}"): "a run resumes in its own dir",
    }
    for arguments, message in cases.items():
        before = {path.name: path.read_bytes() for path in Path(arguments[0]).iterdir() if path.is_file()}
        result = fedrl("resume", *arguments, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert {path.name: path.read_bytes() for path in Path(arguments[0]).iterdir() if path.is_file()} == before
    assert not (tmp_path / "elsewhere").exists()


class _Payload:
    """What a hostile checkpoint holds: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_or_is_cut_short_is_refused_in_one_line(tmp_path: Path) -> None:
    """Loading a checkpoint never runs code from the file: a `__reduce__` payload is refused before it runs;
    a truncated checkpoint is refused too (exit 2, one line each), and the run is left as it was."""
    done = run_keeping_checkpoint(tmp_path, "done", "algo.rounds=6", "checkpoint_every=2", "progress=false")
    hostile, truncated = tmp_path / "hostile", tmp_path / "truncated"
    for run_dir in (hostile, truncated):
        shutil.copytree(done, run_dir)
        mark_killed(run_dir)
    marker = tmp_path / "pwned"
    header = pickle.dumps({"round": 4, "elapsed_s": 0.1, "csv_bytes": {}, "format": FORMAT, "fedrl": "0.1.0"})
    (hostile / "checkpoint.pkl").write_bytes(header + pickle.dumps({"algorithm": _Payload(marker)}))
    data = (truncated / "checkpoint.pkl").read_bytes()
    (truncated / "checkpoint.pkl").write_bytes(data[: len(data) // 2])
    for run_dir, message in ((hostile, "it names posix.system"), (truncated, "it is cut short or damaged")):
        result = fedrl("resume", str(run_dir), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "cannot be loaded: " + message in result.stderr, result.stderr
        assert summary(run_dir)["status"] == "running"  # untouched: as mark_killed left it
    assert not marker.exists()


def test_resume_refuses_a_run_that_is_still_being_written_until_its_process_is_gone(tmp_path: Path) -> None:
    """The owner is the process holding the run dir's lock: two resumes at once are refused, and a lock left by a
    killed process does not block."""
    long = [override for override in SAMPLED if not override.startswith("algo.rounds")] + ["algo.rounds=100000"]
    process, run_dir = start(tmp_path, "run", *long)
    wait_for_rows(process, run_dir / "metrics.csv", 12)
    refused = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"fedrl: error: {run_dir} is still being written by fedrl (pid {process.pid} on {socket.gethostname()}): "
        "let it end or stop it first\n"
    )
    process.kill()
    process.wait()
    command = [sys.executable, "-m", "fedrl_cli", "resume", str(run_dir)]
    resumed = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while summary(run_dir).get("pid") != resumed.pid and time.monotonic() < deadline:  # it holds the lock
            time.sleep(0.05)
        second = fedrl("resume", str(run_dir), cwd=tmp_path)
        assert second.returncode == 2 and f"(pid {resumed.pid} on " in second.stderr, second.stderr
    finally:
        resumed.kill()
        resumed.wait()
    rounds = [row["round"] for row in rows(run_dir / "metrics.csv")]
    assert rounds == [str(r) for r in range(len(rounds))]  # one writer: no round twice


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    path.write_bytes(b"the last good checkpoint")
    with pytest.raises(KeyboardInterrupt), atomic_file(path, binary=True) as handle:
        handle.write(b"half a new one")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"the last good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pkl"]  # no temp file left behind
