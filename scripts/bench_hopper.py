"""Benchmark: federated Hopper-v5 PPO throughput (environment steps per second), end to end, in one process.

Prints: plain gymnasium Hopper-v5 stepped with random actions on one core (the env-only rate, the reference);
fedavg_ppo with CleanRL's PPO settings (2048 steps per agent per iteration, 10 epochs of 32 minibatches) and
signed-permutation maps at N = 1, 4, 8 with ``backend=local`` (batched physics, the default; at N = 8 also
gymnasium's own envs, ``env.vector=sync``, and two physics threads) and at N = 4, 8 with ``backend=ray workers=2``
(one local Ray instance started here; rollouts, updates, averaging and the transfers to and from the workers
included); and single_ppo at N = 1 next to a CleanRL-style loop (one environment, gymnasium's wrappers, torch
acting step by step, the same hyperparameters), which is what fedrl's single-agent path is measured against.
Each figure is the environment steps of ``--iterations`` timed PPO iterations (after one warm-up) over their
wall time. Run with `make bench` or `python scripts/bench_hopper.py [--iterations K]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from fedrl_cli.envs.mujoco import DEFAULT_ID, OBS_CLIP, REWARD_CLIP
from fedrl_cli.experiments import MujocoExperiment

SETTINGS = {"rollout_steps": 2048, "update_epochs": 10, "minibatches": 32, "lr": 3e-4, "gamma": 0.99}


def env_only_rate(seconds: float) -> float:
    """Steps per second of one plain Hopper-v5 with random actions, best of three spans."""
    env = gym.make(DEFAULT_ID)
    env.reset(seed=0)
    env.action_space.seed(0)
    best = 0.0
    for _ in range(3):
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            if terminated or truncated:
                env.reset()
        best = max(best, steps / (time.perf_counter() - start))
    env.close()
    return best


def config(algo: str, n_agents: int, iterations: int, placement: tuple[str, ...]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fedrl_cli.app import CONF_DIR

    overrides = [
        f"algo={algo}",
        "env=hopper",
        f"n_agents={n_agents}",
        "env.action_map=signed_permutation",
        "algo.local_steps=1",
        f"algo.rounds={iterations + 1}",
        "algo.eval_every=0",
        *placement,
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)


def fedrl_rate(algo: str, n_agents: int, iterations: int, *placement: str) -> float:
    """End-to-end environment steps per second of ``iterations`` rounds of one PPO iteration each, with the
    ``placement`` overrides (backend, workers, env.vector, env.physics_threads)."""
    experiment = MujocoExperiment(config(algo, n_agents, iterations, placement))
    experiment.round()  # warm-up
    start, steps = time.perf_counter(), experiment.env_steps
    for _ in range(iterations):
        experiment.round()
    rate = (experiment.env_steps - steps) / (time.perf_counter() - start)
    experiment.close()
    return rate


def layer(n_in: int, n_out: int, std: float) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, std)
    nn.init.zeros_(linear.bias)
    return linear


class CleanRLAgent(nn.Module):
    """CleanRL's ``ppo_continuous_action`` agent: separate 64-64 tanh critic and actor, state-independent log-std."""

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        root2 = np.sqrt(2)
        self.critic = nn.Sequential(
            layer(obs_dim, 64, root2), nn.Tanh(), layer(64, 64, root2), nn.Tanh(), layer(64, 1, 1)
        )
        self.actor_mean = nn.Sequential(
            layer(obs_dim, 64, root2), nn.Tanh(), layer(64, 64, root2), nn.Tanh(), layer(64, action_dim, 0.01)
        )
        self.actor_logstd = nn.Parameter(torch.zeros(1, action_dim))

    def act(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        mean = self.actor_mean(obs)
        distribution = torch.distributions.Normal(mean, self.actor_logstd.expand_as(mean).exp())
        action = distribution.sample() if action is None else action
        value = self.critic(obs).squeeze(-1)
        return action, distribution.log_prob(action).sum(-1), distribution.entropy().sum(-1), value


def cleanrl_env() -> gym.vector.SyncVectorEnv:
    def make() -> gym.Env:
        env = gym.make(DEFAULT_ID)
        env = gym.wrappers.FlattenObservation(env)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = gym.wrappers.ClipAction(env)
        env = gym.wrappers.NormalizeObservation(env)
        env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -OBS_CLIP, OBS_CLIP), env.observation_space)
        env = gym.wrappers.NormalizeReward(env, gamma=SETTINGS["gamma"])
        return gym.wrappers.TransformReward(env, lambda r: float(np.clip(r, -REWARD_CLIP, REWARD_CLIP)))

    return gym.vector.SyncVectorEnv([make])


