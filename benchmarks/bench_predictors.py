"""Compiled predictor speed: the gap-flow rate over 10⁶ checkpoints.

(a) compiled (``numerics.predictors.predict_gap_rate``, lambdified from ``theory.gap_flow``) vs sympy's own
evaluation of the same expression (``subs`` + ``evalf``, timed on a sample and scaled per checkpoint), and
(b) vs a hand-written numpy twin of Thm 14.2 (the ratio should be ≈ 1: compilation costs nothing at run time).
The twin also checks the values agree.
"""

from __future__ import annotations

import time

import numpy as np

from numerics.compile import compile_expr
from numerics.predictors import predict_gap_rate
from theory import gap_flow

N = 10**6
N_SYMPY = 200


def _twin(d1, d2, h1, h2, G1, G2, eta, omega, W, corrected: bool = False):
    """Thm 14.2 as quoted (Term 3 ηW) or corrected (Term 3 η²W, the predictors' default)."""
    dbar, g, hbar = (d1 + d2) / 2, d1 - d2, (h1 + h2) / 2
    drive = (eta**2 if corrected else eta) * W * (G1**2 / d1 - G2**2 / d2)
    return -eta * (h1 - h2) * dbar - eta * (hbar + omega) * g + drive


def _best(fn, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    rng = np.random.default_rng(0)
    d = np.sort(rng.uniform(0.1, 10.0, (N, 4)), axis=1)[:, ::-1].copy()
    h, G = rng.uniform(0.0, 2.0, (N, 4)), rng.normal(0.0, 1.0, (N, 4))
    eta, omega, W = 1e-3, 1.0, 10
    predict_gap_rate(d[:10], h[:10], G[:10], 1, eta, omega, W)  # compile once (cached)
    t_compiled = _best(lambda: predict_gap_rate(d, h, G, 1, eta, omega, W))
    args = (d[:, 0], d[:, 1], h[:, 0], h[:, 1], G[:, 0], G[:, 1], eta, omega, W)
    t_twin = _best(lambda: _twin(*args))
    rhs = compile_expr(gap_flow.GAP_FLOW_RHS, gap_flow.GAP_FLOW_ARGS, "numpy")
    t_rhs = _best(lambda: rhs(*args))
    # each variant against its own twin (the default is the corrected one; the compiled RHS above is the quoted one)
    err = 0.0
    for variant in ("corrected", "quoted"):
        rate = predict_gap_rate(d, h, G, 1, eta, omega, W, variant=variant)["rate"]
        twin = _twin(*args, corrected=variant == "corrected")
        err = max(err, float(np.max(np.abs(rate - twin) / (1 + np.abs(rate)))))

    expr = gap_flow.GAP_FLOW_RHS
    t0 = time.perf_counter()
    for i in range(N_SYMPY):
        vals = dict(zip(gap_flow.GAP_FLOW_ARGS, [a[i] if np.ndim(a) else a for a in args], strict=True))
        float(expr.subs(vals).evalf())
    t_sympy = (time.perf_counter() - t0) / N_SYMPY * N
    print(f"gap-flow rate over {N:.0e} checkpoints: compiled {t_compiled * 1e3:.1f} ms, numpy twin "
          f"{t_twin * 1e3:.1f} ms, sympy subs+evalf ~{t_sympy:.0f} s (from {N_SYMPY} points); max rel diff {err:.1e}")
    print(f"RATIO sympy evaluation / compiled predictor: {t_sympy / t_compiled:.0f}x")
    print(f"RATIO compiled rate expression / hand-written numpy twin: {t_rhs / t_twin:.2f} (target ~1)")
    print(f"RATIO full predictor (checks + three terms + rate) / numpy twin of the rate: {t_compiled / t_twin:.2f}")


if __name__ == "__main__":
    main()
