"""rliable's aggregates over runs and tasks (IQM, mean, probability of improvement, stratified bootstrap), and
`fedrl plot`'s aggregates for runs with per-agent evaluation returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_plots import write_run_dir

from fedrl_cli.curves import aggregate_tables, run_scores
from fedrl_cli.plots import make_plots
from fedrl_cli.results import load_results
from fedrl_cli.stats import AnalysisError, aggregate_estimates, improvement_probability, interquartile_mean


def test_the_iqm_is_the_mean_of_the_middle_half() -> None:
    scores = np.arange(1.0, 41.0).reshape(10, 4)  # 1 … 40: the middle half is 11 … 30
    assert interquartile_mean(scores) == pytest.approx(20.5)
    found = aggregate_estimates(scores)
    assert found["IQM"].point == pytest.approx(20.5) and found["mean"].point == pytest.approx(20.5)
    for estimate in found.values():
        assert estimate.low <= estimate.point <= estimate.high and estimate.low < estimate.high


def test_the_bootstrap_is_stratified_by_task() -> None:
    """Runs are resampled within each task: with no spread across runs inside a task the interval is the point
    (a bootstrap that pooled the tasks would move)."""
    scores = np.tile([0.0, 10.0, 20.0, 30.0], (12, 1))
    for estimate in aggregate_estimates(scores).values():
        assert estimate.low == estimate.high == estimate.point


def test_the_probability_of_improvement_counts_wins_and_half_ties() -> None:
    x = np.full((10, 2), 10.0)
    y = np.concatenate([np.zeros((5, 2)), np.full((5, 2), 20.0)])  # x beats half of y's runs on both tasks
    assert improvement_probability(x, y).point == pytest.approx(0.5)
    assert improvement_probability(x + 100, y).point == 1.0
    assert improvement_probability(x, x).point == 0.5  # all ties
    found = improvement_probability(x + 100, y)
    assert found.low == found.high == 1.0


def test_aggregates_need_ten_runs() -> None:
    with pytest.raises(AnalysisError, match="at least 10 runs"):
        aggregate_estimates(np.ones((9, 3)))


def evaluated_run(path: Path, algo: str, seed: int, level: float) -> None:
    """A Hopper run of 2 agents evaluated at rounds 2, 4, 6, 8; agent a's returns are level + 10a + round."""
    config = {"env": {"name": "hopper"}, "algo": {"name": algo, "rounds": 8}, "n_agents": 2, "seed": seed}
    write_run_dir(path, config, {"eval_return_mean": [np.nan if t % 2 or not t else level + 5 + t for t in range(9)]})
    rows = [
        {"round": t, "agent": a, "eval_return": level + 10 * a + t if t and t % 2 == 0 else np.nan}
        for t in range(9)
        for a in range(2)
    ]
    pd.DataFrame(rows).to_csv(path / "agent_metrics.csv", index=False)


def test_plot_writes_aggregates_of_the_last_three_evaluations(tmp_path: Path) -> None:
    for seed in range(10):
        evaluated_run(tmp_path / f"single_{seed}", "single_ppo", seed, 100.0 + seed)
        evaluated_run(tmp_path / f"fedavg_{seed}", "fedavg_ppo", seed, 50.0 + seed)
    for seed in range(3):  # too few runs for an interval: listed, left out
        evaluated_run(tmp_path / f"subspace_{seed}", "fedsubspace_ac", seed, 0.0)
    results = load_results([tmp_path])
    scores = run_scores(results)
    single = scores[scores["group"] == "single_ppo"]
    # the mean of the evaluations at rounds 4, 6, 8: level + 10·agent + 6
    expected = sorted(100.0 + seed + 10 * a + 6 for seed in range(10) for a in range(2))
    assert sorted(single["score"]) == pytest.approx(expected)
    report = make_plots(results, tmp_path / "plots", metric="eval_return_mean")
    aggregates = pd.read_csv(tmp_path / "plots" / "aggregates.csv")
    assert set(aggregates["group"]) == {"single_ppo", "fedavg_ppo"}
    mean = aggregates[(aggregates.group == "single_ppo") & (aggregates.statistic == "mean")].iloc[0]
    assert mean["point"] == pytest.approx(np.mean(expected)) and mean["runs"] == 10 and mean["tasks"] == 2
    improvement = pd.read_csv(tmp_path / "plots" / "improvement.csv").set_index(["x", "y"])
    assert improvement.loc[("single_ppo", "fedavg_ppo"), "probability"] == 1.0
    assert improvement.loc[("fedavg_ppo", "single_ppo"), "probability"] == 0.0
    assert any("fedsubspace_ac left out" in note for note in report.notes)
    assert (tmp_path / "plots" / "aggregates.png").stat().st_size > 5_000
    assert aggregate_tables(scores[scores["group"] == "fedsubspace_ac"])[0].empty
