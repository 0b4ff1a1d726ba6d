"""The subspace critic's parts (issue 21): the error split, the angle to the value span, well-conditioned and
nested realizable families, and the head re-expression and basis-step options."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, fedrl, run_into

from fedrl_cli.algos.common import StepSizeSchedule
from fedrl_cli.algos.fedsubspace_ac import FedSubspaceAC
from fedrl_cli.config import validate
from fedrl_cli.envs.tabular import (
    CriticMetrics,
    make_family,
    qr_positive,
    shared_subspace_fit,
    subspace_angle,
    value_condition,
)
from fedrl_cli.errors import ConfigError, Diverged


def realizable(n_agents: int, n_states: int = 12, level: str = "centred", design: str = "nested", rank: int = 3):
    return make_family(
        n_agents, n_states, 3, 0.9, 0.5, 0.5, 4, heterogeneity_design=design, value_rank=rank, value_level=level
    )


def subspace(family, lr_basis=0.3, reexpress="rotate", update="gradient", start="value_span", seed=0, rank=3):
    initial = family.value_basis if start == "value_span" else None
    return FedSubspaceAC(
        family, np.eye(family.n_states), rank, 20, 0.1, lr_basis, 0.0, np.random.default_rng(seed),
        StepSizeSchedule(), reexpress, update, initial,
    )  # fmt: skip


# ---- the error split and the angle ----------------------------------------------------------------------------


def test_error_splits_into_head_and_subspace_parts_by_hand() -> None:
    """span(ΦB) = first axis of R²; V = (3, 4), μ = (½, ½), estimate (1, 0): the part outside the span is (0, 4),
    norm √8; the head's miss inside it is (1 − 3, 0), norm √2; the total (−2, −4), norm √10."""
    family = make_family(1, 2, 1, 0.5, 0.0, 0.0, 0)
    metrics = CriticMetrics(family)
    metrics._policies = None
    values, stationary = np.array([[3.0, 4.0]]), np.array([[0.5, 0.5]])
    found = (values, stationary, np.zeros(1), np.zeros(1), np.zeros(1))
    metrics._policies = (np.zeros((1, 2, 1)), 1, found)  # the model's values replaced by the hand-built ones
    measured, _ = metrics(np.zeros((1, 2, 1)), np.array([[1.0, 0.0]]), np.array([[1.0], [0.0]]))
    assert measured["critic_subspace_error"] == pytest.approx(np.sqrt(8))
    assert measured["critic_head_error"] == pytest.approx(np.sqrt(2))
    assert measured["critic_error"] == pytest.approx(np.sqrt(10))
    assert measured["subspace_angle"] is None  # not a realizable family


def test_every_agents_error_is_head_and_subspace_in_quadrature() -> None:
    family = realizable(6)
    algorithm = subspace(family, start="random")
    metrics = CriticMetrics(family)
    for _ in range(15):
        algorithm.round()
    _, per_agent = metrics(algorithm.actors, algorithm.value_estimates(), algorithm.basis)
    np.testing.assert_allclose(
        per_agent["critic_error"] ** 2,
        per_agent["critic_head_error"] ** 2 + per_agent["critic_subspace_error"] ** 2,
        rtol=1e-10,
    )
    assert (per_agent["critic_subspace_error"] > 1e-4).all() and (per_agent["critic_head_error"] > 1e-4).all()


def test_subspace_angle_is_zero_on_the_span_and_one_orthogonal_to_it() -> None:
    family = realizable(4)
    value_basis = family.value_basis
    mixed = value_basis @ np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]])  # another basis of U
    assert subspace_angle(mixed, value_basis) == pytest.approx(0.0, abs=1e-12)
    orthogonal = np.linalg.qr(np.column_stack([value_basis, np.random.default_rng(0).normal(size=(12, 3))]))[0]
    assert subspace_angle(orthogonal[:, 3:], value_basis) == pytest.approx(1.0)
    tilted = np.column_stack([value_basis[:, :2], np.cos(0.3) * value_basis[:, 2] + np.sin(0.3) * orthogonal[:, 3]])
    assert subspace_angle(tilted, value_basis) == pytest.approx(np.sin(0.3))


# ---- families ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [2, 3])
def test_nested_families_extend_without_changing_their_first_agents(rank: int) -> None:
    largest = realizable(16, rank=rank)
    assert not largest.shared_transitions
    for n_agents in (3, 4, 8):
        family = realizable(n_agents, rank=rank)
        np.testing.assert_array_equal(family.rewards, largest.rewards[:n_agents])
        np.testing.assert_array_equal(family.transitions, largest.transitions[:n_agents])
        np.testing.assert_array_equal(family.value_basis, largest.value_basis)
    # the transitions differ across agents (heterogeneity kept)
    assert np.abs(largest.transitions[0] - largest.transitions[1]).max() > 0.05


