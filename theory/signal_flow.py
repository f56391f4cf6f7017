"""The per-mode signal-strength flow (F) and its Eq. (38) variant, with their checked consequences.

Corrected default (theory reference §0.1 errata 2, registry quantity ``mode_flow``): with d = σ the unit-consistent
flow is σ̇ = −η(h+ω)σ + η²W G²/σ (``FLOW_RHS_CORRECTED``, fixed point ``FIXED_POINT_CORRECTED`` = |G|·√(ηW/(h+ω));
derivation ``signal_flow.rescaling``); the published (F) below is kept as the ``quoted`` variant (``FLOW_VARIANTS``).

Canonical flow, one mode j (theory reference §3.3) [C: draft Thm 5.4 docstring "dd_j/dt ≈ −η h_j d_j + ηW|G_j|²/d_j",
with the weight decay ω added as in Thm 14.2]::

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

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation, sign_residual
from theory.registry import register
from theory.symbols import G, G_eff, N_mode, S_mode, W, d, d0, eta, h, omega, t

__all__ = [
    "ARGS",
    "EQ38_ARGS",
    "EQ38_CONSISTENCY",
    "EQ38_INJECTION_RATIO",
    "EQ38_RHS",
    "FIXED_POINT",
    "FIXED_POINT_CORRECTED",
    "FLOW_ARGS",
    "FLOW_RHS",
    "FLOW_RHS_CORRECTED",
    "FLOW_RHS_SIGMA",
    "FLOW_SIGMA_ARGS",
    "FLOW_VARIANTS",
    "LINEAR_RATE",
    "SIGMA",
    "SQUARED_FLOW_RHS",
    "SQUARED_FLOW_RHS_CORRECTED",
    "closed_form_d_squared",
    "mode_flow_corrected",
    "mode_flow_quoted",
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

#: The condition under which Eq. (38) is the squared form of (F) [R; theory reference §3.3].
EQ38_CONSISTENCY: sp.Eq = sp.Eq(eta**2 * W * (S_mode + 2 * G_eff * N_mode) / 2, eta * W * G**2)

#: Eq. (38)'s injection over (F)'s: η(S + 2G_eff N)/(2G²); = η/2 when S + 2G_eff N is read as G² [R].
EQ38_INJECTION_RATIO: sp.Expr = eta * (S_mode + 2 * G_eff * N_mode) / (2 * G**2)

_sigma = sp.Symbol("sigma", positive=True)  # a singular value of X when d is read as σ/√η
SIGMA = _sigma

#: (F) rewritten for σ = √η·d: σ̇ = −η(h+ω)σ + η²W G²/σ — the θ-unit-homogeneous reading of (F) [R].
FLOW_RHS_SIGMA: sp.Expr = -eta * (h + omega) * _sigma + eta**2 * W * G**2 / _sigma
FLOW_SIGMA_ARGS: tuple[sp.Symbol, ...] = (_sigma, h, G, eta, omega, W)

#: Corrected flow (errata 2) [R]: σ̇ = −η(h+ω)σ + η²W G²/σ with d = σ (σ units); unit-invariant under θ → aθ,
#: L → bL, η → a²η/b (derivation ``signal_flow.rescaling``). Same arguments as ``FLOW_RHS`` (``FLOW_ARGS``).
FLOW_RHS_CORRECTED: sp.Expr = FLOW_RHS_SIGMA.subs(_sigma, d)  # the σ-reading of (F), with d = σ

#: d(σ²)/dt = −2η(h+ω)σ² + 2η²W G²: Eq. (38) with S + 2G_eff N = 2G² (errata 2) [R].
SQUARED_FLOW_RHS_CORRECTED: sp.Expr = -2 * eta * (h + omega) * d**2 + 2 * eta**2 * W * G**2

#: σ* = |G|·√(ηW/(h+ω)), the fixed point of the corrected flow (σ units; errata 2) [R].
FIXED_POINT_CORRECTED: sp.Expr = sp.Abs(G) * sp.sqrt(eta * W / (h + omega))

#: variant name → (flow, squared flow, fixed point); "corrected" is the default (registry quantity ``mode_flow``).
FLOW_VARIANTS: dict[str, tuple[sp.Expr, sp.Expr, sp.Expr]] = {
    "corrected": (FLOW_RHS_CORRECTED, SQUARED_FLOW_RHS_CORRECTED, FIXED_POINT_CORRECTED),
    "quoted": (FLOW_RHS, SQUARED_FLOW_RHS, FIXED_POINT),
}


@register(
    "mode_flow",
    "corrected",
    source="[R] theory reference §0.1 errata 2: σ̇ = −η(h+ω)σ + η²W G²/σ (unit-consistent with d = σ)",
    version="errata 2026-12",
    default=True,
)
def mode_flow_corrected(sigma: float, h_j: float, G_j: float, eta_value: float, omega_value: float,
                        W_value: float) -> float:
    """σ̇ = −η(h+ω)σ + η²W G²/σ (σ units per optimizer step), fixed point σ* = |G|·√(ηW/(h+ω)).

    Default because it is the only form of (F) invariant under a change of parameter and loss units (θ → aθ,
    L → bL, η → a²η/b leave the GD trajectory unchanged; derivation ``signal_flow.rescaling``), and its squared
    form is Eq. (38) with S + 2G_eff N = 2G². The quoted "factor η/2 between normalisations" was this unit error.
    """
    s = np.asarray(sigma, dtype=np.float64)
    return -eta_value * (h_j + omega_value) * s + eta_value**2 * W_value * np.square(G_j) / s


@register(
    "mode_flow",
    "quoted",
    source="[C] draft Thm 5.4 docstring ḋ = −η h d + ηW|G|²/d, with ω as in Thm 14.2 (theory reference §3.3)",
    version="draft Thm 5.4 / Thm 14.2",
)
def mode_flow_quoted(sigma: float, h_j: float, G_j: float, eta_value: float, omega_value: float,
                     W_value: float) -> float:
    """ḋ = −η(h+ω)d + ηW G²/d with d = σ, as quoted; fixed point |G|·√(W/(h+ω)) (independent of η).

    Kept as a variant to confront with the runs: with d = σ its two terms scale differently under a change of
    units (errata 2), so its fixed point and rates depend on the units of θ and L.
    """
    s = np.asarray(sigma, dtype=np.float64)
    return -eta_value * (h_j + omega_value) * s + eta_value * W_value * np.square(G_j) / s


# h + ω > 0 is the hypothesis under which d* exists and is stable; checks that need it substitute h = q − ω with
# q > 0, because sympy cannot simplify √(W/(h+ω))·(h+ω) for a merely real h.
_q = sp.Symbol("q", positive=True)


def _positive_damping(expr: sp.Expr) -> sp.Expr:
    return expr.subs(h, _q - omega)


def closed_form_d_squared(d_init: sp.Expr = d0, variant: str = "corrected") -> sp.Expr:
    """d²(t) = d*² + (d0² − d*²)·e^{−2η(h+ω)t}, the solution of the squared flow with d(0) = d0 [R].

    σ² (λ) units; t in optimizer steps. ``d_init`` may be a symbol or a number. d*² = ηW G²/(h+ω) for
    ``variant="corrected"`` (errata 2, the default), W G²/(h+ω) for ``"quoted"`` (F).
    """
    if variant not in FLOW_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(FLOW_VARIANTS)}, got {variant!r}")
    d_star_sq = FLOW_VARIANTS[variant][2] ** 2  # Abs(G)**2 = G**2 for real G
    return d_star_sq + (d_init**2 - d_star_sq) * sp.exp(LINEAR_RATE * t)


@derivation("signal_flow.squared_form")
@cache
def _squared_form() -> Derivation:
    D = sp.Function("d")(t)
    chain_c = sp.diff(D**2, t).subs(sp.Derivative(D, t), FLOW_RHS_CORRECTED.subs(d, D))
    chain_q = sp.diff(D**2, t).subs(sp.Derivative(D, t), FLOW_RHS.subs(d, D))
    lhs = sp.Derivative(sp.Function("d")(t) ** 2, t)
    return Derivation(
        name="signal_flow.squared_form",
        statement=sp.Eq(lhs, SQUARED_FLOW_RHS_CORRECTED),
        source="[R] chain rule on the corrected flow (errata 2) and on (F) [C draft Thm 5.4 / Thm 14.2]",
        steps=(
            Step("corrected: d(σ²)/dt = 2σ·σ̇", lhs=chain_c, rhs=SQUARED_FLOW_RHS_CORRECTED.subs(d, D)),
            Step(
                "… = Eq. (38) with S + 2G_eff N = 2G²",
                lhs=sp.expand(2 * d * FLOW_RHS_CORRECTED),
                rhs=EQ38_RHS.subs(S_mode, 2 * G**2 - 2 * G_eff * N_mode),
            ),
            Step("quoted (F): d(d²)/dt = 2d·ḋ", lhs=chain_q, rhs=SQUARED_FLOW_RHS.subs(d, D)),
        ),
        assumptions="d = σ > 0 (a singular value); G real",
    )


@derivation("signal_flow.fixed_point")
@cache
def _fixed_point() -> Derivation:
    s_star = sp.Symbol("sigma^{*}", positive=True)
    fpc, fpq = FIXED_POINT_CORRECTED, FIXED_POINT
    return Derivation(
        name="signal_flow.fixed_point",
        statement=sp.Eq(s_star, fpc),
        source=("[R] theory reference §0.1 errata 2 (corrected); "
                "[C] Prop 5.1 steady state d_j ∝ |G_j|/√(h_j+ω) (quoted)"),
        steps=(
            Step(
                "corrected: at σ* dissipation η(h+ω)σ* equals injection η²W G²/σ*",
                lhs=_positive_damping(eta * (h + omega) * fpc),
                rhs=_positive_damping(eta**2 * W * G**2 / fpc),
            ),
            Step(
                "squared form (Eq. (38)): 2η(h+ω)σ*² = 2η²W G²",
                lhs=_positive_damping(2 * eta * (h + omega) * fpc**2),
                rhs=2 * eta**2 * W * G**2,
            ),
            Step("σ*² = ηW G²/(h+ω)", lhs=fpc**2, rhs=eta * W * G**2 / (h + omega)),
            Step(
                "quoted (F): d* = |G|√(W/(h+ω)) balances ηW G²/d instead",
                lhs=_positive_damping(eta * (h + omega) * fpq),
                rhs=_positive_damping(eta * W * G**2 / fpq),
            ),
            Step("σ* = √η·d*: the quoted fixed point misses a factor √η", lhs=fpc, rhs=sp.sqrt(eta) * fpq),
        ),
        assumptions="h + ω > 0 (checked with h = q − ω, q > 0); G ≠ 0 for σ* > 0",
    )


@derivation("signal_flow.stability")
@cache
def _stability() -> Derivation:
    rate_c = sp.diff(FLOW_RHS_CORRECTED, d).subs(d, FIXED_POINT_CORRECTED)
    rate_q = sp.diff(FLOW_RHS, d).subs(d, FIXED_POINT)
    D = sp.Symbol("D", positive=True)  # D = σ², the variable of the squared form
    rate_d2 = sp.diff(SQUARED_FLOW_RHS_CORRECTED.subs(d, sp.sqrt(D)), D)
    lam = sp.Symbol("lambda_lin")
    return Derivation(
        name="signal_flow.stability",
        statement=sp.Eq(lam, LINEAR_RATE),
        source="[R] linearisation of the corrected flow and of (F) at their fixed points",
        steps=(
            Step("corrected: ∂σ̇/∂σ at σ* = −2η(h+ω)",
                 lhs=_positive_damping(rate_c),
                 rhs=_positive_damping(LINEAR_RATE)),
            Step("quoted (F): ∂ḋ/∂d at d* = −2η(h+ω) too",
                 lhs=_positive_damping(rate_q),
                 rhs=_positive_damping(LINEAR_RATE)),
            Step("∂(d(σ²)/dt)/∂(σ²) = −2η(h+ω)", lhs=rate_d2, rhs=LINEAR_RATE),
            Step(
                "the rate is negative when h + ω > 0",
                relation=sp.StrictLessThan(_positive_damping(LINEAR_RATE), 0, evaluate=False),
            ),
        ),
        assumptions="h + ω > 0, η > 0",
        notes="the discrete-time map additionally needs η(h+ω) < 2 (per-mode edge of stability, theory reference §3.3)",
    )


@derivation("signal_flow.closed_form")
@cache
def _closed_form() -> Derivation:
    sol = closed_form_d_squared(d0)  # corrected (default)
    y = sp.Function("y")  # y = σ²
    ode = sp.Eq(y(t).diff(t), LINEAR_RATE * y(t) + 2 * eta**2 * W * G**2)
    dsolved = sp.dsolve(ode, y(t), ics={y(0): d0**2}).rhs
    D = sp.Symbol("D", positive=True)
    squared_in_D = SQUARED_FLOW_RHS_CORRECTED.subs(d, sp.sqrt(D))
    return Derivation(
        name="signal_flow.closed_form",
        statement=sp.Eq(sp.Function("sigma")(t) ** 2, sol),
        source="[R] linear ODE in σ² (corrected flow, errata 2; the quoted one: ηW for η²W)",
        steps=(
            Step("the squared form is linear in D = σ²", lhs=squared_in_D, rhs=LINEAR_RATE * D + 2 * eta**2 * W * G**2),
            Step("direct substitution: dy/dt = RHS(y)", lhs=sp.diff(sol, t), rhs=squared_in_D.subs(D, sol)),
            Step("sympy.dsolve with y(0) = σ₀² gives the same solution", lhs=dsolved, rhs=sol),
            Step("initial condition y(0) = σ₀²", lhs=sol.subs(t, 0), rhs=d0**2),
            Step(
                "y(t) → σ*² as t → ∞ (h + ω > 0)",
                lhs=sp.limit(_positive_damping(sol), t, sp.oo), rhs=_positive_damping(FIXED_POINT_CORRECTED**2),
            ),
            Step(
                "quoted: the same form with d*² = W G²/(h+ω) solves the squared (F)",
                lhs=sp.diff(closed_form_d_squared(d0, "quoted"), t),
                rhs=SQUARED_FLOW_RHS.subs(d, sp.sqrt(closed_form_d_squared(d0, "quoted"))),
            ),
        ),
        assumptions="t ≥ 0 in optimizer steps; the limit needs h + ω > 0",
    )


@derivation("signal_flow.rescaling")
@cache
def _rescaling() -> Derivation:
    a, b = sp.symbols("a b", positive=True)  # θ → aθ, L → bL
    # GD is unchanged under θ → aθ, L → bL, η → a²η/b; then σ (θ-differences) → aσ, h, ω → (b/a²)·, G → (b/a)G.
    scale = {d: a * d, eta: a**2 * eta / b, h: b * h / a**2, omega: b * omega / a**2, G: b * G / a}
    step_c = FLOW_RHS_CORRECTED.subs(scale, simultaneous=True)
    inj_q = (eta * W * G**2 / d).subs(scale, simultaneous=True)
    x0, gr, lr = sp.symbols("x_0 g_L eta_0", real=True)  # one GD step x → x − η∇L, in units
    return Derivation(
        name="signal_flow.rescaling",
        statement=sp.Eq(sp.Symbol(r"\dot\sigma\big|_{\theta\to a\theta,\,L\to bL,\,\eta\to a^2\eta/b}"),
                        a * FLOW_RHS_CORRECTED),
        source="[R] theory reference §0.1 errata 2: unit check of (F)",
        steps=(
            Step(
                "a GD step is unchanged: aθ − (a²η/b)·(b/a)∇L = a(θ − η∇L)",
                lhs=a * x0 - (a**2 * lr / b) * (b * gr / a),
                rhs=a * (x0 - lr * gr),
            ),
            Step("corrected flow scales like σ (weight a): unit-consistent", lhs=step_c, rhs=a * FLOW_RHS_CORRECTED),
            Step(
                "quoted (F): dissipation scales like σ (weight a) …",
                lhs=(-eta * (h + omega) * d).subs(scale, simultaneous=True),
                rhs=a * (-eta * (h + omega) * d),
            ),
            Step("… but its injection ηW G²/σ scales by b/a: inconsistent unless b = a²", lhs=inj_q,
                 rhs=(b / a) * eta * W * G**2 / d),
            Step(
                "corrected fixed point scales like σ",
                lhs=_positive_damping(FIXED_POINT_CORRECTED).subs(
                    {G: b * G / a, eta: a**2 * eta / b, _q: b * _q / a**2}, simultaneous=True),
                rhs=a * _positive_damping(FIXED_POINT_CORRECTED),
            ),
            Step(
                "quoted fixed point scales by √b, not a",
                lhs=_positive_damping(FIXED_POINT).subs({G: b * G / a, _q: b * _q / a**2}, simultaneous=True),
                rhs=sp.sqrt(b) * _positive_damping(FIXED_POINT),
            ),
        ),
        assumptions="GD: θ_{s+1} = θ_s − η(∇L + ωθ); h + ω > 0 for the fixed points (h = q − ω, q > 0)",
        notes="the 'factor η/2 between normalisations' of §3.3 is this unit error, not a convention",
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
            Step("EQ38_RHS − SQUARED_FLOW_RHS = 2·(lhs − rhs)", lhs=EQ38_RHS - SQUARED_FLOW_RHS, rhs=2 * (lhs - rhs)),
            Step(
                "condition ⇔ S + 2G_eff N = 2G²/η",
                lhs=sp.solve(EQ38_CONSISTENCY, S_mode)[0], rhs=(2 * G**2 / eta - 2 * G_eff * N_mode),
            ),
            Step("injection ratio Eq.(38)/(F)",
                 lhs=eta**2 * W * injection / (2 * eta * W * G**2),
                 rhs=EQ38_INJECTION_RATIO),
            Step("reading S + 2G_eff N as G² the ratio is η/2", lhs=EQ38_INJECTION_RATIO.subs(read_as_G2), rhs=eta / 2),
        ),
        assumptions="G ≠ 0",
        notes=("the sources' two normalisations differ by this factor η/2; "
               "(F) is the canonical flow (theory reference §3.3)"),
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
            Step("(F) under θ → sθ", lhs=FLOW_RHS.subs(scale, simultaneous=True), rhs=(s * term1 + term2 / s)),
            Step("dissipation term of (F) scales as s", lhs=term1.subs(scale, simultaneous=True), rhs=s * term1),
            Step("injection term of (F) scales as 1/s", lhs=term2.subs(scale, simultaneous=True), rhs=term2 / s),
            Step("Eq. (38) is homogeneous (weight s²)",
                 lhs=EQ38_RHS.subs(scale, simultaneous=True),
                 rhs=s**2 * EQ38_RHS),
            Step(
                "σ = √η·d turns (F) into FLOW_RHS_SIGMA",
                lhs=sp.sqrt(eta) * FLOW_RHS.subs(d, _sigma / sp.sqrt(eta)), rhs=FLOW_RHS_SIGMA,
            ),
            Step(
                "d(σ²)/dt from FLOW_RHS_SIGMA is homogeneous",
                lhs=2 * _sigma * FLOW_RHS_SIGMA,
                rhs=(2 * _sigma * FLOW_RHS_SIGMA).subs(scale, simultaneous=True) / s**2,
            ),
            Step(
                "… and equals Eq. (38) with S + 2G_eff N = 2G²",
                lhs=sp.expand(2 * _sigma * FLOW_RHS_SIGMA),
                rhs=EQ38_RHS.subs({d: _sigma, S_mode: 2 * G**2 - 2 * G_eff * N_mode}),
            ),
            Step(
                "σ = √η·d is a θ-length when d is dimensionless",
                lhs=sigma_from_d.subs({eta: s**2 * eta}), rhs=s * sigma_from_d,
            ),
        ),
        assumptions="units: θ ~ [θ], L dimensionless, η ~ [θ]², t counts steps",
        notes=(
            "with d = σ (as every author script does, theory reference §1.2) the two terms of (F) have different "
            "units; "
            "(F) is consistent for d = σ/√η, and then Eq. (38) is its squared form with S + 2G_eff N = 2G²"
        ),
    )
