"""JLSketch: reproducibility from the seed, E[ΦᵀΦ] = I, the exact variance, and the gap-ratio error at d = 10W."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.gram import RollingGram
from numerics.sketch import JLSketch, default_sketch_dim


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Thousands of tiny matmuls: on a shared 2-core box OpenMP barriers make 2 threads ~100x slower than 1.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_reproducible_from_seed_and_chunked_consistently():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    a = JLSketch(30, seed=4, chunk=30 * 64)  # 64 columns per block → 16 blocks, the last one partial
    assert a.columns_per_block == 64
    y = a.apply(x, atom=2)
    assert y.shape == (30,) and y.dtype == torch.float64
    assert torch.equal(y, a.apply(x, atom=2))
    assert torch.equal(y, JLSketch(30, seed=4, chunk=30 * 64).apply(x, atom=2))  # fresh object, same Φ
    assert not torch.allclose(y, a.apply(x, atom=1))
    assert not torch.allclose(y, JLSketch(30, seed=5, chunk=30 * 64).apply(x, atom=2))
    Phi = a.matrix(1000, atom=2).double()
    assert torch.allclose(y, Phi @ x.double(), rtol=1e-5, atol=1e-5)
    rows = torch.stack([x, 2 * x, -x])
    # float32 block products: a matrix and a vector product may sum in different orders
    assert torch.allclose(a.apply(rows, atom=2), torch.stack([y, 2 * y, -y]), rtol=1e-5, atol=1e-4)
    assert torch.allclose(a.apply(x.double(), atom=2), y, rtol=1e-5, atol=1e-5)  # same Φ for float64 input


def test_expected_gram_of_phi_is_identity():
    """Monte Carlo over seeds: mean of ΦᵀΦ → I, each entry within 5 standard errors.

    (ΦᵀΦ)_ii = ‖φ_i‖² has variance 2/d, (ΦᵀΦ)_ij (i ≠ j) variance 1/d, for columns φ of Φ.
    """
    d, n, trials = 8, 12, 400
    acc = np.zeros((n, n))
    for s in range(trials):
        Phi = JLSketch(d, seed=s).matrix(n).double().numpy()
        acc += Phi.T @ Phi
    mean = acc / trials
    se_diag, se_off = math.sqrt(2 / d / trials), math.sqrt(1 / d / trials)
    assert np.all(np.abs(np.diag(mean) - 1) < 5 * se_diag)
    off = mean[~np.eye(n, dtype=bool)]
    assert np.all(np.abs(off) < 5 * se_off)


def test_inner_product_variance_formula():
    """Var⟨Φa, Φb⟩ = (‖a‖²‖b‖² + ⟨a,b⟩²)/d (docstring derivation), checked by Monte Carlo."""
    rng = np.random.default_rng(2)
    d, P, trials = 16, 50, 1500
    a = torch.from_numpy(rng.standard_normal(P))
    b = 0.6 * a + torch.from_numpy(rng.standard_normal(P))
    samples = np.empty(trials)
    for s in range(trials):
        sk = JLSketch(d, seed=s)
        samples[s] = float(sk.apply(a) @ sk.apply(b))
    ab, aa, bb = float(a @ b), float(a @ a), float(b @ b)
    var = (aa * bb + ab**2) / d
    assert abs(samples.mean() - ab) < 5 * math.sqrt(var / trials)
    # Sample variance of a Gaussian-like sum: relative standard error ≈ √(2/trials) ≈ 3.7 %; allow 15 %.
    assert abs(samples.var() / var - 1) < 0.15


def _gap_ratio(G: np.ndarray) -> tuple[int, float]:
    lam = np.sort(np.linalg.eigvalsh(G))[::-1]
    s = np.sqrt(np.clip(lam, 0, None))
    r = s[:-1] / s[1:]
    k = int(np.argmax(r))
    return k + 1, float(r[k])


def _sketched_ratios(W: int, signal: list[float], noise: float, trials: int, seed: int) -> np.ndarray:
    """(R, R̂, k* kept) per trial, R = σ_k*/σ_k*+1 of X = U diag(signal) Vᵀ + noise, R̂ that of XΦᵀ at d = 10W.

    P-sized products run in torch (one thread, see the fixture): numpy's BLAS threads stall on a shared 2-core box.
    V = Gaussian/√P is only near-orthonormal, which does not matter: R is computed from X itself.
    """
    gen = torch.Generator().manual_seed(seed)
    d, P, r = default_sketch_dim(W), 3000, len(signal)
    out = []
    for t in range(trials):
        U = torch.linalg.qr(torch.randn(W, W, generator=gen, dtype=torch.float64))[0][:, :r]
        V = torch.randn(P, r, generator=gen, dtype=torch.float64) / math.sqrt(P)
        X = (U * torch.tensor(signal, dtype=torch.float64)) @ V.T
        X += noise / math.sqrt(P) * torch.randn(W, P, generator=gen, dtype=torch.float64)
        k, R = _gap_ratio((X @ X.T).numpy())
        Y = JLSketch(d, seed=1000 * seed + t).apply(X)
        k_hat, R_hat = _gap_ratio((Y @ Y.T).numpy())
        out.append((R, R_hat, k_hat == k))
    return np.array(out)


@pytest.mark.parametrize("W", [10, 20])
def test_gap_ratio_error_at_d_10W(W):
    """Measured gap-ratio error at d = 10W against the first-order theory E|R̂/R − 1| ≈ √(2/(πd)).

    For signal directions, R̂/R ≈ ‖Φv_k‖/‖Φv_k+1‖ with independent χ²_d/d squared norms, so log R̂ − log R has
    standard deviation 1/√d: mean error 8.0 % at W = 10 (d = 100), 5.6 % at W = 20 (d = 200). The spec's
    "≤ 5.7 % at d = 10W" (§6.17) is met at W = 20 and not at W = 10 — a property of Gaussian JL at that d, not of
    this implementation. Measured here (fixed seeds, 300 windows each): 7.9 % at W = 10, 5.7 % at W = 20.
    """
    signal = [10.0, 8.0] + [2.0 * 0.8**i for i in range(W - 2)]  # full rank, k* = 2, R = 4
    res = _sketched_ratios(W, signal, noise=0.0, trials=300, seed=W)
    err = float(np.mean(np.abs(res[:, 1] / res[:, 0] - 1)))
    theory = math.sqrt(2 / (math.pi * default_sketch_dim(W)))
    print(f"W={W} d={10 * W}: mean |R̂/R − 1| = {err:.4f} (theory {theory:.4f}), k* kept {res[:, 2].mean():.2f}")
    assert res[:, 2].all()
    # Monte Carlo standard error of the mean ≈ 0.75·theory/√300 ≈ 4 % of theory; allow 20 % (first-order theory).
    assert abs(err / theory - 1) < 0.20


def test_gap_ratio_into_noise_bulk_is_biased_low():
    """When σ_k*+1 is the edge of an isotropic noise bulk, the sketch inflates the bulk (W×d instead of W×P:
    Marchenko–Pastur edge ∝ 1 + √(w/d) rather than 1 + √(w/P)), so R̂ is biased low — measured ≈ −16 % at
    d = 10W (W = 10, rank-2 signal). Use exact Grams when k* sits at the signal/bulk boundary."""
    res = _sketched_ratios(10, [8.0, 2.0], noise=0.1, trials=60, seed=3)
    bias = float(np.mean(res[:, 1] / res[:, 0]))
    print(f"W=10 d=100, gap into the bulk: mean R̂/R = {bias:.3f}")
    assert 0.75 < bias < 0.92


def test_sketched_rolling_gram_is_unbiased_estimate():
    """Sketch per atom, push sketched deltas: E[sketched Gram] = Gram, averaged over seeds."""
    rng = np.random.default_rng(8)
    slices, W, d = [(0, 300), (300, 500)], 4, 40
    X = rng.standard_normal((W, 500))
    acc = np.zeros((W, W))
    trials = 60
    for s in range(trials):
        sk = JLSketch(d, seed=s)
        g = RollingGram(W, [d, d], {"all": [0, 1], "b": [1]}, dtype=torch.float64)
        theta_prev = sk.apply_atoms(torch.zeros(500, dtype=torch.float64), slices)
        theta = torch.zeros(500, dtype=torch.float64)
        for row in X:
            theta = theta + torch.from_numpy(row)
            cur = sk.apply_atoms(theta, slices)
            g.push(cur - theta_prev)  # Φθ_t − Φθ_{t−1} = Φδ_t
            theta_prev = cur
        acc += g.gram("all")
    G = X @ X.T
    norms = np.sqrt(np.diag(G))
    # entrywise std ≈ ‖a‖‖b‖·√(2/d)/√trials (each atom sketched independently; ≤ that bound)
    assert np.all(np.abs(acc / trials - G) < 5 * np.outer(norms, norms) * math.sqrt(2 / d / trials))


def test_sketch_errors():
    with pytest.raises(SpectralEdgeError):
        JLSketch(0, seed=1)
    with pytest.raises(SpectralEdgeError):
        JLSketch(10, seed=-1)
    with pytest.raises(ShapeMismatchError):
        JLSketch(10, seed=1).apply(torch.zeros(2, 3, 4))
    with pytest.raises(ShapeMismatchError):
        JLSketch(10, seed=1).apply_atoms(torch.zeros(2, 3), [(0, 3)])
    assert default_sketch_dim(10) == 100
