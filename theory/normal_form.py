"""The near-collapse normal form of the gap, ġ = c − κg + ρ/g (Prop 14.4).

Statement [C: thesis Prop 14.4 §14.3, as quoted in the companion notes: a viable gap (c > 0) is attracted to
g* = c/(η(h̄+ω)); a collapsing gap (c < 0) shrinks, but level repulsion prevents a true crossing]. Normal form
[R, theory reference §3.5]::

    ġ = c − κ·g + ρ/g,     κ = η(h̄ + ω) > 0,  ρ ≥ 0

g in σ units (singular-value gap d_{k*} − d_{k*+1}), t in optimizer steps; c is the g-independent part of Thm 14.2 at
the collapse point d₁ = d₂ = d̄ (``C_AT_COLLAPSE``), ρ/g the level-repulsion term (``theory.dyson``: ρ ≈ E₁₂²/(2d̄²)).

Regimes [R, each derived and checked below]:

* ρ > 0: the unique positive root g₊ = (c + √(c² + 4κρ))/(2κ) is attracting, for every sign of c ("avoided
  crossing" when c ≤ 0);
* ρ = 0, c > 0: g → g* = c/κ ("viable gap");
* ρ = 0, c < 0: g(t) = c/κ + (g₀ − c/κ)e^{−κt} reaches 0 at t* = ln((g₀ − c/κ)/(−c/κ))/κ ("finite-time
  collapse": a crossing and a relabelling of k*).

Caveat [R]: κ = η(h̄+ω) is only the damping term's share of the linearisation. Expanding the driving term of
Thm 14.2 around g = 0 at fixed d̄ adds ηW(G₁² + G₂²)/(2d̄²) (``KAPPA_EFFECTIVE``); at the (F) steady state of both
modes that extra part equals η(h̄+ω), i.e. it doubles κ. The statement as quoted keeps κ = η(h̄+ω).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.gap_flow import GAP_FLOW_ARGS, THM_14_2_RHS
from theory.registry import register
from theory.symbols import G1, G2, W, c, d1, d2, d_bar, eta, g, g0, h1, h2, h_bar, kappa, omega, rho, t

__all__ = [
    "ARGS",
    "COLLAPSE_TIME",
    "C_ARGS",
    "C_AT_COLLAPSE",
    "C_AT_COLLAPSE_CORRECTED",
    "G_PLUS",
    "G_STAR",
    "KAPPA",
    "KAPPA_ARGS",
    "KAPPA_CORRECTED",
    "KAPPA_EFFECTIVE",
    "KAPPA_PAIR_ARGS",
    "KAPPA_PAIR_VARIANTS",
    "KAPPA_QUOTED",
    "NORMAL_FORM_ARGS",
    "NORMAL_FORM_RHS",
    "classify_normal_form",
    "collapse_solution",
    "kappa_corrected",
    "kappa_quoted",
]

#: Argument order of ``NORMAL_FORM_RHS``, ``G_STAR``, ``G_PLUS`` (unused arguments are harmless to lambdify).
NORMAL_FORM_ARGS: tuple[sp.Symbol, ...] = (g, c, kappa, rho)
ARGS = NORMAL_FORM_ARGS

#: ġ = c − κg + ρ/g  [R normal form of Prop 14.4].
NORMAL_FORM_RHS: sp.Expr = c - kappa * g + rho / g

#: g* = c/κ, the equilibrium for ρ = 0, c > 0  [C Prop 14.4].
G_STAR: sp.Expr = c / kappa

#: g₊ = (c + √(c² + 4κρ))/(2κ), the attracting positive root for ρ > 0  [R].
G_PLUS: sp.Expr = (c + sp.sqrt(c**2 + 4 * kappa * rho)) / (2 * kappa)

_G_MINUS = (c - sp.sqrt(c**2 + 4 * kappa * rho)) / (2 * kappa)

_D_BAR = (d1 + d2) / 2

#: κ = η(h̄ + ω) in measured variables (h̄ = (h₁+h₂)/2); argument order ``KAPPA_ARGS``.
KAPPA: sp.Expr = eta * ((h1 + h2) / 2 + omega)
KAPPA_ARGS: tuple[sp.Symbol, ...] = (h1, h2, eta, omega)

_C_DBAR = -eta * (h1 - h2) * d_bar + eta * W * (G1**2 - G2**2) / d_bar  # c in terms of d̄

#: c = −η(h₁−h₂)d̄ + ηW(G₁² − G₂²)/d̄ at collapse (d₁ = d₂ = d̄), with d̄ = (d₁+d₂)/2 measured; args ``C_ARGS``.
C_AT_COLLAPSE: sp.Expr = _C_DBAR.subs(d_bar, _D_BAR)
C_ARGS: tuple[sp.Symbol, ...] = GAP_FLOW_ARGS

#: −∂ġ/∂g of Thm 14.2 at g = 0, fixed d̄: κ + ηW(G₁² + G₂²)/(2d̄²), in measured variables (args ``C_ARGS``) [R].
KAPPA_EFFECTIVE: sp.Expr = KAPPA + eta * W * (G1**2 + G2**2) / (2 * _D_BAR**2)

#: Argument order of the pair-variable κ forms: (h̄, ω, G₁, G₂, d̄, η, W).
KAPPA_PAIR_ARGS: tuple[sp.Symbol, ...] = (h_bar, omega, G1, G2, d_bar, eta, W)

#: κ as quoted (Prop 14.4): η(h̄+ω) — the damping term's share only [C].
KAPPA_QUOTED: sp.Expr = eta * (h_bar + omega)

#: κ = −∂ġ/∂g at g = 0, fixed d̄, under the corrected flow (errata 2, 3): η(h̄+ω) + η²W(G₁²+G₂²)/(2d̄²) [R].
KAPPA_CORRECTED: sp.Expr = eta * (h_bar + omega) + eta**2 * W * (G1**2 + G2**2) / (2 * d_bar**2)

#: variant name → κ in pair variables (``KAPPA_PAIR_ARGS``); registry quantity ``normal_form_kappa``.
KAPPA_PAIR_VARIANTS: dict[str, sp.Expr] = {"corrected": KAPPA_CORRECTED, "quoted": KAPPA_QUOTED}

#: c at collapse under the corrected flow: −η(h₁−h₂)d̄ + η²W(G₁² − G₂²)/d̄, d̄ = (d₁+d₂)/2; args ``C_ARGS`` [R].
C_AT_COLLAPSE_CORRECTED: sp.Expr = (-eta * (h1 - h2) * d_bar + eta**2 * W * (G1**2 - G2**2) / d_bar).subs(
    d_bar, _D_BAR
)


@register(
    "normal_form_kappa",
    "corrected",
    source="[R] theory reference §0.1 errata 3: κ = −∂ġ/∂g at g = 0, fixed d̄, with η²W under the corrected flow",
    version="errata 2026-12",
    default=True,
)
def kappa_corrected(hbar: float, omega_value: float, G_1: float, G_2: float, dbar: float, eta_value: float,
                    W_value: float) -> float:
    """κ = η(h̄+ω) + η²W(G₁²+G₂²)/(2d̄²) (per optimizer step), ≈ 2η(h̄+ω) with both modes at their fixed points.

    Default because κ is by definition the linearisation −∂ġ/∂g of Thm 14.2 at the collapse point, and the
    driving term contributes as much as the damping there (derivation ``normal_form.kappa_corrected``); with it
    g* = c/κ is half the quoted c/(η(h̄+ω)).
    """
    return eta_value * (hbar + omega_value) + eta_value**2 * W_value * (np.square(G_1) + np.square(G_2)) / (
        2 * np.square(dbar)
    )


@register(
    "normal_form_kappa",
    "quoted",
    source="[C] Prop 14.4 as quoted: g* = c/(η(h̄+ω)), i.e. κ = η(h̄+ω)",
    version="thesis §14.3",
)
def kappa_quoted(hbar: float, omega_value: float, G_1: float, G_2: float, dbar: float, eta_value: float,
                 W_value: float) -> float:
    """κ = η(h̄+ω): the damping term's share of the linearisation only (G, d̄, W unused); g* twice too large."""
    return eta_value * (np.asarray(hbar, dtype=np.float64) + omega_value)


