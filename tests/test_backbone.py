"""Backbone PCA (numerics.backbone, verify.studies.backbone): the Gram route against a brute-force numpy SVD of the
stacked row-normalised displacements, planted pure drift, the streaming tracker, bad input, and live runs (records in
the trajectory, measurement never changes training, resume continues the same Gram)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from numerics.backbone import BackboneTracker, backbone_from_gram, gram_from_rows, trunk_weight_names
from numerics.errors import NonFiniteUpdateError, ShapeMismatchError, ZeroWindowError
from numerics.trajectory import read_trajectory
from verify.harness.config import preset
from verify.harness.loop import train
from verify.harness.runner import train_with_monitor
from verify.studies.backbone import backbone_of, claim_rows, three_phase


def brute_force(D: np.ndarray) -> dict[str, Any]:
    """The author's recipe, literally: row-normalise, uncentred SVD, v_b with a(last) > 0, b(t) = a²/‖D_t‖²."""
    Z = D / np.linalg.norm(D, axis=1, keepdims=True)
    _, s, Vt = np.linalg.svd(Z, full_matrices=False)
    v = Vt[0] * np.sign(D[-1] @ Vt[0])
    a = D @ v
    share = s**2 / np.sum(s**2)
    return {"shares": share, "a": a, "fraction": a**2 / np.sum(D**2, axis=1),
            "k95": int(np.argmax(np.cumsum(share) >= 0.95 - 1e-12) + 1), "v": v}


def random_trajectory(rng: np.random.Generator, n: int, p: int, drift: float) -> np.ndarray:
    """Cumulative sums of updates with a common drift direction plus isotropic noise: θ_t − θ_0."""
    direction = rng.standard_normal(p)
    steps = drift * direction + rng.standard_normal((n, p))
    return np.cumsum(steps, axis=0)


