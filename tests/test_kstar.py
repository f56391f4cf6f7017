"""k* variants (theory/kstar.py): hand-computed cases, the author's quirks, properties, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import theory.kstar as ks
from theory import registry

RATIO_VARIANTS = ["argmax", "weighted", "weighted_eps", "var95", "diff"]


@st.composite
def sigmas(draw: st.DrawFn, min_w: int = 2, max_w: int = 12) -> np.ndarray:
    """Descending σ ≥ 0 with σ₁ > 0; exact zeros and repeated values are allowed (and likely)."""
    w = draw(st.integers(min_w, max_w))
    vals = draw(hnp.arrays(np.float64, w, elements=st.floats(0, 1e3, allow_subnormal=False), fill=st.nothing()))
    s = np.sort(vals)[::-1]
    assume(s[0] > 0)
    return s


@st.composite
def positive_sigmas(draw: st.DrawFn, min_w: int = 2, max_w: int = 12) -> np.ndarray:
    """Descending σ > 0 with a bounded dynamic range (no exact zeros: for tests of well-conditioned ratios)."""
    w = draw(st.integers(min_w, max_w))
    vals = draw(hnp.arrays(np.float64, w, elements=st.floats(1e-3, 1e3), fill=st.nothing()))
    return np.sort(vals)[::-1]


# ----- registry ------------------------------------------------------------------------------------------------


def test_all_variants_registered_with_argmax_default() -> None:
    names = {d.name for d in registry.variants("kstar")}
    assert names == set(RATIO_VARIANTS)
    assert registry.default_name("kstar") == "argmax"
    assert registry.get("kstar").source.startswith("[A]")
    assert "NOT Xu" in registry.get("kstar", "diff").source
    for d in registry.variants("kstar"):
        assert d.doc, f"{d.name} has no docstring"


# ----- argmax ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [
        ([3.0, 1.0, 0.5, 0.1], 3),  # ratios 3, 2, 5
        ([4.0, 2.0, 1.0], 1),  # ratios 2, 2: tie → first
        ([5.0, 1.0, 0.0, 0.0], 2),  # rank drop after σ₂: r₂ = +inf
        ([5.0, 0.0, 0.0], 1),  # rank 1: r₁ = +inf, r₂ = 0/0 := 1
        ([2.0, 2.0], 1),  # w = 2 always gives 1
        ([1.0, 1.0, 1.0, 1.0], 1),  # all ratios 1
    ],
)
def test_argmax_hand_cases(sigma: list[float], expected: int) -> None:
    assert ks.argmax(np.array(sigma)) == expected


def test_sigma_ratios_conventions() -> None:
    r = ks.sigma_ratios(np.array([4.0, 2.0, 0.0, 0.0]))
    assert r[0] == 2.0 and r[1] == np.inf and r[2] == 1.0


@given(sigmas())
def test_argmax_matches_plain_loop(s: np.ndarray) -> None:
    best, best_j = -1.0, 0
    for j in range(s.size - 1):
        if s[j + 1] > 0:
            with np.errstate(over="ignore"):
                r = s[j] / s[j + 1]
        else:
            r = np.inf if s[j] > 0 else 1.0
        if r > best:
            best, best_j = r, j
    assert ks.argmax(s) == best_j + 1


@given(sigmas())
def test_every_variant_lies_in_1_to_w_minus_1(s: np.ndarray) -> None:
    for name in RATIO_VARIANTS:
        k = registry.get("kstar", name)(s)
        assert isinstance(k, int)
        assert 1 <= k <= s.size - 1, name
    assert np.all(ks.sigma_ratios(s) >= 1)


@given(sigmas(min_w=3))
def test_kstar_equivalences(s: np.ndarray) -> None:
    """argmax σ_j/σ_{j+1} = argmax λ_j/λ_{j+1} = argmax (λ_j − λ_{j+1})/λ_j (monotone maps, §6.3)."""
    lam = s**2
    assume(lam[-1] > 1e-6 * lam[0])  # squaring must not underflow a ratio into a tie
    r = np.sort(s[:-1] / s[1:])[::-1]
    assume(r[0] > (1 + 1e-9) * r[1])
    k_lam = int(np.argmax(lam[:-1] / lam[1:])) + 1
    k_rel = int(np.argmax((lam[:-1] - lam[1:]) / lam[:-1])) + 1
    assert ks.argmax(s) == k_lam == k_rel


@given(positive_sigmas(), st.floats(1e-3, 1e3))
def test_argmax_is_scale_free(s: np.ndarray, c: float) -> None:
    r = np.sort(s[:-1] / s[1:])[::-1]
    assume(r.size == 1 or r[0] > (1 + 1e-9) * r[1])
    assert ks.argmax(c * s) == ks.argmax(s)


# ----- weighted (dyck_scan) --------------------------------------------------------------------------------------


def test_weighted_differs_from_argmax_regression() -> None:
    """σ = (10, 2, 0.1): ratios 5, 20 → argmax 2; weights Σσ = 12.1 → scores 4.13, 3.31 → weighted 1."""
    s = np.array([10.0, 2.0, 0.1])
    assert ks.argmax(s) == 2
    assert ks.weighted(s) == 1


def test_weighted_sentinel_and_guards() -> None:
    # σ₃ = 0 < 1e-12: score₂ = (0.5/1.5)·1e6 beats score₁ = (1/1.5)·2.
    assert ks.weighted(np.array([1.0, 0.5, 0.0])) == 2
    # A finite ratio of 1e7 beats the 1e6 sentinel of the rank drop (0.1·1e6 ≪ 1e7); argmax takes the drop.
    s = np.array([1.0, 1e-7, 0.0])
    assert ks.weighted(s) == 1
    assert ks.argmax(s) == 2
    # Σσ < 1e-12 → 1, however the ratios look (argmax sees r₂ = 1000).
    s = np.array([1e-13, 1e-13, 1e-16])
    assert ks.argmax(s) == 2
    assert ks.weighted(s) == 1
    # equal scores (1/3 each) → the first index
    assert ks.weighted(np.array([1.0, 1.0, 1.0])) == 1


# ----- weighted_eps (spectral-probe-circuits) ------------------------------------------------------------------


def test_weighted_eps_skips_first_ratio() -> None:
    """σ = (10, 1, 0.9, 0.1): σ₁/σ₂ = 10 is never scored; scores k=2: (1/12)/0.9 = 0.093, k=3: 0.075·9 = 0.675."""
    s = np.array([10.0, 1.0, 0.9, 0.1])
    assert ks.argmax(s) == 1
    assert ks.weighted_eps(s) == 3


def test_weighted_eps_cutoff_and_fallbacks() -> None:
    # σ₂ = 0.4 < 0.05·10: the loop stops at once and the fallback k* = 2 is returned.
    assert ks.weighted_eps(np.array([10.0, 0.4, 0.1, 0.05])) == 2
    # w = 2: the author's fallback 2 is out of range; clipped to 1.
    assert ks.weighted_eps(np.array([3.0, 1.0])) == 1
    # σ_{k+1} = 0 is skipped, not scored as a sentinel.
    assert ks.weighted_eps(np.array([4.0, 2.0, 1.0, 0.0])) == 2


@given(sigmas(min_w=3))
def test_weighted_eps_never_returns_1(s: np.ndarray) -> None:
    assert 2 <= ks.weighted_eps(s) <= s.size - 1


# ----- var95 and diff ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "count", "clipped"),
    [
        ([90.0, 6.0, 4.0], 2, 2),  # cumulative 0.90, 0.96
        ([99.0, 1.0], 1, 1),  # 0.99 after one
        ([60.0, 30.0, 6.0, 4.0], 3, 3),  # 0.60, 0.90, 0.96
        ([25.0, 25.0, 25.0, 25.0], 4, 3),  # needs all four; k* clipped to w − 1
    ],
)
def test_var95_hand_cases(lam: list[float], count: int, clipped: int) -> None:
    s = np.sqrt(np.array(lam))
    assert ks.variance_count(s, 0.95) == count
    assert ks.var95(s) == clipped


def test_diff_is_unit_dependent_unlike_argmax() -> None:
    s = np.array([10.0, 5.0, 1.0])  # differences 5, 4 → 1; ratios 2, 5 → 2
    assert ks.diff(s) == 1
    assert ks.argmax(s) == 2
    s3 = np.array([3.0, 1.8, 0.0])  # σ differences 1.2, 1.8 → 2; λ differences 5.76, 3.24 → 1
    assert ks.diff(s3) == 2
    assert ks.diff(s3**2) == 1


# ----- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RATIO_VARIANTS)
@pytest.mark.parametrize(
    ("sigma", "match"),
    [
        ([1.0], "at least 2"),
        ([[2.0, 1.0]], "1-D"),
        ([2.0, np.nan], "NaN or Inf"),
        ([2.0, -1.0], "≥ 0"),
        ([1.0, 2.0], "descending"),
    ],
)
def test_bad_sigma_raises(name: str, sigma: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        registry.get("kstar", name)(np.array(sigma))


def test_bad_frac_raises() -> None:
    with pytest.raises(ValueError, match="frac"):
        ks.variance_count(np.array([2.0, 1.0]), 1.5)
