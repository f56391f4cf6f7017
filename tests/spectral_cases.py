"""Test helpers for the spectral engine: window strategies and windows built from seeded generators.

The brute-force twins in the tests work from ``numpy.linalg.svd`` of the stacked window X, never from the Gram
code under test.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Entries far from underflow: the square of 1e-300 is 0, which would make a non-zero X look like a zero window.
ELEMENT = st.one_of(st.just(0.0), st.floats(1e-6, 10), st.floats(-10, -1e-6))


@st.composite
def windows(draw: st.DrawFn, min_w: int = 2, max_w: int = 12, max_P: int = 40, extra_rows: int = 0) -> np.ndarray:
    """A (w + extra_rows)×P window, P ≥ w, every entry drawn (no fill value), not all zero."""
    w = draw(st.integers(min_w, max_w))
    P = draw(st.integers(w, max(max_P, w)))
    X = draw(hnp.arrays(np.float64, (w + extra_rows, P), elements=ELEMENT, fill=st.nothing()))
    assume(np.any(X != 0))
    return X


def gaussian_window(rng: np.random.Generator, w: int, P: int) -> np.ndarray:
    return rng.standard_normal((w, P))


def low_rank_window(rng: np.random.Generator, w: int, P: int, rank: int, noise: float) -> np.ndarray:
    """Σ_k s_k a_k b_kᵀ with well-separated strengths s_k = 10·3^{−k}, plus i.i.d. noise of scale ``noise``."""
    A = rng.standard_normal((w, rank))
    B = rng.standard_normal((rank, P)) / np.sqrt(P)
    s = 10.0 * 3.0 ** -np.arange(rank)
    return (A * s) @ B * np.sqrt(P) / np.sqrt(w) + noise * rng.standard_normal((w, P))


def well_separated(sigma: np.ndarray, rel: float = 1e-4) -> bool:
    """True when σ is far from rank deficiency and its top ratio beats the runner-up by a factor 1 + rel.

    Under such margins k* and R cannot be flipped by rounding, so invariance tests may compare them exactly.
    """
    if sigma[-1] < rel * sigma[0]:
        return False
    r = np.sort(sigma[:-1] / sigma[1:])[::-1]
    return r.size == 1 or r[0] > (1 + rel) * r[1]
