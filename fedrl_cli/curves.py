"""Runs grouped into curves: which runs form a group (every config key that differs, seeds and the keys that do
not change a run's numbers excepted), each group's metric, and its seed-mean curve with its 95% interval over
seeds (:func:`fedrl_cli.stats.mean_and_ci`); the summary and speedup tables built from the curves. Drawing them
is :mod:`fedrl_cli.plots`'s job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fedrl_cli.results import Results
from fedrl_cli.stats import (
    AnalysisError,
    Target,
    aggregate_estimates,
    improvement_probability,
    lower_is_better,
    mean_and_ci,
    mean_estimate,
    settling_rows,
    slope_estimate,
)

X_AXES = {
    "round": "round (communications)",
    "samples": "samples (transitions, all agents)",
    "samples_per_agent": "samples per agent (transitions)",
    "comm_floats": "communication (floats sent up + down)",
    "wall_s": "wall time (s)",
}

SHORT_NAMES = {
    "n_agents": "N",
    "local_steps": "H",
    "reward_heterogeneity": "h_r",
    "transition_heterogeneity": "h_p",
    "algo.rounds": "T",
    "algo.lr": "η",
    "env.action_map": "action map",
}
# each run family's default metrics, the first one its runs have wins: by (env, algorithm), else by env
DEFAULT_METRICS = {
    ("tabular", "fedsubspace_ac"): ("critic_error",),
    "tabular": ("gap", "objective"),
    "hopper": ("eval_return_mean", "return_mean"),
    "mujoco": ("eval_return_mean", "return_mean"),
}
FALLBACK_METRICS = ("gap", "objective", "critic_error", "eval_return_mean", "return_mean")
# columns of the loaded frame that are not metrics: the x axes (round, samples, ...) and bookkeeping
NOT_METRICS = {*X_AXES, "run_dir", "status"}


class PlotError(AnalysisError):
    """A request the runs cannot answer (a metric no run has, an unknown axis, an output folder that is a file)."""


def metric_columns(results: Results) -> list[str]:
    """The metric columns (not config, not bookkeeping) that some loaded run has values for."""
    frame = results.frame
    numeric = frame.select_dtypes("number").columns
    return [c for c in numeric if c not in results.config_columns and c not in NOT_METRICS and frame[c].notna().any()]


def family_metrics(part: pd.DataFrame) -> tuple[str, ...]:
    """The default metrics of a group's run family (:data:`DEFAULT_METRICS`), in order of preference."""
    env = part["env"].iloc[0] if "env" in part else None
    algo = part["algo"].iloc[0] if "algo" in part else None
    return DEFAULT_METRICS.get((env, algo)) or DEFAULT_METRICS.get(env) or FALLBACK_METRICS


def default_metric(part: pd.DataFrame) -> str | None:
    """The metric a group's runs are plotted in without ``--metric``: for tabular policy gradient ``gap`` (else
    ``objective``, where J* is unknown), for the tabular subspace actor-critic ``critic_error``, for Hopper
    ``eval_return_mean`` (else ``return_mean``); None when the runs have none of their family's metrics."""
    return next((m for m in family_metrics(part) if m in part and part[m].notna().any()), None)


def groups(frame: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict[str, object], pd.DataFrame]]:
    """The rows of each combination of ``keys`` (all rows, as one group, when there are no keys), sorted."""
    if not keys:
        yield {}, frame
        return
    for values, part in frame.groupby(keys, sort=True, dropna=False):
        yield dict(zip(keys, values, strict=True)), part