def test_centred_families_are_realizable_without_a_level_and_well_conditioned() -> None:
    """The values lie in U ⊥ 1, and σ₁/σ_r in U's coordinates stays below 5 from K = 4 on (the offset family's
    level makes it above 50)."""
    for n_agents in (4, 8, 16, 32):
        family = realizable(n_agents, n_states=100)
        values, _ = family.values_and_stationary(np.zeros(family.rewards.shape))
        basis = family.value_basis
        assert np.abs(values - values @ basis @ basis.T).max() < 1e-10
        np.testing.assert_allclose(basis.T @ np.ones(100), 0.0, atol=1e-12)
        assert value_condition(family) < 5
        assert family.rewards.min() >= -0.5 and family.rewards.max() <= 0.5
    assert value_condition(realizable(16, n_states=100, level="offset")) > 50
    assert value_condition(realizable(2)) is None  # two agents cannot fill three directions


# ---- the algorithm's options ----------------------------------------------------------------------------------


def test_rotate_keeps_every_agents_function_under_the_averaged_basis() -> None:
    family = realizable(5)
    algorithm = subspace(family, start="random", lr_basis=1.0)
    algorithm.round()
    for _ in range(algorithm.local_steps):  # a round stopped before the server's step
        algorithm.local_step()
    average = algorithm.local_bases.mean(axis=0)
    before = np.einsum("dr,nr->nd", average, algorithm.heads)  # Φ B̄ w_i
    algorithm.local_steps = 0  # the server's step alone
    algorithm.local_bases[:] = average  # every agent's copy is the average: the QR step then re-expresses only
    algorithm.round()
    np.testing.assert_allclose(algorithm.value_estimates(), before, atol=1e-12)
    assert not np.allclose(algorithm.basis, average)  # B itself changed: the heads carried the function over


def test_head_rules_differ_and_the_booleans_alias_them() -> None:
    family = realizable(4)
    heads = {}
    for rule in ("project", "rotate", "none", True, False):
        algorithm = subspace(family, start="random", reexpress=rule, lr_basis=1.0)
        for _ in range(5):
            algorithm.round()
        heads[rule] = algorithm.heads
    assert not np.allclose(heads["project"], heads["rotate"]) and not np.allclose(heads["rotate"], heads["none"])
    np.testing.assert_array_equal(heads[True], heads["project"])
    np.testing.assert_array_equal(heads[False], heads["none"])


def test_a_fixed_true_subspace_stays_put() -> None:
    family = realizable(4)
    algorithm = subspace(family, lr_basis=0.0)
    metrics = CriticMetrics(family)
    for _ in range(10):
        algorithm.round()
        measured, _ = metrics(algorithm.actors, algorithm.value_estimates(), algorithm.basis)
        assert measured["subspace_angle"] == pytest.approx(0.0, abs=1e-12)
        assert measured["critic_subspace_error"] == pytest.approx(0.0, abs=1e-12)
    assert measured["critic_head_error"] > 0  # the heads' floor is what is left


def test_preconditioned_steps_every_direction_at_one_rate_and_count_its_messages() -> None:
    family = realizable(6)
    plain, scaled = (
        subspace(family, start="random", lr_basis=0.01),
        subspace(family, start="random", lr_basis=0.01, update="preconditioned"),
    )
    for algorithm in (plain, scaled):
        for _ in range(3):
            algorithm.round()
    assert not np.allclose(plain.basis, scaled.basis)
    moments = (scaled.heads[:, :, None] * scaled.heads[:, None, :]).mean(axis=0)
    scaled.round()
    ridge = 1e-3 * np.trace(moments) / 3
    np.testing.assert_allclose(scaled.preconditioner @ (moments + ridge * np.eye(3)), np.eye(3), atol=1e-8)
    # per round: the bases (N·d·r) up and B down to each agent, plus w_i w_iᵀ (N·r²) up and the inverse down
    assert plain.channel.floats == 3 * 2 * 6 * 12 * 3
    assert scaled.channel.floats == 4 * (2 * 6 * 12 * 3 + 2 * 6 * 9)


def test_a_diverging_basis_step_stops_in_one_line() -> None:
    algorithm = subspace(realizable(4), start="random", lr_basis=1e4, update="preconditioned")
    with pytest.raises(Diverged, match=r"lower algo\.lr_basis"):
        for _ in range(50):
            algorithm.round()


