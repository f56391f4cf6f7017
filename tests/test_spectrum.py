"""Spectrum of one window (numerics/spectrum.py) against numpy.linalg.svd of the stacked window X."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    WindowTooSmallError,
    ZeroWindowError,
)
from numerics.spectrum import right_vectors, spectrum_from_gram, spectrum_from_updates
from theory import registry
from theory.registry import DefinitionError
from verify.strategies import gaussian_window, low_rank_window, well_separated, windows

CASES = [
    ("gauss", 2, 50),
    ("gauss", 3, 3),
    ("gauss", 7, 400),
    ("gauss", 12, 2000),
    ("lowrank", 5, 300, 2),
    ("lowrank", 10, 3000, 3),
    ("lowrank", 12, 800, 1),
]


def _window(case: tuple, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if case[0] == "gauss":
        return gaussian_window(rng, case[1], case[2])
    return low_rank_window(rng, case[1], case[2], rank=case[3], noise=0.05)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_every_quantity_against_svd_twin(case: tuple) -> None:
    X = _window(case, seed=len(case) * 100 + case[1])
    w, P = X.shape
    U, s, Vh = np.linalg.svd(X, full_matrices=False)  # the twin: SVD of X itself, no Gram
    spec = spectrum_from_updates(X)

    assert spec.w == w and spec.P == P
    np.testing.assert_allclose(spec.sigma, s, rtol=1e-9, atol=1e-12 * s[0])
    np.testing.assert_allclose(spec.lam, s**2, rtol=1e-9, atol=1e-12 * s[0] ** 2)
    r = s[:-1] / s[1:]
    np.testing.assert_allclose(spec.ratios, r, rtol=1e-8)
    k = int(np.argmax(r)) + 1
    assert spec.kstar == k
    assert spec.R == pytest.approx(s[k - 1] / s[k], rel=1e-8)
    assert spec.g == pytest.approx(s[k - 1] - s[k], rel=1e-7, abs=1e-12)
    assert spec.d_bar == pytest.approx((s[k - 1] + s[k]) / 2, rel=1e-9)
    if w >= 3:
        assert spec.g23 == pytest.approx(s[1] ** 2 - s[2] ** 2, rel=1e-7, abs=1e-10 * s[0] ** 2)
    gap = [min(abs(s[i] ** 2 - s[j] ** 2) for j in range(w) if j != i) for i in range(w)]
    np.testing.assert_allclose(spec.gap, gap, rtol=1e-7, atol=1e-10 * s[0] ** 2)
    assert spec.pc1_frac == pytest.approx(s[0] ** 2 / np.sum(s**2), rel=1e-10)
    cum, k95 = 0.0, 0
    while cum < 0.95 * np.sum(s**2):
        cum += s[k95] ** 2
        k95 += 1
    assert spec.k95 == k95
    assert spec.drift_speed == pytest.approx(np.linalg.norm(X.mean(axis=0)), rel=1e-9)

    nu = math.sqrt(np.mean(s[w // 2 :] ** 2) / P)
    assert spec.noise_scale_nu == pytest.approx(nu, rel=1e-9)
    lo, hi = spec.mp_bulk_edges
    assert lo == pytest.approx(nu * abs(math.sqrt(P) - math.sqrt(w)), rel=1e-9)
    assert hi == pytest.approx(nu * (math.sqrt(P) + math.sqrt(w)), rel=1e-9)
    assert spec.d_crit() == pytest.approx(nu * (P * w) ** 0.25, rel=1e-9)
    assert spec.d_crit("textbook") == spec.d_crit()
    assert spec.d_crit("author_code") == pytest.approx(nu * (P * (w - 1)) ** 0.25, rel=1e-9)
    assert spec.bbp_ratio() == pytest.approx(s[-1] / (nu * (P * w) ** 0.25), rel=1e-8)

    # u_j and v_j agree with the SVD's singular vectors up to sign (the σ here are simple).
    V = right_vectors(X, spec, w)
    for j in range(w):
        assert abs(abs(U[:, j] @ spec.u[:, j]) - 1) < 1e-8
        assert abs(abs(Vh[j] @ V[:, j]) - 1) < 1e-8


@given(windows(max_P=30))
def test_gram_eigenvalues_are_squared_singular_values(X: np.ndarray) -> None:
    s = np.linalg.svd(X, compute_uv=False)
    assume(s[0] > 0)
    spec = spectrum_from_gram(X @ X.T, P=X.shape[1])
    np.testing.assert_allclose(spec.lam, s**2, atol=1e-10 * s[0] ** 2)
    # the non-zero eigenvalues of XᵀX (P×P) are those of XXᵀ
    big = np.sort(np.linalg.eigvalsh(X.T @ X))[::-1][: X.shape[0]]
    np.testing.assert_allclose(spec.lam, np.clip(big, 0, None), atol=1e-10 * s[0] ** 2)


@given(windows(max_P=30))
def test_right_vectors_are_orthonormal(X: np.ndarray) -> None:
    spec = spectrum_from_updates(X)
    # v_iᵀv_j = λ_j δ_ij/(σ_iσ_j) holds exactly; in floating point only where σ_j is well above rounding.
    k = int(np.sum(spec.sigma > 1e-4 * spec.sigma[0]))
    V = right_vectors(X, spec, k)
    np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-6)


@given(windows(max_P=30), st.data())
def test_shard_sum_of_grams(X: np.ndarray, data: st.DataObject) -> None:
    P = X.shape[1]
    cuts = sorted(data.draw(st.lists(st.integers(0, P), max_size=4)))
    perm = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).permutation(P)
    shards = np.split(perm, cuts)  # an arbitrary column partition, empty shards included
    G = sum(X[:, cols] @ X[:, cols].T for cols in shards)
    np.testing.assert_allclose(G, X @ X.T, atol=1e-9 * max(1.0, np.abs(X).max() ** 2 * P))
    assume(np.any(X != 0))
    s_full, s_shard = spectrum_from_gram(X @ X.T), spectrum_from_gram(G)
    np.testing.assert_allclose(s_shard.lam, s_full.lam, atol=1e-9 * s_full.lam[0])


@given(windows(max_P=30), st.floats(1e-3, 1e3), st.booleans())
def test_scaling_invariance(X: np.ndarray, c: float, negate: bool) -> None:
    c = -c if negate else c
    a = spectrum_from_updates(X)
    assume(well_separated(a.sigma))
    b = spectrum_from_updates(c * X)
    np.testing.assert_allclose(b.sigma, abs(c) * a.sigma, rtol=1e-8)
    np.testing.assert_allclose(b.ratios, a.ratios, rtol=1e-8)
    assert b.kstar == a.kstar
    assert b.R == pytest.approx(a.R, rel=1e-8)
    assert b.g == pytest.approx(abs(c) * a.g, rel=1e-6)
    if X.shape[0] >= 3:
        assert b.g23 == pytest.approx(c * c * a.g23, rel=1e-6, abs=1e-9 * b.lam[0])


@given(windows(max_P=30), st.integers(0, 2**32 - 1), st.booleans())
def test_parameter_rotation_and_permutation_invariance(X: np.ndarray, seed: int, permute: bool) -> None:
    P = X.shape[1]
    rng = np.random.default_rng(seed)
    Q = np.eye(P)[rng.permutation(P)] if permute else np.linalg.qr(rng.standard_normal((P, P)))[0]
    a = spectrum_from_updates(X)
    assume(well_separated(a.sigma))
    b = spectrum_from_updates(X @ Q)
    np.testing.assert_allclose(b.sigma, a.sigma, rtol=1e-8)
    assert b.kstar == a.kstar
    assert b.R == pytest.approx(a.R, rel=1e-8)


@given(windows(max_P=30), st.integers(0, 2**32 - 1))
def test_window_order_and_sign_invariance(X: np.ndarray, seed: int) -> None:
    """Window order does not matter (§6.2): X ↦ ΠX, Π a signed permutation of the rows."""
    w = X.shape[0]
    rng = np.random.default_rng(seed)
    Pi = np.eye(w)[rng.permutation(w)] * rng.choice([-1.0, 1.0], size=w)[:, None]
    a = spectrum_from_updates(X)
    assume(well_separated(a.sigma))
    b = spectrum_from_updates(Pi @ X)
    np.testing.assert_allclose(b.sigma, a.sigma, rtol=1e-8)
    assert b.kstar == a.kstar
    assert b.R == pytest.approx(a.R, rel=1e-8)
    if w >= 3:
        assert b.g23 == pytest.approx(a.g23, rel=1e-6, abs=1e-9 * a.lam[0])


@given(windows(max_P=30))
def test_kstar_bounds_and_R_at_least_1(X: np.ndarray) -> None:
    spec = spectrum_from_updates(X)
    assert 1 <= spec.kstar <= spec.w - 1
    assert spec.R >= 1
    assert spec.g >= 0
    assert np.all(spec.ratios >= 1)


@given(windows(max_P=30, extra_rows=1))
def test_cauchy_interlacing_of_consecutive_windows(X: np.ndarray) -> None:
    """G_t and G_{t+1} share a (w−1)×(w−1) block: λ_{j+1}(G_{t+1}) ≤ λ_j(G_t) and vice versa (§6.5)."""
    prev, now = X[:-1], X[1:]
    assume(np.any(prev != 0) and np.any(now != 0))
    a, b = spectrum_from_updates(prev), spectrum_from_updates(now)
    tol = 1e-9 * max(a.lam[0], b.lam[0])
    assert np.all(b.lam[1:] <= a.lam[:-1] + tol)
    assert np.all(a.lam[1:] <= b.lam[:-1] + tol)


def test_ties_go_to_first_index() -> None:
    # σ = (4, 2, 1): ratios 2, 2
    spec = spectrum_from_gram(np.diag([16.0, 4.0, 1.0]))
    assert spec.kstar == 1 and spec.R == 2.0


def test_exact_rank_drop_and_json() -> None:
    """σ = (3, 2, 0): r₂ = +inf so k* = 2, R = +inf, written as null in JSON."""
    spec = spectrum_from_gram(np.diag([9.0, 4.0, 0.0]), P=7)
    assert spec.kstar == 2 and spec.R == math.inf and spec.g == 2.0
    d = spec.to_dict()
    text = json.dumps(d, allow_nan=False)  # strict JSON: no Infinity/NaN
    back = json.loads(text)
    assert back["R"] is None and back["ratios"] == [1.5, None]
    assert back["kstar"] == 2 and back["g23"] == 4.0 and back["sigma"] == [3.0, 2.0, 0.0]
    assert back["definitions"] == {"kstar": "argmax", "d_crit": "textbook"}
    for key in ("lam", "pc1_frac", "k95", "drift_speed", "P", "nu", "mp_bulk_edges", "d_crit", "bbp_ratio"):
        assert key in back


def test_to_dict_without_P_and_small_window() -> None:
    d = spectrum_from_gram(np.array([[2.0, 1.0], [1.0, 2.0]])).to_dict()  # λ = 3, 1
    json.dumps(d, allow_nan=False)
    assert d["g23"] is None and "nu" not in d and "P" not in d
    assert d["lam"] == pytest.approx([3.0, 1.0])
    assert d["drift_speed"] == pytest.approx(math.sqrt(6.0) / 2)


def test_tiny_eigenvalues_are_exact_zeros() -> None:
    """Rows (a, 2a, b, a − b) have rank 2: λ₃, λ₄ are rounding noise (~1e-16·λ₁, here both positive) and must
    read as exact zeros, giving R = +inf and r₃ = 1, not a finite 1e8 and a ratio of two noise values."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(500), rng.standard_normal(500)
    spec = spectrum_from_updates(np.stack([a, 2 * a, b, a - b]))
    assert np.all(spec.sigma[2:] == 0.0)
    assert spec.kstar == 2 and spec.R == math.inf and spec.ratios[2] == 1.0