@dataclass
class Curve:
    """One group's seed-mean curve of a metric against rounds (and the chosen x axis)."""

    keys: dict[str, object]
    label: str
    seeds: int  # distinct seeds (runs with the same seeds are averaged as one)
    rounds: np.ndarray
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    final: dict[str, float] = field(default_factory=dict)
    runs: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (seeds, points): each seed's values
    tuned: dict[str, object] = field(default_factory=dict)  # the values --tune chose for this group
    run_count: int = 0  # run dirs pooled into the curve

    @property
    def legend(self) -> str:
        """The label with the number of seeds the band is over (no band for one seed)."""
        return f"{self.label} ({self.seeds} seeds)" if self.seeds > 1 else f"{self.label} (1 seed, no band)"


def group_label(keys: dict[str, object], shown: list[str], tuned: dict[str, object] | None = None) -> str:
    parts = [str(keys["algo"])] if "algo" in keys else []
    parts += [f"{SHORT_NAMES.get(k, k)}={value_text(shown_value(keys[k]))}" for k in shown if k != "algo" and k in keys]
    parts += [f"{SHORT_NAMES.get(k, k)}*={value_text(v)}" for k, v in (tuned or {}).items()]
    return " ".join(parts)


def shown_value(value: object) -> object:
    """A value in a legend: a path (a run dir given as ``algo.trunk_from``) by its last component, a null as null."""
    if (isinstance(value, float) and np.isnan(value)) or value is None:
        return "null"
    return Path(value).name if isinstance(value, str) and "/" in value else value


def value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _left_out(label: str, runs: int, metric: str | None, has: list[str], defaults: tuple[str, ...]) -> str:
    """The note for a group that is not plotted: which metric (or family defaults) it lacks and which it has."""
    lacks = f"no {metric} values" if metric else f"none of its family's metrics {', '.join(defaults)}"
    where = f"the {metric} figures" if metric else "the figures"
    return f"left out of {where}: {label or 'runs'} ({runs} runs): {lacks}; it has {', '.join(has) or 'no metric'}"


def _metric_order(metric: str) -> tuple[int, str]:
    """Family defaults first, in :data:`FALLBACK_METRICS` order, then any other metric by name."""
    return (FALLBACK_METRICS.index(metric) if metric in FALLBACK_METRICS else len(FALLBACK_METRICS), metric)


def split_by_metric(results: Results, metric: str | None) -> tuple[dict[str, Results], list[str]]:
    """The runs to plot per metric, and a note per group left out. With ``metric``, the groups that have values
    of it; without, each group in its family's default (:func:`default_metric`). :class:`PlotError` when no group
    has one."""
    frame = results.frame
    chosen = pd.Series("", index=frame.index)
    notes = []
    for keys, part in groups(frame, results.group_keys()):
        name = metric or default_metric(part)
        if name and name in part and part[name].notna().any():
            chosen[part.index] = name
            continue
        has = [c for c in metric_columns(results) if part[c].notna().any()]
        label = group_label(keys, results.varying())
        notes.append(_left_out(label, part["run_dir"].nunique(), metric, has, family_metrics(part)))
    if not (chosen != "").any():
        available = ", ".join(metric_columns(results)) or "none"
        if metric:
            raise PlotError(f"--metric {metric}: no run has it; available: {available}")
        raise PlotError(
            f"the runs have none of the metrics {', '.join(FALLBACK_METRICS)}; choose one with --metric "
            f"(available: {available})"
        )
    names = sorted(set(chosen[chosen != ""]), key=_metric_order)
    return {name: results.subset(chosen == name) for name in names}, notes


