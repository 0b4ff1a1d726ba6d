"""The per-evaluation data of Hopper reproductions, and the scores computed from it.

Every number of the Hopper reports (:mod:`fedrl_cli.reproduce.subspace_hopper`,
:mod:`fedrl_cli.reproduce.subspace_cause`) comes from one CSV per study with a row per evaluation of an agent:
what ran (algo, variant and, for transfer runs, whose trunk it started from), the seed, the agent and its action
map, the round, samples_per_agent and eval_return, and the final weight norms of the agent's hidden layers. A
run's score for an agent is the mean of its last :data:`~fedrl_cli.curves.EVALUATIONS_SCORED` evaluations; its
curve area is the mean of all its evaluations (how fast it learns).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fedrl_cli.algos.ppo import load_model
from fedrl_cli.curves import EVALUATIONS_SCORED
from fedrl_cli.results import load_results

TRUNK = ("actor_mean.0", "actor_mean.2", "critic.0", "critic.2")  # the hidden layers
NORMS = [f"{layer} norm" for layer in TRUNK]


def variant(config: dict) -> str:
    """A run's variant in words: the algorithm's name, or for fedsubspace_ac the layers it shares, its init and any
    probe (``actor+critic, common, Adam reset``)."""
    algo = config["algo"]
    if algo["name"] != "fedsubspace_ac":
        return algo["name"]
    shared = sorted({layer.split(".")[0] for layer in algo["shared_layers"]})
    words = ["+".join({"actor_mean": "actor", "critic": "critic"}[name] for name in shared), algo["shared_init"]]
    if algo.get("rescale_first_average"):
        words.append("first average rescaled")
    if algo.get("shared_init_scale", 1.0) != 1.0:
        words.append(f"× {algo['shared_init_scale']:g}")
    if algo.get("shared_adam") == "reset":
        words.append("Adam reset")
    return ", ".join(words)


def describe(config: dict) -> dict[str, object]:
    """The leading columns of a run's rows: algo, variant and seed."""
    return {"algo": config["algo"]["name"], "variant": variant(config), "seed": config["seed"]}


def map_text(matrix: object) -> str:
    """An action map as its entries, row by row (``1 0 0 0 -1 0 0 0 1``; no ``-0``)."""
    return " ".join(f"{value + 0.0:g}" for value in matrix.ravel())


def evaluation_rows(sweep_dirs: list[Path], columns: Callable[[dict], dict[str, object]] = describe) -> pd.DataFrame:
    """Every evaluation of every completed run's agents in ``sweep_dirs``: ``columns(config)``, then agent, map,
    round, samples_per_agent, eval_return and the agent's final hidden-layer weight norms (Frobenius). Runs not
    completed (a sweep still running, or a run to resume) are left out."""
    rows = []
    for run in load_results(sweep_dirs).runs:
        if run.status != "completed":
            continue
        agents = pd.read_csv(run.path / "agent_metrics.csv").dropna(subset=["eval_return"])
        steps = pd.read_csv(run.path / "metrics.csv").set_index("round")["samples_per_agent"]
        model, _, maps, _ = load_model(run.path / "model.pt")
        weights = {name: parameter.detach() for name, parameter in model.named_parameters()}
        leading = columns(run.config)
        for row in agents.sort_values(["agent", "round"]).itertuples():
            rows.append(
                {
                    **leading,
                    "agent": row.agent,
                    "map": map_text(maps[row.agent]),
                    "round": row.round,
                    "samples_per_agent": steps.loc[row.round],
                    "eval_return": row.eval_return,
                    **{f"{layer} norm": float(weights[f"{layer}.weight"][row.agent].norm()) for layer in TRUNK},
                }
            )
    return pd.DataFrame(rows)


def run_rows(evaluations: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per run and agent (``keys`` name a run, plus ``agent`` and ``map``): its score (the mean of the agent's last
    evaluations), its curve area (the mean of all of them) and its final hidden-layer norms."""
    keys = [*keys, "agent", "map"]
    ordered = evaluations.sort_values("round")
    last = ordered.groupby(keys, dropna=False).tail(EVALUATIONS_SCORED).groupby(keys, dropna=False)["eval_return"]
    area = ordered.groupby(keys, dropna=False)["eval_return"].mean().rename("curve_area")
    norms = ordered.groupby(keys, dropna=False)[NORMS].first()  # a key may be empty (a transfer's source seed)
    last = last.mean().rename("score")
    return pd.concat([last, area, norms], axis=1).reset_index()
