"""The predictors study (verify.studies.predictors): synthetic runs where the answer is known, and the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from numerics import predictors as P
from verify.claims import ClaimRow, check_provider
from verify.criteria import check_criteria, criteria
from verify.store import RUNS_ROOT
from verify.studies import predictors as study
from verify.studies.predictors_data import (
    Checkpoint,
    PredRun,
    constant_error,
    forecasts,
    lag1_autocorrelation,
    log_error,
    mode_points,
    pooled_skill,
)

LR, DS, W, WD = 1e-3, 100, 10, 1.0


def _run(name: str, sigmas: list[np.ndarray], hs: list[np.ndarray], Gs: list[np.ndarray], *,
         wd: float = WD, kstar: int | None = 1) -> PredRun:
    """A grokking run (grok step far ahead, test acc 0.1) with one checkpoint per given σ, every Δs steps."""
    steps = [DS * (i + 1) for i in range(len(sigmas))]
    cps = [Checkpoint(s, np.asarray(sg, float), W, kstar, list(range(1, len(h) + 1)), np.asarray(h, float),
                      np.asarray(G, float), 0.1) for s, sg, h, G in zip(steps, sigmas, hs, Gs, strict=True)]
    return PredRun(name, "add", wd, 0, 10 ** 9, LR, DS, W, cps,
                   {s: np.asarray(sg, float) for s, sg in zip(steps, sigmas, strict=True)})


def _fixed_point_runs(variant: str, n_runs: int = 4, n_cp: int = 12, seed: int = 0) -> list[PredRun]:
    rng = np.random.default_rng(seed)
    runs = []
    for r in range(n_runs):
        hs = [rng.uniform(0.01, 0.5, 4) for _ in range(n_cp)]
        Gs = [rng.lognormal(-4, 1, 4) for _ in range(n_cp)]
        sig = [P.mode_fixed_point(G, h, WD, LR * DS, W, variant=variant) for h, G in zip(hs, Gs, strict=True)]
        runs.append(_run(f"r{r}", sig, hs, Gs))
    return runs


def test_log_error_and_constant_baseline() -> None:
    x = np.array([1.0, 2.0, 4.0])
    assert log_error(x, x) == 0
    assert log_error(2 * x, x) == pytest.approx(np.log(2))
    assert constant_error(x) == pytest.approx(np.log(2))  # median 2: |ln 2/1|, 0, |ln 2/4|


def test_exact_fixed_point_passes_and_beats_constant() -> None:
    runs = _fixed_point_runs("corrected")
    pts = mode_points(runs[0])
    assert log_error(pts.corrected, pts.sigma) == pytest.approx(0, abs=1e-12)
    assert log_error(pts.quoted, pts.sigma) == pytest.approx(-0.5 * np.log(LR * DS))
    row = study.fixed_point_row(runs)
    assert row.verdict == "PASS", row.measured
    assert study.variant_row(runs).verdict == "PASS"
    assert row.criterion == "predictors.fixed_point" and row.control and row.null


def test_quoted_fixed_point_is_found_better_when_the_data_follow_it() -> None:
    row = study.variant_row(_fixed_point_runs("quoted"))
    assert row.verdict == "FAIL" and row.details["better"] == "quoted"


def test_unrelated_sigma_fails_the_fixed_point_row() -> None:
    rng = np.random.default_rng(1)
    runs = [_run(f"r{r}", [rng.lognormal(0, 0.1, 4) for _ in range(12)], [rng.uniform(0.01, 0.5, 4)
                                                                          for _ in range(12)],
                 [rng.lognormal(-4, 1, 4) for _ in range(12)]) for r in range(4)]
    assert study.fixed_point_row(runs).verdict == "FAIL"
    assert study.hierarchy_row(runs).verdict == "FAIL"


def test_hierarchy_passes_when_sigma_follows_it() -> None:
    runs = _fixed_point_runs("corrected", n_runs=4, n_cp=15, seed=3)
    row = study.hierarchy_row(runs)
    assert row.verdict == "PASS", row.measured
    assert row.details["p"] < 0.05


def _pair_run(name: str, sig: np.ndarray, h: np.ndarray, G: np.ndarray) -> PredRun:
    """A run of the gap pair (modes 1, 2) with σ trajectories ``sig`` (n_t, 2), h and G constant."""
    return _run(name, list(sig), [h] * len(sig), [G] * len(sig))


def test_forecast_of_a_flow_trajectory_has_skill_one() -> None:
    runs = []
    for i, (h, G) in enumerate([([0.3, 0.05], [0.02, 0.01]), ([0.1, 0.2], [0.03, 0.005]),
                                ([0.5, 0.1], [0.01, 0.02]), ([0.2, 0.2], [0.04, 0.01])]):
        sol = P.integrate_modes([0.2, 0.1], h, G, LR, WD, W, (0, 15), t_eval=np.arange(16), delta_s=DS)
        runs.append(_pair_run(f"r{i}", sol.d.T, np.asarray(h), np.asarray(G)))
    fcs = [forecasts(r) for r in runs]
    assert all(f.n_origins >= 5 for f in fcs)
    for k in (1, 5):
        assert pooled_skill(fcs, k, "persistence") == pytest.approx(1, abs=1e-3)
    assert study.forecast_row(runs).verdict == "PASS"


def test_persistence_only_model_has_skill_zero() -> None:
    """h = ω = G = 0 freezes the flow: the forecast is persistence, skill 0 on any series."""
    rng = np.random.default_rng(2)
    runs = []
    for i in range(4):
        walk = 1 + np.cumsum(rng.normal(0, 0.02, (20, 2)), axis=0)
        sig = np.sort(np.abs(walk), axis=1)[:, ::-1] + np.array([0.5, 0])
        runs.append(_run(f"r{i}", list(sig), [np.zeros(2)] * 20, [np.zeros(2)] * 20, wd=0.0))
    fcs = [forecasts(r) for r in runs]
    for k in (1, 3):
        assert pooled_skill(fcs, k, "persistence") == pytest.approx(0, abs=1e-9)


def test_lag1_autocorrelation_of_an_ar1_series() -> None:
    rng = np.random.default_rng(4)
    x = np.zeros(5000)
    for t in range(1, len(x)):
        x[t] = 0.7 * x[t - 1] + rng.normal()
    assert lag1_autocorrelation(np.arange(len(x)) * DS, x, DS) == pytest.approx(0.7, abs=0.03)
    # a missing checkpoint breaks the pair across it, not the estimate
    assert np.isnan(lag1_autocorrelation([100, 200], [1.0, 2.0], DS))


def test_provider_contract_on_an_empty_root(tmp_path: Path) -> None:
    rows = check_provider("predictors", tmp_path)
    assert len(rows) >= 4
    assert all(r.verdict == "INCONCLUSIVE" and r.criterion for r in rows)


def test_criteria_fixed_and_unchanged() -> None:
    found = {k: v for k, v in criteria().items() if k.startswith("predictors.")}
    assert len(found) == len(study.ROWS)
    assert not check_criteria(found)
    assert all(str(c.fixed) == "2026-12-02" and not c.post_hoc for c in found.values())


@pytest.mark.slow
def test_stored_probe_runs_give_rows_with_controls_and_nulls(
        stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> None:
    if not (RUNS_ROOT / study.PROBE_RUNS).is_dir():
        pytest.skip("no stored probe runs")
    rows = stored_provider_rows["predictors"]  # check_provider("predictors", RUNS_ROOT), once per session (conftest)
    assert len(rows) == len(study.ROWS)
    for r in rows:
        assert r.verdict in ("PASS", "FAIL"), (r.claim, r.reason)
        # a figure: its plot, or (read back from the book's claims cache, conftest) the PNG drawn from it
        assert r.control and r.null and r.criterion and (r.plot is not None or Path(r.figure or "").is_file())
