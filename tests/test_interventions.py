"""Causal interventions as harness plug-ins (issue 18): off or s = 0 leaves training bitwise unchanged; a projection
removes exactly the component it names, along and orthogonal complement each other, a control removes the same
norm; the intervention's draws never reach the training batches; a killed run resumes bitwise; bad configs are
refused by name; a tiny run trains and writes its records; the edge-ablation helpers compute what they say."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from numerics.backbone import BackboneTracker
from numerics.errors import SpectralEdgeError
from numerics.layout import ParamLayout
from numerics.probes import LossModule
from numerics.trajectory import read_trajectory
from verify.harness.config import RunConfig, preset
from verify.harness.intervention import Intervention, intervention_class, intervention_names
from verify.harness.loop import RunResult, train
from verify.harness.runner import spectral_monitor_factory, train_with_monitor
from verify.plugins import INTERVENTIONS, register_intervention
from verify.studies.causal import (
    CausalConfig,
    SubspaceIntervention,
    edge_ablation,
    edge_alignment,
    trajectory_basis,
)
from verify.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

BOOKKEEPING = {"interrupted", "end", "resume", "resumed"}
#: acts from step 8 on; trajectory checkpoints at 3 and 6 (k = 2 ≤ 2 checkpoints before start)
ACT = {"enabled": True, "start": 8, "basis_every": 3, "k": 2}


def cfg(steps: int = 16, **over: Any) -> RunConfig:
    return preset("tiny", **{"p": 23, "d_model": 32, "max_steps": steps, "eval_every": 4, "early_stop": None,
                             "grad_clip": None, "monitor": {"window": 3, "every": 4}, **over})


def records(path: Path, drop: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    return [r for r in read_trajectory(path).records if r["type"] not in BOOKKEEPING | drop]


def same_model(a: RunResult, b: RunResult) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def plain() -> RunResult:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg(), progress=False)
    finally:
        torch.set_num_threads(threads)


def test_the_study_registers_its_intervention() -> None:
    assert "causal" in intervention_names()
    cls = intervention_class("causal")
    assert cls is SubspaceIntervention and cls.Config().enabled is False  # off unless switched on
    assert isinstance(cls(cfg().section("causal"), cfg()), Intervention)


def test_off_is_bitwise_unchanged(tmp_path) -> None:
    on_path, off_path = tmp_path / "registered.jsonl", tmp_path / "unregistered.jsonl"
    registered = train_with_monitor(cfg(), on_path, progress=False)
    target = INTERVENTIONS.pop("causal")
    try:
        unregistered = train_with_monitor(cfg(), off_path, progress=False)
    finally:
        register_intervention("causal", target)
    assert same_model(registered, unregistered) and registered.history == unregistered.history
    assert records(on_path) == records(off_path)
    # switched on, but acting only after the run: every hook is called (trajectory captures, fork_rng), none acts
    idle = train(cfg(causal={**ACT, "start": 100}), progress=False)
    assert same_model(idle, unregistered) and idle.history == unregistered.history


@pytest.mark.parametrize("section", [
    {"mode": "project", "part": "orthogonal", "control": True},
    {"mode": "kick", "part": "along", "control": True, "every": 2},
    {"mode": "noise", "part": "orthogonal", "subspace": "commutator", "k": 1, "batch_size": 16},
])
def test_s_zero_is_bitwise_unchanged_although_it_draws(plain, section) -> None:
    run = train(cfg(causal={**ACT, **section, "s": 0.0, "log_every": 1}), progress=False)
    assert same_model(run, plain) and run.history.metrics == plain.history.metrics
    recs = run.history.causal
    assert recs and recs[0]["step"] == 8 and all(r["norm"] == 0.0 for r in recs)
    assert all(r["ref_norm"] > 0 for r in recs)  # it computed (and drew) everything, then added nothing


class Spy(SubspaceIntervention):
    """Keeps, at its first action, the raw gradient and the bases it used."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def on_gradient(self, ctx: Any, step: int) -> list[dict[str, Any]]:
        raw = self._flat_grad().clone()
        out = super().on_gradient(ctx, step)
        if self._due(step) and not Spy.seen:
            Spy.seen.append({"raw": raw.numpy(), "V": self.basis.numpy(), "step": step,  # type: ignore[union-attr]
                             "R": None if self.control_basis is None else self.control_basis.numpy()})
        return out


