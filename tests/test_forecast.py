"""The onset forecaster (issue 15): AUROC, causal signals, feature formulas against twins, the model, its fit, the
operating point, the live callback, the shipped model, the held-out folds and the CLI."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from numerics.monitor import SpectralMonitor
from verify import cli
from verify.store import RUNS_ROOT, DefectRecord, EvalRecord, NormRecord, SpectrumRecord, load_run
from verify.studies import forecast as fc
from verify.studies.forecast import (
    HORIZONS,
    ForecastCallback,
    Forecaster,
    ForecastError,
    auroc,
    evaluate,
    fit,
    fit_stored,
    forecast_run,
    forecast_signals,
    frozen_model,
    load_signals,
)
from verify.studies.forecast_signals import (
    BASELINES,
    EVENT_METRIC,
    FEATURES,
    Signals,
    baseline_series,
    event_metric,
    signals_of,
    signals_of_run,
)

MODULAR = RUNS_ROOT / "modular" / "modular-add-p97-wd1-s42.jsonl.gz"
DYCK = RUNS_ROOT / "dyck" / "dyck-d128-l2-wd1-s42.jsonl.gz"
COL = {f: i for i, f in enumerate(FEATURES)}


def _brute_auroc(pos, neg) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _same(a, b, what: str = "") -> None:
    """Equal arrays, NaN equal to NaN."""
    np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float), err_msg=what)


# --- 1. AUROC ---------------------------------------------------------------------------------------------------


@given(st.lists(st.integers(-3, 3), min_size=1, max_size=12), st.lists(st.integers(-3, 3), min_size=1, max_size=12),
       st.floats(0.1, 10))
def test_auroc_is_the_pairwise_count_with_half_ties(pos, neg, scale):
    p, n = [scale * x for x in pos], [scale * x for x in neg]  # few distinct values: many ties
    assert auroc(p, n) == pytest.approx(_brute_auroc(p, n), abs=1e-12)


def test_auroc_is_nan_without_both_classes():
    assert math.isnan(auroc([], [0.1, 0.2]))
    assert math.isnan(auroc([0.3], []))
    assert auroc([1.0], [0.0]) == 1.0 and auroc([0.0], [1.0]) == 0.0 and auroc([0.5], [0.5]) == 0.5


# --- 2. causality -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modular_run():
    return load_run(MODULAR)


@pytest.fixture(scope="module")
def dyck_run():
    return load_run(DYCK)


def _kwargs(run):
    return {"eta": float(run.setting("lr")), "delta_s": run.delta_s, "metric": event_metric(run.task), "id": run.id}


def _group(run) -> str:
    return "all" if "all" in run.groups() else run.groups()[0]


@pytest.mark.parametrize("which", ["modular", "dyck"])
def test_signals_on_a_prefix_are_the_first_rows_of_the_full_signals(which, request):
    run = request.getfixturevalue(f"{which}_run")
    full = signals_of_run(run)
    assert len(full.steps) >= 10
    g = _group(run)
    spectra, evals, defects, norms = run.spectra(g), run.evals(), run.defects(), run.norms()
    if which == "dyck":
        assert defects, "the Dyck run records the commutator defect: the causality of `defect` is checked too"
    n = len(full.steps)
    for k in sorted({1, 2, n // 4, n // 2, 3 * n // 4, n - 1}):
        t = int(full.steps[k - 1])
        # the online view at window t: its spectrum and everything written before it (a step's eval and
        # measurements come after its spectrum), and the offline view truncated at t (eval at t included)
        views = {
            "online": (lambda s, t=t: s < t),
            "offline": (lambda s, t=t: s <= t),
        }
        for name, keep in views.items():
            part = signals_of([r for r in spectra if r.step <= t], [e for e in evals if keep(e.step)],
                              defects=[d for d in defects if keep(d.step)], norms=[r for r in norms if keep(r.step)],
                              **_kwargs(run))
            assert list(part.steps) == list(full.steps[:k]), (which, name, t)
            _same(part.features, full.features[:k], f"{which} {name} view at step {t}")
            for key, ser in full.series.items():
                _same(part.series[key], ser[:k], f"{which} {name} series {key} at step {t}")


# --- 3. feature formulas against twins ----------------------------------------------------------------------------

ETA, DS = 0.01, 10


def _spectrum(step, sigma, kstar, *, R="auto", g23="auto", dG=1e-3, group="all"):
    sigma = [float(s) for s in sigma]
    lam = [s * s for s in sigma]
    k = kstar
    return SpectrumRecord(step, group, len(sigma), sigma=sigma, lam=lam, kstar=k,
                          R=sigma[k - 1] / sigma[k] if R == "auto" else R, g=sigma[k - 1] - sigma[k],
                          g23=lam[1] - lam[2] if g23 == "auto" else g23, dG_norm=dG)


def _eval(step, **m):
    return EvalRecord.from_record({"type": "eval", "step": step, **m})


@pytest.fixture(scope="module")
def synthetic():
    """12 windows at steps 10..120, evals in between (steps 5, 15, ..., 115: no step coincides, so "latest eval"
    is unambiguous), a spectrum before the first eval and a degenerate window (neither is a window), defects and
    norms at odd steps."""
    rng = np.random.default_rng(7)
    kstars = [1, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 1]
    spectra = [_spectrum(2, [3, 2, 1, 0.5], 1)]  # before the first eval: not a window
    for i, step in enumerate(range(10, 130, 10)):
        sigma = np.sort(rng.uniform(0.2, 3.0, 4))[::-1] * (1 + 0.1 * i)
        kw = {}
        if i == 5:
            kw["R"] = None  # an exact rank drop: R = +inf, log_R undefined
        if i == 7:
            kw["g23"] = None
        if i == 8:
            kw["dG"] = None
        if i == 9:
            sigma = np.array([2.0 + 1e-9, 2.0, 1.0, 0.5])  # k* = 1, g = 1e-9: A far above 10^4, clipped
        spectra.append(_spectrum(step, sigma, kstars[i], **kw))
        if i == 6:
            spectra.append(SpectrumRecord(step + 5, "all", 4, degenerate="all-zero window"))
    e_steps = list(range(5, 125, 10))
    train_acc = [0.3, 0.6, 0.9, 0.97, 0.995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # memorised at step 45
    test_acc = [0.1, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 0.7, 0.9, 0.96, 0.99, 1.0]  # event at step 95
    seq_acc = [0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 0.97, 0.99]  # event at step 105
    train_loss = [2.0, 1.5, 0.9, 0.5, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02]
    test_loss = [2.1, 2.5, 3.0, 3.5, 3.6, 3.4, 2.5, 1.5, 0.6, 0.2, 0.05, 0.03]
    evals = [_eval(s, train_acc=a, test_acc=b, test_seq_acc=c, train_loss=d, test_loss=e)
             for s, a, b, c, d, e in zip(e_steps, train_acc, test_acc, seq_acc, train_loss, test_loss, strict=True)]
    defects = [DefectRecord(s, D) for s, D in [(12, 2.0), (33, 8.0), (34, 4.0), (47, 1.0), (81, 0.5)]]
    norms = [NormRecord(s, v) for s, v in [(7, 10.0), (25, 12.0), (51, 11.0), (52, 13.0), (91, 9.0)]]
    return spectra, evals[::-1], defects, norms  # evals in any order


def _twins(spectra, evals, defects, norms, metric="test_acc"):
    """Every feature by the module docstring's formulas, written out plainly (loops, no shared helpers)."""
    ev = sorted(evals, key=lambda e: e.step)
    wins = [r for r in spectra if r.sigma is not None and r.step >= ev[0].step]
    steps = [r.step for r in wins]

    def latest(recs, t):
        before = [j for j, r in enumerate(recs) if r.step < t]
        return before[-1] if before else None

    out = {f: [] for f in FEATURES}
    extra = {"loss_osc": [], "g23_drop": []}
    lnR = [math.log(r.R) if r.R is not None else math.nan for r in wins]
    g23 = [r.g23 if r.g23 is not None else math.nan for r in wins]
    acc = [e.get(metric) for e in ev]
    gap = [math.log(e.get("test_loss") / e.get("train_loss")) for e in ev]
    t_mem = next((e.step for e in ev if e.get("train_acc") >= 0.99), None)
    for i, (r, t) in enumerate(zip(wins, steps, strict=True)):
        finite = [x for x in lnR[: i + 1] if math.isfinite(x)]
        out["log_R"].append(lnR[i] - float(np.median(finite[:3])) if math.isfinite(lnR[i]) else math.nan)
        last5 = [w.kstar == 1 for w in wins[max(0, i - 4): i + 1]]
        out["kstar_stab"].append(sum(last5) / len(last5))
        out["g23_scale"].append(math.log10(g23[i] / r.lam[0]) if math.isfinite(g23[i]) else math.nan)
        peak = max(x for x in g23[: i + 1] if math.isfinite(x))
        out["g23_decl"].append(math.log(g23[i] / peak) if math.isfinite(g23[i]) else math.nan)
        extra["g23_drop"].append(1 - g23[i] / peak if math.isfinite(g23[i]) else math.nan)
        if r.dG_norm is None:
            out["log_A"].append(math.nan)
        else:
            A = r.dG_norm / (ETA * DS * r.g ** 2)
            out["log_A"].append(min(4.0, max(-4.0, math.log10(A))))
        j = latest(defects, t)
        if j is None:
            out["defect"].append(math.nan)
        else:
            base = float(np.median([d.D for d in defects[: min(j, 2) + 1]]))
            out["defect"].append(math.log(defects[j].D / base) if j != 1 else "skip")  # j = 1: see test
        out["sigma_trend"].append(math.log(r.sigma[0] / wins[i - 3].sigma[0]) if i >= 3 else math.nan)
        j = latest(ev, t)
        out["train_acc"].append(ev[j].get("train_acc") if j is not None else math.nan)
        out["test_acc"].append(acc[j] if j is not None else math.nan)
        out["test_slope"].append(acc[j] - acc[j - 3] if j is not None and j >= 3 else math.nan)
        out["loss_gap"].append(gap[j] if j is not None else math.nan)
        out["gap_close"].append(max(gap[: j + 1]) - gap[j] if j is not None else math.nan)
        if j is None or j < 2:
            extra["loss_osc"].append(math.nan)
        else:
            lnL = [math.log(e.get("train_loss")) for e in ev[: j + 1]]
            d2 = [(lnL[k] - 2 * lnL[k - 1] + lnL[k - 2]) ** 2 for k in range(2, j + 1)]
            extra["loss_osc"].append(sum(d2) / len(d2))
        out["mem_age"].append((t - t_mem) / t if t_mem is not None and t > t_mem else 0.0)
        j = latest(norms, t)
        if j is None:
            out["norm_decl"].append(math.nan)
        else:
            peak = max(n.norm for n in norms[: j + 1])
            out["norm_decl"].append((peak - norms[j].norm) / peak)
    return steps, out, extra


