"""Second-order (Dyson) eigenvalue perturbation and the level repulsion it puts on the spectral-edge gap.

Rayleigh–Schrödinger to second order [R, standard; theory reference §3.5, §6.13]: for a symmetric G with a *simple*
eigenvalue λ_j and a symmetric perturbation εE, written in G's eigenbasis (E_jk = u_jᵀEu_k),

    λ_j(G + εE) = λ_j + ε·E_jj + ε²·Σ_{k≠j} E_jk²/(λ_j − λ_k) + O(ε³).

Units: λ are Gram eigenvalues (σ² units), E in σ² units. The ε² terms of the pair (k*, k*+1) push the two
eigenvalues apart: their share of the eigenvalue gap λ_{k*} − λ_{k*+1} is the level repulsion

    +2·(u_{k*}ᵀ dG u_{k*+1})² / (λ_{k*} − λ_{k*+1})                    (``PAIR_REPULSION``, λ units)

and, through σ = √λ to first order, in singular-value units a term ρ/g on ġ with

    ρ = (u_{k*}ᵀ dG u_{k*+1})² / (2·d_{k*}·d_{k*+1})  → E₁₂²/(2d̄²) at collapse    (``RHO_REPULSION``, σ² units)

— the ρ/g of the normal form (``theory.normal_form``) [R]. As a drift this needs E₁₂² per unit time (Itô: dG with
variance ∝ dt); per optimizer step take the per-step ΔG.

Only ``numpy`` and ``sympy`` are imported.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.symbols import d1, d2, d_bar, epsilon, g, lam1, lam2

__all__ = [
    "ARGS",
    "E12",
    "PAIR_REPULSION",
    "PAIR_REPULSION_ARGS",
    "RHO_ARGS",
    "RHO_REPULSION",
    "second_order_eigenvalues",
]

#: u_{k*}ᵀ dG u_{k*+1}, the off-diagonal element of the perturbation in G's eigenbasis (σ² units).
E12 = sp.Symbol("E_12", real=True)

#: Level repulsion on the eigenvalue gap λ_{k*} − λ_{k*+1}: 2E₁₂²/(λ_{k*} − λ_{k*+1})  [R].
PAIR_REPULSION: sp.Expr = 2 * E12**2 / (lam1 - lam2)
PAIR_REPULSION_ARGS: tuple[sp.Symbol, ...] = (E12, lam1, lam2)

#: ρ in ġ ⊃ ρ/g (σ units): E₁₂²/(2 d_{k*} d_{k*+1})  [R].
RHO_REPULSION: sp.Expr = E12**2 / (2 * d1 * d2)
RHO_ARGS: tuple[sp.Symbol, ...] = (E12, d1, d2)
ARGS = RHO_ARGS

_l3 = sp.Symbol("lambda_3", positive=True)
_E = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"E_{min(i, j) + 1}{max(i, j) + 1}", real=True))  # symmetric


@derivation("dyson.second_order")
@cache
def _second_order() -> Derivation:
    """Implicit expansion on a generic diagonal 3×3 G: λ(ε) = λ₁ + aε + bε² must be a root of det(G + εE − λ)."""
    a, b = sp.symbols("a b")
    G3 = sp.diag(lam1, lam2, _l3)
    lam_eps = lam1 + a * epsilon + b * epsilon**2
    _mu = sp.Symbol("mu")
    charpoly = sp.expand((G3 + epsilon * _E - lam_eps * sp.eye(3)).det())
    a_sol = sp.solve(charpoly.coeff(epsilon, 1), a)[0]
    b_sol = sp.solve(charpoly.coeff(epsilon, 2).subs(a, a_sol), b)[0]
    e11, e12, e13 = _E[0, 0], _E[0, 1], _E[0, 2]
    dyson_b = e12**2 / (lam1 - lam2) + e13**2 / (lam1 - _l3)

    # 2×2 cross-check against the exact eigenvalue, with λ₂ = λ₁ − Δ (Δ > 0 fixes the square-root branch).
    delta = sp.Symbol("Delta", positive=True)
    e22 = _E[1, 1]
    lam_exact = (
        2 * lam1
        - delta
        + epsilon * (e11 + e22)
        + sp.sqrt((delta + epsilon * (e11 - e22)) ** 2 + 4 * (epsilon * e12) ** 2)
    ) / 2
    M2 = sp.Matrix([[lam1 + epsilon * e11, epsilon * e12], [epsilon * e12, lam1 - delta + epsilon * e22]])
    series2 = sp.series(lam_exact, epsilon, 0, 3).removeO()

    lam_of_eps = sp.Function("lambda_1")(epsilon)
    statement = sp.Eq(lam_of_eps, lam1 + epsilon * e11 + epsilon**2 * dyson_b + sp.Order(epsilon**3))
    return Derivation(
        name="dyson.second_order",
        statement=statement,
        source="[R] standard Rayleigh–Schrödinger perturbation theory, theory reference §3.5, §6.13",
        steps=(
            Step("ε⁰: det(G − μ) = (λ₁−μ)(λ₂−μ)(λ₃−μ), so μ = λ₁ is a root",
                 lhs=sp.expand((G3 - _mu * sp.eye(3)).det()), rhs=sp.expand((lam1 - _mu) * (lam2 - _mu) * (_l3 - _mu))),
            Step("ε¹: a = E₁₁", lhs=a_sol, rhs=e11),
            Step("ε²: b = Σ_{k≠1} E₁ₖ²/(λ₁ − λₖ)", lhs=b_sol, rhs=dyson_b),
            Step("2×2: the closed form is an eigenvalue: (M₁₁ − λ)(M₂₂ − λ) = M₁₂²",
                 lhs=sp.expand((M2[0, 0] - lam_exact) * (M2[1, 1] - lam_exact)), rhs=M2[0, 1] ** 2),
            Step("2×2: its ε-series matches to O(ε³)",
                 lhs=series2,
                 rhs=(lam1 + epsilon * e11 + epsilon**2 * e12**2 / delta)),
        ),
        assumptions="G symmetric, λ₁ simple (λ₁ ≠ λ₂, λ₃); E symmetric; E in G's eigenbasis",
    )


@derivation("dyson.pair_repulsion")
@cache
def _pair_repulsion() -> Derivation:
    shift1 = E12**2 / (lam1 - lam2)  # second-order share of λ_{k*} from k*+1
    shift2 = E12**2 / (lam2 - lam1)  # … and of λ_{k*+1} from k*
    r = E12**2 / (d1**2 - d2**2)  # the same shift with λ = d²
    dg = r / (2 * d1) - (-r) / (2 * d2)  # Δσ = Δλ/(2σ) to first order
    return Derivation(
        name="dyson.pair_repulsion",
        statement=sp.Eq(sp.Symbol(r"\Delta(\lambda_{k^*} - \lambda_{k^*+1})_{\mathrm{rep}}"), PAIR_REPULSION),
        source="[R] theory reference §3.5",
        steps=(
            Step("pair share of the eigenvalue gap", lhs=shift1 - shift2, rhs=PAIR_REPULSION),
            Step("the pair terms leave λ_{k*} + λ_{k*+1} unchanged", lhs=shift1, rhs=-shift2),
            Step("σ units: Δg = ρ/g with ρ = E₁₂²/(2d₁d₂), g = d₁ − d₂",
                 lhs=dg,
                 rhs=(RHO_REPULSION / g).subs(g, d1 - d2)),
            Step(
                "at collapse (d₁ = d₂ = d̄) ρ = E₁₂²/(2d̄²)",
                lhs=RHO_REPULSION.subs({d1: d_bar, d2: d_bar}), rhs=E12**2 / (2 * d_bar**2),
            ),
        ),
        assumptions="λ_{k*} > λ_{k*+1} simple; first order in the map σ = √λ",
    )


def _symmetric(M: np.ndarray, what: str) -> np.ndarray:
    A = np.asarray(M, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{what} must be a square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{what} contains NaN or Inf")
    scale = max(float(np.max(np.abs(A))), 1.0)
    if not np.allclose(A, A.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError(f"{what} must be symmetric; max |A − Aᵀ| = {float(np.max(np.abs(A - A.T)))!r}")
    return (A + A.T) / 2


def second_order_eigenvalues(G: np.ndarray, E: np.ndarray, eps: float) -> np.ndarray:
    """λ_j + ε·E_jj + ε²·Σ_{k≠j} E_jk²/(λ_j − λ_k), in G's eigenbasis, λ descending (σ² units) [R].

    The j-th entry approximates the j-th largest eigenvalue of G + εE with error O(ε³). G and E are symmetric
    W×W (float64); every eigenvalue of G must be simple (a repeated eigenvalue raises ``ValueError``: the
    second-order term is undefined there, which is why level repulsion dominates near a collapse).
    """
    Gs = _symmetric(G, "G")
    Es = _symmetric(E, "E")
    if Gs.shape != Es.shape:
        raise ValueError(f"G and E must have the same shape, got {Gs.shape} and {Es.shape}")
    lam, U = np.linalg.eigh(Gs)
    lam, U = lam[::-1], U[:, ::-1]  # descending, as everywhere in the package
    Ep = U.T @ Es @ U
    diff = lam[:, None] - lam[None, :]
    off = ~np.eye(lam.size, dtype=bool)
    scale = max(float(np.max(np.abs(lam))), np.finfo(np.float64).tiny)
    if np.any(np.abs(diff[off]) <= 1e-12 * scale):
        raise ValueError(f"G has a repeated eigenvalue (λ = {lam.tolist()}); second-order shifts need simple λ_j")
    ratio = np.zeros_like(Ep)
    ratio[off] = Ep[off] ** 2 / diff[off]
    return lam + eps * np.diag(Ep) + eps**2 * ratio.sum(axis=1)