class _Hooked:
    """A monitor stand-in that records the flat gradient the optimizer sees at each step."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, _cfg: RunConfig) -> None:
        self.grads: dict[int, np.ndarray] = {}
        params = [p for p in model.parameters() if p.requires_grad]

        def hook(opt: Any, args: Any, kwargs: Any) -> None:
            self.grads[opt.global_step] = torch.cat([p.grad.reshape(-1).double() for p in params]).numpy()

        optimizer.register_step_pre_hook(hook)

    def log(self, step: int, **scalars: float) -> None: ...

    def close(self) -> None: ...


@pytest.fixture
def spy():
    register_intervention("spy", Spy)
    yield
    INTERVENTIONS.pop("spy", None)


def first_action(**section: Any) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """(the spy's raw gradient and bases, the gradient the optimizer saw, the first record) at step 8."""
    Spy.seen.clear()
    hooked: list[_Hooked] = []

    def factory(*args: Any) -> _Hooked:
        hooked.append(_Hooked(*args))
        return hooked[-1]

    run = train(cfg(steps=9, spy={**ACT, "log_every": 1, **section}), progress=False, monitor_factory=factory)
    (seen,) = Spy.seen
    assert seen["step"] == 8
    return seen, hooked[0].grads[9], run.history.spy[0]


def test_projection_removes_exactly_the_component_and_parts_complement(spy) -> None:
    seen, along, rec = first_action(mode="project", part="along", s=1.0)
    g, V = seen["raw"], seen["V"]
    np.testing.assert_allclose(V @ V.T, np.eye(2), atol=1e-12)  # B orthonormal
    expected = g - V.T @ (V @ g)  # brute force: nothing of g left in B
    np.testing.assert_allclose(along, expected, rtol=0, atol=1e-6 * np.abs(g).max())
    assert np.abs(V @ along).max() < 1e-6 * np.linalg.norm(g)
    assert rec["norm"] == pytest.approx(np.linalg.norm(V @ g), rel=1e-9)
    assert rec["along_norm"] == pytest.approx(np.linalg.norm(V @ g), rel=1e-9)

    seen_o, orth, _ = first_action(mode="project", part="orthogonal", s=1.0)
    assert np.array_equal(seen_o["raw"], g) and np.array_equal(seen_o["V"], V)  # same state up to the action
    np.testing.assert_allclose(along + orth, g, rtol=0, atol=1e-6 * np.abs(g).max())  # P_⊥g + P_Bg = g

    _, half, _ = first_action(mode="project", part="orthogonal", s=0.5)
    np.testing.assert_allclose(half, g - 0.5 * (g - V.T @ (V @ g)), rtol=0, atol=1e-6 * np.abs(g).max())


@pytest.mark.parametrize("part", ["along", "orthogonal"])
def test_a_control_removes_the_same_norm_along_a_random_subspace(spy, part) -> None:
    seen, real, rec = first_action(mode="project", part=part, s=0.5)
    cseen, ctrl, crec = first_action(mode="project", part=part, s=0.5, control=True)
    g, V, R = seen["raw"], seen["V"], cseen["R"]
    assert np.array_equal(cseen["raw"], g)
    removed, c_removed = np.linalg.norm(g - real), np.linalg.norm(g - ctrl)
    assert c_removed == pytest.approx(removed, rel=1e-5) and crec["norm"] == pytest.approx(rec["norm"], rel=1e-12)
    assert R.shape == ((2 if part == "along" else 1), g.size)
    r = g - ctrl  # the control's removal lies in the random subspace R, not in B
    np.testing.assert_allclose(R.T @ (R @ r), r, rtol=0, atol=1e-6 * np.linalg.norm(r))
    assert np.linalg.norm(V @ r) < 0.5 * np.linalg.norm(r)


def test_the_interventions_draws_never_reach_the_training_batches(plain, monkeypatch) -> None:
    task_cls = type(get_task("modular"))
    original = task_cls.sample_batch
    drawn: list[tuple[int, int]] = []

    def sample_batch(self, data, batch_size, generator):
        batch = original(self, data, batch_size, generator)
        if batch_size == 512:  # the training batches (the commutator's are 16)
            drawn.append(tuple(int(t.sum()) for t in batch))
        return batch

    monkeypatch.setattr(task_cls, "sample_batch", sample_batch)
    kicked = train(cfg(causal={**ACT, "mode": "kick", "part": "along", "subspace": "commutator", "k": 1,
                               "batch_size": 16, "control": True, "s": 1.0, "every": 2}), progress=False)
    kick_batches, drawn[:] = list(drawn), []
    train(cfg(), progress=False)
    assert len(kick_batches) == 16 and kick_batches == drawn  # the same batch stream, draw for draw
    assert kicked.history.train_loss[:2] == plain.history.train_loss[:2]  # before the kick at step 8: the same
    assert kicked.history.train_loss[-1] != plain.history.train_loss[-1]  # and yet it acted


class Careless(SubspaceIntervention):
    """Draws from the global RNG at every point, which the loop must shield training from."""

    def on_gradient(self, ctx: Any, step: int) -> list[dict[str, Any]]:
        torch.randn(100)
        return super().on_gradient(ctx, step)

    def after_step(self, ctx: Any, step: int) -> list[dict[str, Any]]:
        torch.randn(100)
        return super().after_step(ctx, step)

    def observe(self, ctx: Any, step: int) -> list[dict[str, Any]]:
        torch.randn(100)
        return super().observe(ctx, step)


def test_the_global_rng_training_reads_is_shielded_from_interventions() -> None:
    register_intervention("careless", Careless)
    states: list[list[bytes]] = []

    def factory(model, optimizer, _cfg):  # the global RNG state at every optimizer step and after it
        seen: list[bytes] = []
        states.append(seen)
        optimizer.register_step_pre_hook(lambda *a: seen.append(torch.get_rng_state().numpy().tobytes()))
        optimizer.register_step_post_hook(lambda *a: seen.append(torch.get_rng_state().numpy().tobytes()))
        return type("M", (), {"log": lambda *a, **k: None, "close": lambda *a: None})()

    try:
        train(cfg(steps=10, careless={**ACT, "mode": "kick", "control": True}), progress=False,
              monitor_factory=factory)
        train(cfg(steps=10), progress=False, monitor_factory=factory)
    finally:
        INTERVENTIONS.pop("careless", None)
    assert len(states[0]) == 20 and states[0] == states[1]


class Killed(Exception):
    pass


RESUMED = {
    # the basis of step 9 is in use at the checkpoint (10) and refreshed at 13: a resume must restore it (and the
    # tracker's rows); the records come at 9, then every log_every = 5 steps
    "project": {"mode": "project", "part": "orthogonal", "s": 1.0, "start": 9, "basis_every": 4},
    # the update-Gram basis, a random control basis and a fresh noise direction at every step: the stream's state
    "noise": {"mode": "noise", "part": "along", "s": 0.5, "start": 8, "basis_every": 4, "subspace": "update_gram",
              "control": True},
}


@pytest.mark.parametrize("variant", list(RESUMED))
def test_a_killed_intervened_run_resumes_bitwise(tmp_path, plain, variant) -> None:
    c = cfg(steps=20, grad_clip=1.0, checkpoint_every=5, causal={**ACT, **RESUMED[variant], "log_every": 5})
    ref = train_with_monitor(c, tmp_path / "ref.jsonl", progress=False)
    assert all(np.isfinite(ref.history.train_loss)) and ref.history.train_loss[-1] != plain.history.train_loss[-1]
    if variant == "project":  # a tiny run with project / trajectory / s = 1 / orthogonal trains and writes records
        recs = read_trajectory(tmp_path / "ref.jsonl").of_type("intervention")
        assert [r["step"] for r in recs] == [9, 14, 19] and [r["n_acts"] for r in recs] == [1, 5, 5]
        assert all(r["subspace"] == "trajectory" and r["part"] == "orthogonal" and r["s"] == 1.0 for r in recs)
        assert [r["basis_step"] for r in recs] == [9, 13, 17]
        assert all(0 < r["norm"] <= r["ref_norm"] and r["along_norm"] < r["ref_norm"] for r in recs)
        assert ref.history.causal == [{k: v for k, v in r.items() if k != "type"} for r in recs]

    def kill(step: int) -> None:
        if step == 13:
            raise Killed

    path = tmp_path / "cut.jsonl"
    with pytest.raises(Killed):
        train_with_monitor(c, path, progress=False, step_callback=kill)
    resumed = train_with_monitor(c, path, progress=False, resume=True)
    assert resumed.resumed_from == 10
    assert same_model(resumed, ref) and resumed.history == ref.history
    key = lambda r: (r["step"], r["type"], r.get("group", ""))  # noqa: E731
    assert sorted(records(path), key=key) == sorted(records(tmp_path / "ref.jsonl"), key=key)


@pytest.mark.parametrize(("section", "match"), [
    ({"s": 1.5}, r"causal\.s\n.*must lie in \[0, 1\], got 1\.5"),
    ({"s": -0.1}, r"causal\.s\n.*must lie in \[0, 1\]"),
    ({"k": 0}, r"causal\.k\n.*k is the dimension of the subspace B and must be ≥ 1, got 0"),
    ({"subspace": "hessian"}, r"unknown subspace 'hessian'; choose from trajectory, update_gram, commutator"),
    ({"mode": "shove"}, r"causal\.mode\n.*'project', 'kick' or 'noise'"),
    ({"enabled": True, "start": 6, "basis_every": 3}, r"start \(= 6\) must exceed k·basis_every \(= 6\)"),
    ({"enabled": True, "subspace": "update_gram", "k": 4}, r"k = 4 exceeds the monitor window W = 3"),
    ({"enabled": True, "subspace": "update_gram", "start": 4}, r"start \(= 4\) must be ≥ k·monitor\.every \(= 8\)"),
    ({"colour": "red"}, r"causal\.colour\n\s+Extra inputs are not permitted"),
])
def test_bad_configs_are_refused_by_name(section, match) -> None:
    with pytest.raises(ValueError, match=match):
        cfg(causal=section)


def test_update_gram_without_a_monitor_is_refused_before_training() -> None:
    steps: list[int] = []
    with pytest.raises(SpectralEdgeError, match=r"update_gram.*no monitor.*train_with_monitor"):
        train(cfg(causal={**ACT, "subspace": "update_gram"}), progress=False, step_callback=steps.append)
    assert steps == []


def test_update_gram_basis_is_the_monitors_window_in_model_order(tmp_path, spy) -> None:
    Spy.seen.clear()
    thetas: dict[int, torch.Tensor] = {}
    c = cfg(steps=9, spy={**ACT, "subspace": "update_gram", "log_every": 1})
    model0 = get_task(c.task).build_model(c.task_config, c.generator("init"), "cpu")
    thetas[0] = torch.cat([p.detach().reshape(-1).double() for p in model0.parameters()])
    run: list[Any] = []

    def snap(step: int) -> None:
        if step in (4, 8) and run:
            thetas[step] = torch.cat([p.detach().reshape(-1).double() for p in run[0].parameters()])

    def factory(model, optimizer, rc):  # the real monitor, and a handle on the model for the snapshots
        run.append(model)
        return spectral_monitor_factory(tmp_path / "u.jsonl")(model, optimizer, rc)

    train(c, progress=False, monitor_factory=factory, step_callback=snap)
    (seen,) = Spy.seen
    V = seen["V"]
    np.testing.assert_allclose(V @ V.T, np.eye(2), atol=1e-10)
    # W = 3, Δs = 4: at step 8 the window holds δ_4 = θ_4 − θ_0 and δ_8 = θ_8 − θ_4, so B = span(δ_4, δ_8)
    D = torch.stack([thetas[4] - thetas[0], thetas[8] - thetas[4]]).numpy()
    Q, _ = np.linalg.qr(D.T)
    # the same 2-D subspace (V's rows lie in span Q), so the monitor's layout order was mapped back correctly
    np.testing.assert_allclose((V @ Q) @ Q.T, V, rtol=0, atol=1e-5)


def test_trajectory_basis_is_the_centred_pca_of_the_trajectory() -> None:
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(50, generator=gen, dtype=torch.float64)
    tracker = BackboneTracker([theta])
    path = [theta.clone()]
    for t in range(1, 6):
        theta += torch.randn(50, generator=gen, dtype=torch.float64) * (1 + t)
        tracker.capture(t)
        path.append(theta.clone())
    V = trajectory_basis(tracker, 2).numpy()
    X = torch.stack(path).numpy()
    Xc = X - X.mean(axis=0)
    _, _, Wt = np.linalg.svd(Xc, full_matrices=False)
    np.testing.assert_allclose(V.T @ V, Wt[:2].T @ Wt[:2], atol=1e-6)  # the same 2-D subspace (projectors)


def _loss_with(model: torch.nn.Module, batch: Any, layout: ParamLayout, flat: torch.Tensor) -> float:
    """L at the flat parameters ``flat`` (canonical order), in ``model``'s dtype; the model is not written."""
    task = get_task("modular")
    sub, a, dtype = {}, 0, next(model.parameters()).dtype
    for n, p in zip(layout.param_names(), layout.parameters(), strict=True):
        sub[f"model.{n}"] = flat[a : a + p.numel()].view(p.shape).to(dtype)
        a += p.numel()
    with torch.no_grad():
        return float(torch.func.functional_call(LossModule(model, task.loss), sub, (batch,)))


def test_edge_alignment_and_ablation() -> None:
    task = get_task("modular")
    c = cfg()
    model = task.build_model(c.task_config, c.generator("init"), "cpu").eval()
    data = task.make_data(c.task_config, c.generator("data"))
    batch = task.sample_batch(data, 64, torch.Generator().manual_seed(1))
    layout = ParamLayout.from_model(model)
    theta = torch.cat([p.detach().reshape(-1).double() for p in layout.parameters()])
    grad = torch.cat([g.reshape(-1).double() for g in
                      torch.autograd.grad(task.loss(model, batch), layout.parameters())])
    cg, cw = edge_alignment(-theta / theta.norm(), grad, theta)
    assert cw == pytest.approx(1.0) and 0 <= cg < 1
    cg2, cw2 = edge_alignment(torch.stack([-grad, theta]), grad, theta)
    assert cg2[0] == pytest.approx(1.0) and cg2[1] == pytest.approx(cg) and cw2[1] == pytest.approx(1.0)

    v = torch.randn(2, layout.P, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    res = edge_ablation(model, task.loss, batch, v, 3, torch.Generator().manual_seed(4))
    assert all(torch.equal(before[k], t) for k, t in model.state_dict().items())  # the model was not written
    v1 = v[0] / v[0].norm()
    c1 = float(theta @ v1)
    brute = _loss_with(model, batch, layout, theta - c1 * v1) - _loss_with(model, batch, layout, theta)
    assert res.c_v1 == pytest.approx(abs(c1), rel=1e-9) and res.dloss_v1 == pytest.approx(brute, rel=1e-4, abs=1e-6)
    Q, _ = torch.linalg.qr(v.T)
    pv = Q @ (Q.T @ theta)
    brute_k = _loss_with(model, batch, layout, theta - pv) - _loss_with(model, batch, layout, theta)
    assert res.c_vk == pytest.approx(float(pv.norm()), rel=1e-9)
    assert res.dloss_vk == pytest.approx(brute_k, rel=1e-4, abs=1e-6)
    assert res.dloss_random_v1.shape == (3,) and res.h_random.shape == (3,)
    # v₁ᵀHv₁ against a central second difference of L along v₁, in float64
    m64 = copy.deepcopy(model).double()
    eps = 1e-3
    f = [_loss_with(m64, batch, layout, theta + x * v1) for x in (-eps, 0.0, eps)]
    assert res.h_v1 == pytest.approx((f[0] - 2 * f[1] + f[2]) / eps**2, rel=1e-3, abs=1e-5)
    assert set(res.record()) >= {"dloss_v1", "dloss_vk", "ratio_v1", "h_v1", "h_random", "curvature_ratio"}
    with pytest.raises(SpectralEdgeError, match=r"torch\.Generator"):
        edge_ablation(model, task.loss, batch, v, 3, None)  # type: ignore[arg-type]


def test_config_defaults_are_the_authors() -> None:
    c = CausalConfig()
    assert (c.enabled, c.mode, c.part, c.subspace, c.k, c.s, c.start) == (False, "project", "orthogonal",
                                                                           "trajectory", 2, 1.0, 500)
