"""Figures and tables from finished runs: convergence, speedup vs number of agents, bias vs local steps.

Runs are grouped by their config (algorithm, N, H and every other key that varies, seeds excepted); each
group's curve is the mean over seeds with a 95% bootstrap confidence band (scipy). Plotting never imports torch.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
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
}
FORMATS = ("png", "pdf", "svg")
# metrics where smaller is better (errors, gaps, norms, losses); every other metric is a reward
LOWER_IS_BETTER = ("gap", "grad_norm", "error", "distance", "loss", "excess", "floor", "drift")
SHORT_NAMES = {"n_agents": "N", "local_steps": "H", "reward_heterogeneity": "h_r", "transition_heterogeneity": "h_p"}
LEADING_KEYS = ("algo", "env", "n_agents", "local_steps")
BIAS_AXES = {"local_steps": "local steps H", "reward_heterogeneity": "reward heterogeneity h_r"}


class PlotError(ValueError):
    """A request the runs cannot answer (a metric no run has, an unknown axis)."""


def lower_is_better(metric: str) -> bool:
    return any(token in metric for token in LOWER_IS_BETTER)


def default_metric(frame: pd.DataFrame) -> str:
    for metric in ("gap", "objective", "return_mean", "eval_return_mean"):
        if metric in frame and frame[metric].notna().any():
            return metric
    raise PlotError("the runs have none of the metrics gap, objective, return_mean; choose one with --metric")


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
        n_resamples=2000,
        method="percentile",
        random_state=np.random.default_rng(0),
    )
    return result.confidence_interval.low, result.confidence_interval.high


@dataclass
class Curve:
    """One group's seed-mean curve of a metric against rounds (and the chosen x axis)."""

    keys: dict[str, object]
    label: str
    seeds: int
    rounds: np.ndarray
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    final: dict[str, float] = field(default_factory=dict)
    runs: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (seeds, points): each run's values
    tuned: dict[str, object] = field(default_factory=dict)  # the values --tune chose for this group


def group_keys(results: Results) -> list[str]:
    """The config keys that separate curves: algorithm, env, N, H first, then every other varying key."""
    tuned = results.tuned_columns()
    present = [key for key in LEADING_KEYS if key in results.frame and key not in tuned]
    return present + [key for key in results.varying() if key not in present]


def _label(keys: dict[str, object], shown: list[str], tuned: dict[str, object] | None = None) -> str:
    parts = [str(keys["algo"])] if "algo" in keys else []
    parts += [f"{SHORT_NAMES.get(k, k)}={_shown(keys[k])}" for k in shown if k != "algo"]
    parts += [f"{SHORT_NAMES.get(k, k)}*={_value(v)}" for k, v in (tuned or {}).items()]
    return " ".join(parts)


def _shown(value: object) -> object:
    """A value in a legend: a path (a run dir given as ``algo.trunk_from``) by its last component, a null as null."""
    if (isinstance(value, float) and np.isnan(value)) or value is None:
        return "null"
    return Path(value).name if isinstance(value, str) and "/" in value else value


def _value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def curves(results: Results, metric: str, x: str) -> list[Curve]:
    frame = results.frame
    if metric not in frame or frame[metric].isna().all():
        numeric = [c for c in frame.select_dtypes("number") if c not in results.config_columns and c != "round"]
        raise PlotError(f"--metric {metric}: no run has it; available: {', '.join(numeric)}")
    keys = group_keys(results)
    shown = [k for k in keys if k in results.varying()]
    found = []
    for values, part in frame.groupby(keys, sort=True, dropna=False):
        key_values = dict(zip(keys, values, strict=True))
        tuned = {key: part[key].iloc[0] for key in results.tuned}
        # rounds where no run has the metric (e.g. between evaluations) are left out
        table = part.pivot_table(index="round", columns="run_dir", values=metric, dropna=False).dropna(how="all")
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
                part["run_dir"].nunique(),
                table.index.to_numpy(),
                by_round[x].mean().reindex(table.index).to_numpy(),
                mean,
                low,
                high,
                final,
                table.to_numpy().T,
                tuned,
            )
        )
    return found


def summary_table(found: list[Curve], metric: str) -> pd.DataFrame:
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