#: Hitting time of g = 0 for ρ = 0, c < 0, from g(0) = g₀: t* = ln(1 − κg₀/c)/κ = ln((g₀ − c/κ)/(−c/κ))/κ  [R].
COLLAPSE_TIME: sp.Expr = sp.log(1 - kappa * g0 / c) / kappa


def collapse_solution(g_init: sp.Expr = g0) -> sp.Expr:
    """g(t) = c/κ + (g₀ − c/κ)·e^{−κt}, the solution for ρ = 0 (σ units, t in optimizer steps) [R]."""
    return c / kappa + (g_init - c / kappa) * sp.exp(-kappa * t)


@derivation("normal_form.equilibria")
@cache
def _equilibria() -> Derivation:
    c_pos = sp.Symbol("c_pos", positive=True)
    g_plus = sp.Symbol("g_+", positive=True)
    return Derivation(
        name="normal_form.equilibria",
        statement=sp.Eq(g_plus, G_PLUS),
        source="[C] Prop 14.4 (g* = c/κ); [R] normal form and g₊",
        steps=(
            Step("ρ = 0: at g = c/κ the damping κg balances the driving c", lhs=(kappa * g).subs(g, G_STAR), rhs=c),
            Step("g·ġ = cg − κg² + ρ vanishes at g₊: κg₊² = cg₊ + ρ",
                 lhs=sp.expand((kappa * g**2).subs(g, G_PLUS)), rhs=sp.expand((c * g + rho).subs(g, G_PLUS))),
            Step("… and at g₋: κg₋² = cg₋ + ρ",
                 lhs=sp.expand((kappa * g**2).subs(g, _G_MINUS)), rhs=sp.expand((c * g + rho).subs(g, _G_MINUS))),
            Step("Vieta: g₊·g₋ = −ρ/κ ≤ 0, so g₊ is the only positive root for ρ > 0",
                 lhs=G_PLUS * _G_MINUS, rhs=-rho / kappa),
            Step("g₊ → c/κ as ρ → 0 when c > 0", lhs=G_PLUS.subs({rho: 0, c: c_pos}), rhs=G_STAR.subs(c, c_pos)),
        ),
        assumptions="κ > 0, ρ ≥ 0",
    )


