"""The causal intervention rows (``verify.studies.causal_claims``) on planted stored runs: each verdict, the
censoring at the budget, the workload's own grokking criterion, and the ratios against their direct computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from numerics.trajectory import TrajectoryWriter
from verify.claims import check_provider
from verify.studies import causal_claims as cc

SEEDS = (42, 137, 2024)


def write_run(path: Path, *, seed: int, grok: int | None, steps: int, wd: float = 1.0, op: str | None = "add",
              task: str = "modular", seq_grok: int | None = None, every: int = 100) -> Path:
    """Test accuracy jumps to 1 at ``grok`` (None: never); ``test_seq_acc`` to 1 at ``seq_grok``; the run ends at
    ``steps``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = {"task": task, "task_config": {"op": op} if op else {}, "weight_decay": wd, "lr": 1e-3}
    with TrajectoryWriter(path, provenance={"config": cfg, "seeds": {"init_seed": seed}},
                          meta={"every": every, "window": 4, "task": task}) as w:
        for s in range(0, steps + 1, every):
            up = grok is not None and s >= grok
            w.write("eval", s, train_acc=1.0, test_acc=1.0 if up else 0.02,
                    test_seq_acc=1.0 if seq_grok is not None and s >= seq_grok else 0.0)
        w.write("end", steps)
    return path


def plant(root: Path, arm: str, treated: dict[int, tuple[int | None, int]], control: dict[int, tuple[int | None, int]],
          untreated: int | None = 1000, workload: str = "mod97") -> Path:
    """Untreated runs grokking at ``untreated`` (budget 3×), the arm's treated and control runs (grok, last step)."""
    for seed in SEEDS:
        write_run(root / "edge" / f"u-{seed}.jsonl", seed=seed, grok=untreated, steps=(untreated or 6000) + 300)
        write_run(root / "edge" / f"wd0-{seed}.jsonl", seed=seed, grok=None, steps=6000, wd=0.0)  # not untreated
    for folder, runs in ((f"{workload}-{arm}", treated), (f"{workload}-{arm}-ctl", control)):
        for seed, (g, steps) in runs.items():
            write_run(root / "causal" / folder / f"r-{seed}.jsonl", seed=seed, grok=g, steps=steps)
    return root


def rows(root: Path) -> dict[str, object]:
    return {r.criterion: r for r in check_provider("causal", root)}


def test_without_runs_every_row_is_inconclusive(tmp_path: Path) -> None:
    out = rows(tmp_path)
    assert set(out) == set(cc.ARMS) and {r.verdict for r in out.values()} == {"INCONCLUSIVE"}


@pytest.mark.parametrize(("arm", "cid"), [("kick", "causal.defect_amplify"), ("noise", "causal.defect_amplify_noise")])
def test_planted_acceleration_passes_and_its_ratio_is_the_geometric_mean(tmp_path: Path, arm: str, cid: str) -> None:
    treated = {42: (600, 900), 137: (700, 1000), 2024: (500, 800)}
    plant(tmp_path, arm, treated, {s: (1000, 1300) for s in SEEDS})
    out = rows(tmp_path)
    row = out[cid]
    assert row.verdict == "PASS"
    assert all(r.verdict == "INCONCLUSIVE" for c, r in out.items() if c != cid)  # each row reads its own arm only
    geo, lo, hi = row.details["mod97"]["vs_untreated"]
    assert geo == pytest.approx(np.exp(np.mean(np.log([0.6, 0.7, 0.5]))))
    assert 0.5 <= lo <= geo <= hi <= 0.7
    assert "Dyck-1" not in row.measured  # only scored workloads are reported


def test_no_effect_fails_both_directions(tmp_path: Path) -> None:
    same = {s: (1000, 1300) for s in SEEDS}
    plant(tmp_path, "kick", same, same)
    plant(tmp_path, "csup", same, same)
    out = rows(tmp_path)
    assert out["causal.defect_amplify"].verdict == "FAIL"
    assert out["causal.defect_suppress"].verdict == "FAIL"


