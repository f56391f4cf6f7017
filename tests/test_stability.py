"""Stability coefficients (numerics/stability.py) against explicit P-space computations.

The Davis–Kahan bound tests live in tests/test_theory_spectral.py, with the bounds (theory/davis_kahan.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given

from numerics.errors import NonFiniteUpdateError, ShapeMismatchError, WindowTooSmallError, ZeroWindowError
from numerics.spectrum import spectrum_from_updates
from numerics.stability import (
    alpha,
    alpha_half_from_gram,
    delta_C_norm,
    delta_G_norm,
    delta_lambda_norm,
)
from theory import registry
from theory.registry import DefinitionError
from verify.strategies import windows

VARIANTS = ["dk_deltaC", "dk_deltaG", "dk_dlambda", "half", "rot"]


def _stream(seed: int, w: int, P: int, wobble: float = 0.1, noise: float = 0.01) -> np.ndarray:
    """w + 1 consecutive updates drifting slowly along two fixed directions: a window whose edge is stable."""
    rng = np.random.default_rng(seed)
    v = np.linalg.qr(rng.standard_normal((P, 2)))[0].T
    coef = np.array([3.0, 1.0]) * (1 + wobble * rng.standard_normal((w + 1, 2)))
    return coef @ v + noise * rng.standard_normal((w + 1, P)) / np.sqrt(P)


def _svd_vh(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, s, vh = np.linalg.svd(X, full_matrices=False)
    return s, vh


def _dk_twin(norm: float, s_now: np.ndarray, null_space: bool = False) -> np.ndarray:
    """max(0, 1 − norm²/gap_j²); with ``null_space`` the spectrum also holds the 0 of C = XᵀX (P > w)."""
    lam = list(s_now**2)
    others = [[lam[k] for k in range(len(lam)) if k != i] + ([0.0] if null_space else []) for i in range(len(lam))]
    gap = np.array([min(abs(lam[i] - o) for o in others[i]) for i in range(len(lam))])
    return np.maximum(0.0, 1.0 - norm**2 / gap**2)


# ----- perturbation norms ---------------------------------------------------------------------------------------


@given(windows(max_w=8, max_P=20, extra_rows=1))
def test_delta_C_norm_matches_explicit_P_by_P_difference(X: np.ndarray) -> None:
    dC = X[1:].T @ X[1:] - X[:-1].T @ X[:-1]  # C(t) − C(t−1), P×P
    expected = np.linalg.norm(dC)
    assert delta_C_norm(X @ X.T) == pytest.approx(expected, rel=1e-7, abs=1e-9 * np.abs(X).max() ** 2)
    # and the closed form of §6.6 on the two rows that differ
    a, b = X[-1] @ X[-1], X[0] @ X[0]
    assert expected**2 == pytest.approx(a**2 + b**2 - 2 * (X[-1] @ X[0]) ** 2, rel=1e-6, abs=1e-6 * max(a, b) ** 2)


@given(windows(max_w=8, max_P=20, extra_rows=1))
def test_delta_G_norm_and_hoffman_wielandt(X: np.ndarray) -> None:
    G_prev, G_now = X[:-1] @ X[:-1].T, X[1:] @ X[1:].T
    dG = delta_G_norm(X @ X.T)
    assert dG == pytest.approx(np.linalg.norm(G_now - G_prev), rel=1e-9, abs=1e-12)
    assume(np.any(X[:-1] != 0) and np.any(X[1:] != 0))
    prev, now = spectrum_from_updates(X[:-1]), spectrum_from_updates(X[1:])
    # Σ(Δλ)² ≤ ‖ΔG‖_F²: the author's proxy never exceeds the value it stands for
    assert delta_lambda_norm(prev, now) <= dG + 1e-9 * max(prev.lam[0], now.lam[0])
    s_prev, s_now = np.linalg.svd(X[:-1], compute_uv=False), np.linalg.svd(X[1:], compute_uv=False)
    assert delta_lambda_norm(prev, now) == pytest.approx(
        np.linalg.norm(s_now**2 - s_prev**2), rel=1e-6, abs=1e-9 * max(prev.lam[0], now.lam[0])
    )


# ----- α-DK variants --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "w", "P"), [(0, 4, 50), (1, 6, 200), (2, 10, 1500)])
def test_dk_variants_against_explicit_twin(seed: int, w: int, P: int) -> None:
    X = _stream(seed, w, P)
    G_ext = X @ X.T
    s_prev, _ = _svd_vh(X[:-1])
    s_now, _ = _svd_vh(X[1:])
    dC = np.linalg.norm(X[1:].T @ X[1:] - X[:-1].T @ X[:-1])
    dG = np.linalg.norm(X[1:] @ X[1:].T - X[:-1] @ X[:-1].T)
    dlam = np.linalg.norm(s_now**2 - s_prev**2)
    a_C = alpha(G_ext, "dk_deltaC")
    np.testing.assert_allclose(a_C, _dk_twin(dC, s_now, null_space=True), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(alpha(G_ext, "dk_deltaG"), _dk_twin(dG, s_now), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(alpha(G_ext, "dk_dlambda"), _dk_twin(dlam, s_now), rtol=1e-6, atol=1e-9)
    assert 0 < a_C[0] < 1  # a case where α is informative, not clipped
    a_half_C = alpha(G_ext, "dk_deltaC", C=0.5)
    np.testing.assert_allclose(a_half_C, _dk_twin(np.sqrt(0.5) * dC, s_now, null_space=True), rtol=1e-6)


@given(windows(max_w=8, max_P=20, extra_rows=1))
def test_dk_dlambda_is_never_below_dk_deltaG(X: np.ndarray) -> None:
    assume(np.any(X[:-1] != 0) and np.any(X[1:] != 0))
    G_ext = X @ X.T
    a_lam, a_G = alpha(G_ext, "dk_dlambda"), alpha(G_ext, "dk_deltaG")
    assert np.all((a_lam >= a_G - 1e-6) & (a_lam <= 1) & (a_G >= 0))


def test_default_alpha_is_dk_deltaC() -> None:
    assert registry.default_name("alpha") == "dk_deltaC"
    assert {d.name for d in registry.variants("alpha")} == set(VARIANTS)
    X = _stream(3, 5, 80)
    np.testing.assert_array_equal(alpha(X @ X.T), alpha(X @ X.T, "dk_deltaC"))
    for name in VARIANTS:
        assert alpha(X @ X.T, name).shape == ((5 // 2,) if name == "half" else (5,))


def test_dk_deltaC_counts_the_null_space_of_C() -> None:
    """λ ≈ (100, 30, 4): in G, v₃'s nearest eigenvalue is 30 (gap 26); in C = XᵀX (P = 40 > w) it is 0 (gap 4)."""
    rng = np.random.default_rng(14)
    e = np.linalg.qr(rng.standard_normal((40, 3)))[0].T
    cur = np.array([10.0, 5.5, 2.0])[:, None] * e  # the current window's rows, orthogonal
    leaving = cur[2] + 0.1 * rng.standard_normal(40) / np.sqrt(40)
    X = np.vstack([leaving, cur])
    G_ext = X @ X.T
    dC = np.linalg.norm(np.outer(cur[2], cur[2]) - np.outer(leaving, leaving))
    lam = np.array([100.0, 30.25, 4.0])
    expected_3 = 1 - dC**2 / min(lam[1] - lam[2], lam[2]) ** 2
    a = alpha(G_ext, "dk_deltaC")
    assert a[2] == pytest.approx(expected_3, rel=1e-9)
    assert a[2] < 1 - dC**2 / (lam[1] - lam[2]) ** 2 - 1e-4  # visibly below the G-gap value


