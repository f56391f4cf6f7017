"""The α bookkeeping (theory reference §6.19, §6.20): the relative gap behind α-DK, and the range and noise level of
α-half."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from theory.adiabatic import ALPHA_ARGS, ONE_MINUS_ALPHA, a_delta_g, nearest_neighbour_is_next
from verify.strategies import Stream, gaussian_window, trajectories
from verify.theorems.common import NUMERICS, SEEDS, mixed_windows, symmetric_gram
from verify.theorems.registry import require, theorem

# Checks import numerics inside the function: it imports torch (heavy, optional; the entry SKIPs without it).

# ===== §6.19 relative gap / α bookkeeping =====================================================================


@cache
def _one_minus_alpha() -> Callable[..., Any]:
    from numerics.compile import compile_expr  # torch: optional, kept out of import time

    return compile_expr(ONE_MINUS_ALPHA, ALPHA_ARGS)


@theorem(
    "alpha.bookkeeping",
    "λ_{k*} − λ_{k*+1} = 2d̄g; if λ_{k*+1} is λ_{k*}'s nearest neighbour, 1 − α-DK_{k*} = ‖ΔG‖²/(4d̄²g²) = "
    "(ηA)²g²/(4d̄²), A = ‖ΔG‖_F/(ηg²)",
    "[R] §3.6, §6.19 (numerics.stability.dk_deltaG, theory.adiabatic)",
    st.tuples(trajectories(kind=("gaussian", "drift", "gd")), st.floats(-4, 0)),
    requires=NUMERICS,
)
def _alpha_bookkeeping(case: tuple[Stream, float]) -> None:
    from numerics.spectrum import spectrum_from_gram  # local: the catalogue imports without torch (`requires`)
    from numerics.stability import delta_G_norm, dk_deltaG  # local: the catalogue imports without torch (`requires`)

    stream, log_eta = case
    B = list(stream.extended())[-1]
    G_ext = symmetric_gram(B)
    assume(np.trace(G_ext[1:, 1:]) > 0)
    now = spectrum_from_gram(G_ext[1:, 1:])
    k, lam = now.kstar, now.lam
    g, d_bar = now.g, now.d_bar
    gap_pair = float(lam[k - 1] - lam[k])
    assume(gap_pair > 1e-6 * lam[0])  # a pair gap at rounding level makes every relative comparison noise
    require(math.isclose(gap_pair, 2 * d_bar * g, rel_tol=1e-8), "λ_{k*} − λ_{k*+1} ≠ 2d̄g", kstar=k,
            gap=gap_pair, two_dbar_g=2 * d_bar * g)
    dG = delta_G_norm(G_ext)
    if not nearest_neighbour_is_next(lam, k) or dG > gap_pair:
        return  # the identity's hypotheses: nearest neighbour below, and α-DK's max(0, ·) inactive
    alpha = float(dk_deltaG(G_ext)[k - 1])
    eta = 10.0**log_eta
    A = a_delta_g(dG, eta, g)
    lhs, mid = 1 - alpha, dG**2 / (4 * d_bar**2 * g**2)
    rhs = float(_one_minus_alpha()(A, eta, g, d_bar))
    require(math.isclose(lhs, mid, rel_tol=1e-8, abs_tol=1e-12) and math.isclose(mid, rhs, rel_tol=1e-8,
            abs_tol=1e-12), "1 − α-DK ≠ ‖ΔG‖²/(4d̄²g²) ≠ (ηA)²g²/(4d̄²)", kstar=k, one_minus_alpha=lhs,
            dG_over_2dg_sq=mid, eta_A_form=rhs)


# ===== §6.20 α-half ===========================================================================================


@st.composite
def _half_cases(draw: st.DrawFn) -> tuple[np.ndarray, bool]:
    rank_one = draw(st.booleans())
    if not rank_one:
        return draw(mixed_windows(w=(4, 12))), False
    w = draw(st.integers(4, 12))
    P = draw(st.integers(1, 40))
    coef = draw(hnp.arrays(np.float64, w, elements=st.one_of(st.floats(0.1, 10), st.floats(-10, -0.1))))
    v = np.random.default_rng(draw(SEEDS)).standard_normal(P)
    return np.outer(coef, v), True


@theorem(
    "alpha.half_range",
    "α-half_j = |⟨v_j⁽¹⁾, v_j⁽²⁾⟩| ∈ [0, 1], and α-half_1 = 1 when every update is a multiple of one vector",
    "[P] dyck_scan loss_decomposition.py; [R] §1.4, §6.20 (numerics.stability.alpha_half_from_gram)",
    _half_cases(),
    requires=NUMERICS,
)
def _alpha_half_range(case: tuple[np.ndarray, bool]) -> None:
    from numerics.stability import alpha_half_from_gram  # local: the catalogue imports without torch (`requires`)

    X, rank_one = case
    w = X.shape[0]
    h = w // 2
    assume(np.any(X[:h] != 0) and np.any(X[w - h :] != 0))  # both halves non-zero (else α-half is undefined)
    alpha = alpha_half_from_gram(symmetric_gram(X))
    ok = alpha[~np.isnan(alpha)]
    require(bool(np.all((ok >= 0) & (ok <= 1))), "α-half outside [0, 1]", alpha=alpha.tolist())
    if rank_one:
        require(abs(float(alpha[0]) - 1) <= 1e-9, "α-half_1 ≠ 1 on a rank-1 window", alpha_1=float(alpha[0]))


_HALF_DELTA = 1e-6


@theorem(
    "alpha.half_isotropic",
    "i.i.d. Gaussian window in ℝ^P: every α-half_j ≤ √(2 ln(2⌊W/2⌋/δ)/P) = O(1/√P), per-instance failure "
    "probability δ = 1e-6",
    "[R] §6.20 (spherical-cap bound: v_j⁽²⁾ is uniform on the sphere given the first half)",
    st.tuples(st.integers(4, 12), st.integers(50, 2000), SEEDS),
    statistical=True,
    requires=NUMERICS,
)
def _alpha_half_isotropic(case: tuple[int, int, int]) -> None:
    """Given the first half, v_j⁽²⁾ is uniform on S^{P−1} (the second half is rotation-invariant and independent),
    so P(|⟨v_j⁽¹⁾, v_j⁽²⁾⟩| ≥ t) ≤ 2e^{−Pt²/2}; a union bound over the ⌊W/2⌋ modes gives the threshold.
    """
    from numerics.stability import alpha_half_from_gram  # local: the catalogue imports without torch (`requires`)

    w, P, seed = case
    X = gaussian_window(np.random.default_rng(seed), w, P)
    alpha = alpha_half_from_gram(X @ X.T)
    h = w // 2
    t = math.sqrt(2 * math.log(2 * h / _HALF_DELTA) / P)
    require(bool(np.all(alpha <= t)), "α-half above the isotropic bound", W=w, P=P, threshold=t,
            alpha=alpha.tolist())