def test_kstar_definition_is_selectable() -> None:
    G = np.diag([100.0, 4.0, 0.01])  # σ = (10, 2, 0.1): argmax 2, weighted 1
    assert spectrum_from_gram(G).kstar == 2
    spec = spectrum_from_gram(G, kstar="weighted")
    assert spec.kstar == 1 and spec.kstar_name == "weighted" and spec.R == pytest.approx(5.0)
    assert spec.to_dict()["definitions"]["kstar"] == "weighted"


def test_d_crit_registry() -> None:
    assert registry.default_name("d_crit") == "textbook"
    assert {d.name for d in registry.variants("d_crit")} == {"textbook", "author_code"}


def test_u_sign_convention_is_deterministic() -> None:
    X = np.random.default_rng(5).standard_normal((6, 40))
    a, b = spectrum_from_updates(X), spectrum_from_updates(-X)  # same G
    np.testing.assert_array_equal(a.u, b.u)
    idx = np.argmax(np.abs(a.u), axis=0)
    assert np.all(a.u[idx, np.arange(6)] > 0)


def test_spectrum_is_immutable() -> None:
    spec = spectrum_from_gram(np.diag([4.0, 1.0]))
    with pytest.raises(AttributeError):
        spec.P = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        spec.lam[0] = 0.0


