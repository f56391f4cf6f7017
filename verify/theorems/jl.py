"""The JL sketch (theory reference §6.17, statistical, torch): a Gaussian sketch at d = 10W keeps every Gram eigenvalue
in band."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from verify.strategies import windows
from verify.theorems.common import SEEDS
from verify.theorems.registry import require, theorem

# The check imports torch and numerics inside the function: torch is heavy and optional (the entry SKIPs without it).

# ===== §6.17 JL sketch (statistical, torch) ===================================================================

_JL_DELTA = 1e-6


@theorem(
    "jl.subspace_embedding",
    "JLSketch at d = 10W: every eigenvalue of the sketched Gram XΦᵀΦXᵀ lies in [(1−ε)₊², (1+ε)²]·λ_j, "
    "ε = √(W/d) + √(2 ln(2/δ)/d), per-instance failure probability δ = 1e-6",
    "[R] §6.17; Davidson–Szarek bound for the Gaussian Φ restricted to X's row space (numerics.sketch)",
    st.tuples(windows(w=(2, 12), P=(50, 400), kind=("gaussian", "low_rank_noise", "planted_gap")), SEEDS),
    requires=("torch", "numerics.sketch"),
    statistical=True,
)
def _jl(case: tuple[np.ndarray, int]) -> None:
    """For V an orthonormal basis of the row space (rank r ≤ W), ΦV is d×r with i.i.d. N(0, 1/d) entries, so its
    singular values lie in 1 ± (√(r/d) + t) with probability ≥ 1 − 2e^{−dt²/2} (Davidson–Szarek); hence
    (1−ε)₊²G ≼ Ĝ ≼ (1+ε)²G in Loewner order and every eigenvalue follows. λ units.
    """
    import torch  # local: the catalogue imports without torch (`requires`)

    from numerics.sketch import JLSketch, default_sketch_dim  # local: the catalogue imports without torch (`requires`)

    X, seed = case
    W = X.shape[0]
    d = default_sketch_dim(W)
    Y = JLSketch(d, seed).apply(torch.from_numpy(np.ascontiguousarray(X))).numpy()
    lam = np.sort(np.clip(np.linalg.eigvalsh(X @ X.T), 0, None))[::-1]
    lam_hat = np.sort(np.clip(np.linalg.eigvalsh(Y @ Y.T), 0, None))[::-1]
    eps = math.sqrt(W / d) + math.sqrt(2 * math.log(2 / _JL_DELTA) / d)
    lo, hi = max(0.0, 1 - eps) ** 2, (1 + eps) ** 2
    tol = 1e-6 * float(lam[0])  # Φ is drawn in float32
    ok = bool(np.all(lam_hat >= lo * lam - tol) and np.all(lam_hat <= hi * lam + tol))
    require(ok, "sketched eigenvalues outside the JL band", W=W, d=d, eps=eps, lam=lam.tolist(),
            lam_sketched=lam_hat.tolist())
