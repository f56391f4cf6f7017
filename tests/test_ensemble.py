"""Ensemble mode (``verify.harness.ensemble``) against its twins: each member against the single run of its config
(``runner.train_with_monitor``), the batched rolling Gram against one ``RollingGram`` per member and against X Xᵀ
computed directly in float64.

What is bitwise and what is not (the tolerances below):

- bitwise: the data split, the initial parameters and the batch indices of every member (its own streams), hence
  the step-0 eval; the header's meta, config, seeds and ``config_sha``; the record sequence (types and steps);
  accuracies (counts over a split), grokking and early-stop steps; k*, w, k95 and every other integer field.
- to float32 rounding: the batched products (``bmm`` over members where a single run calls ``mm``/``mv``, dim-wise
  reductions for the losses and clip norms) add float32 sums in another order, so losses and parameters agree to
  ~1e-7 (tolerance: |Δθ| ≤ 2e-6 absolute, eval losses ≤ 1e-5 relative) and spectrum fields to ~1e-5 relative
  (tolerance 1e-3 relative; arrays relative to their largest entry). Exception: ``attn.k_proj.bias``. Its gradient
  is zero in exact arithmetic (softmax is invariant to a shift of all scores of a query, and the key bias shifts
  them all by q·b_k), so both runs feed pure round-off to Adam, which turns it into lr-sized steps: we only check
  that it stays within η per step of 0 in both, as it does in every single run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from numerics.errors import SpectralEdgeError
from numerics.gram import RollingGram
from numerics.layout import ParamLayout
from numerics.trajectory import read_trajectory
from verify.harness import ensemble
from verify.harness.config import RunConfig, make_run_config
from verify.harness.ensemble import BatchedRollingGram, MemberResult, train_ensemble, train_members
from verify.harness.runner import run_name, train_with_monitor
from verify.harness.sweep import conditions
from verify.store import load_run

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS, WDS = [0, 1], [1.0, 0.0]
#: roundoff-only parameters (module docstring)
ROUNDOFF_ONLY = ("attn.k_proj.bias",)


def tiny(**overrides: Any) -> RunConfig:
    """p = 11, one layer of width 16, 60 steps; early stop at test acc ≥ 0.04 twice, which the seed-0 members reach
    at step 10 (3 of 61 test pairs right at steps 0 and 10) and the seed-1 members never (2 of 61 at step 10)."""
    return make_run_config("modular", {
        "p": 11, "n_layers": 1, "d_model": 16, "n_heads": 2, "d_ff": 32, "batch_size": 32, "lr": 3e-3,
        "max_steps": 60, "eval_every": 10, "early_stop": {"acc": 0.04, "patience": 2},
        "monitor": {"window": 4, "every": 5}, **overrides})


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[MemberResult], list[Any], list[RunConfig]]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tmp = tmp_path_factory.mktemp("ensemble")
        base = tiny()
        members = train_ensemble(base, SEEDS, WDS, tmp / "ensemble")
        cfgs = conditions(base, SEEDS, WDS)
        singles = [train_with_monitor(c, tmp / "single" / f"{run_name(c)}.jsonl", progress=False) for c in cfgs]
    finally:
        torch.set_num_threads(before)
    return members, singles, cfgs


def _close(a: Any, b: Any, rel: float) -> bool:
    """Numbers, or arrays of them, equal up to ``rel`` × the largest |entry| of ``a`` (NaN where NaN)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or not np.array_equal(np.isnan(x), np.isnan(y)):
        return False
    ok = ~np.isnan(x)
    if not ok.any():
        return True
    scale = max(float(np.max(np.abs(x[ok]))), 1e-30)
    return bool(np.all(np.abs(x[ok] - y[ok]) <= rel * scale))


def _same_record(a: dict[str, Any], b: dict[str, Any], rel: float = 1e-3) -> list[str]:
    """Fields of two spectrum records that differ: ints, bools and strings exactly, floats and lists to ``rel``."""
    bad = [] if a.keys() == b.keys() else [f"keys {sorted(a.keys() ^ b.keys())}"]
    for k in a.keys() & b.keys():
        va, vb = a[k], b[k]
        if isinstance(va, dict):
            bad += [f"{k}.{e}" for e in _same_record(va, vb, rel)]
        elif isinstance(va, bool | int | str) or va is None:
            if va != vb:
                bad.append(f"{k}: {va!r} vs {vb!r}")
        elif not _close(va, vb, rel):
            bad.append(f"{k}: {va!r} vs {vb!r}")
    return bad


def test_the_test_config_exercises_early_stop_mid_run(both_ways: Any) -> None:
    _members, singles, cfgs = both_ways
    steps = [s.final_step for s in singles]
    assert any(0 < s < cfgs[0].max_steps for s in steps) and cfgs[0].max_steps in steps, \
        f"final steps {steps}: the config no longer has one member stop early and another run to the end"


