"""Sliding windows (theory reference §6.5, §6.6): Cauchy interlacing of consecutive windows and rank-one updates of C =
XᵀX."""

from __future__ import annotations

import math

import numpy as np

from verify.strategies import TRAJECTORY_KINDS, Stream, trajectories
from verify.theorems.common import NUMERICS, symmetric_gram
from verify.theorems.registry import require, theorem

# Checks import numerics and torch inside the function: torch is heavy and optional (the entry SKIPs without it).

# ===== §6.5 / §6.6 sliding windows ============================================================================


@theorem(
    "interlacing.sliding_window",
    "consecutive windows share W−1 rows, so λ_{j+1}(G_{t+1}) ≤ λ_j(G_t) and λ_{j+1}(G_t) ≤ λ_j(G_{t+1}) "
    "(Grams from the streaming RollingGram)",
    "[R] §6.5 (Cauchy interlacing)",
    trajectories(kind=TRAJECTORY_KINDS),
    requires=("torch", "numerics"),
)
def _sliding_interlacing(stream: Stream) -> None:
    import torch  # local: the catalogue imports without torch (`requires`)

    from numerics.gram import RollingGram  # local: the catalogue imports without torch (`requires`)
    from numerics.spectrum import gram_eigenvalues  # local: the catalogue imports without torch (`requires`)

    rg = RollingGram(stream.W, stream.deltas.shape[1], dtype=torch.float64)
    for t, delta in enumerate(stream.deltas):
        rg.push(torch.from_numpy(np.ascontiguousarray(delta)))
        G_ext = rg.extended_gram()
        if G_ext is None:
            continue
        a, b = gram_eigenvalues(G_ext[:-1, :-1]), gram_eigenvalues(G_ext[1:, 1:])
        tol = 1e-9 * max(float(a[0]), float(b[0]), 1e-300)
        ok = bool(np.all(b[1:] <= a[:-1] + tol) and np.all(a[1:] <= b[:-1] + tol))
        require(ok, "Cauchy interlacing of consecutive windows fails", t=t, lam_prev=a.tolist(), lam_now=b.tolist())


def _padded_eigs(B: np.ndarray, n: int) -> np.ndarray:
    """The n largest eigenvalues of BᵀB (the dual operator C, P×P), from the Gram BBᵀ, padded with zeros."""
    lam = np.zeros(n)
    e = np.sort(np.linalg.eigvalsh(B @ B.T))[::-1]
    lam[: e.size] = np.clip(e, 0, None)
    return lam


def _rank_one_interlaced(lam: np.ndarray, lam_plus: np.ndarray, tol: float) -> bool:
    """λ_j(C) ≤ λ_j(C + δδᵀ) ≤ λ_{j−1}(C) for every j, to ``tol`` (both spectra descending, padded alike)."""
    return bool(np.all(lam <= lam_plus + tol) and np.all(lam_plus[1:] <= lam[:-1] + tol))


@theorem(
    "interlacing.rank_one",
    "C_t = C_{t−1} + δ_tδ_tᵀ − δ_{t−W}δ_{t−W}ᵀ: adding δδᵀ gives λ_j(C) ≤ λ_j(C+δδᵀ) ≤ λ_{j−1}(C); removal reverses",
    "[R] §6.6 (rank-one interlacing on the dual operator C = XᵀX)",
    trajectories(kind=TRAJECTORY_KINDS),
)
def _rank_one_interlacing(stream: Stream) -> None:
    n = stream.W + 1
    for t, B in enumerate(stream.extended()):
        prev, mid, now = _padded_eigs(B[:-1], n), _padded_eigs(B, n), _padded_eigs(B[1:], n)
        tol = 1e-9 * max(float(mid[0]), 1e-300)
        require(_rank_one_interlaced(prev, mid, tol), "adding δ_tδ_tᵀ breaks interlacing", t=t, lam_C=prev.tolist(),
                lam_C_plus=mid.tolist())
        require(_rank_one_interlaced(now, mid, tol), "removing δ_{t−W}δ_{t−W}ᵀ breaks interlacing", t=t,
                lam_C_minus=now.tolist(), lam_C=mid.tolist())


@theorem(
    "rank_one.delta_C_norm",
    "‖ΔC‖_F² = ‖δ_t‖⁴ + ‖δ_{t−W}‖⁴ − 2⟨δ_t, δ_{t−W}⟩², and numerics.stability.delta_C_norm equals the explicit "
    "‖C_t − C_{t−1}‖_F",
    "[R] §6.6, §7.1",
    trajectories(kind=TRAJECTORY_KINDS),
    requires=NUMERICS,
)
def _delta_C_norm(stream: Stream) -> None:
    from numerics.stability import delta_C_norm  # local: the catalogue imports without torch (`requires`)

    for t, B in enumerate(stream.extended()):
        explicit = float(np.linalg.norm(B[1:].T @ B[1:] - B[:-1].T @ B[:-1]))
        a, b, c = B[-1] @ B[-1], B[0] @ B[0], B[-1] @ B[0]
        closed = math.sqrt(max(a * a + b * b - 2 * c * c, 0.0))
        code = delta_C_norm(symmetric_gram(B))
        tol = 1e-7 * max(a, b, 1e-300)
        require(abs(closed - explicit) <= tol and abs(code - explicit) <= tol, "‖ΔC‖_F formula fails", t=t,
                explicit=explicit, closed_form=closed, delta_C_norm=code, tol=tol)
