"""The JL (Gaussian-sketch) error of a spectral gap ratio, and the curve to test it against (§0.1 errata 5).

For a Gaussian sketch of dimension d, log(R̂/R) ≈ N(0, 1/d) [R], so to first order
E|R̂/R − 1| ≈ E|Z|/√d = √(2/(πd)), Z ~ N(0, 1): 8.0 % at d = 100, 5.6 % at d = 200. The author's "≤ 5.7 %" is
one draw at d = 100 (40 repeats give 8.1 % ± 2.8 %). Registry quantity ``jl_gap_error``: the curve (default) and
the quoted fixed threshold.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.registry import register

__all__ = ["JL_GAP_ERROR", "SKETCH_DIM", "jl_gap_error_curve", "jl_gap_error_quoted"]

SKETCH_DIM = sp.Symbol("d_sketch", positive=True)

#: E|R̂/R − 1| ≈ √(2/(πd)) (dimensionless, first order in 1/√d) [R].
JL_GAP_ERROR: sp.Expr = sp.sqrt(2 / (sp.pi * SKETCH_DIM))


@register(
    "jl_gap_error",
    "curve",
    source="[R] theory reference §0.1 errata 5: log(R̂/R) ≈ N(0, 1/d) ⇒ E|R̂/R − 1| ≈ √(2/(πd))",
    version="errata 2026-12",
    default=True,
)
def jl_gap_error_curve(d_sketch: float) -> float:
    """√(2/(πd)): the expected relative error of a gap ratio under a Gaussian sketch of dimension d.

    Default because it is what a Gaussian sketch gives at every d (derivation ``jl.gap_error``); test a measured
    error against this curve (with its spread), never against a single draw.
    """
    dv = np.asarray(d_sketch, dtype=np.float64)
    if np.any(dv <= 0):
        raise ValueError(f"sketch dimension must be > 0, got {d_sketch!r}")
    out = np.sqrt(2 / (math.pi * dv))
    return float(out) if out.ndim == 0 else out


@register(
    "jl_gap_error",
    "quoted",
    source="[C] theory reference §4.3 P3 / §6.17: 'gap error ≤ 5.7 % at d = 10W' (one run at d = 100)",
    version="thesis P3",
)
def jl_gap_error_quoted(d_sketch: float) -> float:
    """0.057 whatever d: the quoted threshold, one lucky draw at d = 100 (20 % of repeats reach it)."""
    return 0.057 + 0.0 * float(d_sketch)


@derivation("jl.gap_error")
@cache
def _gap_error() -> Derivation:
    z = sp.Symbol("z", real=True)
    x = sp.Symbol("x", real=True)
    density = sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)
    mean_abs = 2 * sp.integrate(z * density, (z, 0, sp.oo))
    return Derivation(
        name="jl.gap_error",
        statement=sp.Eq(sp.Symbol(r"E|\hat R/R - 1|"), JL_GAP_ERROR),
        source="[R] theory reference §0.1 errata 5",
        steps=(
            Step("E|Z| = √(2/π) for Z ~ N(0, 1)", lhs=mean_abs, rhs=sp.sqrt(2 / sp.pi)),
            Step("R̂/R − 1 = e^x − 1 = x + O(x²), x = log(R̂/R)",
                 lhs=sp.series(sp.exp(x) - 1, x, 0, 2).removeO(), rhs=x),
            Step("x ~ N(0, 1/d) ⇒ E|x| = E|Z|/√d = √(2/(πd))",
                 lhs=mean_abs / sp.sqrt(SKETCH_DIM), rhs=JL_GAP_ERROR),
            Step("the normalised density integrates to 1", lhs=sp.integrate(density, (z, -sp.oo, sp.oo)), rhs=1),
        ),
        assumptions="Gaussian sketch; log(R̂/R) ≈ N(0, 1/d) (first order in 1/√d)",
        notes="8.0 % at d = 100, 5.6 % at d = 200; the author's 5.7 % at d = 100 is one draw",
    )