@pytest.mark.parametrize("drift", [0.0, 0.3, 3.0])
def test_gram_route_matches_svd_of_normalised_rows(rng: np.random.Generator, drift: float) -> None:
    D = random_trajectory(rng, 12, 200, drift)
    spec = backbone_from_gram(D @ D.T)
    ref = brute_force(D)
    np.testing.assert_allclose(spec.shares, ref["shares"][: len(spec.shares)], atol=1e-12)
    np.testing.assert_allclose(spec.fraction, ref["fraction"], atol=1e-10)
    np.testing.assert_allclose(spec.a, ref["a"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(spec.residual, np.linalg.norm(D - np.outer(ref["a"], ref["v"]), axis=1), atol=1e-8)
    assert spec.k95 == ref["k95"]
    assert spec.a[-1] > 0
    # early/late rotation against the two half-trajectory SVDs
    h = len(D) // 2
    ve, vl = brute_force(D[:h])["v"], brute_force(D[h:])["v"]
    assert spec.rotation == pytest.approx(abs(ve @ vl), abs=1e-10)


def test_planted_pure_drift_is_one_component(rng: np.random.Generator) -> None:
    v = rng.standard_normal(500)
    D = np.outer(np.cumsum(rng.uniform(0.1, 2.0, 20)), v)  # θ_t − θ_0 = c_t v, c_t increasing
    spec = backbone_from_gram(D @ D.T)
    assert spec.pc1_share == pytest.approx(1.0, abs=1e-12)
    assert spec.k95 == 1
    np.testing.assert_allclose(spec.fraction, 1.0, atol=1e-12)
    assert spec.rotation == pytest.approx(1.0, abs=1e-12)


def test_orthogonal_displacements_have_no_backbone() -> None:
    spec = backbone_from_gram(np.diag([1.0, 4.0, 9.0, 16.0]))  # four mutually orthogonal D_i
    np.testing.assert_allclose(spec.shares, 0.25, atol=1e-12)
    assert spec.k95 == 4


@given(n=st.integers(1, 8), p=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_shares_and_fractions_are_bounded(n: int, p: int, seed: int) -> None:
    D = np.random.default_rng(seed).standard_normal((n, p))
    spec = backbone_from_gram(D @ D.T)
    assert spec.shares.sum() == pytest.approx(1.0)
    assert 1.0 / n - 1e-9 <= spec.pc1_share <= 1.0 + 1e-12
    assert np.all((spec.fraction >= 0) & (spec.fraction <= 1))
    assert 1 <= spec.k95 <= min(n, p)
    # b(t) = λ₁ u₁[t]²: the fractions add up to λ₁ = N · PC1 share
    assert spec.fraction.sum() == pytest.approx(n * spec.pc1_share)


def test_bad_gram_is_refused() -> None:
    with pytest.raises(ZeroWindowError, match="zero displacement"):
        backbone_from_gram(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(NonFiniteUpdateError):
        backbone_from_gram(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ShapeMismatchError):
        backbone_from_gram(np.ones((2, 3)))
    with pytest.raises(ShapeMismatchError, match="missing checkpoints"):
        gram_from_rows([{"dots": [1.0]}, {"dots": [1.0, 2.0, 3.0]}])


def _walk(params: list[torch.Tensor], gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in params:
            p.add_(0.5 + torch.randn(p.shape, generator=gen, dtype=p.dtype))


def test_tracker_streams_the_exact_gram() -> None:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(7, 5, generator=gen), torch.randn(11, generator=gen)]
    tracker = BackboneTracker(params)
    theta0 = torch.cat([p.reshape(-1) for p in params]).double().clone()
    stack = []
    for step in range(1, 9):
        _walk(params, gen)
        rec = tracker.capture(step * 10)
        stack.append((torch.cat([p.reshape(-1) for p in params]).double() - theta0).numpy())
        assert rec["n"] == step and len(rec["dots"]) == step
        d = torch.cat([p.reshape(-1) for p in params]).double() - theta0
        assert rec["theta0_norm"] == pytest.approx(float(theta0.norm()))
        assert rec["cos_minus_theta0"] == pytest.approx(float(-(d @ theta0) / (d.norm() * theta0.norm())))
    D = np.stack(stack)
    np.testing.assert_allclose(tracker.gram(), D @ D.T, rtol=1e-6)
    ref = brute_force(D)
    assert tracker.spectrum().pc1_share == pytest.approx(ref["shares"][0], abs=1e-6)
    # the Gram rebuilt from the records is the tracker's
    restored = BackboneTracker(params)
    restored.load_state_dict(tracker.state_dict())
    np.testing.assert_array_equal(restored.gram(), tracker.gram())
    with pytest.raises(ShapeMismatchError):
        BackboneTracker(params[:1]).load_state_dict(tracker.state_dict())


def test_sketched_tracker_is_close() -> None:
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(4000, generator=gen, dtype=torch.float64)]
    exact, sketched = BackboneTracker(params), BackboneTracker(params, sketch_dim=400, seed=3)
    for step in range(1, 7):
        _walk(params, gen)
        exact.capture(step)
        sketched.capture(step)
    assert sketched.spectrum().pc1_share == pytest.approx(exact.spectrum().pc1_share, abs=0.05)


def test_tracker_refuses_zero_and_nonfinite() -> None:
    p = torch.ones(3)
    tracker = BackboneTracker([p])
    with pytest.raises(ZeroWindowError):
        tracker.capture(1)  # nothing moved
    p[0] = float("nan")
    with pytest.raises(NonFiniteUpdateError):
        tracker.capture(2)
    with pytest.raises(ZeroWindowError, match="no checkpoints"):
        BackboneTracker([torch.ones(2)]).spectrum()


def test_trunk_is_linear_weights_without_heads() -> None:
    from verify.tasks import get_task

    cfg = preset("tiny")
    model = get_task("modular").build_model(cfg.task_config, torch.Generator().manual_seed(0), "cpu")
    names = trunk_weight_names(model)
    assert names and all(n.endswith(".weight") and "head" not in n for n in names)
    assert {n.split(".")[-2] for n in names} >= {"q_proj", "k_proj", "v_proj", "o_proj"}
    shapes = dict(model.named_parameters())
    assert all(shapes[n].ndim == 2 for n in names)
    assert "tok_emb.weight" not in names


def three(values: list[float]) -> dict[str, Any]:
    return three_phase(values)


def test_three_phase_criterion() -> None:
    assert three([1.3, 2.0, 3.0, 2.9, 2.8, 1.1])["holds"]
    assert not three([3.0, 2.0, 1.1])["rise"]  # the peak is the first window
    assert not three([1.3, 3.0, 1.5, 1.4, 1.1])["plateau"]  # a spike, not a plateau
    assert not three([1.3, 2.0, 3.0, 2.9, 2.8, 1.5])["collapse"]
    assert not three([1.0, None])["holds"]


# --- live runs --------------------------------------------------------------------------------------------------


def live_config(**over: Any) -> Any:
    return preset("tiny", **{"p": 23, "d_model": 32, "max_steps": 40, "eval_every": 20, "early_stop": None,
                             "monitor": {"window": 3, "every": 5, "groups": ["all"]},
                             "backbone": {"every": 5, "groups": ["trunk", "all"]}, **over})


@pytest.mark.usefixtures("one_thread")
def test_live_run_records_the_backbone(tmp_path: Path) -> None:
    cfg = live_config()
    path = tmp_path / "run.jsonl"
    result = train_with_monitor(cfg, path, progress=False)
    t = read_trajectory(path)
    recs = t.of_type("backbone", "trunk")
    assert [r["step"] for r in recs] == list(range(5, 41, 5))
    # brute force from the init (rebuilt from the init stream) and the final model: the last checkpoint's norm
    from verify.tasks import get_task

    model0 = get_task("modular").build_model(cfg.task_config, cfg.generator("init"), "cpu")
    names = trunk_weight_names(model0)
    p0 = dict(model0.named_parameters())
    p1 = dict(result.model.named_parameters())
    d = torch.cat([(p1[n] - p0[n]).detach().reshape(-1).double() for n in names])
    assert recs[-1]["norm"] == pytest.approx(float(d.norm()), rel=1e-6)
    spec = backbone_of(path, "trunk")
    assert spec.n == 8 and 0 < spec.pc1_share <= 1
    # measuring never changes training: same final parameters without the tracker
    plain = train(cfg.with_overrides(backbone={"every": None}), progress=False)
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, result.model.state_dict()[k]), k


class Killed(Exception):
    pass


@pytest.mark.usefixtures("one_thread")
def test_resumed_run_continues_the_same_gram(tmp_path: Path) -> None:
    cfg = live_config(checkpoint_every=10, backbone={"every": 5, "groups": ["trunk"]})
    full = tmp_path / "full.jsonl"
    train_with_monitor(cfg, full, progress=False)
    cut = tmp_path / "cut.jsonl"

    def kill(step: int) -> None:
        if step == 23:
            raise Killed

    with pytest.raises(Killed):
        train_with_monitor(cfg, cut, progress=False, step_callback=kill)
    train_with_monitor(cfg, cut, progress=False, resume=True)
    a, b = (read_trajectory(p).of_type("backbone", "trunk") for p in (full, cut))
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra["dots"] == rb["dots"]


def test_claim_rows_without_runs_are_inconclusive(tmp_path: Path) -> None:
    rows = claim_rows(tmp_path)
    assert len(rows) == 5 and {r.verdict for r in rows} == {"INCONCLUSIVE"}


def test_claim_rows_on_a_live_run(tmp_path: Path, one_thread: None) -> None:
    (tmp_path / "backbone").mkdir()
    path = tmp_path / "backbone" / "run.jsonl"
    train_with_monitor(live_config(), path, progress=False)
    rows = {r.claim.split(":")[0]: r for r in claim_rows(tmp_path)}
    row = rows["AdamW backbone"]
    pc1 = backbone_of(path, "trunk").pc1_share
    assert row.verdict == ("PASS" if 0.6 <= pc1 <= 0.8 else "FAIL")
    assert f"{100 * pc1:.1f}%" in row.measured


# --- the stored runs (verify/runs/gpt2, verify/runs/backbone) ---------------------------------------------------

RUNS = Path(__file__).resolve().parents[1] / "verify" / "runs"


@pytest.mark.parametrize("kind", ["gpt2", "backbone"])
def test_stored_manifest_matches_files(kind: str) -> None:
    """runs.json lists every stored run of verify.studies.backbone.store_runs; its numbers are re-derived from the
    files."""
    import json

    from verify.studies.backbone import stored_run_configs
    from verify.summary import summarise

    rows = json.loads((RUNS / kind / "runs.json").read_text())["runs"]
    assert {r["file"] for r in rows} == {f"{stem}.jsonl.gz" for stem in stored_run_configs(kind)}
    for row in rows:
        t = read_trajectory(RUNS / kind / row["file"])
        assert t.of_type("end")[-1]["step"] == row["final_step"]
        assert summarise(t)["grok_step"] == row["grok_step"]
        assert t.of_type("backbone", "trunk"), f"{row['file']}: no backbone records"


def test_stored_rows_rederive_from_the_files() -> None:
    """The backbone rows quote the PCA recomputed here from each file's Gram rows, and their verdicts follow the
    stated criteria."""
    rows = {r.claim.split(":")[0]: r for r in claim_rows(RUNS)}
    for key, lo, hi in (("AdamW backbone", 0.60, 0.80), ("SGD backbone", 0.95, 1.0)):
        row = rows[key]
        assert row.details["runs"], key
        ok = []
        for name, d in row.details["runs"].items():
            folder = row.details["gpt2_scored"] if name.startswith("gpt2") else "backbone"
            spec = backbone_of(RUNS / folder / f"{name}.jsonl.gz", "trunk")
            assert d["pc1_share"] == pytest.approx(spec.pc1_share, abs=1e-12) and d["k95"] == spec.k95
            assert f"{100 * spec.pc1_share:.1f}%" in row.measured
            ok.append(lo <= spec.pc1_share <= hi + 1e-12)
        assert row.verdict == ("PASS" if all(ok) else "FAIL")


def test_store_runs_command_and_the_recorded_command() -> None:
    """The driver is ``spectral-edge store-runs`` (no study has a command line of its own); the stored runs'
    recorded ``python -m verify.backbone gpt2 backbone`` regenerates as that command."""
    from typer.testing import CliRunner

    from verify.cli import app
    from verify.store import regeneration_command

    bad = CliRunner().invoke(app, ["store-runs", "gpt3"])
    assert bad.exit_code != 0 and "gpt2, backbone" in bad.output
    for kind in ("gpt2", "backbone"):
        assert regeneration_command(kind) == "spectral-edge store-runs gpt2 backbone"
