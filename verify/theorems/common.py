"""What the checks of several topic modules share: seeds, requirements, tolerances, spectra of a perturbation.

Checks import ``numerics`` (and with it torch) inside the function, never at module level: torch is a heavy,
optional dependency, and an entry that needs it is SKIPped, not broken, where it cannot be imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from theory.davis_kahan import eigh_desc
from verify.strategies import KINDS, Perturbation, windows

__all__ = ["ANGLE_TOL", "EIG_TOL", "NUMERICS", "SEEDS", "gaps", "mixed_windows", "spectra", "spectrum",
           "symmetric_gram"]

SEEDS = st.integers(0, 2**32 - 1)

#: What an entry that computes with ``numerics`` (which imports torch) needs.
NUMERICS: tuple[str, ...] = ("numerics",)

# Eigen-solver rounding is ~eps·‖A‖ in λ and ~eps·‖A‖/gap in angle; gaps here are ≥ 1e-2 on a scale ≤ ~100, so
# 1e-7 on sin θ and 1e-9·scale on eigenvalues are generous and never mask a real violation (those are O(1e-2+)).
ANGLE_TOL = 1e-7
EIG_TOL = 1e-9


def gaps(lam: np.ndarray) -> np.ndarray:
    """gap_j = min_{k≠j} |λ_j − λ_k| (λ units)."""
    d = np.abs(lam[:, None] - lam[None, :])
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def spectra(case: Perturbation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """λ, V of G; λ̂, V̂ of G + E (descending); ‖E‖_op, ‖E‖_F; and the scale 1 + max|λ| + ‖E‖_op."""
    G, E = case
    lam, V = eigh_desc(G)
    lam_hat, V_hat = eigh_desc(G + E)
    E_op, E_F = float(np.linalg.norm(E, 2)), float(np.linalg.norm(E))
    return lam, V, lam_hat, V_hat, E_op, E_F, 1.0 + float(np.abs(lam).max()) + E_op


def symmetric_gram(B: np.ndarray) -> np.ndarray:
    """BBᵀ symmetrised, (BBᵀ + (BBᵀ)ᵀ)/2: the Gram of the rows of B (for a (W+1)-row block, the extended Gram)."""
    G = B @ B.T
    return (G + G.T) / 2


def mixed_windows(**kw: Any) -> st.SearchStrategy[np.ndarray]:
    return windows(kind=KINDS, **kw)


def spectrum(X: np.ndarray, **kw: Any) -> Any:
    from numerics.spectrum import spectrum_from_updates  # torch: optional, kept out of import time

    return spectrum_from_updates(X, **kw)
