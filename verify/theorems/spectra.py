"""Window spectra (theory reference §6.1–§6.3): SVD/Gram consistency, the invariances of σ, k* and R, and the
equivalent k* maps."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from theory import kstar
from verify.strategies import random_orthonormal, well_separated
from verify.theorems.common import NUMERICS, SEEDS, mixed_windows, spectrum
from verify.theorems.registry import COUNTEREXAMPLES, require, theorem

# Checks import numerics inside the function: it imports torch (heavy, optional; the entry SKIPs without it).

# ===== §6.1 SVD / Gram consistency ============================================================================


@theorem(
    "svd_gram",
    "eig(XXᵀ) = σ(X)²; the non-zero eigenvalues of XᵀX are those of XXᵀ; v_j = Xᵀu_j/σ_j are orthonormal; "
    "XXᵀ = Σ_b X_bX_bᵀ over any column partition",
    "[R] §6.1, §1.2",
    st.tuples(mixed_windows(), SEEDS),
    requires=NUMERICS,
)
def _svd_gram(case: tuple[np.ndarray, int]) -> None:
    # local: the catalogue imports without torch (`requires`)
    from numerics.spectrum import right_vectors, spectrum_from_gram

    X, seed = case
    w, P = X.shape
    s = np.linalg.svd(X, compute_uv=False)  # the twin: SVD of X itself, never the Gram
    spec = spectrum_from_gram(X @ X.T, P=P)
    tol = 1e-10 * s[0] ** 2
    lam_svd = np.zeros(w)
    lam_svd[: s.size] = s**2
    err = float(np.max(np.abs(spec.lam - lam_svd)))
    require(err <= tol, "eig(XXᵀ) ≠ σ(X)²", max_abs_error=err, tol=tol)
    m = min(w, P)
    big = np.sort(np.linalg.eigvalsh(X.T @ X))[::-1][:m]
    err = float(np.max(np.abs(spec.lam[:m] - np.clip(big, 0, None))))
    require(err <= tol, "non-zero eigenvalues of XᵀX ≠ those of XXᵀ", max_abs_error=err, tol=tol)
    k = int(np.sum(spec.sigma > 1e-4 * spec.sigma[0]))
    V = right_vectors(X, spec, k)
    err = float(np.max(np.abs(V.T @ V - np.eye(k))))
    require(err <= 1e-6, "v_j = Xᵀu_j/σ_j not orthonormal", k=k, max_abs_error=err)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, P + 1, size=int(rng.integers(0, 5))))
    shards = np.split(rng.permutation(P), cuts)
    G = sum(X[:, c] @ X[:, c].T for c in shards)
    err = float(np.max(np.abs(G - X @ X.T)))
    tol = 1e-9 * max(1.0, float(np.abs(X).max()) ** 2 * P)
    require(err <= tol, "shard sum Σ_b X_bX_bᵀ ≠ XXᵀ", shards=len(shards), max_abs_error=err, tol=tol)


# ===== §6.2 invariances ========================================================================================


@theorem(
    "invariance.scaling",
    "X ↦ cX (c ≠ 0) leaves every ratio σ_j/σ_{j+1}, k* and R unchanged and scales σ, g by |c|, g₂₃ by c²",
    "[R] §6.2",
    st.tuples(mixed_windows(), st.floats(1e-3, 1e3), st.booleans()),
    requires=NUMERICS,
)
def _scaling(case: tuple[np.ndarray, float, bool]) -> None:
    X, c, negate = case
    c = -c if negate else c
    a = spectrum(X)
    assume(well_separated(a.sigma))
    b = spectrum(c * X)
    rel = lambda x, y: float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300)))  # noqa: E731
    details = dict(c=c, sigma=a.sigma.tolist(), kstar=a.kstar, kstar_scaled=b.kstar)
    require(rel(b.sigma, abs(c) * a.sigma) <= 1e-8, "σ(cX) ≠ |c|σ(X)", **details)
    require(rel(b.ratios, a.ratios) <= 1e-8 and b.kstar == a.kstar, "ratios or k* changed under X ↦ cX", **details)
    require(math.isclose(b.g, abs(c) * a.g, rel_tol=1e-6), "g(cX) ≠ |c|g(X)", g=a.g, g_scaled=b.g, **details)
    if X.shape[0] >= 3:
        ok = math.isclose(b.g23, c * c * a.g23, rel_tol=1e-6, abs_tol=1e-9 * b.lam[0])
        require(ok, "g₂₃(cX) ≠ c²g₂₃(X)", g23=a.g23, g23_scaled=b.g23, **details)


@theorem(
    "invariance.parameter_rotation",
    "X ↦ XQ, Q orthogonal on ℝ^P (rotation or permutation of the parameters), leaves σ, k* and R unchanged",
    "[R] §6.2, §1.1 (flattening order is irrelevant)",
    st.tuples(mixed_windows(), SEEDS, st.booleans()),
    requires=NUMERICS,
)
def _parameter_rotation(case: tuple[np.ndarray, int, bool]) -> None:
    X, seed, permute = case
    P = X.shape[1]
    rng = np.random.default_rng(seed)
    Q = np.eye(P)[rng.permutation(P)] if permute else random_orthonormal(rng, P, P)
    a = spectrum(X)
    assume(well_separated(a.sigma))
    b = spectrum(X @ Q)
    err = float(np.max(np.abs(b.sigma - a.sigma)) / a.sigma[0])
    require(err <= 1e-8 and b.kstar == a.kstar and math.isclose(b.R, a.R, rel_tol=1e-8),
            "σ, k* or R changed under X ↦ XQ", permutation=permute, rel_sigma_error=err, kstar=a.kstar,
            kstar_rotated=b.kstar, R=a.R, R_rotated=b.R)


@theorem(
    "invariance.window_order",
    "X ↦ ΠX, Π a signed permutation of the W rows, leaves σ, k*, R and g₂₃ unchanged: window order does not matter",
    "[R] §6.2",
    st.tuples(mixed_windows(), SEEDS),
    requires=NUMERICS,
)
def _window_order(case: tuple[np.ndarray, int]) -> None:
    X, seed = case
    w = X.shape[0]
    rng = np.random.default_rng(seed)
    Pi = np.eye(w)[rng.permutation(w)] * rng.choice([-1.0, 1.0], size=w)[:, None]
    a = spectrum(X)
    assume(well_separated(a.sigma))
    b = spectrum(Pi @ X)
    err = float(np.max(np.abs(b.sigma - a.sigma)) / a.sigma[0])
    require(err <= 1e-8 and b.kstar == a.kstar and math.isclose(b.R, a.R, rel_tol=1e-8),
            "σ, k* or R changed under X ↦ ΠX", rel_sigma_error=err, kstar=a.kstar, kstar_permuted=b.kstar)
    if w >= 3:
        require(math.isclose(b.g23, a.g23, rel_tol=1e-6, abs_tol=1e-9 * a.lam[0]), "g₂₃ changed under X ↦ ΠX",
                g23=a.g23, g23_permuted=b.g23)


# ===== §6.3 k* ================================================================================================


def _same_choice(r: np.ndarray, k_a: int, k_b: int) -> bool:
    """k_a = k_b, or r has (to rounding) the same maximal value at both: a tie the two maps may break apart."""
    return k_a == k_b or math.isclose(float(r[k_a - 1]), float(r[k_b - 1]), rel_tol=1e-9)


@theorem(
    "kstar.equivalences",
    "argmax σ_j/σ_{j+1} = argmax λ_j/λ_{j+1} = argmax (λ_j − λ_{j+1})/λ_j; 1 ≤ k* ≤ W−1, R ≥ 1, ties to the first",
    "[A] Def 3.1; [R] §1.3, §6.2, §6.3",
    mixed_windows(),
    requires=NUMERICS,
)
def _kstar_equivalences(X: np.ndarray) -> None:
    spec = spectrum(X)
    k, r, lam = spec.kstar, spec.ratios, spec.lam
    require(1 <= k <= spec.w - 1 and spec.R >= 1 and bool(np.all(r >= 1)), "k* out of [1, W−1] or a ratio < 1",
            kstar=k, ratios=r.tolist())
    require(k == int(np.argmax(r)) + 1, "k* is not the first index of the largest ratio", kstar=k,
            ratios=r.tolist())
    k_lam = int(np.argmax(kstar.sigma_ratios(lam))) + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_gap = np.where(lam[:-1] > 0, (lam[:-1] - lam[1:]) / lam[:-1], 0.0)
    k_rel = int(np.argmax(rel_gap)) + 1
    require(_same_choice(r, k, k_lam) and _same_choice(r, k, k_rel), "the three argmaxes disagree",
            kstar_sigma=k, kstar_lambda=k_lam, kstar_relative_gap=k_rel, sigma=spec.sigma.tolist())


@theorem(
    "kstar.weighted_equals_argmax",
    "the signal-weighted k*_w = argmax_j (σ_j/Σσ)(σ_j/σ_{j+1}) equals the plain argmax k* (it need not: §6.3)",
    "[C] Table-7 replication scripts; [R] §1.3, §6.3",
    mixed_windows(),
    expected=COUNTEREXAMPLES,
    requires=NUMERICS,
)
def _kstar_weighted(X: np.ndarray) -> None:
    a, b = spectrum(X), spectrum(X, kstar="weighted")
    require(a.kstar == b.kstar, "weighted k* ≠ argmax k*", kstar_argmax=a.kstar, kstar_weighted=b.kstar,
            sigma=a.sigma.tolist())
