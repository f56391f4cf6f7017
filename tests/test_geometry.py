"""The geometry measurement (verify/studies/geometry.py; criteria.toml [geometry.*]): its offline helpers against
numpy and known values, the Hessian Lanczos on a quadratic model, and a live tiny multi-task run (record fields,
training unchanged, kill-and-resume bitwise)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.trajectory import read_trajectory
from verify.harness.config import preset
from verify.harness.measurement import RunContext
from verify.harness.runner import train_with_monitor
from verify.studies import geometry
from verify.studies.geometry import (
    FlatModel,
    GeometryConfig,
    GeometryMeasurement,
    centred_directions,
    geometry_seed,
    hessian_ritz,
    k_at,
    matrix_ranks,
    pc1_share,
    pca_spectrum,
    power_law_fit,
    random_walk_null,
    residual_ratio,
    spike_step,
    trajectory_gram,
    uncentred_directions,
)
from verify.tasks import get_task

BOOKKEEPING = {"interrupted", "end", "resume", "resumed"}


def trajectory_rows(seed: int = 0, n: int = 6, P: int = 40) -> list[torch.Tensor]:
    """n rows with a drift (so the uncentred and centred spectra differ) and distinct singular values."""
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.standard_normal((n, P)) * np.linspace(2.0, 0.5, P) + 0.3, axis=0)
    return [torch.from_numpy(x) for x in X]


def gram(rows: list[torch.Tensor]) -> np.ndarray:
    X = torch.stack(rows).numpy()
    return X @ X.T


def same_span(A: np.ndarray, B: np.ndarray) -> None:
    """Columns of A and B orthonormal and equal up to sign, column by column."""
    np.testing.assert_allclose(A.T @ A, np.eye(A.shape[1]), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(A * B, axis=0)), 1.0, atol=1e-8)


# --- PCA of the trajectory ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5])
def test_centred_directions_are_the_svd_of_the_centred_rows(k: int) -> None:
    rows = trajectory_rows()
    X = torch.stack(rows).numpy()
    _, s, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    B = centred_directions(rows, gram(rows), k).numpy()
    assert B.shape == (40, k)
    same_span(B, Vt[:k].T)
    np.testing.assert_allclose(pca_spectrum(gram(rows), centred=True)[:5], s[:5] ** 2, rtol=1e-9)


def test_centred_rank_is_at_most_n_minus_one() -> None:
    rows = trajectory_rows(n=4)
    assert centred_directions(rows, gram(rows), 8).shape == (40, 3)  # centring removes one dimension
    assert uncentred_directions(rows, gram(rows), 8).shape == (40, 4)


def test_uncentred_directions_are_the_svd_of_the_rows() -> None:
    rows = trajectory_rows(seed=1)
    X = torch.stack(rows).numpy()
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    same_span(uncentred_directions(rows, gram(rows), 3).numpy(), Vt[:3].T)
    np.testing.assert_allclose(pca_spectrum(gram(rows), centred=False), s**2, rtol=1e-9)
    assert pca_spectrum(gram(rows), centred=False)[0] > pca_spectrum(gram(rows), centred=True)[0]  # the drift


def test_float32_rows_give_the_same_directions() -> None:
    rows = trajectory_rows(seed=2)
    B64 = centred_directions(rows, gram(rows), 3).numpy()
    B32 = centred_directions([r.float() for r in rows], gram(rows), 3).numpy()
    np.testing.assert_allclose(B32.T @ B32, np.eye(3), atol=1e-12)  # re-orthonormalised in float64
    np.testing.assert_allclose(np.abs(np.sum(B32 * B64, axis=0)), 1.0, atol=1e-5)


def test_k_at_and_pc1_share() -> None:
    lam = [5.0, 3.0, 1.0, 1.0]  # cumulative shares 0.5, 0.8, 0.9, 1.0
    assert k_at(lam) == 4 and k_at(lam, 0.8) == 2 and k_at(lam, 0.5) == 1 and k_at(lam, 0.85) == 3
    assert k_at([1.0, 5.0, 3.0, 1.0], 0.8) == 2  # order does not matter
    assert pc1_share(lam) == 0.5
    assert k_at([0.0, 0.0]) == 0 and np.isnan(pc1_share([0.0, 0.0]))
    with pytest.raises(SpectralEdgeError, match="coverage"):
        k_at(lam, 0.0)


def test_residual_ratio() -> None:
    rows = trajectory_rows()
    B = centred_directions(rows, gram(rows), 3)
    inside = B @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g = torch.randn(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    outside = g - B @ (B.T @ g)
    assert residual_ratio(inside, B) == pytest.approx(0.0, abs=1e-12)
    assert residual_ratio(outside, B) == pytest.approx(1.0, abs=1e-12)
    mixed = 3 * B[:, 0] + 4 * outside / outside.norm()
    assert residual_ratio(mixed, B) == pytest.approx(0.8, abs=1e-12)
    assert np.isnan(residual_ratio(torch.zeros(40, dtype=torch.float64), B))


def test_trajectory_gram_rebuilds_k_from_the_records() -> None:
    rows = trajectory_rows()
    K = gram(rows)
    recs = [{"dots_all": list(K[i, : i + 1]), "dots_attn": [1.0] * (i + 1)} for i in range(len(rows))]
    np.testing.assert_array_equal(trajectory_gram(recs), K)
    assert trajectory_gram(recs, "dots_attn").shape == (6, 6)
    with pytest.raises(ShapeMismatchError, match="missing"):
        trajectory_gram(recs[:2] + recs[3:])


# --- the nulls and the statistics of the claim rows ------------------------------------------------------------------


def test_random_walk_null_pc1_of_brownian_motion() -> None:
    """Many checkpoints of a Brownian motion in high dimension: PC1 share 8/π² ≈ 0.811 uncentred (Karhunen–Loève
    of min(s, t)), 6/π² ≈ 0.608 centred."""
    unc = random_walk_null(np.ones(100), 100_000, lambda K: pc1_share(pca_spectrum(K, False)), draws=20, seed=0)
    cen = random_walk_null(np.ones(100), 100_000, lambda K: pc1_share(pca_spectrum(K, True)), draws=20, seed=0)
    assert unc.shape == (20,)
    assert np.median(unc) == pytest.approx(8 / np.pi**2, abs=0.01)
    assert np.median(cen) == pytest.approx(6 / np.pi**2, abs=0.01)


def test_random_walk_null_bartlett_matches_direct_draws() -> None:
    stat = lambda K: pc1_share(pca_spectrum(K, False))  # noqa: E731
    norms = np.linspace(1.0, 3.0, 8)
    direct = random_walk_null(norms, 12, stat, draws=1500, seed=1, method="direct")
    bart = random_walk_null(norms, 12, stat, draws=1500, seed=2, method="bartlett")
    assert direct.mean() == pytest.approx(bart.mean(), abs=0.01)
    assert direct.std() == pytest.approx(bart.std(), rel=0.1)
    # the step norms are honoured: the Gram's diagonal differences give them back
    K = []
    random_walk_null(norms, 1000, lambda G: K.append(G) or 0.0, draws=1, seed=3)
    d = np.sqrt(np.diag(K[0])[0]), np.sqrt(K[0][1, 1] - 2 * K[0][1, 0] + K[0][0, 0])
    assert d == pytest.approx((1.0, norms[1]))
    assert np.array_equal(random_walk_null(norms, 50, stat, seed=4), random_walk_null(norms, 50, stat, seed=4))
    with pytest.raises(SpectralEdgeError, match="bartlett"):
        random_walk_null(norms, 5, stat, method="bartlett")  # P < n
    assert random_walk_null(norms, 5, stat, draws=2).shape == (2,)  # auto: direct for P < n


def test_spike_step() -> None:
    steps = [100, 200, 300, 400, 500, 600]
    assert spike_step(steps, [1.0, 2.0, 1.5, 4.0, 6.1, 9.0]) == 500  # > 3 × median(1, 2, 1.5) = 4.5
    assert spike_step(steps, [1.0, 2.0, 1.5, 5.0, 1.0, 1.0]) == 400
    assert spike_step(steps, [1.0, 9.0, 1.5, 1.0, 1.0, 1.0]) is None  # a spike before `start` does not count
    assert spike_step(steps, [1.0, 2.0, 1.5, 4.0, 4.5, 4.4]) is None  # 4.5 is not > 4.5
    assert spike_step(steps[:3], [1.0, 1.0, 1.0]) is None  # too few records
    assert spike_step(steps, [1.0, 1.0, 1.0, np.nan, 2.0, 3.5]) == 600
    assert spike_step(steps, [1.0, 2.0, 1.5, 4.0, 4.6, 4.4], factor=2.0) == 400
    with pytest.raises(ShapeMismatchError):
        spike_step(steps, [1.0])


def test_power_law_recovers_a_planted_exponent() -> None:
    rng = np.random.default_rng(0)
    x = np.geomspace(500, 20_000, 12)
    y = 3.0 * x**0.7 * np.exp(rng.normal(0.0, 0.05, len(x)))
    beta, (lo, hi), r2 = power_law_fit(x, y, boot_reps=500, seed=1)
    assert beta == pytest.approx(0.7, abs=0.05) and lo < 0.7 < hi and lo > 0 and r2 > 0.95
    assert power_law_fit(x, y, boot_reps=500, seed=1) == (beta, (lo, hi), r2)  # seeded
    flat = np.exp(np.resize([1.0, -1.0, -1.0, 1.0], len(x)))  # no trend: the interval holds 0, R² small
    _, (lo0, hi0), r20 = power_law_fit(x, flat, boot_reps=500, seed=1)
    assert lo0 < 0 < hi0 and r20 < 0.5
    with pytest.raises(SpectralEdgeError):
        power_law_fit([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(SpectralEdgeError, match="equal"):
        power_law_fit([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])


def test_matrix_ranks() -> None:
    lin = nn.Linear(8, 6)
    U = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))[0]
    V = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 8)))[0]
    s = np.array([10.0, 1.0, 0.1])  # s² shares 0.990, 0.0099, 1e-4: rank95 = 1, numerical rank 3
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy((U[:, :3] * s) @ V[:, :3].T))
    model = nn.Sequential(lin, nn.LayerNorm(6))
    (rec,) = matrix_ranks(model)  # the LayerNorm's 1-D weight is not a matrix
    assert rec == {"name": "0.weight", "shape": [6, 8], "rank": 3, "rank95": 1, "full": 6}


# --- Hessian Lanczos ------------------------------------------------------------------------------------------------


class Quadratic(nn.Module):
    """L(θ) = ½ θᵀAθ + cᵀθ with θ = (w, b) split over two parameters (A and c come in the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, 9))
        self.b = nn.Parameter(torch.ones(3))