def test_right_vectors_torch_returns_torch() -> None:
    X = np.random.default_rng(7).standard_normal((4, 60))
    spec = spectrum_from_updates(X)
    Vt = right_vectors(torch.from_numpy(X), spec, 3)
    assert isinstance(Vt, torch.Tensor) and Vt.dtype == torch.float64 and Vt.shape == (60, 3)
    np.testing.assert_allclose(Vt.numpy(), right_vectors(X, spec, 3), atol=1e-12)
    spec_t = spectrum_from_updates(torch.from_numpy(X).float())
    np.testing.assert_allclose(spec_t.sigma, spec.sigma, rtol=1e-5)


# ----- bad input ----------------------------------------------------------------------------------------------------


def test_nonfinite_gram_raises() -> None:
    G = np.eye(3)
    G[1, 2] = G[2, 1] = np.nan
    with pytest.raises(NonFiniteUpdateError, match="NaN or Inf"):
        spectrum_from_gram(G)
    X = np.ones((3, 5))
    X[2, 0] = np.inf
    with pytest.raises(NonFiniteUpdateError, match=r"rows \[2\]"):
        spectrum_from_updates(X)
    with pytest.raises(NonFiniteUpdateError, match="NaN or Inf"):
        spectrum_from_updates(torch.from_numpy(X))