def test_each_member_equals_its_single_run(both_ways: Any) -> None:
    members, singles, cfgs = both_ways
    for m, s, cfg in zip(members, singles, cfgs, strict=True):
        label = run_name(cfg)
        assert m.config == cfg and m.error is None
        assert m.final_step == s.final_step and m.grok_step == s.grok_step, label
        assert m.n_params == s.n_params
        assert m.history.steps == s.history.steps, label
        assert m.history.train_acc == s.history.train_acc and m.history.test_acc == s.history.test_acc, label
        for split in ("train_loss", "test_loss"):
            assert np.allclose(getattr(m.history, split), getattr(s.history, split), rtol=1e-5, atol=0), label
        assert m.history.train_loss[0] == s.history.train_loss[0] or math.isclose(
            m.history.train_loss[0], s.history.train_loss[0], rel_tol=1e-6)  # step 0: same θ, same data
        single = dict(s.model.named_parameters())
        steps = s.final_step
        for name, p in m.model.named_parameters():
            if name.endswith(ROUNDOFF_ONLY):
                bound = cfg.lr * steps * (1 + 1e-6)
                assert p.abs().max() <= bound and single[name].abs().max() <= bound, name
            else:
                diff = (p - single[name]).abs().max().item()
                assert diff <= 2e-6, f"{label} {name}: |Δθ| = {diff}"


def test_wd_and_seed_matter_so_the_comparison_can_fail(both_ways: Any) -> None:
    """The members differ from each other by far more than the tolerance (a member trained with another member's
    weight decay or stream would fail the test above)."""
    members, _, _ = both_ways
    a, b = (dict(m.model.named_parameters()) for m in members[2:4])  # wd 0, seeds 0 and 1
    c = dict(members[3].model.named_parameters())
    d = dict(members[1].model.named_parameters())  # wd 1, seed 1
    assert max((a[k] - b[k]).abs().max().item() for k in a) > 1e-2
    assert max((c[k] - d[k]).abs().max().item() for k in c if not k.endswith(ROUNDOFF_ONLY)) > 1e-4


def test_each_member_writes_the_single_runs_trajectory(both_ways: Any) -> None:
    members, _singles, cfgs = both_ways
    single_dir = Path(members[0].path).parent.parent / "single"
    for m, cfg in zip(members, cfgs, strict=True):
        mine, ref = read_trajectory(m.path), read_trajectory(single_dir / f"{run_name(cfg)}.jsonl")
        assert m.path.name == f"{run_name(cfg)}.jsonl"
        assert mine.meta == ref.meta
        for key in ("config", "seeds", "config_sha", "optimizer"):
            assert mine.provenance[key] == ref.provenance[key], key
        assert mine.provenance["ensemble"]["size"] == len(cfgs)
        assert [(r["type"], r["step"], r.get("group")) for r in mine.records] == \
            [(r["type"], r["step"], r.get("group")) for r in ref.records]
        for a, b in zip(ref.of_type("eval"), mine.of_type("eval"), strict=True):
            assert {k: v for k, v in a.items() if "acc" in k} == {k: v for k, v in b.items() if "acc" in k}
        spectra = list(zip(ref.of_type("spectrum"), mine.of_type("spectrum"), strict=True))
        assert spectra, "no spectrum records to compare"
        for a, b in spectra:
            assert _same_record(a, b) == [], (run_name(cfg), a["step"], a["group"])
        run = load_run(m.path)
        assert run.finished and run.config == load_run(single_dir / f"{run_name(cfg)}.jsonl").config
    extended = [r for m in members for r in read_trajectory(m.path).of_type("spectrum") if r["gram_extended"]]
    assert extended and all("alpha" in r for r in extended), "full windows (α, ΔC) were not exercised"


def test_batched_gram_equals_one_rolling_gram_per_member_and_brute_force() -> None:
    """Pushes into a BatchedRollingGram of M = 3 members vs a RollingGram each and vs X Xᵀ in float64 (two groups
    over three atoms, W = 3, seven pushes so the ring wraps)."""
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    layout = ParamLayout.from_model(model, {"all": "*", "first": ["0.weight", "0.bias"]})
    M, W = 3, 3
    batched = BatchedRollingGram(M, W, layout, dtype=torch.float32, device=torch.device("cpu"))
    singles = [RollingGram(W, layout.atom_sizes, layout.groups) for _ in range(M)]
    g = torch.Generator().manual_seed(0)
    history: list[torch.Tensor] = []
    for t in range(7):
        delta = torch.randn(M, layout.P, generator=g)
        assert batched.push(delta).size == 0
        for i in range(M):
            singles[i].push(delta[i].clone())
        history.append(delta.double())
        cols = {"all": list(range(layout.P)),
                "first": [c for a in layout.groups["first"] for c in range(*layout.atom_slices[a])]}
        for gi, group in enumerate(batched.group_names):
            for i in range(M):
                X = torch.stack([d[i] for d in history[-W:]])[:, cols[group]]
                brute = (X @ X.T).numpy()
                tol = 1e-6 * np.abs(brute).max()  # float32 dots of ~40 terms, in any summation order
                assert np.allclose(batched.gram(i, gi), brute, rtol=0, atol=tol)
                assert np.allclose(batched.gram(i, gi), singles[i].gram(group), rtol=0, atol=tol)
                ext, ref = batched.extended_gram(i, gi), singles[i].extended_gram(group)
                assert (ext is None) == (ref is None) == (t < W)
                if ext is not None:
                    Xe = torch.stack([d[i] for d in history[-W - 1:]])[:, cols[group]]
                    assert np.allclose(ext, (Xe @ Xe.T).numpy(), rtol=0, atol=tol)
                    assert np.allclose(ext, ref, rtol=0, atol=tol)


