"""PSD check at the round-off of the dots (numerics.spectrum.psd_tolerance) and float32 accumulation of bf16 rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import numerics.gram as gram_mod
from numerics.errors import SpectralEdgeError
from numerics.gram import RollingGram
from numerics.monitor import SpectralMonitor
from numerics.spectrum import PSD_SAFETY, gram_eigenvalues, psd_tolerance, spectrum_from_gram

U32 = 2.0**-24


def test_tolerance_formula_and_dtypes():
    G = np.diag([3.0, 1.0])
    tol = psd_tolerance(G, n_terms=10_000, dot_dtype="float32")
    assert tol == pytest.approx((PSD_SAFETY * U32 * 100 + 2 * np.finfo(float).eps) * 4.0)
    assert psd_tolerance(G, n_terms=10_000, dot_dtype=torch.float32) == tol
    assert psd_tolerance(G, n_terms=10_000, dot_dtype=np.float32) == tol
    assert psd_tolerance(G, n_terms=10_000, dot_dtype="float64") < tol * 1e-8
    assert psd_tolerance(G, dot_dtype=torch.bfloat16) > psd_tolerance(G, dot_dtype="float16") > psd_tolerance(G)
    with pytest.raises(SpectralEdgeError, match="dot_dtype"):
        psd_tolerance(G, dot_dtype="int8")


def _with_low_eigenvalue(low: float) -> np.ndarray:
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0]
    return (Q * np.array([2.0, 1.0, 0.5, low])) @ Q.T


def test_negative_eigenvalue_within_tolerance_is_clipped_and_recorded():
    G = _with_low_eigenvalue(0.0)
    tol = psd_tolerance(G, n_terms=1000)
    spec = spectrum_from_gram(_with_low_eigenvalue(-0.5 * tol), P=1000)
    assert spec.lam[-1] == 0.0 and spec.sigma[-1] == 0.0
    assert spec.psd_clipped == pytest.approx(-0.5 * tol, rel=1e-6) and spec.psd_tol == pytest.approx(tol, rel=1e-4)
    d = spec.to_dict()
    assert d["psd_clipped"] == spec.psd_clipped and d["psd_tol"] == spec.psd_tol
    assert gram_eigenvalues(_with_low_eigenvalue(-0.5 * tol), n_terms=1000)[-1] == 0.0
    # an exact Gram records nothing (eigensolver noise stays below the float64 floor)
    X = np.random.default_rng(1).standard_normal((3, 50))
    clean = spectrum_from_gram(np.vstack([X, X[:1] + X[1:2]]) @ np.vstack([X, X[:1] + X[1:2]]).T, P=50)
    assert clean.psd_clipped == 0.0 and "psd_clipped" not in clean.to_dict()


def test_genuinely_indefinite_matrix_is_refused_naming_both_numbers():
    with pytest.raises(SpectralEdgeError, match=r"smallest eigenvalue -1 against largest 3, beyond the round-off"):
        spectrum_from_gram(np.array([[1.0, 2.0], [2.0, 1.0]]), P=10**7)  # loosest float32 tolerance: still refused
    G = _with_low_eigenvalue(0.0)
    tol = psd_tolerance(G, n_terms=1000)
    with pytest.raises(SpectralEdgeError, match="not positive semidefinite"):
        spectrum_from_gram(_with_low_eigenvalue(-2 * tol), P=1000)
    # float64 dots: the strict tolerance refuses what float32 dots would excuse
    with pytest.raises(SpectralEdgeError, match="not positive semidefinite"):
        spectrum_from_gram(_with_low_eigenvalue(-1e-9), P=1000, dot_dtype="float64")
    assert spectrum_from_gram(_with_low_eigenvalue(-1e-9), P=1000).lam[-1] == 0.0


def test_float32_dots_of_scaled_rows_exceed_the_old_1e8_check_but_not_the_tolerance():
    """Exactly dependent rows v·c_t, float32 storage: λ_min ≈ −5e-8·λ₁ (the old fixed 1e-8·λ₁ refused it)."""
    v = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    g = RollingGram(6, 10_000)
    for t in range(6):
        g.push(v * float(1 + 0.37 * t))
    G = g.gram()
    lam = np.linalg.eigvalsh(G)
    assert lam[0] < -1e-8 * lam[-1]
    spec = g.spectrum()  # dot_dtype unknown: checked against float32 dots, float64 zero floor
    assert spec.psd_clipped == pytest.approx(lam[0], rel=1e-6) and -lam[0] < spec.psd_tol
    twin = spectrum_from_gram(g.recompute(), P=10_000, dot_dtype="float64")  # float64 dots of the same rows
    assert np.all(np.abs(spec.lam - twin.lam) <= spec.psd_tol)
    # rank 1: float64 dots give λ_2 at round-off, 0 or ~1e-15·λ_1 as the LAPACK build has it (both seen), under the
    # twin's own tolerance; in float32 the clipped −ν marks the round-off level and the noise eigenvalues up to 4ν are
    # zeroed with it, so the window reads as a rank drop (R = +inf, k* = 1)
    assert 0.0 <= twin.lam[1] <= twin.psd_tol
    assert spec.kstar == 1 and spec.R == math.inf
    known = g.spectrum(dot_dtype=g.dot_dtype)
    assert np.all(np.abs(known.lam - twin.lam) <= known.psd_tol) and known.kstar == 1 and known.R > 1e3


def _dependent_run(storage: torch.dtype, steps: int = 8):
    """Linear(100, 100), θ₀ = 0, fixed gradient on a 2⁻¹⁰ grid, lr_t = 1, 2, 3, …: δ_t = −lr_t·g exactly."""
    model = nn.Linear(100, 100)
    gen = torch.Generator().manual_seed(4)
    grads = [torch.randint(-1000, 1000, p.shape, generator=gen).float() / 1024 for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    mon = SpectralMonitor(model, opt, window=5, every=1, storage_dtype=storage)
    for t in range(steps):
        for p, gr in zip(model.parameters(), grads, strict=True):
            p.grad = gr.clone()
        opt.param_groups[0]["lr"] = float(t % 3 + 1)
        opt.step()
    return [r for r in mon.records if r["type"] == "spectrum"]


def test_monitor_with_linearly_dependent_updates_runs_through_and_matches_float64_twin():
    got, twin = _dependent_run(torch.float32), _dependent_run(torch.float64)
    assert len(got) == len(twin) == 7  # every capture from w = 2 on: nothing raised
    worst = 0.0
    for a, b in zip(got, twin, strict=True):
        G = np.asarray(a["gram"])[-a["w"]:, -a["w"]:]
        tol = psd_tolerance(G, n_terms=10_100)
        worst = min(worst, float(np.linalg.eigvalsh(G)[0]) / float(np.trace(G)))
        assert np.all(np.abs(np.asarray(a["lam"]) - np.asarray(b["lam"])) <= tol)
        # rank 1: float64 reads λ_2 = 0 exactly (R = +inf → None); float32 either clips a negative round-off
        # eigenvalue (then zeroes the noise with it: R = +inf too) or keeps a positive λ_2 ≲ 1e-6·λ_1 (R > 1e3)
        assert b["lam"][1] == 0.0 and b["R"] is None and a["kstar"] == b["kstar"] == 1
        assert a["R"] is None or a["R"] > 1e3
    assert worst < -1e-8  # the old fixed check (−1e-8·λ₁, λ₁ = trace at rank 1) raised from optimizer.step()


def test_bf16_storage_accumulates_in_float32_without_a_bf16_product(monkeypatch):
    """bf16 rows: the Gram equals float64 dots of the same (rounded) rows within float32 accumulation, and equals
    a float32 window fed the upcast rows within the same bound; no bf16 mv/dot/matmul is ever called."""
    real_mv, real_dot = torch.mv, torch.dot

    def mv(a, b, *args, **kw):
        assert a.dtype == b.dtype == torch.float32
        return real_mv(a, b, *args, **kw)

    def dot(a, b, *args, **kw):
        assert a.dtype != torch.bfloat16
        return real_dot(a, b, *args, **kw)

    monkeypatch.setattr(torch, "mv", mv)
    monkeypatch.setattr(torch, "dot", dot)
    rng = np.random.default_rng(6)
    W, sizes = 4, [70_000, 5, 30_000]  # several upcast chunks per atom (128 KiB / (4·5) = 6553 columns on CPU)
    bf = RollingGram(W, sizes, {"all": [0, 1, 2], "b": [1, 2]}, dtype=torch.bfloat16)
    f32 = RollingGram(W, sizes, {"all": [0, 1, 2], "b": [1, 2]}, dtype=torch.float32)
    assert bf.dot_dtype == torch.float32 and bf._upcast_cols == gram_mod._UPCAST_BYTES["cpu"] // (4 * (W + 1)) < 70_000
    rows = []
    for _ in range(2 * W):
        d = torch.from_numpy(rng.standard_normal(sum(sizes)) * 10.0 ** rng.uniform(-2, 2)).to(torch.bfloat16)
        rows.append(d.double())
        bf.push(d)
        f32.push(d.float())
    X = torch.stack(rows[-W:]).numpy()
    norms = np.linalg.norm(X, axis=1)
    n = max(sizes)
    bound = n * U32 / (1 - n * U32) * np.outer(norms, norms)  # γ_n‖a‖‖b‖ (Higham Thm 3.5)
    for group in ("all", "b"):
        assert np.all(np.abs(bf.gram(group) - bf.recompute(group)) <= bound)
        assert np.all(np.abs(bf.gram(group) - f32.gram(group)) <= 2 * bound)
    assert np.all(np.abs(bf.gram() - X @ X.T) <= bound)
    assert bf._scratch is not None and bf._scratch.numel() <= (W + 1) * bf._upcast_cols  # bounded extra memory
    monkeypatch.setattr(torch, "mv", real_mv)
    v_bf, v_32 = bf.right_vectors(k=2), f32.right_vectors(k=2)
    assert v_bf.dtype == torch.bfloat16
    torch.testing.assert_close(v_bf.float(), v_32, rtol=2**-7, atol=2**-7 * float(v_32.abs().max()))
