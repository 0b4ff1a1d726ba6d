"""The cause study's analysis (`fedrl reproduce subspace --part cause`): variants named from the config, scores
from the last evaluations, paired differences and trunk norms, on synthetic runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_plots import write_run_dir

from fedrl_cli.algos.ppo import ActorCritic, save_model
from fedrl_cli.envs.mujoco import RunningMoments
from fedrl_cli.reproduce import subspace_cause
from fedrl_cli.reproduce.common import Options
from fedrl_cli.reproduce.hopper_data import NORMS, evaluation_rows, run_rows, variant
from fedrl_cli.reproduce.subspace_cause import DEFAULT, EARLIER, KEYS, REFERENCE, SWEEPS, cause_table

LAYERS = ["actor_mean.0", "actor_mean.2", "critic.0", "critic.2"]


def subspace_config(init: str = "common", layers: list[str] = LAYERS, **extra: object) -> dict:
    return {"name": "fedsubspace_ac", "shared_layers": layers, "shared_init": init, "shared_init_scale": 1.0,
            "rescale_first_average": False, "shared_adam": "keep", **extra}  # fmt: skip


def test_variants_are_named_from_the_config() -> None:
    assert variant({"algo": {"name": "single_ppo"}}) == "single_ppo"
    assert variant({"algo": subspace_config("independent")}) == EARLIER
    assert variant({"algo": subspace_config(layers=["critic.0", "critic.2"])}) == "critic, common"
    assert variant({"algo": subspace_config(shared_init_scale=0.5)}) == "actor+critic, common, × 0.5"
    assert variant({"algo": subspace_config(shared_adam="reset")}) == "actor+critic, common, Adam reset"


def cause_run(path: Path, algo: dict, seed: int, level: float, scale: float) -> None:
    """A completed 2-agent run evaluated at rounds 4 and 8 (agent a scores level + a), whose weights are scaled."""
    config = {"env": {"name": "hopper"}, "algo": algo, "n_agents": 2, "seed": seed}
    write_run_dir(path, config, {"eval_return_mean": [np.nan if t % 4 or not t else level for t in range(9)]})
    rows = [
        {"round": t, "agent": a, "eval_return": level + a if t in (4, 8) else np.nan} for t in range(9) for a in (0, 1)
    ]
    pd.DataFrame(rows).to_csv(path / "agent_metrics.csv", index=False)
    model = ActorCritic(2, 11, 3, [torch.Generator().manual_seed(seed)] * 2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(scale)
    save_model(path / "model.pt", model, RunningMoments.start(2, (11,)), np.stack([np.eye(3)] * 2), config)


def test_scores_differences_and_norms(tmp_path: Path) -> None:
    for seed in range(4):
        cause_run(tmp_path / f"single_{seed}", {"name": "single_ppo"}, seed, 1000.0 + 10 * seed, 1.0)
        cause_run(tmp_path / f"independent_{seed}", subspace_config("independent"), seed, 600.0 + 10 * seed, 0.5)
        cause_run(tmp_path / f"common_{seed}", subspace_config(), seed, 900.0 + 20 * seed, 1.0)
    evaluations = evaluation_rows([tmp_path])
    assert len(evaluations) == 3 * 4 * 2 * 2  # two evaluations per agent
    assert set(evaluations["samples_per_agent"]) == {400, 800}
    rows = run_rows(evaluations, KEYS)
    assert len(rows) == 3 * 4 * 2
    single = rows[(rows.variant == REFERENCE) & (rows.seed == 2)].sort_values("agent")
    assert list(single["score"]) == [1020.0, 1021.0]  # the mean of the evaluations at rounds 4 and 8
    table = cause_table(rows).set_index("variant")
    assert table.loc["actor+critic, common", "seeds"] == 4
    # common − single_ppo per seed: −100 + 10·seed → mean −85; independent − single_ppo: −400 on every seed
    assert table.loc["actor+critic, common", f"− {REFERENCE}"].startswith("-85 [")
    assert table.loc[EARLIER, f"− {REFERENCE}"].startswith("-400 [-400, -400]")
    assert table.loc["actor+critic, common", f"− ({EARLIER})"].startswith("+315 [")
    norm = table["actor_mean.2 norm"]  # the independent runs' weights were halved
    assert abs(norm.loc[EARLIER] - 0.5 * norm.loc[REFERENCE]) < 0.02


def synthetic_rows(name: str, seeds: range, level: float) -> pd.DataFrame:
    """One sweep's evaluation rows: 2 agents, evaluated at rounds 4 and 8."""
    rows = [
        {
            "algo": "single_ppo",
            "variant": name,
            "seed": seed,
            "agent": agent,
            "map": "1 0 0 0 1 0 0 0 1",
            "round": t,
            "samples_per_agent": 100 * t,
            "eval_return": level + seed + agent,
            **dict.fromkeys(NORMS, 1.0),
            "sweep": name,
        }
        for seed in seeds
        for agent in (0, 1)
        for t in (4, 8)
    ]
    return pd.DataFrame(rows)


