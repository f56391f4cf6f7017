"""LCH coupling (verify.studies.lch): finite differences against the exact derivative, planted gradient windows with a
known top direction and a known coupling, the live hook in the training loop (non-interference), configs and claims."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.trajectory import TrajectoryWriter
from verify.harness.config import preset, stream_seed
from verify.store import LCHRecord
from verify.studies.lch import (
    GradientWindow,
    centroid_response,
    centroids,
    claim_rows,
    coupling,
    lch_seed,
    unit_directions,
)
from verify.studies.lch_claims import peak_R, peak_R1
from verify.tasks.modular import ModularConfig, attention_weight_names, init_model


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _small_model(seed: int = 0, p: int = 7) -> nn.Module:
    cfg = ModularConfig(p=p, n_layers=1, d_model=16, n_heads=2, d_ff=32)
    return init_model(cfg.architecture(), torch.Generator().manual_seed(seed))


def _inputs(p: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, p, (40, 2), generator=g)
    return x, (x[:, 0] + x[:, 1]) % p


class _Linear(nn.Module):
    """logits = head(mean_pos attn(tok_emb(x))): μ_x = ∇_e ℓ_y = Wᵀh_y/2 per position, linear in W, so the central
    difference is exact and A(V) = mean_x 2‖Vᵀh_y/2‖²."""

    def __init__(self, p: int = 5, d: int = 4) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.tok_emb = nn.Embedding(p, d)
        self.attn = nn.Module()
        self.attn.q_proj = nn.Linear(d, d, bias=False)
        self.head = nn.Linear(d, p, bias=False)
        with torch.no_grad():
            for prm in self.parameters():
                prm.copy_(torch.randn(prm.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn.q_proj(self.tok_emb(x)).mean(dim=1))


# --- centroids and their response --------------------------------------------------------------------------------


def test_centroid_is_the_embedding_gradient_of_the_label_logit():
    model = _Linear()
    x = torch.tensor([[0, 1], [2, 4], [3, 3]])
    y = torch.tensor([1, 0, 4])
    mu = centroids(model, x, y).reshape(3, 2, -1)
    W, H = model.attn.q_proj.weight.detach(), model.head.weight.detach()
    for i in range(3):
        want = W.T @ H[y[i]] / 2  # ∂/∂e_t of h_yᵀW(e_0 + e_1)/2
        assert torch.allclose(mu[i, 0], want, atol=1e-6) and torch.allclose(mu[i, 1], want, atol=1e-6)


def test_response_is_the_known_quadratic_form_on_a_linear_model():
    model = _Linear()
    x = torch.tensor([[0, 1], [2, 4], [3, 3], [1, 1]])
    y = torch.tensor([1, 0, 4, 2])
    V = torch.randn(4, 4, generator=torch.Generator().manual_seed(5))
    H = model.head.weight.detach()
    want = float(np.mean([2 * float(((V / V.norm()).T @ H[yi] / 2).pow(2).sum()) for yi in y]))
    for eps in (0.05, 0.5):  # exact at any ε: μ is linear in W (float32 rounding aside)
        got = centroid_response(model, ["attn.q_proj.weight"], V.reshape(-1), eps, x, y)
        assert got == pytest.approx(want, rel=1e-4)


def test_central_difference_matches_the_exact_directional_derivative():
    """Twin: d/dε μ_x(θ + εv) by forward-over-reverse autodiff on the author's (small) transformer."""
    model = _small_model()
    x, y = _inputs()
    names = attention_weight_names(model)
    params = {n: p.detach() for n, p in model.named_parameters() if n in names}
    P = sum(p.numel() for p in params.values())
    v = unit_directions(1, P, torch.Generator().manual_seed(2))[0]
    tangents, off = {}, 0
    for n, p in params.items():
        tangents[n] = v[off:off + p.numel()].view(p.shape)
        off += p.numel()
    emb0 = model.tok_emb(x).detach()

    def mu(ps: dict[str, torch.Tensor]) -> torch.Tensor:
        def label_logit_sum(e: torch.Tensor) -> torch.Tensor:
            h = model.tok_emb.register_forward_hook(lambda *_: e)
            try:
                return functional_call(model, ps, (x,), strict=False).gather(1, y[:, None]).sum()
            finally:
                h.remove()
        return torch.func.grad(label_logit_sum)(emb0)

    model.eval()
    with sdpa_kernel(SDPBackend.MATH):
        _, dmu = jvp(mu, (params,), (tangents,))
    exact = float(dmu.detach().reshape(len(x), -1).double().pow(2).sum(1).mean())
    norm = math.sqrt(sum(float(p.pow(2).sum()) for p in params.values()))
    got = centroid_response(model, names, v, 0.005 * norm, x, y)
    assert got == pytest.approx(exact, rel=2e-2)


