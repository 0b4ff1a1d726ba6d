"""`fedrl plot` and the results loader on run dirs with known numbers, so every figure's table is exact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import fedrl

from fedrl_cli.curves import PlotError, curves, speedup_lines, speedup_table
from fedrl_cli.plots import PlotReport, draw_convergence, draw_speedup, fixed_settings, make_plots
from fedrl_cli.results import NoRuns, Results, load_results
from fedrl_cli.stats import Target, tune

ROUNDS = 8


def write_run_dir(path: Path, config: dict, metrics: dict[str, list[float]], status: str = "completed") -> Path:
    """A run dir as `fedrl run` writes it: summary.json with ``config``, metrics.csv with one row per round (the
    leading columns, then ``metrics``)."""
    path.mkdir(parents=True)
    summary = {"status": status, "config": config}
    if status != "completed":
        summary.update(error="round 3: objective is nan (the run diverged)", error_type="diverged")
    (path / "summary.json").write_text(json.dumps(summary))
    rounds = np.arange(len(next(iter(metrics.values()))))
    n_agents = config["n_agents"]
    leading = {
        "round": rounds,
        "samples": 100 * n_agents * rounds,
        "samples_per_agent": 100 * rounds,
        "comm_floats": 30 * rounds,
        "wall_s": 0.1 * rounds,
    }
    pd.DataFrame({**leading, **metrics}).to_csv(path / "metrics.csv", index=False)
    return path


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
) -> Path:
    """A tabular run with the gap curve ``gaps`` (objective 1 − gap, grad_norm = gap)."""
    config = {
        "env": {"name": "tabular", "reward_heterogeneity": heterogeneity, "mdp_seed": 0},
        "algo": {"name": algo, "local_steps": local_steps, "rounds": len(gaps) - 1, "lr": lr},
        "n_agents": n_agents,
        "seed": seed,
        "progress": False,
    }
    metrics = {"objective": list(1 - np.array(gaps)), "gap": gaps, "grad_norm": gaps}
    return write_run_dir(path, config, metrics, status)


def agents_sweep(root: Path, agents=(1, 2, 4)) -> Path:
    """gap_N(t) = s / (1 + N·t) for seeds with s = 0.9 and 1.1: the seed mean reaches 1/(1+8) at t = 8/N."""
    for n_agents in agents:
        for seed, scale in enumerate((0.9, 1.1)):
            gaps = [scale / (1 + n_agents * t) for t in range(ROUNDS + 1)]
            write_run(root / f"{n_agents}_{seed}", "fastfedpg", n_agents, seed, gaps)
    return root


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
    for seed in (0, 1):  # a second algorithm whose N=2 plateaus at 0.5, above its N=1's final level 1/9
        write_run(root / f"flat1_{seed}", "fedavg_pg", 1, seed, [1 / (1 + t) for t in range(ROUNDS + 1)])
        write_run(root / f"flat2_{seed}", "fedavg_pg", 2, seed, [0.5] * (ROUNDS + 1))
    result = fedrl("plot", str(root), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "plots" / "speedup.csv").set_index(["algo", "n_agents"])
    fast = table.loc["fastfedpg"]
    assert (fast["speedup_ci_low"] <= fast["speedup"] + 1e-12).all()
    assert (fast["speedup"] <= fast["speedup_ci_high"] + 1e-12).all()
    assert fast.loc[4, "speedup_ci_high"] > fast.loc[4, "speedup_ci_low"]  # two seeds that differ: a real interval
    assert (fast["rounds_to_target_ci_low"] <= fast["rounds_to_target"]).all()
    assert (fast["rounds_to_target"] <= fast["rounds_to_target_ci_high"]).all()
    # the default ε, per algorithm, is its largest final level across N: every setting reaches it
    assert table["reached"].all()
    assert table.loc["fedavg_pg", "target"].tolist() == [0.5, 0.5]
    # a target the plateau never reaches: listed as not reached, with an empty speedup
    result = fedrl("plot", str(root), "--out", str(tmp_path / "fixed"), "--target", "0.2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "fixed" / "speedup.csv").set_index(["algo", "n_agents"])
    assert bool(table.loc[("fedavg_pg", 2), "reached"]) is False
    assert np.isnan(table.loc[("fedavg_pg", 2), "speedup"])
    assert table.loc["fastfedpg", "speedup"].tolist() == [1.0, 2.0, 4.0]  # 1/(1+Nt) ≤ 0.2 from t = 4/N
    assert "speedup: fedavg_pg at N=2 never reaches the target 0.2" in result.stdout
    assert (tmp_path / "fixed" / "speedup.png").stat().st_size > 10_000


def test_speedup_legend_names_families_that_never_reach_or_start_at_the_target(tmp_path: Path) -> None:
    """Every family has a line in the legend; one that never reaches ε says so, as does an N at ε from round 0."""
    root = agents_sweep(tmp_path / "sweep", agents=(1, 2))
    for seed in (0, 1):
        write_run(root / f"slow1_{seed}", "local_pg", 1, seed, [2.0] * ROUNDS + [1.0])
        write_run(root / f"slow2_{seed}", "local_pg", 2, seed, [0.5] * (ROUNDS + 1))  # below 1.0 from round 0
    report = make_plots(load_results([root]), tmp_path / "plots")
    labels = [label for label, _ in speedup_lines(report.speedup, "round")]
    assert labels == ["fastfedpg (ε = 0.111)", "local_pg (ε = 1; at the target from round 0 at N=2)"]
    assert "speedup: local_pg at N=2 is at the target 1 from round 0 (T_ε = 0)" in report.notes
    # a target no curve reaches: both families still listed, and said so
    report = make_plots(load_results([root]), tmp_path / "plots_far", target=1e-3)
    labels = [label for label, _ in speedup_lines(report.speedup, "round")]
    assert labels == ["fastfedpg (ε = 0.001; target not reached)", "local_pg (ε = 0.001; target not reached)"]
    assert report.speedup["speedup"].isna().all() and not report.speedup["reached"].any()
    assert "speedup: fastfedpg at N=1, 2 never reaches the target 0.001" in report.notes
    assert (tmp_path / "plots_far" / "speedup.png").stat().st_size > 10_000


def test_speedup_interval_is_deterministic_and_tuned_values_are_legend_notes(tmp_path: Path) -> None:
    root = tuning_sweep(tmp_path / "sweep")
    first = make_plots(load_results([root]), tmp_path / "a", tune_keys=["algo.lr"]).speedup
    second = make_plots(load_results([root]), tmp_path / "b", tune_keys=["algo.lr"]).speedup
    pd.testing.assert_frame_equal(first, second)
    assert (first["speedup_ci_low"] <= first["speedup"]).all() and (first["speedup"] <= first["speedup_ci_high"]).all()
    assert [label for label, _ in speedup_lines(first, "round")] == ["fastfedpg (ε = 0.0556; algo.lr* at each point)"]


# damaged runs: what a killed writer, a full disk or a stray edit leaves behind


def cut_mid_row(path: Path) -> None:
    """Cut ``path`` in its last row's 4th field, as a writer killed mid-write leaves it."""
    rows, last = path.read_text().rstrip("\n").rsplit("\n", 1)
    fields = last.split(",")
    path.write_text(f"{rows}\n{','.join(fields[:3])},{fields[3][:1]}")


