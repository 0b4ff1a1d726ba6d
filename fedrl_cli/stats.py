"""Every statistic fedrl reports about a set of runs: seed means and their intervals, differences and permutation
tests, log-log slopes, window means, rounds to a target ε and speedups, and per-group tuning. ``fedrl plot`` and
``fedrl reproduce`` both compute their numbers here, under one rule.

**The rule.** A claim is judged on per-seed values, at 95% confidence.

- A statistic that is a smooth function of seed means (a mean, a difference of means, a slope of log means) is
  reported at its value on the data. Its interval is a t interval with fewer than :data:`MIN_BOOTSTRAP_SEEDS`
  seeds (Welch's for an unpaired difference, the delta method with Welch–Satterthwaite degrees of freedom for a
  slope), and a percentile bootstrap over seeds from :data:`MIN_BOOTSTRAP_SEEDS` on (seeds resampled with
  replacement; together, as differences, when the design pairs them). A percentile bootstrap of a mean over 3
  seeds is their min–max range and covers far less than 95%, which is why few seeds get t.
- A settling statistic (rounds to ε and the speedup T_ε(N_ref) / T_ε(N)) is a step function of the curves that
  moves by whole rounds and has no t interval. It is bootstrapped at any number of seeds, and its point is the
  median of the same draws whose 2.5 and 97.5 percentiles are its interval, so the point always lies inside it.
- A test of "A differs from B" with few seeds is an exact permutation test (:func:`permutation_p_value`).
- The Hopper comparisons of algorithms (per-seed scores, paired by seed and action maps) give the paired t
  interval at any number of seeds (:func:`t_difference`) with the permutation test's p-value.

Nothing here imports torch or draws figures.
"""

from __future__ import annotations

import difflib
import math
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats

from fedrl_cli.results import Results, is_replicate

CONFIDENCE = 0.95
MIN_BOOTSTRAP_SEEDS = 10  # from this many seeds on, bootstrap intervals; below, t intervals
RESAMPLES = 2000  # bootstrap draws (from a fixed generator, so every number is reproducible)
EXACT_PERMUTATIONS = 100_000  # permutation tests enumerate every rearrangement up to this many
# metrics where smaller is better (errors, gaps, norms, losses); every other metric is a reward
LOWER_IS_BETTER = ("gap", "grad_norm", "error", "distance", "loss", "excess", "floor", "drift", "angle")


class AnalysisError(ValueError):
    """A request the runs cannot answer (a metric no run has, a key to tune that does not vary, ...)."""


def lower_is_better(metric: str) -> bool:
    """Errors, gaps, norms and losses go down; every other metric (returns, objectives) goes up."""
    return any(token in metric for token in LOWER_IS_BETTER)


def interval_method(seeds: int) -> str:
    """How the interval of a seed mean over ``seeds`` seeds is computed: ``none`` (one seed), ``t`` or
    ``bootstrap`` (see the module's rule)."""
    return "none" if seeds < 2 else "t" if seeds < MIN_BOOTSTRAP_SEEDS else "bootstrap"


def interval_name(seeds: int) -> str:
    """The interval in words, for figure titles and reports: ``95% t interval``, ``95% bootstrap CI``."""
    method = interval_method(seeds)
    if method == "none":
        return "no interval"
    return f"{CONFIDENCE:.0%} {'t interval' if method == 't' else 'bootstrap CI'}"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval, how the interval was computed and over how many seeds."""

    point: float
    low: float
    high: float
    method: str
    seeds: int

    def text(self, digits: str = ".3g", sign: str = "") -> str:
        """``point [low, high]`` formatted with ``digits`` (``sign="+"`` for differences)."""
        f = f"{sign}{digits}"
        return f"{self.point:{f}} [{self.low:{f}}, {self.high:{f}}]"


# --- seed means -------------------------------------------------------------------------------------------------


def t_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% t interval of the mean of ``values`` (seeds, points), per point: mean ± t_{n−1} · s/√n."""
    n = values.shape[0]
    mean = values.mean(axis=0)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile-bootstrap interval of the mean of ``values`` (seeds, points), seeds resampled with
    replacement (:data:`RESAMPLES` draws, a fixed generator)."""
    if np.all(values == values[:1]):  # no spread: the interval is the value (scipy warns on degenerate data)
        return values[0].copy(), values[0].copy()
    result = stats.bootstrap(
        (values,),
        np.mean,
        axis=0,
        vectorized=True,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(0),
    )
    return result.confidence_interval.low, result.confidence_interval.high


def _mean_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rule's interval of the mean of complete ``values`` (seeds ≥ 2, points)."""
    return t_interval(values) if interval_method(values.shape[0]) == "t" else bootstrap_interval(values)


