"""Data integrity at the edges: one writer per run dir (an OS lock held by the writing process), unique default
dirs, no new run over another run's results, and writes the file system refuses (full disk, read-only, immutable)
ending in one line with nothing lost."""

from __future__ import annotations

import csv
import errno
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import fedrl, mount_tmpfs, run_into
from test_resume import SAMPLED, rows, start, summary, wait_for_rows, without_wall_time
from test_tensorboard import events, scalars
from typer.testing import CliRunner

from fedrl_cli.cli import app
from fedrl_cli.metrics import CsvLog
from fedrl_cli.runs import find_run_dirs

TINY = ("algo.rounds=3", "progress=false")
# `fedrl` with Hydra's clock stopped: every run starts "in the same second"
SAME_SECOND = (
    "import sys, datetime, hydra.core.utils as utils; "
    "utils.datetime = type('Stopped', (), {'now': staticmethod(lambda: datetime.datetime(2026, 1, 1, 10))}); "
    "from fedrl_cli import cli; sys.argv[0] = 'fedrl'; cli.main()"
)


def one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("fedrl: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def results(run_dir: Path) -> dict[str, bytes]:
    """The run's files (its lock file aside: a refused process holds it a moment)."""
    return {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file() and path.name != ".fedrl.lock"}


def test_runs_started_in_the_same_second_get_dirs_of_their_own(tmp_path: Path) -> None:
    command = [sys.executable, "-c", SAME_SECOND, "run", *TINY]
    processes = [
        subprocess.Popen([*command, f"seed={seed}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for seed in (1, 2)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    run_dirs = sorted((tmp_path / "outputs" / "runs").glob("*/*"))
    assert [path.name for path in run_dirs] == ["10-00-00_fastfedpg_tabular", "10-00-00_fastfedpg_tabular_2"]
    seeds = set()
    for run_dir in run_dirs:  # Hydra's record of the command and the results belong to the same run
        seed = summary(run_dir)["config"]["seed"]
        assert f"seed={seed}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
        assert summary(run_dir)["status"] == "completed" and len(rows(run_dir / "metrics.csv")) == 4
        seeds.add(seed)
    assert seeds == {1, 2}


def test_a_second_writer_is_refused_at_once_and_the_first_run_is_untouched(tmp_path: Path) -> None:
    long = [override for override in SAMPLED if not override.startswith("algo.rounds")] + ["algo.rounds=100000"]
    process, run_dir = start(tmp_path, "shared", *long)
    try:
        wait_for_rows(process, run_dir / "metrics.csv", 5)
        overrides = (run_dir / ".hydra" / "overrides.yaml").read_bytes()
        for command in (("run", *TINY, "seed=7", f"hydra.run.dir={run_dir}"), ("resume", str(run_dir))):
            line = one_error_line(fedrl(*command, cwd=tmp_path), 2)
            assert f"(pid {process.pid} on {socket.gethostname()})" in line, line
        assert (run_dir / ".hydra" / "overrides.yaml").read_bytes() == overrides
        assert summary(run_dir)["pid"] == process.pid and summary(run_dir)["status"] == "running"
    finally:
        process.kill()
        process.wait()
    rounds = [int(row["round"]) for row in rows(run_dir / "metrics.csv")]
    assert rounds == list(range(len(rounds)))


def test_a_new_run_into_another_runs_results_is_refused_unless_overwrite(tmp_path: Path) -> None:
    result, run_dir = run_into(tmp_path, "run", *TINY, "n_agents=2")
    assert result.returncode == 0, result.stderr
    assert not (run_dir / "checkpoint.pkl").exists()  # a completed run leaves no checkpoint behind
    (run_dir / "model.pt").write_bytes(b"an older run's model")
    before = results(run_dir)
    line = one_error_line(run_into(tmp_path, "run", *TINY, "n_agents=3")[0], 2)
    assert line.startswith(f"fedrl: error: {run_dir} already holds another run's results (summary.json"), line
    assert "++overwrite=true" in line and f"`fedrl resume {run_dir}`" in line
    assert results(run_dir) == before
    result, _ = run_into(tmp_path, "run", *TINY, "n_agents=3", "++overwrite=true")
    assert result.returncode == 0, result.stderr
    assert summary(run_dir)["config"]["n_agents"] == 3 and not (run_dir / "model.pt").exists()
    assert {row["agent"] for row in rows(run_dir / "agent_metrics.csv")} == {"0", "1", "2"}


def test_the_cli_reports_only_the_runs_it_launched_and_overwrite_replaces_a_sweep(tmp_path: Path) -> None:
    line = one_error_line(fedrl("run", *TINY, "hydra.run.dir=''", cwd=tmp_path), 2)  # not the current dir
    assert "hydra.run.dir='' is not allowed: it must name a folder" in line, line
    sweep = tmp_path / "sweep"
    assert fedrl("run", "-m", *TINY, "seed=0,1,2", f"hydra.sweep.dir={sweep}", cwd=tmp_path).returncode == 0
    line = one_error_line(fedrl("run", "-m", *TINY, "seed=5", f"hydra.sweep.dir={sweep}", cwd=tmp_path), 2)
    assert f"{sweep} already holds 3 runs" in line, line
    result = fedrl("run", "-m", *TINY, "seed=5", f"hydra.sweep.dir={sweep}", "++overwrite=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sweep of 1 jobs: 1 completed, 0 failed" in result.stderr
    assert summary(sweep / "0_fastfedpg_tabular")["config"]["seed"] == 5
    assert find_run_dirs([sweep]) == [sweep / "0_fastfedpg_tabular"]  # the older jobs' results are gone
    line = one_error_line(fedrl("run", *TINY, f"hydra.run.dir={sweep}", "++overwrite=true", cwd=tmp_path), 2)
    assert f"{sweep} is a sweep dir (it holds multirun.yaml)" in line, line


def test_resume_of_a_sweep_still_being_written_is_refused_even_after_its_parent_is_killed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    long = [override for override in SAMPLED if not override.startswith("algo.rounds")] + ["algo.rounds=100000"]
    command = [sys.executable, "-m", "fedrl_cli", "run", "-m", *long, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    parent = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = sweep / "0_fastfedpg_tabular_seed=0"
    try:
        wait_for_rows(parent, job / "metrics.csv", 5)
        line = one_error_line(fedrl("resume", str(sweep), cwd=tmp_path), 2)
        assert f"{sweep} is still being written by fedrl (pid {parent.pid} on" in line, line
        parent.kill()  # the joblib workers go on writing their jobs
        parent.wait()
        line = one_error_line(fedrl("resume", str(sweep), cwd=tmp_path), 2)
        assert "_fastfedpg_tabular_seed=1 is still being written by fedrl (pid " in line or (
            "_fastfedpg_tabular_seed=0 is still being written by fedrl (pid " in line
        ), line
    finally:
        for job_dir in sweep.glob("*_fastfedpg_tabular_seed=*"):
            pid = (job_dir / ".fedrl.lock").read_text().split()[0]
            subprocess.run(["kill", "-9", pid], check=False)


FULL_DISK_RUN = ("algo.rounds=2000", "checkpoint_every=10", "progress=false")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full-disk test's run, uninterrupted (with events; `loggers` does not change a number)."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    result, run_dir = run_into(tmp_path, "reference", *FULL_DISK_RUN, "loggers=[csv,tensorboard]")
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.parametrize("loggers", ["[csv]", "[csv,tensorboard]"])
def test_a_full_disk_ends_in_one_line_keeps_the_checkpoint_and_resumes_identically(
    tmp_path: Path, small_disk: Path, uninterrupted: Path, loggers: str
) -> None:
    overrides = (*FULL_DISK_RUN, f"loggers={loggers}")
    result, run_dir = run_into(small_disk, "run", *overrides)
    line = one_error_line(result, 1)
    done = summary(run_dir)
    assert done["status"] == "failed" and done["error_type"] == "write_error"
    assert line == f"fedrl: error: {done['error']}"
    kept = int(done["error"].split("rows up to round ")[1].split(" ")[0])
    assert done["error"].startswith(f"no space left on device writing {run_dir}/")
    assert done["error"].endswith(f"; free space and run `fedrl resume {run_dir}`")
    assert not [path for path in run_dir.iterdir() if path.name.endswith(".tmp")]  # no temp file left
    assert len(rows(run_dir / "metrics.csv")) > kept  # every row up to the checkpoint is there
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)  # space freed
    resumed = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from round {kept}" in resumed.stdout
    reference = uninterrupted
    assert without_wall_time(run_dir / "metrics.csv") == without_wall_time(reference / "metrics.csv")
    assert (run_dir / "agent_metrics.csv").read_bytes() == (reference / "agent_metrics.csv").read_bytes()
    if "tensorboard" in loggers:  # the events too: each step once, as the uninterrupted run's
        resumed, uninterrupted = scalars(events(run_dir)), scalars(events(reference))
        assert resumed.pop("wall_s") and uninterrupted.pop("wall_s")
        assert resumed == uninterrupted


class FullDisk:
    """A file on a full disk: every write raises ENOSPC (as a flush of a real one does, naming no file)."""

    def write(self, data: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_error_in_one_sweep_job_fails_that_job_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while job 1 writes its rows (a write that raises ENOSPC, in this process: basic launcher)."""
    write = CsvLog._write

    def full_disk_for_job_1(self: CsvLog, cells: list) -> None:
        if self.path.parent.name.startswith("1_") and self.path.name == "metrics.csv" and cells[0] == 5:
            self._writer = csv.writer(FullDisk())
        write(self, cells)

    monkeypatch.setattr(CsvLog, "_write", full_disk_for_job_1)
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    arguments = ["run", "-m", "algo.rounds=8", "checkpoint_every=2", "seed=0,1,2", "hydra/launcher=basic"]
    result = CliRunner().invoke(app, [*arguments, f"hydra.sweep.dir={sweep}"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    failed = sweep / "1_fastfedpg_tabular_seed=1"
    expected = (
        f"fedrl: error: no space left on device writing {failed}/metrics.csv; rows up to round 4 are kept; "
        f"free space and run `fedrl resume {failed}`"
    )
    assert expected in result.stderr.splitlines(), result.stderr
    assert result.stderr.splitlines()[-1].startswith("fedrl: sweep of 3 jobs: 2 completed, 1 failed, 0 with bad input")
    assert summary(failed)["error_type"] == "write_error"
    done = [summary(sweep / f"{job}_fastfedpg_tabular_seed={job}")["status"] for job in (0, 2)]
    assert done == ["completed", "completed"]


@pytest.mark.parametrize("how", ["read-only file system", "immutable"])
def test_a_run_dir_that_cannot_be_written_exits_2_in_one_line(tmp_path: Path, how: str) -> None:
    target = tmp_path / "target"
    if how == "immutable":
        target.mkdir()
        if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not allowed here")
        expected = f"fedrl: error: {target}: operation not permitted: hydra.run.dir / hydra.sweep.dir must be a folder"
    else:
        mount_tmpfs(target, "1m", "ro")
        expected = f"fedrl: error: {target}: read-only file system: hydra.run.dir / hydra.sweep.dir must be a folder"
    try:
        line = one_error_line(run_into(tmp_path, "target", *TINY)[0], 2)
        assert line.startswith(expected), line
        sweep = one_error_line(fedrl("run", "-m", *TINY, f"hydra.sweep.dir={target}", cwd=tmp_path), 2)
        assert sweep.startswith(expected), sweep
    finally:
        if how == "immutable":
            subprocess.run(["chattr", "-i", str(target)], check=False)
        else:
            subprocess.run(["umount", str(target)], check=False)
    assert not any(target.iterdir())


def test_a_summary_that_cannot_be_written_is_said_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When even summary.json cannot be written, the job says why on stderr and the CLI does not repeat it."""
    from fedrl_cli import app as task

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(task, "write_json_in_place", full)
    write = CsvLog._write

    def full_at_round_3(self: CsvLog, cells: list) -> None:
        if cells[0] == 3:
            monkeypatch.setattr(task, "write_json_atomic", full)
            self._writer = csv.writer(FullDisk())
        write(self, cells)

    monkeypatch.setattr(CsvLog, "_write", full_at_round_3)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "algo.rounds=6", "checkpoint_every=2", f"hydra.run.dir={run_dir}"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("fedrl:")]
    assert lines == [
        f"fedrl: error: no space left on device writing {run_dir}/metrics.csv; rows up to round 2 are kept; free "
        f"space and run `fedrl resume {run_dir}`; {run_dir}/summary.json could not be written either (No space "
        "left on device)"
    ]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    shutil.rmtree(run_dir)
