"""verify.stats against independent twins (scipy) and the formatter's rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from verify.stats import (
    average_ranks,
    balanced_sign_accuracy,
    cluster_bootstrap,
    fmt,
    fmt_list,
    mean_ci,
    mean_sd,
    median_iqr,
    median_range,
    pct,
    pearson,
    spearman,
    wilson_interval,
)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_scipy(kn: tuple[int, int]) -> None:
    k, n = kn
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n, z=float(sps.norm.ppf(0.975)))
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_wilson_refuses_no_trials() -> None:
    with pytest.raises(ValueError, match="n ≥ 1"):
        wilson_interval(0, 0)


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40))
def test_mean_ci_matches_scipy_t_interval(x: list[float]) -> None:
    a = np.asarray(x)
    m, lo, hi = mean_ci([*x, float("nan"), float("inf")])  # non-finite values are dropped
    assert m == pytest.approx(a.mean(), abs=1e-9)
    if a.std(ddof=1) > 0:
        t_lo, t_hi = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
        assert lo == pytest.approx(t_lo, rel=1e-9, abs=1e-9) and hi == pytest.approx(t_hi, rel=1e-9, abs=1e-9)


def test_correlations_match_scipy_and_are_nan_when_undefined() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic)
    assert pearson(x, y) == pytest.approx(sps.pearsonr(x, y).statistic)
    assert math.isnan(spearman(x[:2], y[:2])) and math.isnan(pearson(np.ones(5), y[:5]))


# Few distinct values, so that ties are common; NaN and ±inf among them.
_tie_values = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, float("inf"), -float("inf")])
_pairs = st.integers(0, 30).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(_tie_values, st.floats(-1e6, 1e6)), min_size=n, max_size=n),
    st.lists(st.one_of(_tie_values, st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=n, max_size=n)))


@given(_pairs)
def test_spearman_and_average_ranks_match_scipy_with_ties_and_nans(pair: tuple[list[float], list[float]]) -> None:
    x, y = (np.asarray(v, dtype=float) for v in pair)
    if len(x):
        np.testing.assert_array_equal(average_ranks(x), sps.rankdata(x, method="average"))
    rho = spearman(x, y)
    if len(x) < 3 or np.isnan(y).any() or np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(rho)
    else:
        assert rho == pytest.approx(sps.spearmanr(x, y).statistic, rel=1e-12, abs=1e-12)


def test_balanced_sign_accuracy_is_half_for_a_constant_predictor() -> None:
    meas = np.array([1.0, -1.0, -1.0, -1.0, -1.0])
    assert balanced_sign_accuracy(-np.ones(5), meas) == 0.5  # 80 % agreement, no skill
    assert balanced_sign_accuracy(meas, meas) == 1.0
    assert math.isnan(balanced_sign_accuracy(np.ones(3), np.ones(3)))


def test_cluster_bootstrap_is_reproducible_and_brackets_the_mean() -> None:
    units = list(np.random.default_rng(1).normal(5.0, 1.0, size=30))
    a = cluster_bootstrap(units, lambda u: float(np.mean(u)))
    assert a == cluster_bootstrap(units, lambda u: float(np.mean(u)))
    assert a[0] < np.mean(units) < a[1]


def test_the_one_formatter() -> None:
    assert fmt(None) == "n/a" and fmt(float("nan"), missing="—") == "—" and fmt(float("inf")) == "n/a"
    assert fmt(3000) == "3000"  # integers (steps) print in full, never as 3e+03
    assert fmt(np.float32(0.123456)) == "0.123" and fmt(0.123456, ".4g") == "0.1235"
    assert fmt_list([1.0, 2.5]) == "1, 2.5" and fmt_list([], empty="—") == "—"
    assert pct(0.615) == "61.5%"
    assert mean_sd([1.0, 2.0, None]) == "1.5 ± 0.71 (n=2)" and mean_sd([]) == "n/a"
    assert median_iqr([1.0, 2.0, 3.0]) == "2 [1.5, 2.5] (n=3)"
    assert median_iqr([1.0, 2.0, 3.0], ".4g", "IQR ") == "2 [IQR 1.5, 2.5] (n=3)"
    assert median_range([3.0, 1.0, 2.0]) == "median 2, range 1–3 (n = 3)"
