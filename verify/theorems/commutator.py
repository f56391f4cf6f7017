"""The commutator defect on quadratics (theory reference §6.15): θ_AB − θ_BA in closed form, and the erratum's
counterexample."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from verify.theorems.common import SEEDS
from verify.theorems.registry import COUNTEREXAMPLES, require, theorem

# ===== §6.15 commutator on quadratics ==========================================================================


@st.composite
def _quadratic_pairs(draw: st.DrawFn, same_hessian: bool = False) -> tuple[Any, ...]:
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(SEEDS))
    eta = 10.0 ** draw(st.floats(-3, 0))
    sym = lambda: (lambda M: (M + M.T) / 2)(rng.standard_normal((n, n)))  # noqa: E731
    H_A = sym()
    H_B = H_A.copy() if same_hessian else sym()
    theta0 = rng.standard_normal(n)
    b_A = rng.standard_normal(n)
    if same_hessian:  # g_B = c·g_A at θ₀: b_B = c(H_Aθ₀ + b_A) − H_Bθ₀
        c = draw(st.floats(-3, 3))
        b_B = c * (H_A @ theta0 + b_A) - H_B @ theta0
    else:
        b_B = rng.standard_normal(n)
    return H_A, H_B, b_A, b_B, theta0, float(eta)


def _commutator(H_A: np.ndarray, H_B: np.ndarray, b_A: np.ndarray, b_B: np.ndarray, theta0: np.ndarray,
                eta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(θ_AB − θ_BA, g_A(θ₀), g_B(θ₀)) for two SGD steps on L_X = ½θᵀH_Xθ + b_Xᵀθ (theory reference §1.8)."""
    g_A = lambda th: H_A @ th + b_A  # noqa: E731
    g_B = lambda th: H_B @ th + b_B  # noqa: E731
    th_AB = theta0 - eta * g_A(theta0) - eta * g_B(theta0 - eta * g_A(theta0))
    th_BA = theta0 - eta * g_B(theta0) - eta * g_A(theta0 - eta * g_B(theta0))
    return th_AB - th_BA, g_A(theta0), g_B(theta0)


@theorem(
    "commutator.quadratic",
    "for L_X = ½θᵀH_Xθ + b_Xᵀθ: θ_AB − θ_BA = η²(H_B g_A − H_A g_B) exactly, g at θ₀",
    "[R] §6.15 (commutator defect of §1.8)",
    _quadratic_pairs(),
)
def _commutator_identity(case: tuple[Any, ...]) -> None:
    H_A, H_B, b_A, b_B, theta0, eta = case
    delta, g_A, g_B = _commutator(H_A, H_B, b_A, b_B, theta0, eta)
    pred = eta**2 * (H_B @ g_A - H_A @ g_B)
    scale = eta * (1 + np.abs(theta0).max()) * (1 + np.abs(H_A).max() + np.abs(H_B).max()) ** 2
    err = float(np.max(np.abs(delta - pred)))
    require(err <= 1e-12 * scale, "θ_AB − θ_BA ≠ η²(H_B g_A − H_A g_B)", max_abs_error=err, eta=eta)


@theorem(
    "commutator.parallel_gradients",
    "D = 0 when H_A = H_B and g_A ∥ g_B, as §6.15 states (it need not: θ_AB − θ_BA = η²H(g_A − g_B) ≠ 0 in general)",
    "[R] §6.15 (second clause; erratum: the condition is H_B g_A = H_A g_B)",
    _quadratic_pairs(same_hessian=True),
    expected=COUNTEREXAMPLES,
)
def _commutator_parallel(case: tuple[Any, ...]) -> None:
    H_A, H_B, b_A, b_B, theta0, eta = case
    delta, g_A, g_B = _commutator(H_A, H_B, b_A, b_B, theta0, eta)
    na, nb = float(np.linalg.norm(eta * g_A)), float(np.linalg.norm(eta * g_B))
    assume(na > 1e-6 and nb > 1e-6)
    D = float(np.linalg.norm(delta)) / (na * nb)
    require(D <= 1e-6, "D ≠ 0 with H_A = H_B and g_A ∥ g_B", D=D, g_A=g_A.tolist(), g_B=g_B.tolist(),
            H=H_A.tolist(), eta=eta)
