"""TensorBoard logging (``loggers=[csv,tensorboard]``): the event files hold exactly the CSVs' values, read back
with the tensorboard package's own reader; a resumed run adds no step twice; bad loggers are refused."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import fedrl, run_into
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from test_resume import checkpoint_header, mark_killed, run_keeping_checkpoint

LOGGED = ("loggers=[csv,tensorboard]", "progress=false")


def events(run_dir: Path) -> EventAccumulator:
    """Every event of the run, as TensorBoard reads its folder."""
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def expected_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What the CSVs say the event files must hold: every column against samples_per_agent, in float32 (TensorBoard's
    scalar precision); per-agent columns under agent_<i>/."""
    rows = csv_rows(run_dir / "metrics.csv")
    step_of = {row["round"]: round(float(row["samples_per_agent"])) for row in rows}
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for column, value in row.items():
            if value != "":
                expected.setdefault(column, []).append((step_of[row["round"]], float(np.float32(value))))
    for row in csv_rows(run_dir / "agent_metrics.csv"):
        for column, value in row.items():
            if column not in ("round", "agent") and value != "":
                tag = f"agent_{row['agent']}/{column}"
                expected.setdefault(tag, []).append((step_of[row["round"]], float(np.float32(value))))
    return expected


def test_event_files_hold_exactly_the_csvs_values_and_the_config(tmp_path: Path) -> None:
    result, run_dir = run_into(tmp_path, "run", "n_agents=3", "algo.rounds=12", "algo.lr=0.05", *LOGGED)
    assert result.returncode == 0, result.stderr
    accumulator = events(run_dir)
    found = scalars(accumulator)
    assert found == expected_scalars(run_dir)
    assert {"gap", "objective", "round", "agent_2/objective"} <= set(found)
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hyper = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hyper["algo.lr"].number_value == pytest.approx(0.05)
    assert hyper["algo.name"].string_value == "fastfedpg" and hyper["n_agents"].number_value == 3
    plotted = fedrl("plot", str(run_dir), cwd=tmp_path)  # the run's list-valued `loggers` is one config value
    assert plotted.returncode == 0, plotted.stderr


def test_a_resumed_run_appends_its_events_without_writing_a_step_twice(tmp_path: Path) -> None:
    overrides = ("algo=fedavg_pg", "algo.gradient=sampled", "algo.batch_size=8", "algo.horizon=6", "n_agents=3")
    run_dir = run_keeping_checkpoint(tmp_path, "run", *overrides, "algo.rounds=7", "checkpoint_every=3", *LOGGED)
    reference = tmp_path / "reference"
    shutil.copytree(run_dir, reference)
    mark_killed(run_dir)  # killed after round 7's rows: the events of round 7 lie beyond the checkpoint (round 6)
    assert checkpoint_header(run_dir)["round"] == 6
    result = fedrl("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((run_dir / "tensorboard").iterdir())) == 2  # the first file cut back, the resumed run's beside it
    resumed, original = scalars(events(run_dir)), scalars(events(reference))
    assert resumed.keys() == original.keys()
    for tag, series in resumed.items():
        steps = [step for step, _ in series]
        assert steps == sorted(set(steps)), tag  # no step twice
        if tag != "wall_s":
            assert series == original[tag], tag
    assert resumed == expected_scalars(run_dir) | {"wall_s": resumed["wall_s"]}


@pytest.mark.parametrize("loggers", ["[csv,wandb]", "[tensorboard]", "tensorboard"])
def test_loggers_must_be_known_and_hold_csv(tmp_path: Path, loggers: str) -> None:
    result, run_dir = run_into(tmp_path, "run", f"loggers={loggers}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "loggers" in lines[0] and "csv and tensorboard" in lines[0], result.stderr
    assert not run_dir.exists()
