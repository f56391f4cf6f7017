"""Tian's Theorem 6 (theory reference §6.18) as an identity of the Schur complement, checked against a plain numpy twin.

The same statement on ``theory.li2``'s code (the Li₂ bridge) is ``verify.theorems.li2``.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from verify.theorems.common import SEEDS
from verify.theorems.registry import require, theorem

# ===== §6.18 Tian Theorem 6 ===================================================================================


@st.composite
def _tian_cases(draw: st.DrawFn) -> tuple[np.ndarray, float, int, int]:
    m = draw(st.integers(2, 8))
    n = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(SEEDS))
    F = rng.standard_normal((n, m)) * 10.0 ** rng.uniform(-1, 1, m)  # columns f̃_j of varied norms
    eta = 10.0 ** draw(st.floats(-3, 1)) * float(np.mean(F**2) * n)
    j = draw(st.integers(0, m - 1))
    l = (j + 1 + draw(st.integers(0, m - 2))) % m
    return F, eta, j, l


def _projector(F: np.ndarray, eta: float) -> np.ndarray:
    """P_η = I − F(FᵀF + ηI)⁻¹Fᵀ (n×n; identity for an empty F)."""
    n, m = F.shape
    if m == 0:
        return np.eye(n)
    return np.eye(n) - F @ np.linalg.solve(F.T @ F + eta * np.eye(m), F.T)


@theorem(
    "tian.theorem6_sign",
    "B = (F̃ᵀF̃+ηI)⁻¹: B's {j,l} block is ([f̃_j f̃_l]ᵀP_{η,−jl}[f̃_j f̃_l] + ηI₂)⁻¹, so sgn B_jl = −sgn f̃_jᵀP_{η,−jl}f̃_l; "
    "and F̃ᵀP_ηF̃ = ηI − η²B",
    "[R] §6.18, §7.8 (Schur complement; Tian 2509.21519 Thm 6 is an identity, not an empirical test)",
    _tian_cases(),
)
def _tian(case: tuple[np.ndarray, float, int, int]) -> None:
    F, eta, j, l = case
    m = F.shape[1]
    B = np.linalg.inv(F.T @ F + eta * np.eye(m))
    rest = [i for i in range(m) if i not in (j, l)]
    P = _projector(F[:, rest], eta)
    pair = F[:, [j, l]]
    S = pair.T @ P @ pair + eta * np.eye(2)
    block = B[np.ix_([j, l], [j, l])]
    S_inv = np.linalg.inv(S)
    err = float(np.max(np.abs(block - S_inv)) / np.abs(S_inv).max())
    require(err <= 1e-8, "B's 2×2 block ≠ the Schur-complement inverse", j=j, l=l, rel_error=err, eta=eta)
    b = float(pair[:, 0] @ P @ pair[:, 1])
    if abs(b) > 1e-8 * math.sqrt(S[0, 0] * S[1, 1]):
        require(np.sign(B[j, l]) == -np.sign(b), "sgn B_jl ≠ −sgn f̃_jᵀP f̃_l", B_jl=float(B[j, l]), f_P_f=b)
    full = F.T @ _projector(F, eta) @ F
    err = float(np.max(np.abs(full - (eta * np.eye(m) - eta**2 * B))) / max(eta, float(np.abs(full).max())))
    require(err <= 1e-8, "F̃ᵀP_ηF̃ ≠ ηI − η²B", rel_error=err, eta=eta)