def curves(results: Results, metric: str, x: str) -> list[Curve]:
    """One curve per group (:func:`group_keys`): the seed-mean of ``metric`` against rounds, over the group's
    distinct seeds (runs that share every seed, reruns of one config, are averaged as one seed)."""
    frame = results.frame
    if metric not in frame or frame[metric].isna().all():
        raise PlotError(f"--metric {metric}: no run has it; available: {', '.join(metric_columns(results)) or 'none'}")
    keys = results.group_keys()
    shown = [k for k in keys if k in results.varying()]
    replicates = results.replicate_columns()
    found = []
    for key_values, part in groups(frame, keys):
        tuned = {key: part[key].iloc[0] for key in results.tuned}
        seed = part[replicates].apply(lambda row: "/".join(map(str, row)), axis=1) if replicates else part["run_dir"]
        # rounds where no run has the metric (e.g. between evaluations), and seeds without it, are left out
        table = (
            part.assign(_seed=seed)
            .pivot_table(index="round", columns="_seed", values=metric, aggfunc="mean", dropna=False)
            .dropna(how="all")
            .dropna(axis=1, how="all")
        )
        if table.empty:
            continue
        mean, low, high = mean_and_ci(table.to_numpy().T)
        by_round = part.groupby("round")
        last = by_round.mean(numeric_only=True).iloc[-1]
        final = {
            column: float(last[column]) for column in ("samples", "samples_per_agent", "comm_floats") if column in last
        }
        found.append(
            Curve(
                key_values,
                group_label(key_values, shown, tuned),
                table.shape[1],
                table.index.to_numpy(),
                by_round[x].mean().reindex(table.index).to_numpy(),
                mean,
                low,
                high,
                final,
                table.to_numpy().T,
                tuned,
                part["run_dir"].nunique(),
            )
        )
    return found


def window_values(curve: Curve, fraction: float) -> np.ndarray:
    """Each seed's mean of the metric over the last ``fraction`` of the curve's rounds (from round (1 − F)·T on):
    (seeds,)."""
    inside = curve.rounds >= (1 - fraction) * curve.rounds[-1]
    return np.nanmean(curve.runs[:, inside], axis=1)


