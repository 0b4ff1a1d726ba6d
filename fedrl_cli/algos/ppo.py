"""PPO for N agents at once (CleanRL's ``ppo_continuous_action``), the core of single_ppo and fedavg_ppo.

Every parameter is stacked over agents (leading axis N) and every layer is one batched matmul, so acting and
each minibatch update are one call for all agents. Agents stay independent: the loss is the sum of the
agents' own losses, Adam is elementwise, and gradient clipping uses each agent's own norm. Defaults and
equations follow CleanRL: GAE(λ), clipped surrogate, clipped value loss, advantage normalisation per
minibatch, separate 64-64 tanh actor and critic with orthogonal init and a state-independent log-std.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedrl_cli.envs.mujoco import DEFAULT_ID, FederatedMujoco, RunningMoments
from fedrl_cli.envs.tasks import TASKS
from fedrl_cli.metrics import atomic_file
from fedrl_cli.seeding import agent_generators, agent_torch_generators


@dataclass(frozen=True)
class PPOSettings:
    rollout_steps: int = 2048
    update_epochs: int = 10
    minibatches: int = 32
    lr: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = True
    norm_adv: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5


class StackedLinear(nn.Module):
    """N independent linear layers: (N, B, in) → (N, B, out), orthogonally initialised per agent, each from its
    own generator when ``generators`` are given (so an agent's weights do not depend on the other agents)."""

    def __init__(
        self, n_agents: int, n_in: int, n_out: int, std: float, generators: list[torch.Generator] | None = None
    ) -> None:
        super().__init__()
        weight = torch.empty(n_agents, n_out, n_in)
        for agent in range(n_agents):
            nn.init.orthogonal_(weight[agent], std, generator=generators[agent] if generators else None)
        self.weight = nn.Parameter(weight.transpose(1, 2).contiguous())
        self.bias = nn.Parameter(torch.zeros(n_agents, 1, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[-1] == 1:
            # a single output (the value head): a batched matmul of one agent takes a matrix-vector path that
            # rounds differently from a batch of agents, so it is a product and a sum, which round per agent
            return (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


def stacked_mlp(
    n_agents: int,
    n_in: int,
    n_out: int,
    out_std: float,
    generators: list[torch.Generator] | None = None,
    hidden: int = 64,
) -> nn.Sequential:
    root2 = math.sqrt(2)
    return nn.Sequential(
        StackedLinear(n_agents, n_in, hidden, root2, generators),
        nn.Tanh(),
        StackedLinear(n_agents, hidden, hidden, root2, generators),
        nn.Tanh(),
        StackedLinear(n_agents, hidden, n_out, out_std, generators),
    )


class ActorCritic(nn.Module):
    """The N agents' actors and critics; names follow CleanRL (``critic``, ``actor_mean``, ``actor_logstd``)."""

    def __init__(
        self, n_agents: int, obs_dim: int, action_dim: int, generators: list[torch.Generator] | None = None
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.critic = stacked_mlp(n_agents, obs_dim, 1, 1.0, generators)
        self.actor_mean = stacked_mlp(n_agents, obs_dim, action_dim, 0.01, generators)
        self.actor_logstd = nn.Parameter(torch.zeros(n_agents, 1, action_dim))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """(N, B, obs_dim) → (N, B)."""
        return self.critic(obs).squeeze(-1)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of ``actions`` (N, B, A) under the policies, and values (N, B)."""
        mean = self.actor_mean(obs)
        distribution = torch.distributions.Normal(mean, self.actor_logstd.expand_as(mean).exp(), validate_args=False)
        return distribution.log_prob(actions).sum(-1), distribution.entropy().sum(-1), self.value(obs)


class NumpyActor:
    """The agents' policies and critics evaluated in numpy on views of the (stacked) torch parameters."""

    def __init__(self, model: ActorCritic) -> None:
        def layers(net: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in net if isinstance(m, StackedLinear)]

        self.actor, self.critic = layers(model.actor_mean), layers(model.critic)
        self.log_std = model.actor_logstd.detach().numpy()  # (N, 1, A)

    @staticmethod
    def _mlp(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
        for index, (weight, bias) in enumerate(layers):
            x = x @ weight + bias
            if index < len(layers) - 1:
                x = np.tanh(x)
        return x

    def value(self, obs: np.ndarray) -> np.ndarray:
        return self._mlp(self.critic, obs)[..., 0]

    def mean(self, obs: np.ndarray) -> np.ndarray:
        """The policies' mean actions (N, B, A): the deterministic policies."""
        return self._mlp(self.actor, obs)

    def act(self, obs: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gaussian actions (N, B, A) for observations (N, B, obs_dim) and standard normal ``noise`` (N, B, A),
        their log-probabilities and values."""
        mean = self.mean(obs)
        std = np.exp(self.log_std)
        logprob = (-0.5 * noise**2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        return mean + std * noise, logprob, self.value(obs)


def server_parameters(seed: int, obs_dim: int, action_dim: int) -> dict[str, torch.Tensor]:
    """The server's one draw of every parameter (CleanRL's initialisation, from the run's ``seed`` under its own
    purpose, not from any agent's stream): parameter name → values with leading axis 1. Drawn on one thread, as the
    agents draw theirs (a multithreaded QR rounds differently), so the draw is the same in any process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ActorCritic(1, obs_dim, action_dim, agent_torch_generators(seed, "shared_init", range(1)))
    finally:
        torch.set_num_threads(threads)
    return {name: parameter.detach() for name, parameter in model.named_parameters()}


def clip_grad_norm_per_agent(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` applied to each agent's slice of the stacked gradients.

    Each agent's norm is one dot product of its own flattened gradient: a row-wise sum over the stacked (N, ·)
    gradients rounds differently for another N, and an agent's result must not depend on the other agents."""
    n_agents = parameters[0].shape[0]
    flat = [torch.cat([p.grad[agent].reshape(-1) for p in parameters]) for agent in range(n_agents)]
    norms = torch.stack([torch.dot(g, g) for g in flat]).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in parameters:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norms


class PPOAgents:
    """N PPO learners on their own environment copies: one ``iterate()`` is one CleanRL iteration for all.

    Everything random comes from per-agent generators seeded by ``seed`` and the agent's global index (its
    weights, its action noise, its minibatch order), so an agent learns the same whichever other agents share the
    process. The agents are those of ``envs`` (global indices from ``envs.first_agent``).
    """

    def __init__(self, envs: FederatedMujoco, settings: PPOSettings, total_iterations: int, seed: int) -> None:
        self.envs, self.settings, self.total_iterations = envs, settings, total_iterations
        agents = range(envs.first_agent, envs.first_agent + envs.n_agents)  # global indices
        weights = agent_torch_generators(seed, "ppo_weights", agents)
        self.model = ActorCritic(envs.n_agents, envs.obs_dim, envs.action_dim, weights)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, eps=1e-5, foreach=True)
        self.iteration = 0
        self.env_steps = 0
        self.noise_rngs = agent_generators(seed, "action_noise", agents)  # the rollouts' action noise
        self.minibatch_generators = agent_torch_generators(seed, "minibatches", agents)
        self.next_obs = envs.reset()
        self.next_done = np.zeros((envs.n_agents, envs.n_envs), dtype=np.float32)

    def collect(self) -> tuple[dict[str, torch.Tensor], list[list[float]]]:
        """One rollout of ``rollout_steps`` per environment copy, with GAE; and the episodes it finished.

        Acting runs in numpy on views of the parameters (:class:`NumpyActor`): for one observation per copy
        it costs a fraction of torch's per-call overhead, and the parameters do not change during a rollout.
        """
        s, n, e = self.settings, self.envs.n_agents, self.envs.n_envs
        shape = (s.rollout_steps, n, e)
        obs = np.zeros((*shape, self.envs.obs_dim), dtype=np.float32)
        actions = np.zeros((*shape, self.envs.action_dim), dtype=np.float32)
        logprobs, rewards, dones, values = (np.zeros(shape, dtype=np.float32) for _ in range(4))
        finished: list[list[float]] = [[] for _ in range(n)]
        actor = NumpyActor(self.model)
        # each agent's noise for the whole rollout from its own stream: (T, N, E, A)
        noise = np.stack(
            [
                rng.standard_normal((s.rollout_steps, e, self.envs.action_dim), dtype=np.float32)
                for rng in self.noise_rngs
            ],
            axis=1,
        )
        for step in range(s.rollout_steps):
            obs[step], dones[step] = self.next_obs, self.next_done
            actions[step], logprobs[step], values[step] = actor.act(self.next_obs, noise[step])
            self.next_obs, rewards[step], self.next_done, ended = self.envs.step(actions[step])
            for agent, returns in enumerate(ended):
                finished[agent].extend(returns)
        self.env_steps += s.rollout_steps * n * e
        next_value = actor.value(self.next_obs)
        advantages = np.zeros(shape, dtype=np.float32)
        last = np.zeros((n, e), dtype=np.float32)
        for t in reversed(range(s.rollout_steps)):
            nonterminal = 1.0 - (self.next_done if t == s.rollout_steps - 1 else dones[t + 1])
            following = next_value if t == s.rollout_steps - 1 else values[t + 1]
            delta = rewards[t] + s.gamma * following * nonterminal - values[t]
            advantages[t] = last = delta + s.gamma * s.gae_lambda * nonterminal * last

        def per_agent(x: np.ndarray) -> torch.Tensor:  # (T, N, E, ...) → (N, T·E, ...)
            return torch.from_numpy(
                np.ascontiguousarray(x.swapaxes(0, 1)).reshape(n, s.rollout_steps * e, *x.shape[3:])
            )

        batch = {
            "obs": obs,
            "actions": actions,
            "logprobs": logprobs,
            "advantages": advantages,
            "returns": advantages + values,
            "values": values,
        }
        return {key: per_agent(value) for key, value in batch.items()}, finished

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """``update_epochs`` passes of minibatch PPO updates; per-agent statistics of the update."""
        s, n = self.settings, self.model.n_agents
        size = batch["obs"].shape[1]
        minibatch = size // s.minibatches
        rows = torch.arange(n)[:, None]
        parameters = [p for p in self.model.parameters() if p.requires_grad]  # a frozen trunk is left out
        clipfracs = []
        for _ in range(s.update_epochs):
            # each agent shuffles its own batch with its own generator
            order = torch.stack([torch.randperm(size, generator=g) for g in self.minibatch_generators])
            for start in range(0, size - minibatch + 1, minibatch):
                index = order[:, start : start + minibatch]
                mb = {key: value[rows, index] for key, value in batch.items()}
                logprob, entropy, value = self.model.evaluate_actions(mb["obs"], mb["actions"])
                logratio = logprob - mb["logprobs"]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean(1)
                    clipfracs.append(((ratio - 1.0).abs() > s.clip_coef).float().mean(1))
                advantages = mb["advantages"]
                if s.norm_adv:
                    advantages = (advantages - advantages.mean(1, keepdim=True)) / (
                        advantages.std(1, keepdim=True) + 1e-8
                    )
                policy_loss = torch.max(
                    -advantages * ratio, -advantages * ratio.clamp(1 - s.clip_coef, 1 + s.clip_coef)
                ).mean(1)
                if s.clip_vloss:
                    clipped = mb["values"] + (value - mb["values"]).clamp(-s.clip_coef, s.clip_coef)
                    value_loss = 0.5 * torch.max((value - mb["returns"]) ** 2, (clipped - mb["returns"]) ** 2).mean(1)
                else:
                    value_loss = 0.5 * ((value - mb["returns"]) ** 2).mean(1)
                entropy_mean = entropy.mean(1)
                loss = policy_loss - s.ent_coef * entropy_mean + s.vf_coef * value_loss
                self.optimizer.zero_grad()
                loss.sum().backward()  # the sum of the agents' own losses: each agent gets its own gradient
                clip_grad_norm_per_agent(parameters, s.max_grad_norm)
                self.optimizer.step()
        return {
            "policy_loss": policy_loss.detach().numpy(),
            "value_loss": value_loss.detach().numpy(),
            "entropy": entropy_mean.detach().numpy(),
            "approx_kl": approx_kl.numpy(),
            "clipfrac": torch.stack(clipfracs).mean(0).numpy(),
        }

    def reset_moments(self, names: list[str]) -> None:
        """Adam restarts on the parameters ``names``: their first and second moments and step count go to 0 (so
        the bias correction restarts too), for every agent."""
        named = dict(self.model.named_parameters())
        for name in names:
            for value in self.optimizer.state.get(named[name], {}).values():
                value.zero_()

    def agent_states(self) -> list[dict[str, Any]]:
        """Per agent, all its learning continues from: parameters, Adam moments, generators (minibatch order,
        action noise), counters, the next observation and its environment copies mid-episode."""
        named = dict(self.model.named_parameters())
        moments = {name: self.optimizer.state[p] for name, p in named.items() if p in self.optimizer.state}
        per_copy = self.envs.agent_snapshots()
        n = self.model.n_agents
        # numpy arrays, not tensors: a checkpoint then holds nothing whose unpickling could run code
        return [
            {
                "parameters": {name: p.detach()[agent].numpy().copy() for name, p in named.items()},
                "adam": {
                    name: {key: (value if key == "step" else value[agent]).numpy().copy() for key, value in m.items()}
                    for name, m in moments.items()
                },
                "minibatch_rng": self.minibatch_generators[agent].get_state().numpy(),
                "noise_rng": self.noise_rngs[agent],
                "iteration": self.iteration,
                "env_steps": self.env_steps // n,
                "next_obs": self.next_obs[agent].copy(),
                "next_done": self.next_done[agent].copy(),
                "envs": per_copy[agent],
            }
            for agent in range(n)
        ]

    def restore_agents(self, states: list[dict[str, Any]]) -> None:
        """Continue from :meth:`agent_states` of these agents (taken in any split of the agent axis)."""
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(torch.from_numpy(np.stack([state["parameters"][name] for state in states])))
        self.optimizer.state.clear()
        for name, p in self.model.named_parameters():
            if name in states[0]["adam"]:
                saved = [state["adam"][name] for state in states]
                self.optimizer.state[p] = {
                    key: torch.from_numpy(np.array(value) if key == "step" else np.stack([m[key] for m in saved]))
                    for key, value in saved[0].items()
                }
        for generator, state in zip(self.minibatch_generators, states, strict=True):
            generator.set_state(torch.from_numpy(state["minibatch_rng"]))
        self.noise_rngs = [state["noise_rng"] for state in states]
        self.iteration = states[0]["iteration"]
        self.env_steps = sum(state["env_steps"] for state in states)
        self.next_obs = np.stack([state["next_obs"] for state in states])
        self.next_done = np.stack([state["next_done"] for state in states])
        self.envs.restore_agents([state["envs"] for state in states])

    def iterate(self) -> tuple[dict[str, np.ndarray], list[list[float]]]:
        """One PPO iteration for every agent: anneal the step size, collect a rollout, update."""
        if self.settings.anneal_lr:
            fraction = 1.0 - self.iteration / self.total_iterations
            for group in self.optimizer.param_groups:
                group["lr"] = fraction * self.settings.lr
        batch, finished = self.collect()
        stats = self.update(batch)
        self.iteration += 1
        return stats, finished


def save_model(
    path: Path, model: ActorCritic, normalisation: RunningMoments, maps: np.ndarray, config: dict[str, Any]
) -> None:
    """Parameters, observation statistics, action maps and config: all that evaluating the agents needs. Arrays
    are stored as tensors, so that :func:`load_model` reads the file with ``weights_only`` (no code from it runs)."""
    statistics = {key: torch.from_numpy(np.asarray(value)) for key, value in asdict(normalisation).items()}
    saved = {"state_dict": model.state_dict(), "normalisation": statistics, "maps": torch.from_numpy(maps)}
    with atomic_file(path, binary=True) as handle:  # never half a model; a refused write names the file
        torch.save({**saved, "config": config}, handle)


def load_model(path: Path) -> tuple[ActorCritic, RunningMoments, np.ndarray, dict[str, Any]]:
    """The inverse of :func:`save_model`; ``weights_only``, so a crafted file cannot run code. A file it cannot
    read raises :class:`ValueError` in one line."""
    try:
        saved = torch.load(path, weights_only=True)
        maps, statistics, config = saved["maps"].numpy(), saved["normalisation"], saved["config"]
        _check_saved(maps, statistics, config)
        normalisation = {key: statistics[key].numpy() for key in ("mean", "var", "count")}
        model = ActorCritic(maps.shape[0], normalisation["mean"].shape[-1], maps.shape[1])
        model.load_state_dict(saved["state_dict"])
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{path} is not a model this fedrl can read ({type(error).__name__}: {reason})") from None
    return model, RunningMoments(**normalisation), maps, config


def _check_saved(maps: np.ndarray, statistics: Any, config: Any) -> None:
    """What :func:`save_model` writes: maps (N, A, A) of finite numbers; observation statistics ``mean`` and
    ``var`` (copies, obs_dim) and ``count`` (copies,), with a whole number of copies per agent; a config dict."""
    if maps.ndim != 3 or maps.shape[0] < 1 or maps.shape[1] != maps.shape[2] or not np.isfinite(maps).all():
        raise ValueError(f"maps of shape {maps.shape}: they must be (agents, actions, actions), finite")
    if not isinstance(statistics, dict) or sorted(statistics) != ["count", "mean", "var"]:
        raise ValueError("normalisation must hold exactly mean, var and count")
    mean, var, count = (statistics[key] for key in ("mean", "var", "count"))
    copies = count.shape[0] if count.ndim == 1 else 0
    if mean.ndim != 2 or var.shape != mean.shape or count.shape != (mean.shape[0],) or not copies or copies % len(maps):
        raise ValueError(f"normalisation shapes {tuple(mean.shape)}, {tuple(var.shape)}, {tuple(count.shape)} do not "
                         f"fit {len(maps)} agents")  # fmt: skip
    if not isinstance(config, dict):
        raise ValueError("its config is not a mapping")
    env_id = saved_task(config)
    if env_id not in TASKS:
        raise ValueError(f"its task {env_id!r} is none of " + ", ".join(TASKS))
    task = TASKS[env_id]
    if maps.shape[1] != task.actions or mean.shape[1] != task.observations:
        raise ValueError(f"maps of shape {maps.shape} and observations of {mean.shape[1]} do not fit {env_id}")


def saved_task(config: dict[str, Any]) -> Any:
    """The task a saved model was trained on (``env.id``; Hopper-v5 for models saved before tasks were chosen)."""
    env = config.get("env")
    return env.get("id", DEFAULT_ID) if isinstance(env, dict) else DEFAULT_ID


def deterministic_policy(model: ActorCritic) -> Callable[[np.ndarray], np.ndarray]:
    """Mean actions for one observation per agent: (N, obs_dim) → (N, A)."""
    actor = NumpyActor(model)
    return lambda obs: actor.mean(obs[:, None])[:, 0]
