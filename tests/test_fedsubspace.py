"""Federated subspace actor-critic, linear form: its equations, its sharing and its claims on small MDPs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_PPO, fedrl, run_into, tiny_agents, tiny_ppo

from fedrl_cli.algos.fedsubspace_ac import FedSubspaceAC, make_features, orthonormalise
from fedrl_cli.envs.tabular import CriticMetrics, make_family, softmax, subspace_distance


def build(
    n_agents=4,
    n_states=6,
    rank=3,
    local_steps=10,
    lr_head=0.1,
    lr_basis=0.001,
    lr_actor=0.05,
    transition_heterogeneity=0.5,
    seed=0,
    features="onehot",
):
    family = make_family(n_agents, n_states, 3, 0.9, 0.5, transition_heterogeneity, mdp_seed=1)
    rng = np.random.default_rng(seed)
    phi = make_features(features, n_states, 4, rng)
    return FedSubspaceAC(family, phi, rank, local_steps, lr_head, lr_basis, lr_actor, rng), family


def test_qr_keeps_the_shared_basis_orthonormal_after_every_round() -> None:
    algorithm, _ = build(lr_basis=0.01)
    for _ in range(20):
        algorithm.round()
        np.testing.assert_allclose(algorithm.basis.T @ algorithm.basis, np.eye(3), atol=1e-12)
        # every agent starts the next round from the broadcast basis
        assert all(np.array_equal(b, algorithm.basis) for b in algorithm.local_bases)
    assert algorithm.channel.floats == 20 * 2 * 4 * 6 * 3


def test_orthonormalise_is_a_deterministic_q_factor() -> None:
    matrix = np.random.default_rng(0).normal(size=(6, 3))
    q = orthonormalise(matrix)
    r = q.T @ matrix
    np.testing.assert_allclose(q @ r, matrix, atol=1e-12)
    assert np.all(np.diag(r) > 0) and np.allclose(np.tril(r, -1), 0, atol=1e-12)


def test_one_agent_full_rank_onehot_is_plain_actor_critic() -> None:
    """N = 1, r = d, one-hot features and a fixed basis: V = Bw moves exactly as tabular TD(0) and the actor
    as the one-step actor-critic, written here directly on the same random draws."""
    algorithm, family = build(n_agents=1, n_states=5, rank=5, local_steps=7, lr_basis=0.0, seed=3)
    rng = np.random.default_rng(3)
    rng.normal(size=(5, 5))  # the initial basis draw
    state = rng.integers(5, size=1)[0]
    values, theta = np.zeros(5), np.zeros((5, 3))
    for _ in range(4 * 7):
        u = rng.random((2, 1))[:, 0]
        pi = softmax(theta[state])
        action = int((np.cumsum(pi)[:-1] <= u[0]).sum())
        reward = family.rewards[0, state, action]
        following = int((np.cumsum(family.transitions[0, state, action])[:-1] <= u[1]).sum())
        delta = reward + family.gamma * values[following] - values[state]
        values[state] += 0.1 * delta
        theta[state] += 0.05 * delta * (np.eye(3)[action] - pi)
        state = following
    for _ in range(4):
        algorithm.round()
    np.testing.assert_allclose(algorithm.value_estimates()[0], values, atol=1e-10)
    np.testing.assert_allclose(algorithm.actors[0], theta, atol=1e-10)
    assert algorithm.states[0] == state and np.abs(values).max() > 0.1


def test_policy_evaluation_mode_drives_the_critic_error_down() -> None:
    algorithm, family = build(n_agents=4, lr_actor=0.0, rank=6)
    metrics = CriticMetrics(family)
    start = metrics(algorithm.actors, algorithm.value_estimates(), algorithm.basis)[0]["critic_error"]
    for _ in range(300):
        algorithm.round()
    found = metrics(algorithm.actors, algorithm.value_estimates(), algorithm.basis)[0]
    assert start > 3.0 and found["critic_error"] < 0.3
    assert np.all(algorithm.actors == 0)  # policies untouched
    assert found["subspace_distance"] < 1e-9  # full rank: the span holds every value function


def test_the_markov_chains_continue_across_rounds() -> None:
    """With fixed (uniform) policies the chains do not depend on the critics: two rounds of 5 steps visit the
    same states as one round of 10, so no state is redrawn between rounds."""
    two_rounds, _ = build(local_steps=5, lr_actor=0.0, seed=4)
    one_round, _ = build(local_steps=10, lr_actor=0.0, seed=4)
    two_rounds.round()
    middle = two_rounds.states.copy()
    two_rounds.round()
    one_round.round()
    np.testing.assert_array_equal(two_rounds.states, one_round.states)
    assert two_rounds.samples == one_round.samples == 4 * 10
    assert not np.array_equal(middle, two_rounds.states)


def test_subspace_distance() -> None:
    """The share of the values' weighted energy outside the span: 0 when it holds them, 1 when orthogonal."""
    rng = np.random.default_rng(0)
    vectors, stationary = rng.normal(size=(2, 6)), rng.dirichlet(np.ones(6), size=2)
    holding = np.hstack([vectors.T, np.ones((6, 1))])
    assert subspace_distance(holding, vectors, stationary) == pytest.approx(0, abs=1e-12)
    orthogonal = np.linalg.svd(vectors.T)[0][:, 2:3]
    assert subspace_distance(orthogonal, vectors, np.full((2, 6), 1 / 6)) == pytest.approx(1.0)


