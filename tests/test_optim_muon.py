"""Muon on the CPU (``verify.harness.optim.Muon``): torch's algorithm with a float32 Newton–Schulz iteration.

Twins: with ``ns_dtype = bfloat16`` the step must equal ``torch.optim.Muon`` bit for bit (same momentum, lr
adjustment, weight decay and iteration); with float32 the iterate must be the approximate polar factor the iteration
is designed to give (singular values of U S' Vᵀ in a band around 1, same singular vectors as the exact U Vᵀ).
"""

from __future__ import annotations

import pytest
import torch

from verify.harness.optim import Muon, MuonAdamW, newton_schulz

COEFFS = (3.4445, -4.7750, 2.0315)


def _train(opt_cls: type[torch.optim.Optimizer], ns_dtype: torch.dtype | None = None, steps: int = 6,
           adjust: str = "match_rms_adamw", nesterov: bool = True) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    params = [torch.nn.Parameter(torch.randn(40, 24, generator=g)),
              torch.nn.Parameter(torch.randn(16, 56, generator=g))]
    opt = opt_cls(params, lr=0.02, weight_decay=0.1, adjust_lr_fn=adjust, nesterov=nesterov)
    if ns_dtype is not None:
        opt.ns_dtype = ns_dtype  # type: ignore[attr-defined]
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_bf16_twin_equals_torch_muon_bitwise(adjust: str, nesterov: bool) -> None:
    ref = _train(torch.optim.Muon, adjust=adjust, nesterov=nesterov)
    ours = _train(Muon, torch.bfloat16, adjust=adjust, nesterov=nesterov)
    assert all(torch.equal(a, b) for a, b in zip(ref, ours, strict=True))


def test_float32_differs_from_bf16_only_by_rounding() -> None:
    ref, ours = _train(torch.optim.Muon), _train(Muon)
    assert not all(torch.equal(a, b) for a, b in zip(ref, ours, strict=True))  # float32 is really used
    for a, b in zip(ref, ours, strict=True):
        assert float((a - b).abs().max()) < 1e-2 * float(a.abs().max())


@pytest.mark.parametrize("shape", [(48, 20), (20, 48), (32, 32)])
def test_float32_newton_schulz_is_an_approximate_polar_factor(shape: tuple[int, int]) -> None:
    # singular values spread over [0.05, 1] (a square Gaussian has σ_min ≈ 1/n, which 5 steps cannot lift)
    g = torch.Generator().manual_seed(sum(shape))
    k = min(shape)
    left = torch.linalg.qr(torch.randn(shape[0], k, generator=g, dtype=torch.float64))[0]
    right = torch.linalg.qr(torch.randn(shape[1], k, generator=g, dtype=torch.float64))[0]
    u = left @ torch.diag(torch.logspace(-1.3, 0, k, dtype=torch.float64)) @ right.T
    x = newton_schulz(u.float(), COEFFS, 5, 1e-7, torch.float32).double()
    assert x.dtype == torch.float64 and x.shape == u.shape
    U, _, Vh = torch.linalg.svd(u, full_matrices=False)
    s = torch.linalg.svdvals(x)
    assert float(s.min()) > 0.5 and float(s.max()) < 1.3  # the quintic's designed band around 1
    # the same singular vectors: x ≈ U S' Vᵀ, so Uᵀ x V is diagonal up to round-off
    core = U.T @ x @ Vh.T
    off = core - torch.diag(torch.diagonal(core))
    assert float(off.abs().max()) < 1e-4


def test_muon_adamw_uses_the_float32_twin_on_cpu_and_round_trips_state() -> None:
    lin = torch.nn.Linear(12, 8)
    opt = MuonAdamW([lin.weight], [lin.bias], muon=dict(lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"),
                    adamw=dict(lr=0.01))
    assert type(opt.parts[0]) is Muon
    lin(torch.randn(4, 12)).pow(2).sum().backward()
    opt.step()
    again = MuonAdamW([lin.weight], [lin.bias], muon=dict(lr=0.01, weight_decay=0.1), adamw=dict(lr=0.01))
    again.load_state_dict(opt.state_dict())
    buf = next(iter(again.parts[0].state.values()))["momentum_buffer"]
    assert torch.equal(buf, next(iter(opt.parts[0].state.values()))["momentum_buffer"])