def test_the_angle_falls_with_the_number_of_agents_at_stationarity() -> None:
    """Constant steps from U: the stationary angle (mean over rounds 100–200, 3 seeds) is smaller at K = 16 than
    at K = 4 (the direction of the claim, not its slope)."""
    angles = {}
    for n_agents in (4, 16):
        family = realizable(n_agents, n_states=30)
        found = []
        for seed in range(3):
            algorithm = subspace(family, lr_basis=0.3, seed=seed)
            for round_index in range(200):
                algorithm.round()
                if round_index >= 100:
                    found.append(subspace_angle(algorithm.basis, family.value_basis))
        angles[n_agents] = np.mean(found)
    assert angles[16] < 0.75 * angles[4]


def test_the_fit_with_one_hot_features_matches_the_general_normal_equations() -> None:
    """Features of rank S take the per-state solve; a rotated copy of them (the same span) the Kronecker one."""
    family = make_family(6, 9, 3, 0.9, 0.7, 0.6, mdp_seed=2)
    theta = np.random.default_rng(1).normal(size=(6, 9, 3))
    values, stationary = family.values_and_stationary(theta)
    rotated = np.linalg.qr(np.random.default_rng(2).normal(size=(9, 9)))[0][:, :8]  # rank 8 < S: general path
    full = np.column_stack([rotated, np.linalg.svd(rotated)[0][:, 8]])  # rank 9: per-state path
    fast = shared_subspace_fit(full, values, stationary, 2)
    np.testing.assert_allclose(fast, shared_subspace_fit(np.eye(9), values, stationary, 2), rtol=1e-8)
    assert fast.mean() <= shared_subspace_fit(rotated, values, stationary, 2).mean() + 1e-12  # a larger span


def test_qr_positive_is_the_factorisation() -> None:
    matrix = np.random.default_rng(3).normal(size=(7, 3))
    q, r = qr_positive(matrix)
    np.testing.assert_allclose(q @ r, matrix, atol=1e-12)
    assert (np.diag(r) > 0).all()


# ---- through the CLI -------------------------------------------------------------------------------------------

OPTIONS = ["algo=fedsubspace_ac", "env.value_rank=3", "env.n_states=12", "env.heterogeneity_design=nested"]


def test_cli_records_the_value_condition_and_the_new_columns(tmp_path: Path) -> None:
    result, run_dir = run_into(
        tmp_path, "run", *OPTIONS, "n_agents=4", "algo.rounds=5", "algo.basis_init=value_span", "algo.lr_basis=0"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 1 <= summary["value_condition"] < 10
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"critic_subspace_error", "critic_head_error", "subspace_angle"} <= set(header)
    last = (run_dir / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert float(last[header.index("subspace_angle")]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["algo.reexpress_heads=spin"], "algo.reexpress_heads='spin'"),
        (["algo.basis_update=newton"], "algo.basis_update='newton'"),
        (["algo.basis_init=svd"], "algo.basis_init='svd'"),
        (["env.value_level=high"], "env.value_level='high'"),
        (["env.heterogeneity_design=mixed"], "env.heterogeneity_design='mixed'"),
        (["algo.basis_init=value_span", "algo.rank=2"], "algo.basis_init=value_span"),
        (["env.value_rank=12"], "env.value_rank=12"),
    ],
)
def test_bad_options_are_refused_naming_the_key(overrides: list[str], named: str) -> None:
    """Validation names the key and value (the CLI turns it into one line and exit 2, as the next test shows)."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        validate(compose_config(*OPTIONS, *overrides))


def test_value_span_without_a_realizable_family_exits_2_in_one_line(tmp_path: Path) -> None:
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    result = fedrl("run", "algo=fedsubspace_ac", "algo.basis_init=value_span", run_dir, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "algo.basis_init=value_span is not allowed with env.value_rank=null" in lines[0]


def test_a_checkpoint_from_before_the_named_rules_keeps_its_rules() -> None:
    """Checkpoints written before reexpress_heads and basis_update had names hold two booleans."""
    algorithm = subspace(realizable(4), start="random")
    state = dict(algorithm.__dict__)
    del state["head_reexpression"], state["basis_step"]
    state.update(reexpress_heads=False, projected=True)
    restored = FedSubspaceAC.__new__(FedSubspaceAC)
    restored.__setstate__(state)
    assert (restored.head_reexpression, restored.basis_step) == ("none", "projected")
    restored.round()  # and it runs