def test_response_does_not_modify_the_model():
    model = _small_model()
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    model.train()
    x, y = _inputs()
    names = attention_weight_names(model)
    P = sum(p.numel() for n, p in model.named_parameters() if n in names)
    centroid_response(model, names, torch.ones(P), 0.1, x, y)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())


@pytest.mark.parametrize("bad", ["zero", "nan", "shape", "eps"])
def test_bad_directions_and_eps_are_named(bad):
    model = _Linear()
    x, y = torch.tensor([[0, 1]]), torch.tensor([1])
    v, eps = torch.ones(16), 0.1
    if bad == "zero":
        v = torch.zeros(16)
    elif bad == "nan":
        v = torch.full((16,), float("nan"))
    elif bad == "shape":
        v = torch.ones(15)
    else:
        eps = 0.0
    with pytest.raises((SpectralEdgeError, ShapeMismatchError)):
        centroid_response(model, ["attn.q_proj.weight"], v, eps, x, y)


def test_missing_embedding_module_is_an_error():
    model = _Linear()
    with pytest.raises(SpectralEdgeError, match="embedding"):
        centroids(model, torch.tensor([[0, 1]]), torch.tensor([1]), embedding="wte")


# --- planted gradient windows ------------------------------------------------------------------------------------


def _planted_loss(u: torch.Tensor):
    """L(θ; s) = s·⟨W, U⟩: its gradient is s·U, whatever θ — the window's top direction is U/‖U‖."""
    def loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return float(batch) * (model.attn.q_proj.weight * u).sum()
    return loss


def test_gradient_window_recovers_a_planted_direction_and_its_known_coupling():
    model = _Linear()
    U = torch.randn(4, 4, generator=torch.Generator().manual_seed(7))
    win = GradientWindow(model, ["attn.q_proj.weight"], 4, 1.0, _planted_loss(U))
    for s in (1.0, -2.0, 0.5):
        win.batch = s
        win.push(model)
    X = win.gram.window("attn").double().numpy()
    assert np.allclose(X, np.outer([1.0, -2.0, 0.5], U.reshape(-1).numpy()), atol=1e-6)
    v1 = win.directions(1)[0]
    assert abs(float(v1 @ (U.reshape(-1) / U.norm()))) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(v1 @ torch.as_tensor(np.linalg.svd(X)[2][0], dtype=torch.float32))) == pytest.approx(1.0, abs=1e-6)
    sigma = win.sigma()
    assert sigma[1] < 1e-3 * sigma[0]  # rank 1 up to float32 rounding

    x = torch.tensor([[0, 1], [2, 4], [3, 3], [1, 1]])
    y = torch.tensor([1, 0, 4, 2])
    H = model.head.weight.detach()

    def A(V: torch.Tensor) -> float:
        Vm = (V / V.norm()).reshape(4, 4)
        return float(np.mean([2 * float((Vm.T @ H[yi] / 2).pow(2).sum()) for yi in y]))

    rand = unit_directions(9, 16, torch.Generator().manual_seed(4))
    rec = coupling(model, ["attn.q_proj.weight"], {"grad": v1[None], "none": None}, x, y, rand)
    med = float(np.median([A(r) for r in rand]))
    assert rec["A_rand_median"] == pytest.approx(med, rel=1e-5)
    assert rec["R_grad"][0] == pytest.approx(A(U.reshape(-1)) / med, rel=1e-5)
    assert rec["R_none"] is None
    assert rec["eps"] == pytest.approx(0.005 * float(model.attn.q_proj.weight.detach().norm()), rel=1e-6)


def test_gradient_is_the_autograd_gradient_of_the_fixed_batch():
    model = _small_model()
    x, y = _inputs()
    names = attention_weight_names(model)
    loss = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    win = GradientWindow(model, names, 3, (x, y), loss)
    g = win.gradient(model)
    model.eval()
    loss(model, (x, y)).backward()
    named = dict(model.named_parameters())
    want = torch.cat([named[n].grad.reshape(-1) for n in win.names])
    assert torch.allclose(g, want, atol=1e-6)