def test_features_match_their_formulas(synthetic):
    spectra, evals, defects, norms = synthetic
    sig = signals_of(spectra, evals, defects=defects, norms=norms, eta=ETA, delta_s=DS)
    steps, twin, extra = _twins(spectra, evals, defects, norms)
    assert list(sig.steps) == steps == list(range(10, 130, 10))  # step 2 (before any eval) and 75 (degenerate) out
    assert sig.features.shape == (12, len(FEATURES))
    for f in FEATURES:
        got, want = sig.features[:, COL[f]], np.array([np.nan if w == "skip" else w for w in twin[f]], float)
        keep = np.array([w != "skip" for w in twin[f]])
        np.testing.assert_allclose(got[keep], want[keep], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=f)
    np.testing.assert_allclose(sig.series["loss_osc"], extra["loss_osc"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(baseline_series(sig, "g23 decline"), extra["g23_drop"], rtol=1e-9, atol=1e-12,
                               equal_nan=True)
    np.testing.assert_allclose(baseline_series(sig, "gap opening R"), np.exp(np.array(twin["log_R"], float)),
                               rtol=1e-9, equal_nan=True)
    assert sig.features[9, COL["log_A"]] == 4.0  # the clip
    assert np.isnan(sig.features[5, COL["log_R"]]) and np.isnan(sig.features[7, COL["g23_scale"]])
    assert np.all(sig.features[:, COL["g23_decl"]][np.isfinite(sig.features[:, COL["g23_decl"]])] <= 0)
    assert sig.event == 95  # the first eval with test accuracy ≥ 0.95
    with pytest.raises(KeyError, match="unknown baseline"):
        baseline_series(sig, "tea leaves")
    assert set(BASELINES.values()) <= set(sig.series)


def test_without_eta_norms_or_defects_those_features_are_missing(synthetic):
    spectra, evals, _, _ = synthetic
    sig = signals_of(spectra, evals)
    for f in ("log_A", "defect", "norm_decl"):
        assert np.all(np.isnan(sig.features[:, COL[f]])), f
    assert not np.isnan(sig.features[:, COL["test_acc"]]).all()


def test_dyck_event_is_sequence_accuracy(synthetic, dyck_run):
    spectra, evals, defects, norms = synthetic
    assert event_metric("dyck") == EVENT_METRIC["dyck"] == "test_seq_acc"
    assert event_metric("modular") == "test_acc" and event_metric(None) == "test_acc"
    sig = signals_of(spectra, evals, defects=defects, norms=norms, eta=ETA, delta_s=DS, metric="test_seq_acc")
    assert sig.event == 105  # per-token test accuracy crossed at 95; sequence accuracy at 105
    _, twin, _ = _twins(spectra, evals, defects, norms, metric="test_seq_acc")
    np.testing.assert_allclose(sig.features[:, COL["test_acc"]], twin["test_acc"], equal_nan=True)
    np.testing.assert_allclose(sig.features[:, COL["test_slope"]], twin["test_slope"], equal_nan=True)
    # stored Dyck runs: the event is the first eval with sequence accuracy ≥ 0.95, read off the raw records; on
    # wd1-s42 token accuracy crosses and sequence accuracy never does (a negative), on wd1-s137 it crosses later
    for run in (dyck_run, load_run(RUNS_ROOT / "dyck" / "dyck-d128-l2-wd1-s137.jsonl.gz")):
        raw = [r for r in run.trajectory.records if r["type"] == "eval" and r.get("test_seq_acc") is not None]
        want = next((r["step"] for r in raw if r["test_seq_acc"] >= 0.95), None)
        tok = next((r["step"] for r in raw if r["test_acc"] >= 0.95), None)
        assert tok is not None and (want is None or tok < want), run.id  # the two metrics disagree on these runs
        assert signals_of_run(run).event == want, run.id


def test_a_steps_own_eval_is_not_seen_by_its_window():
    """The loop writes a step's spectrum before its eval: window t reads evals with step < t only (module
    docstring), so mem_age is 0 at the memorisation step itself and the event window is not scorable."""
    spectra = [_spectrum(s, [4.0, 2.0, 1.0, 0.5], 1) for s in range(10, 70, 10)]
    acc = {0: 0.1, 10: 0.2, 20: 0.3, 30: 0.6, 40: 0.97, 50: 0.99, 60: 1.0}
    tr = {0: 0.5, 10: 0.9, 20: 0.995, 30: 1.0, 40: 1.0, 50: 1.0, 60: 1.0}
    evals = [_eval(s, train_acc=tr[s], test_acc=a, train_loss=1.0, test_loss=2.0) for s, a in acc.items()]
    sig = signals_of(spectra, evals)
    _same(sig.features[:, COL["test_acc"]], [acc[s - 10] for s in range(10, 70, 10)])
    _same(sig.features[:, COL["mem_age"]], [0, 0, (30 - 20) / 30, (40 - 20) / 40, (50 - 20) / 50, (60 - 20) / 60])
    assert sig.event == 40
    assert list(sig.steps[sig.before(sig.event)]) == [10, 20, 30]


# --- 4. the model -------------------------------------------------------------------------------------------------


def _random_model(seed: int, features=FEATURES) -> Forecaster:
    rng = np.random.default_rng(seed)
    k = len(features)
    return Forecaster(tuple(features), rng.normal(size=k), rng.uniform(0.2, 3.0, k),
                      rng.normal(scale=2.0, size=(len(HORIZONS), k + 1)), float(rng.uniform()),
                      frozenset({f"run{seed}"}), meta={"seed": seed})


def _random_X(rng, n):
    X = rng.normal(scale=3.0, size=(n, len(FEATURES)))
    X[rng.uniform(size=X.shape) < 0.2] = np.nan
    return X


@given(st.integers(0, 2**31 - 1))
def test_cdf_is_a_probability_non_decreasing_in_the_horizon(seed):
    rng = np.random.default_rng(seed)
    sub = tuple(f for f in FEATURES if rng.uniform() < 0.6) or ("test_acc",)
    model = _random_model(seed, sub)
    F = model.cdf(_random_X(rng, 20))
    assert F.shape == (20, len(HORIZONS))
    assert np.all((F >= 0) & (F <= 1))
    assert np.all(np.diff(F, axis=1) >= 0)
    np.testing.assert_array_equal(model.score(_random_X(rng, 5)).shape, (5,))


def test_missing_feature_is_its_training_mean():
    model = _random_model(3)
    X = np.full((1, len(FEATURES)), np.nan)
    at_mean = model.mean[None, :].copy()
    np.testing.assert_allclose(model.cdf(X), model.cdf(at_mean), rtol=1e-12)


def test_json_round_trip_and_save_load(tmp_path):
    model = _random_model(11, FEATURES[3:9])
    X = _random_X(np.random.default_rng(0), 30)
    back = Forecaster.from_json(model.to_json())
    np.testing.assert_array_equal(back.cdf(X), model.cdf(X))
    assert (back.features, back.threshold, back.calibrated_on, back.horizons, back.meta) == \
        (model.features, model.threshold, model.calibrated_on, model.horizons, model.meta)
    path = tmp_path / "m.json"
    model.save(path)
    np.testing.assert_array_equal(Forecaster.load(path).cdf(X), model.cdf(X))
    model.threshold = math.inf  # fitted without negatives: the operating point never fires
    assert Forecaster.from_json(model.to_json()).threshold == math.inf


def test_load_refuses_a_missing_file_and_an_unknown_feature(tmp_path):
    with pytest.raises(ForecastError, match=r"no forecaster file at .*nowhere\.json"):
        Forecaster.load(tmp_path / "nowhere.json")
    d = json.loads(_random_model(1).to_json())
    d["features"][2] = "tea_leaves"
    with pytest.raises(ForecastError, match="tea_leaves"):
        Forecaster.from_json(json.dumps(d))


@pytest.mark.parametrize("text", [
    '{"schema": "spectral-edge/claims", "rows": []}',
    "{}",
    "[1, 2]",
    "null",
    '{"schema": "spectral-edge/forecaster", "features": ["log_R"]}',
    "not json at all",
    '{"schema": "spectral-edge/forecaster", "features": ["log_R"], "mean": [0], "scale": [1], '
    '"coef": [[0, 1, 2]], "threshold": 0.5, "horizons": [0.5]}',
])
def test_load_refuses_a_file_that_is_no_forecaster(tmp_path, text):
    path = tmp_path / "other.json"
    path.write_text(text)
    with pytest.raises(ForecastError, match="forecaster"):
        Forecaster.load(path)


# --- 5. fit -------------------------------------------------------------------------------------------------------


def _sig(id_, steps, cols: dict[str, np.ndarray], event):
    X = np.full((len(steps), len(FEATURES)), np.nan)
    for f, v in cols.items():
        X[:, COL[f]] = v
    return Signals(id_, np.asarray(steps, np.int64), X, {}, event, int(steps[-1]))


def _family(rng, n_pos, n_neg, prefix="r"):
    """Positives: log_R ramps up over the last 60 % of the time to their event; negatives: flat noise."""
    steps = np.arange(10, 310, 10)
    out = []
    for i in range(n_pos):
        E = int(rng.integers(15, 30)) * 10
        ramp = 3 * np.clip(1 - (E - steps) / (0.6 * E), 0, 1)
        noise = rng.normal(scale=0.3, size=len(steps))
        out.append(_sig(f"{prefix}p{i}", steps, {"log_R": ramp + noise, "test_slope": rng.normal(size=len(steps))},
                        E))
    for i in range(n_neg):
        out.append(_sig(f"{prefix}n{i}", steps, {"log_R": rng.normal(scale=0.3, size=len(steps)),
                                                 "test_slope": rng.normal(size=len(steps))}, None))
    return out


def _run_scores(model, sigs):
    pos, neg = [], []
    for s in sigs:
        F = model.score(s.features)
        m = np.ones(len(s.steps), bool) if s.event is None else s.steps < s.event
        (pos if s.event is not None else neg).append(float(np.max(F[m])))
    return pos, neg


def test_fit_is_at_the_optimum_of_the_weighted_penalised_log_loss():
    rng = np.random.default_rng(0)
    feats = ("log_R", "test_slope", "mem_age")
    sigs = _family(rng, 8, 8)
    for s in sigs[::3]:  # some missing values, and a column the model must impute
        s.features[rng.uniform(size=len(s.steps)) < 0.3, COL["log_R"]] = np.nan
    for s in sigs:
        s.features[:, COL["mem_age"]] = rng.uniform(size=len(s.steps))
    model = fit(sigs, feats)
    assert model.features == feats and model.coef.shape == (len(HORIZONS), 1 + len(feats))
    assert model.calibrated_on == frozenset(s.id for s in sigs)
    # the training rows, by the module docstring: scorable windows, targets per horizon, 1/n per run
    rows, T, W = [], [], []
    for s in sigs:
        m = np.ones(len(s.steps), bool) if s.event is None else s.steps < s.event
        t = s.steps[m].astype(float)
        rows.append(s.features[m][:, [COL[f] for f in feats]])
        T.append(np.column_stack([(s.event is not None) & ((s.event or 0) <= (1 + h) * t) for h in HORIZONS]))
        W.append(np.full(m.sum(), 1.0 / m.sum()))
    X, T, W = np.vstack(rows), np.vstack(T).astype(float), np.concatenate(W)
    np.testing.assert_allclose(model.mean, np.nanmean(X, axis=0), rtol=1e-10)
    Z = (X - model.mean) / model.scale
    Z[~np.isfinite(Z)] = 0.0
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover
        LogisticRegression = None
    for j in range(len(HORIZONS)):
        b0, b = model.coef[j, 0], model.coef[j, 1:]
        p = 1 / (1 + np.exp(-(Z @ b + b0)))
        r = W * (p - T[:, j])
        grad = np.concatenate([[r.sum()], Z.T @ r + b])  # C = 1, intercept unpenalised
        assert np.max(np.abs(grad)) < 1e-3, (HORIZONS[j], grad)
        if LogisticRegression is not None:
            sk = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(Z, T[:, j], sample_weight=W)
            np.testing.assert_allclose(model.coef[j, 1:], sk.coef_[0], atol=2e-3)
            assert model.coef[j, 0] == pytest.approx(sk.intercept_[0], abs=2e-3)


def test_fit_separates_a_separable_family_on_held_out_runs():
    rng = np.random.default_rng(1)
    model = fit(_family(rng, 15, 15, "train"), ("log_R", "test_slope"))
    pos, neg = _run_scores(model, _family(rng, 15, 15, "test"))
    assert _brute_auroc(pos, neg) > 0.9


def test_fit_on_labels_independent_of_the_features_scores_near_chance():
    steps = np.arange(10, 210, 10)
    aurocs = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)

        def runs(prefix, rng=rng):
            # positives' events fall after their last window: every window is scorable for both classes
            return [_sig(f"{prefix}{i}", steps, {"log_R": rng.normal(size=len(steps)),
                                                 "test_slope": rng.normal(size=len(steps))},
                         int(rng.integers(21, 30)) * 10 if i % 2 else None) for i in range(30)]

        model = fit(runs("tr"), ("log_R", "test_slope"))
        aurocs.append(_brute_auroc(*_run_scores(model, runs("te"))))
    assert 0.25 <= float(np.mean(aurocs)) <= 0.75, aurocs


# --- 6. the operating point ---------------------------------------------------------------------------------------


@given(st.lists(st.one_of(st.integers(-5, 5).map(float), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1,
                max_size=60))
def test_threshold_allows_at_most_a_tenth_of_the_negatives_and_is_the_lowest_that_does(scores):
    thr = fc._threshold(scores)
    allowed = len(scores) // 10
    assert sum(s >= thr for s in scores) <= allowed
    below = [s for s in scores if s < thr]
    if below:
        assert sum(s >= max(below) for s in scores) > allowed


def test_threshold_ignores_nan_and_is_infinite_without_negatives():
    assert fc._threshold([]) == math.inf and fc._threshold([float("nan")]) == math.inf
    thr = fc._threshold([float("nan")] * 5 + list(map(float, range(10))))
    assert 8 < thr <= 9  # 10 finite scores: 1 may reach it


# --- 7. the live callback -----------------------------------------------------------------------------------------


def _replay(run, model):
    forecasts, fired = [], []
    k = _kwargs(run)
    cb = ForecastCallback(model, eta=k["eta"], delta_s=k["delta_s"], group=_group(run), metric=k["metric"],
                          id=run.id, on_forecast=forecasts.append, on_fire=fired.append)
    other = cb.on_record if hasattr(cb, "on_record") else cb.on_event  # the monitor's hook for other records
    for rec in run.trajectory.records:  # in the order they were written, dispatched as the monitor does
        kind = rec["type"]
        if kind == "eval":
            cb.on_eval(rec)
        elif kind == "spectrum":
            cb(rec)
        elif kind != "end":
            other(rec)
    return cb, forecasts, fired


@pytest.mark.parametrize("which", ["modular", "dyck"])
def test_callback_replaying_a_run_gives_the_offline_forecast(which, request):
    run = request.getfixturevalue(f"{which}_run")
    model = frozen_model()
    cb, forecasts, fired = _replay(run, model)
    off = forecast_run(model, run)
    assert cb.forecast is not None
    got, want = cb.forecast.as_dict(), off.as_dict()
    for key in ("step", "cdf", "horizon_steps", "p_within", "onset", "fired_at", "event"):
        assert got[key] == want[key], (which, key, got[key], want[key])
    assert cb.forecast.series == off.series
    # and at every window on the way, the online cdf is the offline cdf of that window
    full = signals_of_run(run)
    F = model.cdf(full.features)
    row = {int(t): i for i, t in enumerate(full.steps)}
    assert [f.step for f in forecasts] == list(full.steps)
    for f in forecasts:
        np.testing.assert_allclose(list(f.cdf.values()), F[row[f.step]], rtol=1e-12, err_msg=f"step {f.step}")
    assert len(fired) <= 1
    if fired:
        assert fired[0] is cb.fired and fired[0].fired_at == off.fired_at


class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(6, 8)
        self.mlp = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.tanh(self.q_proj(x)))


@pytest.mark.usefixtures("one_thread")
def test_callback_live_on_a_monitor():
    torch.manual_seed(0)
    net = _TinyNet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.5)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(8)]
    fired = []
    cb = ForecastCallback(frozen_model(), eta=1e-2, delta_s=2, on_fire=fired.append, id="live")
    mon = SpectralMonitor(net, opt, window=4, every=2, callbacks=[cb])
    logged = []
    for s in range(1, 31):
        x, y = data[s % len(data)]
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if s % 2 == 0:
            m = {"train_acc": min(1.0, s / 20), "test_acc": s / 40, "train_loss": loss.item(),
                 "test_loss": loss.item() + 1.0}
            mon.log(**m)
            logged.append((s, m))
        if s % 10 == 0:
            mon.event("norm", norm=float(sum(p.detach().pow(2).sum() for p in net.parameters()) ** 0.5))
    mon.close()
    assert cb.forecast is not None and cb.forecast.id == "live"
    assert [(e.step, e.metrics) for e in cb.evals] == logged
    assert [n.step for n in cb.norms] == [10, 20, 30]
    assert len(fired) <= 1
    # the same numbers offline, from the monitor's own records
    recs = mon.records
    sig = signals_of([SpectrumRecord.from_record(r) for r in recs if r["type"] == "spectrum"],
                     [EvalRecord.from_record(r) for r in recs if r["type"] == "eval"],
                     norms=[NormRecord.from_record(r) for r in recs if r["type"] == "norm"], eta=1e-2, delta_s=2,
                     id="live")
    off = forecast_signals(cb.model, sig)
    assert cb.forecast.as_dict() == off.as_dict()