def quad_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    A, c = batch
    theta = torch.cat([model.w, model.b])
    return 0.5 * theta @ A @ theta + c @ theta


def test_hessian_ritz_on_a_quadratic_is_the_projected_top_eigenvalue() -> None:
    rng = np.random.default_rng(0)
    M = rng.standard_normal((12, 12))
    A = M + M.T
    c = rng.standard_normal(12)
    u = rng.standard_normal(12)
    u /= np.linalg.norm(u)
    model = Quadratic()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flat = FlatModel(model, quad_loss)
    theta = torch.cat([model.w, model.b]).detach().double()
    batch = (torch.from_numpy(A), torch.from_numpy(c))
    ritz, lam_par, loss = hessian_ritz(flat, batch, theta, torch.from_numpy(u), iters=11,
                                       generator=torch.Generator().manual_seed(0))
    perp = np.linalg.svd(np.eye(12) - np.outer(u, u))[0][:, :11]  # basis of u^⊥
    np.testing.assert_allclose(ritz, np.sort(np.linalg.eigvalsh(perp.T @ A @ perp))[::-1], atol=1e-9)
    assert lam_par == pytest.approx(u @ A @ u, abs=1e-12)
    th = theta.numpy()
    assert loss == pytest.approx(0.5 * th @ A @ th + c @ th, rel=1e-12)
    # the model is left alone: values, .grad, mode
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    assert not model.training and next(model.parameters()).dtype == torch.float32
    # float32 Hessian-vector products (hessian_dtype): the same values to float32 precision
    r32, p32, _ = hessian_ritz(FlatModel(model, quad_loss, dtype=torch.float32), batch, theta, torch.from_numpy(u),
                               iters=11, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(r32, ritz, atol=1e-5)
    assert p32 == pytest.approx(lam_par, abs=1e-5)


# --- config -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"K": 0}, {"lanczos_iters": 1}, {"Ks": [0, 2]}, {"Ks": [2, 2]}, {"Ks": []},
                                 {"eta": 0.0}, {"eps": -1.0}, {"random_bases": 0}, {"fragility_dirs": 0},
                                 {"batch_size": 0}, {"K": 2.5}, {"hessian_dtype": "float16"}, {"unknown": 1}])