def test_window_too_small_raises() -> None:
    with pytest.raises(WindowTooSmallError, match="w ≥ 2"):
        spectrum_from_gram(np.array([[1.0]]))
    with pytest.raises(WindowTooSmallError, match="w ≥ 3"):
        _ = spectrum_from_gram(np.diag([2.0, 1.0])).g23


@pytest.mark.parametrize(
    ("G", "match"),
    [
        (np.ones((2, 3)), "square"),
        (np.ones((2, 2, 2)), "square"),
        (np.array([[2.0, 1.0], [0.0, 2.0]]), "not symmetric"),
        ("not a matrix", "real square matrix"),
    ],
)
def test_bad_gram_shape_raises(G: object, match: str) -> None:
    with pytest.raises(ShapeMismatchError, match=match):
        spectrum_from_gram(G)  # type: ignore[arg-type]


def test_bad_P_and_bad_X_shape_raise() -> None:
    with pytest.raises(ShapeMismatchError, match="positive int"):
        spectrum_from_gram(np.eye(2), P=0)
    with pytest.raises(ShapeMismatchError, match="2-D"):
        spectrum_from_updates(np.ones(4))
    X = np.random.default_rng(0).standard_normal((3, 8))
    spec = spectrum_from_updates(X)
    with pytest.raises(ShapeMismatchError, match="shape"):
        right_vectors(X[:, :5], spec, 1)
    with pytest.raises(SpectralEdgeError, match="k must be"):
        right_vectors(X, spec, 4)


def test_zero_window_raises() -> None:
    with pytest.raises(ZeroWindowError, match="all updates in the window are zero"):
        spectrum_from_gram(np.zeros((4, 4)))
    X = np.zeros((3, 6))
    X[0, 0] = 1.0
    spec = spectrum_from_updates(X)
    with pytest.raises(ZeroWindowError, match=r"σ_j = 0 for j = \[2, 3\]"):
        right_vectors(X, spec, 3)


def test_not_psd_and_missing_P_raise() -> None:
    with pytest.raises(SpectralEdgeError, match="not positive semidefinite"):
        spectrum_from_gram(np.array([[1.0, 2.0], [2.0, 1.0]]))  # λ = 3, −1
    spec = spectrum_from_gram(np.diag([4.0, 1.0]))
    with pytest.raises(SpectralEdgeError, match="needs the number of parameters P"):
        _ = spec.noise_scale_nu
    with pytest.raises(DefinitionError, match="unknown kstar definition"):
        spectrum_from_gram(np.eye(2), kstar="nope")
