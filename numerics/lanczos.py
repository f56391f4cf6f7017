"""Lanczos: the top eigenvalues of a symmetric operator known only through its matrix-vector products.

Source: [R] (textbook Lanczos with full reorthogonalisation; Golub & Van Loan §10.1), used by the geometry
measurement (``verify/studies/geometry.py``; criteria.toml [geometry.orth_curvature_lead]) on Hessian-vector
products.

Definitions. ``A`` is a symmetric linear operator on ℝ^P given as ``matvec(x) = A x`` on flat float64 torch vectors.
With an optional ``project`` U ∈ ℝ^{P×k} (orthonormal columns), the operator is A_⊥ = (I − UUᵀ) A (I − UUᵀ), applied
as x ↦ (I − UUᵀ) A ((I − UUᵀ) x). From a unit start vector q_1 (random, projected), m steps build the orthonormal
Krylov basis Q = [q_1 … q_m] and the tridiagonal T = QᵀA_⊥Q with

    w = A_⊥ q_j − β_{j−1} q_{j−1},   α_j = ⟨q_j, w⟩,   w ← w − α_j q_j,   then w ← w − Q(Qᵀw) twice (full
    reorthogonalisation: "twice is enough"),   β_j = ‖w‖,   q_{j+1} = w / β_j.

The Ritz values (eigenvalues of T, descending) approximate the extreme eigenvalues of A_⊥, the top one first and
best. Since q_1 ⊥ span(U) and A_⊥ maps into span(U)^⊥, the Krylov space lies in span(U)^⊥: the Ritz values are those
of A restricted to the orthogonal complement of span(U); the trivial zero eigenvalues of A_⊥ on span(U) are never
reported. If β_j falls below ``tol``·max|α| the Krylov space is invariant and the iteration stops early with exact
eigenvalues (fewer than m values).

Cost: m matvecs (plus two projections per matvec with U), O(m·P) memory for Q (float64), O(m²·P) flops of
reorthogonalisation. Units: those of A (for a loss Hessian, loss / θ²).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from numerics.errors import ShapeMismatchError, SpectralEdgeError

__all__ = ["lanczos", "project_out"]

MatVec = Callable[[Tensor], Tensor]


def project_out(x: Tensor, U: Tensor | None) -> Tensor:
    """(I − UUᵀ) x for U with orthonormal columns (x unchanged when U is None)."""
    return x if U is None else x - U @ (U.T @ x)


def lanczos(
    matvec: MatVec,
    dim: int,
    *,
    iters: int = 20,
    project: Tensor | None = None,
    v0: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    tol: float = 1e-10,
) -> np.ndarray:
    """Ritz values (descending, float64 array of length ≤ ``iters``) of the symmetric operator ``matvec`` on ℝ^dim,
    projected by (I − UUᵀ) before and after when ``project`` = U (P × k, orthonormal columns) is given.

    ``v0``: the start vector (projected and normalised); otherwise a Gaussian draw from ``generator`` (required
    then: never the global RNG). ``iters`` is capped at the dimension of the complement of span(U).
    """
    if dim < 1:
        raise SpectralEdgeError(f"lanczos needs a positive dimension, got {dim}")
    if iters < 1:
        raise SpectralEdgeError(f"lanczos needs iters >= 1, got {iters}")
    U = None
    if project is not None:
        U = torch.as_tensor(project, dtype=torch.float64, device=device)
        U = U.unsqueeze(1) if U.dim() == 1 else U
        if U.dim() != 2 or U.shape[0] != dim:
            raise ShapeMismatchError(f"projection must have shape ({dim}, k), got {tuple(U.shape)}")
    m = min(int(iters), dim - (0 if U is None else U.shape[1]))
    if m < 1:
        raise SpectralEdgeError(f"the projection of rank {U.shape[1]} leaves nothing of dimension {dim}")
    if v0 is None:
        if generator is None:
            raise SpectralEdgeError("lanczos needs a start vector v0 or an explicit generator (not the global RNG)")
        v0 = torch.randn(dim, generator=generator, dtype=torch.float64).to(device)
    q = project_out(torch.as_tensor(v0, dtype=torch.float64, device=device).reshape(-1), U)
    if q.numel() != dim:
        raise ShapeMismatchError(f"start vector has {q.numel()} entries, expected {dim}")
    nq = float(q.norm())
    if not np.isfinite(nq) or nq == 0.0:
        raise SpectralEdgeError("lanczos start vector is zero (or non-finite) after the projection")
    Q = torch.zeros((m, dim), dtype=torch.float64, device=device)
    Q[0] = q / nq
    alphas: list[float] = []
    betas: list[float] = []
    scale = 0.0
    for j in range(m):
        w = project_out(matvec(project_out(Q[j], U)).to(dtype=torch.float64, device=device).reshape(-1), U)
        if w.numel() != dim:
            raise ShapeMismatchError(f"matvec returned {w.numel()} entries, expected {dim}")
        if not bool(torch.isfinite(w).all()):
            raise SpectralEdgeError(f"lanczos: matvec returned NaN/Inf at iteration {j}")
        a = float(Q[j] @ w)
        alphas.append(a)
        scale = max(scale, abs(a))
        if j + 1 == m:
            break
        basis = Q[: j + 1]
        for _ in range(2):  # full reorthogonalisation (α_j q_j and β_{j−1} q_{j−1} are removed here as well)
            w = w - basis.T @ (basis @ w)
        w = project_out(w, U)
        b = float(w.norm())
        if b <= tol * max(scale, 1e-300):
            break  # invariant Krylov subspace: T's eigenvalues are exact eigenvalues of the operator
        betas.append(b)
        Q[j + 1] = w / b
    n = len(alphas)
    T = np.diag(np.asarray(alphas)) + np.diag(np.asarray(betas[: n - 1]), 1) + np.diag(np.asarray(betas[: n - 1]), -1)
    return np.sort(np.linalg.eigvalsh(T))[::-1].copy()