@derivation("normal_form.attracting")
@cache
def _attracting() -> Derivation:
    slope = sp.diff(NORMAL_FORM_RHS, g)
    g_pos = sp.Symbol("g_pos", positive=True)
    rho_pos = sp.Symbol("rho_pos", positive=True)
    return Derivation(
        name="normal_form.attracting",
        statement=sp.StrictLessThan(slope.subs(g, sp.Symbol("g_+", positive=True)), 0, evaluate=False),
        source="[R] theory reference §3.5, §6.10",
        steps=(
            Step("∂ġ/∂g = −κ − ρ/g²", lhs=slope, rhs=(-kappa - rho / g**2)),
            Step("∂ġ/∂g < 0 at every g > 0", relation=sp.StrictLessThan(slope.subs(g, g_pos), 0, evaluate=False)),
            Step("at g₊: ∂ġ/∂g = −√(c² + 4κρ)/g₊",
                 lhs=slope.subs(g, G_PLUS), rhs=-sp.sqrt(c**2 + 4 * kappa * rho) / G_PLUS),
            Step("ρ = 0: ∂ġ/∂g at g* = −κ", lhs=slope.subs(rho, 0), rhs=-kappa),
            Step(
                "ρ > 0: g·ġ → ρ as g → 0⁺, so ġ ~ ρ/g → +∞ (no crossing)",
                lhs=sp.limit(g * NORMAL_FORM_RHS.subs(rho, rho_pos), g, 0, "+"),
                rhs=rho_pos,
            ),
        ),
        assumptions="κ > 0, ρ ≥ 0, g > 0",
    )