def summary_table(found: list[Curve], metric: str, window: float | None = None) -> pd.DataFrame:
    """One row per curve: its group keys, distinct seeds, last round, final seed-mean and 95% CI, costs; with
    ``window`` F, the seed mean of each seed's mean over the last F of the rounds and its 95% interval."""
    rows = []
    for curve in found:
        row = {
            **curve.keys,
            "seeds": curve.seeds,
            "rounds": int(curve.rounds[-1]),
            "metric": metric,
            "final_mean": curve.mean[-1],
            "final_ci_low": curve.low[-1],
            "final_ci_high": curve.high[-1],
            **curve.final,
            **{f"tuned_{key}": value for key, value in curve.tuned.items()},
        }
        if window is not None:
            level = mean_estimate(window_values(curve, window))
            row |= {
                "window": window,
                "window_mean": level.point,
                "window_ci_low": level.low,
                "window_ci_high": level.high,
                "window_interval": level.method,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def window_slopes(found: list[Curve], window: float) -> pd.DataFrame:
    """Per algorithm (and other varying keys): the log-log slope of the window level against N, fitted to the seed
    means, with its 95% interval (:func:`fedrl_cli.stats.slope_estimate`), over the settings of two N or more."""
    rows = []
    for family, members in _families_of(found).items():
        values = pd.DataFrame(
            [{"n_agents": c.keys["n_agents"], "level": v} for c in members for v in window_values(c, window)]
        )
        if values["n_agents"].nunique() < 2 or (values.groupby("n_agents")["level"].mean() <= 0).any():
            continue
        slope = slope_estimate(values, "n_agents", "level")
        rows.append({**dict(family), "slope": slope.point, "slope_ci_low": slope.low, "slope_ci_high": slope.high,
                     "slope_interval": slope.method, "window": window})  # fmt: skip
    return pd.DataFrame(rows)


def _families_of(found: list[Curve]) -> dict[tuple, list[Curve]]:
    """The curves per family: the same keys but N, sorted by N."""
    families: dict[tuple, list[Curve]] = {}
    for curve in found:
        families.setdefault(tuple((k, v) for k, v in curve.keys.items() if k != "n_agents"), []).append(curve)
    return {key: sorted(members, key=lambda c: c.keys["n_agents"]) for key, members in families.items()}


def speedup_table(found: list[Curve], metric: str, x: str, target: Target) -> pd.DataFrame:
    """``speedup(N) = T_ε(N_ref) / T_ε(N)`` per algorithm (and other varying keys), with ``N_ref = 1`` or the
    smallest N present; ``T_ε`` is the rounds (or ``x``) from which the seed-mean curve stays at ε or better, ε
    chosen by ``target`` for each algorithm alike; points and intervals by :func:`fedrl_cli.stats.settling_rows`.
    A setting that does not settle at ε (in most resamples of its seeds) has ``reached`` false and no speedup."""
    lower = lower_is_better(metric)
    rows = []
    for family, members in _families_of(found).items():
        for curve, found_row in zip(members, settling_rows(members, target, lower), strict=True):
            x_to_target = found_row.pop("x_to_target")
            row = {"algo": curve.keys.get("algo"), "n_agents": curve.keys["n_agents"]}
            row |= {key: found_row[key] for key in ("speedup", "rounds_to_target", "target")}
            row |= {"reference_n_agents": members[0].keys["n_agents"], **found_row}
            row |= {"seeds": curve.seeds, "metric": metric, "target_rule": target.rule(lower)}
            if x != "round":
                row[f"{x}_to_target"] = x_to_target
            row.update({k: v for k, v in family if k not in row})
            row.update({f"tuned_{key}": value for key, value in curve.tuned.items()})
            rows.append(row)
    return pd.DataFrame(rows)


# speedup.csv columns that are per row, not per line of the speedup figure
SPEEDUP_ROW_COLUMNS = {
    "n_agents",
    "speedup",
    "rounds_to_target",
    "target",
    "reference_n_agents",
    "speedup_ci_low",
    "speedup_ci_high",
    "rounds_to_target_ci_low",
    "rounds_to_target_ci_high",
    "reached",
    "seeds",
    "metric",
    "target_rule",
}


def families(table: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """The rows of :func:`speedup_table` per algorithm (and other varying keys), sorted by N, with their label."""
    per_row = SPEEDUP_ROW_COLUMNS | {f"{x}_to_target"}
    line_keys = [c for c in table.columns if c not in per_row and not c.startswith("tuned_")]
    shown = [k for k in line_keys if table[k].astype(str).nunique() > 1]
    return [(group_label(keys, shown), part.sort_values("n_agents")) for keys, part in groups(table, line_keys)]


def speedup_lines(table: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """The speedup figure's lines: one per algorithm (and other varying keys), its rows sorted by N, and a legend
    label that gives its ε and names every N without a speedup: never at ε, or at it from round 0 (T_ε(N) = 0)."""
    tuned = [c.removeprefix("tuned_") for c in table.columns if c.startswith("tuned_")]
    lines = []
    for label, part in families(table, x):
        reached = part["reached"].astype(bool)
        missing = part.loc[~reached, "n_agents"].tolist()
        at_start = part.loc[reached & (part["rounds_to_target"] == 0), "n_agents"].tolist()
        notes = [f"ε = {part['target'].iloc[0]:.3g}"]
        notes += [f"{', '.join(map(str, tuned))}* at each point"] if tuned else []
        if len(missing) == len(part):
            notes.append("target not reached")
        elif missing:
            notes.append(f"target not reached at N={', '.join(map(str, missing))}")
        if at_start:
            notes.append(f"at the target from round 0 at N={', '.join(map(str, at_start))}")
        lines.append((f"{label} ({'; '.join(notes)})".lstrip(), part))
    return lines


def speedup_notes(table: pd.DataFrame, x: str) -> list[str]:
    """One line per family and reason a setting has no speedup: it, or its reference N, does not reach the target
    (in most resamples of its seeds) or is at it from round 0, or too few resamples give both T_ε."""
    notes = []
    for label, part in families(table, x):
        reference = part[part["n_agents"] == part["reference_n_agents"]].iloc[0]
        no_reference = not reference["reached"] or reference["rounds_to_target"] == 0
        target = f"the target {part['target'].iloc[0]:.4g}"
        lacking = part[part["speedup"].isna()]
        reached = lacking["reached"].astype(bool)
        settles = reached & (lacking["rounds_to_target"] > 0)
        reasons = {
            f"never reaches {target}": ~reached,
            f"is at {target} from round 0 (T_ε = 0)": reached & (lacking["rounds_to_target"] == 0),
            f"has no speedup: its reference N={reference['n_agents']} has no T_ε": settles & no_reference,
            "has no speedup: fewer than half of the resamples of its seeds and its reference's give both T_ε": settles
            & (not no_reference),
        }
        for reason, where in reasons.items():
            if where.any():
                agents = ", ".join(map(str, lacking.loc[where, "n_agents"]))
                notes.append(f"speedup: {label or 'runs'} at N={agents} {reason}")
    return notes


EVALUATIONS_SCORED = 3  # a run's score on a task: the mean of its last this many evaluations


def run_scores(results: Results) -> pd.DataFrame:
    """Per run and agent (a task: the agent's own action map): the mean of the agent's last
    :data:`EVALUATIONS_SCORED` evaluation returns (``eval_return`` in agent_metrics.csv), with the run's group
    label. Runs without per-agent evaluations are left out."""
    keys = results.group_keys()
    shown = [k for k in keys if k in results.varying()]
    rows = []
    for key_values, part in groups(results.frame, keys):
        for run_dir in part["run_dir"].unique():
            path = Path(run_dir) / "agent_metrics.csv"
            agents = pd.read_csv(path) if path.is_file() else pd.DataFrame()
            if "eval_return" not in agents:
                continue
            evaluated = agents.dropna(subset=["eval_return"]).sort_values("round")
            for agent, returns in evaluated.groupby("agent")["eval_return"]:
                score = float(returns.iloc[-EVALUATIONS_SCORED:].mean())
                rows.append({"group": group_label(key_values, shown) or "runs", "run_dir": run_dir, "agent": agent,
                             "score": score})  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "run_dir", "agent", "score"])


def aggregate_tables(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """From :func:`run_scores`: each group's IQM and mean with their stratified-bootstrap intervals, the
    probability of improvement of every ordered pair of groups, and notes on the groups left out (fewer than the
    runs a bootstrap interval needs, or other tasks)."""
    matrices = {
        group: part.pivot_table(index="run_dir", columns="agent", values="score").dropna()
        for group, part in scores.groupby("group", sort=True)
    }
    rows, notes, kept = [], [], {}
    for group, matrix in matrices.items():
        try:
            found = aggregate_estimates(matrix.to_numpy())
        except AnalysisError as error:
            notes.append(f"aggregates: {group} left out: {error}")
            continue
        kept[group] = matrix
        for statistic, estimate in found.items():
            rows.append({"group": group, "statistic": statistic, "point": estimate.point, "ci_low": estimate.low,
                         "ci_high": estimate.high, "runs": matrix.shape[0], "tasks": matrix.shape[1]})  # fmt: skip
    pairs = []
    for first, x in kept.items():
        for second, y in kept.items():
            if first == second:
                continue
            if list(x.columns) != list(y.columns):
                notes.append(f"aggregates: {first} and {second} have different agents; no probability of improvement")
                continue
            estimate = improvement_probability(x.to_numpy(), y.to_numpy())
            pairs.append({"x": first, "y": second, "probability": estimate.point, "ci_low": estimate.low,
                          "ci_high": estimate.high})  # fmt: skip
    aggregates = pd.DataFrame(rows, columns=["group", "statistic", "point", "ci_low", "ci_high", "runs", "tasks"])
    improvement = pd.DataFrame(pairs, columns=["x", "y", "probability", "ci_low", "ci_high"])
    return aggregates, improvement, notes
