"""Eigenvector perturbation (theory reference §6.7): the Davis–Kahan bounds that hold, and the factor-free forms that
do not."""

from __future__ import annotations

import math

import numpy as np

from theory.davis_kahan import (
    ALPHA_DK_VALID_RATIO,
    alpha_dk_bound,
    factor_free_bound,
    residual_bound,
    sin_theta,
    sin_theta_bound_yws,
    sin_theta_subspace_F,
    subspace_bound,
)
from verify.strategies import Perturbation, symmetric_perturbations
from verify.theorems.common import ANGLE_TOL, EIG_TOL, gaps, spectra
from verify.theorems.registry import COUNTEREXAMPLES, require, theorem

# ===== §6.7 Davis–Kahan ========================================================================================

_DK_PERTURBATION = symmetric_perturbations(n=(2, 8), ratio=(0.0, 2.0))


@theorem(
    "davis_kahan.yws",
    "sin θ_j ≤ 2‖E‖_op/gap_j (gap_j of the unperturbed G)",
    "[R] §3.6 (i), §6.7; Yu–Wang–Samworth 2015",
    _DK_PERTURBATION,
)
def _dk_yws(case: Perturbation) -> None:
    lam, V, _, V_hat, E_op, _, _ = spectra(case)
    for j, gap in enumerate(gaps(lam)):
        s, bound = sin_theta(V[:, j], V_hat[:, j]), sin_theta_bound_yws(E_op, gap)
        require(s <= bound + ANGLE_TOL, "YWS bound fails", j=j, sin_theta=s, bound=bound, E_op=E_op, gap=gap)


@theorem(
    "davis_kahan.residual",
    "sin θ_j ≤ ‖Ev_j‖/min_{k≠j}|λ_j − λ̂_k|",
    "[R] §3.6 (ii), §6.7 (residual form)",
    _DK_PERTURBATION,
)
def _dk_residual(case: Perturbation) -> None:
    lam, V, lam_hat, V_hat, _, _, scale = spectra(case)
    E = case.E
    for j in range(lam.size):
        if np.min(np.abs(lam[j] - np.delete(lam_hat, j))) <= EIG_TOL * scale:
            # λ_j is (to rounding) another eigenvalue λ̂_k of G + E: then v_j can be that eigenvector, the residual
            # is 0 too, and the bound is 0/0, i.e. rounding noise over rounding noise (found by the thorough run)
            continue
        s = sin_theta(V[:, j], V_hat[:, j])
        bound = residual_bound(float(np.linalg.norm(E @ V[:, j])), float(lam[j]), np.delete(lam_hat, j))
        require(s <= bound + ANGLE_TOL, "residual bound fails", j=j, sin_theta=s, bound=bound)


@theorem(
    "davis_kahan.subspace",
    "‖sin Θ(V_{1:k}, V̂_{1:k})‖_F ≤ 2·min(√k‖E‖_op, ‖E‖_F)/(λ_k − λ_{k+1}) for every k",
    "[R] §3.6 (iii), §6.7; Yu–Wang–Samworth 2015",
    _DK_PERTURBATION,
)
def _dk_subspace(case: Perturbation) -> None:
    lam, V, _, V_hat, E_op, E_F, _ = spectra(case)
    for k in range(1, lam.size):
        s = sin_theta_subspace_F(V[:, :k], V_hat[:, :k])
        bound = subspace_bound(E_op, E_F, k, float(lam[k - 1]), float(lam[k]))
        require(s <= bound + ANGLE_TOL, "subspace bound fails", k=k, sin_theta_F=s, bound=bound)