@derivation("normal_form.c_at_collapse")
@cache
def _c_at_collapse() -> Derivation:
    pair = {d1: d_bar + g / 2, d2: d_bar - g / 2}
    rhs_pair = THM_14_2_RHS.subs(pair, simultaneous=True)
    c_sym = sp.Symbol("c")
    return Derivation(
        name="normal_form.c_at_collapse",
        statement=sp.Eq(c_sym, _C_DBAR),
        source="[C] Prop 14.4 (c = net driving at collapse); [R] the expression and κ_eff",
        steps=(
            Step("c = Thm 14.2 RHS at g = 0 (fixed d̄)", lhs=rhs_pair.subs(g, 0), rhs=_C_DBAR),
            Step("the damping term −η(h̄+ω)g has slope −η(h̄+ω)",
                 lhs=sp.diff(-eta * (h_bar + omega) * g, g), rhs=-eta * (h_bar + omega)),
            Step(
                "−∂ġ/∂g at g = 0 = η(h̄+ω) + ηW(G₁²+G₂²)/(2d̄²)",
                lhs=-sp.diff(rhs_pair, g).subs(g, 0),
                rhs=(eta * (h_bar + omega) + eta * W * (G1**2 + G2**2) / (2 * d_bar**2)),
            ),
            Step(
                "KAPPA_EFFECTIVE is that slope in measured variables",
                lhs=KAPPA_EFFECTIVE, rhs=(eta * (h_bar + omega) + eta * W * (G1**2 + G2**2) / (2 * d_bar**2)).subs(
                    {h_bar: (h1 + h2) / 2, d_bar: _D_BAR}
                ),
            ),
            Step("C_AT_COLLAPSE is c with d̄ = (d₁+d₂)/2", lhs=C_AT_COLLAPSE, rhs=_C_DBAR.subs(d_bar, _D_BAR)),
        ),
        assumptions="d₁ = d̄ + g/2, d₂ = d̄ − g/2; d̄ held fixed near collapse",
        notes="c > 0 ⇔ |G₁|² > |G₂|² (the companion's reading) only when h₁ = h₂",
    )


@derivation("normal_form.kappa_corrected")
@cache
def _kappa_corrected() -> Derivation:
    from theory.gap_flow import GAP_FLOW_RHS_CORRECTED  # the corrected Thm 14.2 (errata 2)

    pair = {d1: d_bar + g / 2, d2: d_bar - g / 2, h1: h_bar + sp.Symbol("delta_h", real=True) / 2,
            h2: h_bar - sp.Symbol("delta_h", real=True) / 2}
    rhs_pair = GAP_FLOW_RHS_CORRECTED.subs(pair, simultaneous=True)
    q = sp.Symbol("q", positive=True)  # q = h̄ + ω > 0
    at_fixed = {G1: d_bar * sp.sqrt(q / (eta * W)), G2: d_bar * sp.sqrt(q / (eta * W))}  # both modes at σ* = d̄
    c_corr = rhs_pair.subs(g, 0)
    return Derivation(
        name="normal_form.kappa_corrected",
        statement=sp.Eq(kappa, KAPPA_CORRECTED),
        source="[R] theory reference §0.1 errata 3 (κ := −∂ġ/∂g at g = 0, fixed d̄) with errata 2 (η²W)",
        steps=(
            Step("κ = −∂ġ/∂g at g = 0, fixed d̄, of the corrected Thm 14.2",
                 lhs=-sp.diff(rhs_pair, g).subs(g, 0), rhs=KAPPA_CORRECTED),
            Step("the quoted κ = η(h̄+ω) is only the damping term's share",
                 lhs=KAPPA_CORRECTED - KAPPA_QUOTED, rhs=eta**2 * W * (G1**2 + G2**2) / (2 * d_bar**2)),
            Step("both modes at their fixed point σ* = d̄ (G² = d̄²(h̄+ω)/(ηW)): κ = 2η(h̄+ω)",
                 lhs=KAPPA_CORRECTED.subs(at_fixed).subs(h_bar, q - omega), rhs=2 * eta * q),
            Step("so g* = c/κ = c/(2η(h̄+ω)): half the quoted c/(η(h̄+ω))",
                 lhs=(c / KAPPA_CORRECTED).subs(at_fixed).subs(h_bar, q - omega),
                 rhs=(c / KAPPA_QUOTED).subs(h_bar, q - omega) / 2),
            Step("c (the g-independent part) carries η²W in σ units",
                 lhs=c_corr, rhs=-eta * sp.Symbol("delta_h", real=True) * d_bar + eta**2 * W * (G1**2 - G2**2) / d_bar),
        ),
        assumptions="d̄ held fixed near collapse; h₁ − h₂ = δh; h̄ + ω > 0 for the fixed points",
    )


