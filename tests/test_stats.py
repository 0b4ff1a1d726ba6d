"""The statistics of fedrl.stats on data with known answers: coverage of the intervals by simulation, exact
permutation p-values, slopes of exact power laws, windows, and points inside their own intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fedrl_cli.stats import (
    MIN_BOOTSTRAP_SEEDS,
    AnalysisError,
    difference,
    draws_estimate,
    interval_method,
    mean_and_ci,
    mean_estimate,
    permutation_p_value,
    slope_estimate,
    t_difference,
    welch_interval,
    window_means,
)


def covered(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


def test_the_rule_picks_t_below_ten_seeds_and_bootstrap_from_ten() -> None:
    assert [interval_method(n) for n in (1, 2, 9, 10, 30)] == ["none", "t", "t", "bootstrap", "bootstrap"]
    assert MIN_BOOTSTRAP_SEEDS == 10


def test_band_contains_the_mean_narrows_with_seeds_and_is_the_point_for_one_seed() -> None:
    values = np.random.default_rng(0).normal(loc=3.0, size=(6, 50))
    mean, low, high = mean_and_ci(values)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(high - low > 0)
    wide = mean_and_ci(values[:3])
    assert np.mean(wide[2] - wide[1]) > np.mean(high - low)
    single = mean_and_ci(values[:1])
    np.testing.assert_array_equal(single[1], values[0])
    # a point some seeds lack uses the seeds present
    values[0, 7] = np.nan
    mean, low, high = mean_and_ci(values)
    present = values[1:, 7]
    assert mean[7] == pytest.approx(present.mean()) and low[7] < mean[7] < high[7]


def test_t_intervals_match_scipy_and_cover_normal_means_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(loc=2.0, scale=3.0, size=(5, 4000))  # 4000 data sets of 5 seeds
    _, low, high = mean_and_ci(samples)
    reference = scipy_stats.t.interval(0.95, 4, loc=samples.mean(axis=0), scale=scipy_stats.sem(samples, axis=0))
    np.testing.assert_allclose(low, reference[0])
    np.testing.assert_allclose(high, reference[1])
    assert 0.935 <= covered(low, high, 2.0) <= 0.965  # 95% ± 4 standard errors of 4000 draws


def test_bootstrap_intervals_from_ten_seeds_cover_close_to_the_nominal_rate() -> None:
    samples = np.random.default_rng(2).normal(loc=-1.0, size=(12, 600))
    _, low, high = mean_and_ci(samples)
    # the percentile bootstrap of a mean over 12 seeds covers about 93%, a little below 95%
    assert 0.88 <= covered(low, high, -1.0) <= 0.98


def test_differences_paired_and_welch_cover_and_agree_with_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, size=(2000, 4)), rng.normal(0.0, 3.0, size=(2000, 6))
    intervals = np.array([welch_interval(x, y) for x, y in zip(a, b, strict=True)])
    assert 0.93 <= covered(intervals[:, 0], intervals[:, 1], 1.0) <= 0.97
    found = difference(a[0], b[0])
    reference = scipy_stats.ttest_ind(a[0], b[0], equal_var=False).confidence_interval(0.95)
    assert (found.low, found.high) == pytest.approx((reference.low, reference.high))
    assert found.method == "t" and found.low <= found.point <= found.high
    # paired: the interval of the per-seed differences, which a shared seed effect does not widen
    shared = rng.normal(0, 10, size=5)
    paired = difference(shared + np.array([1.1, 0.9, 1.0, 1.2, 0.8]), shared, paired=True)
    assert paired.point == pytest.approx(1.0) and 0.7 < paired.low < 1.0 < paired.high < 1.3
    assert difference(shared + 1, shared).high - difference(shared + 1, shared).low > 10
    # from ten seeds a side, a bootstrap interval
    assert difference(rng.normal(size=12), rng.normal(size=10)).method == "bootstrap"


def test_permutation_p_value_is_exact_on_small_cases() -> None:
    # 3 against 3, completely separated: 1 of the C(6,3) = 20 splits is as extreme on each side, so p = 2/20
    assert permutation_p_value(np.array([1.0, 2, 3]), np.array([4.0, 5, 6])) == pytest.approx(0.1)
    # a case counted by hand, every split enumerated
    a, b = np.array([1.0, 2, 4]), np.array([3.0, 5, 6, 7])
    pooled, observed = np.concatenate([a, b]), a.mean() - b.mean()
    splits = [
        pooled[list(picked)].mean() - np.delete(pooled, list(picked)).mean()
        for picked in itertools.combinations(range(7), 3)
    ]
    one_sided = min(np.mean(np.array(splits) <= observed + 1e-12), np.mean(np.array(splits) >= observed - 1e-12))
    assert permutation_p_value(a, b) == pytest.approx(min(1.0, 2 * one_sided))
    # paired: 4 positive differences, 1 of the 2^4 sign flips as extreme on each side: p = 2/16
    assert permutation_p_value(np.array([3.0, 4, 5, 6]), np.array([1.0, 2, 3, 4]), paired=True) == pytest.approx(0.125)


@pytest.mark.parametrize("seeds", [3, 12])
def test_slopes_of_exact_power_laws_are_exact(seeds: int) -> None:
    agents = np.array([1, 2, 4, 8, 16])
    # each seed a multiple of x^-1/2: the seed means are an exact power law whatever the multiples
    scales = np.linspace(0.5, 1.5, seeds)
    frame = pd.DataFrame(
        [{"n_agents": n, "seed": s, "gap": scale * n**-0.5} for n in agents for s, scale in enumerate(scales)]
    )
    found = slope_estimate(frame, "n_agents", "gap")
    assert found.point == pytest.approx(-0.5)
    assert found.low <= found.point <= found.high and found.method == interval_method(seeds)
    noiseless = frame.assign(gap=3.0 / frame["n_agents"])
    exact = slope_estimate(noiseless, "n_agents", "gap")
    assert (exact.point, exact.low, exact.high) == pytest.approx((-1, -1, -1))


def test_slope_t_interval_covers_the_true_slope() -> None:
    rng = np.random.default_rng(4)
    agents = np.array([1, 2, 4, 8, 16])
    hits = 0
    for _ in range(300):
        noise = 1 + 0.3 * rng.standard_normal((len(agents), 4))  # mean 1: the seed means ∝ N^-1 in expectation
        frame = pd.DataFrame([{"n": n, "y": n**-1.0 * noise[i, s]} for i, n in enumerate(agents) for s in range(4)])
        found = slope_estimate(frame, "n", "y")
        hits += found.low <= -1 <= found.high
    assert 0.88 <= hits / 300 <= 0.99


def test_window_means_average_the_rows_inside_the_window() -> None:
    frame = pd.DataFrame(
        {"round": [0, 1, 2, 3, 0, 1, 2, 3], "agent": [0] * 4 + [1] * 4, "r": [1, np.nan, 3, 5, 2, 4, 6, 8]}
    )
    assert window_means(frame, "r", ["agent"]).tolist() == [3, 5]  # NaN rows passed over
    assert window_means(frame, "r", ["agent"], first=2).tolist() == [4, 7]
    assert window_means(frame, "r", ["agent"], first=1, last=2).tolist() == [3, 5]


def test_a_draws_estimate_lies_inside_its_own_interval() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        draws = rng.exponential(size=50) ** 3
        draws[rng.random(50) < 0.3] = np.nan
        point, low, high = draws_estimate(draws)
        assert low <= point <= high or np.isnan([point, low, high]).all()
    assert np.isnan(draws_estimate(np.array([1.0, np.nan, np.nan]))).all()  # fewer than half finite: no estimate


def test_mean_estimate_names_its_method() -> None:
    assert mean_estimate(np.array([1.0, 2.0, 3.0])).method == "t"
    assert mean_estimate(np.arange(10.0)).method == "bootstrap"
    one = mean_estimate(np.array([4.0]))
    assert (one.point, one.low, one.high, one.method) == (4.0, 4.0, 4.0, "none")


def test_t_difference_matches_scipy_at_any_number_of_seeds() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 12), rng.normal(0.0, 2.0, 12)
    paired = t_difference(a, b, paired=True)  # 12 seeds: t, not the rule's bootstrap
    interval = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((interval.low, interval.high))
    assert paired.method == "paired t" and paired.low < paired.point < paired.high
    welch = t_difference(a, b[:7])
    interval = scipy_stats.ttest_ind(a, b[:7], equal_var=False).confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((interval.low, interval.high))
    with pytest.raises(AnalysisError, match="as many seeds"):
        t_difference(a, b[:7], paired=True)
