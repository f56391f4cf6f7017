"""Li₂ (issue 8, part 1): the workload, the lock-in detector on planted trajectories, the Theorem-6 identity and its
statistic, the claims rows, and a tiny live run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from numerics.monitor import SpectralMonitor
from numerics.trajectory import read_trajectory
from theory import registry
from theory.derivation import all_derivations
from theory.li2 import (
    full_projector_gram,
    leave_pair_out_similarity,
    pair_schur_block,
    repulsion_statistic,
    ridge_inverse,
)
from verify.grokking import first_crossing
from verify.harness.config import preset
from verify.harness.loop import train
from verify.store import load_run
from verify.studies.li2 import Li2Run, claim_rows, li2_monitor_factory, li2_rows, slim_trajectory
from verify.studies.li2_detector import eigen_ratio, fire_epoch, late_median, slope_signal
from verify.tasks import get_task
from verify.tasks.li2 import Li2Config, Li2MLP, centred_mse, li2_split
from verify.theorems import CATALOGUE, run_theorem

# --- the workload ------------------------------------------------------------------------------------------------


def test_split_sizes_and_labels() -> None:
    x, y, xt, yt = li2_split(71, 2016, torch.Generator().manual_seed(0))
    assert x.shape == (2016, 2) and len(yt) == 71 * 71 - 2016
    allx = torch.cat([x, xt])
    assert len({tuple(r) for r in allx.tolist()}) == 71 * 71  # every pair exactly once
    assert torch.equal(torch.cat([y, yt]), (allx[:, 0] + allx[:, 1]) % 71)
    with pytest.raises(ValueError, match="n_train"):
        li2_split(5, 25, torch.Generator())
    with pytest.raises(ValueError, match="no test pairs"):
        Li2Config(M=5, n_train=25)


@pytest.mark.parametrize("activation", ["square", "relu"])
def test_hidden_is_the_one_hot_product(activation: str) -> None:
    M, K = 7, 5
    model = Li2MLP(M, K, activation)
    model.reset_parameters(torch.Generator().manual_seed(1))
    x, _, _, _ = li2_split(M, 20, torch.Generator().manual_seed(2))
    X = torch.cat([torch.nn.functional.one_hot(x[:, 0], M), torch.nn.functional.one_hot(x[:, 1], M)], 1).float()
    pre = X @ model.W  # the twin: the literal one-hot matrix product σ(XW)
    want = pre**2 if activation == "square" else torch.relu(pre)
    torch.testing.assert_close(model.hidden(x), want)
    # init: U(±1/√(2M)) and U(±1/√K)
    assert float(model.W.detach().abs().max()) <= 1 / math.sqrt(2 * M)
    assert float(model.V.detach().abs().max()) <= 1 / math.sqrt(K)


def test_centred_mse_is_the_expanded_form() -> None:
    g = torch.Generator().manual_seed(3)
    M = 6
    out, y = torch.randn(9, M, generator=g), torch.randint(M, (9,), generator=g)
    out_zm = out - out.mean(1, keepdim=True)
    # ‖P⊥ŷ‖² − 2⟨P⊥ŷ, e_y⟩ + (1 − 1/M), per sample, averaged (Tian's code as the bridge copies it)
    want = (out_zm.pow(2).sum(1) - 2 * out_zm.gather(1, y[:, None]).squeeze(1) + (1 - 1 / M)).mean()
    torch.testing.assert_close(centred_mse(out, y, M), want)


def test_adam_weight_decay_is_coupled_l2() -> None:
    """One step of the configured optimiser equals Adam on ∇L + ηθ written out by hand."""
    from verify.harness.optim import build_optimizer

    assert registry.get("li2_weight_decay")() == "adam"
    cfg = preset("tiny", "li2", weight_decay=0.3, lr=0.01)
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    model = torch.nn.Module()
    model.p = p
    opt = build_optimizer(model, cfg)
    grad = torch.tensor([0.5, 0.25])
    p.grad = grad.clone()
    opt.step()
    g = grad + 0.3 * torch.tensor([1.0, -2.0])
    b1, b2 = cfg.betas
    m, v = (1 - b1) * g, (1 - b2) * g * g
    want = torch.tensor([1.0, -2.0]) - 0.01 * (m / (1 - b1)) / ((v / (1 - b2)).sqrt() + cfg.eps)
    torch.testing.assert_close(p.detach(), want)


def test_presets_and_monitor_group() -> None:
    paper = preset("paper", "li2")
    assert paper.task_config.K == 2048 and paper.max_steps == 400 and paper.optimizer == "adam"
    assert paper.weight_decay == 2e-4 and paper.grad_clip is None and paper.early_stop is None
    assert paper.monitor.window == 20 and paper.monitor.every == 1 and paper.monitor.groups == ["task"]
    assert preset("control", "li2").weight_decay == 0 and preset("relu", "li2").task_config.activation == "relu"
    task = get_task("li2")
    model = task.build_model(paper.task_config, torch.Generator().manual_seed(0), "cpu")
    from verify.harness.runner import monitor_groups

    groups = monitor_groups(model, ["task"], "li2")
    mon = SpectralMonitor(model, torch.optim.Adam(model.parameters()), window=3, every=1, groups=groups)
    assert mon.layout.group_dims() == {"first_layer": 2 * 71 * 2048}  # P = 2MK, the first layer only
    mon.close()


# --- the detector on planted trajectories -----------------------------------------------------------------------


def _brute_fire(steps: np.ndarray, ratio: np.ndarray, thr: float = 0.04, lag: int = 25, t_min: int = 100) -> int | None:
    lr = {int(s): math.log(max(float(r), 1e-6)) for s, r in zip(steps, ratio, strict=True) if np.isfinite(r)}
    for t in sorted(lr):
        if t >= t_min and t - lag in lr and (lr[t] - lr[t - lag]) / lag > thr:
            return t
    return None


def test_fire_epoch_on_planted_ramp() -> None:
    steps = np.arange(401)
    onset, rate = 150, 0.1  # log ρ flat, then rising at 0.1 per epoch from epoch 150
    ratio = np.exp(np.where(steps < onset, 0.0, rate * (steps - onset)))
    # s(t) = 0.1·(t − 150)/25 for t ∈ [150, 175]: first > 0.04 at t = 161
    assert fire_epoch(steps, ratio) == 161 == _brute_fire(steps, ratio)
    # a ramp that ends before t_min does not count; a flat run never fires
    early = np.exp(np.clip(rate * (steps - 20), 0, 5.0))
    assert fire_epoch(steps, early) is None
    assert fire_epoch(steps, np.full(401, 3.0)) is None
    # matched by step value: a gap gives NaN, never a shifted difference
    s = slope_signal(np.array([0, 25, 30, 55]), np.exp([0.0, 1.0, 2.0, 4.0]))
    assert np.isnan(s[0]) and np.isclose(s[1], 1 / 25) and np.isnan(s[2]) and np.isclose(s[3], 2 / 25)


@given(st.lists(st.floats(-3, 3), min_size=130, max_size=260), st.floats(0.005, 0.2))
def test_fire_epoch_matches_brute_force(logs: list[float], thr: float) -> None:
    steps = np.arange(len(logs))
    ratio = np.exp(np.cumsum(logs) / 10)
    assert fire_epoch(steps, ratio, threshold=thr) == _brute_fire(steps, ratio, thr)


def test_ratio_helpers_and_bad_input() -> None:
    assert math.isnan(eigen_ratio([1.0, 0.5])) and eigen_ratio([3.0, 2.0, 0.0]) == math.inf
    assert eigen_ratio([3.0, 2.0, 0.5]) == 4.0
    assert late_median(np.arange(500), np.arange(500.0)) == 300.0
    assert first_crossing([0, 2, 4], [0.1, 0.6, 0.99], 0.5) == 2 and first_crossing([0], [0.1], 0.5) is None
    with pytest.raises(ValueError, match="shape"):
        slope_signal([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="lag"):
        slope_signal([1, 2], [1.0, 2.0], lag=0)


def _planted_updates(T: int, lock_in: int | None, P: int = 24, seed: int = 0) -> np.ndarray:
    """Updates δ_t = a u₁p₁(t) + b u₂p₂(t) + c(t) u₃p₃(t) + noise: orthonormal u_j, temporal profiles p₁ = 1,
    p₂ = (−1)^t, p₃ = (1, 1, −1, −1, …) (orthogonal over any 20 consecutive epochs); c(t) collapses by ×e^{−0.15}
    per epoch after ``lock_in`` (λ₃ collapse, λ₂ steady), so λ₂/λ₃ rises there."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((P, 3)))
    t = np.arange(1, T + 1)
    p1, p2, p3 = np.ones(T), (-1.0) ** t, np.where((t // 2) % 2 == 0, 1.0, -1.0)
    c = np.ones(T) * 0.5
    if lock_in is not None:
        c = np.where(t < lock_in, 0.5, 0.5 * np.exp(-0.15 * (t - lock_in)))
    return (3.0 * np.outer(p1, U[:, 0]) + 1.0 * np.outer(p2, U[:, 1]) + np.outer(c * p3, U[:, 2])
            + 1e-5 * rng.standard_normal((T, P)))


def _monitor_trajectory(tmp_path, name: str, deltas: np.ndarray, wd: float, test_acc: np.ndarray):
    """Drive a real SpectralMonitor (float64 storage, group first_layer) with the planted updates; write evals."""
    model = torch.nn.Module()
    model.W = torch.nn.Parameter(torch.zeros(deltas.shape[1], dtype=torch.float64))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    cfg = {"task": "li2", "weight_decay": wd, "init_seed": 0, "task_config": {"activation": "square"}}
    mon = SpectralMonitor(model, opt, window=20, every=1, groups={"first_layer": ["W"]}, path=tmp_path / name,
                          provenance={"config": cfg}, storage_dtype=torch.float64, keep_records=False)
    mon.log(0, test_acc=float(test_acc[0]), train_acc=1.0)
    for i, d in enumerate(deltas, start=1):
        with torch.no_grad():
            model.W.add_(torch.from_numpy(d))
        opt.step()  # the post-hook captures δ_i
        mon.log(i, test_acc=float(test_acc[i]), train_acc=1.0)
    mon.close()
    return tmp_path / name


def _brute_ratio(deltas: np.ndarray, W: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """λ₂/λ₃ of each window from the SVD of the stacked window (the twin of the monitor's incremental Gram)."""
    steps, ratio = [], []
    for t in range(3, len(deltas) + 1):
        s = np.linalg.svd(deltas[max(0, t - W):t], compute_uv=False)
        steps.append(t)
        ratio.append(s[1] ** 2 / s[2] ** 2)
    return np.array(steps), np.array(ratio)


def test_detector_on_planted_monitor_trajectories(tmp_path) -> None:
    T = 400
    acc = np.clip((np.arange(T + 1) - 80) / 60, 0, 1)  # test acc 0.5 at epoch 110, 0.99 at epoch 140
    grok = _planted_updates(T, lock_in=170)
    ctrl = _planted_updates(T, lock_in=None, seed=1)
    pg = _monitor_trajectory(tmp_path, "li2-grok.jsonl", grok, 2e-4, acc)
    pc = _monitor_trajectory(tmp_path, "li2-ctrl.jsonl", ctrl, 0.0, np.zeros(T + 1))
    rg, rc = (Li2Run.from_run(load_run(p)) for p in (pg, pc))
    bs, br = _brute_ratio(grok)
    np.testing.assert_allclose(rg.ratio[rg.steps >= 3], br, rtol=1e-4)  # λ₃ ~ 1e-11·λ₁ late: 1e-5 relative
    want = _brute_fire(bs, br)
    assert want is not None and 170 < want < 200  # the planted collapse starts at 170
    assert rg.fire() == want and rc.fire() is None
    assert rg.kind == "grok" and rc.kind == "control"
    assert rg.acc_epoch(0.5) == 110 and rg.acc_epoch(0.99) == 140
    assert rg.late_ratio() > 1e3 and abs(rc.late_ratio() - 1 / 0.25) < 0.1  # λ₂/λ₃ = 1/0.5² for the control

    # slimming keeps what the detector needs, drops the Grams
    before = pg.stat().st_size
    slim_trajectory(pg)
    assert pg.stat().st_size < before / 3
    t = read_trajectory(pg)
    assert all("gram" not in r for r in t.of_type("spectrum"))
    assert Li2Run.from_run(load_run(t)).fire() == want

    rows = {r.claim.split(" (")[0].split(":")[0]: r for r in li2_rows([rg, rc])}
    assert rows["λ₂/λ₃ slope detector fires in every grokking run and in no control"].verdict == "PASS"
    fire_row = rows["fire epoch of the grokking runs"]
    assert fire_row.verdict == ("PASS" if abs(want - 174) <= 1 else "FAIL") and str(want) in fire_row.measured
    assert rows["late-stage"].verdict == "PASS"
    assert rows["the detector lags generalisation"].verdict == "PASS"  # fires after 110 and after 140
    assert rows["rank-2 mechanism"].verdict == "PASS"
    assert rows["ReLU"].verdict == "INCONCLUSIVE"


def test_claims_fail_when_a_control_fires(tmp_path) -> None:
    steps = np.arange(401)
    lam_fire = np.stack([np.ones(401), np.ones(401), np.exp(-0.2 * np.clip(steps - 174, 0, None))], 1)
    lam_fire[:, 2] = np.where(steps < 150, 1.0, lam_fire[:, 2])

    def run(name: str, wd: float, lam: np.ndarray) -> Li2Run:
        return Li2Run(name, "square", wd, 0, steps, lam, steps, np.ones(401), np.ones(401))

    rows = li2_rows([run("g", 2e-4, lam_fire), run("c", 0.0, lam_fire)])
    assert rows[0].verdict == "FAIL" and "1/1 control" in rows[0].measured
    assert li2_rows([])[0].verdict == "INCONCLUSIVE"
    (row,) = claim_rows(tmp_path)  # the provider: no runs_root/li2 → one INCONCLUSIVE row naming the command
    assert row.verdict == "INCONCLUSIVE" and "spectral-edge li2 run" in row.reason


def test_from_trajectory_refuses_other_tasks(tmp_path) -> None:
    from numerics.trajectory import TrajectoryWriter

    with TrajectoryWriter(tmp_path / "m.jsonl", provenance={"config": {"task": "modular"}}) as w:
        w.write("end", 0)
    with pytest.raises(ValueError, match="not a li2 run"):
        Li2Run.from_run(load_run(tmp_path / "m.jsonl"))


# --- Theorem 6 ---------------------------------------------------------------------------------------------------


def test_theorem6_derivation_checks() -> None:
    assert all_derivations()["li2.theorem6_identity"].check()


@given(st.integers(2, 7), st.integers(2, 7), st.floats(-3, 1), st.integers(0, 2**31))
def test_theorem6_sign_identity(n: int, K: int, log_eta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, K))
    F[:, -1] = F[:, 0] * rng.choice([-1, 1]) + 0.1 * rng.standard_normal(n)  # one strongly similar pair
    eta = 10**log_eta
    B = np.linalg.inv(F.T @ F + eta * np.eye(K))  # the twin: plain inversion
    for j, l in [(0, K - 1), (0, 1)] if K > 2 else [(0, 1)]:
        S = pair_schur_block(F, eta, j, l)
        np.testing.assert_allclose(np.linalg.inv(S), B[np.ix_([j, l], [j, l])], rtol=1e-6, atol=1e-9 / eta)
        r = leave_pair_out_similarity(F, eta, j, l)
        if abs(B[j, l]) > 1e-9 * np.abs(B).max():
            assert np.sign(B[j, l]) == -np.sign(r)
    direct, closed = full_projector_gram(F, eta)
    np.testing.assert_allclose(direct, closed, atol=1e-8 * (1 + np.abs(F.T @ F).max()))


def test_theorem6_catalogue_entry_passes() -> None:
    r = run_theorem(CATALOGUE["li2.theorem6_sign"], 40)
    assert r.verdict == "PASS" and r.counterexamples == 0


def test_repulsion_statistic_against_brute_force(rng: np.random.Generator) -> None:
    F = rng.standard_normal((12, 9))
    F[:, 3] = F[:, 1] + 0.05 * rng.standard_normal(12)  # planted similar pair: cos > 0, so B_13 < 0
    F -= F.mean(0)
    eta = 0.3
    stat = repulsion_statistic(F, eta, top_pairs=5)
    B = np.linalg.inv(F.T @ F + eta * np.eye(9))
    cos = (F / np.linalg.norm(F, axis=0)).T @ (F / np.linalg.norm(F, axis=0))
    pairs = [(abs(cos[j, l]), cos[j, l], B[j, l]) for j in range(9) for l in range(j + 1, 9)]
    top = sorted(pairs, reverse=True)[:5]
    assert stat.top_positive == sum(c > 0 for _, c, _ in top)
    assert stat.top_negative_B == sum(c > 0 and b < 0 for _, c, b in top)
    assert stat.all_positive == sum(c > 0 for _, c, _ in pairs)
    assert stat.all_negative_B == sum(c > 0 and b < 0 for _, c, b in pairs)
    assert B[1, 3] < 0
    # two columns: B₁₂ = −S₁₂/det, so every positively similar pair repels: P = 1 exactly
    two = repulsion_statistic(F[:, [1, 3]], eta)
    assert two.top_positive == 1 and two.p_top == 1.0
    # the control (η = 0) uses the pseudo-inverse
    np.testing.assert_allclose(ridge_inverse(F, 0.0), np.linalg.pinv(F.T @ F), atol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        repulsion_statistic(np.full((3, 3), np.nan), eta)
    with pytest.raises(ValueError, match="η"):
        ridge_inverse(F, -1.0)
    with pytest.raises(ValueError, match="distinct"):
        pair_schur_block(F, eta, 2, 2)


# --- a tiny live run -----------------------------------------------------------------------------------------------


def test_tiny_live_run_weight_decay_locks_in(tmp_path, one_thread) -> None:
    """M = 23, K = 256, n = 211, 400 full-batch epochs (~5 s each on one core). The tiny setting does not generalise
    (test acc stays near chance), but the spectral signature the detector reads does separate: with η = 2e-4 λ₃
    collapses and the detector fires after epoch 300, without weight decay it never fires."""
    out = {}
    for wd in (2e-4, 0.0):
        cfg = preset("tiny", "li2", weight_decay=wd)
        path = tmp_path / f"tiny-{wd}.jsonl"
        res = train(cfg, monitor_factory=li2_monitor_factory(path, repulsion_epochs=(400,) if wd else ()),
                    progress=False)
        assert res.history.train_acc[-1] == 1.0  # memorised
        out[wd] = Li2Run.from_run(load_run(path))
    grok, ctrl = out[2e-4], out[0.0]
    assert grok.steps[0] == 2 and grok.steps[-1] == 400 and len(grok.steps) == 399  # every epoch from w = 2
    assert grok.fire() is not None and grok.fire() > 300 and ctrl.fire() is None
    assert grok.late_ratio() > 3 * ctrl.late_ratio()
    assert len(grok.repulsion) == 1 and grok.repulsion[0].step == 400 and 0 <= grok.repulsion[0].p_top <= 1


def test_repulsion_callback_leaves_training_unchanged(tmp_path, one_thread) -> None:
    cfg = preset("tiny", "li2", max_steps=40)
    plain = train(cfg, progress=False)
    measured = train(cfg, monitor_factory=li2_monitor_factory(tmp_path / "m.jsonl", repulsion_epochs=(20, 40)),
                     progress=False)
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), measured.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert [e["step"] for e in read_trajectory(tmp_path / "m.jsonl").of_type("li2_repulsion")] == [20, 40]


def test_run_driver_stores_slim_compressed_runs_and_skips_finished(tmp_path, one_thread) -> None:
    from verify.studies.li2 import li2_configs, load_li2_runs, run_li2

    cfgs = li2_configs("tiny", [0, 1], max_steps=30)
    rows = run_li2(cfgs, tmp_path, repulsion_seeds=[1], repulsion_epochs=(30,), progress=False, log=lambda _: None)
    assert [r["file"] for r in rows] == ["li2-sq-M23-K256-wd0.0002-s0.jsonl.gz", "li2-sq-M23-K256-wd0.0002-s1.jsonl.gz"]
    assert not list(tmp_path.glob("*.jsonl"))  # only the compressed files remain
    runs = {r.seed: r for r in load_li2_runs([tmp_path])}
    assert len(runs[0].repulsion) == 0 and [e.step for e in runs[1].repulsion] == [30]
    t = read_trajectory(tmp_path / rows[0]["file"])
    assert t.provenance["config"]["task"] == "li2" and all("gram" not in r for r in t.of_type("spectrum"))
    assert run_li2(cfgs, tmp_path, progress=False, log=lambda _: None) == []  # finished: skipped


# --- the command line and the recorded command ------------------------------------------------------------------


def test_cli_commands_and_the_recorded_command(tmp_path) -> None:
    """The driver is ``spectral-edge li2 run`` (no study has a command line of its own); the stored runs' recorded
    ``python -m verify.li2 run …`` regenerates as that command."""
    from typer.testing import CliRunner

    from verify.cli import _int_ranges, app
    from verify.store import regeneration_command

    assert _int_ranges("0-3,7") == [0, 1, 2, 3, 7] and _int_ranges("") == []
    runner = CliRunner()
    bad = runner.invoke(app, ["li2", "run", "--kind", "sq"])
    assert bad.exit_code != 0 and "grok" in bad.output
    out = runner.invoke(app, ["li2", "claims", str(tmp_path)])
    assert out.exit_code == 0 and "[INCONCLUSIVE] Li₂ lock-in detector" in out.output
    assert regeneration_command("li2").startswith("spectral-edge li2 run --kind ")
