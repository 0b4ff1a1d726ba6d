"""Figures and tables from finished runs: convergence, speedup vs number of agents, bias vs local steps.

Runs are grouped by their config (every key that differs, the seeds and the keys that do not change a run's
numbers excepted); each group's curve is the mean over its distinct seeds with a 95% bootstrap confidence band
(scipy). Each group is plotted in one metric: ``--metric``, or its family's default (:func:`default_metric`);
groups without it are left out and listed. Plotting never imports torch.
"""

from __future__ import annotations

import difflib
import math
import os
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from scipy import stats

from fedrl_cli.results import Results, is_replicate

X_AXES = {
    "round": "round (communications)",
    "samples": "samples (transitions, all agents)",
    "samples_per_agent": "samples per agent (transitions)",
    "comm_floats": "communication (floats sent up + down)",
    "wall_s": "wall time (s)",
}
METRIC_LABELS = {
    "gap": "gap J* − J(θ̄)",
    "objective": "objective J(θ̄) (discounted return)",
    "grad_norm": "‖∇J(θ̄)‖",
    "local_objective": "mean_i J_i(θ_i) (discounted return)",
    "return_mean": "training episode return",
    "eval_return_mean": "evaluation episode return",
    "critic_error": "critic error",
}
FORMATS = ("png", "pdf", "svg")
# metrics where smaller is better (errors, gaps, norms, losses); every other metric is a reward
LOWER_IS_BETTER = ("gap", "grad_norm", "error", "distance", "loss", "excess", "floor", "drift")
SHORT_NAMES = {
    "n_agents": "N",
    "local_steps": "H",
    "reward_heterogeneity": "h_r",
    "transition_heterogeneity": "h_p",
    "algo.rounds": "T",
    "algo.lr": "η",
    "env.action_map": "action map",
}
LEADING_KEYS = ("algo", "env", "n_agents", "local_steps")
BIAS_AXES = {"local_steps": "local steps H", "reward_heterogeneity": "reward heterogeneity h_r"}
# the settings a figure's subtitle names when every plotted run shares them
FIXED_KEYS = (
    "env",
    "algo",
    "n_agents",
    "local_steps",
    "reward_heterogeneity",
    "transition_heterogeneity",
    "env.action_map",
    "gradient",
    "algo.lr",
    "algo.rounds",
)
# each run family's default metrics, the first one its runs have wins: by (env, algorithm), else by env
DEFAULT_METRICS = {
    ("tabular", "fedsubspace_ac"): ("critic_error",),
    "tabular": ("gap", "objective"),
    "hopper": ("eval_return_mean", "return_mean"),
}
FALLBACK_METRICS = ("gap", "objective", "critic_error", "eval_return_mean", "return_mean")
# columns of the loaded frame that are not metrics: the x axes (round, samples, ...) and bookkeeping
NOT_METRICS = {*X_AXES, "run_dir", "status"}
# beyond the 10 colours of the cycle, groups differ by line style and marker too
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = (None, "o", "s", "^", "D", "v")
RESAMPLES = 2000


class PlotError(ValueError):
    """A request the runs cannot answer (a metric no run has, an unknown axis, an output folder that is a file)."""


def lower_is_better(metric: str) -> bool:
    """Errors, gaps, norms and losses go down; every other metric (returns, objectives) goes up."""
    return any(token in metric for token in LOWER_IS_BETTER)


def _style(index: int) -> dict[str, object]:
    """The ``index``-th group's colour, line style and marker: distinct for the first 120 groups."""
    cycle = index // 10
    return {
        "color": f"C{index % 10}",
        "linestyle": LINE_STYLES[cycle % len(LINE_STYLES)],
        "marker": MARKERS[cycle % len(MARKERS)],
    }


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


def _groups(frame: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict[str, object], pd.DataFrame]]:
    """The rows of each combination of ``keys`` (all rows, as one group, when there are no keys), sorted."""
    if not keys:
        yield {}, frame
        return
    for values, part in frame.groupby(keys, sort=True, dropna=False):
        yield dict(zip(keys, values, strict=True)), part


