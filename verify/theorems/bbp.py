"""The BBP transition (theory reference §6.14, statistical): the top singular value of a rank-one signal plus Gaussian
noise."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from theory import bbp
from verify.theorems.common import SEEDS
from verify.theorems.registry import require, theorem

# ===== §6.14 BBP (statistical) ================================================================================

_BBP_REPLICAS = 4
_BBP_TOL = 2.5  # in units of ν


@st.composite
def _bbp_cases(draw: st.DrawFn) -> tuple[int, int, float, float, int]:
    W = draw(st.integers(4, 16))
    P = draw(st.integers(1000, 6000))
    mult = draw(st.one_of(st.floats(2.0, 10.0), st.floats(0.1, 0.5)))
    return W, P, mult, 10.0 ** draw(st.floats(-1, 1)), draw(SEEDS)


@theorem(
    "bbp.top_singular_value",
    "X = d·u vᵀ + N (N i.i.d. N(0,ν²)): the mean σ₁ of 4 draws is within 2.5ν of ν√P√((1+θ²)(c+θ²))/θ for "
    "d ≥ 2d_crit, and of the bulk edge ν(√P+√W) for d ≤ d_crit/2 (≈ 5.5 and 10 standard deviations)",
    "[R] §3.1, §6.14 (Benaych-Georges–Nadakuditi; theory.bbp)",
    _bbp_cases(),
    statistical=True,
)
def _bbp(case: tuple[int, int, float, float, int]) -> None:
    """Calibration (2000 instances, W 4–16, P 1000–6000): the mean of 4 draws deviates from the prediction by
    0.45ν (std) above the threshold, max 1.6ν; below it the finite-W edge shift is −0.5ν ± 0.23ν. σ units.
    """
    W, P, mult, nu, seed = case
    rng = np.random.default_rng(seed)
    d = mult * bbp.d_crit_textbook(nu, P, W)
    u, v = rng.standard_normal(W), rng.standard_normal(P)
    S = d * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    tops = []
    for _ in range(_BBP_REPLICAS):
        X = S + nu * rng.standard_normal((W, P))
        tops.append(math.sqrt(float(np.linalg.eigvalsh(X @ X.T)[-1])))
    obs, pred = float(np.mean(tops)), bbp.bbp_top_sigma(d, nu, P, W)
    require(abs(obs - pred) <= _BBP_TOL * nu, "top singular value off the BBP prediction", W=W, P=P,
            d_over_d_crit=mult, nu=nu, observed=obs, predicted=pred, deviation_in_nu=(obs - pred) / nu)