DAMAGES = {
    "cut": (
        lambda run: cut_mid_row(run / "metrics.csv"),
        "metrics.csv: its last row is cut short (4 of 8 fields, no end of line), although the run completed",
    ),
    "binary": (
        lambda run: (run / "metrics.csv").write_bytes(bytes(range(256)) * 4),
        "metrics.csv is not a text CSV file (binary data)",
    ),
    "array": (
        lambda run: (run / "summary.json").write_text("[1, 2]"),
        "summary.json is not a JSON object (it holds an array)",
    ),
    "number": (
        lambda run: (run / "summary.json").write_text("3"),
        "summary.json is not a JSON object (it holds a number)",
    ),
}


def test_damaged_runs_are_listed_with_the_reason_and_the_rest_plotted(tmp_path: Path) -> None:
    root = agents_sweep(tmp_path / "s", agents=(1, 2))
    for name, (damage, _) in DAMAGES.items():
        damage(write_run(root / name, "fastfedpg", 4, 0, [1.0, 0.5, 0.25]))
    result = fedrl("plot", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name, (_, reason) in DAMAGES.items():
        assert f"skipped (unreadable) {root / name}: {reason}" in result.stdout
    assert result.stdout.startswith("fedrl: 4 runs plotted")
    assert sorted(pd.read_csv(root / "plots" / "summary.csv")["n_agents"]) == [1, 2]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_alone_exits_2_naming_the_file(tmp_path: Path, damage: str) -> None:
    apply, reason = DAMAGES[damage]
    run = write_run(tmp_path / "run", "fastfedpg", 2, 0, [1.0, 0.5, 0.25])
    apply(run)
    result = fedrl("plot", str(run), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"fedrl: error: nothing to plot: {run / reason}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_failed_run_cut_mid_row_keeps_its_complete_rows(tmp_path: Path) -> None:
    root = agents_sweep(tmp_path / "s", agents=(1, 2))
    broken = write_run(root / "broken", "fastfedpg", 4, 0, [1.0, 0.5, 0.25, 0.2], status="failed")
    cut_mid_row(broken / "metrics.csv")
    result = fedrl("plot", str(root), "--include-failed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{broken / 'metrics.csv'}: its last row, cut short (4 of 8 fields, no end of line), is left out" in (
        result.stdout
    )
    summary = pd.read_csv(root / "plots" / "summary.csv").set_index("n_agents")
    assert summary.loc[4, "rounds"] == 2 and summary.loc[4, "final_mean"] == 0.25


def test_out_that_is_a_file_exits_2_naming_it(tmp_path: Path) -> None:
    agents_sweep(tmp_path / "s", agents=(1,))
    (tmp_path / "figs").write_text("not a folder")
    for out, message in (
        (tmp_path / "figs", "it is a file, not a folder"),
        (tmp_path / "figs" / "sub", "the folder cannot be created (Not a directory)"),
    ):
        result = fedrl("plot", str(tmp_path / "s"), "--out", str(out), cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"fedrl: error: --out {out}: {message}"]


# runs of several families: each plotted in its own default metric, or left out of one it lacks


def tabular_run(path: Path, seed: int, algo: str, metrics: dict[str, list[float]]) -> Path:
    """A tabular run with transition heterogeneity (J* unknown, so no gap) and the given metrics."""
    config = {
        "env": {"name": "tabular", "reward_heterogeneity": 0.5, "transition_heterogeneity": 0.5, "mdp_seed": 0},
        "algo": {"name": algo, "rounds": len(next(iter(metrics.values()))) - 1, "local_steps": 5},
        "n_agents": 2,
        "seed": seed,
    }
    return write_run_dir(path, config, {"gap": [np.nan] * len(next(iter(metrics.values()))), **metrics})


def hopper_run(path: Path, seed: int, rounds: int = 4) -> Path:
    """A Hopper PPO run evaluated every other round (no evaluation at round 0)."""
    config = {
        "env": {"name": "hopper", "action_map": "signed_permutation", "action_map_seed": 0},
        "algo": {"name": "fedavg_ppo", "rounds": rounds, "local_steps": 2},
        "n_agents": 2,
        "seed": seed,
    }
    steps = range(rounds + 1)
    metrics = {
        "return_mean": [10.0 * t + seed if t else np.nan for t in steps],
        "eval_return_mean": [12.0 * t + seed if t and t % 2 == 0 else np.nan for t in steps],
        "sps": [np.nan] + [100.0] * rounds,
    }
    return write_run_dir(path, config, metrics)


def mixed_runs(root: Path) -> Path:
    """Two seeds each of: tabular PG with J* known (gap), tabular PG without (objective), the subspace
    actor-critic on tabular (critic_error) and PPO on Hopper (eval_return_mean)."""
    for seed in (0, 1):
        write_run(root / f"known_{seed}", "fastfedpg", 2, seed, [1.0, 0.5, 0.25, 0.2, 0.1])
        tabular_run(root / f"unknown_{seed}", seed, "fastfedpg", {"objective": [5.0, 5.5, 5.7, 5.8, 5.9 + seed]})
        errors = [1 / (1 + t) for t in range(5)]
        tabular_run(root / f"subspace_{seed}", seed, "fedsubspace_ac", {"critic_error": errors, "objective": errors})
        hopper_run(root / f"hopper_{seed}", seed)
    return root


def test_mixed_families_are_each_plotted_in_their_default_metric(tmp_path: Path) -> None:
    root = mixed_runs(tmp_path / "mixed")
    result = fedrl("plot", str(root), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fedrl: 8 runs plotted in 4 metrics, a subfolder each")
    finals = {}
    for metric in ("gap", "objective", "critic_error", "eval_return_mean"):
        summary = pd.read_csv(tmp_path / "plots" / metric / "summary.csv")
        assert summary["metric"].tolist() == [metric] and summary["seeds"].tolist() == [2]
        assert (tmp_path / "plots" / metric / "convergence.png").stat().st_size > 10_000
        finals[metric] = summary["final_mean"].iloc[0]
    # Hopper: the evaluation return (12·4 + seed), not the training return
    assert finals == pytest.approx({"gap": 0.1, "objective": 6.4, "critic_error": 0.2, "eval_return_mean": 48.5})
    assert (
        "the runs are plotted in their families' default metrics (gap, objective, critic_error, eval_return_mean)\n"
        in result.stdout
    )  # no metric every family has, so none to suggest
    # one --target cannot mean the same for a gap, a return and an error
    result = fedrl("plot", str(root), "--target", "0.1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "fedrl: error: --target 0.1: the runs are plotted in several metrics (gap, objective, critic_error, "
        "eval_return_mean); choose one with --metric"
    ]


def test_a_sweep_over_transition_heterogeneity_plots_gap_and_objective(tmp_path: Path) -> None:
    """Runs with transition heterogeneity have no gap (J* unknown): their default is the objective."""
    for seed in (0, 1):
        write_run(tmp_path / "s" / f"0_{seed}", "fastfedpg", 2, seed, [1.0, 0.5, 0.25])
        tabular_run(tmp_path / "s" / f"1_{seed}", seed, "fastfedpg", {"objective": [5.0, 5.5, 6.0]})
    result = fedrl("plot", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "plotted in their families' default metrics (gap, objective); --metric objective plots them all" in (
        result.stdout
    )
    assert pd.read_csv(tmp_path / "s" / "plots" / "gap" / "summary.csv")["final_mean"].tolist() == [0.25]
    assert pd.read_csv(tmp_path / "s" / "plots" / "objective" / "summary.csv")["final_mean"].tolist() == [6.0]


def test_groups_without_the_metric_are_left_out_and_listed(tmp_path: Path) -> None:
    root = mixed_runs(tmp_path / "mixed")
    result = fedrl("plot", str(root), "--metric", "gap", "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = pd.read_csv(tmp_path / "plots" / "summary.csv")
    assert summary["final_mean"].tolist() == [0.1]
    left_out = [line.strip() for line in result.stdout.splitlines() if "left out of the gap figures" in line]
    assert len(left_out) == 3
    assert any(line.endswith("(2 runs): no gap values; it has return_mean, eval_return_mean, sps") for line in left_out)
    assert any("fedsubspace_ac" in line and line.endswith("it has objective, critic_error") for line in left_out)


def test_a_group_without_its_familys_metrics_is_left_out_by_default(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path / "s" / f"tabular_{seed}", "fastfedpg", 2, seed, [1.0, 0.5])
        hopper = hopper_run(tmp_path / "s" / f"hopper_{seed}", seed)
        metrics = pd.read_csv(hopper / "metrics.csv")
        metrics.drop(columns=["return_mean", "eval_return_mean"]).to_csv(hopper / "metrics.csv", index=False)
    report = make_plots(load_results([tmp_path / "s"]), tmp_path / "plots")
    assert report.metric == "gap" and report.plotted == 2
    assert any(
        note.startswith("left out of the figures: fedavg_ppo")
        and note.endswith("(2 runs): none of its family's metrics eval_return_mean, return_mean; it has sps")
        for note in report.notes
    ), report.notes


# speedup: a target every setting reaches, rounds to it from the seed-mean curve


def noisy_agents_sweep(root: Path, rng: np.random.Generator, rounds: int = 20) -> Path:
    """The `+sweep=agents` preset's runs (N = 1, 2, 4, 8, 16; seeds 0-2) with the curves Fast-FedPG's theory
    predicts: from an initial gap that differs per N (each N its own MDP family) down like 1/(1 + 0.3·N·t) to a
    floor 0.5/N, with sampling noise of size 0.3/√N per round."""
    for n_agents in (1, 2, 4, 8, 16):
        start = rng.uniform(1.4, 2.1)
        for seed in range(3):
            t = np.arange(rounds + 1)
            floor = 0.5 / n_agents
            noise = 0.3 / np.sqrt(n_agents) * rng.standard_normal(rounds + 1) * (t > 0)
            gaps = np.abs(floor + (start - floor) / (1 + 0.3 * n_agents * t) + noise)
            write_run(root / f"{n_agents}_{seed}", "fastfedpg", n_agents, seed, gaps.tolist())
    return root


def test_speedup_on_the_agents_preset_grows_with_n_when_final_gaps_fall(tmp_path: Path) -> None:
    """A noisy N=1 curve that touches its final level early made N=2 look slower than N=1 (speedup 0.83 here
    with ε = N=1's final level, first reached); ε = the largest final level, held to the end, does not."""
    root = noisy_agents_sweep(tmp_path / "sweep", np.random.default_rng(2))
    result = fedrl("plot", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    speedup = pd.read_csv(root / "plots" / "speedup.csv").sort_values("n_agents")
    finals = pd.read_csv(root / "plots" / "summary.csv").sort_values("n_agents")["final_mean"].to_numpy()
    assert (np.diff(finals) < 0).all()  # the precondition: more agents end lower
    assert speedup["reached"].all()
    assert (np.diff(speedup["speedup"]) >= 0).all() and (speedup["speedup"] >= 1).all()
    assert speedup["target"].iloc[0] == pytest.approx(finals.max())
    assert (speedup["target_rule"] == "the largest final level across N").all()


def test_speedup_grows_with_n_whenever_final_gaps_fall_over_many_noisy_sweeps(tmp_path: Path) -> None:
    tested = 0
    for draw in range(40):
        root = noisy_agents_sweep(tmp_path / str(draw), np.random.default_rng(draw))
        found = sorted(curves(load_results([root]), "gap", "round"), key=lambda curve: curve.keys["n_agents"])
        finals = np.array([curve.mean[-1] for curve in found])
        if (np.diff(finals) < 0).all():
            tested += 1
            speedup = speedup_table(found, "gap", "round", Target())["speedup"].to_numpy()
            assert (np.diff(speedup) >= 0).all(), (draw, speedup, finals)
    assert tested >= 15


def test_every_speedup_and_rounds_to_target_lies_inside_its_own_interval(tmp_path: Path) -> None:
    """One rule for a point and its interval (the median and percentiles of the same bootstrap draws): over many
    noisy sweeps and every target rule, no point of the speedup table falls outside its interval."""
    checked = 0
    for draw in range(6):
        found = curves(
            load_results([noisy_agents_sweep(tmp_path / str(draw), np.random.default_rng(draw))]), "gap", "round"
        )
        for target in (Target(), Target(fraction=0.3), Target(value=0.4)):
            table = speedup_table(found, "gap", "round", target)
            for name in ("speedup", "rounds_to_target"):
                point, low, high = (table[f"{name}{end}"].to_numpy() for end in ("", "_ci_low", "_ci_high"))
                finite = np.isfinite(point)
                assert (np.isfinite(low) == finite).all() and (np.isfinite(high) == finite).all()
                assert (low[finite] <= point[finite]).all() and (point[finite] <= high[finite]).all(), (draw, name)
                checked += finite.sum()
            assert (table["reached"] == np.isfinite(table["rounds_to_target"])).all()
    assert checked > 100


def test_target_fraction_of_the_initial_level(tmp_path: Path) -> None:
    sweep = agents_sweep(tmp_path / "sweep")
    result = fedrl("plot", str(sweep), "--target-fraction", "0.2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    speedup = pd.read_csv(sweep / "plots" / "speedup.csv").sort_values("n_agents")
    # the seed-mean starts at 1 for every N: ε = 0.2, reached by 1/(1+Nt) from t = 4/N
    assert speedup["target"].tolist() == pytest.approx([0.2] * 3)
    assert speedup["rounds_to_target"].tolist() == [4, 2, 1]
    assert speedup["speedup"].tolist() == [1.0, 2.0, 4.0]
    assert speedup["target_rule"].iloc[0] == "--target-fraction 0.2 of the largest initial level across N"


@pytest.mark.parametrize("target", ["nan", "inf", "-1"])
def test_a_target_that_is_not_finite_and_positive_exits_2(tmp_path: Path, target: str) -> None:
    agents_sweep(tmp_path / "s", agents=(1, 2))
    result = fedrl("plot", str(tmp_path / "s"), "--target", target, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"fedrl: error: --target {target} is not allowed: it must be a finite number > 0"
    ]


def test_bad_target_fractions_are_plot_errors(tmp_path: Path) -> None:
    results = load_results([agents_sweep(tmp_path / "s", agents=(1, 2))])
    for options, message in (
        ({"target_fraction": 1.5}, "--target-fraction 1.5 is not allowed: it must be a number in (0, 1)"),
        ({"target_fraction": 0.5, "target": 0.1}, "--target and --target-fraction: give one of them, not both"),
        ({"target_fraction": 0.5, "metric": "objective"}, "--target-fraction: objective is a metric where higher"),
    ):
        with pytest.raises(PlotError, match=re.escape(message)):
            make_plots(results, tmp_path / "plots", **options)


def test_a_target_nothing_reaches_warns(tmp_path: Path) -> None:
    sweep = agents_sweep(tmp_path / "s", agents=(1, 2))
    result = fedrl("plot", str(sweep), "--target", "1e-9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "fedrl: warning: no setting's seed-mean gap reaches ε (--target 1e-09) and stays there: speedup.csv has no "
        "speedups; try a larger target"
    ]
    speedup = pd.read_csv(sweep / "plots" / "speedup.csv")
    assert not speedup["reached"].any()
    assert "target not reached" in speedup_lines(speedup, "round")[0][0]


def test_speedup_figure_gives_each_algorithm_its_target_and_plain_ticks(tmp_path: Path) -> None:
    root = agents_sweep(tmp_path / "s", agents=(1, 2, 4, 8, 16))
    for n_agents in (1, 2, 4, 8, 16):
        for seed, scale in enumerate((0.9, 1.1)):
            gaps = [2 * scale / (1 + n_agents * t) for t in range(ROUNDS + 1)]
            write_run(root / f"avg_{n_agents}_{seed}", "fedavg_pg", n_agents, seed, gaps)
    report = make_plots(load_results([root]), tmp_path / "plots")
    figure, axis = plt.subplots()
    draw_speedup(axis, report.speedup, "gap", "round", "fixed: env=tabular")
    figure.canvas.draw()
    labels = axis.get_legend_handles_labels()[1]
    assert labels == ["fastfedpg (ε = 0.111)", "fedavg_pg (ε = 0.222)", "ideal: speedup = N/1"]
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["1", "2", "4", "8", "16"]
    shown = [tick.get_text() for tick in axis.get_yticklabels() if tick.get_text()]
    assert "1" in shown and "16" in shown and not any("$" in text or "^" in text for text in shown)
    assert "ε: the largest final level across N, per algorithm (legend)" in axis.get_title()
    plt.close(figure)


# figures that say what they show; groups that are never pooled


def test_convergence_figure_names_its_fixed_settings_and_band(tmp_path: Path) -> None:
    for seed in (0, 1):  # three rounds: short enough for fractional ticks
        write_run(tmp_path / "s" / f"a{seed}", "fastfedpg", 4, seed, [1.0, 0.6, 0.3 + 0.1 * seed, 0.2])
    write_run(tmp_path / "s" / "b", "fastfedpg", 8, 0, [1.0, 0.5, 0.2, 0.1])
    results = load_results([tmp_path / "s"])
    found = curves(results, "gap", "round")
    figure, axis = plt.subplots()
    draw_convergence(axis, found, "gap", "round", fixed_settings(results, found))
    figure.canvas.draw()
    title = axis.get_title()
    assert "band: 95% t interval over each curve's seeds (in the legend; none for 1 seed)" in title
    assert "fixed: env=tabular, algo=fastfedpg, H=5, h_r=0.5, η=0.1, T=3; 1–2 seeds per curve" in title
    assert axis.get_legend_handles_labels()[1] == ["fastfedpg N=4 (2 seeds)", "fastfedpg N=8 (1 seed, no band)"]
    assert len(axis.collections) == 1  # one band: none for the single seed
    assert all(float(tick).is_integer() for tick in axis.get_xticks())
    plt.close(figure)
    two = [curve for curve in found if curve.seeds == 2]
    config = {"env": {"name": "mujoco", "id": "Walker2d-v5"}, "algo": {"name": "single_ppo"}, "n_agents": 2, "seed": 0}
    write_run_dir(tmp_path / "m" / "0", config, {"eval_return_mean": [1.0, 2.0]})
    mujoco = load_results([tmp_path / "m"])
    assert fixed_settings(mujoco, curves(mujoco, "eval_return_mean", "round")).startswith(
        "fixed: env=mujoco, env.id=Walker2d-v5, algo=single_ppo"
    )  # the task is named, not only env=mujoco
    figure, axis = plt.subplots()
    draw_convergence(axis, two, "gap", "round")
    assert "band: 95% t interval over 2 seeds" in axis.get_title()
    plt.close(figure)


def test_runs_that_differ_in_rounds_are_separate_groups_counting_distinct_seeds(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for seed in (0, 1, 2):
        write_run(root / f"short_{seed}", "fastfedpg", 2, seed, [1 / (1 + t) for t in range(5)])
    for name, seed in (("long_0", 0), ("long_1", 1), ("long_0_again", 0)):  # seed 0 run twice: one seed
        write_run(root / name, "fastfedpg", 2, seed, [0.5 / (1 + t) for t in range(9)])
    result = fedrl("plot", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(root / "plots" / "summary.csv").set_index("algo.rounds")
    assert summary["seeds"].to_dict() == {4: 3, 8: 2}
    assert summary["final_mean"].to_dict() == pytest.approx({4: 1 / 5, 8: 0.5 / 9})
    assert "fastfedpg T=8: 3 runs of 2 distinct seeds; runs with the same seeds are averaged" in result.stdout


def test_groups_beyond_the_colour_cycle_differ_in_line_style(tmp_path: Path) -> None:
    for index in range(12):
        write_run(tmp_path / "s" / str(index), "fastfedpg", 2, 0, [1.0, 0.5 - 0.01 * index], lr=0.01 * (index + 1))
    found = curves(load_results([tmp_path / "s"]), "gap", "round")
    figure, axis = plt.subplots()
    draw_convergence(axis, found, "gap", "round")
    styles = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in axis.get_lines()}
    assert len(found) == 12 and len(styles) == 12
    plt.close(figure)


def test_window_levels_and_their_slope_on_known_curves(tmp_path: Path) -> None:
    """gap_N(t) = 1 for t < 4, then s/N (seed multipliers s = 0.8, 1.0, 1.2): over the last half of 8 rounds the
    level is exactly mean(s)/N, and the slope of the levels against N is −1."""
    root = tmp_path / "s"
    for n_agents in (1, 2, 4, 8):
        for seed, scale in enumerate((0.8, 1.0, 1.2)):
            gaps = [1.0] * 4 + [scale / n_agents] * (ROUNDS - 3)
            write_run(root / f"{n_agents}_{seed}", "fastfedpg", n_agents, seed, gaps)
    result = fedrl("plot", str(root), "--window", "0.5", "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(tmp_path / "plots" / "summary.csv").sort_values("n_agents")
    assert summary["window_mean"].tolist() == pytest.approx([1.0, 0.5, 0.25, 0.125])
    assert (summary["window_ci_low"] < summary["window_mean"]).all()
    assert (summary["window_mean"] < summary["window_ci_high"]).all()
    assert (summary["window_interval"] == "t").all()
    slopes = pd.read_csv(tmp_path / "plots" / "window_slopes.csv")
    assert slopes["slope"].tolist() == pytest.approx([-1.0])
    assert slopes["slope_ci_low"].iloc[0] < -1 < slopes["slope_ci_high"].iloc[0]
    image = matplotlib.image.imread(tmp_path / "plots" / "window.png")
    assert image.shape[0] > 300 and image.std() > 0
    # the whole run (F = 1) counts the transient too
    result = fedrl("plot", str(root), "--window", "1", "--out", str(tmp_path / "all"), cwd=tmp_path)
    whole = pd.read_csv(tmp_path / "all" / "summary.csv").sort_values("n_agents")["window_mean"]
    assert whole.tolist() == pytest.approx([(4 + 5 / n) / 9 for n in (1, 2, 4, 8)])
    bad = fedrl("plot", str(root), "--window", "1.5", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["fedrl: error: --window 1.5 is not allowed: it must be a number in (0, 1]"]
