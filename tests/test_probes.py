"""numerics.probes: h_j, G_j against explicit Hessians and gradients, the AdamW split against a real optimizer step,
no side effects on the model, and no effect on the training trajectory."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.func import functional_call

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.gram import RollingGram
from numerics.layout import ParamLayout, attention_selector
from numerics.probes import (
    ablation_delta_loss,
    adamw_split,
    cross_entropy_loss,
    curvature_and_gradient,
    fixed_batches,
    gradient_projection,
    group_coordinates,
    hessian_curvature,
    split_fractions,
)
from verify.harness.config import RunConfig, preset
from verify.harness.loop import diag_generator, train
from verify.tasks.modular import ModelConfig, build_model, make_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model() -> nn.Module:
    """float64 MLP with dropout (so train/eval mode matters) and a weight group spanning non-adjacent tensors."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.5), nn.Linear(4, 3)).double()


def tiny_layout(model: nn.Module) -> ParamLayout:
    return ParamLayout.from_model(model, {"all": lambda n, p: True, "w": ["0.weight", "3.weight"],
                                          "last": ["3.weight", "3.bias"]})


def tiny_batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randint(3, (16,), generator=g)


def explicit_grad_and_hessian(model: nn.Module, layout: ParamLayout, group: str,
                              batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """∇L and H of the eval-mode loss as functions of the group's flat coordinates, from autograd.functional."""
    names = layout.param_names(group)
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss_of(flat: Tensor) -> Tensor:
        replaced, offset = {}, 0
        for n, s in zip(names, shapes, strict=True):
            k = int(np.prod(s))
            replaced[n] = flat[offset: offset + k].view(s)
            offset += k
        x, y = batch
        return nn.functional.cross_entropy(functional_call(model, replaced, (x,)), y)

    model.eval()
    grad = torch.autograd.functional.jacobian(loss_of, flat0)
    hess = torch.autograd.functional.hessian(loss_of, flat0)
    return grad, hess


@pytest.mark.parametrize("group", ["all", "w", "last"])
def test_hvp_curvature_and_gradient_match_explicit_hessian(group: str) -> None:
    model, batch = tiny_model(), tiny_batch()
    layout = tiny_layout(model)
    P_g = layout.group_dims()[group]
    V = torch.linalg.qr(torch.randn(P_g, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0].T
    h, G = curvature_and_gradient(model, cross_entropy_loss, batch, V, layout, group)
    grad, hess = explicit_grad_and_hessian(copy.deepcopy(model), layout, group, batch)
    assert h == pytest.approx(torch.einsum("kp,pq,kq->k", V, hess, V).numpy(), rel=1e-10, abs=1e-12)
    assert G == pytest.approx((V @ grad).numpy(), rel=1e-10, abs=1e-12)
    # single direction → float, and the one-purpose functions agree
    h0 = hessian_curvature(model, cross_entropy_loss, batch, V[0], layout, group)
    G0 = gradient_projection(model, cross_entropy_loss, batch, V[0], layout, group)
    assert isinstance(h0, float) and isinstance(G0, float)
    assert h0 == pytest.approx(h[0], rel=1e-12) and G0 == pytest.approx(G[0], rel=1e-12)


def test_probes_leave_params_grads_mode_and_global_rng_untouched() -> None:
    model, batch = tiny_model(), tiny_batch()
    layout = tiny_layout(model)
    model.train()
    model[2].eval()  # mixed modes must come back exactly, not as model.train(True)
    marker = torch.full_like(model[0].weight, 7.0)
    model[0].weight.grad = marker  # one parameter with a .grad, the others None
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    v = torch.randn(layout.group_dims()["all"], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # e.g. called from an optimizer hook
        hessian_curvature(model, cross_entropy_loss, batch, v, layout, "all")
        gradient_projection(model, cross_entropy_loss, batch, v, layout, "all", eval_mode=False)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert model[0].weight.grad is marker and torch.all(marker == 7.0)
    assert all(p.grad is None for n, p in model.named_parameters() if n != "0.weight")
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    assert torch.equal(torch.get_rng_state(), rng)


def test_eval_mode_makes_probes_deterministic_under_dropout() -> None:
    model, batch = tiny_model(), tiny_batch()
    layout = tiny_layout(model)
    model.train()
    v = torch.ones(layout.group_dims()["last"], dtype=torch.float64) / layout.group_dims()["last"] ** 0.5
    vals = {hessian_curvature(model, cross_entropy_loss, batch, v, layout, "last") for _ in range(3)}
    assert len(vals) == 1


def test_probes_on_the_modular_transformer_with_right_vectors() -> None:
    """Double backward through attention; v from RollingGram; h agrees with a central difference of G along v."""
    model = build_model(ModelConfig(p=11, n_layers=1, d_model=16, n_heads=2, d_ff=32), seed=0).double()
    layout = ParamLayout.from_model(model, {"all": lambda n, p: True, "attn": attention_selector()})
    gram = RollingGram(4, layout.atom_sizes, layout.groups, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        gram.push(torch.randn(layout.P, generator=g, dtype=torch.float64))
    V = gram.right_vectors("attn", 2)
    x, y, _, _ = make_dataset(11, "add", 0.5, 0)
    batch = (x[:32], y[:32])
    h, G = curvature_and_gradient(model, cross_entropy_loss, batch, V, layout, "attn")
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(G))
    params = [dict(model.named_parameters())[n] for n in layout.param_names("attn")]
    eps = 1e-4
    for j in range(2):
        shifted = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                offset = 0
                for p in params:
                    p.add_(sign * eps * V[j, offset: offset + p.numel()].view(p.shape))
                    offset += p.numel()
            shifted.append(gradient_projection(model, cross_entropy_loss, batch, V[j], layout, "attn"))
            with torch.no_grad():
                offset = 0
                for p in params:
                    p.sub_(sign * eps * V[j, offset: offset + p.numel()].view(p.shape))
                    offset += p.numel()
        assert h[j] == pytest.approx((shifted[0] - shifted[1]) / (2 * eps), rel=1e-5, abs=1e-8)


def test_group_coordinates_follow_the_group_order() -> None:
    model = tiny_model()
    layout = tiny_layout(model)
    flat = layout.gather(layout.new_flat())
    named = dict(model.named_parameters())
    for group in layout.groups:
        expected = torch.cat([named[n].detach().reshape(-1) for n in layout.param_names(group)])
        assert torch.equal(group_coordinates(flat, layout, group), expected)
    with pytest.raises(KeyError):
        group_coordinates(flat, layout, "nope")


def test_shape_errors() -> None:
    model, batch = tiny_model(), tiny_batch()
    layout = tiny_layout(model)
    with pytest.raises(ShapeMismatchError, match="group's flat"):
        hessian_curvature(model, cross_entropy_loss, batch, torch.ones(5), layout, "all")
    with pytest.raises(ShapeMismatchError, match="scalar"):
        gradient_projection(model, lambda m, b: m(b[0]).sum(1), batch, torch.ones(layout.P), layout, "all")


# --- batches -------------------------------------------------------------------------------------------------------


def test_fixed_batches_come_from_the_given_generator_only() -> None:
    rng = torch.get_rng_state()
    a = fixed_batches({"train": 100, "val": 50}, 20, torch.Generator().manual_seed(5))
    b = fixed_batches({"train": 100, "val": 50}, 20, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), rng)
    assert isinstance(a, dict) and list(a) == ["train", "val"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(set(a["train"].tolist())) == 20 and int(a["val"].max()) < 50  # without replacement, in range
    small = fixed_batches(7, 20, torch.Generator().manual_seed(5))
    assert isinstance(small, Tensor) and sorted(small.tolist()) == list(range(7))
    with pytest.raises(SpectralEdgeError, match="Generator"):
        fixed_batches(10, 2, None)  # type: ignore[arg-type]


class ProbingMonitor:
    """Measures h_j and G_j on fixed train/val batches after every optimizer step, like a predictor run would."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: RunConfig) -> None:
        self.model = model
        self.layout = ParamLayout.from_model(model, {"attn": attention_selector()})
        gen = diag_generator(config)
        tc = config.task_config
        x, y, xv, yv = make_dataset(tc.p, tc.op, tc.train_fraction, config.data_seed)
        idx = fixed_batches({"train": len(y), "val": len(yv)}, 32, gen)
        assert isinstance(idx, dict)
        self.batches = {"train": (x[idx["train"]], y[idx["train"]]), "val": (xv[idx["val"]], yv[idx["val"]])}
        self.v = torch.randn(2, self.layout.P, generator=gen)
        self.measured: list[float] = []
        optimizer.register_step_post_hook(self._after_step)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        for batch in self.batches.values():
            h, G = curvature_and_gradient(self.model, cross_entropy_loss, batch, self.v, self.layout, "attn")
            self.measured.extend([*h, *G])

    def log(self, step: int, **scalars: float) -> None:
        pass

    def close(self) -> None:
        pass


def test_training_trajectory_is_unchanged_when_probes_run() -> None:
    cfg = preset("tiny", p=23, d_model=32, max_steps=20, eval_every=10)
    plain = train(cfg, progress=False)
    probed_monitor: list[ProbingMonitor] = []

    def factory(model: nn.Module, opt: torch.optim.Optimizer, c: RunConfig) -> ProbingMonitor:
        probed_monitor.append(ProbingMonitor(model, opt, c))
        return probed_monitor[-1]

    probed = train(cfg, progress=False, monitor_factory=factory)
    assert probed.history == plain.history
    sa, sb = plain.model.state_dict(), probed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert len(probed_monitor[0].measured) == 20 * 2 * 4 and np.all(np.isfinite(probed_monitor[0].measured))


# --- AdamW split ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-15), (torch.float32, 1e-7)])
def test_adamw_split_matches_a_real_optimizer_step(dtype: torch.dtype, tol: float) -> None:
    """Same gradients into AdamW(ω) and AdamW(0): the split's Δθ_grad is AdamW(0)'s step, Δθ_wd = −ηωθ_prev."""
    g = torch.Generator().manual_seed(0)
    lr, wd = 3e-3, 0.5
    theta0 = torch.randn(50, generator=g, dtype=dtype)
    p_wd, p_plain = nn.Parameter(theta0.clone()), nn.Parameter(theta0.clone())
    # Two parameter groups with different ω: the split takes per-coordinate ω.
    opt_wd = torch.optim.AdamW([{"params": [p_wd], "weight_decay": wd}], lr=lr, betas=(0.9, 0.98))
    opt_plain = torch.optim.AdamW([p_plain], lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    for _ in range(4):  # several steps, so the Adam moments are non-trivial
        grad = torch.randn(50, generator=g, dtype=dtype)
        prev_wd, prev_plain = p_wd.detach().clone(), p_plain.detach().clone()
        p_wd.grad, p_plain.grad = grad.clone(), grad.clone()
        opt_wd.step()
        opt_plain.step()
        d_grad, d_wd = adamw_split(prev_wd, p_wd.detach(), lr, wd)
        scale = float(prev_wd.abs().max())
        assert torch.allclose(d_wd, -lr * wd * prev_wd, rtol=0, atol=0)
        assert torch.allclose(d_grad, p_plain.detach() - prev_plain, rtol=0, atol=4 * tol * scale)
        assert torch.allclose(prev_wd + d_grad + d_wd, p_wd.detach(), rtol=0, atol=4 * tol * scale)


def test_adamw_split_per_coordinate_decay() -> None:
    theta = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    omega = torch.tensor([0.1, 0.0, 0.1], dtype=torch.float64)
    d_grad, d_wd = adamw_split(theta, theta * 0.9, 0.5, omega)
    assert d_wd.tolist() == pytest.approx([-0.05, 0.0, -0.15])
    assert (d_grad + d_wd).tolist() == pytest.approx([-0.1, -0.2, -0.3])
    with pytest.raises(ShapeMismatchError):
        adamw_split(theta, theta[:2], 0.5, 0.1)


@settings(max_examples=25)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_split_fractions_lie_in_unit_interval_and_sum_to_one(seed: int, k: int) -> None:
    g = torch.Generator().manual_seed(seed)
    dg, dw, V = torch.randn(30, generator=g), torch.randn(30, generator=g), torch.randn(k, 30, generator=g)
    f_grad, f_wd = split_fractions(dg, dw, V)
    assert np.all((f_grad >= 0) & (f_grad <= 1)) and np.all((f_wd >= 0) & (f_wd <= 1))
    assert f_grad + f_wd == pytest.approx(np.ones(k))


def test_split_fractions_hand_cases() -> None:
    e1, e2 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    assert split_fractions(e1, e2, e1) == (1.0, 0.0)
    assert split_fractions(e1, -3 * e1, e1) == (0.25, 0.75)
    fg, fw = split_fractions(e1, e2, torch.tensor([0.0, 0.0, 1.0]))
    assert np.isnan(fg) and np.isnan(fw)


# --- ablation Δloss (Test 8) ----------------------------------------------------------------------------------------


def brute_force_ablation(model: nn.Module, layout: ParamLayout, group: str, batch: tuple[Tensor, Tensor],
                         v: Tensor) -> tuple[float, float]:
    """Δloss and c by writing θ − ⟨θ, v⟩v into a deep copy of the model (eval mode)."""
    clone = copy.deepcopy(model).eval()
    params = dict(clone.named_parameters())
    names = layout.param_names(group)
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    c = float(flat @ v)
    new, offset = flat - c * v, 0
    with torch.no_grad():
        base = cross_entropy_loss(clone, batch).item()
        for n in names:
            k = params[n].numel()
            params[n].copy_(new[offset: offset + k].view(params[n].shape))
            offset += k
        return cross_entropy_loss(clone, batch).item() - base, c


@pytest.mark.parametrize("group", ["all", "w", "last"])
def test_ablation_delta_loss_matches_writing_the_projected_weights(group: str) -> None:
    model, batch = tiny_model(), tiny_batch()
    layout = tiny_layout(model)
    V = torch.randn(3, layout.group_dims()[group], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    V = V / V.norm(dim=1, keepdim=True)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    model.train()
    dloss, coef = ablation_delta_loss(model, cross_entropy_loss, batch, V, layout, group)
    assert model.training and all(torch.equal(before[k], t) for k, t in model.state_dict().items())
    for j in range(3):
        want_dl, want_c = brute_force_ablation(model, layout, group, batch, V[j])
        assert coef[j] == pytest.approx(want_c, rel=1e-12, abs=1e-12)
        assert dloss[j] == pytest.approx(want_dl, rel=1e-9, abs=1e-12)


def test_ablation_is_first_order_minus_c_times_gradient_projection() -> None:
    """For a direction nearly orthogonal to θ (small c), ΔL = −c·G + O(c²)."""
    model, batch = tiny_model(), tiny_batch()
    layout = tiny_layout(model)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    r = torch.randn(layout.P, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    u = theta / theta.norm()
    r = r - (r @ u) * u
    errors = []
    for eps in (1e-2, 1e-3):
        v = (r / r.norm() + eps * u)
        v = v / v.norm()
        dl, c = ablation_delta_loss(model, cross_entropy_loss, batch, v, layout, "all")
        G = gradient_projection(model, cross_entropy_loss, batch, v, layout, "all")
        errors.append(abs(dl[0] + c[0] * G) / abs(c[0] * G))
    assert errors[1] < 0.2 * errors[0]  # the relative error of the first-order term shrinks with c


def test_ablation_shape_error() -> None:
    model = tiny_model()
    with pytest.raises(ShapeMismatchError, match="directions"):
        ablation_delta_loss(model, cross_entropy_loss, tiny_batch(), torch.ones(2, 5), tiny_layout(model), "all")


def _probe_cfg(**probes: object) -> RunConfig:
    return preset("tiny", p=23, d_model=32, max_steps=60, eval_every=20).with_overrides(
        monitor={"window": 4, "every": 5, "groups": ["attn"]}, **({"probes": probes} if probes else {}))


def test_probe_config_runs_record_ablations_and_leave_training_and_defect_unchanged() -> None:
    from verify.harness.runner import spectral_monitor_factory

    def run(cfg: RunConfig, tmp: str) -> tuple:
        res = train(cfg, progress=False, monitor_factory=spectral_monitor_factory(tmp))
        return res, res.history

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        defect = {"every": 20, "pairs": 2, "batch_size": 16}
        plain, hp = run(_probe_cfg().with_overrides(defect=defect), f"{d}/a.jsonl")
        probed, hq = run(_probe_cfg(every=10, k=3, ablation=True, batch_size=32).with_overrides(defect=defect),
                         f"{d}/b.jsonl")
    sa, sb = plain.model.state_dict(), probed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (hp.steps, hp.test_loss, hp.train_loss) == (hq.steps, hq.test_loss, hq.train_loss)
    assert hp.defect == hq.defect  # the probe batches come from their own stream, not the defect pairs'
    assert hq.probes and all(len(r["dloss_ablate"]) == 3 and len(r["theta_proj"]) == 3 for r in hq.probes)
    assert np.all(np.isfinite([x for r in hq.probes for x in r["dloss_ablate"]]))


def test_probe_stream_is_a_sub_stream_of_the_diagnostics_seed() -> None:
    from verify.harness.config import STREAMS, stream_seed

    cfg = _probe_cfg().with_seed(7)
    seeds = {s: cfg.seed(s) for s in (*STREAMS, "probe")}
    assert len(set(seeds.values())) == 5  # independent of every other stream
    assert cfg.with_overrides(diag_seed=8).seed("probe") != seeds["probe"]  # follows the diagnostics seed
    assert cfg.with_overrides(init_seed=8).seed("probe") == seeds["probe"]
    assert [stream_seed(7, s) for s in STREAMS] == [seeds[s] for s in STREAMS]  # existing streams kept
    assert cfg.with_overrides(streams="plain").seed("probe") == 7


def test_gap_pair_probes_follow_the_window_kstar() -> None:
    """probes.gap_pair: the record's modes are 1..k plus (k*, k*+1) of the window at that step."""
    import tempfile

    from numerics.trajectory import read_trajectory
    from verify.harness.runner import spectral_monitor_factory

    with tempfile.TemporaryDirectory() as d:
        res = train(_probe_cfg(every=5, k=1, gap_pair=True, batch_size=32), progress=False,
                    monitor_factory=spectral_monitor_factory(f"{d}/g.jsonl"))
        spectra = {r["step"]: r for r in read_trajectory(f"{d}/g.jsonl").spectra("attn")}
    assert res.history.probes
    assert any("modes" in rec for rec in res.history.probes)
    for rec in res.history.probes:
        if rec["step"] not in spectra:  # w = 1: no spectrum yet, no gap pair
            assert "modes" not in rec
            continue
        ks = spectra[rec["step"]]["kstar"]
        want = sorted({1, ks, ks + 1})
        assert rec.get("modes", [1]) == want if want != [1] else "modes" not in rec
        assert len(rec["h"]) == len(rec["G_train"]) == len(want)