@theorem(
    "davis_kahan.conditional",
    "if ‖E‖_op ≤ 0.146·gap_j then cos²θ_j ≥ 1 − ‖E‖_F²/gap_j² (α-DK with C = 1 is then a lower bound on cos²θ)",
    "[R] §6.7 (spec: 0 violations at ‖E‖_op < 0.1·gap); proof in theory.davis_kahan.alpha_dk_bound",
    symmetric_perturbations(n=(2, 8), ratio=(0.0, ALPHA_DK_VALID_RATIO)),
)
def _dk_conditional(case: Perturbation) -> None:
    lam, V, _, V_hat, E_op, E_F, scale = spectra(case)
    for j, gap in enumerate(gaps(lam)):
        if E_op > ALPHA_DK_VALID_RATIO * gap:
            continue
        cos2 = 1 - sin_theta(V[:, j], V_hat[:, j]) ** 2
        bound = alpha_dk_bound(E_F, gap)
        require(cos2 >= bound - 1e-9 * scale / gap, "cos²θ_j < 1 − ‖E‖_F²/gap_j²", j=j, cos2=cos2, bound=bound)


def _factor_free(case: Perturbation, norm: str, relabel: bool) -> None:
    """sin θ_j ≤ ‖E‖/gap_j for every j whose v̂_j is determined (λ̂_j not repeated); with ``relabel=False`` only
    where v̂_j is also v_j's best match among the v̂_k (a genuine rotation, no swap of labels)."""
    lam, V, lam_hat, V_hat, E_op, E_F, _ = spectra(case)
    E_norm = E_op if norm == "op" else E_F
    for j, (gap, gap_hat) in enumerate(zip(gaps(lam), gaps(lam_hat), strict=True)):
        if gap_hat < 1e-3 * gap:
            continue  # λ̂_j (nearly) repeated: v̂_j is not determined, and sin θ_j = 1 would be an artefact
        overlaps = np.abs(V[:, j] @ V_hat)
        if not relabel and overlaps[j] < overlaps.max():
            continue
        s, bound = sin_theta(V[:, j], V_hat[:, j]), factor_free_bound(E_norm, gap)
        # a violation must clear rounding by far: genuine ones exceed the bound by a factor ≥ 1 + O(1e-2)
        require(s <= bound * (1 + 1e-6) + ANGLE_TOL, f"sin θ_j > ‖E‖_{norm}/gap_j", j=j, sin_theta=s, bound=bound,
                ratio=s / bound if bound > 0 else math.inf, E_norm_over_gap=E_norm / gap,
                E_op_over_gap=E_op / gap, yws_bound=sin_theta_bound_yws(E_op, gap))


# 2×2 suffices for a counterexample and is where they are densest (theory reference §3.6: all at ‖E‖_op/gap ∈ (0.3, 1)).
_FACTOR_FREE = symmetric_perturbations(n=2, ratio=(0.3, 1.0))


@theorem(
    "davis_kahan.factor_free",
    "sin θ_j ≤ ‖E‖_op/gap_j, the thesis's Thm 9.1 without the factor 2: NOT a theorem, even for a genuine "
    "rotation (v̂_j = v_j's best match; searched on 2×2, ‖E‖_op/gap ∈ (0.3, 1), where the failures lie)",
    "[C] Thm 9.1 as quoted; [R] §3.6, §6.7 (negative test)",
    _FACTOR_FREE,
    expected=COUNTEREXAMPLES,
)
def _dk_factor_free(case: Perturbation) -> None:
    _factor_free(case, "op", relabel=False)


@theorem(
    "davis_kahan.factor_free_frobenius",
    "sin θ_j ≤ ‖E‖_F/gap_j, i.e. cos²θ_j ≥ 1 − ‖E‖_F²/gap_j² at any size, modes matched by index as the author's "
    "code does: NOT a theorem (searched on 2×2, ‖E‖_op/gap ∈ (0.3, 1))",
    "[C] Thm 9.1, Def 6.1 (α-DK); [R] §3.6, §6.7",
    _FACTOR_FREE,
    expected=COUNTEREXAMPLES,
)
def _dk_factor_free_F(case: Perturbation) -> None:
    _factor_free(case, "F", relabel=True)
