"""The gap flow, Thm 14.2, as the exact difference ḋ_{k*} − ḋ_{k*+1} of two modes under the flow (F).

Statement [C: thesis Thm 14.2 (draft Thm 5.4), quoted in dyck_scan SPECTRAL_EDGE_THESIS_CONNECTION.md and the
Lifecycle paper's ``eq:gap_flow``]::

    ġ = −η(h₁ − h₂)·d̄  −  η(h̄ + ω)·g  +  ηW·(G₁²/d₁ − G₂²/d₂)
        curvature asym.    damping          gradient driving

with index 1 = k*, 2 = k*+1; g = d₁ − d₂ and d̄ = (d₁ + d₂)/2 in σ units (singular values of the window X, not
Gram eigenvalues λ = σ²), h̄ = (h₁ + h₂)/2, t in optimizer steps (per checkpoint use η·Δs).

Derivation [R, exact; theory reference §3.4, §6.8]: put d₁ = d̄ + g/2, d₂ = d̄ − g/2 into ḋ₁ − ḋ₂ of (F); the one
non-trivial step is (h₁+ω)(d̄+g/2) − (h₂+ω)(d̄−g/2) = (h₁−h₂)d̄ + (h̄+ω)g. So the "≈" of Thm 14.2 is exactly that of
(F): the gap flow adds no approximation, and it inherits (F)'s units issue (``signal_flow.dimensions``). The
level-repulsion ("Dyson") correction is *not* in (F); see ``theory.dyson`` and ``theory.normal_form``.

The exported terms are written in the *measured* variables (d₁, d₂, h₁, h₂, G₁, G₂, η, ω, W), with d̄, g, h̄
substituted, so a predictor can evaluate them directly on a spectrum; ``GAP_FLOW_ARGS`` is their argument order.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.signal_flow import FLOW_RHS
from theory.symbols import G1, G2, G, W, d, d1, d2, d_bar, eta, g, h, h1, h2, h_bar, omega, t

__all__ = [
    "ARGS",
    "GAP_FLOW_ARGS",
    "GAP_FLOW_RHS",
    "GAP_FLOW_RHS_CORRECTED",
    "GAP_FLOW_TERMS",
    "GAP_FLOW_TERMS_CORRECTED",
    "GAP_FLOW_VARIANTS",
    "THM_14_2_RHS",
    "mode_flow",
]

#: Argument order predictors compile ``GAP_FLOW_TERMS`` / ``GAP_FLOW_RHS`` with.
GAP_FLOW_ARGS: tuple[sp.Symbol, ...] = (d1, d2, h1, h2, G1, G2, eta, omega, W)
ARGS = GAP_FLOW_ARGS

# The pair variables in terms of the measured ones.
_D_BAR = (d1 + d2) / 2
_GAP = d1 - d2
_H_BAR = (h1 + h2) / 2

#: The three terms of Thm 14.2 in measured variables (σ units per optimizer step).
GAP_FLOW_TERMS: dict[str, sp.Expr] = {
    "curvature_asymmetry": -eta * (h1 - h2) * _D_BAR,  # closes the gap when the upper mode is stiffer
    "damping": -eta * (_H_BAR + omega) * _GAP,  # always contracts the gap (for h̄ + ω > 0)
    "gradient_driving": eta * W * (G1**2 / d1 - G2**2 / d2),  # opens it when the gradient favours mode k*
}

#: ġ of Thm 14.2: the sum of ``GAP_FLOW_TERMS``.
GAP_FLOW_RHS: sp.Expr = sp.Add(*GAP_FLOW_TERMS.values())

#: Thm 14.2 under the corrected flow (errata 2): Term 3 carries η²W in σ units [R].
GAP_FLOW_TERMS_CORRECTED: dict[str, sp.Expr] = {
    **GAP_FLOW_TERMS,
    "gradient_driving": eta**2 * W * (G1**2 / d1 - G2**2 / d2),
}
GAP_FLOW_RHS_CORRECTED: sp.Expr = sp.Add(*GAP_FLOW_TERMS_CORRECTED.values())

#: variant name → (terms, rhs); "corrected" is the default (registry quantity ``mode_flow``).
GAP_FLOW_VARIANTS: dict[str, tuple[dict[str, sp.Expr], sp.Expr]] = {
    "corrected": (GAP_FLOW_TERMS_CORRECTED, GAP_FLOW_RHS_CORRECTED),
    "quoted": (GAP_FLOW_TERMS, GAP_FLOW_RHS),
}

#: Thm 14.2 as printed, in the pair variables d̄, g, h̄ (plus d₁, d₂ in the driving term) — for rendering.
THM_14_2_RHS: sp.Expr = -eta * (h1 - h2) * d_bar - eta * (h_bar + omega) * g + eta * W * (G1**2 / d1 - G2**2 / d2)


def mode_flow(d_j: sp.Expr, h_j: sp.Expr, G_j: sp.Expr) -> sp.Expr:
    """(F) for one mode with the given signal strength, curvature and gradient projection substituted."""
    return FLOW_RHS.subs({d: d_j, h: h_j, G: G_j}, simultaneous=True)


_PAIR = {d1: d_bar + g / 2, d2: d_bar - g / 2}  # d₁ = d̄ + g/2, d₂ = d̄ − g/2


@derivation("gap_flow.key_identity")
@cache
def _key_identity() -> Derivation:
    lhs = (h1 + omega) * (d_bar + g / 2) - (h2 + omega) * (d_bar - g / 2)
    rhs = (h1 - h2) * d_bar + (h_bar + omega) * g
    return Derivation(
        name="gap_flow.key_identity",
        statement=sp.Eq(lhs, rhs),
        source="[R] theory reference §3.4",
        steps=(Step("expand with h̄ = (h₁+h₂)/2", lhs=lhs, rhs=rhs.subs(h_bar, _H_BAR)),),
        assumptions="h̄ = (h₁ + h₂)/2",
    )


@derivation("gap_flow.thm_14_2")
@cache
def _thm_14_2() -> Derivation:
    difference = mode_flow(d1, h1, G1) - mode_flow(d2, h2, G2)
    printed = THM_14_2_RHS.subs(h_bar, _H_BAR)
    return Derivation(
        name="gap_flow.thm_14_2",
        statement=sp.Eq(sp.Derivative(sp.Function("g")(t), t), THM_14_2_RHS),
        source="[C] Thm 14.2 (draft Thm 5.4); [R] derivation from (F), theory reference §3.4",
        steps=(
            Step("ḋ₁ − ḋ₂ = GAP_FLOW_RHS in measured variables", lhs=difference, rhs=GAP_FLOW_RHS),
            Step(
                "ḋ₁ − ḋ₂ = Thm 14.2 with d₁ = d̄ + g/2, d₂ = d̄ − g/2, h̄ = (h₁+h₂)/2",
                lhs=difference.subs(_PAIR, simultaneous=True), rhs=printed.subs(_PAIR, simultaneous=True),
            ),
            Step(
                "curvature_asymmetry = −η(h₁−h₂)d̄",
                lhs=GAP_FLOW_TERMS["curvature_asymmetry"], rhs=(-eta * (h1 - h2) * d_bar).subs(d_bar, _D_BAR),
            ),
            Step(
                "damping = −η(h̄+ω)g",
                lhs=GAP_FLOW_TERMS["damping"], rhs=(-eta * (h_bar + omega) * g).subs({h_bar: _H_BAR, g: _GAP}),
            ),
        ),
        assumptions="both modes follow (F); d₁, d₂ > 0",
        notes="exact: Thm 14.2 adds no approximation to (F)",
    )