def steps_to_target(curve: Curve, target: float, lower: bool) -> tuple[float, float]:
    """The first round, and the x value, at which the seed-mean curve reaches ``target`` (NaN if never)."""
    reached = curve.mean <= target if lower else curve.mean >= target
    if not reached.any():
        return float("nan"), float("nan")
    first = int(np.argmax(reached))
    return float(curve.rounds[first]), float(curve.x[first])


def _resampled_means(curve: Curve, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Seed-mean curves of ``resamples`` bootstrap draws of the curve's runs (with replacement): (resamples, points)."""
    runs = curve.runs
    picks = rng.integers(runs.shape[0], size=(resamples, runs.shape[0]))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a round no resampled run has
        return np.nanmean(runs[picks], axis=1)


def _first_x(means: np.ndarray, x: np.ndarray, level: np.ndarray, lower: bool) -> np.ndarray:
    """Per row of ``means``, the x at which it first reaches its ``level`` (NaN where it never does)."""
    reached = means <= level[:, None] if lower else means >= level[:, None]
    first = np.argmax(reached, axis=1)
    return np.where(reached.any(axis=1), x[first], np.nan)


def speedup_intervals(
    reference: Curve, members: list[Curve], target: float | None, lower: bool, resamples: int = 2000
) -> np.ndarray:
    """95% percentile-bootstrap intervals of each member's speedup over ``reference``: seeds resampled with
    replacement within every curve, the seed-mean curves, the target (the reference's final level when not given)
    and rounds-to-target recomputed per draw. Returns (members, 2); NaN where fewer than half the draws reach it."""
    rng = np.random.default_rng(0)
    reference_means = _resampled_means(reference, rng, resamples)
    level = reference_means[:, -1] if target is None else np.full(resamples, target)
    reference_x = _first_x(reference_means, reference.x, level, lower)
    intervals = np.full((len(members), 2), np.nan)
    for index, curve in enumerate(members):
        means = reference_means if curve is reference else _resampled_means(curve, rng, resamples)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = reference_x / _first_x(means, curve.x, level, lower)
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]  # reached, not at once
        if len(ratios) >= resamples / 2:
            intervals[index] = np.percentile(ratios, [2.5, 97.5])
    return intervals


def speedup_table(found: list[Curve], metric: str, x: str, target: float | None) -> pd.DataFrame:
    """``speedup(N) = T_ε(N_ref) / T_ε(N)`` per algorithm (and other varying keys), with ``N_ref = 1`` or the
    smallest N present, and a 95% bootstrap interval over seeds; ε defaults to the level the reference reaches at
    its end. A setting whose seed-mean curve never reaches ε has an empty speedup (``reached`` false)."""
    lower = lower_is_better(metric)
    rows = []
    families: dict[tuple, list[Curve]] = {}
    for curve in found:
        family = tuple((k, v) for k, v in curve.keys.items() if k != "n_agents")
        families.setdefault(family, []).append(curve)
    for family, members in families.items():
        members.sort(key=lambda c: c.keys["n_agents"])
        reference = members[0]
        level = reference.mean[-1] if target is None else target
        reference_x = steps_to_target(reference, level, lower)[1]
        intervals = speedup_intervals(reference, members, target, lower)
        for curve, (low, high) in zip(members, intervals, strict=True):
            at_round, at_x = steps_to_target(curve, level, lower)
            ratio = reference_x / at_x if at_x > 0 and reference_x > 0 else float("nan")  # never, or at once
            row = {
                "algo": curve.keys.get("algo"),
                "n_agents": curve.keys["n_agents"],
                "speedup": ratio,
                "rounds_to_target": at_round,
                "target": level,
                "reference_n_agents": reference.keys["n_agents"],
                "speedup_ci_low": low,
                "speedup_ci_high": high,
                "reached": not np.isnan(at_round),
                "seeds": curve.seeds,
            }
            if x != "round":
                row[f"{x}_to_target"] = at_x
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


