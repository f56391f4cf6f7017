"""The edge measurement and its claim rows (verify/studies/edge.py; criteria.toml [causal.edge_ablation],
[causal.axis_transition]): the monitor basis against an SVD of the updates, the gradient against backward, a live
tiny modular run (records at the cadence, finite fields, training unchanged, kill-and-resume bitwise, clear errors
without a monitor), and the rows on planted stored runs whose verdicts are known by construction."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from numerics.errors import SpectralEdgeError
from numerics.layout import ParamLayout
from numerics.monitor import SpectralMonitor
from numerics.trajectory import TrajectoryWriter, read_trajectory
from verify.claims import check_provider, write_claims
from verify.harness.config import preset
from verify.harness.loop import train
from verify.harness.measurement import RunContext
from verify.harness.runner import train_with_monitor
from verify.studies import edge
from verify.studies.edge import EdgeConfig, EdgeMeasurement, edge_seed, flat_loss_grad, monitor_basis
from verify.tasks import get_task

BOOKKEEPING = {"interrupted", "end", "resume", "resumed"}


# --- pieces -----------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
def test_monitor_basis_is_the_svd_of_the_window_in_model_order() -> None:
    """A group on a later tensor makes the monitor's column order differ from the model's: the basis must still be
    the top right singular vectors of the stacked updates in model order."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = SpectralMonitor(model, opt, window=3, every=1, groups={"all": "*", "late": ["2.weight"]})
    layout = ParamLayout.from_model(model)
    assert mon.layout.param_names("all") != layout.param_names()  # the mapping is exercised

    def flat() -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in layout.parameters()]).double().numpy()

    snaps = [flat()]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, 3, generator=gen)
        loss = model(x).pow(2).sum() + (model[2].weight * torch.randn(2, 4, generator=gen)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        snaps.append(flat())
    X = np.diff(np.stack(snaps), axis=0)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    V = monitor_basis(mon, layout, 2).cpu().numpy()
    assert V.dtype == np.float64
    np.testing.assert_allclose(V @ V.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(V * Vt[:2], axis=1)), 1.0, atol=1e-5)
    mon.close()


def test_flat_loss_grad_is_backward_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    batch = torch.randn(16, 3)

    def loss_fn(m: nn.Module, b: torch.Tensor) -> torch.Tensor:
        return m(b).pow(2).mean()

    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    model.train()
    layout = ParamLayout.from_model(model)
    loss, g = flat_loss_grad(model, loss_fn, batch, layout)
    assert model.training and all(torch.equal(p.grad, torch.full_like(p, 3.0)) for p in model.parameters())
    model.eval()
    for p in model.parameters():
        p.grad = None
    want = loss_fn(model, batch)
    want.backward()
    assert loss == pytest.approx(float(want.detach()))
    assert torch.equal(g, torch.cat([p.grad.reshape(-1).double() for p in layout.parameters()]))


def test_config_defaults_and_cross_checks() -> None:
    c = EdgeConfig()
    assert (c.every, c.k, c.n_random, c.batch_size) == (None, 3, 20, None)
    assert EdgeConfig(every=0).every is None
    assert preset("tiny").edge.every is None  # off by default
    assert edge_seed(0) != edge_seed(1) and edge_seed(5, "plain") == 23
    for bad in ({"k": 0}, {"n_random": 0}, {"batch_size": 0}, {"k": 2.5}, {"unknown": 1}):
        with pytest.raises(ValidationError, match="edge"):
            preset("tiny", edge={"every": 10, **bad})
    with pytest.raises(ValidationError, match="exceeds the monitor window"):
        preset("tiny", edge={"every": 10, "k": 11})
    with pytest.raises(ValidationError, match="'all'"):
        preset("tiny", monitor={"groups": ["attn"]}, edge={"every": 10})


# --- a live tiny modular run ----------------------------------------------------------------------------------------

EDGE = {"every": 10, "k": 3, "n_random": 4, "batch_size": 64}


def config(**over: Any):
    """63 steps (the last off the edge cadence), monitor every 5 with W = 4, checkpoints every 15, edge every 10
    with k = 3 (the window holds 2 updates at step 10: no record there)."""
    return preset("tiny", **{"p": 23, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_steps": 63, "eval_every": 20,
                             "early_stop": None, "batch_size": 64, "checkpoint_every": 15,
                             "monitor": {"window": 4, "every": 5, "groups": ["all", "attn"]}, "edge": EDGE, **over})


