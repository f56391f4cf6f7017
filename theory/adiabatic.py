"""The adiabatic parameter A: its two published forms, the η unit convention, the regime map, and A ↔ α.

Two forms [A], registered under quantity ``"adiabatic"`` (theory reference §1.6, §7.9):

* ``deltaG`` (default): A = ‖ΔG‖_F/(η g²) — every listing abstract, v1–v3;
* ``kdot``: A = ‖K̇‖/(η g²) — the v1 paper-body abstract (K the empirical NTK Gram, K̇ its rate of change; the
  "Roberts–Yaida–Hanin differential NTK" formula is lost, [S]).

Units: ΔG in σ² units (Gram eigenvalue units), g = d_{k*} − d_{k*+1} in σ units, η per optimizer step. A is
invariant under X → cX but *not* under a change of the η convention: ηA = ‖ΔG‖_F/g² is the unit-free number, and A
itself carries 1/η. For checkpoint data the update spans Δs optimizer steps, so η must be replaced by
η·Δs (``effective_eta``) [S: the sources never say how the author handles this; theory reference §1.1, §7.2]; that
divides A by Δs.

Regimes [A: A ≪ 1 plateau, A ~ 1 transition, A ≫ 1 forgetting]; the numeric thresholds of ``regime`` (0.1, 10) are
ours [S].

A ↔ α [R, theory reference §3.6, §6.19]: when λ_{k*+1} is the nearest neighbour of λ_{k*}, gap_{k*} = λ_{k*} − λ_{k*+1}
= 2d̄g, and α-DK (C = 1, E = ΔG) gives 1 − α_{k*} = ‖ΔG‖²/(4d̄²g²) = (ηA)²g²/(4d̄²), an algebraic identity.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.registry import register
from theory.symbols import A, Delta_s, Kdot_norm, alpha, d_bar, dG_norm, eta, g

__all__ = [
    "ALPHA_ARGS",
    "ARGS",
    "A_DELTA_G",
    "A_KDOT",
    "ETA_A",
    "ETA_EFFECTIVE",
    "KDOT_ARGS",
    "ONE_MINUS_ALPHA",
    "TIME_BASES",
    "a_delta_g",
    "a_kdot",
    "effective_eta",
    "eta_per_checkpoint",
    "eta_per_step",
    "nearest_neighbour_is_next",
    "regime",
]

#: A = ‖ΔG‖_F/(η g²)  [A] listing abstracts v1–v3 (default form).
A_DELTA_G: sp.Expr = dG_norm / (eta * g**2)

#: A = ‖K̇‖/(η g²)  [A] v1 paper-body abstract.
A_KDOT: sp.Expr = Kdot_norm / (eta * g**2)

#: Argument order of ``A_DELTA_G``; ``KDOT_ARGS`` that of ``A_KDOT``.
ARGS: tuple[sp.Symbol, ...] = (dG_norm, eta, g)
KDOT_ARGS: tuple[sp.Symbol, ...] = (Kdot_norm, eta, g)

#: ηA = ‖ΔG‖_F/g², the unit-free adiabatic number per window shift (theory reference §0.1 errata 4) [R].
ETA_A: sp.Expr = dG_norm / g**2

#: η per checkpoint interval of Δs optimizer steps  [S], theory reference §7.2.
ETA_EFFECTIVE: sp.Expr = eta * Delta_s

#: 1 − α_{k*} = (ηA)²g²/(4d̄²)  [R] (nearest neighbour λ_{k*+1}, α-DK with C = 1, E = ΔG).
ONE_MINUS_ALPHA: sp.Expr = (eta * A) ** 2 * g**2 / (4 * d_bar**2)
ALPHA_ARGS: tuple[sp.Symbol, ...] = (A, eta, g, d_bar)


def _adiabatic(norm: float, eta_value: float, gap: float, what: str) -> float:
    n, e, gv = float(norm), float(eta_value), float(gap)
    if not all(math.isfinite(x) for x in (n, e, gv)):
        raise ValueError(f"A needs finite inputs, got {what}={n!r}, η={e!r}, g={gv!r}")
    if n < 0 or gv < 0:
        raise ValueError(f"{what} and g must be ≥ 0, got {what}={n!r}, g={gv!r}")
    if e <= 0:
        raise ValueError(f"η must be > 0, got {e!r}")
    if gv == 0:
        return 0.0 if n == 0 else math.inf  # a collapsed gap with any change is infinitely non-adiabatic
    return n / (e * gv * gv)


@register(
    "adiabatic",
    "deltaG",
    source="[A] thesis listing abstracts v1–v3: A = ‖ΔG‖_F/(η g²)",
    version="v1-v3 (listing abstracts)",
    default=True,
)
def a_delta_g(delta_G_fro: float, eta_value: float, gap: float) -> float:
    """A = ‖ΔG‖_F/(η g²): ‖ΔG‖_F in σ² units, g in σ units, η per optimizer step (η·Δs per checkpoint).

    Default because every listing abstract (v1, v2, v3) states this form, and because it is computable from the
    update Gram alone (two consecutive windows give ΔG; see ``numerics.stability`` for the ΔG/ΔC choice), whereas
    ‖K̇‖ needs the NTK. g = 0 gives +inf (0 if ‖ΔG‖_F = 0 too).
    """
    return _adiabatic(delta_G_fro, eta_value, gap, "‖ΔG‖_F")


@register(
    "adiabatic",
    "kdot",
    source="[A] thesis v1 paper-body abstract: A = ‖K̇‖/(η g²), K the empirical NTK Gram",
    version="v1 (paper-body abstract)",
)
def a_kdot(kdot_norm: float, eta_value: float, gap: float) -> float:
    """A = ‖K̇‖/(η g²): ‖K̇‖ the norm of the NTK Gram's rate of change, g in σ units, η per optimizer step.

    The abstract's RYH differential-NTK formula for ‖K̇‖ is lost [S]; the caller supplies ‖K̇‖. The norm (operator
    or Frobenius) is unspecified in the source [S].
    """
    return _adiabatic(kdot_norm, eta_value, gap, "‖K̇‖")


def effective_eta(eta_value: float, delta_s: float) -> float:
    """η·Δs: the learning rate to use in A, the gap flow and the Krylov threshold for checkpoint data [S].

    Each checkpoint difference δ_t spans Δs optimizer steps (100 to 500 in the author's runs, theory reference §1.1);
    under a quasi-static approximation it acts like one step with learning rate η·Δs. The sources are silent on this.
    """
    e, ds = float(eta_value), float(delta_s)
    if not (math.isfinite(e) and e > 0):
        raise ValueError(f"η must be finite and > 0, got {e!r}")
    if not (math.isfinite(ds) and ds >= 1):
        raise ValueError(f"Δs (optimizer steps per checkpoint) must be ≥ 1, got {ds!r}")
    return e * ds


@register(
    "adiabatic_time_base",
    "per_checkpoint",
    source="[R] theory reference §0.1 errata 4, §7.2: η → η·Δs when ΔG spans a checkpoint interval (quasi-static)",
    version="errata 2026-12",
    default=True,
)
def eta_per_checkpoint(eta_value: float, delta_s: float) -> float:
    """The η of A when ΔG spans one window shift of Δs optimizer steps: η·Δs (A per checkpoint interval).

    Default because it makes A = ‖ΔG‖_F/(ηΔs g²) the per-step rate of change of G over the per-step η, whatever
    the checkpoint cadence; the per-step reading divides by η alone and so grows with Δs (errata 4: checkpoints
    every Δs = 1, 10, 50 steps give A = 26.9, 0.55, 0.115 under this convention, crossing all three regimes under
    the other). Every verdict on A must name its time base; ηA (``ETA_A``) is free of it.
    """
    return effective_eta(eta_value, delta_s)


@register(
    "adiabatic_time_base",
    "per_step",
    source="[A] A = ‖ΔG‖_F/(ηg²) with η the optimizer's per-step rate, applied to checkpoint data as written",
    version="v1-v3 (listing abstracts)",
)
def eta_per_step(eta_value: float, delta_s: float) -> float:
    """The η of A as the abstracts write it: the per-step learning rate, whatever Δs the data span (Δs unused)."""
    return effective_eta(eta_value, 1)


#: time-base name → the η to put in A, given (η, Δs); registry quantity ``adiabatic_time_base``.
TIME_BASES = {"per_checkpoint": eta_per_checkpoint, "per_step": eta_per_step}


@register(
    "adiabatic_regime",
    "decade",
    source="[A] regimes A ≪ 1 / A ~ 1 / A ≫ 1; [S] the thresholds 0.1 and 10",
    version="v1-v3",
    default=True,
)
def regime(A_value: float, low: float = 0.1, high: float = 10.0) -> str:
    """ "plateau" if A < low, "forgetting" if A > high, else "transition" (thresholds inclusive to "transition").

    The sources give only A ≪ 1 (plateau, stable circuit), A ~ 1 (phase transition) and A ≫ 1 (forgetting) [A];
    one decade either side of 1 is our reading [S]. Because A carries 1/η, the thresholds are only meaningful
    with a stated η convention (per step, or η·Δs per checkpoint: ``effective_eta``).
    """
    a, lo, hi = float(A_value), float(low), float(high)
    if math.isnan(a) or a < 0:
        raise ValueError(f"A must be ≥ 0 (inf allowed), got {a!r}")
    if not (0 < lo < hi):
        raise ValueError(f"thresholds must satisfy 0 < low < high, got low={lo!r}, high={hi!r}")
    if a < lo:
        return "plateau"
    if a > hi:
        return "forgetting"
    return "transition"


def nearest_neighbour_is_next(lam: np.ndarray, k: int) -> bool:
    """True if λ_{k+1} is the nearest neighbour of λ_k (1-indexed k, λ descending), i.e. gap_k = λ_k − λ_{k+1}.

    The condition under which the A ↔ α identity holds (``ONE_MINUS_ALPHA``); it fails when λ_{k−1} is closer.
    """
    lv = np.asarray(lam, dtype=np.float64)
    if lv.ndim != 1 or not 1 <= k <= lv.size - 1:
        raise ValueError(f"need 1 ≤ k ≤ len(λ) − 1 on a 1-D λ, got k={k!r}, shape {lv.shape}")
    below = lv[k - 1] - lv[k]
    return bool(k == 1 or lv[k - 2] - lv[k - 1] >= below)


@derivation("adiabatic.definitions")
@cache
def _definitions() -> Derivation:
    c_scale = sp.Symbol("c", positive=True)
    return Derivation(
        name="adiabatic.definitions",
        statement=sp.Eq(A, A_DELTA_G),
        source="[A] listing abstracts v1–v3 (‖ΔG‖_F) and v1 paper body (‖K̇‖); [R] scaling; [S] η → η·Δs",
        steps=(
            Step(
                "X → cX: ΔG → c²ΔG, g → cg leave A unchanged",
                lhs=A_DELTA_G.subs({dG_norm: c_scale**2 * dG_norm, g: c_scale * g}), rhs=A_DELTA_G,
            ),
            Step("η → η·Δs divides A by Δs", lhs=A_DELTA_G.subs(eta, ETA_EFFECTIVE), rhs=A_DELTA_G / Delta_s),
            Step("ηA = ‖ΔG‖_F/g² (ETA_A): η cancels, ηA is unit-free", lhs=eta * A_DELTA_G, rhs=ETA_A),
            Step("same trajectory, loss ×10 and η ÷10 (errata 4): A ×10 (26.9 → 269)",
                 lhs=A_DELTA_G.subs(eta, eta / 10), rhs=10 * A_DELTA_G),
            Step("… while ηA is unchanged", lhs=(eta * A_DELTA_G).subs(eta, eta / 10), rhs=ETA_A),
            Step("both forms share the structure norm/(η g²)", lhs=A_KDOT.subs(Kdot_norm, dG_norm), rhs=A_DELTA_G),
        ),
        assumptions="η > 0, g > 0",
    )


@derivation("adiabatic.alpha_identity")
@cache
def _alpha_identity() -> Derivation:
    gap_pair = (d_bar + g / 2) ** 2 - (d_bar - g / 2) ** 2  # λ_{k*} − λ_{k*+1}, λ = d²
    alpha_dk = 1 - dG_norm**2 / (2 * d_bar * g) ** 2  # α-DK, C = 1, gap = 2d̄g, max(0, ·) inactive
    dG_from_A = sp.solve(sp.Eq(A_DELTA_G, A), dG_norm)[0]
    return Derivation(
        name="adiabatic.alpha_identity",
        statement=sp.Eq(1 - alpha, ONE_MINUS_ALPHA),
        source="[R] theory reference §3.6, §6.19",
        steps=(
            Step("λ_{k*} − λ_{k*+1} = (d̄+g/2)² − (d̄−g/2)² = 2d̄g", lhs=gap_pair, rhs=2 * d_bar * g),
            Step("1 − α-DK = ‖ΔG‖²/(4d̄²g²)", lhs=1 - alpha_dk, rhs=dG_norm**2 / (4 * d_bar**2 * g**2)),
            Step("A = ‖ΔG‖_F/(ηg²) ⇔ ‖ΔG‖_F = ηAg²", lhs=dG_from_A, rhs=eta * A * g**2),
            Step("substitute: 1 − α = (ηA)²g²/(4d̄²)",
                 lhs=(1 - alpha_dk).subs(dG_norm, dG_from_A),
                 rhs=ONE_MINUS_ALPHA),
        ),
        assumptions=(
            "λ_{k*+1} is the nearest neighbour of λ_{k*} (gap_{k*} = λ_{k*} − λ_{k*+1}); α-DK with C = 1 and "
            "E = ΔG; ‖ΔG‖_F ≤ gap, i.e. ηAg ≤ 2d̄, so the max(0, ·) of α-DK is inactive"
        ),
        notes="A ≪ 1/η·(2d̄/g) ⇒ α_{k*} ≈ 1: the adiabatic and Davis–Kahan stability notions agree",
    )