def test_a_non_finite_update_is_reported_and_leaves_the_window_unchanged() -> None:
    model = torch.nn.Linear(3, 2)
    layout = ParamLayout.from_model(model)
    gram = BatchedRollingGram(2, 2, layout, dtype=torch.float32, device=torch.device("cpu"))
    delta = torch.ones(2, layout.P)
    delta[1, 0] = float("nan")
    assert gram.push(delta).tolist() == [1]
    assert gram.n_pushed == 0 and not gram.X.any()


def test_eval_in_member_chunks_equals_eval_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split evaluated one member at a time (``EVAL_ROWS`` below one split) gives the metrics of all at once."""
    cfg = tiny(max_steps=10, early_stop=None)
    whole = train_ensemble(cfg, SEEDS, WDS, tmp_path / "whole")
    monkeypatch.setattr(ensemble, "EVAL_ROWS", 1)
    chunked = train_ensemble(cfg, SEEDS, WDS, tmp_path / "chunked")
    for a, b in zip(whole, chunked, strict=True):
        assert a.history.train_acc == b.history.train_acc and a.history.test_acc == b.history.test_acc
        assert np.allclose(a.history.test_loss, b.history.test_loss, rtol=1e-5, atol=0)
        assert list(a.history.metrics[0]) == list(b.history.metrics[0]) == \
            ["train_acc", "train_loss", "test_acc", "test_loss"]


# --- bad input -------------------------------------------------------------------------------------------------


def test_no_member_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpectralEdgeError, match=r"M = 0"):
        train_ensemble(tiny(), [], [1.0], tmp_path)
    with pytest.raises(SpectralEdgeError, match=r"M = 0"):
        train_ensemble(tiny(), [0], [], tmp_path)
    with pytest.raises(SpectralEdgeError, match=r"M = 0"):
        train_members([], tmp_path)


def test_members_of_different_configs_are_refused_by_name(tmp_path: Path) -> None:
    a = tiny()
    with pytest.raises(SpectralEdgeError, match=r"member 1 differs .*lr"):
        train_members([a, a.with_overrides(lr=1e-2).with_seed(1)], tmp_path)
    with pytest.raises(SpectralEdgeError, match=r"member 1 differs .*task_config\.p"):
        train_members([a, a.with_overrides(p=13).with_seed(1)], tmp_path)
    with pytest.raises(SpectralEdgeError, match=r"share run names"):
        train_ensemble(a, [0, 0], [1.0], tmp_path)
    assert not list(tmp_path.iterdir()), "nothing may be written before the members are checked"


@pytest.mark.parametrize("study", ["defect", "probes", "backbone", "lch"])
def test_a_study_measurement_is_refused_by_name(tmp_path: Path, study: str) -> None:
    with pytest.raises(SpectralEdgeError, match=rf"measurements \['{study}'\] are not supported in ensemble mode"):
        train_ensemble(tiny(**{study: {"every": 10}}), [0], [1.0], tmp_path)


def test_an_intervention_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SpectralEdgeError, match=r"interventions \['causal'\] are not supported in ensemble mode"):
        train_ensemble(tiny(causal={"enabled": True, "start": 300}), [0], [1.0], tmp_path)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"optimizer": "sgd"}, "AdamW only"),
    ({"checkpoint_every": 10}, "checkpoint"),
    ({"monitor": {"storage_dtype": "bfloat16"}}, "bfloat16"),
])
def test_other_unsupported_settings_are_refused(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SpectralEdgeError, match=message):
        train_ensemble(tiny(**overrides), [0], [1.0], tmp_path)


def test_an_existing_trajectory_is_not_overwritten_silently(tmp_path: Path) -> None:
    cfg = tiny(max_steps=2)
    path = tmp_path / f"{run_name(cfg.with_seed(0))}.jsonl"
    path.write_text("not mine\n")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train_ensemble(cfg, [0], [1.0], tmp_path)
    assert path.read_text() == "not mine\n"
    (result,) = train_ensemble(cfg, [0], [1.0], tmp_path, overwrite=True)
    assert result.final_step == 2 and load_run(path).finished