def mean_and_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) of a (seeds, points) array and its 95% interval by the rule: t with fewer than
    :data:`MIN_BOOTSTRAP_SEEDS` seeds, percentile bootstrap from there on.

    With one seed the interval is the point itself; points where some seeds are missing use those present.
    """
    mean = np.nanmean(values, axis=0)
    low, high = mean.copy(), mean.copy()
    complete = ~np.isnan(values).any(axis=0)
    if values.shape[0] >= 2 and complete.any():
        low[complete], high[complete] = _mean_interval(values[:, complete])
    for point in np.flatnonzero(~complete):
        present = values[~np.isnan(values[:, point]), point]
        if len(present) >= 2:
            low[point], high[point] = (v[0] for v in _mean_interval(present[:, None]))
    return mean, low, high


def mean_estimate(values: np.ndarray) -> Estimate:
    """The mean of per-seed ``values`` with its interval by the rule."""
    values = np.asarray(values, dtype=float)
    mean, low, high = mean_and_ci(values[:, None])
    return Estimate(float(mean[0]), float(low[0]), float(high[0]), interval_method(len(values)), len(values))


# --- differences and tests --------------------------------------------------------------------------------------


def welch_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The 95% Welch t interval of mean(a) − mean(b) for independent samples of unequal variances."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference = a.mean() - b.mean()
    if va + vb == 0:
        return float(difference), float(difference)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(va + vb)
    return float(difference - half), float(difference + half)


def difference(a: np.ndarray, b: np.ndarray, paired: bool = False) -> Estimate:
    """mean(a) − mean(b) over seeds with its 95% interval by the rule. ``paired``: seed k of ``a`` and of ``b``
    share everything but the compared setting, and the interval is the mean's of the per-seed differences;
    unpaired: Welch's t interval below :data:`MIN_BOOTSTRAP_SEEDS` seeds a side, else each side's seeds
    resampled on their own."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        if a.shape != b.shape:
            raise AnalysisError(f"a paired difference needs as many seeds on each side (got {len(a)} and {len(b)})")
        return mean_estimate(a - b)
    seeds = min(len(a), len(b))
    point = float(a.mean() - b.mean())
    if seeds < 2:
        return Estimate(point, point, point, "none", seeds)
    if interval_method(seeds) == "t":
        return Estimate(point, *welch_interval(a, b), "t", seeds)
    rng = np.random.default_rng(0)
    draws = [x[rng.integers(len(x), size=(RESAMPLES, len(x)))].mean(axis=1) for x in (a, b)]
    low, high = np.percentile(draws[0] - draws[1], [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return Estimate(point, float(low), float(high), "bootstrap", seeds)


def t_difference(a: np.ndarray, b: np.ndarray, paired: bool = False) -> Estimate:
    """mean(a) − mean(b) with its 95% t interval at any number of seeds: the paired t interval of the per-seed
    differences, or Welch's. The Hopper comparisons report it beside :func:`permutation_p_value`, as t-tests are
    the field's usual test of two algorithms' seed means."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired and a.shape != b.shape:
        raise AnalysisError(f"a paired difference needs as many seeds on each side (got {len(a)} and {len(b)})")
    point, seeds = float(a.mean() - b.mean()), min(len(a), len(b))
    if seeds < 2:
        return Estimate(point, point, point, "none", seeds)
    if paired:
        low, high = (float(v[0]) for v in t_interval((a - b)[:, None]))
    else:
        low, high = welch_interval(a, b)
    return Estimate(point, low, high, "paired t" if paired else "Welch t", seeds)


def permutation_p_value(a: np.ndarray, b: np.ndarray, paired: bool = False) -> float:
    """Two-sided p-value of "mean(a) = mean(b)" by a permutation test of the difference of means: exact (every
    relabelling of the seeds, or every sign flip of the paired differences) up to :data:`EXACT_PERMUTATIONS`
    rearrangements, else that many random ones. With 3 seeds against 3 the smallest p-value is 2/20 = 0.1."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        kind, data, count = "samples", (a - b,), 2 ** len(a)
    else:
        kind, data, count = "independent", (a, b), math.comb(len(a) + len(b), len(a))

    def mean_difference(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return samples[0].mean(axis=axis) if paired else samples[0].mean(axis=axis) - samples[1].mean(axis=axis)

    result = stats.permutation_test(
        data,
        mean_difference,
        permutation_type=kind,
        vectorized=True,
        n_resamples=np.inf if count <= EXACT_PERMUTATIONS else EXACT_PERMUTATIONS,
        alternative="two-sided",
        random_state=np.random.default_rng(0),
    )
    return float(result.pvalue)


# --- aggregates over tasks (rliable's) -------------------------------------------------------------------------
#
# Agarwal et al. (2021): with one score per run and task (for federated Hopper, a task is an agent's action map),
# the interquartile mean (IQM) and the mean over all runs and tasks, and the probability that a run of X beats a run
# of Y averaged over tasks, each with a stratified percentile bootstrap (runs resampled within each task). Computed
# here with numpy and scipy rather than the `rliable` package: rliable 1.2 needs `arch` < 8, and arch 7.2 fails to
# import with pandas 3. Being percentile-bootstrap intervals, they are given only from MIN_BOOTSTRAP_SEEDS runs on.


def interquartile_mean(scores: np.ndarray) -> float:
    """The mean of the middle 50% of all the scores (25% trimmed from each end, as rliable's IQM)."""
    return float(stats.trim_mean(np.ravel(scores), 0.25))


def _stratified_draws(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:data:`RESAMPLES` stratified resamples of ``scores`` (runs, tasks): each task's runs drawn with replacement,
    independently: (resamples, runs, tasks)."""
    runs, tasks = scores.shape
    return scores[rng.integers(runs, size=(RESAMPLES, runs, tasks)), np.arange(tasks)]


def _enough_runs(*matrices: np.ndarray) -> None:
    fewest = min(matrix.shape[0] for matrix in matrices)
    if fewest < MIN_BOOTSTRAP_SEEDS:
        raise AnalysisError(
            f"aggregates need at least {MIN_BOOTSTRAP_SEEDS} runs per group (their intervals are percentile "
            f"bootstraps, which cover far less than 95% with fewer); a group has {fewest}"
        )


def aggregate_estimates(scores: np.ndarray) -> dict[str, Estimate]:
    """IQM and mean of ``scores`` (runs, tasks), each with its 95% stratified-bootstrap interval."""
    _enough_runs(scores)
    draws = _stratified_draws(scores, np.random.default_rng(0)).reshape(RESAMPLES, -1)
    found = {}
    for name, point, drawn in (
        ("IQM", interquartile_mean(scores), stats.trim_mean(draws, 0.25, axis=1)),
        ("mean", float(scores.mean()), draws.mean(axis=1)),
    ):
        low, high = np.percentile(drawn, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
        found[name] = Estimate(point, float(low), float(high), "stratified bootstrap", scores.shape[0])
    return found


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) over all pairs of runs, averaged over tasks, for (..., runs, tasks) arrays."""
    wins = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    ties = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (wins + 0.5 * ties).mean(axis=-1)


def improvement_probability(x: np.ndarray, y: np.ndarray) -> Estimate:
    """The probability that a run of X scores above a run of Y on a task, averaged over tasks (rliable's
    probability of improvement; ``x`` and ``y`` (runs, tasks), the same tasks), with its 95% stratified-bootstrap
    interval (both groups resampled)."""
    _enough_runs(x, y)
    rng = np.random.default_rng(0)
    drawn = _improvement(_stratified_draws(x, rng), _stratified_draws(y, rng))
    low, high = np.percentile(drawn, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return Estimate(float(_improvement(x, y)), float(low), float(high), "stratified bootstrap", min(len(x), len(y)))


# --- slopes -----------------------------------------------------------------------------------------------------


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def slope_estimate(frame: pd.DataFrame, x: str, y: str) -> Estimate:
    """The log-log slope of the seed mean of ``y`` against ``x`` (one row per seed and value of ``x``), with its
    95% interval by the rule: a bootstrap over seeds (resampled within each ``x``) when every ``x`` has at least
    :data:`MIN_BOOTSTRAP_SEEDS` seeds, else a t interval by the delta method (Var log m̄ ≈ s²/(n m̄²), degrees of
    freedom by Welch–Satterthwaite)."""
    groups = [(value, part[y].to_numpy(dtype=float)) for value, part in frame.groupby(x)]
    xs = np.log(np.array([value for value, _ in groups], dtype=float))
    means = np.array([values.mean() for _, values in groups])
    weights = (xs - xs.mean()) / ((xs - xs.mean()) ** 2).sum()  # slope = Σ weights · log means
    slope = float(weights @ np.log(means))
    seeds = min(len(values) for _, values in groups)
    if seeds < 2:
        return Estimate(slope, slope, slope, "none", seeds)
    if interval_method(seeds) == "bootstrap":
        rng = np.random.default_rng(0)
        draws = np.stack(
            [values[rng.integers(len(values), size=(RESAMPLES, len(values)))].mean(axis=1) for _, values in groups]
        )  # (x values, resamples)
        low, high = np.percentile(weights @ np.log(draws), [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
        return Estimate(slope, float(low), float(high), "bootstrap", seeds)
    counts = np.array([len(values) for _, values in groups])
    parts = weights**2 * np.array([values.var(ddof=1) for _, values in groups]) / (counts * means**2)
    variance = parts.sum()
    if variance == 0:
        return Estimate(slope, slope, slope, "t", seeds)
    df = variance**2 / (parts**2 / (counts - 1)).sum()
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(variance)
    return Estimate(slope, slope - half, slope + half, "t", seeds)


# --- windows ----------------------------------------------------------------------------------------------------


def window_means(
    frame: pd.DataFrame, value: str, by: list[str], first: int | None = None, last: int | None = None
) -> pd.Series:
    """Per combination of ``by`` (e.g. a run, or a run's agent): the mean of ``value`` over the rows whose round
    lies in [``first``, ``last``] (either end open when None); rows without a value are passed over. Over a whole
    run it is the area under the learning curve per round."""
    rounds = frame["round"]
    inside = rounds.ge(first if first is not None else rounds.min()) & rounds.le(
        last if last is not None else rounds.max()
    )
    return frame[inside].dropna(subset=[value]).groupby(by, dropna=False)[value].mean()


def final_means(frame: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Per combination of ``by``: the mean of ``metric`` over seeds at the last round any run has it."""
    rows = frame.dropna(subset=[metric])
    rows = rows[rows["round"] == rows.groupby(by, dropna=False)["round"].transform("max")]
    return rows.groupby(by, dropna=False)[metric].mean().reset_index()


# --- rounds to ε and speedup ------------------------------------------------------------------------------------


class SeedCurves(Protocol):
    """One setting's per-seed curves: ``runs`` (seeds, points) at ``rounds`` and ``x``, ``mean`` their seed mean."""

    runs: np.ndarray
    rounds: np.ndarray
    x: np.ndarray
    mean: np.ndarray


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


def _resampled_means(runs: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Seed-mean curves of ``resamples`` bootstrap draws of the seeds of ``runs`` (seeds, points), with
    replacement: (resamples, points)."""
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


def draws_estimate(draws: np.ndarray, method: str = "linear") -> tuple[float, float, float]:
    """The median and the 2.5 and 97.5 percentiles of the finite ``draws`` (NaN, NaN, NaN when fewer than half are
    finite): a point that lies inside its own interval, both from the same draws."""
    finite = draws[np.isfinite(draws)]
    if len(finite) == 0 or len(finite) < len(draws) / 2:
        return float("nan"), float("nan"), float("nan")
    low, point, high = np.percentile(finite, [50 * (1 - CONFIDENCE), 50, 50 * (1 + CONFIDENCE)], method=method)
    return float(point), float(low), float(high)


def settling_rows(members: list[SeedCurves], target: Target, lower: bool) -> list[dict[str, float | bool]]:
    """Per member of a family (sorted by N, the first the reference): ε (on the seed-mean curves), the rounds and x
    from which its seed-mean curve stays at ε (``rounds_to_target``, ``x_to_target``) and the speedup over the
    reference, each the median of its bootstrap draws with their 2.5–97.5 percentiles (:data:`RESAMPLES` draws
    from a fixed generator; seeds resampled with replacement within every member; the seed-mean curves, ε unless
    fixed, and the settling recomputed per draw). A member is ``reached`` when at least half its draws settle."""
    rng = np.random.default_rng(0)
    draws = [_resampled_means(curve.runs, rng, RESAMPLES) for curve in members]
    level = _levels([curve.mean[None, :] for curve in members], target, lower)
    levels = _levels(draws, target, lower)
    reference_x = _at(settle_index(draws[0], levels, lower), members[0].x)
    rows = []
    for curve, means in zip(members, draws, strict=True):
        settled = settle_index(means, levels, lower)
        rounds = draws_estimate(_at(settled, curve.rounds), "nearest")
        speedup = draws_estimate(_ratio(reference_x, _at(settled, curve.x)))
        rows.append(
            {
                "speedup": speedup[0],
                "rounds_to_target": rounds[0],
                "target": float(level[0]),
                "speedup_ci_low": speedup[1],
                "speedup_ci_high": speedup[2],
                "rounds_to_target_ci_low": rounds[1],
                "rounds_to_target_ci_high": rounds[2],
                "reached": bool(np.isfinite(rounds[0])),
                "x_to_target": draws_estimate(_at(settled, curve.x), "nearest")[0],
            }
        )
    return rows


# --- tuning -----------------------------------------------------------------------------------------------------


def _check_tune_keys(results: Results, metric: str, keys: list[str]) -> None:
    frame = results.frame
    if not keys:
        raise AnalysisError("--tune: give one or more config keys, e.g. --tune algo.lr")
    for key in keys:
        if key not in frame or key not in results.config_columns:
            known = [c for c in results.config_columns if c not in ("algo", "env")]
            close = [c for c in known if c.rsplit(".", 1)[-1] == key] or difflib.get_close_matches(key, known, n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise AnalysisError(f"--tune {key}: no run has this config key{hint}; keys: {', '.join(known)}")
        if frame[key].astype(str).nunique() < 2:
            raise AnalysisError(
                f"--tune {key}: every run has {key}={frame[key].iloc[0]}; tuning needs two values or more"
            )
        if is_replicate(key):
            raise AnalysisError(f"--tune {key}: seeds are replicates, averaged over, not a setting to choose")
    if metric not in frame or frame[metric].isna().all():
        raise AnalysisError(f"--metric {metric}: no run has it, so nothing can be tuned on it")


def tune(results: Results, metric: str, keys: list[str]) -> tuple[Results, pd.DataFrame]:
    """Keep, within each group of runs that differ only in ``keys`` and seed, the runs of the ``keys`` values with
    the best seed-mean final ``metric`` (lowest for errors and gaps, highest for returns; ties: the smallest value).

    Returns the kept runs (``tuned`` set, so the keys no longer separate groups) and the choices: one row per
    group, with the chosen value of each key as ``tuned_<key>``, its final mean ``final_<metric>`` and the number
    of values (combinations) ``tried``. Raises :class:`AnalysisError` for a key no run has or no group varies.
    """
    keys = list(dict.fromkeys(keys))
    _check_tune_keys(results, metric, keys)
    frame = results.frame
    tuned = Results(frame, results.runs, results.config_columns, tuple(keys))
    groups = tuned.group_keys()
    by_value = final_means(frame, [*groups, *keys], metric).dropna(subset=[metric])
    tried = by_value.groupby(groups, dropna=False)[metric].transform("size")
    if tried.max() < 2:
        raise AnalysisError(
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
