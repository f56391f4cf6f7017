"""The multi-task study's rows (verify.studies.multitask) on planted runs, where the verdict is known by construction,
and its helpers against independent twins (scipy's binomial tail, SVD of Gaussian windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from numerics.trajectory import TrajectoryWriter
from verify.store import load_runs
from verify.studies import multitask as mt

OPS = ("add", "mul")


def write_run(path: Path, *, wd: float, seed: int, grok: dict[str, int | None], sigma: list[float],
              defect_peak: int | None = 800, steps: int = 2000, every: int = 100, W: int = 4) -> Path:
    """A two-task run: task op's test acc jumps to 1 at ``grok[op]`` (None: never); every full window has ``sigma``;
    defect D = 1 except 50 at ``defect_peak``."""
    cfg = {"task": "multitask", "task_config": {"ops": list(OPS)}, "weight_decay": wd, "lr": 1e-3}
    with TrajectoryWriter(path, provenance={"config": cfg, "seeds": {"init_seed": seed}},
                          meta={"every": every, "window": W, "task": "multitask"}) as w:
        for s in range(every, steps + 1, every):
            w.write("spectrum", s, group="all", w=W, sigma=sigma, kstar=1, R=sigma[0] / sigma[1])
            accs = {f"test_acc_{op}": 1.0 if grok[op] is not None and s >= grok[op] else 0.01 for op in OPS}
            w.write("eval", s, train_acc=1.0, test_acc=min(accs.values()), **accs)
            w.write("defect", s, D=50.0 if s == defect_peak else 1.0)
        w.write("end", steps)
    return path


def _runs(tmp: Path, treated: list[dict], controls: int = 3, ctrl_sigma: tuple[float, ...] = (1.0, 0.95, 0.9, 0.8),
          treat_sigma: tuple[float, ...] = (3.0, 1.0, 0.9, 0.8)) -> list:
    for i, grok in enumerate(treated):
        write_run(tmp / f"t{i}.jsonl", wd=1.0, seed=i, grok=grok, sigma=list(treat_sigma))
    for i in range(controls):
        write_run(tmp / f"c{i}.jsonl", wd=0.0, seed=i, grok={op: None for op in OPS}, sigma=list(ctrl_sigma),
                  defect_peak=1500)
    return load_runs([tmp])


def test_planted_staggered_gap_and_defect_rows_pass(tmp_path: Path) -> None:
    runs = _runs(tmp_path, [{"mul": 1000, "add": 1200}] * 6)
    stag, gap, defect = mt.staggered_row(runs), mt.gap_row(runs), mt.defect_row(runs)
    assert stag.verdict == "PASS" and stag.details["sets"]["add+mul"]["first"] == "mul"
    assert gap.verdict == "PASS" and gap.details["open_share_treated"] == 1.0
    assert gap.details["open_share_controls"] == 0.0 and gap.details["diff_ci"][0] > 0
    assert defect.verdict == "PASS"
    assert all(r.control and r.null and r.criterion for r in (stag, gap, defect))


def test_unordered_tasks_fail_and_an_opening_control_fails(tmp_path: Path) -> None:
    runs = _runs(tmp_path, [{"mul": 1000, "add": 1200}, {"mul": 1200, "add": 1000}] * 3,
                 ctrl_sigma=(3.0, 1.0, 0.9, 0.8))  # the controls open as wide as the treated runs
    assert mt.staggered_row(runs).verdict == "FAIL"
    assert mt.gap_row(runs).verdict == "FAIL"


def test_too_few_runs_is_inconclusive(tmp_path: Path) -> None:
    runs = _runs(tmp_path, [{"mul": 1000, "add": 1200}] * 2, controls=1)
    assert {mt.staggered_row(runs).verdict, mt.gap_row(runs).verdict, mt.defect_row(runs).verdict} == {"INCONCLUSIVE"}


def test_a_late_defect_peak_fails(tmp_path: Path) -> None:
    for i in range(4):
        write_run(tmp_path / f"t{i}.jsonl", wd=1.0, seed=i, grok={"add": 1000, "mul": 1000}, sigma=[3, 1, 1, 1],
                  defect_peak=1500)
    assert mt.defect_row(load_runs([tmp_path])).verdict == "FAIL"


def test_grok_steps_ties_and_never(tmp_path: Path) -> None:
    run = load_runs([write_run(tmp_path / "r.jsonl", wd=1.0, seed=0, grok={"add": 700, "mul": None},
                               sigma=[2, 1, 1, 1])])[0]
    assert mt.grok_steps(run) == {"add": 700, "mul": None} and not mt.groks(run)
    assert mt._first_task({"add": 700, "mul": 700}) is None
    assert mt._first_task({"add": 700, "mul": 900}) == "add"


@pytest.mark.parametrize(("k", "n", "p"), [(5, 6, 0.5), (6, 6, 0.5), (4, 9, 1 / 3), (0, 4, 0.2)])
def test_binomial_tail_matches_scipy(k: int, n: int, p: float) -> None:
    assert mt._binomial_tail(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-12)


def test_gaussian_null_shrinks_with_P() -> None:
    small, _ = mt.gaussian_gap_null(10, 30, reps=30)
    large, large_max = mt.gaussian_gap_null(10, 20_000, reps=10)
    assert large < small and large_max < 0.1  # σ_j ≈ √P (1 + O(√(W/P))): the relative gap is O(1/√P)
    sig = np.array([3.0, 1.0])
    assert mt.relative_gap(sig) == pytest.approx(2 / 3)


def test_rows_without_runs_carry_no_empty_figure(tmp_path: Path) -> None:
    from verify.claims import write_claims

    rows = mt.claim_rows(tmp_path)  # no multitask directories at all
    assert {r.verdict for r in rows} == {"INCONCLUSIVE"} and all(r.plot is None for r in rows)
    write_claims(rows, tmp_path / "out", figures=True)
