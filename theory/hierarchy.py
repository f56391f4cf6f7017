"""The inverted hierarchy (Prop 5.1 [C]): flatter directions carry larger steady-state signal, and k* follows.

From the per-mode flow ḋ_j = −η(h_j+ω)d_j + ηW G_j²/d_j (``theory.signal_flow``, (F)) the steady state is

    d_j^ss = |G_j|·√(W/(h_j+ω))                          (σ units; h_j + ω > 0)        [C Prop 5.1; R with ω]

(``theory.signal_flow.FIXED_POINT``, not re-derived here), so lower curvature h_j means *larger* d_j. Inverting
the draft's ω-free form gives the curvature estimate h_j ≈ W|G_j|²/d_j² [C]. With the modes ordered by decreasing
d^ss, the ratio d_j/d_{j+1} at steady state is (|G_j|/|G_{j+1}|)·√((h_{j+1}+ω)/(h_j+ω)) (W cancels), hence [R]

    k* ≈ argmax_j (|G_j|/|G_{j+1}|)·√((h_{j+1}+ω)/(h_j+ω))                                  ``kstar_from_curvatures``

For equal |G_j| and ω = 0 this is where h_{j+1}/h_j is largest, the draft's "the spectral gap in the trajectory
occurs where h_j/h_{j+1} is maximised" [C] (read in increasing-curvature order). Units: h, ω per unit η (rates
η(h+ω) per optimizer step); G a gradient projection; W the window length. Only numpy and sympy are imported.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory import kstar as _kstar
from theory.derivation import Derivation, Step, derivation
from theory.signal_flow import FIXED_POINT, FLOW_RHS
from theory.symbols import G1, G2, G, W, d, eta, h, h1, h2, omega

__all__ = [
    "STEADY_STATE_RATIO",
    "curvature_from_steady_state",
    "kstar_from_curvatures",
    "steady_state_d",
    "steady_state_ratios",
]

#: d_1^ss/d_2^ss = (|G_1|/|G_2|)·√((h_2+ω)/(h_1+ω)) for two modes of the same window [R from Prop 5.1].
STEADY_STATE_RATIO: sp.Expr = sp.Abs(G1) / sp.Abs(G2) * sp.sqrt((h2 + omega) / (h1 + omega))


def _damping(h_: np.ndarray, omega_: float) -> np.ndarray:
    damp = np.asarray(h_, dtype=np.float64) + omega_
    if not np.all(damp > 0):
        raise ValueError(f"the steady state needs h_j + ω > 0 for every mode, got min {float(np.min(damp))!r}")
    return damp


def steady_state_d(h: np.ndarray, G: np.ndarray, omega: float = 0.0, W: int = 1) -> np.ndarray:
    """d_j^ss = |G_j|·√(W/(h_j+ω)), elementwise (σ units; [C] Prop 5.1 with ω, the fixed point of (F)).

    Raises ``ValueError`` if some h_j + ω ≤ 0 (no stable steady state: the mode grows or drifts).
    """
    return np.abs(np.asarray(G, dtype=np.float64)) * np.sqrt(W / _damping(h, omega))


def curvature_from_steady_state(d: np.ndarray, G: np.ndarray, W: int, omega: float = 0.0) -> np.ndarray:
    """h_j = W|G_j|²/d_j² − ω, the curvature a steady state implies ([C] draft form h_j ≈ W|G_j|²/d_j² at ω = 0).

    The draft's ω-free form returns h_j + ω: under weight decay it over-states the curvature by ω.
    """
    d_ = np.asarray(d, dtype=np.float64)
    return W * np.asarray(G, dtype=np.float64) ** 2 / d_**2 - omega


def steady_state_ratios(h: np.ndarray, G: np.ndarray, omega: float = 0.0) -> np.ndarray:
    """d_j^ss/d_{j+1}^ss with the modes sorted by decreasing d^ss (length n−1; ≥ 1; [R]).

    Each ratio is (|G_j|/|G_{j+1}|)·√((h_{j+1}+ω)/(h_j+ω)) in the sorted order; conventions for zero |G| (+inf at
    a drop to 0, 1 between zeros) are those of ``theory.kstar.sigma_ratios``.
    """
    return _kstar.sigma_ratios(np.sort(steady_state_d(h, G, omega))[::-1])


def kstar_from_curvatures(h: np.ndarray, G: np.ndarray, omega: float = 0.0) -> int:
    """k* ≈ argmax_j (|G_j|/|G_{j+1}|)·√((h_{j+1}+ω)/(h_j+ω)), 1-indexed, modes sorted by decreasing d^ss ([R] §3.2).

    Exactly the thesis's k* = argmax σ_j/σ_{j+1} (Def 3.1, ``theory.kstar.argmax``) applied to the steady-state
    signal strengths d^ss (W cancels in the ratios); the input order of the modes does not matter. Ties go to
    the first index. Needs ≥ 2 modes and h_j + ω > 0.
    """
    return int(_kstar.argmax(np.sort(steady_state_d(h, G, omega))[::-1]))


# ----- derivation ------------------------------------------------------------------------------------------

_q = sp.Symbol("q", positive=True)  # h + ω > 0: checks substitute h = q − ω (as theory.signal_flow does)
_q1, _q2 = sp.symbols("q_1 q_2", positive=True)


@derivation("hierarchy.inverted")
@cache
def inverted() -> Derivation:
    """Steady state ∝ |G|/√(h+ω), the draft's curvature estimate, and the ratio that places k*."""
    d_star = sp.Symbol("d^{ss}", positive=True)
    pos = {h: _q - omega}
    ratio = FIXED_POINT.subs({G: G1, h: h1}) / FIXED_POINT.subs({G: G2, h: h2})
    pos2 = {h1: _q1 - omega, h2: _q2 - omega}
    return Derivation(
        name="hierarchy.inverted",
        statement=sp.Eq(d_star, FIXED_POINT),
        source="[C] Prop 5.1 (steady state, draft form h ≈ W|G|²/d²); [R] the k* ratio; flow from theory.signal_flow",
        steps=(
            Step(
                "d^ss = signal_flow.FIXED_POINT is a zero of (F): dissipation η(h+ω)d^ss = injection ηW G²/d^ss",
                lhs=(eta * (h + omega) * FIXED_POINT).subs(pos),
                rhs=(FLOW_RHS + eta * (h + omega) * d).subs(d, FIXED_POINT).subs(pos),
            ),
            Step(
                "∂d^ss/∂h = −d^ss/(2(h+ω)) < 0: lower curvature, larger signal",
                lhs=sp.diff(FIXED_POINT, h).subs(pos),
                rhs=(-FIXED_POINT / (2 * (h + omega))).subs(pos),
            ),
            Step("draft form: W G²/d^ss² = h + ω (= h at ω = 0)",
                 lhs=(W * G**2 / FIXED_POINT**2).subs(pos), rhs=(h + omega).subs(pos)),
            Step(
                "d_1^ss/d_2^ss = (|G_1|/|G_2|)·√((h_2+ω)/(h_1+ω)), W cancels",
                lhs=ratio.subs(pos2), rhs=STEADY_STATE_RATIO.subs(pos2),
            ),
            Step(
                "equal |G|, ω = 0: the ratio is √(h_2/h_1)",
                lhs=STEADY_STATE_RATIO.subs({G2: G1, omega: 0}).subs({h1: _q1, h2: _q2}), rhs=sp.sqrt(_q2 / _q1),
            ),
        ),
        assumptions="h_j + ω > 0 (checked with h = q − ω, q > 0); G_j ≠ 0; steady state reached within the window",
        notes="S_j, N_j, G^eff_j of the thesis are undefined in the sources ([S]); here G^eff_j = G_j",
    )