def test_identical_consecutive_windows_are_perfectly_stable() -> None:
    """δ_t = δ_{t−w}: C does not change, so ‖ΔC‖ = 0 and α-DK = 1 although the entrywise ΔG is not zero."""
    rng = np.random.default_rng(11)
    rows = rng.standard_normal((3, 40))
    X = np.vstack([rows, rows[:1]])  # w = 3; the row that enters equals the row that leaves
    G_ext = X @ X.T
    assert delta_C_norm(G_ext) == pytest.approx(0.0, abs=1e-9)
    assert delta_G_norm(G_ext) > 1.0
    np.testing.assert_allclose(alpha(G_ext, "dk_deltaC"), 1.0)


# ----- α-rot and α-half -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "w", "P"), [(4, 3, 30), (5, 6, 400), (6, 9, 2000)])
def test_alpha_rot_against_explicit_right_vectors(seed: int, w: int, P: int) -> None:
    X = _stream(seed, w, P, wobble=0.3, noise=0.5)
    _, vh_prev = _svd_vh(X[:-1])
    _, vh_now = _svd_vh(X[1:])
    expected = np.abs(np.sum(vh_prev * vh_now, axis=1))
    np.testing.assert_allclose(alpha(X @ X.T, "rot"), expected, atol=1e-7)


