"""The Hopper report's analysis (`fedrl reproduce subspace --part hopper`) on synthetic evaluation rows with known
answers: scores from the last evaluations, paired tests, per-agent comparisons against the pooled single_ppo
agents, the maps' premises, aggregates, and transfer credited against scratch and control trunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedrl_cli.reproduce.hopper_data import NORMS
from fedrl_cli.reproduce.subspace_hopper import (
    FEDAVG,
    OURS,
    SCRATCH,
    SINGLE,
    hopper_analysis,
    transfer_analysis,
    transfer_columns,
    transfer_figure,
)

ROUNDS = (4, 8, 12, 16)


def evaluation(algo: str, seed: int, agent: int, level: float, **extra: object) -> list[dict]:
    """An agent's evaluations: 0 at round 4, then ``level`` (so its score, the last three, is ``level`` and its
    curve area ¾ of it)."""
    return [
        {
            "algo": algo,
            "variant": algo,
            "seed": seed,
            "agent": agent,
            "map": f"map {seed} {agent}",
            "round": t,
            "samples_per_agent": 1000 * t,
            "eval_return": level if t > 4 else 0.0,
            **dict.fromkeys(NORMS, 1.0),
            **extra,
        }
        for t in ROUNDS
    ]


def comparison(seeds: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for agent in range(4):
            single = 1000.0 + 50 * rng.normal()
            rows += evaluation(SINGLE, seed, agent, single)
            rows += evaluation(OURS, seed, agent, single + 100 + 40 * agent)  # +160 over the agents' mean
            rows += evaluation(FEDAVG, seed, agent, single - (0 if agent == 0 else 600))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def analysed() -> dict:
    """(ii)'s analysis of :func:`comparison` (computed once: its permutation tests take seconds)."""
    return hopper_analysis(comparison())


def test_scores_paired_tests_and_claims(analysed: dict) -> None:
    found = analysed
    rows = found["rows"]
    assert len(rows) == 3 * 10 * 4
    assert np.allclose(rows["curve_area"], 0.75 * rows["score"])  # the last 3 of 4 evaluations are the level
    differences = found["differences"].set_index("difference")
    # ours − single is +160 on every seed: a zero-width interval; the sign-flip test's smallest p is 2/2^10
    assert differences.loc[f"{OURS} − {SINGLE}", "score"] == "+160 [+160, +160] (paired t, 10 pairs), p = 0.002"
    assert differences.loc[f"{FEDAVG} − {SINGLE}", "score"].startswith("-450 [-450, -450]")
    claims = {claim: held for claim, held, _ in found["claims"]}
    assert len(claims) == 2 and all(claims.values())
    assert all(held for _, held, _ in found["checks"])  # distinct maps per run, the same across algorithms
    summary = found["summary"].set_index("algo")
    assert summary.loc[OURS, "seeds"] == 10 and summary.loc[OURS, "actor_mean.0 norm"] == 1.0


def test_a_claim_fails_when_the_difference_straddles_zero() -> None:
    frame = comparison()
    noise = np.random.default_rng(1).normal(0, 300, size=10)
    ours = frame.algo == OURS
    frame.loc[ours, "eval_return"] -= 160 * (frame.loc[ours, "round"] > 4) + noise[frame.loc[ours, "seed"]] * (
        frame.loc[ours, "round"] > 4
    )
    found = hopper_analysis(frame)
    held = {claim.split(":")[0]: ok for claim, ok, _ in found["claims"]}
    assert held[f"Gains over {SINGLE}"] is False


def test_per_agent_against_the_pooled_single_agents(analysed: dict) -> None:
    table = analysed["per_agent"].set_index("agent")
    pooled = table[f"{SINGLE} (all agents)"].iloc[0]
    assert table[f"{SINGLE} (all agents)"].nunique() == 1  # one pool for every agent
    assert np.isclose(table.loc[3, OURS] - pooled, 220, atol=40)  # +100 + 40·3 over that agent's own single runs
    assert table.loc[2, f"{FEDAVG} − pooled"].startswith("-6")  # about −600, Welch over 10 seeds against 40
    assert "Welch t, 10 seeds" in table.loc[0, f"{OURS} − pooled"]


def test_aggregates_over_runs_and_agents(analysed: dict) -> None:
    table, improvement, notes = analysed["aggregates"]
    iqm = table[(table.group == OURS) & (table.statistic == "IQM")].iloc[0]
    assert iqm.ci_low <= iqm.point <= iqm.ci_high and iqm.runs == 10 and iqm.tasks == 4
    better = improvement[(improvement.x == OURS) & (improvement.y == FEDAVG)].iloc[0]
    assert better.probability > 0.7
    assert not notes
    few = hopper_analysis(comparison(seeds=4))["aggregates"]
    assert few[0].empty and "at least 10 runs" in few[2][0]  # percentile bootstraps need 10 runs


