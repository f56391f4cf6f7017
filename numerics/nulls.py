"""Null generators for the claims rows: random windows and time-shuffled series (numpy only, seeded).

Every generator takes a ``numpy.random.Generator`` (``numpy.random.default_rng(seed)``): a null is reproducible bit
for bit. Two kinds of null (issue 13):

- **Random windows** (structural claims about one window's spectrum). A window is W updates δ_a ∈ ℝ^P; its Gram
  G = XXᵀ (W×W, σ² units: G_ab = ⟨δ_a, δ_b⟩). ``gaussian_window_grams`` gives the Gram of W independent uniformly
  random directions in ℝ^P scaled to given row norms ‖δ_a‖ (so diag G = row norms², exactly): the spectrum an
  update window of the same W, P and norm profile has when its directions carry no structure.
  ``noise_grams`` gives the Gram of i.i.d. N(0, ν²) entries (pure noise, Marchenko–Pastur). Both are sampled
  exactly in W dimensions by the Bartlett decomposition of the Wishart matrix ZZᵀ ~ Wishart_W(P, I)
  (``wishart_bartlett``): no P-sized array is ever built, so P = 10⁸ costs the same as P = 10.
  ``brute_force_window_grams`` is the twin that does build the P-vectors (small P only; tests).
- **Time shuffles** (claims where order matters, e.g. statistics of dg/dt). ``shuffled_orders`` permutes the
  checkpoint order of a series (destroys all temporal structure, keeps the marginal distribution);
  ``shuffled_increment_walks`` keeps the start and the multiset of increments but permutes their order, a
  zero-drift random walk with the same steps (destroys any dependence of the increment on the level, e.g. a
  restoring drift).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "brute_force_window_grams",
    "gaussian_window_grams",
    "noise_grams",
    "shuffled_increment_walks",
    "shuffled_orders",
    "wishart_bartlett",
]


def _check(W: int, P: int, size: int) -> None:
    if W < 1 or size < 1:
        raise ValueError(f"need W ≥ 1 and size ≥ 1, got W = {W}, size = {size}")
    if P < W:
        raise ValueError(f"the Bartlett construction needs P ≥ W (a full-rank Wishart), got P = {P} < W = {W}")


def wishart_bartlett(W: int, P: int, rng: np.random.Generator, size: int = 1) -> np.ndarray:
    """``size`` exact draws of ZZᵀ ~ Wishart_W(P, I_W), Z a W×P matrix of i.i.d. N(0, 1): shape (size, W, W).

    Bartlett: ZZᵀ = LLᵀ with L lower triangular, L_ii² ~ χ²(P − i + 1) (i = 1..W), L_ij ~ N(0, 1) for i > j,
    all independent. Cost O(size·W³), independent of P. Needs P ≥ W.
    """
    _check(W, P, size)
    L = np.tril(rng.standard_normal((size, W, W)), k=-1)
    idx = np.arange(W)
    L[:, idx, idx] = np.sqrt(rng.chisquare(P - idx, size=(size, W)))
    return L @ np.swapaxes(L, -1, -2)


def gaussian_window_grams(row_norms: np.ndarray, P: int, rng: np.random.Generator, size: int = 1) -> np.ndarray:
    """Grams of W independent uniformly random directions in ℝ^P scaled to ``row_norms`` (σ units, length W).

    G_ab = r_a r_b cos(z_a, z_b) with z_a ~ N(0, I_P): the Wishart draw of ``wishart_bartlett`` normalised to unit
    diagonal, then scaled, so diag G = row_norms² exactly. Shape (size, W, W), σ² units.
    """
    r = np.asarray(row_norms, dtype=float)
    if r.ndim != 1 or np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("row_norms must be a finite non-negative vector")
    A = wishart_bartlett(len(r), P, rng, size)
    d = np.sqrt(np.diagonal(A, axis1=-2, axis2=-1))
    s = r[None, :] / d
    return A * s[:, :, None] * s[:, None, :]


def noise_grams(W: int, P: int, rng: np.random.Generator, size: int = 1, nu: float = 1.0) -> np.ndarray:
    """Grams of W×P pure-noise windows, entries i.i.d. N(0, ν²) (``nu`` in σ units per √entry): ν²·Wishart_W(P, I).
    Shape (size, W, W), σ² units."""
    return nu * nu * wishart_bartlett(W, P, rng, size)


def brute_force_window_grams(row_norms: np.ndarray, P: int, rng: np.random.Generator,
                             size: int = 1) -> np.ndarray:
    """The twin of ``gaussian_window_grams`` built from actual Gaussian P-vectors (size·W·P numbers: small P only)."""
    r = np.asarray(row_norms, dtype=float)
    Z = rng.standard_normal((size, len(r), P))
    X = Z / np.linalg.norm(Z, axis=-1, keepdims=True) * r[None, :, None]
    return X @ np.swapaxes(X, -1, -2)


def shuffled_orders(x: np.ndarray, rng: np.random.Generator, size: int = 1) -> np.ndarray:
    """``size`` independent random permutations of the series ``x`` (first axis = checkpoints): shape
    (size, *x.shape). Units those of ``x``."""
    a = np.asarray(x)
    return np.stack([a[rng.permutation(len(a))] for _ in range(size)])


def shuffled_increment_walks(x: np.ndarray, rng: np.random.Generator, size: int = 1) -> np.ndarray:
    """Zero-drift walks with the increments of ``x`` in random order: x̃_0 = x_0, x̃_{t+1} = x̃_t + Δx_{π(t)}, with
    Δx_t = x_{t+1} − x_t and π a uniform permutation per draw. Shape (size, len(x)); the end point x̃_{T−1} = x_{T−1}.
    Units those of ``x``."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or len(a) < 2:
        raise ValueError("shuffled_increment_walks needs a 1-d series of length ≥ 2")
    inc = np.diff(a)
    out = np.empty((size, len(a)))
    out[:, 0] = a[0]
    for i in range(size):
        out[i, 1:] = a[0] + np.cumsum(inc[rng.permutation(len(inc))])
    return out
