"""Tian's Theorem 6 on the Li₂ bridge's code (theory reference §6.18, ``theory.li2``): the pair Schur block and the
full projector.

The same identity against a plain numpy twin is ``verify.theorems.tian``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from theory.li2 import full_projector_gram, pair_schur_block
from verify.theorems.common import SEEDS
from verify.theorems.registry import require, theorem

# ===== §6.18 Tian Theorem 6 (Li₂) ===========================================================================


@st.composite
def _li2_features(draw: st.DrawFn) -> tuple[np.ndarray, float, int, int]:
    """Centred activations F̃ (n×K; some columns planted near-duplicates, so |cos| spans (0, 1)), η, a pair j ≠ l."""
    n, K = draw(st.integers(2, 9)), draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(SEEDS))
    F = rng.standard_normal((n, K)) * rng.uniform(0.1, 10, size=K)
    for _ in range(draw(st.integers(0, K // 2))):
        a, b = rng.choice(K, size=2, replace=False)
        F[:, b] = rng.choice([-1.0, 1.0]) * F[:, a] + rng.uniform(0.01, 1.0) * rng.standard_normal(n)
    F -= F.mean(axis=0, keepdims=True) if n > 2 else 0.0
    eta = float(10 ** draw(st.floats(-4, 1)))
    j, l = (int(v) for v in rng.choice(K, size=2, replace=False))
    return F, eta, j, l


@theorem(
    "li2.theorem6_sign",
    "Tian Thm 6 is an identity: the {j,l} block of B = (F̃ᵀF̃ + ηI)⁻¹ is (F̃_pᵀP_{η,−jl}F̃_p + ηI₂)⁻¹, so "
    "sgn(B_jl) = −sgn(f̃_jᵀP_{η,−jl}f̃_l) always; and F̃ᵀP_ηF̃ = ηI − η²B (full projector)",
    "[R] §6.18, §7.8 (theory.li2; Tian 2509.21519 Theorem 6)",
    _li2_features(),
)
def _li2_theorem6_sign(case: tuple[np.ndarray, float, int, int]) -> None:
    F, eta, j, l = case
    K = F.shape[1]
    B = np.linalg.inv(F.T @ F + eta * np.eye(K))  # the twin: a plain inverse of the whole matrix
    S = pair_schur_block(F, eta, j, l)
    block = B[np.ix_([j, l], [j, l])]
    scale = float(np.abs(block).max())
    err = float(np.abs(np.linalg.inv(S) - block).max())
    require(err <= 1e-7 * scale, "Schur block ≠ the {j,l} block of B", max_abs_error=err, scale=scale)
    require(float(np.linalg.eigvalsh(S).min()) > 0, "S not positive definite", eig=np.linalg.eigvalsh(S).tolist())
    resid = float(S[0, 1])
    # the sign is decided wherever B_jl is not rounding noise
    if abs(B[j, l]) > 1e-9 * scale:
        require(np.sign(B[j, l]) == -np.sign(resid), "sgn(B_jl) ≠ −sgn(f̃_jᵀP_{η,−jl}f̃_l)", B_jl=float(B[j, l]),
                residual_similarity=resid)
    direct, closed = full_projector_gram(F, eta)
    tol = 1e-8 * (1.0 + float(np.abs(F.T @ F).max()))
    err = float(np.abs(direct - closed).max())
    require(err <= tol, "F̃ᵀP_ηF̃ ≠ ηI − η²B", max_abs_error=err, tol=tol)
