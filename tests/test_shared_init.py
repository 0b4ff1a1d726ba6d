"""One initialisation for what is shared (federated PPO on Hopper): the server's draw at round 0, and the
per-agent draws that ``algo.shared_init=independent`` keeps bit for bit."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import TINY_PPO, compose_config, run_into

from fedrl_cli.algos.trunk import in_layers
from fedrl_cli.config import validate
from fedrl_cli.errors import ConfigError
from fedrl_cli.experiments import build

# recorded before algo.shared_init existed: the last row of a 2-round, 2-agent run (compared to 1e-6: torch's CPU
# kernels round the last bits differently on other processors; another initialisation changes every digit)
INDEPENDENT = {
    "fedavg_ppo": {"eval_return_mean": 277.70812587086954, "value_loss": 0.14373500645160675, "comm_floats": 80952},
    "fedsubspace_ac": {"eval_return_mean": 156.3364307336241, "value_loss": 0.15159010887145996, "comm_floats": 78848},
}


@pytest.mark.parametrize("algo", list(INDEPENDENT))
def test_independent_init_is_the_behaviour_before_the_key(tmp_path: Path, algo: str) -> None:
    result, run_dir = run_into(
        tmp_path, "run", f"algo={algo}", *TINY_PPO, "n_agents=2", "algo.rounds=2", "algo.shared_init=independent"
    )
    assert result.returncode == 0, result.stderr
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["comm_floats"] == "0"  # nothing broadcast at round 0
    for key, value in INDEPENDENT[algo].items():
        assert float(rows[-1][key]) == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("algo", list(INDEPENDENT))
def test_common_init_starts_every_agent_from_one_draw_of_what_is_shared(algo: str) -> None:
    tiny = [o for o in TINY_PPO if not o.startswith("progress")]
    cfg = compose_config(f"algo={algo}", *tiny, "n_agents=3", "env.action_map=signed_permutation", "progress=false")
    experiment = build(cfg)
    try:
        names = experiment.agents.parameter_names
        shared = set(experiment.algorithm.shared())
        if algo == "fedsubspace_ac":
            assert shared == {n for n in names if in_layers(n, cfg["algo"]["shared_layers"])} != set(names)
        values = experiment.agents.parameters(names)
        for name in shared:
            assert all(torch.equal(values[name][0], values[name][agent]) for agent in range(1, 3)), name
        personal_weights = [n for n in names if n not in shared and n.endswith("weight")]
        assert all(not torch.equal(values[n][0], values[n][1]) for n in personal_weights)
        floats = sum(values[name][0].numel() for name in shared)
        assert experiment.algorithm.channel.floats == 3 * floats  # the broadcast to every agent
    finally:
        experiment.close()


@pytest.mark.parametrize("algo", list(INDEPENDENT))
def test_a_bad_shared_init_is_refused_naming_the_key(algo: str) -> None:
    """Validation's line (the CLI prints it and exits 2, as the last test here shows)."""
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(f"algo={algo}", "env=hopper", "algo.shared_init=sometimes"))
    assert str(refused.value) == "algo.shared_init='sometimes' is not allowed: it must be one of common, independent"


def study_experiment(algo: str, *overrides: str):
    tiny = [o for o in TINY_PPO if not o.startswith("progress")]
    return build(compose_config(f"algo={algo}", *tiny, "n_agents=3", "progress=false", *overrides))


def test_the_first_average_can_keep_the_agents_weight_norms() -> None:
    experiment = study_experiment("fedavg_ppo", "algo.shared_init=independent", "algo.rescale_first_average=true")
    try:
        agents, algorithm = experiment.agents, experiment.algorithm
        before = agents.parameters(algorithm.shared())
        algorithm.average()
        after = agents.parameters(algorithm.shared())
        for name, value in before.items():
            if name.endswith("weight"):
                wanted = value.flatten(1).norm(dim=1).mean()
                assert torch.allclose(after[name][0].norm(), wanted, rtol=1e-5), name
                plain = value.mean(0).norm()
                assert plain < 0.8 * wanted  # what averaging unrelated draws alone would leave
        algorithm.average()  # only the first average is rescaled
        again = agents.parameters(algorithm.shared())
        assert all(torch.allclose(again[n], after[n], rtol=1e-6, atol=1e-7) for n in after)  # the mean of equals
    finally:
        experiment.close()


def test_the_shared_adam_moments_can_restart_after_each_average() -> None:
    experiment = study_experiment("fedsubspace_ac", "algo.shared_adam=reset")
    try:
        experiment.round()
        ppo = experiment.agents.shards[0].ppo
        named = dict(ppo.model.named_parameters())
        shared = set(experiment.algorithm.shared())
        for name, parameter in named.items():
            state = ppo.optimizer.state[parameter]
            restarted = all(not value.any() for value in state.values())
            assert restarted == (name in shared), name
    finally:
        experiment.close()


def test_the_common_draw_can_be_shrunk() -> None:
    drawn = {}
    for scale in ("1.0", "0.5"):
        experiment = study_experiment("fedavg_ppo", f"algo.shared_init_scale={scale}")
        try:
            drawn[scale] = experiment.agents.parameters(experiment.agents.parameter_names)
        finally:
            experiment.close()
    for name, value in drawn["1.0"].items():
        expected = value * 0.5 if name.endswith("weight") else value
        assert torch.equal(drawn["0.5"][name], expected), name


def test_a_scale_without_a_common_draw_is_refused(tmp_path: Path) -> None:
    result, _ = run_into(
        tmp_path, "run", "algo=fedavg_ppo", "env=hopper", "algo.shared_init=independent", "algo.shared_init_scale=0.5"
    )
    assert result.returncode == 2
    assert "algo.shared_init_scale=0.5 is not allowed with algo.shared_init=independent" in result.stderr
