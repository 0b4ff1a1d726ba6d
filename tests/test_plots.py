"""`fedrl plot` and the results loader on run dirs with known numbers, so every figure's table is exact."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from conftest import fedrl

from fedrl_cli.plots import PlotReport, make_plots, mean_and_ci, speedup_lines, tune
from fedrl_cli.results import NoRuns, Results, load_results

ROUNDS = 8


def write_run(
    path: Path,
    algo: str,
    n_agents: int,
    seed: int,
    gaps: list[float],
    local_steps: int = 5,
    status: str = "completed",
    heterogeneity: float = 0.5,
    lr: float = 0.1,
) -> None:
    """A run dir as `fedrl run` writes it: summary.json with the config, metrics.csv with one row per round."""
    path.mkdir(parents=True)
    config = {
        "env": {"name": "tabular", "reward_heterogeneity": heterogeneity, "mdp_seed": 0},
        "algo": {"name": algo, "local_steps": local_steps, "rounds": len(gaps) - 1, "lr": lr},
        "n_agents": n_agents,
        "seed": seed,
        "progress": False,
    }
    summary = {"status": status, "config": config}
    if status != "completed":
        summary.update(error="round 3: objective is nan (the run diverged)", error_type="diverged")
    (path / "summary.json").write_text(json.dumps(summary))
    rounds = np.arange(len(gaps))
    pd.DataFrame(
        {
            "round": rounds,
            "samples": 100 * n_agents * rounds,
            "samples_per_agent": 100 * rounds,
            "comm_floats": 30 * rounds,
            "wall_s": 0.1 * rounds,
            "objective": 1 - np.array(gaps),
            "gap": gaps,
            "grad_norm": gaps,
        }
    ).to_csv(path / "metrics.csv", index=False)


def agents_sweep(root: Path, agents=(1, 2, 4)) -> Path:
    """gap_N(t) = s / (1 + N·t) for seeds with s = 0.9 and 1.1: the seed mean reaches 1/(1+8) at t = 8/N."""
    for n_agents in agents:
        for seed, scale in enumerate((0.9, 1.1)):
            gaps = [scale / (1 + n_agents * t) for t in range(ROUNDS + 1)]
            write_run(root / f"{n_agents}_{seed}", "fastfedpg", n_agents, seed, gaps)
    return root


def test_bootstrap_band_contains_the_mean() -> None:
    values = np.random.default_rng(0).normal(loc=3.0, size=(6, 50))
    mean, low, high = mean_and_ci(values)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    assert np.all(low <= mean) and np.all(mean <= high)
    assert np.all(high - low > 0)
    # more seeds, narrower bands
    wide = mean_and_ci(values[:3])
    assert np.mean(wide[2] - wide[1]) > np.mean(high - low)
    # one seed: the band is the curve itself
    single = mean_and_ci(values[:1])
    np.testing.assert_array_equal(single[1], values[0])


def test_speedup_and_summary_are_exact(tmp_path: Path) -> None:
    sweep = agents_sweep(tmp_path / "sweep")
    result = fedrl("plot", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = sweep / "plots"
    speedup = pd.read_csv(out / "speedup.csv").sort_values("n_agents")
    assert list(speedup.columns[:5]) == ["algo", "n_agents", "speedup", "rounds_to_target", "target"]
    assert speedup["speedup"].tolist() == [1.0, 2.0, 4.0]
    assert speedup["rounds_to_target"].tolist() == [8, 4, 2]
    assert speedup["target"].tolist() == pytest.approx([1 / 9] * 3)
    summary = pd.read_csv(out / "summary.csv").sort_values("n_agents")
    assert summary["seeds"].tolist() == [2, 2, 2]
    assert summary["final_mean"].tolist() == pytest.approx([1 / (1 + n * ROUNDS) for n in (1, 2, 4)])
    assert (summary["final_ci_low"] <= summary["final_mean"]).all()
    assert (summary["final_ci_high"] >= summary["final_mean"]).all()
    assert summary["samples"].tolist() == [100 * n * ROUNDS for n in (1, 2, 4)]
    for name in ("convergence.png", "speedup.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 300 and image.shape[1] > 400 and image.std() > 0
    assert "bias: skipped" in result.stdout


def test_speedup_against_another_axis_and_target(tmp_path: Path) -> None:
    sweep = agents_sweep(tmp_path / "sweep", agents=(2, 4))
    result = fedrl(
        "plot",
        str(sweep),
        "--x",
        "samples",
        "--target",
        "0.2",
        "--out",
        str(tmp_path / "figs"),
        "--format",
        "svg",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    speedup = pd.read_csv(tmp_path / "figs" / "speedup.csv").sort_values("n_agents")
    # seed-mean gap ≤ 0.2 ⇔ N·t ≥ 4: t = 2 (N=2) and t = 1 (N=4); samples = 100·N·t = 400 both
    assert speedup["rounds_to_target"].tolist() == [2, 1]
    assert speedup["samples_to_target"].tolist() == [400, 400]
    assert speedup["speedup"].tolist() == [1.0, 1.0]
    assert (speedup["reference_n_agents"] == 2).all()  # no N=1: relative to the smallest N
    assert (tmp_path / "figs" / "convergence.svg").read_text().startswith("<?xml")


def test_bias_table_against_local_steps(tmp_path: Path) -> None:
    for algo, scale in (("fastfedpg", 0.0), ("fedavg_pg", 0.1)):
        for local_steps in (1, 5, 10):
            for seed in (0, 1):
                final = scale * local_steps + 0.01
                write_run(
                    tmp_path / "s" / f"{algo}_{local_steps}_{seed}",
                    algo,
                    4,
                    seed,
                    [1.0, 0.5, final],
                    local_steps=local_steps,
                )
    result = fedrl("plot", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(tmp_path / "s" / "plots" / "summary.csv")
    fedavg = summary[summary["algo"] == "fedavg_pg"].sort_values("local_steps")
    assert fedavg["final_mean"].tolist() == pytest.approx([0.11, 0.51, 1.01])
    assert (tmp_path / "s" / "plots" / "bias.png").stat().st_size > 10_000
    assert "speedup: skipped" in result.stdout


def test_failed_runs_are_listed_and_skipped_unless_asked(tmp_path: Path) -> None:
    agents_sweep(tmp_path / "s", agents=(1, 2))
    write_run(tmp_path / "s" / "broken", "fastfedpg", 4, 0, [1.0, 0.9, 0.8, float("nan")], status="failed")
    result = fedrl("plot", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped (failed)" in result.stdout and "diverged" in result.stdout
    assert sorted(pd.read_csv(tmp_path / "s" / "plots" / "summary.csv")["n_agents"]) == [1, 2]
    loaded = load_results([tmp_path / "s"], include_failed=True)
    assert sorted(loaded.frame["n_agents"].unique()) == [1, 2, 4]
    assert [run.status for run in loaded.skipped] == []


def test_results_join_config_to_rows(tmp_path: Path) -> None:
    write_run(tmp_path / "a", "fedavg_pg", 3, 7, [0.5, 0.25], local_steps=10, heterogeneity=0.8)
    frame = load_results([tmp_path / "a"]).frame
    assert frame["round"].tolist() == [0, 1]
    row = frame.iloc[-1]
    assert (row["algo"], row["env"], row["n_agents"], row["seed"]) == ("fedavg_pg", "tabular", 3, 7)
    assert (row["local_steps"], row["algo.local_steps"], row["reward_heterogeneity"]) == (10, 10, 0.8)
    assert row["gap"] == 0.25 and row["status"] == "completed"


def two_runs_differing_in(root: Path, algo: str, key: str, values: tuple[object, object]) -> PlotReport:
    """Runs whose configs differ only in ``algo.KEY`` (final gaps 0.5 and 0.1); the figures made from them."""
    for index, (value, gaps) in enumerate(zip(values, ([1.0, 0.5], [1.0, 0.1]), strict=True)):
        write_run(root / str(index), algo, 2, 0, gaps)
        summary = json.loads((root / str(index) / "summary.json").read_text())
        summary["config"]["algo"][key] = value
        (root / str(index) / "summary.json").write_text(json.dumps(summary))
    results = load_results([root])
    assert f"algo.{key}" in results.varying()
    return make_plots(results, root / "plots", metric="gap")


def test_runs_that_differ_in_a_list_valued_key_are_different_groups(tmp_path: Path) -> None:
    layers = (["critic.0", "critic.2"], ["actor_mean.0"])
    report = two_runs_differing_in(tmp_path, "fedsubspace_ac", "shared_layers", layers)
    finals = dict(zip(report.summary["algo.shared_layers"], report.summary["final_mean"], strict=True))
    assert finals == {"critic.0,critic.2": 0.5, "actor_mean.0": 0.1}


def test_runs_with_and_without_a_trunk_are_different_groups(tmp_path: Path) -> None:
    """A null and a value of one key, within one algorithm, separate runs (scratch vs a transferred trunk)."""
    report = two_runs_differing_in(tmp_path, "single_ppo", "trunk_from", (None, "runs/source"))
    assert sorted(report.summary["final_mean"]) == [0.1, 0.5]


def test_plot_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for args, message in (
        (["plot", str(tmp_path / "empty")], "no runs found"),
        (["plot", str(tmp_path / "missing")], "no such file"),
    ):
        result = fedrl(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert message in result.stderr
    agents_sweep(tmp_path / "s", agents=(1,))
    for args, message in (
        (["--metric", "reward"], "--metric reward: no run has it; available: "),
        (["--x", "episodes"], "--x episodes is not allowed"),
        (["--format", "jpg"], "--format jpg is not allowed"),
    ):
        result = fedrl("plot", str(tmp_path / "s"), *args, cwd=tmp_path)
        assert result.returncode == 2, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(NoRuns):
        load_results([tmp_path / "empty"])


# final gap scale per (N, η): the best η is 0.1 for N = 1 and 0.2 for N = 2
TUNING = {(1, 0.1): 0.5, (1, 0.2): 1.0, (2, 0.1): 0.8, (2, 0.2): 0.3}


def tuning_sweep(root: Path) -> Path:
    for (n_agents, lr), level in TUNING.items():
        for seed, scale in enumerate((0.9, 1.1)):
            gaps = [scale * level / (1 + t) for t in range(ROUNDS + 1)]
            write_run(root / f"{n_agents}_{lr}_{seed}", "fastfedpg", n_agents, seed, gaps, lr=lr)
    return root


def test_tune_keeps_each_groups_best_value(tmp_path: Path) -> None:
    root = tuning_sweep(tmp_path / "sweep")
    result = fedrl("plot", str(root), "--tune", "algo.lr", "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tuned (the best value per group, by the lowest seed-mean final gap):" in result.stdout
    summary = pd.read_csv(tmp_path / "plots" / "summary.csv").set_index("n_agents")
    assert summary["tuned_algo.lr"].to_dict() == {1: 0.1, 2: 0.2}
    assert summary.loc[1, "final_mean"] == pytest.approx(0.5 / (1 + ROUNDS))
    assert summary.loc[2, "final_mean"] == pytest.approx(0.3 / (1 + ROUNDS))
    assert (summary["seeds"] == 2).all()  # one curve per N, at its own η
    speedup = pd.read_csv(tmp_path / "plots" / "speedup.csv").set_index("n_agents")
    assert speedup["tuned_algo.lr"].to_dict() == {1: 0.1, 2: 0.2}
    # N=2 at η=0.2 reaches N=1's final level 0.5/9 when 0.3/(1+t) ≤ 0.5/9, at t = 4.4 → round 5; N=1 at round 8
    assert speedup.loc[2, "rounds_to_target"] == 5 and speedup.loc[2, "speedup"] == pytest.approx(8 / 5)


def test_tune_respects_higher_is_better() -> None:
    """On a reward (higher is better) the largest seed-mean final value wins, on an error the smallest."""
    rows = []
    for lr, level in ((0.1, 1.0), (0.2, 2.0)):
        for seed in (0, 1):
            for t in range(3):
                value = level * t + seed
                rows.append(
                    {
                        "run_dir": f"{lr}_{seed}",
                        "round": t,
                        "algo": "fastfedpg",
                        "n_agents": 2,
                        "algo.lr": lr,
                        "seed": seed,
                        "return_mean": value,
                        "critic_error": value,
                        "critic_excess": value,
                    }
                )
    results = Results(pd.DataFrame(rows), [], ["algo", "n_agents", "algo.lr", "seed"])
    _, by_return = tune(results, "return_mean", ["algo.lr"])
    _, by_error = tune(results, "critic_error", ["algo.lr"])
    assert by_return["tuned_algo.lr"].tolist() == [0.2]
    assert by_error["tuned_algo.lr"].tolist() == [0.1]
    assert tune(results, "critic_excess", ["algo.lr"])[1]["tuned_algo.lr"].tolist() == [0.1]


def test_tune_argument_of_make_plots_matches_the_summary(tmp_path: Path) -> None:
    """The chosen value's final mean is the summary's final_mean; the runs not chosen are left out everywhere."""
    root = tuning_sweep(tmp_path / "sweep")
    for seed, scale in enumerate((0.9, 1.1)):  # a third η, worse than the best for every N
        for n_agents in (1, 2):
            write_run(root / f"{n_agents}_0.4_{seed}", "fastfedpg", n_agents, seed, [scale] * (ROUNDS + 1), lr=0.4)
    report = make_plots(load_results([root]), tmp_path / "plots", metric="gap", tune_keys=["algo.lr"])
    choices = report.choices.set_index("n_agents")
    assert choices["tuned_algo.lr"].to_dict() == {1: 0.1, 2: 0.2}
    assert choices["tried"].tolist() == [3, 3]
    summary = report.summary.set_index("n_agents")
    np.testing.assert_allclose(choices["final_gap"], summary["final_mean"])
    assert len(report.summary) == 2 and "algo.lr" not in report.summary  # lr no longer separates groups
    assert report.speedup["tuned_algo.lr"].tolist() == [0.1, 0.2]


@pytest.mark.parametrize("key", ["local_steps", "algo.local_steps"])
def test_tune_on_an_alias_or_its_full_key_merges_the_groups(tmp_path: Path, key: str) -> None:
    """local_steps is the short alias of algo.local_steps: tuning either one leaves one curve per N."""
    best = {1: 10, 2: 1}
    for n_agents in (1, 2):
        for local_steps in (1, 10):
            level = 0.2 if local_steps == best[n_agents] else 1.0
            for seed in (0, 1):
                gaps = [level * (1 + 0.1 * seed) / (1 + t) for t in range(ROUNDS + 1)]
                write_run(
                    tmp_path / "s" / f"{n_agents}_{local_steps}_{seed}",
                    "fastfedpg",
                    n_agents,
                    seed,
                    gaps,
                    local_steps=local_steps,
                )
    results, choices = tune(load_results([tmp_path / "s"]), "gap", [key])
    assert choices.set_index("n_agents")[f"tuned_{key}"].to_dict() == best
    assert sorted(results.frame.groupby("n_agents")["local_steps"].unique().map(list).sum()) == [1, 10]
    assert results.frame["run_dir"].nunique() == 4


def test_tune_on_a_key_that_varies_only_with_the_algorithm_exits_2(tmp_path: Path) -> None:
    for algo, lr in (("fastfedpg", 0.1), ("fedavg_pg", 0.2)):
        for seed in (0, 1):
            write_run(tmp_path / "s" / f"{algo}_{seed}", algo, 2, seed, [1.0, 0.5], lr=lr)
    result = fedrl("plot", str(tmp_path / "s"), "--tune", "algo.lr", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fedrl: error: --tune algo.lr: every group of runs (same algo, env, n_agents, local_steps) has one value "
        "of it only, so there is nothing to choose"
    ]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("algo.nope", "no run has this config key"),
        ("lr", "no run has this config key (did you mean algo.lr?); keys: "),
        ("env.mdp_seed", "every run has"),
        ("seed", "seeds are replicates"),
        (",", "give one or more config keys"),
    ],
)
def test_tune_on_a_key_the_runs_do_not_vary_exits_2(tmp_path: Path, key: str, message: str) -> None:
    root = tuning_sweep(tmp_path / "sweep")
    result = fedrl("plot", str(root), "--tune", key, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    prefix = "--tune:" if key == "," else f"--tune {key}:"
    assert len(lines) == 1 and f"{prefix} {message}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_speedup_has_a_bootstrap_interval_and_lists_settings_that_never_reach_the_target(tmp_path: Path) -> None:
    root = agents_sweep(tmp_path / "sweep", agents=(1, 2, 4))
    for seed in (0, 1):  # a second algorithm whose N=2 plateaus above its N=1's final level
        write_run(root / f"flat1_{seed}", "fedavg_pg", 1, seed, [1 / (1 + t) for t in range(ROUNDS + 1)])
        write_run(root / f"flat2_{seed}", "fedavg_pg", 2, seed, [0.5] * (ROUNDS + 1))
    result = fedrl("plot", str(root), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "plots" / "speedup.csv").set_index(["algo", "n_agents"])
    fast = table.loc["fastfedpg"]
    assert (fast["speedup_ci_low"] <= fast["speedup"] + 1e-12).all()
    assert (fast["speedup"] <= fast["speedup_ci_high"] + 1e-12).all()
    assert fast.loc[4, "speedup_ci_high"] > fast.loc[4, "speedup_ci_low"]  # two seeds that differ: a real interval
    assert bool(table.loc[("fedavg_pg", 2), "reached"]) is False
    assert np.isnan(table.loc[("fedavg_pg", 2), "speedup"])
    assert (tmp_path / "plots" / "speedup.png").stat().st_size > 10_000


def test_speedup_legend_names_families_that_never_reach_or_start_at_the_target(tmp_path: Path) -> None:
    """Every family has a line in the legend; one that never reaches ε says so, as does an N at ε from round 0."""
    root = agents_sweep(tmp_path / "sweep", agents=(1, 2))
    for seed in (0, 1):
        write_run(root / f"slow1_{seed}", "local_pg", 1, seed, [2.0] * ROUNDS + [1.0])
        write_run(root / f"slow2_{seed}", "local_pg", 2, seed, [0.5] * (ROUNDS + 1))  # below 1.0 from round 0
    report = make_plots(load_results([root]), tmp_path / "plots")
    labels = [label for label, _ in speedup_lines(report.speedup, "round")]
    assert labels == ["fastfedpg", "local_pg (at the target from round 0 at N=2)"]
    assert "speedup: local_pg at N=2 is at the target 1 from round 0 (T_ε = 0)" in report.notes
    # a target no curve reaches: both families still listed, and said so
    report = make_plots(load_results([root]), tmp_path / "plots_far", target=1e-3)
    labels = [label for label, _ in speedup_lines(report.speedup, "round")]
    assert labels == ["fastfedpg (target not reached)", "local_pg (target not reached)"]
    assert report.speedup["speedup"].isna().all() and not report.speedup["reached"].any()
    assert "speedup: fastfedpg at N=1, 2 never reaches the target 0.001" in report.notes
    assert (tmp_path / "plots_far" / "speedup.png").stat().st_size > 10_000


def test_speedup_interval_is_deterministic_and_tuned_values_are_legend_notes(tmp_path: Path) -> None:
    root = tuning_sweep(tmp_path / "sweep")
    first = make_plots(load_results([root]), tmp_path / "a", tune_keys=["algo.lr"]).speedup
    second = make_plots(load_results([root]), tmp_path / "b", tune_keys=["algo.lr"]).speedup
    pd.testing.assert_frame_equal(first, second)
    assert (first["speedup_ci_low"] <= first["speedup"]).all() and (first["speedup"] <= first["speedup_ci_high"]).all()
    assert [label for label, _ in speedup_lines(first, "round")] == ["fastfedpg (algo.lr* at each point)"]
