"""`fedrl reproduce`: the claim reproductions shipped in the package, run as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import fedrl


def test_reproduce_help_names_every_option_and_list_shows_the_reproductions(tmp_path: Path) -> None:
    result = fedrl("reproduce", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--out", "--jobs", "--reuse", "--seeds", "--scale", "--part", "--hopper-budget", "--workers"):
        assert option in result.stdout
    listing = fedrl("list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    section = listing.stdout.split("reproduce — claim reproductions (fedrl reproduce NAME):\n")[1].splitlines()
    assert [line.split()[0] for line in section[:2]] == ["fastfedpg", "subspace"]


def test_reproduce_fastfedpg_on_a_tiny_budget_writes_its_report_and_data(tmp_path: Path) -> None:
    arguments = ("--seeds", "1", "--scale", "0.01", "--jobs", "1", "--out", "r")  # one job at a time: less CPU
    result = fedrl("reproduce", "fastfedpg", *arguments, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    report = tmp_path / "r" / "report.md"
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("fedrl: wrote r/report.md: ") and lines[-1].endswith("of 9 of the paper's claims held")
    text = report.read_text()
    assert text.startswith("# Fast-FedPG claims, reproduced with fedrl")
    assert "Every round budget scaled by 0.01" in text
    assert text.count("| claim | held | measured |") == 4  # (a), (b), (c) and the secondary τ = 0 section
    figures = ("stationary_plots/convergence.png", "budget_plots/speedup.png", "exact/bias.png", "sampled/speedup.png")
    for figure in figures:
        assert f"]({figure})" in text and (tmp_path / "r" / figure).stat().st_size > 10_000
    assert "`fedrl run -m env=tabular" in text and "algo.rounds=3 hydra.sweep.dir=r/sampled`" in text
    # the per-seed data every number of (a) and (b) is computed from
    stationary = pd.read_csv(tmp_path / "r" / "stationary.csv")
    assert len(stationary) == 10 and set(stationary["n_agents"]) == {2, 4, 8, 16, 32}
    assert len(pd.read_csv(tmp_path / "r" / "budget.csv")) == 10
    assert (pd.read_csv(tmp_path / "r" / "floors.csv")["exact_gap"].notna()).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nope"], "NAME nope is not allowed: it must be one of fastfedpg, subspace"),
        (["fastfedpg", "--part", "tabular"], "--part applies to `fedrl reproduce subspace` only, not to fastfedpg"),
        (["fastfedpg", "--workers", "2"], "--workers applies to `fedrl reproduce subspace` only, not to fastfedpg"),
        (["fastfedpg", "--scale", "0"], "--scale 0 is not allowed: it must be a finite number > 0"),
        (["fastfedpg", "--seeds", "0"], "--seeds 0 is not allowed: it must be an integer ≥ 1"),
        (["fastfedpg", "--jobs", "0"], "--jobs 0 is not allowed: it must be -1 (one per core) or an integer ≥ 1"),
        (
            ["subspace", "--part", "deep"],
            "--part deep is not allowed: it must be one of tabular, hopper, comparison, cause, all",
        ),
        (
            ["subspace", "--hopper-budget", "huge"],
            "--hopper-budget huge is not allowed: it must be one of reduced, full",
        ),
        (
            ["fastfedpg", "--reuse"],
            "--reuse analyses the sweeps of an earlier reproduction: give its folder with --out DIR",
        ),
        (["fastfedpg", "--out", "afile"], "--out afile: it is a file, not a folder"),
    ],
)
def test_bad_reproduce_input_exits_2_in_one_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    (tmp_path / "afile").write_text("x")
    result = fedrl("reproduce", *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"fedrl: error: {message}"]
    assert "Traceback" not in result.stderr and not (tmp_path / "outputs").exists()


def test_reproduce_subspace_tabular_part_on_a_tiny_budget(tmp_path: Path) -> None:
    arguments = ("--part", "tabular", "--seeds", "2", "--scale", "0.01", "--jobs", "1", "--out", "s")
    result = fedrl("reproduce", "subspace", *arguments, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("fedrl: wrote s/tabular.md: ")
    text = (tmp_path / "s" / "tabular.md").read_text()
    assert "of 4 of the abstract's claims held" in text and "10 rounds" in text and "95% t interval" in text
    assert not (tmp_path / "s" / "report.md").exists()  # the Hopper part was not asked for
    for figure in (
        "tabular_stationary_subspace_angle/window.png",
        "tabular_random_start_subspace_angle/speedup.png",
        "tabular_actor_critic_grad_norm/convergence.png",
    ):
        assert (tmp_path / "s" / figure).stat().st_size > 10_000
    claims = pd.read_csv(tmp_path / "s" / "tabular_claims.csv")
    assert list(claims["kind"]) == ["paper"] * 4 + ["check"] * 5 + ["secondary"] * 2
