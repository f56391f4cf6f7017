"""Loss decomposition (theory reference §6.11): the window's displacement projected on a gradient, mode by mode."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from theory.loss_decomposition import window_displacement_projection
from verify.theorems.common import SEEDS, mixed_windows
from verify.theorems.registry import require, theorem

# ===== §6.11 loss decomposition ===============================================================================


@theorem(
    "loss_decomposition.window_identity",
    "1ᵀXg = Σ_j σ_j(u_jᵀ1)(v_jᵀg) for every g ∈ ℝ^P (theory.loss_decomposition.window_displacement_projection)",
    "[R] §3.7, §6.11",
    st.tuples(mixed_windows(), SEEDS, st.floats(-3, 3)),
)
def _window_identity(case: tuple[np.ndarray, int, float]) -> None:
    X, seed, log_scale = case
    g = 10.0**log_scale * np.random.default_rng(seed).standard_normal(X.shape[1])
    terms = window_displacement_projection(X, g)
    lhs = float(X.sum(axis=0) @ g)
    tol = 1e-9 * float(np.linalg.norm(X)) * float(np.linalg.norm(g)) * math.sqrt(X.shape[0])
    require(abs(terms.sum() - lhs) <= tol, "1ᵀXg ≠ Σ_j σ_j(u_jᵀ1)(v_jᵀg)", lhs=lhs, rhs=float(terms.sum()), tol=tol)
