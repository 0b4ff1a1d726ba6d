"""Integrity against a hostile user (issue 23): a refused command changes nothing on disk; no file a run reads can
run code, crash the interpreter or hang it; each case reproduced through the CLI where it is about the CLI."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config
from test_resume import mark_killed, run_keeping_checkpoint, wait_for_rows
from test_rundirs import one_error_line
from typer.testing import CliRunner

from fedrl_cli import resume, rundir
from fedrl_cli.cli import app
from fedrl_cli.errors import ResumeError

TINY = ("algo.rounds=3", "progress=false")


def fedrl(*arguments: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`fedrl ARGUMENTS` in this process (Typer's runner: no start-up cost), as :func:`conftest.fedrl` returns it;
    tests of signals and concurrent writers start real processes instead."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(arguments))
    finally:
        os.chdir(previous)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, result.output
    return subprocess.CompletedProcess(arguments, result.exit_code, result.stdout, result.stderr)


def in_process_line(code: int, *arguments: str) -> str:
    """`fedrl ARGUMENTS` run in this process (no start-up cost): it must exit ``code`` with one line and no
    traceback; returns the line."""
    result = CliRunner().invoke(app, list(arguments))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == code and "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("fedrl: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim, run_dir = tmp_path / "victim", tmp_path / "run"
    victim.write_text("precious\n")
    run_dir.mkdir()
    (run_dir / rundir.LOCK_FILE).symlink_to(victim)
    line = one_error_line(fedrl("run", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path), 2)
    assert "is a symbolic link" in line and victim.read_text() == "precious\n"
    assert sorted(path.name for path in run_dir.iterdir()) == [rundir.LOCK_FILE]  # nothing written
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / rundir.LOCK_FILE)
    assert rundir.owner(fifo_dir) is None  # opening a FIFO to read would block: it is not opened as a lock
    line = one_error_line(fedrl("run", *TINY, f"hydra.run.dir={fifo_dir}", cwd=tmp_path), 2)
    assert "is not a regular file" in line


def test_plot_reads_only_regular_files_so_a_fifo_cannot_hang_it(tmp_path: Path) -> None:
    for name in ("good", "fifo_metrics"):
        assert fedrl("run", *TINY, f"hydra.run.dir={tmp_path / 'runs' / name}", cwd=tmp_path).returncode == 0
    (tmp_path / "runs" / "fifo_metrics" / "metrics.csv").unlink()
    os.mkfifo(tmp_path / "runs" / "fifo_metrics" / "metrics.csv")
    (tmp_path / "runs" / "fifo_summary").mkdir()
    os.mkfifo(tmp_path / "runs" / "fifo_summary" / "summary.json")
    result = fedrl("plot", str(tmp_path / "runs"), "--out", str(tmp_path / "plots"), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "fifo_metrics: metrics.csv cannot be read (not a regular file)" in result.stdout
    assert "fifo_summary: summary.json is missing, not a regular file or not valid JSON" in result.stdout
    assert "1 runs plotted" in result.stdout


def source_run(path: Path, model_bytes: bytes | None = None, obs_dim: int = 11, config: dict | None = None) -> Path:
    """A completed fedsubspace_ac hopper run's dir as a transfer source: its summary and a model.pt (``model_bytes``
    as they are, or a model of ``obs_dim`` inputs saved with ``config``)."""

    from fedrl_cli.algos.ppo import ActorCritic, save_model
    from fedrl_cli.envs.mujoco import RunningMoments

    layers = ["actor_mean.0", "actor_mean.2", "critic.0", "critic.2"]
    run = {"algo": {"name": "fedsubspace_ac", "shared_layers": layers}, "env": {"name": "hopper"}, "n_agents": 2}
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"status": "completed", "config": run}))
    if model_bytes is not None:
        (path / "model.pt").write_bytes(model_bytes)
    else:
        model, moments = ActorCritic(2, obs_dim, 3), RunningMoments.start(2, (obs_dim,))
        save_model(path / "model.pt", model, moments, np.stack([np.eye(3)] * 2), run if config is None else config)
    return path


def test_a_damaged_trunk_source_is_bad_input_and_no_run_starts(tmp_path: Path) -> None:
    cases = {
        "garbage": (source_run(tmp_path / "garbage", b"not a model"), "is not a model this fedrl can read"),
        "wider": (source_run(tmp_path / "wider", obs_dim=12), "observations of 12 do not fit Hopper-v5"),
        "unnamed": (source_run(tmp_path / "unnamed", config={"n_agents": 2}), "does not say which PPO algorithm"),
    }
    for name, (source, expected) in cases.items():
        target = tmp_path / f"new_{name}"
        line = in_process_line(2, "run", "algo=single_ppo", "env=hopper", f"algo.trunk_from={source}",
                               "progress=false", f"hydra.run.dir={target}")  # fmt: skip
        assert line.startswith(f"fedrl: error: algo.trunk_from={source} is not allowed: ") and expected in line, line
        assert not (target / "metrics.csv").exists()


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (its lock file aside: a refused process holds it a moment)."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != rundir.LOCK_FILE
    }


def test_a_refused_resume_or_overwrite_leaves_the_run_dir_untouched(tmp_path: Path) -> None:
    run_dir = run_keeping_checkpoint(tmp_path, "run", "n_agents=2", "algo.rounds=4", "checkpoint_every=2", *TINY[1:])
    mark_killed(run_dir)
    before = tree(run_dir)
    for placement in (("backend=ray",), ("backend=ray", "workers=2")):  # tabular runs compute in one process
        line = one_error_line(fedrl("resume", str(run_dir), *placement, cwd=tmp_path), 2)
        assert f"(resuming {run_dir}, which is left as it was)" in line, line
        assert tree(run_dir) == before
    for bad in ("env.gamma=1.5", "algo.rounds=${nope}"):  # a new run over it: refused before Hydra writes
        line = one_error_line(fedrl("run", *TINY, bad, "++overwrite=true", f"hydra.run.dir={run_dir}", cwd=tmp_path), 2)
        assert line.startswith(("fedrl: error: env.gamma=1.5 is not allowed", "fedrl: error: algo.rounds: ")), line
        assert tree(run_dir) == before
    resumed = fedrl("resume", str(run_dir), cwd=tmp_path)  # the run still resumes
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_resume_refuses_more_workers_than_a_hopper_run_has_agents(tmp_path: Path) -> None:
    config = compose_config("algo=fedavg_ppo", "env=hopper", "n_agents=2")
    resume._check_placement(tmp_path, {"config": config}, resume._placement(["backend=ray", "workers=2"]))
    with pytest.raises(ResumeError, match=r"^workers=3 .*\(resuming .*, which is left as it was\)$"):
        resume._check_placement(tmp_path, {"config": config}, resume._placement(["backend=ray", "workers=3"]))


def test_resume_replays_only_fedrls_keys_so_saved_overrides_cannot_run_a_command(tmp_path: Path) -> None:
    run_dir = run_keeping_checkpoint(tmp_path, "run", "n_agents=2", "algo.rounds=4", "checkpoint_every=2", *TINY[1:])
    mark_killed(run_dir)
    marker = tmp_path / "ran"
    injected = [
        "++hydra.job.env_set.GIT_CONFIG_COUNT=1",
        "++hydra.job.env_set.GIT_CONFIG_KEY_0=core.fsmonitor",
        f"++hydra.job.env_set.GIT_CONFIG_VALUE_0='touch {marker}; false'",
    ]
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "".join(f"- {json.dumps(o)}\n" for o in injected))
    for extra in (["hydra.mode=MULTIRUN"], ["++hydra.mode=MULTIRUN"]):  # resume sets the mode itself
        line = one_error_line(fedrl("resume", str(run_dir), *extra, cwd=tmp_path), 2)
        assert "fedrl resume sets the mode itself" in line, line
    result = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resume leaves out ++hydra.job.env_set.GIT_CONFIG_COUNT=1" in result.stderr
    assert not marker.exists()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_unreadable_hydra_files_stop_resume_in_one_line(tmp_path: Path) -> None:
    run_dir = run_keeping_checkpoint(tmp_path, "run", "n_agents=2", "algo.rounds=2", "checkpoint_every=1", *TINY[1:])
    mark_killed(run_dir)
    hydra = run_dir / ".hydra" / "hydra.yaml"
    for content in (b"", b"hydra: [", b"hydra: {overrides: {hydra: 3}}", b"\xff\xfe"):
        hydra.write_bytes(content)
        line = one_error_line(fedrl("resume", str(run_dir), cwd=tmp_path), 2)
        assert line.startswith(f"fedrl: error: {hydra} cannot be read as fedrl wrote it"), line
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_bytes(b"")  # what a full disk leaves
    line = one_error_line(fedrl("resume", str(sweep), cwd=tmp_path), 2)
    assert line.startswith(f"fedrl: error: {sweep / 'multirun.yaml'} cannot be read as fedrl wrote it"), line


def test_a_checkpoint_of_objects_or_of_another_run_is_refused_before_it_is_used(tmp_path: Path) -> None:

    from fedrl_cli.checkpoint import FORMAT

    common = ("n_agents=2", "algo.rounds=4", "checkpoint_every=2", *TINY[1:])
    run_dir = run_keeping_checkpoint(tmp_path, "run", *common)
    other = run_keeping_checkpoint(tmp_path, "other", *common, "seed=1")
    mark_killed(run_dir)
    before = tree(run_dir)
    header = pickle.dumps({"round": 2, "elapsed_s": 0.1, "csv_bytes": {}, "format": FORMAT, "fedrl": "0.1.0"})
    hostile = {  # object arrays would let numpy read the file's bytes as pointers; structured ones can hold objects
        "object": np.array([None, 1], dtype=object),
        "structured": np.zeros(2, dtype=[("a", "f8")]),
    }
    for kind, array in hostile.items():
        (run_dir / "checkpoint.pkl").write_bytes(header + pickle.dumps({"algorithm": array}))
        result = fedrl("resume", str(run_dir), cwd=tmp_path)
        line = one_error_line(result, 2)
        assert "cannot be loaded: it holds an array of dtype" in line, (kind, line)
    (run_dir / "checkpoint.pkl").write_bytes((other / "checkpoint.pkl").read_bytes())
    line = one_error_line(fedrl("resume", str(run_dir), cwd=tmp_path), 2)
    assert "checkpoint.pkl was written by another config (seed: 1 in the checkpoint, 0 in the run)" in line, line
    assert {k: v for k, v in tree(run_dir).items() if k != "checkpoint.pkl"} == {
        k: v for k, v in before.items() if k != "checkpoint.pkl"
    }


def test_a_resumed_sweep_holds_its_dir_so_no_other_sweep_can_replace_it(tmp_path: Path) -> None:

    sweep = tmp_path / "sweep"
    long = ["algo.rounds=100000", "algo.gradient=sampled", "progress=false", "seed=0,1", "hydra.launcher.n_jobs=1"]
    command = [sys.executable, "-m", "fedrl_cli"]

    def started(*arguments: str) -> subprocess.Popen:
        return subprocess.Popen([*command, *arguments], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)  # fmt: skip

    first = started("run", "-m", *long, f"hydra.sweep.dir={sweep}")
    job = sweep / "0_fastfedpg_tabular_seed=0"
    try:
        wait_for_rows(first, job / "metrics.csv", 3)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    resumed = started("resume", str(sweep))
    try:
        rows = (job / "metrics.csv").read_text().count("\n")
        wait_for_rows(resumed, job / "metrics.csv", rows + 2)
        multirun = (sweep / "multirun.yaml").read_bytes()
        other = fedrl("run", "-m", f"hydra.sweep.dir={sweep}", "seed=0,1", "algo.rounds=50", "++overwrite=true",
                      cwd=tmp_path)  # fmt: skip
        line = one_error_line(other, 2)
        assert f"{sweep} is being written by another fedrl process (pid {resumed.pid} on" in line, line
        assert (sweep / "multirun.yaml").read_bytes() == multirun
    finally:
        os.killpg(resumed.pid, signal.SIGKILL)
        _, errors = resumed.communicate()
    assert "Callback RunDirs.on_multirun_start raised" not in errors, errors


def test_evaluate_refuses_a_crafted_model_in_one_line(tmp_path: Path) -> None:
    import torch

    from fedrl_cli.algos.ppo import ActorCritic

    model = ActorCritic(2, 11, 3)
    good = {
        "state_dict": model.state_dict(),
        "normalisation": {"mean": torch.zeros(2, 11), "var": torch.ones(2, 11), "count": torch.ones(2)},
        "maps": torch.from_numpy(np.stack([np.eye(3)] * 2)),
        "config": {"n_agents": 2},
    }
    crafted = {
        "no config": {k: v for k, v in good.items() if k != "config"},
        "extra statistic": {**good, "normalisation": {**good["normalisation"], "extra": torch.ones(2)}},
        "missing statistic": {**good, "normalisation": {"mean": torch.zeros(2, 11), "var": torch.ones(2, 11)}},
        "flat maps": {**good, "maps": torch.eye(3)},
        "counts of another shape": {**good, "normalisation": {**good["normalisation"], "count": torch.ones(3)}},
    }
    for name, saved in crafted.items():
        run_dir = tmp_path / name.replace(" ", "_")
        run_dir.mkdir()
        torch.save(saved, run_dir / "model.pt")
        line = in_process_line(2, "evaluate", str(run_dir), "--episodes", "1")
        assert f"{run_dir / 'model.pt'} is not a model this fedrl can read" in line, (name, line)


def test_plot_leaves_out_runs_whose_config_is_not_fedrls(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("good", "foreign", "wordy"):
        assert fedrl("run", *TINY, f"hydra.run.dir={runs / name}", cwd=tmp_path).returncode == 0
    for name, config in (("foreign", {"foo": 1}), ("wordy", None)):
        path = runs / name / "summary.json"
        summary = json.loads(path.read_text())
        summary["config"] = config or {**summary["config"], "n_agents": "four"}
        path.write_text(json.dumps(summary))
    result = fedrl("plot", str(runs), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "foreign: summary.json's config has no algo name" in result.stdout
    assert "wordy: summary.json's config has n_agents='four'" in result.stdout and "1 runs plotted" in result.stdout


def test_a_run_or_job_whose_summary_is_empty_resumes_from_what_is_there(tmp_path: Path) -> None:
    """What a full disk at the first summary write leaves: an empty summary.json. With a checkpoint the run goes
    on from it; with no rows yet it starts over; in a sweep the same, through `fedrl resume SWEEP`."""
    common = ("n_agents=2", "algo.rounds=4", "checkpoint_every=2", *TINY[1:])
    with_checkpoint = run_keeping_checkpoint(tmp_path, "checkpointed", *common)
    mark_killed(with_checkpoint)
    rows_at_checkpoint = (with_checkpoint / "metrics.csv").read_text()
    (with_checkpoint / "summary.json").write_bytes(b"")
    result = fedrl("resume", str(with_checkpoint), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming from round 2" in result.stdout  # from the checkpoint, not from round 0
    assert (with_checkpoint / "metrics.csv").read_text().splitlines()[:3] == rows_at_checkpoint.splitlines()[:3]
    sweep = tmp_path / "sweep"
    assert fedrl("run", "-m", "seed=0,1", *common, f"hydra.sweep.dir={sweep}", cwd=tmp_path).returncode == 0
    (job,) = sweep.glob("1_*")
    for name in ("metrics.csv", "agent_metrics.csv"):
        (job / name).unlink()
    (job / "summary.json").write_bytes(b"")
    result = fedrl("resume", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((job / "summary.json").read_text())["status"] == "completed"
    assert (job / "metrics.csv").read_text().count("\n") == 6  # a header and rounds 0 to 4


def test_plot_on_a_full_disk_ends_in_one_line_and_leaves_no_half_written_figure(
    tmp_path: Path, small_disk: Path
) -> None:
    import matplotlib.image

    assert fedrl("run", *TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path).returncode == 0
    (small_disk / "filler").write_bytes(b"\0" * (96 - 24) * 1024)  # 24 KiB left: the tables fit, a figure does not
    out = small_disk / "plots"
    line = one_error_line(fedrl("plot", str(tmp_path / "run"), "--out", str(out), cwd=tmp_path), 1)
    assert "no space left on device writing" in line and "no figure or table is left half written" in line, line
    written = sorted(path.name for path in out.iterdir())
    assert not [name for name in written if name.endswith(".tmp")], written
    for figure in out.glob("*.png"):
        matplotlib.image.imread(figure)  # whole


def test_a_ray_address_with_no_cluster_is_bad_input_within_seconds(tmp_path: Path) -> None:
    hopper = ("algo=fedavg_ppo", "env=hopper", "n_agents=2", "backend=ray", "workers=1", "algo.rounds=1", *TINY[1:])
    for address, expected in (("127.0.0.1:1", "nothing answers there"), ("auto", "no Ray cluster to join")):
        result = fedrl("run", *hopper, f"ray_address={address}", f"hydra.run.dir={tmp_path / address}", cwd=tmp_path,
                       timeout=90)  # fmt: skip
        line = one_error_line(result, 2)
        assert line.startswith(f"fedrl: error: ray_address={address}: {expected}"), line


def test_sigterm_or_sighup_to_a_sweep_stops_every_job_after_its_round_and_names_resume(tmp_path: Path) -> None:

    for signum in (signal.SIGTERM, signal.SIGHUP):
        sweep = tmp_path / signum.name
        long = [
            "algo.rounds=100000",
            "algo.gradient=sampled",
            "progress=false",
            "seed=0,1,2",
            "hydra.launcher.n_jobs=2",
        ]
        parent = subprocess.Popen([sys.executable, "-m", "fedrl_cli", "run", "-m", *long, f"hydra.sweep.dir={sweep}"],
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for job in ("0_fastfedpg_tabular_seed=0", "1_fastfedpg_tabular_seed=1"):
            wait_for_rows(parent, sweep / job / "metrics.csv", 3)
        children = [int(pid) for path in Path(f"/proc/{parent.pid}/task").glob("*/children")
                    for pid in path.read_text().split()]  # fmt: skip
        parent.send_signal(signum)  # to the parent alone, as a scheduler does
        _, errors = parent.communicate(timeout=60)
        assert parent.returncode == 130, errors
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children and not [pid for pid in children if Path(f"/proc/{pid}").exists()]  # no worker left behind
        assert f"fedrl: {signum.name}: interrupted; continue with `fedrl resume {sweep}`" in errors, errors
        statuses = [json.loads(path.read_text()) for path in sorted(sweep.glob("*/summary.json"))]
        assert len(statuses) == 2, statuses  # the third job never started
        for summary in statuses:
            assert summary["status"] == "interrupted" and f"{signum.name}: stopped after round" in summary["error"]


def test_a_second_signal_stops_a_long_round_at_once_and_says_why(tmp_path: Path) -> None:

    run_dir = tmp_path / "run"
    long = [
        "algo.rounds=5",
        "algo.local_steps=1000000",
        "algo.gradient=sampled",
        "progress=false",
        "checkpoint_every=1",
    ]
    process = subprocess.Popen([sys.executable, "-m", "fedrl_cli", "run", *long, f"hydra.run.dir={run_dir}"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_rows(process, run_dir / "metrics.csv", 1)  # round 0's row: round 1 is under way, and long
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["error"].startswith("SIGTERM again: stopped at once, during a round; continue it with"), summary


def test_a_minibatch_of_one_sample_is_bad_input(tmp_path: Path) -> None:
    base = ("run", "algo=single_ppo", "env=hopper", "algo.rollout_steps=1", f"hydra.run.dir={tmp_path / 'run'}")
    line = in_process_line(2, *base, "algo.minibatches=1")
    assert "each minibatch needs at least 2 samples" in line and "raise algo.rollout_steps" in line, line
    line = in_process_line(2, *base[:-2], "algo.rollout_steps=6", "algo.minibatches=4", base[-1])
    assert "algo.minibatches=4 is not allowed with algo.rollout_steps × env.n_envs = 6" in line and "at most 3" in line


def test_a_run_dir_named_with_an_interpolation_is_refused_not_resumed_elsewhere(tmp_path: Path) -> None:
    run_dir = run_keeping_checkpoint(tmp_path, "run", "n_agents=2", "algo.rounds=4", "checkpoint_every=2", *TINY[1:])
    mark_killed(run_dir)
    literal = run_dir.rename(tmp_path / "at_${oc.env:HOME}_x")  # a folder whose name holds the characters ${...}
    before = tree(literal)
    line = one_error_line(fedrl("resume", str(literal), cwd=tmp_path), 2)
    assert "Hydra reads ${...} in a path as an interpolation" in line, line
    assert tree(literal) == before and sorted(p.name for p in tmp_path.iterdir()) == ["at_${oc.env:HOME}_x"]
    renamed = literal.rename(tmp_path / "renamed")
    assert fedrl("resume", str(renamed), cwd=tmp_path).returncode == 0


def test_too_few_file_descriptors_is_said_as_such_not_as_a_write(tmp_path: Path) -> None:

    hit = 0
    for limit in (5, 6, 7):
        run_dir = tmp_path / f"limit{limit}"
        command = f"ulimit -n {limit}; {shlex.quote(sys.executable)} -m fedrl_cli run {' '.join(TINY)} " \
                  f"hydra.run.dir={run_dir}"  # fmt: skip
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        if "too many open files" in result.stderr:
            hit += 1
            line = one_error_line(result, 1)
            assert "too many open files opening " in line and "raise the limit of open files (ulimit -n)" in line
    assert hit, "no limit was low enough to be hit"