def cleanrl_style_rate(iterations: int) -> float:
    """Steps per second of a CleanRL-style PPO loop (one environment, torch per step), same hyperparameters."""
    torch.manual_seed(0)
    envs = cleanrl_env()
    obs_dim, action_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    agent = CleanRLAgent(obs_dim, action_dim)
    optimizer = torch.optim.Adam(agent.parameters(), lr=SETTINGS["lr"], eps=1e-5)
    steps, epochs, minibatches = SETTINGS["rollout_steps"], SETTINGS["update_epochs"], SETTINGS["minibatches"]
    gamma, lam, clip = SETTINGS["gamma"], 0.95, 0.2
    next_obs = torch.tensor(envs.reset(seed=0)[0], dtype=torch.float32)
    next_done = torch.zeros(1)
    elapsed = 0.0
    for iteration in range(iterations + 1):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = (1.0 - iteration / (iterations + 1)) * SETTINGS["lr"]
        obs, actions = torch.zeros(steps, 1, obs_dim), torch.zeros(steps, 1, action_dim)
        logprobs, rewards, dones, values = (torch.zeros(steps, 1) for _ in range(4))
        for step in range(steps):
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.act(next_obs)
            actions[step], logprobs[step], values[step] = action, logprob, value
            observation, reward, terminated, truncated, _ = envs.step(action.numpy())
            rewards[step] = torch.tensor(reward, dtype=torch.float32)
            next_obs = torch.tensor(observation, dtype=torch.float32)
            next_done = torch.tensor(np.logical_or(terminated, truncated), dtype=torch.float32)
        with torch.no_grad():
            next_value = agent.critic(next_obs).squeeze(-1)
            advantages, last = torch.zeros_like(rewards), 0.0
            for t in reversed(range(steps)):
                nonterminal = 1.0 - (next_done if t == steps - 1 else dones[t + 1])
                following = next_value if t == steps - 1 else values[t + 1]
                delta = rewards[t] + gamma * following * nonterminal - values[t]
                advantages[t] = last = delta + gamma * lam * nonterminal * last
            returns = advantages + values
        b_obs, b_actions = obs.reshape(-1, obs_dim), actions.reshape(-1, action_dim)
        b_logprobs, b_adv, b_returns, b_values = (x.reshape(-1) for x in (logprobs, advantages, returns, values))
        size = steps // minibatches
        for _ in range(epochs):
            order = np.random.permutation(steps)
            for begin in range(0, steps, size):
                index = order[begin : begin + size]
                _, logprob, entropy, value = agent.act(b_obs[index], b_actions[index])
                ratio = (logprob - b_logprobs[index]).exp()
                adv = (b_adv[index] - b_adv[index].mean()) / (b_adv[index].std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                clipped = b_values[index] + (value - b_values[index]).clamp(-clip, clip)
                value_loss = 0.5 * torch.max((value - b_returns[index]) ** 2, (clipped - b_returns[index]) ** 2).mean()
                loss = policy_loss - 0.0 * entropy.mean() + 0.5 * value_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()
        if iteration > 0:  # the first iteration warms up
            elapsed += time.perf_counter() - start
    envs.close()
    return iterations * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations per setting (after a warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    reference = env_only_rate(6.0)
    print(f"fedrl Hopper-v5 benchmark — torch {torch.__version__}, gymnasium {gym.__version__}, ray {ray.__version__}")
    print(f"{os.cpu_count()} cores; CleanRL's PPO settings, signed-permutation maps, {args.iterations} timed iters")
    print(f"env-only: plain {DEFAULT_ID}, random actions, one core: {reference:,.0f} steps/s\n")
    print(f"{'run':52} {'steps/s':>9} {'vs env-only':>12} {'vs local':>9}")

    def show(label: str, rate: float, local: float | None = None) -> None:
        versus = f"{rate / local:>8.2f}×" if local else ""
        print(f"{label:52} {rate:>9,.0f} {rate / reference:>11.0%} {versus}", flush=True)

    local: dict[int, float] = {}
    for n_agents in (1, 4, 8):
        local[n_agents] = fedrl_rate("fedavg_ppo", n_agents, args.iterations)
        show(f"fedavg_ppo N={n_agents}, backend=local", local[n_agents])
    show(
        "fedavg_ppo N=8, local, env.vector=sync (gymnasium)",
        fedrl_rate("fedavg_ppo", 8, args.iterations, "env.vector=sync"),
        local[8],
    )
    show(
        "fedavg_ppo N=8, local, env.physics_threads=2",
        fedrl_rate("fedavg_ppo", 8, args.iterations, "env.physics_threads=2"),
        local[8],
    )
    for n_agents in (4, 8):
        rate = fedrl_rate("fedavg_ppo", n_agents, args.iterations, "backend=ray", "workers=2")
        show(f"fedavg_ppo N={n_agents}, backend=ray workers=2", rate, local[n_agents])
    single = fedrl_rate("single_ppo", 1, args.iterations)
    cleanrl = cleanrl_style_rate(args.iterations)
    show("single_ppo N=1, backend=local", single)
    show("CleanRL-style loop (1 env, torch per step)", cleanrl)
    print(f"\nsingle_ppo / CleanRL-style: {single / cleanrl:.2f}×")
    ray.shutdown()


if __name__ == "__main__":
    main()
