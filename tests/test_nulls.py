"""numerics.nulls against brute-force twins (fixed seeds; each check can fail: see the power tests)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from numerics.nulls import (
    brute_force_window_grams,
    gaussian_window_grams,
    noise_grams,
    shuffled_increment_walks,
    shuffled_orders,
    wishart_bartlett,
)

W, P, N = 4, 12, 4000
NORMS = np.array([3.0, 2.0, 1.5, 0.5])


def _sigma_ratio(G: np.ndarray) -> np.ndarray:
    lam = np.sort(np.linalg.eigvalsh(G), axis=-1)[:, ::-1]
    return np.sqrt(lam[:, 0] / lam[:, 1])


def _wrong_bartlett(W: int, P: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """A plausible bug: χ²(P) on every diagonal instead of χ²(P − i + 1)."""
    L = np.tril(rng.standard_normal((size, W, W)), k=-1)
    idx = np.arange(W)
    L[:, idx, idx] = np.sqrt(rng.chisquare(P, size=(size, W)))
    return L @ np.swapaxes(L, -1, -2)


def test_wishart_moments_match_gaussian_matrices():
    A = wishart_bartlett(W, P, np.random.default_rng(1), N)
    Z = np.random.default_rng(2).standard_normal((N, W, P))
    B = Z @ np.swapaxes(Z, -1, -2)
    # E[ZZᵀ] = P·I; Var of an off-diagonal entry P, of a diagonal one 2P
    for M in (A, B):
        assert np.allclose(M.mean(axis=0), P * np.eye(W), atol=5 * np.sqrt(2 * P / N))
        assert abs(M[:, 0, 1].var() / P - 1) < 0.1
        assert abs(M[:, 2, 2].var() / (2 * P) - 1) < 0.1
    assert np.allclose(A, np.swapaxes(A, -1, -2))


def test_window_grams_match_brute_force():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(4)
    A = gaussian_window_grams(NORMS, P, rng_a, N)
    B = brute_force_window_grams(NORMS, P, rng_b, N)
    assert np.allclose(np.diagonal(A, axis1=1, axis2=2), NORMS**2)  # row norms exactly
    assert np.allclose(np.diagonal(B, axis1=1, axis2=2), NORMS**2)
    for i, j in ((0, 1), (1, 3), (2, 3)):
        va, vb = A[:, i, j].var(), B[:, i, j].var()
        expect = NORMS[i] ** 2 * NORMS[j] ** 2 / P  # Var of r_a r_b cos, cos² ~ Beta(1/2, (P−1)/2)
        assert abs(va / expect - 1) < 0.1 and abs(vb / expect - 1) < 0.1
        assert abs(A[:, i, j].mean()) < 4 * np.sqrt(expect / N)
    assert stats.ks_2samp(_sigma_ratio(A), _sigma_ratio(B)).pvalue > 0.01
    # k* (plain argmax of σ_j/σ_{j+1}) distribution: same under both samplers
    ka = np.argmax(_ratios(A), axis=1)
    kb = np.argmax(_ratios(B), axis=1)
    table = np.array([np.bincount(ka, minlength=W - 1), np.bincount(kb, minlength=W - 1)])
    assert stats.chi2_contingency(table).pvalue > 0.01


def _ratios(G: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(G), axis=-1)[:, ::-1], 0, None))
    return s[:, :-1] / s[:, 1:]


def test_ks_detects_a_wrong_sampler():
    """Power check: the same KS test rejects a Bartlett construction with the wrong χ² degrees of freedom."""
    good = np.random.default_rng(5).standard_normal((N, W, P))
    good = good @ np.swapaxes(good, -1, -2)
    bad = _wrong_bartlett(W, P, np.random.default_rng(6), N)
    assert stats.ks_2samp(_sigma_ratio(good), _sigma_ratio(bad)).pvalue < 1e-3


def test_noise_grams_scale_and_mp_edge():
    nu, Pbig, Wn = 0.3, 20000, 10
    G = noise_grams(Wn, Pbig, np.random.default_rng(7), 200, nu=nu)
    s = np.sqrt(np.linalg.eigvalsh(G))
    lo, hi = nu * (np.sqrt(Pbig) - np.sqrt(Wn)), nu * (np.sqrt(Pbig) + np.sqrt(Wn))
    assert np.all(s > 0.97 * lo) and np.all(s < 1.03 * hi)  # Marchenko–Pastur band, W ≪ P
    assert abs(np.mean(np.trace(G, axis1=1, axis2=2)) / (nu**2 * Pbig * Wn) - 1) < 0.01


def test_bartlett_refuses_p_below_w():
    with pytest.raises(ValueError, match="P ≥ W"):
        wishart_bartlett(5, 3, np.random.default_rng(0))


def test_seeded():
    a = gaussian_window_grams(NORMS, 1000, np.random.default_rng(9), 3)
    b = gaussian_window_grams(NORMS, 1000, np.random.default_rng(9), 3)
    assert np.array_equal(a, b)


def test_shuffles_keep_marginals():
    x = np.random.default_rng(10).standard_normal(30)
    perm = shuffled_orders(x, np.random.default_rng(11), 5)
    assert perm.shape == (5, 30) and all(np.array_equal(np.sort(p), np.sort(x)) for p in perm)
    walks = shuffled_increment_walks(x, np.random.default_rng(12), 5)
    assert np.allclose(walks[:, 0], x[0]) and np.allclose(walks[:, -1], x[-1])
    assert all(np.allclose(np.sort(np.diff(w)), np.sort(np.diff(x))) for w in walks)


def test_increment_walk_null_removes_a_restoring_drift():
    """An AR(1) gap with strong restoring drift has corr(g, Δg) far below its increment-shuffled walks; a random
    walk does not (the null can fail a series that has no drift)."""
    rng = np.random.default_rng(13)

    def rho(x: np.ndarray) -> float:
        return float(stats.spearmanr(x[:-1], np.diff(x)).statistic)

    ar = np.zeros(200)
    for t in range(1, 200):
        ar[t] = 0.3 * ar[t - 1] + rng.standard_normal()
    rw = np.cumsum(rng.standard_normal(200))
    null_ar = [rho(w) for w in shuffled_increment_walks(ar, np.random.default_rng(14), 200)]
    null_rw = [rho(w) for w in shuffled_increment_walks(rw, np.random.default_rng(15), 200)]
    assert rho(ar) < np.percentile(null_ar, 1)
    assert np.percentile(null_rw, 2.5) < rho(rw) < np.percentile(null_rw, 97.5)