def test_cli_run_of_the_linear_form(tmp_path: Path) -> None:
    result, _ = run_into(
        tmp_path,
        "run",
        "algo=fedsubspace_ac",
        "env=tabular",
        "n_agents=8",
        "env.transition_heterogeneity=0.5",
        "algo.rounds=5",
        "progress=false",
    )
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header == (
        "round,samples,samples_per_agent,comm_floats,wall_s,critic_error,critic_subspace_error,critic_head_error,"
        "subspace_angle,grad_norm,objective,subspace_distance,critic_floor,critic_excess"
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["algo"]["rank"] == 3
    bad, _ = run_into(tmp_path, "bad", "algo=fedsubspace_ac", "algo.rank=9")
    assert bad.returncode == 2 and "algo.rank=9 is not allowed" in bad.stderr


# ---- deep form (shared-trunk PPO on Hopper) and transfer ----------------------------------------------------

DEEP_TINY = (*TINY_PPO, "algo.rounds=1")
TRUNK = ["actor_mean.0", "actor_mean.2", "critic.0", "critic.2"]


def test_after_a_round_the_trunk_is_shared_and_the_heads_are_not() -> None:
    from fedrl_cli.algos.fedsubspace_ppo import FedSubspacePPO
    from fedrl_cli.algos.trunk import in_layers

    agents = tiny_agents(3, "fedsubspace_ac")
    algorithm = FedSubspacePPO(agents, local_steps=1, shared_layers=TRUNK)
    algorithm.round()
    shared_size = 0
    for name, parameter in agents.parameters(agents.parameter_names).items():
        same = all(np.allclose(parameter[0], parameter[i]) for i in range(1, 3))
        assert same == in_layers(name, TRUNK), name
        shared_size += parameter[0].numel() if in_layers(name, TRUNK) else 0
    assert algorithm.channel.floats == 2 * 3 * shared_size
    agents.close()


def test_transfer_loads_the_trunk_exactly_and_a_frozen_trunk_stays(tmp_path: Path) -> None:
    import torch

    from fedrl_cli.algos.ppo import load_model
    from fedrl_cli.algos.trunk import apply_trunk, in_layers, read_trunk

    trained, source = run_into(
        tmp_path, "source", "algo=fedsubspace_ac", *DEEP_TINY, "n_agents=2", "env.action_map=signed_permutation"
    )
    assert trained.returncode == 0, trained.stderr
    trunk = {
        name: p[0].detach().clone()
        for name, p in load_model(source / "model.pt")[0].named_parameters()
        if in_layers(name, TRUNK)
    }
    read = read_trunk(source, 11, 3)
    assert sorted(read) == sorted(trunk)
    ppo = tiny_ppo(2)
    apply_trunk(ppo.model, read, freeze=True)
    for name, parameter in ppo.model.named_parameters():
        if name in trunk:
            for agent in range(2):
                torch.testing.assert_close(parameter[agent].detach(), trunk[name], rtol=0, atol=0)
    heads_before = ppo.model.actor_mean[4].weight.detach().clone()
    ppo.iterate()
    for name, parameter in ppo.model.named_parameters():
        if name in trunk:
            torch.testing.assert_close(parameter[0].detach(), trunk[name], rtol=0, atol=0)  # frozen
    assert not torch.allclose(ppo.model.actor_mean[4].weight, heads_before)  # the heads learn
    ppo.envs.close()

    result, new_agent = run_into(
        tmp_path,
        "new",
        "algo=single_ppo",
        *DEEP_TINY,
        "n_agents=1",
        "env.action_map=signed_permutation",
        "env.action_map_seed=999",
        "env.identity_first=false",
        f"algo.trunk_from={source}",
        "algo.freeze_trunk=true",
    )
    assert result.returncode == 0, result.stderr
    assert f"loaded from {source}" in result.stdout
    summary = json.loads((new_agent / "summary.json").read_text())
    assert summary["config"]["algo"]["trunk_from"] == str(source) and summary["status"] == "completed"
    # a control trunk: a single_ppo run's agent 0 hidden layers (this transfer run is one)
    control = read_trunk(new_agent, 11, 3)
    assert sorted(control) == sorted(f"{layer}.{kind}" for layer in TRUNK for kind in ("weight", "bias"))
    for name, parameter in load_model(new_agent / "model.pt")[0].named_parameters():
        if name in control:
            torch.testing.assert_close(control[name][0], parameter[0].detach(), rtol=0, atol=0)
    tabular, tabular_dir = run_into(tmp_path, "tabular", "algo=fastfedpg", "algo.rounds=1")
    assert tabular.returncode == 0, tabular.stderr
    wrong = fedrl("run", "algo=single_ppo", "env=hopper", f"algo.trunk_from={tabular_dir}", cwd=tmp_path)
    assert wrong.returncode == 2 and "it holds a completed fastfedpg run on tabular" in wrong.stderr