def records(path: Path) -> list[dict[str, Any]]:
    t = read_trajectory(path)
    return sorted((r for r in t.records if r["type"] not in BOOKKEEPING),
                  key=lambda r: (r["step"], r["type"], r.get("group", "")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("edge-ref") / "run.jsonl"
        return train_with_monitor(config(), path, progress=False), path
    finally:
        torch.set_num_threads(threads)


FIELDS = ["loss", "grad_norm", "theta_norm", "cos_grad", "cos_theta", "cos_grad_null", "cos_theta_null", "dloss_v1",
          "dloss_vk", "c_v1", "c_vk", "dloss_random_v1", "dloss_random_vk", "ratio_v1", "h_v1", "h_random",
          "curvature_ratio", "h_random_median", "curvature_ratio_median"]


def test_live_run_records(reference) -> None:
    result, path = reference
    recs = [r for r in records(path) if r["type"] == "edge"]
    assert [r["step"] for r in recs] == [20, 30, 40, 50, 60, 63]  # none at 10 (w = 2 < k), the last step off-cadence
    assert [r["step"] for r in result.history.measurements["edge"]] == [20, 30, 40, 50, 60, 63]
    P = sum(p.numel() for p in result.model.parameters())
    for r in recs:
        assert r["w"] == 4 and r["k"] == 3 and r["P"] == P and r["n_random"] == 4
        assert all(np.isfinite(r[f]) for f in FIELDS), {f: r[f] for f in FIELDS}
        assert all(0.0 <= r[f] <= 1.0 for f in ("cos_grad", "cos_theta", "cos_grad_null", "cos_theta_null"))
        assert len(r["cos_grad_k"]) == len(r["cos_theta_k"]) == 3
        assert r["cos_grad_k"][0] == r["cos_grad"] and r["cos_theta_k"][0] == r["cos_theta"]
        assert r["ratio_v1"] == pytest.approx(r["dloss_v1"] / r["dloss_random_v1"])
        assert r["curvature_ratio"] == pytest.approx(r["h_v1"] / r["h_random"])
        assert r["curvature_ratio_median"] == pytest.approx(r["h_v1"] / r["h_random_median"])
        assert r["c_vk"] >= r["c_v1"] - 1e-9 and r["theta_norm"] >= r["c_vk"] - 1e-9 and r["loss"] > 0
    # the random null is near 1/√P; the edge is far more aligned with −θ than a random vector is
    assert np.median([r["cos_theta_null"] for r in recs]) < 5 / np.sqrt(P)
    assert np.median([r["cos_theta"] for r in recs]) > 10 / np.sqrt(P)


@pytest.mark.usefixtures("one_thread")
def test_measuring_never_changes_training(reference, tmp_path) -> None:
    result, path = reference
    plain_path = tmp_path / "plain.jsonl"
    plain = train_with_monitor(config(edge={"every": 0}), plain_path, progress=False)
    sa, sb = plain.model.state_dict(), result.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert plain.history.metrics == result.history.metrics
    assert records(plain_path) == [r for r in records(path) if r["type"] != "edge"]  # evals and spectra


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kills", [[37], [22, 52]])
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
    assert result.resumed_from == 15 * ((kills[-1] - 1) // 15)
    assert records(path) == records(ref_path)


@pytest.mark.usefixtures("one_thread")
def test_without_a_monitor_or_with_a_sketch_or_without_all_it_says_so() -> None:
    with pytest.raises(SpectralEdgeError, match="no monitor"):
        train(config(checkpoint_every=None), progress=False)
    cfg = config()
    task = get_task("modular")
    model = task.build_model(cfg.task_config, cfg.generator("init"), "cpu")
    data = task.make_data(cfg.task_config, cfg.generator("data"))
    names = ParamLayout.from_model(model).param_names()

    def ctx(monitor: Any) -> RunContext:
        return RunContext(cfg, task, data, model, SimpleNamespace(), torch.device("cpu"), monitor)

    sketched = SimpleNamespace(gram=None, sketch=object(), layout=SimpleNamespace(groups={"all": None}))
    with pytest.raises(SpectralEdgeError, match="sketch"):
        EdgeMeasurement(cfg.edge, cfg).at_setup(ctx(sketched))
    no_all = SimpleNamespace(gram=None, sketch=None, layout=SimpleNamespace(groups={"attn": None}))
    with pytest.raises(SpectralEdgeError, match="'all' group"):
        EdgeMeasurement(cfg.edge, cfg).at_setup(ctx(no_all))
    other = SimpleNamespace(gram=None, sketch=None, layout=SimpleNamespace(
        groups={"all": None}, param_names=lambda g: names[1:]))
    with pytest.raises(SpectralEdgeError, match="trainable parameters"):
        EdgeMeasurement(cfg.edge, cfg).at_setup(ctx(other))


# --- the claim rows on planted stored runs -------------------------------------------------------------------------


def write_run(root: Path, name: str, *, wd: float, seed: int, grok: int | None,
              before: tuple[float, float] = (0.3, 0.1), after: tuple[float, float] = (0.05, 0.6),
              ratio: float = 5000.0, curv: float = 0.5,
              dloss_random: float = 1e-3, steps: int = 2000, every: int = 100, P: int = 10_000) -> Path:
    """A modular run whose test accuracy jumps to 1 at ``grok`` (None: never) with an ``edge`` record every ``every``
    steps: (cos_grad, cos_theta) = ``before`` before grokking and ``after`` from it on (controls: ``before``
    throughout), ratio_v1 = ``ratio``, curvature ratio = ``curv``."""
    path = root / "edge" / f"{name}.jsonl"
    cfg = {"task": "modular", "task_config": {"p": 23}, "weight_decay": wd, "lr": 1e-3}
    with TrajectoryWriter(path, provenance={"config": cfg, "seeds": {"init_seed": seed}},
                          meta={"every": every, "window": 4, "task": "modular"}) as w:
        for s in range(every, steps + 1, every):
            grokked = grok is not None and s >= grok
            w.write("eval", s, train_acc=1.0, test_acc=1.0 if grokked else 0.01)
            a, b = after if grokked else before
            w.write("edge", s, w=4, k=3, P=P, cos_grad=a, cos_theta=b, cos_grad_null=0.01, cos_theta_null=0.011,
                    dloss_v1=ratio * dloss_random, dloss_random_v1=dloss_random, ratio_v1=ratio, h_v1=curv,
                    h_random=1.0, curvature_ratio=curv, h_random_median=1.0, curvature_ratio_median=curv,
                    n_random=20)
        w.write("end", steps)
    return path


def planted(root: Path, n: int = 3, controls: bool = True, **treated: Any) -> Path:
    for i in range(n):
        write_run(root, f"t{i}", wd=1.0, seed=i, grok=1000 + 100 * i, **treated)
        if controls:
            write_run(root, f"c{i}", wd=0.0, seed=i, grok=None, before=(0.2, 0.1), ratio=2.0, curv=3.0)
    return root


def test_rows_without_runs_are_inconclusive(tmp_path: Path) -> None:
    rows = check_provider("edge", tmp_path)
    assert [r.criterion for r in rows] == ["causal.edge_ablation", "causal.axis_transition"]
    assert all(r.verdict == "INCONCLUSIVE" and r.plot is None for r in rows)


def test_planted_flat_critical_transitioning_edge_passes(tmp_path: Path) -> None:
    rows = check_provider("edge", planted(tmp_path))
    abl, axis = rows
    assert abl.verdict == "PASS" and axis.verdict == "PASS", (abl.measured, axis.measured)
    assert abl.details["geo_mean"] == pytest.approx(5000.0) and abl.details["curvature_median"] == 0.5
    assert {p["step"] for p in abl.details["treated"].values()} == {1000, 1100, 1200}  # the first at/after grokking
    assert "5e+03" in abl.measured and "weight decay 0" in abl.control and "3 runs" in abl.control
    assert axis.details["share_before"] == axis.details["share_after"] == 1.0
    pts = axis.details["treated"]["t1"]
    assert (pts["before"]["step"], pts["after"]["step"]) == (1000, 1100)  # strictly before, and at the grok step
    assert axis.details["controls"]["c1"]["after"]["step"] == 1100  # the control read at its seed's steps
    assert "0.01" in axis.null and "1/√P = 0.01" in axis.null
    from matplotlib.figure import Figure

    for r in rows:
        r.plot(Figure())
    write_claims(rows, tmp_path / "out", figures=True)
    assert (tmp_path / "out" / rows[1].figure).exists()


@pytest.mark.parametrize(("treated", "which"), [
    ({"ratio": 0.8}, "ablation"),  # not critical
    ({"curv": 2.0}, "ablation"),  # critical but sharp
    ({"ratio": -3.0}, "ablation"),  # removing v1 lowers the loss: floored, far below 1
    ({"after": (0.6, 0.05)}, "axis"),  # still gradient-aligned after grokking
    ({"before": (0.1, 0.3)}, "axis"),  # already a compression axis before grokking
])
def test_planted_failures_fail(tmp_path: Path, treated: dict[str, Any], which: str) -> None:
    abl, axis = edge.claim_rows(planted(tmp_path, **treated))
    assert (abl.verdict, axis.verdict) == (("FAIL", "PASS") if which == "ablation" else ("PASS", "FAIL"))


def test_one_dissenting_run_in_three_fails_the_share(tmp_path: Path) -> None:
    planted(tmp_path)
    write_run(tmp_path, "t3", wd=1.0, seed=3, grok=1000, after=(0.6, 0.05))  # 3/4 < share_min = 0.8
    assert edge.claim_rows(tmp_path)[1].verdict == "FAIL"


def test_too_few_or_unusable_runs_are_inconclusive(tmp_path: Path) -> None:
    rows = edge.claim_rows(planted(tmp_path, n=2, controls=False))
    assert {r.verdict for r in rows} == {"INCONCLUSIVE"} and all(r.plot is not None for r in rows)
    # a third grokking run whose random ΔL is not positive cannot be compared; one that never groks is no treated run
    write_run(tmp_path, "t2", wd=1.0, seed=2, grok=1000, dloss_random=-1e-3)
    write_run(tmp_path, "t3", wd=1.0, seed=3, grok=None)
    abl, axis = edge.claim_rows(tmp_path)
    assert abl.verdict == "INCONCLUSIVE" and axis.verdict == "PASS"
    assert axis.control == "n/a: no weight-decay-0 runs stored"


def test_controls_without_a_grokking_seed_are_not_read(tmp_path: Path) -> None:
    planted(tmp_path, controls=False)
    write_run(tmp_path, "c9", wd=0.0, seed=9, grok=None)
    abl, axis = edge.claim_rows(tmp_path)
    assert abl.verdict == axis.verdict == "PASS"
    assert abl.control == axis.control == "n/a: no weight-decay-0 run shares a seed with a grokking run"
