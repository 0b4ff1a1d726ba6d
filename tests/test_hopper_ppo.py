"""Federated Hopper-v5 and PPO batched over agents, on tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_PPO, fedrl, run_into, tiny_agents, tiny_ppo
from gymnasium.wrappers.utils import RunningMeanStd

from fedrl_cli.algos.fedavg_ppo import FedAvgPPO
from fedrl_cli.algos.ppo import ActorCritic, PPOAgents, clip_grad_norm_per_agent, load_model
from fedrl_cli.envs.mujoco import DEFAULT_ID, FederatedMujoco, RunningMoments, action_maps
from fedrl_cli.envs.tasks import TASKS


def test_action_maps() -> None:
    maps = action_maps("signed_permutation", 4, 3, seed=1, identity_first=True)
    np.testing.assert_array_equal(maps[0], np.eye(3))
    for matrix in maps:
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3))  # orthogonal
        assert set(np.abs(matrix).ravel()) == {0.0, 1.0}
    assert any(not np.array_equal(m, np.abs(m)) for m in maps)  # some signs flip
    permutations = action_maps("permutation", 3, 3, seed=1, identity_first=False)
    assert (permutations >= 0).all() and np.allclose(permutations.sum(axis=1), 1)
    gains = action_maps("gain", 3, 3, seed=1, identity_first=True)
    diagonal = np.diagonal(gains, axis1=1, axis2=2)
    np.testing.assert_array_equal(gains, np.stack([np.diag(d) for d in diagonal]))  # diagonal maps
    assert ((diagonal[1:] >= 0.5) & (diagonal[1:] <= 1.5)).all() and not np.allclose(diagonal[1:], 1)
    np.testing.assert_array_equal(action_maps("none", 2, 3, 0, False), np.stack([np.eye(3)] * 2))


@pytest.mark.parametrize(("kind", "most"), [("signed_permutation", 48), ("permutation", 6)])
@pytest.mark.parametrize("identity_first", [True, False])
def test_every_agent_gets_a_map_of_its_own(kind: str, most: int, identity_first: bool) -> None:
    for seed in range(3):
        maps = action_maps(kind, most, 3, seed, identity_first)
        assert len({m.tobytes() for m in maps}) == most  # all of them, each once
        if identity_first:
            np.testing.assert_array_equal(maps[0], np.eye(3))
        np.testing.assert_array_equal(action_maps(kind, 4, 3, seed, identity_first), maps[:4])  # nested in N


def test_maps_follow_the_seed_and_the_run_records_them(tmp_path: Path) -> None:
    """With action_map_seed null the maps are the run seed's; a map seed overrides the run's seed."""
    recorded = {}
    for name, overrides in {"follows": ["seed=1"], "fixed": ["seed=1", "env.action_map_seed=7"]}.items():
        result, run_dir = run_into(
            tmp_path, name, "algo=single_ppo", *TINY_PPO, "n_agents=4", "algo.rounds=0",
            "env.action_map=signed_permutation", *overrides,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        recorded[name] = json.loads((run_dir / "summary.json").read_text())["action_maps"]
    assert recorded["follows"] == action_maps("signed_permutation", 4, 3, 1, True).tolist()
    assert recorded["fixed"] == action_maps("signed_permutation", 4, 3, 7, True).tolist() != recorded["follows"]


def test_more_agents_than_distinct_maps_is_refused(tmp_path: Path) -> None:
    result = fedrl(
        "run", "algo=single_ppo", "env=hopper", "n_agents=7", "env.action_map=permutation",
        f"hydra.run.dir={tmp_path / 'r'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fedrl: error: n_agents=7 is not allowed with env.action_map=permutation: every agent gets a map of its own "
        "and only 6 distinct ones exist for Hopper-v5's 3 actuators"
    ]


def test_the_simulator_receives_the_mapped_action() -> None:
    """A federated copy stepped with a behaves as the raw Hopper-v5 stepped with clip(M_i a)."""
    maps = action_maps("signed_permutation", 2, 3, seed=3, identity_first=True)
    envs = FederatedMujoco(maps, 1, 0.99, seed=5)
    envs.reset()
    raw = gym.make(DEFAULT_ID)
    raw_obs, _ = raw.reset(seed=5 + 1)  # agent 1's copy is sub-environment 1
    rng = np.random.default_rng(0)
    for _ in range(10):
        actions = rng.uniform(-1.5, 1.5, size=(2, 1, 3))
        envs.step(actions)
        raw_obs, *_ = raw.step(np.clip(maps[1] @ np.clip(actions[1, 0], -1, 1), -1, 1))
        np.testing.assert_allclose(envs.raw_obs[1], raw_obs)
    assert not np.allclose(maps[1], np.eye(3))
    envs.close()


def test_running_moments_match_gymnasium() -> None:
    stream = np.random.default_rng(0).normal(size=(50, 3, 4))
    ours = RunningMoments.start(3, (4,))
    theirs = [RunningMeanStd(shape=(4,)) for _ in range(3)]
    for sample in stream:
        ours.update(sample)
        for copy, stats in enumerate(theirs):
            stats.update(sample[copy][None])
    np.testing.assert_allclose(ours.mean, [s.mean for s in theirs])
    np.testing.assert_allclose(ours.var, [s.var for s in theirs])


def test_batched_forward_equals_each_agents_own_network() -> None:
    torch.manual_seed(0)
    model = ActorCritic(3, 11, 3)
    obs = torch.randn(3, 5, 11)
    batched = model.actor_mean(obs)
    values = model.value(obs)
    for agent in range(3):
        x = obs[agent]
        for layer in model.actor_mean:
            x = x @ layer.weight[agent] + layer.bias[agent] if hasattr(layer, "weight") else torch.tanh(x)
        torch.testing.assert_close(batched[agent], x)
        v = obs[agent]
        for layer in model.critic:
            v = v @ layer.weight[agent] + layer.bias[agent] if hasattr(layer, "weight") else torch.tanh(v)
        torch.testing.assert_close(values[agent], v[:, 0])
    assert not torch.allclose(model.actor_mean[0].weight[0], model.actor_mean[0].weight[1])  # independent inits


def test_gradient_clipping_uses_each_agents_own_norm() -> None:
    torch.manual_seed(0)
    model = ActorCritic(2, 4, 2)
    (model.value(torch.randn(2, 8, 4)) * torch.tensor([[1.0], [100.0]])).sum().backward()
    parameters = [p for p in model.parameters() if p.grad is not None]
    expected = []
    for agent in range(2):
        grads = [p.grad[agent].clone().requires_grad_() for p in parameters]
        for g, p in zip(grads, parameters, strict=True):
            g.grad = p.grad[agent].clone()
        torch.nn.utils.clip_grad_norm_(grads, 0.5)
        expected.append([g.grad for g in grads])
    clip_grad_norm_per_agent(parameters, 0.5)
    for agent in range(2):
        for p, e in zip(parameters, expected[agent], strict=True):
            torch.testing.assert_close(p.grad[agent], e)


def surrogate_loss(agents: PPOAgents, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The clipped PPO objective plus value loss of each agent on the whole batch."""
    s = agents.settings
    with torch.no_grad():
        logprob, _, value = agents.model.evaluate_actions(batch["obs"], batch["actions"])
        ratio = (logprob - batch["logprobs"]).exp()
        adv = batch["advantages"]
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
        policy = torch.max(-adv * ratio, -adv * ratio.clamp(1 - s.clip_coef, 1 + s.clip_coef)).mean(1)
        return policy + s.vf_coef * 0.5 * ((value - batch["returns"]) ** 2).mean(1)