@pytest.mark.parametrize(("seed", "w", "P"), [(7, 4, 30), (8, 5, 300), (9, 11, 2000)])
def test_alpha_half_against_explicit_half_windows(seed: int, w: int, P: int) -> None:
    X = _stream(seed, w, P, wobble=0.3, noise=0.5)
    now = X[1:]
    h = w // 2
    _, vh1 = _svd_vh(now[:h])
    _, vh2 = _svd_vh(now[w - h :])
    expected = np.abs(np.sum(vh1[:h] * vh2[:h], axis=1))
    np.testing.assert_allclose(alpha(X @ X.T, "half"), expected, atol=1e-7)
    # the author's split gives the middle row of an odd window to the second half
    _, vh2b = _svd_vh(now[h:])
    expected_b = np.abs(np.sum(vh1[:h] * vh2b[:h], axis=1))
    np.testing.assert_allclose(alpha(X @ X.T, "half", odd_row="second"), expected_b, atol=1e-7)
    np.testing.assert_allclose(alpha_half_from_gram(now @ now.T), expected, atol=1e-7)


def test_alpha_half_is_one_for_a_rank_one_window() -> None:
    rng = np.random.default_rng(12)
    v = rng.standard_normal(300)
    X = np.outer(rng.uniform(0.5, 2.0, 7) * rng.choice([-1, 1], 7), v)  # 6 + 1 multiples of one vector
    a = alpha(X @ X.T, "half")
    assert a.shape == (3,)
    assert a[0] == pytest.approx(1.0, abs=1e-9)
    rest = a[1:]
    assert np.all(np.isnan(rest) | ((rest >= 0) & (rest <= 1)))


@given(windows(min_w=4, max_w=9, max_P=20, extra_rows=1))
def test_alpha_half_and_rot_lie_in_unit_interval(X: np.ndarray) -> None:
    w = X.shape[0] - 1
    h = w // 2
    now = X[1:]
    assume(np.any(now[:h] != 0) and np.any(now[w - h :] != 0) and np.any(X[:-1] != 0))
    for name in ("half", "rot"):
        a = alpha(X @ X.T, name)
        finite = a[~np.isnan(a)]
        assert finite.size >= 1
        assert np.all((finite >= 0) & (finite <= 1))


# ----- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_extended_gram_too_small_raises(name: str) -> None:
    with pytest.raises(WindowTooSmallError, match="at least 3"):
        alpha(np.eye(2), name)


def test_alpha_half_needs_w_at_least_4() -> None:
    X = _stream(13, 3, 20)
    with pytest.raises(WindowTooSmallError, match="w ≥ 4"):
        alpha(X @ X.T, "half")
    with pytest.raises(WindowTooSmallError, match="at least 4"):
        alpha_half_from_gram(np.eye(3))
    with pytest.raises(ValueError, match="odd_row"):
        alpha(_stream(13, 5, 20) @ _stream(13, 5, 20).T, "half", odd_row="middle")


@pytest.mark.parametrize("name", VARIANTS)
def test_bad_extended_gram_raises(name: str) -> None:
    G = np.eye(5)
    G[0, 3] = G[3, 0] = np.inf
    with pytest.raises(NonFiniteUpdateError, match="G_ext contains NaN or Inf"):
        alpha(G, name)
    G = np.eye(5)
    G[0, 3] = 0.5
    with pytest.raises(ShapeMismatchError, match="G_ext is not symmetric"):
        alpha(G, name)


@pytest.mark.parametrize("name", VARIANTS)
def test_zero_current_window_raises(name: str) -> None:
    G = np.zeros((5, 5))
    G[0, 0] = 1.0  # only the row that left the window is non-zero
    with pytest.raises(ZeroWindowError, match="all updates in the window are zero"):
        alpha(G, name)


def test_delta_lambda_shape_mismatch_and_unknown_variant() -> None:
    with pytest.raises(ShapeMismatchError, match="same length"):
        delta_lambda_norm(np.array([2.0, 1.0]), np.array([3.0, 2.0, 1.0]))
    with pytest.raises(DefinitionError, match="unknown alpha definition"):
        alpha(np.eye(3), "nope")