def test_random_directions_are_unit_and_seeded():
    a = unit_directions(5, 100, torch.Generator().manual_seed(0))
    b = unit_directions(5, 100, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.allclose(a.norm(dim=1), torch.ones(5))


def test_lch_stream_is_not_a_training_or_diag_stream():
    for s in (0, 42):
        mine = lch_seed(s)
        assert all(mine != stream_seed(s, name) for name in ("data", "init", "batch", "diag", "global"))


# --- the live hook ---------------------------------------------------------------------------------------------


def _tiny(**kw):
    base = dict(p=23, max_steps=100, eval_every=50, monitor={"window": 5, "every": 10, "groups": ["attn"]})
    return preset("tiny", **{**base, **kw})


def test_live_tiny_run_records_lch_and_leaves_training_unchanged(tmp_path):
    from verify.harness.loop import train
    from verify.harness.runner import spectral_monitor_factory

    lch = {"every": 50, "grad_every": 10, "window": 5, "n_probe": 64, "n_random": 3, "grad_batch": 64,
           "modes": "final"}
    on = train(_tiny(lch=lch), monitor_factory=spectral_monitor_factory(tmp_path / "on.jsonl"), progress=False)
    off = train(_tiny(), monitor_factory=spectral_monitor_factory(tmp_path / "off.jsonl"), progress=False)
    assert on.history.test_acc == off.history.test_acc and on.history.train_loss == off.history.train_loss
    assert all(torch.equal(a, b) for a, b in zip(on.model.state_dict().values(), off.model.state_dict().values(),
                                                  strict=True))
    recs = on.history.lch
    assert [r["step"] for r in recs] == [50, 100]
    for r in recs:
        assert len(r["R_grad"]) == 3 and len(r["R_update"]) == 3 and len(r["A_rand"]) == 3
        assert all(x > 0 and math.isfinite(x) for x in r["R_grad"] + r["R_update"])
    assert "modes" in recs[-1] and "modes" not in recs[0]
    assert len(recs[-1]["modes_v"]) == 2 and "modes_centred" in recs[-1]
    lines = [json.loads(s) for s in (tmp_path / "on.jsonl").read_text().splitlines()[1:]]
    assert sum(r["type"] == "lch" for r in lines) == 2


@pytest.mark.parametrize("bad", [
    {"lch": {"every": 50, "k": 6}},
    {"lch": {"every": 50}, "monitor": {"groups": ["all"]}},
    {"lch": {"every": 50, "eps_rel": 0.0}},
])
def test_bad_lch_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        _tiny(**bad)


# --- claims -----------------------------------------------------------------------------------------------------


def _store(root, op, seed, r_grad, r_upd, end=True):
    d = root / "lch"
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"task_config": {"op": op, "p": 97}, "init_seed": seed, "weight_decay": 1.0, "grok_threshold": 0.95}
    with TrajectoryWriter(d / f"modular-{op}-p97-wd1-s{seed}.jsonl", provenance={"config": cfg}) as w:
        w.write("eval", 100, test_acc=0.99)
        for i, (g, u) in enumerate(zip(r_grad, r_upd, strict=True)):
            w.write("lch", 100 * (i + 1), group="attn", R_grad=[g, g / 2, 1.0], R_update=[u, 1.0, 1.0])
        if end:
            w.write("end", 300)


def test_claim_rows_pass_fail_and_inconclusive(tmp_path):
    rows = claim_rows(tmp_path)
    assert {r.verdict for r in rows} == {"INCONCLUSIVE"}
    for op in ("add", "mul"):
        for s in (1, 2, 3):
            _store(tmp_path, op, s, [50.0, 150.0 + s], [2.0, 5.0])
    _store(tmp_path, "add", 9, [1.0], [50.0], end=False)  # unfinished: left out
    rows = claim_rows(tmp_path)
    assert [r.verdict for r in rows] == ["PASS", "PASS", "PASS", "INCONCLUSIVE"]
    _store(tmp_path, "sub", 1, [20.0, 25.0], [30.0, 12.0])  # gradient peak 25 < 100 and < update peak 30 > 9
    rows = claim_rows(tmp_path)
    assert [r.verdict for r in rows] == ["FAIL", "FAIL", "FAIL", "INCONCLUSIVE"]
    assert "sub 25" in rows[0].reason and "sub 30" in rows[1].reason
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    rows[0].plot(fig)  # draws without error on the planted runs
    assert len(fig.axes) == 2