def test_the_study_spans_sessions_through_its_committed_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --reuse, a sweep whose rows (every seed) are in cause_evaluations.csv is not run again; one cut short is;
    the file is rewritten after each sweep, so a study stopped midway keeps what it finished."""
    names = list(SWEEPS)
    assert subspace_cause.carried_rows(pd.DataFrame(), names[0], 2) is None  # a first --reuse: nothing earlier
    earlier = pd.concat([synthetic_rows(names[0], range(2), 1000.0), synthetic_rows(names[2], range(1), 500.0)])
    earlier.to_csv(tmp_path / "cause_evaluations.csv", index=False)
    ran: list[str] = []

    def fake_sweep(target: Path, overrides: list[str], jobs: int, reuse: bool = False, run: bool = True) -> str:
        if run:
            if len(ran) == 2:
                raise KeyboardInterrupt  # the session ends during the third sweep it runs
            ran.append(target.name)
        return f"fedrl run -m {target.name}"

    monkeypatch.setattr(subspace_cause, "sweep", fake_sweep)
    monkeypatch.setattr(subspace_cause, "evaluation_rows", lambda dirs: synthetic_rows(dirs[0].name, range(2), 700.0))
    options = Options(out=tmp_path, reuse=True, hopper_seeds=2, jobs=1)
    with pytest.raises(KeyboardInterrupt):
        subspace_cause.cause_part(options)
    assert ran == [names[1], names[2]]  # names[0] carried; names[2] had one seed of two, so it ran again
    kept = pd.read_csv(tmp_path / "cause_evaluations.csv")
    assert list(kept.drop_duplicates("sweep")["sweep"]) == names[:3]
    assert (kept[kept.sweep == names[0]]["eval_return"] >= 1000).all()  # carried as they were
    assert (kept[kept.sweep == names[2]]["eval_return"] < 1000).all() and kept[
        kept.sweep == names[2]
    ].seed.nunique() == 2
    ran.clear()
    monkeypatch.setattr(
        subspace_cause, "sweep", lambda target, *a, run=True, **k: ran.append(target.name) if run else ""
    )
    text = subspace_cause.cause_part(options)
    assert ran == names[3:]  # the next session runs only what is missing
    assert "taken from an earlier session's rows" in text
    assert pd.read_csv(tmp_path / "cause.csv")["variant"].nunique() == len(names)


def test_a_variant_replaces_the_default_only_when_its_paired_interval_lies_above_zero() -> None:
    def rows(levels: dict[str, list[float]]) -> pd.DataFrame:
        found = [(name, seed, score) for name, scores in levels.items() for seed, score in enumerate(scores)]
        return pd.DataFrame(found, columns=["variant", "seed", "score"])

    noisy = [1000.0, 1010.0, 990.0, 1005.0]
    # a shift of +50 on every seed holds under pairing, though the seeds spread more than that
    assert subspace_cause.chosen_variant(rows({DEFAULT: noisy, "shifted": [s + 50 for s in noisy]}))[0] == "shifted"
    levels = {REFERENCE: [2000.0] * 4, DEFAULT: noisy, "mixed": [1200.0, 900.0, 1100.0, 950.0],
              "better": [1050.0, 1070.0, 1035.0, 1060.0], "best": [1100.0, 1090.0, 1120.0, 1080.0]}  # fmt: skip
    chosen, reason = subspace_cause.chosen_variant(rows(levels))
    assert chosen == "best" and "above 0" in reason  # single_ppo is not a variant of fedsubspace_ac
    table = cause_table(rows(levels).assign(**dict.fromkeys(NORMS, 1.0))).set_index("variant")
    assert table.loc["best", f"− ({DEFAULT})"].startswith("+96 [")  # 1,097.5 − 1,001.25
    assert table.loc[DEFAULT, f"− ({DEFAULT})"] == "–"
    assert subspace_cause.chosen_variant(rows({DEFAULT: noisy, "mixed": levels["mixed"]}))[0] == DEFAULT
