"""Dyson's second-order eigenvalue expansion (theory reference §6.13), with a rigorous remainder bound."""

from __future__ import annotations

from theory.dyson import second_order_eigenvalues
from verify.strategies import Perturbation, symmetric_perturbations
from verify.theorems.common import EIG_TOL, gaps, spectra
from verify.theorems.registry import require, theorem

# ===== §6.13 Dyson second order ===============================================================================


@theorem(
    "dyson.second_order",
    "|λ_j(G+E) − (λ_j + E_jj + Σ_{k≠j}E_jk²/(λ_j−λ_k))| ≤ 4‖E‖³/(gap_j(gap_j − 2‖E‖)) for ‖E‖_op < gap_j/2",
    "[R] §3.5, §6.13 (theory.dyson); remainder bound: Bauer–Fike + Cauchy estimate (see check docstring)",
    symmetric_perturbations(n=(2, 8), ratio=(0.0, 0.45)),
)
def _dyson(case: Perturbation) -> None:
    """The bound, [R] ours: for complex ε with |ε|‖E‖ < gap_j/2 the eigenvalues of G + εE lie in discs of radius
    |ε|‖E‖ around those of G (Bauer–Fike, G normal); λ_j's disc is isolated, so λ_j(ε) is analytic there with
    |λ_j(ε) − λ_j| ≤ |ε|‖E‖. Cauchy's estimate on |ε| = R → r = gap_j/(2‖E‖) bounds the Taylor remainder after
    ε² at ε = 1 by ‖E‖/(r(r − 1)) = 4‖E‖³/(gap_j(gap_j − 2‖E‖)). λ units throughout.
    """
    G, E = case
    lam, _, lam_hat, _, E_op, _, scale = spectra(case)
    approx = second_order_eigenvalues(G, E, 1.0)
    for j, gap in enumerate(gaps(lam)):
        err = abs(float(lam_hat[j] - approx[j]))
        bound = 4 * E_op**3 / (gap * (gap - 2 * E_op))
        require(err <= bound + EIG_TOL * scale, "second-order remainder exceeds its bound", j=j, error=err,
                bound=bound, E_op_over_gap=E_op / gap, second_order_term=float(approx[j] - lam[j]))
