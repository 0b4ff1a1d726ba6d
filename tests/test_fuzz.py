"""Fuzzed command lines: hypothesis draws override sets (wrong types, out-of-range values, unknown keys and groups,
empty strings, huge numbers, broken interpolations) and each must either run on its tiny budget, or stop on
divergence with one line, or exit 2 with exactly one line — never a traceback.

Overrides go through the real CLI in-process (Typer's runner), so a draw costs a composition, not a Python
start-up. Huge values are drawn for keys that size memory (they must be refused up front) and for step sizes
(a run may diverge); keys that only make a run longer (rounds, local steps) get small values, or bad ones.
Examples are derandomised: the suite tests the same draws on every machine.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from conftest import TINY_PPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fedrl_cli.cli import app

HUGE = st.sampled_from(["1" + "0" * 40, "99999999999", "1e300", "1e400", "2147483648", "18446744073709551616"])
BAD = st.one_of(
    st.sampled_from(
        [
            "",
            "''",
            "abc",
            "-1",
            "0",
            "-0.5",
            "1.5",
            "nan",
            "inf",
            "-inf",
            "null",
            "true",
            "[1,2]",
            "{a: 1}",
            "${nope}",
            "${env.nope}",
            "-99999999999",
            "0x10",
            "ü",
            "1,2",
            "'1'",
            "[]",
        ]
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=8),
)


def ints(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(str)


def floats(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(low, high, allow_nan=False).map(repr)


BOOL = st.sampled_from(["true", "false"])
SEED = ints(0, 2**32 - 1)
UNIT = floats(0.0, 1.0)
STEP = floats(1e-3, 2.0)
# key → (small valid values, whether huge values are drawn too: keys that size memory, seeds and step sizes)
TABULAR_KEYS: dict[str, tuple[st.SearchStrategy[str], bool]] = {
    "n_agents": (ints(1, 3), True),
    "seed": (SEED, True),
    "checkpoint_every": (ints(0, 3), False),
    "progress": (BOOL, False),
    "env.n_states": (ints(1, 6), True),
    "env.n_actions": (ints(1, 4), True),
    "env.gamma": (floats(0.0, 0.95), True),
    "env.reward_heterogeneity": (UNIT, True),
    "env.transition_heterogeneity": (UNIT, True),
    "env.mdp_seed": (SEED, True),
    "env.heterogeneity_design": (st.sampled_from(["independent", "balanced"]), False),
    "env.value_rank": (st.sampled_from(["null", "1", "2", "3"]), False),
    "algo.rounds": (ints(0, 3), False),
    "algo.local_steps": (ints(1, 3), False),
    "algo.lr": (STEP, True),
    "algo.global_lr": (STEP, True),
    "algo.gradient": (st.sampled_from(["exact", "sampled"]), False),
    "algo.batch_size": (ints(1, 5), True),
    "algo.horizon": (ints(1, 6), True),
    "algo.features": (st.sampled_from(["onehot", "random"]), False),
    "algo.feature_dim": (ints(1, 6), True),
    "algo.rank": (ints(1, 3), True),
    "algo.lr_head": (STEP, True),
    "algo.lr_basis": (STEP, True),
    "algo.lr_actor": (STEP, True),
    "algo.lr_schedule": (st.sampled_from(["constant", "inverse_time", "inverse_sqrt"]), False),
    "algo.lr_decay_rounds": (floats(0.1, 100.0), True),
}
PPO_KEYS: dict[str, tuple[st.SearchStrategy[str], bool]] = {
    "n_agents": (ints(1, 2), True),
    "seed": (SEED, True),
    "env.n_envs": (ints(1, 2), True),
    "env.action_map": (st.sampled_from(["none", "signed_permutation", "permutation", "gain"]), False),
    "env.action_map_seed": (SEED, True),
    "env.identity_first": (BOOL, False),
    "algo.rollout_steps": (ints(8, 64), True),
    "algo.update_epochs": (ints(1, 2), False),
    "algo.minibatches": (ints(1, 4), True),
    "algo.lr": (floats(1e-5, 1e-2), True),
    "algo.anneal_lr": (BOOL, False),
    "algo.gamma": (floats(0.0, 0.999), True),
    "algo.gae_lambda": (UNIT, True),
    "algo.clip_coef": (floats(0.05, 0.5), True),
    "algo.clip_vloss": (BOOL, False),
    "algo.norm_adv": (BOOL, False),
    "algo.ent_coef": (floats(0.0, 0.1), True),
    "algo.vf_coef": (floats(0.0, 1.0), True),
    "algo.max_grad_norm": (floats(0.1, 1.0), True),
    "algo.eval_every": (ints(0, 1), False),
    "algo.trunk_from": (st.sampled_from(["null", "/nonexistent/run"]), False),
    "algo.freeze_trunk": (BOOL, False),
    "algo.shared_layers": (st.sampled_from(["[critic.0]", "[actor_mean.0,critic.0]", "[nope]", "critic.0"]), False),
}
UNKNOWN = st.sampled_from(["foo", "algo.foo", "env.bar", "hydra.nonsense", "algo", "n_agent", "env.n_state"])


@st.composite
def override_sets(draw: st.DrawFn, keys: dict, envs: list[str], algos: list[str]) -> list[str]:
    """One command line: groups (maybe bad), then keys with valid, bad, huge or missing values, unknown keys."""
    chosen = {}
    for group, options in (("env", envs), ("algo", algos)):
        if draw(st.booleans()):
            chosen[group] = draw(st.one_of(st.sampled_from(options), st.sampled_from(options), BAD))
    names = draw(st.lists(st.sampled_from(sorted(keys)), max_size=5, unique=True))
    for name in names:
        valid, huge = keys[name]
        kinds = [valid, valid, BAD, HUGE] if huge else [valid, valid, BAD]
        chosen[name] = draw(st.one_of(kinds))
    overrides = [f"{key}={value}" for key, value in chosen.items()]
    extra = draw(st.sampled_from(["", "unknown", "delete", "add", "sweep"]))
    if extra == "unknown":
        overrides.append(f"{draw(UNKNOWN)}={draw(st.one_of(BAD, st.just('1')))}")
    elif extra == "delete" and names:
        overrides.append(f"~{names[0]}")
    elif extra == "add":
        overrides.append(f"+{draw(UNKNOWN)}=1")
    elif extra == "sweep":
        overrides.append(f"+sweep={draw(st.sampled_from(['agents', 'nope', '']))}")
    return overrides


class Outcomes:
    """Runs each drawn command line and checks how it ended; counts what was covered."""

    def __init__(self, tmp_path: Path, base: tuple[str, ...]) -> None:
        self.tmp_path, self.base, self.runner = tmp_path, base, CliRunner()
        self.ran, self.diverged, self.refused, self.messages = 0, 0, set(), set()

    def check(self, overrides: list[str]) -> None:
        run_dir = self.tmp_path / f"run{self.ran + self.diverged + len(self.refused)}_{abs(hash(tuple(overrides)))}"
        keys = {override.split("=")[0].lstrip("+~") for override in overrides}
        base = [override for override in self.base if override.split("=")[0] not in keys]
        result = self.runner.invoke(app, ["run", *base, *overrides, f"hydra.run.dir={run_dir}"])
        shown = f"{overrides} → exit {result.exit_code}:\n{result.output}"
        assert "Traceback" not in result.output, shown
        assert result.exception is None or isinstance(result.exception, SystemExit), shown
        if result.exit_code == 2:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("fedrl: error: "), shown
            self.refused.add(tuple(overrides))
            self.messages.add(lines[0].split(" is not allowed")[0].split(":")[2].strip()[:40])
        elif result.exit_code == 1:
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["error_type"] == "diverged", shown
            assert result.stderr.count("\n") == 1 and "the run diverged" in result.stderr, shown
            self.diverged += 1
        else:
            assert result.exit_code == 0, shown
            assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed", shown
            self.ran += 1

    def report(self, name: str) -> str:
        return (
            f"{name}: {self.ran} ran, {self.diverged} diverged, {len(self.refused)} distinct bad override sets "
            f"refused with one line ({len(self.messages)} distinct keys/messages)"
        )


def fuzz(tmp_path: Path, base: tuple[str, ...], strategy: st.SearchStrategy, examples: int) -> Outcomes:
    outcomes = Outcomes(tmp_path, base)

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(strategy)
    def check(overrides: list[str]) -> None:
        outcomes.check(overrides)

    check()
    return outcomes


TABULAR_ALGOS = ["fastfedpg", "fedavg_pg", "local_pg", "fedsubspace_ac"]


def test_fuzzed_tabular_overrides_run_or_exit_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    strategy = override_sets(TABULAR_KEYS, ["tabular"], [*TABULAR_ALGOS, "single_ppo"])
    outcomes = fuzz(tmp_path, ("algo.rounds=1", "progress=false"), strategy, 100)
    with capsys.disabled():
        print("\n" + outcomes.report("tabular fuzz"))
    assert outcomes.ran >= 5 and len(outcomes.refused) >= 60 and len(outcomes.messages) >= 15


def test_fuzzed_hopper_overrides_run_or_exit_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    base = (*TINY_PPO, "algo=fedavg_ppo", "algo.rounds=1", "algo.eval_every=0", "n_agents=1")
    strategy = override_sets(PPO_KEYS, ["hopper"], ["single_ppo", "fedavg_ppo", "fedsubspace_ac", "fastfedpg"])
    outcomes = fuzz(tmp_path, base, strategy, 40)
    with capsys.disabled():
        print("\n" + outcomes.report("hopper fuzz"))
    assert outcomes.ran >= 3 and len(outcomes.refused) >= 15