# --- 8. one run's forecast ----------------------------------------------------------------------------------------


def test_forecast_refuses_no_windows_and_a_non_positive_horizon(modular_run):
    model = frozen_model()
    empty = signals_of([_spectrum(10, [3, 2, 1, 0.5], 1)], [])  # no eval: no window
    assert len(empty.steps) == 0
    with pytest.raises(ForecastError, match="no window"):
        forecast_signals(model, empty)
    sig = signals_of_run(modular_run)
    for H in (0, -5):
        with pytest.raises(ForecastError, match="horizon"):
            forecast_signals(model, sig, horizon_steps=H)


def test_p_within_grows_with_the_horizon(modular_run):
    model = frozen_model()
    sig = signals_of_run(modular_run)
    for k in (3, len(sig.steps) // 2, len(sig.steps)):
        part = Signals(sig.id, sig.steps[:k], sig.features[:k], {}, sig.event)
        t = int(part.steps[-1])
        Hs = sorted({1, t // 10, t // 4, t // 2, t, 2 * t, 2 * t + 1, 3 * t, 10 * t})
        fs = [forecast_signals(model, part, horizon_steps=H) for H in Hs]
        ps = [f.p_within for f in fs]
        assert all(a <= b + 1e-15 for a, b in itertools.pairwise(ps)), ps
        assert [f.p_within_is_lower_bound for f in fs] == [H / t > HORIZONS[-1] for H in Hs]
        for h in HORIZONS:  # at the model's own horizons P is F(h) itself
            assert forecast_signals(model, part, horizon_steps=round(h * t)).p_within == \
                pytest.approx(fs[0].cdf[h], abs=1e-6 if round(h * t) == h * t else 1e-2)


@given(st.integers(0, 2**31 - 1))
def test_onset_quantiles_are_ordered_and_within_the_horizons(seed):
    rng = np.random.default_rng(seed)
    model = _random_model(seed)
    t = int(rng.integers(1, 10_000))
    f = forecast_signals(model, Signals("x", np.array([t]), _random_X(rng, 1), {}, None))
    q10, med, q90 = f.onset
    defined = [q for q in (q10, med, q90) if q is not None]
    assert [q is None for q in (q10, med, q90)] == sorted(q is None for q in (q10, med, q90))  # None only at the top
    assert defined == sorted(defined)
    assert all(t <= q <= round(t * (1 + HORIZONS[-1])) for q in defined)
    F = f.cdf
    for q, v in zip((0.1, 0.5, 0.9), (q10, med, q90), strict=True):
        assert (v is None) == (F[HORIZONS[-1]] < q)


# --- 9. the shipped model -----------------------------------------------------------------------------------------


def test_shipped_model_is_the_fit_on_the_stored_runs():
    shipped, refit = frozen_model(), fit_stored(RUNS_ROOT)
    stale = ("the shipped forecaster (verify/studies/forecast_model.json) is not the fit on the stored runs: "
             "run `spectral-edge forecast-fit` to refit it")
    assert shipped.features == refit.features, stale
    assert shipped.calibrated_on == refit.calibrated_on, (
        f"{stale} (runs added: {sorted(refit.calibrated_on - shipped.calibrated_on)}, removed: "
        f"{sorted(shipped.calibrated_on - refit.calibrated_on)})")
    assert np.allclose(shipped.coef, refit.coef, rtol=1e-6, atol=1e-6), stale
    assert np.allclose(shipped.mean, refit.mean) and np.allclose(shipped.scale, refit.scale), stale
    assert shipped.threshold == pytest.approx(refit.threshold, rel=1e-6), stale
    assert shipped.meta == refit.meta, stale


# --- 10. held-out folds -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items():
    return load_signals(RUNS_ROOT)


def test_lowo_never_trains_on_a_held_out_run(items, monkeypatch):
    usable = [x for x in items if x.usable]
    workload = {x.sig.id: x.workload for x in usable}
    assert len(workload) == len(usable)  # ids are unique
    calls: list[set[str]] = []
    real_fit, real_run_score = fc.fit, fc.run_score
    state = {"in_fit": False}
    scored_after: list[tuple[int, str]] = []

    def spy_fit(sigs, *a, **k):
        calls.append({s.id for s in sigs})
        state["in_fit"] = True
        try:
            return real_fit(sigs, *a, **k)
        finally:
            state["in_fit"] = False

    def spy_run_score(series, sig):
        if not state["in_fit"]:
            scored_after.append((len(calls) - 1, sig.id))
        return real_run_score(series, sig)

    monkeypatch.setattr(fc, "fit", spy_fit)
    ev = evaluate(items, "lowo")
    assert calls
    held_out_workloads = []
    for train in calls:
        held = set(workload) - train
        ws = {workload[i] for i in held}
        assert len(ws) == 1, f"a fold held out runs of several workloads: {sorted(ws)}"
        assert not any(workload[i] in ws for i in train), "a run of the held-out workload was in the training fold"
        held_out_workloads.append(ws.pop())
    for name, runs in ev.scorers.items():
        ids = [r.id for r in runs]
        assert len(ids) == len(set(ids)), f"{name}: a run scored twice"
        if name in ("forecast", "null (noise features)", "curves only", "spectral only") or name in BASELINES:
            assert set(ids) <= set(workload)
        for r in runs:
            assert r.workload == workload[r.id]
    scorable_workloads = set(held_out_workloads)
    assert {r.id for r in ev.scorers["forecast"]} == {i for i, w in workload.items() if w in scorable_workloads}
    for name in BASELINES:
        assert {r.id for r in ev.scorers[name]} == set(workload), name
    # which model scored which run: without the variants, the runs scored between two fits are the fold's test runs
    calls.clear()
    monkeypatch.setattr(fc, "run_score", spy_run_score)
    ev = evaluate(items, "lowo", variants=False)
    assert scored_after and all(i >= 0 for i, _ in scored_after)
    for i, rid in scored_after:
        assert rid not in calls[i], f"{rid} was scored by a model trained on it"
    assert sorted(rid for _, rid in scored_after) == sorted(r.id for r in ev.scorers["forecast"])


def test_evaluate_refuses_an_unknown_scheme(items):
    with pytest.raises(ValueError, match="lowo"):
        evaluate(items, "bogus")


# --- 11. the command line -----------------------------------------------------------------------------------------


def test_cli_forecast_prints_one_line_per_run(capsys):
    assert cli.main(["forecast", str(MODULAR), str(DYCK)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all("P(groks within the next" in ln for ln in lines)
    assert sorted(ln.split(":")[0] for ln in lines) == ["dyck-d128-l2-wd1-s42", "modular-add-p97-wd1-s42"]


def test_cli_forecast_json(capsys):
    assert cli.main(["forecast", str(MODULAR), "--horizon", "400", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) == 1
    d = out[0]
    assert d["id"] == "modular-add-p97-wd1-s42" and d["horizon_steps"] == 400
    assert 0 <= d["p_within"] <= 1 and set(d["onset"]) == {"q10", "median", "q90"}
    assert d["in_sample"] is (d["id"] in frozen_model().calibrated_on)


def test_cli_forecast_missing_path_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert cli.main(["forecast", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.jsonl" in err


@pytest.mark.usefixtures("one_thread")
def test_cli_forecast_of_a_run_without_evals_is_a_one_line_error(tmp_path, capsys):
    torch.manual_seed(0)
    net = _TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    mon = SpectralMonitor(net, opt, window=3, every=1, path=tmp_path / "no-evals.jsonl")
    for _ in range(6):
        opt.zero_grad(set_to_none=True)
        net(torch.randn(4, 6)).pow(2).mean().backward()
        opt.step()
    mon.close()
    assert cli.main(["forecast", str(tmp_path / "no-evals.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-evals" in err and "nothing to forecast" in err


def test_cli_forecast_table_refuses_an_unknown_scheme(capsys):
    assert cli.main(["forecast-table", "--scheme", "bogus"]) == 2
    assert "lowo" in capsys.readouterr().err


def test_cli_forecast_fit_then_forecast_with_that_model(tmp_path, capsys):
    root = tmp_path / "runs"
    (root / "modular").mkdir(parents=True)
    names = ["modular-add-p97-wd1-s42", "modular-add-p97-wd0-s42", "modular-mul-p97-wd1-s42",
             "modular-mul-p97-wd0-s42"]
    for n in names:
        (root / "modular" / f"{n}.jsonl.gz").symlink_to(RUNS_ROOT / "modular" / f"{n}.jsonl.gz")
    out = tmp_path / "model.json"
    assert cli.main(["forecast-fit", "--runs-root", str(root), "--out", str(out)]) == 0
    assert "fitted on 4 runs" in capsys.readouterr().out
    model = Forecaster.load(out)
    assert model.calibrated_on == frozenset(names)
    assert cli.main(["forecast", str(MODULAR), "--model", str(out)]) == 0
    assert "[in-sample" in capsys.readouterr().out


def test_vectorised_bootstrap_equals_the_resampling_twin():
    """``_auroc_replicates`` (counts × comparison matrix) against resampling the runs and recomputing the AUROC."""
    from verify.stats import cluster_bootstrap
    from verify.studies.forecast import _auroc_replicates

    rng = np.random.default_rng(3)
    pos = rng.random(40) < 0.4
    scores = np.round(rng.normal(size=40) + pos, 1)  # rounded: ties
    units = list(zip(pos, scores, strict=True))
    twin_rng = np.random.default_rng(0)
    twin = []
    for _ in range(300):
        u = [units[i] for i in twin_rng.integers(0, len(units), len(units))]
        twin.append(auroc([s for p, s in u if p], [s for p, s in u if not p]))
    got = _auroc_replicates(pos, [scores], 300)[0]
    np.testing.assert_allclose(got, twin, rtol=1e-12, atol=1e-12)
    lo, hi = cluster_bootstrap(units, lambda u: auroc([s for p, s in u if p], [s for p, s in u if not p]), reps=300)
    assert (lo, hi) == (np.percentile(got, 2.5), np.percentile(got, 97.5))
