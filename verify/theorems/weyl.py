"""Eigenvalue perturbation (theory reference §6.4): Weyl, Hoffman–Wielandt, and the author's Δλ proxy on consecutive
windows."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from theory.davis_kahan import hoffman_wielandt_shift, weyl_shift
from verify.strategies import TRAJECTORY_KINDS, Perturbation, Stream, symmetric_perturbations, trajectories
from verify.theorems.common import EIG_TOL, NUMERICS, spectra, symmetric_gram
from verify.theorems.registry import require, theorem

# Checks import numerics inside the function: it imports torch (heavy, optional; the entry SKIPs without it).

# ===== §6.4 Weyl / Hoffman–Wielandt ===========================================================================


_ANY_PERTURBATION = symmetric_perturbations(n=(1, 8), ratio=(0.0, 2.0), relative_to="scale", min_spacing=0.0)


def _shift_within_norm(case: Perturbation, *, shift_of: Callable[[np.ndarray, np.ndarray], float], norm: str,
                       name: str) -> None:
    """``shift_of(λ(G), λ(G + E)) ≤ ‖E‖`` in the norm ``norm`` (``"op"`` or ``"F"``), to eigen-solver rounding."""
    lam, _, lam_hat, _, E_op, E_F, scale = spectra(case)
    E_norm = E_op if norm == "op" else E_F
    shift = shift_of(lam, lam_hat)
    require(shift <= E_norm + EIG_TOL * scale, f"{name} fails", shift=shift, **{f"E_{norm}": E_norm})


# Weyl and Hoffman–Wielandt: the same statement, max and ℓ² of the shifts against the operator and Frobenius norms.
theorem("weyl", "max_j |λ_j(G+E) − λ_j(G)| ≤ ‖E‖_op for symmetric G, E (eigenvalues sorted)", "[R] §6.4 (Weyl)",
        _ANY_PERTURBATION)(partial(_shift_within_norm, shift_of=weyl_shift, norm="op", name="Weyl"))
theorem("hoffman_wielandt", "√Σ_j(λ_j(G+E) − λ_j(G))² ≤ ‖E‖_F for symmetric G, E (eigenvalues sorted)",
        "[R] §6.4 (Hoffman–Wielandt)", _ANY_PERTURBATION)(
    partial(_shift_within_norm, shift_of=hoffman_wielandt_shift, norm="F", name="Hoffman–Wielandt"))


@theorem(
    "hoffman_wielandt.dlambda_proxy",
    "the author's proxy √Σ(Δλ_j)² between consecutive windows never exceeds ‖G_now − G_prev‖_F",
    "[C] theory_experiment_match.py; [R] §1.4, §6.4",
    trajectories(kind=TRAJECTORY_KINDS),
    requires=NUMERICS,
)
def _dlambda_proxy(stream: Stream) -> None:
    from numerics.spectrum import gram_eigenvalues  # local: the catalogue imports without torch (`requires`)

    # local: the catalogue imports without torch (`requires`)
    from numerics.stability import delta_G_norm, delta_lambda_norm

    for t, B in enumerate(stream.extended()):
        G_ext = symmetric_gram(B)
        proxy = delta_lambda_norm(gram_eigenvalues(G_ext[:-1, :-1]), gram_eigenvalues(G_ext[1:, 1:]))
        dG = delta_G_norm(G_ext)
        require(proxy <= dG + 1e-9 * max(float(np.trace(G_ext)), 1e-300), "Δλ proxy exceeds ‖ΔG‖_F",
                t=t, proxy=proxy, delta_G=dG)