def test_peak_is_the_max_over_measurements_and_directions():
    recs = [LCHRecord(100 * i, {"R_grad": R}) for i, R in enumerate([[3.0, 9.0], None, [7.0, 1.0]])]
    assert peak_R(recs, "grad") == 9.0 and peak_R([LCHRecord(0, {"R_update": None})], "update") is None


def test_centred_directions_match_the_svd_of_the_centred_window():
    from numerics.gram import RollingGram
    from verify.studies.lch import centred_directions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 40)) + 3.0 * rng.normal(size=40)  # a common drift that centring removes
    gram = RollingGram(4, 40)
    for row in X:
        gram.push(torch.as_tensor(row, dtype=torch.float32))
    V = centred_directions(gram, "all", 2).double().numpy()
    Xw = X[-4:] - X[-4:].mean(axis=0)
    Vt = np.linalg.svd(Xw, full_matrices=False)[2][:2]
    assert np.allclose(np.abs(np.sum(V * Vt, axis=1)), 1.0, atol=1e-5)


def test_lch_without_the_spectral_monitor_is_an_error():
    from verify.harness.loop import train

    cfg = _tiny(max_steps=10, lch={"every": 5, "window": 5, "n_probe": 8, "n_random": 2, "grad_batch": 8})
    with pytest.raises(SpectralEdgeError, match="spectral monitor"):
        train(cfg, progress=False)


# --- the gradient window W = 1 and the W ablation ------------------------------------------------------------------


def test_w1_direction_is_the_normalised_gradient_of_the_fixed_batch():
    from numerics.errors import NonFiniteUpdateError, WindowTooSmallError, ZeroWindowError

    model = _small_model()
    x, y = _inputs()
    names = attention_weight_names(model)
    loss = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    win = GradientWindow(model, names, 1, (x, y), loss)
    assert win.gram is None and win.w == 0 and win.sigma() == []
    with pytest.raises(WindowTooSmallError, match="empty"):
        win.directions(1)
    win.push(model)
    model.eval()
    loss(model, (x, y)).backward()  # the brute-force twin: autograd's .grad, normalised
    named = dict(model.named_parameters())
    g = torch.cat([named[n].grad.reshape(-1) for n in win.names]).double()
    for k in (1, 3):  # one direction only, whatever k
        V = win.directions(k)
        assert V.shape == (1, g.numel())
        assert torch.allclose(V[0].double(), g / g.norm(), atol=1e-6)
    assert win.w == 1 and win.sigma() == pytest.approx([float(g.norm())], rel=1e-5)
    # the one-row window's SVD agrees: v_1 = g/‖g‖ up to sign, σ_1 = ‖g‖
    _, S, Vt = np.linalg.svd(g.numpy()[None], full_matrices=False)
    assert abs(float(V[0].double() @ torch.as_tensor(Vt[0]))) == pytest.approx(1.0, abs=1e-6)
    assert win.sigma()[0] == pytest.approx(float(S[0]), rel=1e-5)
    # a newer gradient replaces the old one (W = 1 keeps the latest only)
    U = torch.randn(16, 16, generator=torch.Generator().manual_seed(2))
    lin = _Linear(d=16)
    w1 = GradientWindow(lin, ["attn.q_proj.weight"], 1, 2.0, _planted_loss(torch.ones(16, 16)))
    w1.push(lin)
    w1.loss_fn = _planted_loss(U)
    w1.push(lin)
    assert torch.allclose(w1.directions(1)[0], (U / U.norm()).reshape(-1), atol=1e-6)
    w1.batch = 0.0
    w1.push(lin)
    with pytest.raises(ZeroWindowError):
        w1.directions(1)
    w1.batch = float("nan")
    with pytest.raises(NonFiniteUpdateError):
        w1.push(lin)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "x", None])