def test_bad_config_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="geometry"):
        preset("tiny", "multitask", geometry={"every": 10, **bad})


def test_config_defaults_and_presets() -> None:
    g = GeometryConfig(every=100)
    assert (g.K, g.Ks, g.lanczos_iters, g.eta, g.random_bases, g.eps, g.fragility_dirs, g.batch_size) == (
        4, [1, 2, 4, 8], 20, 1e-3, 5, 0.1, 5, None)
    assert preset("cpu-tri", "multitask").geometry.every == 200
    assert preset("cpu-dual", "multitask").geometry.every is None  # the running dual sweep is left as it was
    assert preset("tiny", "multitask").geometry.every == 10
    assert GeometryConfig(every=0).every is None and g.hessian_dtype == "float64"
    assert geometry_seed(0) != geometry_seed(1) and geometry_seed(5, "plain") == 22


# --- a live tiny multi-task run ---------------------------------------------------------------------------------------

GEOM = {"every": 5, "batch_size": 64, "lanczos_iters": 8, "random_bases": 2, "fragility_dirs": 2}


def config(**over: Any):
    """23 steps (the last off the geometry cadence), checkpoints every 7, geometry every 5."""
    return preset("tiny", "multitask", **{"max_steps": 23, "eval_every": 10, "early_stop": None, "batch_size": 128,
                                          "checkpoint_every": 7, "geometry": GEOM, **over})