def test_faster_than_untreated_but_not_than_the_random_control_fails(tmp_path: Path) -> None:
    plant(tmp_path, "kick", {s: (600, 900) for s in SEEDS}, {s: (600, 900) for s in SEEDS})
    assert rows(tmp_path)["causal.defect_amplify"].verdict == "FAIL"


def test_prevention_is_censored_at_the_budget(tmp_path: Path) -> None:
    # seed 42 never groks (run reaches 9000 ≥ budget 3000), 137 groks after its budget, 2024 stopped early unscored
    treated = {42: (None, 9000), 137: (3500, 3800), 2024: (None, 2000)}
    plant(tmp_path, "orth", treated, {s: (1000, 1300) for s in SEEDS})
    res = {r.workload.name: r for r in cc.arm_results("orth", tmp_path)}["mod97"]
    by = {s.seed: s for s in res.seeds}
    assert by[42].prevented and by[42].ratio_untreated == 3.0
    assert by[137].prevented and by[137].t == 3000.0
    assert by[2024].t is None and res.n == 2  # unscored: stopped before its budget without grokking
    assert rows(tmp_path)["causal.orthogonal_suppression"].verdict == "INCONCLUSIVE"  # 2 < min_seeds


def test_orthogonal_suppression_needs_its_controls_to_grok(tmp_path: Path) -> None:
    never = {s: (None, 9000) for s in SEEDS}
    plant(tmp_path / "a", "orth", never, {s: (1100, 1400) for s in SEEDS})
    plant(tmp_path / "b", "orth", never, never)
    assert rows(tmp_path / "a")["causal.orthogonal_suppression"].verdict == "PASS"
    assert rows(tmp_path / "b")["causal.orthogonal_suppression"].verdict == "FAIL"


def test_necessary_counts_slowdowns_of_at_least_one_and_a_half(tmp_path: Path) -> None:
    plant(tmp_path / "slow", "along", {s: (1600, 1900) for s in SEEDS}, {s: (1000, 1300) for s in SEEDS})
    plant(tmp_path / "mild", "along", {s: (1400, 1700) for s in SEEDS}, {s: (1000, 1300) for s in SEEDS})
    assert rows(tmp_path / "slow")["causal.subspace_necessary"].verdict == "PASS"
    assert rows(tmp_path / "mild")["causal.subspace_necessary"].verdict == "FAIL"


def test_untreated_seed_that_never_grokked_is_left_out_with_its_reason(tmp_path: Path) -> None:
    plant(tmp_path, "kick", {s: (600, 900) for s in SEEDS}, {s: (1000, 1300) for s in SEEDS}, untreated=None)
    res = {r.workload.name: r for r in cc.arm_results("kick", tmp_path)}["mod97"]
    assert res.seeds == () and all("never grokked" in m for m in res.missing) and len(res.missing) == 3


def test_dyck_groks_on_sequence_accuracy_not_token_accuracy(tmp_path: Path) -> None:
    for seed in SEEDS:  # token accuracy high from step 200, whole sequences right only from 1000
        write_run(tmp_path / "causal" / "dyck-untreated" / f"u{seed}.jsonl", seed=seed, grok=200, seq_grok=1000,
                  steps=1500, task="dyck", op=None)
        write_run(tmp_path / "causal" / "dyck-kick" / f"t{seed}.jsonl", seed=seed, grok=200, seq_grok=500,
                  steps=800, task="dyck", op=None)
    res = {r.workload.name: r for r in cc.arm_results("kick", tmp_path)}["dyck"]
    assert [s.untreated for s in res.seeds] == [1000] * 3 and [s.t for s in res.seeds] == [500.0] * 3


def test_outcome_figure_draws_prevented_and_grokked_seeds(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    plant(tmp_path, "orth", {42: (None, 9000), 137: (1500, 1800), 2024: (3500, 3800)}, {s: (1000, 1300) for s in SEEDS})
    row = rows(tmp_path)["causal.orthogonal_suppression"]
    fig = Figure()
    row.plot(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "mod-97 addition: arm orth" and len(ax.get_xticks()) == 3
    assert sum(line.get_marker() == "^" for line in ax.lines if len(line.get_xdata())) == 2  # two prevented