def convergence_figure(found: list[Curve], metric: str, x: str, path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(8, 5))
    for curve in found:
        (line,) = axis.plot(
            curve.x, curve.mean, label=f"{curve.label} ({curve.seeds} seed{'s' if curve.seeds > 1 else ''})", lw=1.6
        )
        if curve.seeds > 1:
            axis.fill_between(curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.2, lw=0)
    positive = all(np.nanmin(c.low) > 0 for c in found)
    if lower_is_better(metric) and positive:
        axis.set_yscale("log")
    axis.set_xlabel(X_AXES[x])
    axis.set_ylabel(METRIC_LABELS.get(metric, metric))
    axis.set_title(f"{metric} vs {x}: mean over seeds, 95% bootstrap CI")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(figure, path)


def _families(table: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """The rows of :func:`speedup_table` per algorithm (and other varying keys), sorted by N, with their label."""
    per_row = {"n_agents", "speedup", "speedup_ci_low", "speedup_ci_high", "reached", "rounds_to_target", "target"}
    per_row |= {"reference_n_agents", "seeds", f"{x}_to_target"}
    line_keys = [c for c in table.columns if c not in per_row and not c.startswith("tuned_")]
    shown = [k for k in line_keys if table[k].astype(str).nunique() > 1]
    families = []
    for values, part in table.groupby(line_keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        families.append((_label(dict(zip(line_keys, values, strict=True)), shown), part.sort_values("n_agents")))
    return families


def speedup_lines(table: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """The speedup figure's lines: one per algorithm (and other varying keys), its rows sorted by N, and a legend
    label that names every N without a speedup: never at the target, or at it from round 0 (T_ε(N) = 0)."""
    tuned = [c.removeprefix("tuned_") for c in table.columns if c.startswith("tuned_")]
    lines = []
    for label, part in _families(table, x):
        missing = part.loc[~part["reached"].astype(bool), "n_agents"].tolist()
        at_start = part.loc[part["reached"].astype(bool) & (part["rounds_to_target"] == 0), "n_agents"].tolist()
        notes = [f"{', '.join(map(str, tuned))}* at each point"] if tuned else []
        if len(missing) == len(part):
            notes.append("target not reached")
        elif missing:
            notes.append(f"target not reached at N={', '.join(map(str, missing))}")
        if at_start:
            notes.append(f"at the target from round 0 at N={', '.join(map(str, at_start))}")
        lines.append((label + (f" ({'; '.join(notes)})" if notes else ""), part))
    return lines


def speedup_figure(table: pd.DataFrame, metric: str, x: str, path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(6.5, 5))
    tuned = [c for c in table.columns if c.startswith("tuned_")]
    for label, part in speedup_lines(table, x):
        (line,) = axis.plot(part["n_agents"], part["speedup"], marker="o", label=label)
        axis.fill_between(
            part["n_agents"], part["speedup_ci_low"], part["speedup_ci_high"], color=line.get_color(), alpha=0.2, lw=0
        )
        if tuned:  # each point's chosen value(s)
            for _, row in part[part["speedup"].notna()].iterrows():
                text = ",".join(_value(row[c]) for c in tuned)
                axis.annotate(
                    text,
                    (row["n_agents"], row["speedup"]),
                    xytext=(4, -10),
                    textcoords="offset points",
                    fontsize=7,
                    color=line.get_color(),
                )
    agents = np.sort(table["n_agents"].unique())
    reference = table["reference_n_agents"].min()
    axis.plot(agents, agents / reference, "k--", lw=1, label=f"ideal: speedup = N/{reference}")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    axis.set_xlabel("number of agents N")
    unit = "rounds" if x == "round" else x
    axis.set_ylabel(f"speedup T_ε(N={reference}) / T_ε(N)  ({unit})")
    relation = "≤" if lower_is_better(metric) else "≥"
    targets = ", ".join(f"{t:.3g}" for t in sorted(table["target"].unique()))
    base = "N=1" if reference == 1 else f"the smallest N={reference} (no N=1 run)"
    axis.set_title(
        f"Speedup vs agents: {metric} {relation} {targets}, relative to {base}\n"
        "seed-mean curves; band: 95% bootstrap interval over seeds",
        fontsize=9,
    )
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)
    return _finish(figure, path)


def bias_figure(summary: pd.DataFrame, keys: list[str], metric: str, axes_keys: list[str], path: Path) -> Path:
    """Final metric against each of ``axes_keys``; one line per combination of the other varying group keys."""
    figure, axes = plt.subplots(1, len(axes_keys), figsize=(6 * len(axes_keys), 4.5), squeeze=False)
    for axis, key in zip(axes[0], axes_keys, strict=True):
        line_keys = [k for k in keys if k == "algo" or (k != key and summary[k].astype(str).nunique() > 1)]
        for values, part in summary.groupby(line_keys, sort=True, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            part = part.sort_values(key)
            errors = np.vstack([part["final_mean"] - part["final_ci_low"], part["final_ci_high"] - part["final_mean"]])
            axis.errorbar(
                part[key],
                part["final_mean"],
                yerr=np.abs(errors),
                marker="o",
                capsize=3,
                label=_label(dict(zip(line_keys, values, strict=True)), line_keys),
            )
        if lower_is_better(metric) and (summary["final_mean"] > 0).all():
            axis.set_yscale("log")
        axis.set_xlabel(
            {"local_steps": "local steps H", "reward_heterogeneity": "reward heterogeneity h_r"}.get(key, key)
        )
        axis.set_ylabel(f"final {METRIC_LABELS.get(metric, metric)}")
        axis.set_title(f"final {metric} vs {SHORT_NAMES.get(key, key)} (mean, 95% CI)", fontsize=10)
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
        reasons = {
            f"never reaches {target}": ~lacking["reached"].astype(bool),
            f"is at {target} from round 0 (T_ε = 0)": lacking["reached"].astype(bool)
            & (lacking["rounds_to_target"] == 0),
            f"has no speedup: its reference N={reference['n_agents']} has no T_ε": lacking["reached"].astype(bool)
            & (lacking["rounds_to_target"] > 0)
            & no_reference,
        }
        for reason, where in reasons.items():
            if where.any():
                agents = ", ".join(map(str, lacking.loc[where, "n_agents"]))
                notes.append(f"speedup: {label} at N={agents} {reason}")
    return notes


@dataclass
class PlotReport:
    files: list[Path]
    notes: list[str]
    summary: pd.DataFrame
    speedup: pd.DataFrame | None
    choices: pd.DataFrame | None = None


def make_plots(
    results: Results,
    out: Path,
    metric: str | None = None,
    x: str = "round",
    target: float | None = None,
    fmt: str = "png",
    tune_keys: list[str] | None = None,
) -> PlotReport:
    """Write convergence, speedup and bias figures plus ``summary.csv`` (and ``speedup.csv``) into ``out``; with
    ``tune_keys``, only the runs of each group's best values of those keys (:func:`tune`), the chosen values in
    ``tuned_<KEY>`` columns and in the report's ``choices``."""
    if x not in X_AXES:
        raise PlotError(f"--x {x} is not allowed: it must be one of {', '.join(X_AXES)}")
    if fmt not in FORMATS:
        raise PlotError(f"--format {fmt} is not allowed: it must be one of {', '.join(FORMATS)}")
    metric = metric or default_metric(results.frame)
    choices = None
    if tune_keys is not None:
        results, choices = tune(results, metric, tune_keys)
    found = curves(results, metric, x)
    out.mkdir(parents=True, exist_ok=True)
    files, notes = [convergence_figure(found, metric, x, out / f"convergence.{fmt}")], []
    summary = summary_table(found, metric)
    summary.to_csv(out / "summary.csv", index=False)
    files.append(out / "summary.csv")

    speedup = None
    if "n_agents" in summary and summary["n_agents"].nunique() >= 2:
        speedup = speedup_table(found, metric, x, target)
        speedup.to_csv(out / "speedup.csv", index=False)
        files += [speedup_figure(speedup, metric, x, out / f"speedup.{fmt}"), out / "speedup.csv"]
        notes += _speedup_notes(speedup, x)
    else:
        notes.append("speedup: skipped, it needs runs with at least two values of n_agents")

    bias_axes = [k for k in BIAS_AXES if k in summary and summary[k].nunique() >= 2]
    if bias_axes:
        files.append(bias_figure(summary, group_keys(results), metric, bias_axes, out / f"bias.{fmt}"))
    else:
        notes.append("bias: skipped, it needs runs with at least two values of local_steps or reward_heterogeneity")
    return PlotReport(files, notes, summary, speedup, choices)
