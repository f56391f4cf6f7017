"""JLSketch as kept panel + sign-and-shift hash: unbiased, the √(2/d) / √(2/(πd)) error curves, O(P) cost, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from numerics.monitor import SpectralMonitor
from numerics.sketch import JLSketch, default_sketch_dim


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_multi_block_matrix_matches_apply_and_float64_input():
    sk = JLSketch(12, seed=7, chunk=12 * 50)  # M = 50 columns: P = 437 is 9 blocks, the last one partial
    assert sk.columns_per_block == 50
    x = torch.randn(437, generator=torch.Generator().manual_seed(1))
    Phi = sk.matrix(437, atom=3)
    y = sk.apply(x, atom=3)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, Phi @ x.double(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sk.apply(x.double(), atom=3), y, rtol=1e-12, atol=1e-12)
    rows = torch.stack([x, -2 * x])  # exact in float32
    torch.testing.assert_close(sk.apply(rows, atom=3), torch.stack([y, -2 * y]), rtol=1e-12, atol=1e-12)


def test_expected_phi_t_phi_is_identity_across_blocks():
    """Monte Carlo over seeds with P = 3M: E[ΦᵀΦ] = I including the entries of colliding blocks."""
    d, M, n, trials = 6, 4, 12, 600
    acc = np.zeros((n, n))
    for s in range(trials):
        Phi = JLSketch(d, seed=s, chunk=d * M).matrix(n).numpy()
        acc += Phi.T @ Phi
    mean = acc / trials
    # (ΦᵀΦ)_ii: variance 2/d; off-diagonal ≤ (1 + 1)/d (a collision adds ±‖z‖²/d); 5 standard errors
    assert np.all(np.abs(np.diag(mean) - 1) < 5 * math.sqrt(2 / d / trials))
    assert np.all(np.abs(mean[~np.eye(n, dtype=bool)]) < 5 * math.sqrt(2 / d / trials))


@pytest.mark.parametrize("P", [3000, 40_000])  # one block (exact Gaussian) and 10 blocks of M = 4096
def test_norm_and_inner_product_errors_follow_theory(P):
    """Over 300 independent Φ: ‖Φx‖²/‖x‖² − 1 has mean 0 and std √(2/d)·√(1 + d/M·[P > M]); ⟨Φa,Φb⟩ has mean
    ⟨a,b⟩ and variance (‖a‖²‖b‖² + ⟨a,b⟩²)/d times the same factor (module docstring of numerics.sketch)."""
    d, M, trials = 64, 4096, 300
    g = torch.Generator().manual_seed(P)
    a = torch.randn(P, generator=g, dtype=torch.float64)
    b = 0.5 * a + torch.randn(P, generator=g, dtype=torch.float64)
    factor = 1 + d / M if P > M else 1.0
    norm_err, ips = np.empty(trials), np.empty(trials)
    for s in range(trials):
        sk = JLSketch(d, seed=s, chunk=d * M)
        ya, yb = sk.apply(torch.stack([a, b]))
        norm_err[s] = float(ya @ ya / (a @ a)) - 1
        ips[s] = float(ya @ yb)
    sd = math.sqrt(2 / d * factor)
    assert abs(norm_err.mean()) < 4 * sd / math.sqrt(trials)
    assert abs(norm_err.std() / sd - 1) < 0.15  # sample std: relative standard error ≈ 4 %
    ab, aa, bb = float(a @ b), float(a @ a), float(b @ b)
    var = (aa * bb + ab**2) / d * factor
    assert abs(ips.mean() - ab) < 4 * math.sqrt(var / trials)
    assert abs(ips.var() / var - 1) < 0.25


def _gap_ratio(G: np.ndarray) -> float:
    s = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(G))[::-1], 0, None))
    return float((s[:-1] / s[1:]).max())


def test_gap_ratio_error_curve_when_atoms_exceed_the_panel():
    """W = 10, d = 100, P = 20 000 > M = 2048 (10 blocks): E|R̂/R − 1| ≈ √(2/(πd))·√(1 + d/M) within 20 %."""
    W, M, P, trials = 10, 2048, 20_000, 200
    d = default_sketch_dim(W)
    gen = torch.Generator().manual_seed(11)
    signal = torch.tensor([10.0, 8.0] + [2.0 * 0.8**i for i in range(W - 2)], dtype=torch.float64)
    errs = []
    for t in range(trials):
        U = torch.linalg.qr(torch.randn(W, W, generator=gen, dtype=torch.float64))[0]
        X = (U * signal) @ (torch.randn(P, W, generator=gen, dtype=torch.float64) / math.sqrt(P)).T
        Y = JLSketch(d, seed=500 + t, chunk=d * M).apply(X)
        errs.append(abs(_gap_ratio((Y @ Y.T).numpy()) / _gap_ratio((X @ X.T).numpy()) - 1))
    theory = math.sqrt(2 / (math.pi * d)) * math.sqrt(1 + d / M)
    assert abs(float(np.mean(errs)) / theory - 1) < 0.20


def test_same_seed_same_projection_in_fresh_objects_and_any_call_order():
    x = torch.randn(70_000, generator=torch.Generator().manual_seed(2))
    a = JLSketch(20, seed=9)
    ya = [a.apply(x[:5000], atom=1), a.apply(x, atom=4)]
    b = JLSketch(20, seed=9)
    yb4 = b.apply(x, atom=4)  # other order, other caches
    yb1 = b.apply(x[:5000], atom=1)
    assert torch.equal(ya[0], yb1) and torch.equal(ya[1], yb4)
    assert not torch.allclose(ya[1], JLSketch(20, seed=10).apply(x, atom=4))


def test_sketch_of_theta_differences_in_float64():
    """Φθ_t − Φθ_{t−1} = Φδ_t to float64 rounding even when ‖θ‖/‖δ‖ = 1e6 (float32 accumulation would give ~10 %)."""
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(50_000, generator=g, dtype=torch.float64)
    delta = 1e-6 * torch.randn(50_000, generator=g, dtype=torch.float64)
    sk = JLSketch(40, seed=1)
    diff = sk.apply(theta + delta) - sk.apply(theta)
    ref = sk.apply(delta)
    assert float((diff - ref).norm() / ref.norm()) < 1e-6


def test_cost_and_memory_do_not_scale_with_d_times_P():
    """P = 2²¹: nothing of size d·P is formed; the kept panel is d·M float64 whatever P."""
    d = 100
    sk = JLSketch(d, seed=0)
    sk.apply(torch.randn(1 << 21))
    M = sk.columns_per_block
    assert M == 1 << 14 and sk.memory_bytes() <= (d + 1) * M * 8


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(40, 300)  # 12 300 parameters: more than M = 4096 below, so several blocks
        self.b = nn.Linear(300, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


def _run(model, opt, data, start, steps):
    for s in range(start, start + steps):
        x, y = data[s % len(data)]
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_sketched_monitor_resume_gives_identical_records(tmp_path, monkeypatch):
    import numerics.sketch as sketch_mod

    monkeypatch.setattr(sketch_mod, "_MAX_PANEL_ENTRIES", 12 * 4096)  # M = 4096 at d = 12: multi-block atoms

    def setup():
        torch.manual_seed(0)
        model = _Net()
        return model, torch.optim.SGD(model.parameters(), lr=0.05)

    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 40, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(16)]
    m1, o1 = setup()
    ref = SpectralMonitor(m1, o1, window=3, every=1, sketch_dim=12, sketch_seed=5)
    assert ref.sketch.columns_per_block == 4096
    _run(m1, o1, data, 0, 10)
    m2, o2 = setup()
    mon = SpectralMonitor(m2, o2, window=3, every=1, sketch_dim=12, sketch_seed=5)
    _run(m2, o2, data, 0, 5)
    torch.save({"model": m2.state_dict(), "opt": o2.state_dict(), "mon": mon.state_dict()}, tmp_path / "c.pt")
    mon.detach()
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    m3, o3 = setup()
    m3.load_state_dict(state["model"])
    o3.load_state_dict(state["opt"])
    mon3 = SpectralMonitor(m3, o3, window=3, every=1, sketch_dim=12, sketch_seed=5)
    mon3.load_state_dict(state["mon"])
    _run(m3, o3, data, 5, 5)
    a = [r["sigma"] for r in ref.records if r["type"] == "spectrum" and r["step"] > 5]
    b = [r["sigma"] for r in mon3.records if r["type"] == "spectrum"]
    assert len(a) == 5 and a == b  # bitwise