def test_maps_premises_fail_on_a_duplicate_or_an_unpaired_map() -> None:
    frame = comparison()
    frame.loc[(frame.algo == OURS) & (frame.seed == 3) & (frame.agent == 1), "map"] = "map 3 0"
    checks = {claim: held for claim, held, _ in hopper_analysis(frame)["checks"]}
    assert list(checks.values()) == [False, False]


def transfer_frame() -> pd.DataFrame:
    """Targets 0–4 from scratch (level 1,000 + 10·seed), and from trunks of sources 0–2 of each algorithm: ours
    trainable +300, frozen −100; single_ppo's trainable +100; fedavg_ppo's +300 + 20·(source seed − 1)."""
    rows = []
    gains = {(OURS, "trainable"): 300, (OURS, "frozen"): -100, (SINGLE, "trainable"): 100,
             (SINGLE, "frozen"): -100, (FEDAVG, "trainable"): 300, (FEDAVG, "frozen"): -100}  # fmt: skip
    for seed in range(5):
        scratch = 1000.0 + 10 * seed
        rows += evaluation(SINGLE, seed, 0, scratch, source=SCRATCH, trunk=SCRATCH, source_seed=None)
        for (source, trunk), gain in gains.items():
            for source_seed in range(3):
                level = scratch + gain + (20 * (source_seed - 1) if source == FEDAVG else 0)
                rows += evaluation(SINGLE, seed, 0, level, source=source, trunk=trunk, source_seed=source_seed)
    return pd.DataFrame(rows)


def test_transfer_against_scratch_and_control_trunks(tmp_path: Path) -> None:
    frame = transfer_frame()
    found = transfer_analysis(frame)
    differences = found["differences"].set_index("difference")
    assert differences.loc[f"{OURS} trainable trunk − scratch", "final score"].startswith("+300 [+300, +300]")
    assert "(paired t, 5 pairs)" in differences.loc[f"{OURS} trainable trunk − scratch", "final score"]
    versus_single = f"{OURS} trainable trunk − a trainable {SINGLE} trunk of the same budget"
    assert differences.loc[versus_single, "curve area"].startswith("+150 [+150, +150]")  # ¾ of +200
    held = [ok for _, ok, _ in found["claims"]]
    assert held == [True, True, False]  # beats scratch and single_ppo's trunk, not fedavg_ppo's (equal on average)
    assert [ok for _, ok, _ in found["secondary"]] == [False, False, False]  # frozen: below scratch, equal to both
    summary = found["summary"].set_index(["trunk from", "trunk"])
    assert summary.loc[(SCRATCH, SCRATCH), "runs"] == 5 and summary.loc[(OURS, "frozen"), "runs"] == 15
    path = transfer_figure(frame, tmp_path / "transfer.png")
    assert path.stat().st_size > 10_000  # seven curves drawn


def test_a_transfer_run_finds_its_source_under_out_when_its_recorded_path_is_gone(tmp_path: Path) -> None:
    """Runs unpacked or analysed from another directory: ``trunk_from`` (relative to where the run was launched)
    no longer leads anywhere, and the source is read from the same sweep and job dir under ``out``."""
    from fedrl_cli.algos.ppo import ActorCritic, save_model
    from fedrl_cli.envs.mujoco import RunningMoments

    source = tmp_path / "out" / "hopper_fedsubspace_ac" / "0_fedsubspace_ac_hopper_seed=10"
    source.mkdir(parents=True)
    moments = RunningMoments(np.zeros((1, 11)), np.ones((1, 11)), np.ones(1))
    save_model(source / "model.pt", ActorCritic(1, 11, 3), moments, np.eye(3)[None],
               {"algo": {"name": OURS}, "seed": 10})  # fmt: skip
    recorded = "elsewhere/hopper_fedsubspace_ac/0_fedsubspace_ac_hopper_seed=10"
    config = {"algo": {"name": SINGLE, "trunk_from": recorded, "freeze_trunk": True}, "seed": 3}
    found = transfer_columns(config, tmp_path / "out")
    assert (found["source"], found["source_seed"], found["trunk"], found["seed"]) == (OURS, 10, "frozen", 3)
    with pytest.raises(ValueError, match=r"model\.pt"):
        transfer_columns(config, tmp_path / "nowhere")
