"""The per-mode signal-strength flow (F) and its Eq. (38) variant, with their checked consequences.

Canonical flow, one mode j (spec §3.3) [C: draft Thm 5.4 docstring "dd_j/dt ≈ −η h_j d_j + ηW|G_j|²/d_j", with the
weight decay ω added as in Thm 14.2]::

    ḋ = −η(h+ω)·d + ηW·G²/d                                   (F)

d is the signal strength d_j (σ units: a singular value of the update window X; λ = d² is a Gram eigenvalue), h the
curvature v_jᵀHv_j, G = ⟨∇L, v_j⟩ (real, so G² = |G|²), η the learning rate per optimizer step, ω the decoupled
weight decay, W the window length and t the time in optimizer steps (per checkpoint interval use η·Δs, see
``theory.adiabatic.effective_eta``).

Consequences [R; each is a registered, sympy-checked :class:`~theory.derivation.Derivation`]:

* squared form  d(d²)/dt = −2η(h+ω)d² + 2ηW G²            (``SQUARED_FLOW_RHS``, chain rule)
* fixed point   d* = |G|·√(W/(h+ω))                        (``FIXED_POINT``, needs h+ω > 0)
* linear rate   −2η(h+ω), stable when η(h+ω) > 0           (``LINEAR_RATE``, in d and in d² alike)
* closed form   d²(t) = d*² + (d0² − d*²)·e^{−2η(h+ω)t}    (``closed_form_d_squared``)

Eq. (38) variant [C: thesis Thm 12.1 as transcribed in dyck_scan SPECTRAL_EDGE_THESIS_CONNECTION.md; S, N, G_eff
are undefined in the sources, [S]]::

    d(d²)/dt = −2η(h+ω)·d² + η²W·(S + 2·G_eff·N)

It agrees with the squared form of (F) iff η²W(S + 2G_eff N)/2 = ηW G² (``EQ38_CONSISTENCY``). Reading the injection
S + 2G_eff N as "a squared gradient projection" G², Eq. (38) injects η/2 times what (F) does: the two normalisations
differ by one power of η (and the chain-rule 2). ``signal_flow.dimensions`` shows why: under a rescaling θ → sθ of
parameter units, the two terms of (F) scale differently when d is a singular value of X (d → sd) while Eq. (38) is
homogeneous; (F) becomes homogeneous, and Eq. (38) its exact squared form with S + 2G_eff N = 2G², if d is read as
σ/√η (``FLOW_RHS_SIGMA``).
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.symbols import G, G_eff, N_mode, S_mode, W, d, d0, eta, h, omega, t

__all__ = [
    "ARGS",
    "EQ38_ARGS",
    "EQ38_CONSISTENCY",
    "EQ38_INJECTION_RATIO",
    "EQ38_RHS",
    "FIXED_POINT",
    "FLOW_ARGS",
    "FLOW_RHS",
    "FLOW_RHS_SIGMA",
    "FLOW_SIGMA_ARGS",
    "LINEAR_RATE",
    "SIGMA",
    "SQUARED_FLOW_RHS",
    "closed_form_d_squared",
    "sign_residual",
]

#: Argument order for lambdifying every per-mode expression of this module.
FLOW_ARGS: tuple[sp.Symbol, ...] = (d, h, G, eta, omega, W)
ARGS = FLOW_ARGS

#: (F): ḋ = −η(h+ω)d + ηW G²/d  [C, draft Thm 5.4 + ω].
FLOW_RHS: sp.Expr = -eta * (h + omega) * d + eta * W * G**2 / d

#: d(d²)/dt = −2η(h+ω)d² + 2ηW G²  [R, chain rule on (F); derivation ``signal_flow.squared_form``].
SQUARED_FLOW_RHS: sp.Expr = -2 * eta * (h + omega) * d**2 + 2 * eta * W * G**2

#: d* = |G|·√(W/(h+ω))  (σ units; real only for h+ω > 0) [C: Prop 5.1 steady state, with ω].
FIXED_POINT: sp.Expr = sp.Abs(G) * sp.sqrt(W / (h + omega))

#: Linearised rate of (F) at d*, identical for d and d²: −2η(h+ω) (per optimizer step) [R].
LINEAR_RATE: sp.Expr = -2 * eta * (h + omega)

#: Eq. (38): d(d²)/dt = −2η(h+ω)d² + η²W(S + 2 G_eff N)  [C; S, N, G_eff are [S]].
EQ38_RHS: sp.Expr = -2 * eta * (h + omega) * d**2 + eta**2 * W * (S_mode + 2 * G_eff * N_mode)
EQ38_ARGS: tuple[sp.Symbol, ...] = (d, h, S_mode, N_mode, G_eff, eta, omega, W)

#: The condition under which Eq. (38) is the squared form of (F) [R; spec §3.3].
EQ38_CONSISTENCY: sp.Eq = sp.Eq(eta**2 * W * (S_mode + 2 * G_eff * N_mode) / 2, eta * W * G**2)

#: Eq. (38)'s injection over (F)'s: η(S + 2G_eff N)/(2G²); = η/2 when S + 2G_eff N is read as G² [R].
EQ38_INJECTION_RATIO: sp.Expr = eta * (S_mode + 2 * G_eff * N_mode) / (2 * G**2)

_sigma = sp.Symbol("sigma", positive=True)  # a singular value of X when d is read as σ/√η
SIGMA = _sigma

#: (F) rewritten for σ = √η·d: σ̇ = −η(h+ω)σ + η²W G²/σ — the θ-unit-homogeneous reading of (F) [R].
FLOW_RHS_SIGMA: sp.Expr = -eta * (h + omega) * _sigma + eta**2 * W * G**2 / _sigma
FLOW_SIGMA_ARGS: tuple[sp.Symbol, ...] = (_sigma, h, G, eta, omega, W)

# h + ω > 0 is the hypothesis under which d* exists and is stable; checks that need it substitute h = q − ω with
# q > 0, because sympy cannot simplify √(W/(h+ω))·(h+ω) for a merely real h.
_q = sp.Symbol("q", positive=True)


def _positive_damping(expr: sp.Expr) -> sp.Expr:
    return expr.subs(h, _q - omega)


def sign_residual(relation: sp.Basic) -> sp.Expr:
    """A residual for a *sign* claim: 0 when sympy can prove ``relation`` from the symbols' assumptions, 1 otherwise.

    Lets an inequality sit in a :class:`~theory.derivation.Step` (whose residual must simplify to 0) without
    weakening the check: an undecidable relation leaves ``Piecewise((0, rel), (1, True))``, which is not 0.
    """
    return sp.Piecewise((0, relation), (1, True))


def closed_form_d_squared(d_init: sp.Expr = d0) -> sp.Expr:
    """d²(t) = d*² + (d0² − d*²)·e^{−2η(h+ω)t}, the solution of the squared form of (F) with d(0) = d0 [R].

    σ² (λ) units; t in optimizer steps. ``d_init`` may be a symbol or a number.
    """
    d_star_sq = FIXED_POINT**2  # Abs(G)**2 = G**2 for real G
    return d_star_sq + (d_init**2 - d_star_sq) * sp.exp(LINEAR_RATE * t)


@derivation("signal_flow.squared_form")
@cache
def _squared_form() -> Derivation:
    D = sp.Function("d")(t)
    chain = sp.diff(D**2, t).subs(sp.Derivative(D, t), FLOW_RHS.subs(d, D))
    lhs = sp.Derivative(sp.Function("d")(t) ** 2, t)
    return Derivation(
        name="signal_flow.squared_form",
        statement=sp.Eq(lhs, SQUARED_FLOW_RHS),
        source="[R] chain rule on (F) [C draft Thm 5.4 / Thm 14.2]",
        steps=(
            Step("d(d²)/dt = 2d·ḋ with ḋ from (F)", chain - SQUARED_FLOW_RHS.subs(d, D)),
            Step("2d·FLOW_RHS expands to SQUARED_FLOW_RHS", sp.expand(2 * d * FLOW_RHS) - SQUARED_FLOW_RHS),
        ),
        assumptions="d > 0 (a singular value); G real",
    )


@derivation("signal_flow.fixed_point")
@cache
def _fixed_point() -> Derivation:
    d_star = sp.Symbol("d^{*}", positive=True)
    return Derivation(
        name="signal_flow.fixed_point",
        statement=sp.Eq(d_star, FIXED_POINT),
        source="[C] Prop 5.1 steady state d_j ∝ |G_j|/√(h_j+ω); [R] from (F)",
        steps=(
            Step("FLOW_RHS(d*) = 0", _positive_damping(FLOW_RHS.subs(d, FIXED_POINT))),
            Step("SQUARED_FLOW_RHS(d*) = 0", _positive_damping(SQUARED_FLOW_RHS.subs(d, FIXED_POINT))),
            Step("d*² = W G²/(h+ω)", FIXED_POINT**2 - W * G**2 / (h + omega)),
        ),
        assumptions="h + ω > 0 (checked with h = q − ω, q > 0); G ≠ 0 for d* > 0",
    )


@derivation("signal_flow.stability")
@cache
def _stability() -> Derivation:
    rate_d = sp.diff(FLOW_RHS, d).subs(d, FIXED_POINT)
    D = sp.Symbol("D", positive=True)  # D = d², the variable of the squared form
    rate_d2 = sp.diff(SQUARED_FLOW_RHS.subs(d, sp.sqrt(D)), D)
    lam = sp.Symbol("lambda_lin")
    return Derivation(
        name="signal_flow.stability",
        statement=sp.Eq(lam, LINEAR_RATE),
        source="[R] linearisation of (F) at d*",
        steps=(
            Step("∂FLOW_RHS/∂d at d* = −2η(h+ω)", _positive_damping(rate_d - LINEAR_RATE)),
            Step("∂SQUARED_FLOW_RHS/∂(d²) = −2η(h+ω)", rate_d2 - LINEAR_RATE),
            Step("the rate is negative when h + ω > 0", sign_residual(_positive_damping(LINEAR_RATE) < 0)),
        ),
        assumptions="h + ω > 0, η > 0",
        notes="the discrete-time map additionally needs η(h+ω) < 2 (per-mode edge of stability, spec §3.3)",
    )


@derivation("signal_flow.closed_form")
@cache
def _closed_form() -> Derivation:
    sol = closed_form_d_squared(d0)
    y = sp.Function("y")  # y = d²
    ode = sp.Eq(y(t).diff(t), LINEAR_RATE * y(t) + 2 * eta * W * G**2)
    solved, ode_residual = sp.checkodesol(ode, sp.Eq(y(t), sol))
    D = sp.Symbol("D", positive=True)
    squared_in_D = SQUARED_FLOW_RHS.subs(d, sp.sqrt(D))
    return Derivation(
        name="signal_flow.closed_form",
        statement=sp.Eq(sp.Function("d")(t) ** 2, sol),
        source="[R] linear ODE in d²",
        steps=(
            Step("the squared form is linear in D = d²", squared_in_D - (LINEAR_RATE * D + 2 * eta * W * G**2)),
            Step("direct substitution: dy/dt − RHS(y) = 0", sp.diff(sol, t) - squared_in_D.subs(D, sol)),
            Step("sympy.checkodesol", ode_residual if solved else sp.S.One + sp.Abs(ode_residual)),
            Step("initial condition y(0) = d0²", sol.subs(t, 0) - d0**2),
            Step(
                "y(t) → d*² as t → ∞ (h + ω > 0)",
                sp.limit(_positive_damping(sol), t, sp.oo) - _positive_damping(FIXED_POINT**2),
            ),
        ),
        assumptions="t ≥ 0 in optimizer steps; the limit needs h + ω > 0",
    )


@derivation("signal_flow.eq38_consistency")
@cache
def _eq38_consistency() -> Derivation:
    lhs, rhs = EQ38_CONSISTENCY.lhs, EQ38_CONSISTENCY.rhs
    injection = S_mode + 2 * G_eff * N_mode
    read_as_G2 = {S_mode: G**2 - 2 * G_eff * N_mode}  # the reading S + 2G_eff N = G²
    return Derivation(
        name="signal_flow.eq38_consistency",
        statement=EQ38_CONSISTENCY,
        source="[C] Eq. (38) vs (F); [R] the condition; [S] S, N, G_eff",
        steps=(
            Step("EQ38_RHS − SQUARED_FLOW_RHS = 2·(lhs − rhs)", (EQ38_RHS - SQUARED_FLOW_RHS) - 2 * (lhs - rhs)),
            Step(
                "condition ⇔ S + 2G_eff N = 2G²/η",
                sp.solve(EQ38_CONSISTENCY, S_mode)[0] - (2 * G**2 / eta - 2 * G_eff * N_mode),
            ),
            Step("injection ratio Eq.(38)/(F)", eta**2 * W * injection / (2 * eta * W * G**2) - EQ38_INJECTION_RATIO),
            Step("reading S + 2G_eff N as G² the ratio is η/2", EQ38_INJECTION_RATIO.subs(read_as_G2) - eta / 2),
        ),
        assumptions="G ≠ 0",
        notes="the sources' two normalisations differ by this factor η/2; (F) is the canonical flow (spec §3.3)",
    )


@derivation("signal_flow.dimensions")
@cache
def _dimensions() -> Derivation:
    s = sp.Symbol("s", positive=True)  # θ → sθ: change of parameter units
    # [θ]: d, σ ~ θ (singular values of θ-differences); η ~ θ² (η∇L is a displacement, ∇L ~ 1/θ);
    # h, ω ~ 1/θ²; G, G_eff, N ~ 1/θ; S ~ 1/θ²; W, t dimensionless.
    scale = {
        d: s * d,
        _sigma: s * _sigma,
        eta: s**2 * eta,
        h: h / s**2,
        omega: omega / s**2,
        G: G / s,
        G_eff: G_eff / s,
        N_mode: N_mode / s,
        S_mode: S_mode / s**2,
    }
    term1 = -eta * (h + omega) * d
    term2 = eta * W * G**2 / d
    sigma_from_d = sp.sqrt(eta) * d
    return Derivation(
        name="signal_flow.dimensions",
        statement=sp.Eq(sp.Symbol(r"\dot{d}\big|_{\theta \to s\theta}"), s * term1 + term2 / s),
        source="[R] dimensional analysis of (F) and Eq. (38)",
        steps=(
            Step("(F) under θ → sθ", FLOW_RHS.subs(scale, simultaneous=True) - (s * term1 + term2 / s)),
            Step("dissipation term of (F) scales as s", term1.subs(scale, simultaneous=True) - s * term1),
            Step("injection term of (F) scales as 1/s", term2.subs(scale, simultaneous=True) - term2 / s),
            Step("Eq. (38) is homogeneous (weight s²)", EQ38_RHS.subs(scale, simultaneous=True) - s**2 * EQ38_RHS),
            Step(
                "σ = √η·d turns (F) into FLOW_RHS_SIGMA",
                sp.sqrt(eta) * FLOW_RHS.subs(d, _sigma / sp.sqrt(eta)) - FLOW_RHS_SIGMA,
            ),
            Step(
                "d(σ²)/dt from FLOW_RHS_SIGMA is homogeneous",
                2 * _sigma * FLOW_RHS_SIGMA - (2 * _sigma * FLOW_RHS_SIGMA).subs(scale, simultaneous=True) / s**2,
            ),
            Step(
                "… and equals Eq. (38) with S + 2G_eff N = 2G²",
                sp.expand(2 * _sigma * FLOW_RHS_SIGMA)
                - EQ38_RHS.subs({d: _sigma, S_mode: 2 * G**2 - 2 * G_eff * N_mode}),
            ),
            Step(
                "σ = √η·d is a θ-length when d is dimensionless",
                sigma_from_d.subs({eta: s**2 * eta}) - s * sigma_from_d,
            ),
        ),
        assumptions="units: θ ~ [θ], L dimensionless, η ~ [θ]², t counts steps",
        notes=(
            "with d = σ (as every author script does, spec §1.2) the two terms of (F) have different units; "
            "(F) is consistent for d = σ/√η, and then Eq. (38) is its squared form with S + 2G_eff N = 2G²"
        ),
    )