def mean_and_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) of a (seeds, points) array and a 95% percentile-bootstrap interval.

    With one seed the interval is the point itself; points where some seeds are missing use those present.
    """
    mean = np.nanmean(values, axis=0)
    low, high = mean.copy(), mean.copy()
    complete = ~np.isnan(values).any(axis=0)
    if values.shape[0] >= 2 and complete.any():
        low[complete], high[complete] = _bootstrap(values[:, complete])
    for point in np.flatnonzero(~complete):
        present = values[~np.isnan(values[:, point]), point]
        if len(present) >= 2:
            low[point], high[point] = (v[0] for v in _bootstrap(present[:, None]))
    return mean, low, high


def _bootstrap(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.all(values == values[:1]):  # no spread: the interval is the value (scipy warns on degenerate data)
        return values[0].copy(), values[0].copy()

    result = stats.bootstrap(
        (values,),
        np.mean,
        axis=0,
        vectorized=True,
        confidence_level=0.95,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(0),
    )
    return result.confidence_interval.low, result.confidence_interval.high


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


def group_keys(results: Results) -> list[str]:
    """The config keys that separate curves: algorithm, env, N, H first, then every other varying key."""
    tuned = results.tuned_columns()
    present = [key for key in LEADING_KEYS if key in results.frame and key not in tuned]
    return present + [key for key in results.varying() if key not in present]


def _label(keys: dict[str, object], shown: list[str], tuned: dict[str, object] | None = None) -> str:
    parts = [str(keys["algo"])] if "algo" in keys else []
    parts += [f"{SHORT_NAMES.get(k, k)}={_value(_shown(keys[k]))}" for k in shown if k != "algo" and k in keys]
    parts += [f"{SHORT_NAMES.get(k, k)}*={_value(v)}" for k, v in (tuned or {}).items()]
    return " ".join(parts)


def _shown(value: object) -> object:
    """A value in a legend: a path (a run dir given as ``algo.trunk_from``) by its last component, a null as null."""
    if (isinstance(value, float) and np.isnan(value)) or value is None:
        return "null"
    return Path(value).name if isinstance(value, str) and "/" in value else value


def _value(value: object) -> str:
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
    for keys, part in _groups(frame, group_keys(results)):
        name = metric or default_metric(part)
        if name and name in part and part[name].notna().any():
            chosen[part.index] = name
            continue
        has = [c for c in metric_columns(results) if part[c].notna().any()]
        label = _label(keys, results.varying())
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
    keys = group_keys(results)
    shown = [k for k in keys if k in results.varying()]
    replicates = results.replicate_columns()
    found = []
    for key_values, part in _groups(frame, keys):
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
                _label(key_values, shown, tuned),
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


def summary_table(found: list[Curve], metric: str) -> pd.DataFrame:
    """One row per curve: its group keys, distinct seeds, last round, final seed-mean and 95% CI, costs."""
    rows = [
        {
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
        for curve in found
    ]
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Target:
    """How ε is chosen, the same way for every algorithm: ``value`` (``--target``), ``fraction`` of the largest
    initial seed-mean level across N (``--target-fraction``, for metrics where lower is better), or by default the
    worst final seed-mean level across N (largest where lower is better, smallest otherwise), which every N
    reaches."""

    value: float | None = None
    fraction: float | None = None

    def levels(self, starts: np.ndarray, ends: np.ndarray, lower: bool) -> np.ndarray:
        """ε per row of ``(rows, members)`` arrays of the members' first and last seed-mean values."""
        if self.value is not None:
            return np.full(len(ends), self.value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw where a member has no value at all
            if self.fraction is not None:
                return self.fraction * np.nanmax(starts, axis=1)
            return np.nanmax(ends, axis=1) if lower else np.nanmin(ends, axis=1)

    def rule(self, lower: bool) -> str:
        """How ε was chosen, in words (``target_rule`` in ``speedup.csv``)."""
        if self.value is not None:
            return f"--target {self.value:g}"
        if self.fraction is not None:
            return f"--target-fraction {self.fraction:g} of the largest initial level across N"
        return f"the {'largest' if lower else 'smallest'} final level across N"


def settle_index(means: np.ndarray, level: np.ndarray, lower: bool) -> np.ndarray:
    """Per row of ``means`` (rows, points): the first point from which the row stays at ``level`` or better (≤ where
    lower is better, ≥ otherwise) to its end, so that noise crossing ε early does not count; -1 where its last
    point is worse. NaN points (rounds a row lacks) are passed over."""
    worse = means > level[:, None] if lower else means < level[:, None]
    points = np.arange(means.shape[1])
    last_worse = np.where(worse, points, -1).max(axis=1, initial=-1)
    after = ~np.isnan(means) & (points > last_worse[:, None]) & ~np.isnan(level)[:, None]
    return np.where(after.any(axis=1), np.argmax(after, axis=1), -1)


def _resampled_means(curve: Curve, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Seed-mean curves of ``resamples`` bootstrap draws of the curve's seeds (with replacement): (resamples,
    points)."""
    runs = curve.runs
    picks = rng.integers(runs.shape[0], size=(resamples, runs.shape[0]))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a round no resampled seed has
        return np.nanmean(runs[picks], axis=1)


def _ends(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first and last value that is not NaN."""
    valid = ~np.isnan(means)
    rows = np.arange(len(means))
    first, last = np.argmax(valid, axis=1), means.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
    return means[rows, first], means[rows, last]


def _levels(means: list[np.ndarray], target: Target, lower: bool) -> np.ndarray:
    """ε per row of the members' ``(rows, points)`` seed-mean curves."""
    ends = [_ends(m) for m in means]
    return target.levels(np.column_stack([s for s, _ in ends]), np.column_stack([e for _, e in ends]), lower)


def _at(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (a curve's rounds or x) at each index, NaN where the index is -1 (ε not reached)."""
    return np.where(index >= 0, values[np.maximum(index, 0)], np.nan)


def _ratio(reference: np.ndarray, member: np.ndarray) -> np.ndarray:
    """``reference / member`` where both reached ε after round 0, NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((reference > 0) & (member > 0), reference / member, np.nan)


def _interval(draws: np.ndarray, method: str = "linear") -> tuple[float, float]:
    """The 2.5–97.5 percentile of the finite draws; NaN when fewer than half of them are finite."""
    finite = draws[np.isfinite(draws)]
    if len(finite) < len(draws) / 2:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5], method=method)
    return float(low), float(high)


def _family_rows(members: list[Curve], target: Target, lower: bool) -> list[dict[str, float | bool]]:
    """Per member (sorted by N, the first the reference): ε, the rounds and x from which its seed-mean curve stays
    at ε, the speedup over the reference, and 95% percentile-bootstrap intervals of both: seeds resampled with
    replacement within every member, and the seed-mean curves, ε (unless fixed) and the settling recomputed per
    draw (2000 draws, a fixed generator)."""
    rng = np.random.default_rng(0)
    draws = [_resampled_means(curve, rng, RESAMPLES) for curve in members]
    level = _levels([curve.mean[None, :] for curve in members], target, lower)
    levels = _levels(draws, target, lower)
    reference = members[0]
    reference_x = _at(settle_index(reference.mean[None, :], level, lower), reference.x)
    reference_draws = _at(settle_index(draws[0], levels, lower), reference.x)
    rows = []
    for curve, means in zip(members, draws, strict=True):
        index = settle_index(curve.mean[None, :], level, lower)
        drawn = settle_index(means, levels, lower)
        speedup_ci = _interval(_ratio(reference_draws, _at(drawn, curve.x)))
        rounds_ci = _interval(_at(drawn, curve.rounds), "nearest")
        rows.append(
            {
                "speedup": float(_ratio(reference_x, _at(index, curve.x))[0]),
                "rounds_to_target": float(_at(index, curve.rounds)[0]),
                "target": float(level[0]),
                "speedup_ci_low": speedup_ci[0],
                "speedup_ci_high": speedup_ci[1],
                "rounds_to_target_ci_low": rounds_ci[0],
                "rounds_to_target_ci_high": rounds_ci[1],
                "reached": bool(index[0] >= 0),
                "x_to_target": float(_at(index, curve.x)[0]),
            }
        )
    return rows


def speedup_table(found: list[Curve], metric: str, x: str, target: Target) -> pd.DataFrame:
    """``speedup(N) = T_ε(N_ref) / T_ε(N)`` per algorithm (and other varying keys), with ``N_ref = 1`` or the
    smallest N present; ``T_ε`` is the rounds (or ``x``) from which the seed-mean curve stays at ε or better, ε
    chosen by ``target`` for each algorithm alike. A setting whose curve does not end at ε has ``reached`` false
    and an empty speedup."""
    lower = lower_is_better(metric)
    families: dict[tuple, list[Curve]] = {}
    for curve in found:
        families.setdefault(tuple((k, v) for k, v in curve.keys.items() if k != "n_agents"), []).append(curve)
    rows = []
    for family, members in families.items():
        members.sort(key=lambda c: c.keys["n_agents"])
        for curve, found_row in zip(members, _family_rows(members, target, lower), strict=True):
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


def final_means(frame: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Per combination of ``by``: the seed-mean curve's last value (at the last round any run has the metric, as
    ``final_mean`` in :func:`summary_table`)."""
    rows = frame.dropna(subset=[metric])
    rows = rows[rows["round"] == rows.groupby(by, dropna=False)["round"].transform("max")]
    return rows.groupby(by, dropna=False)[metric].mean().reset_index()


def _check_tune_keys(results: Results, metric: str, keys: list[str]) -> None:
    frame = results.frame
    if not keys:
        raise PlotError("--tune: give one or more config keys, e.g. --tune algo.lr")
    for key in keys:
        if key not in frame or key not in results.config_columns:
            known = [c for c in results.config_columns if c not in ("algo", "env")]
            close = [c for c in known if c.rsplit(".", 1)[-1] == key] or difflib.get_close_matches(key, known, n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise PlotError(f"--tune {key}: no run has this config key{hint}; keys: {', '.join(known)}")
        if frame[key].astype(str).nunique() < 2:
            raise PlotError(f"--tune {key}: every run has {key}={frame[key].iloc[0]}; tuning needs two values or more")
        if is_replicate(key):
            raise PlotError(f"--tune {key}: seeds are replicates, averaged over, not a setting to choose")
    if metric not in frame or frame[metric].isna().all():
        raise PlotError(f"--metric {metric}: no run has it, so nothing can be tuned on it")


def tune(results: Results, metric: str, keys: list[str]) -> tuple[Results, pd.DataFrame]:
    """Keep, within each group of runs that differ only in ``keys`` and seed, the runs of the ``keys`` values with
    the best seed-mean final ``metric`` (lowest for errors and gaps, highest for returns; ties: the smallest value).

    Returns the kept runs (``tuned`` set, so the keys no longer separate groups) and the choices: one row per
    group, with the chosen value of each key as ``tuned_<key>``, its final mean ``final_<metric>`` and the number
    of values (combinations) ``tried``. Raises :class:`PlotError` for a key no run has or no group varies.
    """
    keys = list(dict.fromkeys(keys))
    _check_tune_keys(results, metric, keys)
    frame = results.frame
    tuned = Results(frame, results.runs, results.config_columns, tuple(keys))
    groups = group_keys(tuned)
    by_value = final_means(frame, [*groups, *keys], metric).dropna(subset=[metric])
    tried = by_value.groupby(groups, dropna=False)[metric].transform("size")
    if tried.max() < 2:
        raise PlotError(
            f"--tune {','.join(keys)}: every group of runs (same {', '.join(groups)}) has one value of it only, "
            "so there is nothing to choose"
        )
    by_value = by_value.assign(tried=tried).sort_values([*groups, *keys])
    ranked = by_value.groupby(groups, dropna=False)[metric]
    best = ranked.idxmin() if lower_is_better(metric) else ranked.idxmax()
    choices = by_value.loc[best.to_numpy()].reset_index(drop=True)
    kept = frame.merge(choices[[*groups, *keys]], on=[*groups, *keys], how="inner")
    choices = choices.rename(columns={**{key: f"tuned_{key}" for key in keys}, metric: f"final_{metric}"})
    return Results(kept, results.runs, results.config_columns, tuple(keys)), choices


def _finish(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(figure)
    return path


def _seeds_text(found: list[Curve]) -> str:
    """How many distinct seeds each curve averages: ``3 seeds`` or ``2–3 seeds per curve``."""
    counts = sorted({curve.seeds for curve in found})
    if len(counts) > 1:
        return f"{counts[0]}–{counts[-1]} seeds per curve"
    return f"{counts[0]} seed{'s' if counts[0] > 1 else ''}{' per curve' if len(found) > 1 else ''}"


def _band_text(found: list[Curve]) -> str:
    """What the shaded band is: a 95% bootstrap CI over the seeds, none for one seed."""
    counts = {curve.seeds for curve in found}
    if counts == {1}:
        return "1 seed: no band"
    if len(counts) == 1:
        return f"band: 95% bootstrap CI over {counts.pop()} seeds"
    return "band: 95% bootstrap CI over each curve's seeds (in the legend; none for 1 seed)"


def fixed_settings(results: Results, found: list[Curve]) -> str:
    """A figure's subtitle: the main settings every plotted run shares (env, algorithm, N, H, heterogeneity,
    gradient, step size, rounds) and the seeds per curve."""
    frame, varying = results.frame, {*results.varying(), *results.tuned_columns()}
    parts = []
    for key in FIXED_KEYS:
        values = frame[key].dropna() if key in frame and key not in varying else pd.Series(dtype=object)
        if len(values) and values.astype(str).nunique() == 1:
            parts.append(f"{SHORT_NAMES.get(key, key)}={_value(_shown(values.iloc[0]))}")
    return f"fixed: {', '.join(parts) or 'nothing'}; {_seeds_text(found)}"


def _title(head: str, fixed: str) -> str:
    """A figure title: ``head``, then the fixed settings wrapped below it."""
    return f"{head}\n{textwrap.fill(fixed, 110)}" if fixed else head


def convergence_figure(found: list[Curve], metric: str, x: str, path: Path, fixed: str = "") -> Path:
    """The seed-mean curves of ``metric`` against ``x``, with their bootstrap bands (none for one seed)."""
    figure, axis = plt.subplots(figsize=(8, 5))
    draw_convergence(axis, found, metric, x, fixed)
    return _finish(figure, path)


def draw_convergence(axis: plt.Axes, found: list[Curve], metric: str, x: str, fixed: str = "") -> None:
    """:func:`convergence_figure`'s drawing, onto ``axis``."""
    for index, curve in enumerate(found):
        style = _style(index)
        axis.plot(curve.x, curve.mean, label=curve.legend, lw=1.6, markevery=max(1, len(curve.x) // 10), **style)
        if curve.seeds > 1:
            axis.fill_between(curve.x, curve.low, curve.high, color=style["color"], alpha=0.2, lw=0)
    if lower_is_better(metric) and all(np.nanmin(c.low) > 0 for c in found):
        axis.set_yscale("log")
    if x == "round":
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel(X_AXES[x])
    axis.set_ylabel(METRIC_LABELS.get(metric, metric))
    axis.set_title(_title(f"{metric} vs {x}: mean over seeds; {_band_text(found)}", fixed), fontsize=9)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))


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


def _families(table: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """The rows of :func:`speedup_table` per algorithm (and other varying keys), sorted by N, with their label."""
    per_row = SPEEDUP_ROW_COLUMNS | {f"{x}_to_target"}
    line_keys = [c for c in table.columns if c not in per_row and not c.startswith("tuned_")]
    shown = [k for k in line_keys if table[k].astype(str).nunique() > 1]
    return [(_label(keys, shown), part.sort_values("n_agents")) for keys, part in _groups(table, line_keys)]


def speedup_lines(table: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """The speedup figure's lines: one per algorithm (and other varying keys), its rows sorted by N, and a legend
    label that gives its ε and names every N without a speedup: never at ε, or at it from round 0 (T_ε(N) = 0)."""
    tuned = [c.removeprefix("tuned_") for c in table.columns if c.startswith("tuned_")]
    lines = []
    for label, part in _families(table, x):
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


def _plain(value: float, _: object = None) -> str:
    """A log-scale tick as a plain number: 1, 2, 4, 0.5 (not 2^0)."""
    return f"{value:g}"


def speedup_figure(table: pd.DataFrame, metric: str, x: str, path: Path, fixed: str = "") -> Path:
    """Speedup against N per algorithm (its ε in the legend), its bootstrap band, and the ideal speedup."""
    figure, axis = plt.subplots(figsize=(7, 5.2))
    draw_speedup(axis, table, metric, x, fixed)
    return _finish(figure, path)


def draw_speedup(axis: plt.Axes, table: pd.DataFrame, metric: str, x: str, fixed: str = "") -> None:
    """:func:`speedup_figure`'s drawing, onto ``axis``."""
    tuned = [c for c in table.columns if c.startswith("tuned_")]
    for index, (label, part) in enumerate(speedup_lines(table, x)):
        style = _style(index)
        axis.plot(part["n_agents"], part["speedup"], label=label, **{**style, "marker": style["marker"] or "o"})
        axis.fill_between(
            part["n_agents"], part["speedup_ci_low"], part["speedup_ci_high"], color=style["color"], alpha=0.2, lw=0
        )
        for _, row in part[part["speedup"].notna()].iterrows() if tuned else ():  # each point's chosen value(s)
            text = ",".join(_value(row[c]) for c in tuned)
            axis.annotate(
                text,
                (row["n_agents"], row["speedup"]),
                xytext=(4, -10),
                textcoords="offset points",
                fontsize=7,
                color=style["color"],
            )
    agents = np.sort(table["n_agents"].unique())
    reference = table["reference_n_agents"].min()
    axis.plot(agents, agents / reference, "k--", lw=1, label=f"ideal: speedup = N/{reference}")
    if not table["reached"].any():
        axis.text(0.5, 0.5, "no setting reaches ε", transform=axis.transAxes, ha="center", va="center")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    axis.set_xticks(agents, [str(n) for n in agents])
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.yaxis.set_major_formatter(FuncFormatter(_plain))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("number of agents N")
    unit = "rounds" if x == "round" else x
    axis.set_ylabel(f"speedup T_ε(N={reference}) / T_ε(N)  ({unit})")
    relation = "≤" if lower_is_better(metric) else "≥"
    base = "N=1" if reference == 1 else f"the smallest N={reference} (no N=1 run)"
    rule = table["target_rule"].iloc[0]
    head = (
        f"Speedup vs agents, relative to {base}: T_ε = {unit} from which the seed-mean {metric} stays {relation} ε\n"
        f"ε: {rule}, per algorithm (legend); band: 95% bootstrap interval over seeds"
    )
    axis.set_title(_title(head, fixed), fontsize=8)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)


def bias_figure(
    summary: pd.DataFrame, keys: list[str], metric: str, axes_keys: list[str], path: Path, fixed: str = ""
) -> Path:
    """Final metric against each of ``axes_keys``; one line per combination of the other varying group keys."""
    figure, axes = plt.subplots(1, len(axes_keys), figsize=(6 * len(axes_keys), 4.8), squeeze=False)
    for axis, key in zip(axes[0], axes_keys, strict=True):
        line_keys = [k for k in keys if k == "algo" or (k != key and summary[k].astype(str).nunique() > 1)]
        for index, (values, part) in enumerate(_groups(summary, line_keys)):
            part = part.sort_values(key)
            errors = np.vstack([part["final_mean"] - part["final_ci_low"], part["final_ci_high"] - part["final_mean"]])
            style = _style(index)
            axis.errorbar(
                part[key],
                part["final_mean"],
                yerr=np.abs(errors),
                capsize=3,
                label=_label(values, line_keys),
                **{**style, "marker": style["marker"] or "o"},
            )
        if lower_is_better(metric) and (summary["final_mean"] > 0).all():
            axis.set_yscale("log")
        ticks = np.sort(summary[key].unique())
        if len(ticks) <= 12:
            axis.set_xticks(ticks, [_value(float(t)) for t in ticks])
        axis.set_xlabel(BIAS_AXES.get(key, key))
        axis.set_ylabel(f"final {METRIC_LABELS.get(metric, metric)}")
        head = f"final {metric} vs {SHORT_NAMES.get(key, key)}: seed mean, 95% bootstrap CI over seeds"
        axis.set_title(_title(head, fixed), fontsize=8)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7)
    return _finish(figure, path)


def _speedup_notes(table: pd.DataFrame, x: str) -> list[str]:
    """One line per family and reason a setting has no speedup: it, or its reference N, never reaches the target
    or is at it from round 0."""
    notes = []
    for label, part in _families(table, x):
        reference = part[part["n_agents"] == part["reference_n_agents"]].iloc[0]
        no_reference = not reference["reached"] or reference["rounds_to_target"] == 0
        target = f"the target {part['target'].iloc[0]:.4g}"
        lacking = part[part["speedup"].isna()]
        reached = lacking["reached"].astype(bool)
        reasons = {
            f"never reaches {target}": ~reached,
            f"is at {target} from round 0 (T_ε = 0)": reached & (lacking["rounds_to_target"] == 0),
            f"has no speedup: its reference N={reference['n_agents']} has no T_ε": reached
            & (lacking["rounds_to_target"] > 0)
            & no_reference,
        }
        for reason, where in reasons.items():
            if where.any():
                agents = ", ".join(map(str, lacking.loc[where, "n_agents"]))
                notes.append(f"speedup: {label or 'runs'} at N={agents} {reason}")
    return notes


@dataclass
class PlotReport:
    """What :func:`make_plots` wrote and found. With runs plotted in several metrics, ``parts`` holds one report per
    metric and the tables here are theirs stacked (``metric`` column)."""

    files: list[Path]
    notes: list[str]
    summary: pd.DataFrame
    speedup: pd.DataFrame | None
    choices: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    plotted: int = 0  # run dirs plotted
    metric: str = ""
    parts: list[PlotReport] = field(default_factory=list)


def _check_options(metric: str | None, x: str, fmt: str, target: float | None, target_fraction: float | None) -> None:
    if x not in X_AXES:
        raise PlotError(f"--x {x} is not allowed: it must be one of {', '.join(X_AXES)}")
    if fmt not in FORMATS:
        raise PlotError(f"--format {fmt} is not allowed: it must be one of {', '.join(FORMATS)}")
    if target is not None and not (math.isfinite(target) and target > 0):
        raise PlotError(f"--target {target:g} is not allowed: it must be a finite number > 0")
    if target_fraction is not None and not 0 < target_fraction < 1:
        raise PlotError(f"--target-fraction {target_fraction:g} is not allowed: it must be a number in (0, 1)")
    if target is not None and target_fraction is not None:
        raise PlotError("--target and --target-fraction: give one of them, not both")
    if metric and target_fraction is not None and not lower_is_better(metric):
        raise PlotError(
            f"--target-fraction: {metric} is a metric where higher is better; a fraction of the initial level "
            "applies to gaps and errors: give --target instead"
        )


def _make_folder(out: Path) -> None:
    """Create the output folder; :class:`PlotError` naming it when it is a file or cannot be made or written."""
    if out.exists() and not out.is_dir():
        raise PlotError(f"--out {out}: it is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PlotError(f"--out {out}: the folder cannot be created ({error.strerror or error})") from None
    if not os.access(out, os.W_OK):
        raise PlotError(f"--out {out}: the folder is not writable")


def _plot_metric(
    results: Results, metric: str, out: Path, x: str, target: Target, fmt: str, tune_keys: list[str] | None
) -> PlotReport:
    """The figures and tables of ``results`` in ``metric``, written into ``out``."""
    choices = None
    if tune_keys is not None:
        results, choices = tune(results, metric, tune_keys)
    found = curves(results, metric, x)
    fixed = fixed_settings(results, found)
    _make_folder(out)
    files = [convergence_figure(found, metric, x, out / f"convergence.{fmt}", fixed)]
    notes = [
        f"{c.label or 'runs'}: {c.run_count} runs of {c.seeds} distinct seeds; runs with the same seeds are averaged"
        for c in found
        if c.run_count > c.seeds
    ]
    summary = summary_table(found, metric)
    summary.to_csv(out / "summary.csv", index=False)
    files.append(out / "summary.csv")

    speedup, alerts = None, []
    if "n_agents" not in summary or summary["n_agents"].nunique() < 2:
        notes.append("speedup: skipped, it needs runs with at least two values of n_agents")
    elif target.fraction is not None and not lower_is_better(metric):
        notes.append(f"speedup: skipped for {metric}, where higher is better: --target-fraction applies to gaps")
    else:
        speedup = speedup_table(found, metric, x, target)
        speedup.to_csv(out / "speedup.csv", index=False)
        files += [speedup_figure(speedup, metric, x, out / f"speedup.{fmt}", fixed), out / "speedup.csv"]
        notes += _speedup_notes(speedup, x)
        if not speedup["reached"].any():
            alerts.append(
                f"no setting's seed-mean {metric} reaches ε ({speedup['target_rule'].iloc[0]}) and stays there: "
                f"speedup.csv has no speedups; try a {'larger' if lower_is_better(metric) else 'smaller'} target"
            )

    bias_axes = [k for k in BIAS_AXES if k in summary and summary[k].nunique() >= 2]
    if bias_axes:
        files.append(bias_figure(summary, group_keys(results), metric, bias_axes, out / f"bias.{fmt}", fixed))
    else:
        notes.append("bias: skipped, it needs runs with at least two values of local_steps or reward_heterogeneity")
    plotted = results.frame["run_dir"].nunique()
    return PlotReport(files, notes, summary, speedup, choices, alerts, plotted, metric)


def _stacked(tables: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    present = [table for table in tables if table is not None]
    return pd.concat(present, ignore_index=True) if present else None


def make_plots(
    results: Results,
    out: Path,
    metric: str | None = None,
    x: str = "round",
    target: float | None = None,
    fmt: str = "png",
    tune_keys: list[str] | None = None,
    target_fraction: float | None = None,
) -> PlotReport:
    """Write convergence, speedup and bias figures plus ``summary.csv`` (and ``speedup.csv``) into ``out``.

    Runs are plotted in ``metric``, or each group in its family's default (:func:`default_metric`); groups without
    it are left out (a note each). Runs in several metrics get a subfolder ``out/<metric>`` each. With
    ``tune_keys``, only the runs of each group's best values of those keys (:func:`tune`), the chosen values in
    ``tuned_<KEY>`` columns and in the report's ``choices``. :class:`PlotError` for bad options or nothing to plot.
    """
    _check_options(metric, x, fmt, target, target_fraction)
    _make_folder(out)
    selected, left_out = split_by_metric(results, metric)
    if target is not None and len(selected) > 1:
        raise PlotError(
            f"--target {target:g}: the runs are plotted in several metrics ({', '.join(selected)}); "
            "choose one with --metric"
        )
    several = len(selected) > 1
    rule = Target(target, target_fraction)
    parts = [
        _plot_metric(part, name, out / name if several else out, x, rule, fmt, tune_keys)
        for name, part in selected.items()
    ]
    notes = [*results.notes, *left_out]
    if not several:
        parts[0].notes[:0] = notes
        return parts[0]
    common = [
        name for name in metric_columns(results) if all(part.frame[name].notna().any() for part in selected.values())
    ]
    shared = f"; --metric {common[0]} plots them all in one figure" if common else ""
    notes.append(f"the runs are plotted in their families' default metrics ({', '.join(selected)}){shared}")
    return PlotReport(
        [file for part in parts for file in part.files],
        notes + [f"{part.metric}: {note}" for part in parts for note in part.notes],
        _stacked([part.summary for part in parts]),
        _stacked([part.speedup for part in parts]),
        _stacked([part.choices for part in parts]),
        [f"{part.metric}: {alert}" for part in parts for alert in part.warnings],
        sum(part.plotted for part in parts),
        parts=parts,
    )


def describe(results: Results, report: PlotReport) -> list[str]:
    """What ``fedrl plot`` prints: the runs plotted and skipped, per metric the tuning choices, summary and speedup
    tables, then the notes and the files written (warnings aside: ``report.warnings``)."""
    metrics = f" in {len(report.parts)} metrics, a subfolder each" if report.parts else ""
    lines = [f"fedrl: {report.plotted} runs plotted{metrics}"]
    lines += [f"  skipped ({run.status}) {run.path}{f': {run.error}' if run.error else ''}" for run in results.skipped]
    with pd.option_context("display.width", 160, "display.max_columns", 40, "display.float_format", "{:.4g}".format):
        for part in report.parts or [report]:
            if report.parts:
                lines.append(f"{part.metric} → {part.files[0].parent}:")
            if part.choices is not None:
                better = "lowest" if lower_is_better(part.metric) else "highest"
                lines.append(f"tuned (the best value per group, by the {better} seed-mean final {part.metric}):")
                lines.append(part.choices.to_string(index=False))
            lines.append(part.summary.to_string(index=False))
            if part.speedup is not None:
                lines.append(part.speedup.to_string(index=False))
    lines += [f"  {note}" for note in report.notes]
    lines += [f"wrote {file}" for file in report.files]
    return lines
