"""Figures and tables from finished runs: convergence, speedup vs number of agents, bias vs local steps.

Runs are grouped into curves by :mod:`fedrl_cli.curves` (each group's seed mean with its 95% interval over seeds,
by the rule of :mod:`fedrl_cli.stats`); this module draws them and writes the tables. Each group is plotted in one
metric: ``--metric``, or its family's default (:func:`fedrl_cli.curves.default_metric`); groups without it are left
out and listed. Plotting never imports torch.
"""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from fedrl_cli.curves import (
    EVALUATIONS_SCORED,
    SHORT_NAMES,
    X_AXES,
    Curve,
    PlotError,
    aggregate_tables,
    curves,
    group_label,
    groups,
    metric_columns,
    run_scores,
    shown_value,
    speedup_lines,
    speedup_notes,
    speedup_table,
    split_by_metric,
    summary_table,
    value_text,
    window_slopes,
)
from fedrl_cli.metrics import atomic_file
from fedrl_cli.results import Results
from fedrl_cli.stats import Target, interval_name, lower_is_better, tune

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
BIAS_AXES = {"local_steps": "local steps H", "reward_heterogeneity": "reward heterogeneity h_r"}
# the settings a figure's subtitle names when every plotted run shares them
FIXED_KEYS = (
    "env",
    "env.id",
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
# beyond the 10 colours of the cycle, groups differ by line style and marker too
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = (None, "o", "s", "^", "D", "v")


def _style(index: int) -> dict[str, object]:
    """The ``index``-th group's colour, line style and marker: distinct for the first 120 groups."""
    cycle = index // 10
    return {
        "color": f"C{index % 10}",
        "linestyle": LINE_STYLES[cycle % len(LINE_STYLES)],
        "marker": MARKERS[cycle % len(MARKERS)],
    }


def _finish(figure: plt.Figure, path: Path) -> Path:
    """Save ``figure`` to ``path`` whole or not at all (a full disk leaves no truncated figure)."""
    try:
        figure.tight_layout()
        with atomic_file(path, binary=True) as handle:
            figure.savefig(handle, format=path.suffix.lstrip("."), dpi=130, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def _write_table(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as CSV to ``path`` whole or not at all."""
    with atomic_file(path) as handle:
        table.to_csv(handle, index=False)


def _seeds_text(found: list[Curve]) -> str:
    """How many distinct seeds each curve averages: ``3 seeds`` or ``2–3 seeds per curve``."""
    counts = sorted({curve.seeds for curve in found})
    if len(counts) > 1:
        return f"{counts[0]}–{counts[-1]} seeds per curve"
    return f"{counts[0]} seed{'s' if counts[0] > 1 else ''}{' per curve' if len(found) > 1 else ''}"


def _band_text(seeds: set[int]) -> str:
    """What an interval over ``seeds`` (the curves' seed counts) is, by the rule of :mod:`fedrl_cli.stats`: a 95%
    t interval below 10 seeds, a 95% bootstrap CI from 10 on, none for one seed."""
    if seeds == {1}:
        return "1 seed: no band"
    if len(seeds) == 1:
        count = seeds.pop()
        return f"band: {interval_name(count)} over {count} seeds"
    names = sorted({interval_name(count) for count in seeds if count > 1})
    return f"band: {' or '.join(names)} over each curve's seeds (in the legend; none for 1 seed)"


def fixed_settings(results: Results, found: list[Curve]) -> str:
    """A figure's subtitle: the main settings every plotted run shares (env and its MuJoCo task, algorithm, N, H,
    heterogeneity, gradient, step size, rounds) and the seeds per curve."""
    frame, varying = results.frame, {*results.varying(), *results.tuned_columns()}
    parts = []
    for key in FIXED_KEYS:
        values = frame[key].dropna() if key in frame and key not in varying else pd.Series(dtype=object)
        if len(values) and values.astype(str).nunique() == 1:
            parts.append(f"{SHORT_NAMES.get(key, key)}={value_text(shown_value(values.iloc[0]))}")
    return f"fixed: {', '.join(parts) or 'nothing'}; {_seeds_text(found)}"


def _title(head: str, fixed: str) -> str:
    """A figure title: ``head``, then the fixed settings wrapped below it."""
    return f"{head}\n{textwrap.fill(fixed, 110)}" if fixed else head


def convergence_figure(found: list[Curve], metric: str, x: str, path: Path, fixed: str = "") -> Path:
    """The seed-mean curves of ``metric`` against ``x``, with their 95% bands over seeds (none for one seed)."""
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
    axis.set_title(
        _title(f"{metric} vs {x}: mean over seeds; {_band_text({c.seeds for c in found})}", fixed), fontsize=9
    )
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))


def _plain(value: float, _: object = None) -> str:
    """A log-scale tick as a plain number: 1, 2, 4, 0.5 (not 2^0)."""
    return f"{value:g}"


def speedup_figure(table: pd.DataFrame, metric: str, x: str, path: Path, fixed: str = "") -> Path:
    """Speedup against N per algorithm (its ε in the legend), its 95% bootstrap band, and the ideal speedup."""
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
            text = ",".join(value_text(row[c]) for c in tuned)
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
        f"ε: {rule}, per algorithm (legend); point and band: median and 95% interval of the bootstrap over seeds"
    )
    axis.set_title(_title(head, fixed), fontsize=8)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)


def window_figure(summary: pd.DataFrame, slopes: pd.DataFrame, metric: str, path: Path, fixed: str = "") -> Path:
    """The window level (each seed's mean over the last F of the rounds, then the seed mean with its 95% interval)
    against N per algorithm, log-log, the fitted slope and its interval in the legend, and guides of slope −1 (a
    linear speedup of a squared error or a variance) and −1/2 (the same speedup seen on a norm)."""
    figure, axis = plt.subplots(figsize=(7, 5.2))
    line_keys = [k for k in slopes.columns if not k.startswith("slope") and k != "window"]
    for index, (_, row) in enumerate(slopes.iterrows()):
        part = summary
        for key in line_keys:
            part = part[part[key].astype(str) == str(row[key])]
        part = part.sort_values("n_agents")
        style = _style(index)
        errors = np.abs(
            np.vstack([part["window_mean"] - part["window_ci_low"], part["window_ci_high"] - part["window_mean"]])
        )
        name = group_label(
            {k: row[k] for k in line_keys}, [k for k in line_keys if slopes[k].astype(str).nunique() > 1]
        )
        label = f"{name or 'runs'}: slope {row['slope']:.2f} [{row['slope_ci_low']:.2f}, {row['slope_ci_high']:.2f}]"
        axis.errorbar(part["n_agents"], part["window_mean"], yerr=errors, capsize=3, label=label,
                      **{**style, "marker": style["marker"] or "o"})  # fmt: skip
    agents = np.sort(summary["n_agents"].unique())
    if len(slopes):
        start = summary[summary["n_agents"] == agents[0]]["window_mean"].max()
        axis.plot(agents, start * agents[0] / agents, "k--", lw=1, label="slope −1 (linear speedup)")
        guide = "slope −1/2 (linear speedup of a norm)"
        axis.plot(agents, start * np.sqrt(agents[0] / agents), "k:", lw=1, label=guide)
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xticks(agents, [str(n) for n in agents])
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("number of agents N")
    window = summary["window"].iloc[0]
    axis.set_ylabel(f"mean {metric} over the last {window:g} of the rounds")
    seeds = set(summary["seeds"])
    head = (
        f"{metric} over the last {window:g} of the rounds vs N: seed mean; {_band_text(seeds).replace('band', 'bars')}"
        "\nslope: log-log fit to the seed means, 95% interval over seeds"
    )
    axis.set_title(_title(head, fixed), fontsize=8)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)
    return _finish(figure, path)


def aggregates_figure(aggregates: pd.DataFrame, path: Path) -> Path:
    """Each group's IQM and mean of the final evaluation returns with their 95% stratified-bootstrap intervals."""
    statistics = list(dict.fromkeys(aggregates["statistic"]))
    figure, axes = plt.subplots(
        1, len(statistics), figsize=(4.5 * len(statistics), 0.6 * aggregates["group"].nunique() + 1.8)
    )
    for axis, statistic in zip(np.atleast_1d(axes), statistics, strict=True):
        part = aggregates[aggregates["statistic"] == statistic].reset_index(drop=True)
        axis.errorbar(part["point"], part.index, xerr=[part["point"] - part["ci_low"], part["ci_high"] - part["point"]],
                      fmt="o", capsize=4)  # fmt: skip
        axis.set_yticks(part.index, part["group"])
        axis.set_title(statistic, fontsize=9)
        axis.set_xlabel("evaluation return")
        axis.grid(alpha=0.3, axis="x")
    figure.suptitle(
        f"final evaluation return (mean of the last {EVALUATIONS_SCORED} evaluations per agent): 95% stratified "
        "bootstrap over runs, agents as tasks",
        fontsize=8,
    )
    return _finish(figure, path)


def bias_figure(
    summary: pd.DataFrame, keys: list[str], metric: str, axes_keys: list[str], path: Path, fixed: str = ""
) -> Path:
    """Final metric against each of ``axes_keys``; one line per combination of the other varying group keys."""
    figure, axes = plt.subplots(1, len(axes_keys), figsize=(6 * len(axes_keys), 4.8), squeeze=False)
    for axis, key in zip(axes[0], axes_keys, strict=True):
        line_keys = [k for k in keys if k == "algo" or (k != key and summary[k].astype(str).nunique() > 1)]
        for index, (values, part) in enumerate(groups(summary, line_keys)):
            part = part.sort_values(key)
            errors = np.vstack([part["final_mean"] - part["final_ci_low"], part["final_ci_high"] - part["final_mean"]])
            style = _style(index)
            axis.errorbar(
                part[key],
                part["final_mean"],
                yerr=np.abs(errors),
                capsize=3,
                label=group_label(values, line_keys),
                **{**style, "marker": style["marker"] or "o"},
            )
        if lower_is_better(metric) and (summary["final_mean"] > 0).all():
            axis.set_yscale("log")
        ticks = np.sort(summary[key].unique())
        if len(ticks) <= 12:
            axis.set_xticks(ticks, [value_text(float(t)) for t in ticks])
        axis.set_xlabel(BIAS_AXES.get(key, key))
        axis.set_ylabel(f"final {METRIC_LABELS.get(metric, metric)}")
        bars = _band_text(set(summary["seeds"])).replace("band", "bars")
        head = f"final {metric} vs {SHORT_NAMES.get(key, key)}: seed mean; {bars}"
        axis.set_title(_title(head, fixed), fontsize=8)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7)
    return _finish(figure, path)


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


def _check_options(
    metric: str | None, x: str, fmt: str, target: float | None, target_fraction: float | None, window: float | None
) -> None:
    if window is not None and not (math.isfinite(window) and 0 < window <= 1):
        raise PlotError(f"--window {window:g} is not allowed: it must be a number in (0, 1]")
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
    results: Results,
    metric: str,
    out: Path,
    x: str,
    target: Target,
    fmt: str,
    tune_keys: list[str] | None,
    window: float | None = None,
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
    summary = summary_table(found, metric, window)
    _write_table(summary, out / "summary.csv")
    files.append(out / "summary.csv")
    if window is not None:
        slopes = window_slopes(found, window)
        if len(slopes):
            _write_table(slopes, out / "window_slopes.csv")
            files += [window_figure(summary, slopes, metric, out / f"window.{fmt}", fixed), out / "window_slopes.csv"]
        else:
            notes.append("window: no slope, it needs runs with at least two values of n_agents and positive levels")

    speedup, alerts = None, []
    if "n_agents" not in summary or summary["n_agents"].nunique() < 2:
        notes.append("speedup: skipped, it needs runs with at least two values of n_agents")
    elif target.fraction is not None and not lower_is_better(metric):
        notes.append(f"speedup: skipped for {metric}, where higher is better: --target-fraction applies to gaps")
    else:
        speedup = speedup_table(found, metric, x, target)
        _write_table(speedup, out / "speedup.csv")
        files += [speedup_figure(speedup, metric, x, out / f"speedup.{fmt}", fixed), out / "speedup.csv"]
        notes += speedup_notes(speedup, x)
        if not speedup["reached"].any():
            alerts.append(
                f"no setting's seed-mean {metric} reaches ε ({speedup['target_rule'].iloc[0]}) and stays there: "
                f"speedup.csv has no speedups; try a {'larger' if lower_is_better(metric) else 'smaller'} target"
            )

    bias_axes = [k for k in BIAS_AXES if k in summary and summary[k].nunique() >= 2]
    if bias_axes:
        files.append(bias_figure(summary, results.group_keys(), metric, bias_axes, out / f"bias.{fmt}", fixed))
    else:
        notes.append("bias: skipped, it needs runs with at least two values of local_steps or reward_heterogeneity")
    if metric == "eval_return_mean":
        aggregates, improvement, left_out = aggregate_tables(run_scores(results))
        notes += left_out
        if len(aggregates):
            _write_table(aggregates, out / "aggregates.csv")
            _write_table(improvement, out / "improvement.csv")
            files += [aggregates_figure(aggregates, out / f"aggregates.{fmt}"), out / "aggregates.csv"]
            files.append(out / "improvement.csv")
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
    window: float | None = None,
) -> PlotReport:
    """Write convergence, speedup and bias figures plus ``summary.csv`` (and ``speedup.csv``) into ``out``.

    Runs are plotted in ``metric``, or each group in its family's default (:func:`default_metric`); groups without
    it are left out (a note each). Runs in several metrics get a subfolder ``out/<metric>`` each. With
    ``tune_keys``, only the runs of each group's best values of those keys (:func:`tune`), the chosen values in
    ``tuned_<KEY>`` columns and in the report's ``choices``. :class:`PlotError` for bad options or nothing to plot.
    """
    _check_options(metric, x, fmt, target, target_fraction, window)
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
        _plot_metric(part, name, out / name if several else out, x, rule, fmt, tune_keys, window)
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