def test_a_ppo_update_on_a_fixed_batch_lowers_the_clipped_loss() -> None:
    agents = tiny_ppo(2)
    batch, _ = agents.collect()
    before = surrogate_loss(agents, batch)
    agents.update(batch)
    after = surrogate_loss(agents, batch)
    assert (after < before - 1e-3).all(), (before, after)
    agents.envs.close()


def test_after_a_fedavg_round_all_agents_hold_the_mean() -> None:
    agents = tiny_agents(3)
    algorithm = FedAvgPPO(agents, local_steps=1)
    agents.iterate(1)
    local = agents.parameters(agents.parameter_names)
    assert not torch.allclose(local["critic.0.weight"][0], local["critic.0.weight"][1])
    algorithm.average()
    for name, after in agents.parameters(agents.parameter_names).items():
        for agent in range(3):
            torch.testing.assert_close(after[agent], local[name].mean(0))
    size = sum(p[0].numel() for p in local.values())
    assert algorithm.channel.floats == 2 * 3 * size
    agents.close()


PPO_TINY = (*TINY_PPO, "n_agents=2", "algo.rounds=2")


@pytest.mark.parametrize(
    ("algo", "task"), [("single_ppo", "Hopper-v5"), ("fedavg_ppo", "Hopper-v5"), ("fedavg_ppo", "Swimmer-v5")]
)
def test_ppo_runs_write_the_contract_and_a_loadable_model(tmp_path: Path, algo: str, task: str) -> None:
    """On Hopper (batched physics) and on Swimmer (gymnasium's vector env, 2 actuators, 8 observations)."""
    on_task = ["env=mujoco", f"env.id={task}"] if task != "Hopper-v5" else []
    result, _ = run_into(tmp_path, "run", f"algo={algo}", *PPO_TINY, *on_task, "env.action_map=signed_permutation")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "run"
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == [
        "round",
        "samples",
        "samples_per_agent",
        "comm_floats",
        "wall_s",
        "sps",
        "return_mean",
        "eval_return_mean",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clipfrac",
    ]
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert [int(r[1]) for r in rows] == [0, 128, 256]
    assert all(r[7] != "" for r in rows[1:])  # evaluated each round
    communicated = [int(r[3]) for r in rows]
    assert (communicated[-1] > 0) == (algo == "fedavg_ppo")
    agent_rows = (out / "agent_metrics.csv").read_text().splitlines()
    assert agent_rows[0] == "round,agent,return,eval_return,policy_loss,value_loss,entropy,approx_kl,clipfrac"
    assert len(agent_rows) == 1 + 3 * 2
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    model, statistics, _, config = load_model(out / "model.pt")
    assert model.n_agents == 2 and statistics.mean.shape == (2, TASKS[task].observations)
    assert config["algo"]["name"] == algo and config["env"]["id"] == task
    evaluated = fedrl("evaluate", str(out), "--episodes", "1", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "agent 1: mean return" in evaluated.stdout


def test_ppo_runs_are_deterministic(tmp_path: Path) -> None:
    tables = []
    for name in ("a", "b"):
        result, _ = run_into(tmp_path, name, "algo=fedavg_ppo", *PPO_TINY, "seed=3")
        assert result.returncode == 0, result.stderr
        lines = (tmp_path / name / "metrics.csv").read_text().splitlines()
        tables.append([[cell for i, cell in enumerate(line.split(",")) if i not in (4, 5)] for line in lines])
    assert tables[0] == tables[1]


def test_unsupported_pairs_exit_2_listing_the_supported(tmp_path: Path) -> None:
    result = fedrl("run", "algo=fastfedpg", "env=hopper", cwd=tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "algo=fastfedpg does not run on env=hopper" in line and "single_ppo on hopper" in line
    assert len(line.splitlines()) == 1
    unknown = fedrl("run", "env=mujoco", "env.id=Foo-v5", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "fedrl: error: env.id='Foo-v5' is not allowed: it must be one of " + ", ".join(
        TASKS
    )


def test_an_agent_learns_the_same_whichever_agents_share_its_process(tmp_path: Path) -> None:
    """Per-agent generators (weights, action noise, minibatch order), per-copy environment seeds, a per-agent
    gradient norm and foreach Adam (both round the same whatever the number of agents): agents 0 and 1 of a
    4-agent single_ppo run learn bit for bit as the 2-agent run's agents do, which sharding the agent axis over
    workers relies on."""
    tables = []
    for n_agents in (2, 4):
        result, run_dir = run_into(
            tmp_path, f"n{n_agents}", "algo=single_ppo", f"n_agents={n_agents}", "algo.rounds=2", *TINY_PPO
        )
        assert result.returncode == 0, result.stderr
        frame = np.genfromtxt(run_dir / "agent_metrics.csv", delimiter=",", skip_header=1)
        tables.append(frame[frame[:, 1] < 2])
    assert tables[0].shape == (2 * 3, tables[1].shape[1])  # rounds 0, 1, 2 for two agents
    np.testing.assert_array_equal(tables[0], tables[1])
    # the agents themselves learn differently (own weights and noise), so the comparison is not vacuous
    first, second = (tables[1][tables[1][:, 1] == agent][1:, 2:] for agent in (0, 1))
    assert not np.allclose(first, second, equal_nan=True)


def test_oversized_hopper_runs_are_refused_up_front(tmp_path: Path) -> None:
    """The memory guard counts the MuJoCo copies (about 1.1 MB each), not only the rollout buffers: 4,096 copies
    with 64-step rollouts would pass on buffers alone."""
    result = fedrl("run", "algo=fedavg_ppo", "env=hopper", "n_agents=64", "env.n_envs=64", "algo.rollout_steps=64",
                   cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "n_agents=64, env.n_envs=64" in lines[0] and "MuJoCo copies" in lines[0], lines


def test_evaluate_refuses_a_bad_model_or_seed_in_one_line(tmp_path: Path) -> None:
    result, run_dir = run_into(tmp_path, "run", "algo=single_ppo", *PPO_TINY, "algo.rounds=1")
    assert result.returncode == 0, result.stderr
    good = run_dir / "model.pt"
    data = good.read_bytes()
    cases = {"seed": ["--seed", "-5"], "truncated": data[: len(data) // 2], "garbage": b"\x00not a model" * 10}
    for name, change in cases.items():
        target = tmp_path / name
        target.mkdir()
        (target / "model.pt").write_bytes(data if name == "seed" else change)
        extra = change if name == "seed" else []
        evaluated = fedrl("evaluate", str(target), "--episodes", "1", *extra, cwd=tmp_path)
        assert evaluated.returncode == 2, evaluated.stderr
        lines = evaluated.stderr.strip().splitlines()
        expected = "--seed -5 is not allowed" if name == "seed" else "is not a model this fedrl can read"
        assert len(lines) == 1 and expected in lines[0], evaluated.stderr