def records(path: Path) -> list[dict[str, Any]]:
    t = read_trajectory(path)
    return sorted((r for r in t.records if r["type"] not in BOOKKEEPING),
                  key=lambda r: (r["step"], r["type"], r.get("group", "")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("geo-ref") / "run.jsonl"
        return train_with_monitor(config(), path, progress=False), path
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_live_run_records(reference) -> None:
    result, path = reference
    geo = [r for r in records(path) if r["type"] == "geometry"]
    assert [r["step"] for r in geo] == [5, 10, 15, 20, 23]  # the last step whatever its cadence
    assert [r["step"] for r in result.history.measurements["geometry"]] == [5, 10, 15, 20, 23]
    P = sum(p.numel() for p in result.model.parameters())
    for i, r in enumerate(geo):
        assert r["n"] == i + 1 and len(r["dots_all"]) == len(r["dots_attn"]) == i + 1
        assert r["norm_all"] == pytest.approx(np.sqrt(r["dots_all"][-1]))
        assert r["norm_attn"] < r["norm_all"]
    K = trajectory_gram(geo)
    assert np.allclose(K, K.T) and np.linalg.eigvalsh(K).min() > -1e-9 * K.max()
    assert trajectory_gram(geo, "dots_attn").shape == (5, 5)
    assert "rho" not in geo[1] and "lam_perp" not in geo[1]  # fewer than 3 trajectory points
    for r in geo[2:]:
        assert r["rank"] == r["n"] - 1 and r["K_used"] == min(4, r["rank"])
        assert set(r["rho"]) == set(r["rho_random"]) == {str(k) for k in {1, 2, 4, 8, r["K_used"]} if k <= r["rank"]}
        assert all(0.0 <= v <= 1.0 for v in [*r["rho"].values(), *r["rho_random"].values()])
        assert r["rho_K"] == r["rho"][str(r["K_used"])] and r["delta_norm"] > 0
        assert np.isfinite(r["lam_perp"]) and np.isfinite(r["lam_par"]) and len(r["ritz_perp"]) == 8
        assert r["lam_perp"] == max(r["ritz_perp"]) and r["loss_fixed"] > 0
    assert all("matrix_ranks" not in r for r in geo[:-1])
    last = geo[-1]
    names = {m["name"] for m in last["matrix_ranks"]}
    assert "layers.0.attn.q_proj.weight" in names and "heads.add.weight" in names
    assert all(1 <= m["rank95"] <= m["rank"] <= m["full"] == min(m["shape"]) for m in last["matrix_ranks"])
    h = last["holographic"]
    assert 1 <= h["k"] <= 5 and h["k_used"] == h["k"]
    for key in ("acc_rec", "acc_random", "acc_final"):
        assert set(h[key]) == {"acc", "acc_add", "acc_mul"}
    assert h["acc_final"]["acc"] == pytest.approx(result.history.metrics[-1]["test_acc"])  # θ_T is the model
    f = last["fragility"]
    assert f["K_used"] == 4 and len(f["dL_perp"]) == len(f["dL_par"]) == len(f["dL_rand_par"]) == 2
    assert f["radius"] == pytest.approx(0.1 * last["norm_all"])
    assert f["ratio"] == pytest.approx(f["mean_perp"] / f["mean_par"])
    assert f["ratio_null"] == pytest.approx(f["mean_perp"] / f["mean_rand_par"])
    assert P > 0


@pytest.mark.usefixtures("one_thread")
def test_measuring_never_changes_training(reference, tmp_path) -> None:
    result, path = reference
    plain_path = tmp_path / "plain.jsonl"
    plain = train_with_monitor(config(geometry={"every": 0}), plain_path, progress=False)
    sa, sb = plain.model.state_dict(), result.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert plain.history.metrics == result.history.metrics
    assert records(plain_path) == [r for r in records(path) if r["type"] != "geometry"]  # evals, spectra, norms


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kills", [[17], [12, 22]])
def test_killed_and_resumed_run_measures_bitwise_the_same(reference, tmp_path, kills: list[int]) -> None:
    _, ref_path = reference

    class Killed(Exception):
        pass

    def killer(at: int):
        def hook(step: int) -> None:
            if step == at:
                raise Killed

        return hook

    path = tmp_path / "run.jsonl"
    for i, k in enumerate(kills):
        with pytest.raises(Killed):
            train_with_monitor(config(), path, progress=False, resume=i > 0, step_callback=killer(k))
    result = train_with_monitor(config(), path, progress=False, resume=True)
    assert result.resumed_from == 7 * ((kills[-1] - 1) // 7)
    assert records(path) == records(ref_path)


def test_state_dict_round_trip() -> None:
    cfg = config()
    task = get_task("multitask")
    model = task.build_model(cfg.task_config, cfg.generator("init"), "cpu")
    data = task.make_data(cfg.task_config, cfg.generator("data"))
    ctx = RunContext(cfg, task, data, model, SimpleNamespace(), torch.device("cpu"))
    a = GeometryMeasurement(cfg.geometry, cfg)
    a.at_setup(ctx)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    a.measure(ctx, 5, final=False)
    state = a.state_dict()
    b = GeometryMeasurement(cfg.geometry, cfg)
    b.at_setup(ctx)  # θ_0 would be the moved parameters: the state must bring the true one back
    b.load_state_dict(state)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.98)
    ra, rb = a.measure(ctx, 10, final=True), b.measure(ctx, 10, final=True)
    assert ra == rb and torch.equal(a.gen.get_state(), b.gen.get_state())


# --- the claims rows ------------------------------------------------------------------------------------------------

ROW_IDS = ["geometry.trajectory_dim", "geometry.pc1_share", "geometry.exec_manifold", "geometry.integrability",
           "geometry.orth_curvature_lead", "geometry.lead_power_law", "geometry.holographic",
           "geometry.transverse_fragility"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """Three weight-decay-1 and three weight-decay-0 tiny multi-task runs (add + mul) of 23 steps, stored under
    ``<root>/multitask-tri``: too short to grok."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("geo-runs")
    try:
        for wd in (1.0, 0.0):
            for seed in (1, 2, 3):
                path = root / "multitask-tri" / f"run-wd{wd:g}-s{seed}.jsonl"
                path.parent.mkdir(exist_ok=True)
                train_with_monitor(config(weight_decay=wd).with_seed(seed), path, progress=False)
        return root
    finally:
        torch.set_num_threads(threads)


def test_rows_without_grokking_runs_are_inconclusive(tiny_runs: Path) -> None:
    rows = geometry.claim_rows(tiny_runs)
    assert [r.criterion for r in rows] == ROW_IDS
    assert all(r.verdict == "INCONCLUSIVE" for r in rows), [(r.criterion, r.measured) for r in rows]


def test_step_norms_match_the_rows() -> None:
    rows = trajectory_rows(n=7)
    want = [float(rows[0].norm())] + [float((rows[i] - rows[i - 1]).norm()) for i in range(1, len(rows))]
    assert np.allclose(geometry.step_norms(gram(rows)), want, rtol=1e-9)


@pytest.fixture
def grokking(monkeypatch: pytest.MonkeyPatch):
    """Pretend every weight-decay run groks, each task at step 1000 (after the run: every record is "before grokking");
    the rows' logic is tested, not the tiny runs' science."""
    monkeypatch.setattr(geometry, "groks", lambda run, acc=0.9: geometry.weight_decay(run) > 0)
    monkeypatch.setattr(geometry, "grok_steps",
                        lambda run, acc=0.9: {"add": 1000, "mul": 1000} if geometry.weight_decay(run) > 0 else
                        {"add": None, "mul": None})


@pytest.mark.usefixtures("grokking")
def test_rows_score_and_their_verdict_follows_the_criterion(tiny_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {r.criterion: r for r in geometry.claim_rows(tiny_runs)}
    scored = ["geometry.trajectory_dim", "geometry.pc1_share", "geometry.integrability", "geometry.holographic"]
    for cid in scored:
        r = rows[cid]
        assert r.verdict in ("PASS", "FAIL") and r.control and r.null, (cid, r.verdict, r.measured)
    k = rows["geometry.trajectory_dim"].details["runs"]
    treated = [v for name, v in k.items() if "wd1" in name]
    assert len(treated) == 3 and all(1 <= v["k95_centred"] <= v["n"] for v in treated)
    assert all(v["null_k95"] >= 1 for v in treated)
    # the verdict follows the criterion's band: a band around the measured median passes that part, one that
    # excludes it fails the row
    med = float(np.median([v["k95_centred"] for v in treated]))
    real = geometry.criterion

    def with_band(lo: float, hi: float):
        def fake(cid: str):
            c = real(cid)
            return replace(c, params={**c.params, "k_lo": lo, "k_hi": hi}) if cid == "geometry.trajectory_dim" else c
        return fake

    monkeypatch.setattr(geometry, "criterion", with_band(med + 1, med + 2))
    assert {r.criterion: r for r in geometry.claim_rows(tiny_runs)}["geometry.trajectory_dim"].verdict == "FAIL"