@derivation("normal_form.finite_time_collapse")
@cache
def _finite_time_collapse() -> Derivation:
    sol = collapse_solution(g0)
    a = sp.Symbol("a", positive=True)  # a = −c > 0
    t_star = sp.Symbol("t^{*}", positive=True)
    return Derivation(
        name="normal_form.finite_time_collapse",
        statement=sp.Eq(t_star, COLLAPSE_TIME),
        source="[R] theory reference §3.5, §6.10",
        steps=(
            Step("g(t) solves ġ = c − κg", lhs=sp.diff(sol, t), rhs=NORMAL_FORM_RHS.subs(rho, 0).subs(g, sol)),
            Step("g(0) = g₀", lhs=sol.subs(t, 0), rhs=g0),
            Step(
                "t* = ln((g₀ − c/κ)/(−c/κ))/κ",
                lhs=sp.exp(kappa * COLLAPSE_TIME), rhs=(g0 - c / kappa) / (-c / kappa),
            ),
            Step("g(t*) = 0: the decayed part (g₀ − c/κ)e^{−κt*} equals −c/κ",
                 lhs=sp.expand((sol - c / kappa).subs(t, COLLAPSE_TIME)), rhs=-c / kappa),
            Step(
                "for c = −a < 0, t* = ln(1 + κg₀/a)/κ",
                lhs=sp.expand_log(COLLAPSE_TIME.subs(c, -a), force=True),
                rhs=sp.expand_log(sp.log(1 + kappa * g0 / a) / kappa, force=True),
            ),
            Step("t* > 0 for c < 0",
                 relation=sp.StrictGreaterThan(sp.log(1 + kappa * g0 / a) / kappa, 0, evaluate=False)),
        ),
        assumptions="ρ = 0, κ > 0, g₀ > 0, c < 0",
    )


def classify_normal_form(c_value: float, kappa_value: float, rho_value: float) -> str:
    """The regime of ġ = c − κg + ρ/g: ``"viable gap"``, ``"avoided crossing"`` or ``"finite-time collapse"`` [R].

    * c > 0 → "viable gap": the equilibrium (c/κ, or g₊ > c/κ when ρ > 0) is held up by the net driving;
    * c ≤ 0, ρ > 0 → "avoided crossing": the gap shrinks to g₊ = (c + √(c²+4κρ))/(2κ) > 0 but never closes;
    * c < 0, ρ = 0 → "finite-time collapse": g reaches 0 at t* (``COLLAPSE_TIME``).

    c = ρ = 0 is the marginal case g(t) = g₀e^{−κt} (collapse only as t → ∞) and raises ``ValueError``, as do
    κ ≤ 0, ρ < 0 and non-finite input. Units: c in σ per step, κ per step, ρ in σ² per step.
    """
    cv, kv, rv = float(c_value), float(kappa_value), float(rho_value)
    if not all(math.isfinite(x) for x in (cv, kv, rv)):
        raise ValueError(f"c, κ, ρ must be finite, got c={cv!r}, κ={kv!r}, ρ={rv!r}")
    if kv <= 0:
        raise ValueError(f"the normal form needs κ = η(h̄+ω) > 0, got κ={kv!r}")
    if rv < 0:
        raise ValueError(f"level repulsion ρ must be ≥ 0, got ρ={rv!r}")
    if cv > 0:
        return "viable gap"
    if rv > 0:
        return "avoided crossing"
    if cv < 0:
        return "finite-time collapse"
    raise ValueError("c = ρ = 0 is marginal: g = g₀·exp(−κt) tends to 0 but never reaches it")
