"""verify.studies.defect: the commutator defect against the exact quadratic formula (theory reference §6.15),
non-interference with
training, the adaptive η of dyck_scan, and the onset detectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from theory import registry
from verify.harness.config import preset
from verify.harness.loop import train
from verify.harness.runner import spectral_monitor_factory
from verify.studies.defect import (
    commutator_defect,
    defect_delta,
    defect_pair,
    onset_ratio,
    onset_step,
    onset_sustained,
)
from verify.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

N = 6


class Quadratic(nn.Module):
    """θ ∈ ℝ^N (float64); the batch (H, b) defines L(θ) = ½θᵀHθ + bᵀθ, so g = Hθ + b and the Hessian is H."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        H, b = batch
        return 0.5 * self.theta @ H @ self.theta + b @ self.theta


def quad_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    return model(batch)


def random_batch(g: torch.Generator) -> tuple[Tensor, Tensor]:
    a = torch.randn(N, N, generator=g, dtype=torch.float64)
    return a @ a.T / N + torch.eye(N, dtype=torch.float64), torch.randn(N, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("eta", [1e-3, 0.1])
def test_quadratic_matches_exact_formula(seed: int, eta: float) -> None:
    """θ_AB − θ_BA = η²(H_B g_A − H_A g_B) exactly for quadratics, at any η (theory reference §6.15)."""
    g = torch.Generator().manual_seed(seed)
    theta0 = torch.randn(N, generator=g, dtype=torch.float64)
    (Ha, ba), (Hb, bb) = random_batch(g), random_batch(g)
    model = Quadratic(theta0)
    delta, na, nb, used = defect_delta(model, quad_loss, (Ha, ba), (Hb, bb), eta=eta)
    ga, gb = Ha @ theta0 + ba, Hb @ theta0 + bb
    exact = eta**2 * (Hb @ ga - Ha @ gb)
    assert used == eta and na == pytest.approx(float(ga.norm()), rel=1e-12) and nb == pytest.approx(float(gb.norm()))
    torch.testing.assert_close(delta["theta"], exact, rtol=1e-8, atol=1e-14 * float(exact.norm()) + 1e-300)
    # the literal definition (two sequential steps each way) gives the same δ
    t_ab = theta0 - eta * ga - eta * (Hb @ (theta0 - eta * ga) + bb)
    t_ba = theta0 - eta * gb - eta * (Ha @ (theta0 - eta * gb) + ba)
    torch.testing.assert_close(delta["theta"], t_ab - t_ba, rtol=1e-6, atol=1e-15)
    D, _ = defect_pair(model, quad_loss, (Ha, ba), (Hb, bb), eta=eta)
    assert D == pytest.approx(float(exact.norm()) / (eta**2 * float(ga.norm() * gb.norm()) + 1e-12), rel=1e-8)


def test_defect_vanishes_exactly_when_hessian_gradient_products_agree() -> None:
    g = torch.Generator().manual_seed(0)
    theta0 = torch.randn(N, generator=g, dtype=torch.float64)
    (H, ba), (_, bb) = random_batch(g), random_batch(g)
    model = Quadratic(theta0)
    assert defect_pair(model, quad_loss, (H, ba), (H, ba))[0] == 0.0  # the same batch twice commutes
    # H_A = H_B with g_B = 2 g_A (parallel gradients) does NOT commute: δ = η²H(g_A − g_B) = −η²H g_A ≠ 0. The
    # spec's "D = 0 when H_A = H_B and g_A ∥ g_B" needs g_A = g_B; the exact condition is H_B g_A = H_A g_B.
    ga = H @ theta0 + ba
    bb = 2 * ga - H @ theta0
    D, _ = defect_pair(model, quad_loss, (H, ba), (H, bb), eta=1e-3)
    assert D == pytest.approx(float((H @ ga).norm()) / (2 * float(ga.norm()) ** 2), rel=1e-6)
    # commuting case with different batches: H_A = H_B and b_A − b_B in the kernel of H (H singular)
    u = torch.randn(N, generator=g, dtype=torch.float64)
    u = u / u.norm()
    P = torch.eye(N, dtype=torch.float64) - torch.outer(u, u)
    Hs = P @ H @ P  # Hs u = 0
    delta, *_ = defect_delta(model, quad_loss, (Hs, ba), (Hs, ba + 3 * u), eta=1e-2)
    assert float(delta["theta"].norm()) < 1e-15


def test_adaptive_eta_raises_eta_for_tiny_gradients() -> None:
    """dyck_scan: if min(η‖g_A‖, η‖g_B‖) < 1e-6 then η ← min(1e-6 / min(‖g_A‖, ‖g_B‖), 1)."""
    g = torch.Generator().manual_seed(1)
    (Ha, ba), (Hb, bb) = random_batch(g), random_batch(g)
    theta_star = -torch.linalg.solve(Ha, ba)  # the minimum of L_A: g_A(θ*) = 0
    theta0 = theta_star + 1e-6 * torch.randn(N, generator=g, dtype=torch.float64)
    model = Quadratic(theta0)
    ga = Ha @ theta0 + ba
    _, fixed = defect_pair(model, quad_loss, (Ha, ba), (Hb, bb), eta=1e-3)
    D, adaptive = defect_pair(model, quad_loss, (Ha, ba), (Hb, bb), eta=1e-3, adaptive_eta=True)
    assert fixed == 1e-3
    assert adaptive == pytest.approx(min(1e-6 / float(ga.norm()), 1.0))
    assert np.isfinite(D)
    # gradients large enough: η unchanged
    assert defect_pair(Quadratic(theta0 + 1.0), quad_loss, (Ha, ba), (Hb, bb), eta=1e-3, adaptive_eta=True)[1] == 1e-3


def test_measuring_leaves_the_model_alone() -> None:
    task = get_task("modular")
    cfg = preset("tiny", p=23, d_model=32)
    model = task.build_model(cfg.task_config, cfg.generator("init"), "cpu")
    data = task.make_data(cfg.task_config, cfg.generator("data"))
    gen = torch.Generator().manual_seed(0)
    pairs = [(task.sample_batch(data, 64, gen), task.sample_batch(data, 64, gen)) for _ in range(3)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    rng = torch.get_rng_state()
    res = commutator_defect(model, task.loss, pairs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    assert not model.training and not any(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    rec = res.record()
    assert rec["pairs"] == 3 and len(rec["values"]) == 3 and rec["eta"] == [1e-3] * 3
    assert 0 < rec["q25"] <= rec["D"] <= rec["q75"] <= rec["q90"] and np.isfinite(rec["D"])
    assert rec["D"] == float(np.median(rec["values"]))


def test_measurements_never_change_the_training_trajectory(tmp_path) -> None:
    """Defect and probes at every 5th step (diagnostics stream, isolated RNG) vs none: bitwise the same run."""
    cfg = preset("tiny", p=23, d_model=32, max_steps=30, eval_every=10, early_stop=None,
                 monitor={"window": 3, "every": 5})
    plain = train(cfg, progress=False)
    measured_cfg = cfg.with_overrides(defect={"every": 5, "pairs": 2, "batch_size": 32},
                                      probes={"every": 5, "k": 2, "batch_size": 32})
    measured = train(measured_cfg, progress=False, monitor_factory=spectral_monitor_factory(tmp_path / "run.jsonl"))
    sa, sb = plain.model.state_dict(), measured.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert plain.history.metrics == measured.history.metrics
    assert [r["step"] for r in measured.history.defect] == list(range(0, 31, 5))
    assert all(np.isfinite(r["D"]) and r["D"] > 0 for r in measured.history.defect)
    # probes start once the window holds k = 2 updates (step 10 with Δs = 5), in both groups
    assert sorted({r["step"] for r in measured.history.probes}) == [10, 15, 20, 25, 30]
    assert {r["group"] for r in measured.history.probes} == {"all", "attn"}
    assert all(len(r["h"]) == len(r["G_train"]) == len(r["G_val"]) == 2 and np.all(np.isfinite(r["h"]))
               for r in measured.history.probes)


# --- onset detectors ---------------------------------------------------------------------------------------------


def test_onset_ratio_author_rule() -> None:
    steps = list(range(0, 800, 100))
    assert onset_ratio(steps, [1, 1.2, 0.9, 1, 15, 25, 30, 40]) == 500  # > 10 × 1 and > 20
    assert onset_ratio(steps[:5], [0.01, 0.01, 0.01, 2, 21]) == 400  # baseline floored at 0.1
    assert onset_ratio(steps[:4], [1, 100, 1, 1]) is None  # index 1 < 2 is never an onset
    assert onset_ratio(steps[:4], [1, 1, 1, 15]) is None  # 10× but not > 20
    assert onset_ratio(steps[:5], [1, 1, 1, 15, 6], floor=5.0) == 300  # slow-regime threshold
    assert onset_ratio([], []) is None
    with pytest.raises(ValueError, match="length"):
        onset_ratio([0, 1], [1.0])


def test_onset_sustained_needs_two_in_a_row() -> None:
    base = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.1, 0.9, 1.0]  # mean 1, σ ≈ 0.063 → threshold ≈ 1.19
    steps = list(range(0, 1500, 100))
    d = [*base, 5.0, 1.0, 5.0, 6.0, 7.0]  # single spike at 1000, sustained from 1200
    assert onset_sustained(steps, d) == 1200
    assert onset_sustained(steps[:11], d[:11]) is None  # too short to sustain
    assert onset_sustained(steps, [*base, 1.0, 1.1, 1.0, 1.0, 1.1]) is None


def test_onset_definitions_are_registered() -> None:
    names = {d.name for d in registry.variants("defect_onset")}
    assert {"10x&>20", "10x&>5", "mean+3sd,x2"} <= names
    steps, d = list(range(8)), [1, 1, 1, 1, 11, 30, 30, 30]
    assert onset_step(steps, d) == onset_ratio(steps, d) == 5
    assert onset_step(steps, d, "10x&>5") == 4