def test_bad_gradient_windows_are_rejected_with_a_clear_error(bad):
    from numerics.errors import WindowTooSmallError

    with pytest.raises(ValueError, match=r"lch\.window"):
        _tiny(lch={"every": 50, "window": bad})
    if isinstance(bad, int):
        with pytest.raises(WindowTooSmallError, match="W must be an integer ≥ 1"):
            GradientWindow(_Linear(), ["attn.q_proj.weight"], bad, 1.0, _planted_loss(torch.ones(4, 4)))


def test_gradient_window_is_independent_of_the_monitor_window():
    cfg = _tiny(lch={"every": 50, "window": 1})  # k = 3 > W = 1 is fine: W = 1 has one direction by definition
    assert cfg.lch.window == 1 and cfg.lch.k == 3 and cfg.monitor.window == 5
    assert _tiny(lch={"every": 50, "window": 40, "k": 3}).lch.window == 40
    with pytest.raises(ValueError, match="exceeds a window"):
        _tiny(lch={"every": 50, "window": 2, "k": 3})


def test_live_w1_run_measures_one_gradient_direction(tmp_path):
    from verify.harness.loop import train
    from verify.harness.runner import spectral_monitor_factory

    lch = {"every": 20, "grad_every": 5, "window": 1, "n_probe": 16, "n_random": 2, "grad_batch": 16,
           "modes": "off"}
    out = train(_tiny(max_steps=20, lch=lch), monitor_factory=spectral_monitor_factory(tmp_path / "w1.jsonl"),
                progress=False)
    recs = out.history.lch
    assert [r["step"] for r in recs] == [0, 20]  # W = 1 has its direction from the first push on
    for rec in recs:
        assert rec["window"] == 1 and rec["w_grad"] == 1 and len(rec["R_grad"]) == 1
        assert len(rec["sigma_grad"]) == 1 and rec["R_grad"][0] > 0


def _store_w(root, sub, op, seed, W, r1s, step0=None):
    d = root / sub
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"task_config": {"op": op, "p": 97}, "init_seed": seed, "lch": {"window": W}}
    with TrajectoryWriter(d / f"modular-{op}-p97-wd1-s{seed}.jsonl", provenance={"config": cfg}) as w:
        if step0 is not None:  # a measurement the other windows do not have
            w.write("lch", 0, group="attn", window=W, R_grad=[step0], R_update=None)
        for i, r in enumerate(r1s):
            w.write("lch", 100 * (i + 1), group="attn", window=W, R_grad=[r, 2 * r][:1 if W == 1 else 2],
                    R_update=[5.0])
        w.write("end", 300)


def _window_row(root):
    (row,) = [r for r in claim_rows(root) if "by window" in r.claim]
    return row


def test_window_row_pass_fail_and_inconclusive(tmp_path):
    recs = [LCHRecord(100 * i, {"R_grad": R}) for i, R in enumerate([[3.0, 90.0], None, [7.0]])]
    assert peak_R1(recs) == 7.0  # R_1 only, not max_k
    assert peak_R1(recs, steps={0}) == 3.0
    assert _window_row(tmp_path).verdict == "INCONCLUSIVE"
    _store_w(tmp_path, "lch", "add", 1, 20, [50.0, 200.0])
    _store_w(tmp_path, "lch-window/w40", "add", 1, 40, [30.0, 100.0])
    row = _window_row(tmp_path)
    assert row.verdict == "INCONCLUSIVE" and "[20, 40]" in row.reason  # W = 1 missing
    _store_w(tmp_path, "lch-window/w1", "add", 1, 1, [600.0, 10.0], step0=5000.0)  # step 0: not common, ignored
    _store_w(tmp_path, "lch-window/w1", "mul", 7, 1, [900.0])  # no W = 20 / 40 partner: left out
    row = _window_row(tmp_path)
    assert row.verdict == "PASS" and "n = 1" in row.measured
    assert row.details["peak_R1"]["add-s1"] == {1: 600.0, 20: 200.0, 40: 100.0}
    assert row.details["peak_max_k_R"]["add-s1"] == {1: 600.0, 20: 400.0, 40: 200.0}  # R_2 = 2·R_1 planted
    assert f"{600 / 648:.2f}× claim" in row.measured and f"{100 / 140:.2f}× claim" in row.measured
    _store_w(tmp_path, "lch-window/w40", "add", 1, 40, [30.0, 250.0])  # R(40) = 250 > R(20) = 200: order broken
    row = _window_row(tmp_path)
    assert row.verdict == "FAIL" and "order broken in add s1" in row.reason
