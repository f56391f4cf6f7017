"""The commutator defect of two SGD steps (theory reference §6.15, corrected by §0.1 errata 1).

Two SGD steps with learning rate η on losses A then B, versus B then A, from the same θ. For quadratic losses
L_X(θ) = ½θᵀH_Xθ + b_Xᵀθ (gradients g_X = H_Xθ + b_X at θ) the difference is exactly [R]::

    θ_AB − θ_BA = η²(H_B g_A − H_A g_B)

(+O(η³) for general smooth losses). It vanishes iff H_B g_A = H_A g_B (e.g. L_B = c·L_A + const, or H_A = H_B
and g_A = g_B); with H_A = H_B = H and g_B = c·g_A it is η²(1 − c)·H g_A, not 0. Units: θ; η per step.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from theory.derivation import Derivation, Step, derivation

__all__ = ["commutator_defect"]


def _quadratic(n: int, name: str) -> tuple[sp.Matrix, sp.Matrix]:
    H = sp.Matrix(n, n, lambda i, k: sp.Symbol(f"{name}_{min(i, k)}{max(i, k)}", real=True))
    b = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"b{name}_{i}", real=True))
    return H, b


def commutator_defect(H_A: sp.Matrix, g_A: sp.Matrix, H_B: sp.Matrix, g_B: sp.Matrix, eta: sp.Expr) -> sp.Matrix:
    """η²(H_B g_A − H_A g_B): θ_AB − θ_BA for quadratic losses (errata 1) [R]."""
    return eta**2 * (H_B * g_A - H_A * g_B)


@derivation("commutator.quadratic_defect")
@cache
def _quadratic_defect() -> Derivation:
    n = 2
    eta = sp.Symbol("eta", positive=True)
    c = sp.Symbol("c", real=True)
    th = sp.Matrix(sp.symbols("theta_0 theta_1", real=True))
    HA, bA = _quadratic(n, "A")
    HB, bB = _quadratic(n, "B")

    def step(x: sp.Matrix, H: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
        return x - eta * (H * x + b)

    gA, gB = HA * th + bA, HB * th + bB
    theta_AB = step(step(th, HA, bA), HB, bB)  # A first, then B
    theta_BA = step(step(th, HB, bB), HA, bA)
    defect = commutator_defect(HA, gA, HB, gB, eta)
    scaled = commutator_defect(HA, gA, HA, c * gA, eta)  # H_B = H_A, g_B = c g_A (b_B, θ chosen to give it)
    lhs_sym = sp.Symbol(r"\theta_{AB} - \theta_{BA}")
    return Derivation(
        name="commutator.quadratic_defect",
        statement=sp.Eq(lhs_sym, sp.Symbol("eta") ** 2 * sp.Symbol(r"(H_B g_A - H_A g_B)")),
        source="[R] theory reference §0.1 errata 1 (corrects §6.15)",
        steps=(
            Step("two SGD steps each way on quadratics (ℝ²): θ_AB − θ_BA = η²(H_B g_A − H_A g_B)",
                 lhs=sp.expand(theta_AB - theta_BA), rhs=sp.expand(defect)),
            Step("L_B = c·L_A: H_B g_A − H_A g_B = c(H_A g_A − H_A g_A) vanishes — balance of the two products",
                 lhs=sp.expand((c * HA) * gA), rhs=sp.expand(HA * (c * gA))),
            Step("H_B = H_A = H, g_B = c·g_A: the defect is η²(1 − c)·H g_A, not 0",
                 lhs=sp.expand(scaled), rhs=sp.expand(eta**2 * (1 - c) * HA * gA)),
        ),
        assumptions="L_A, L_B quadratic (exact); general smooth losses add O(η³); plain SGD steps, same η",
    )
