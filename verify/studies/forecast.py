"""Grokking-onset forecast: a frozen multi-horizon model of "the run groks by step (1+h)·t", its live callback,
and the held-out evaluation against the peers' predictors.

**The model** (``Forecaster``). At every window t of a run (``verify.studies.forecast_signals``: spectral features and
the run's own curves, all causal), one L2 logistic model per horizon h ∈ ``HORIZONS`` gives
F_t(h) = P(t_event ≤ (1+h)·t | features at t), made monotone in h (running max). The horizon is relative because the
workloads' time scales differ by 50× (Li₂ groks at ~130 steps, mod-97 at ~3000); a user's "next H steps" is
h = H/t, read off F by linear interpolation in ln(1+h). The predicted onset is t·(1+h_q) at the quantiles q = 0.1,
0.5, 0.9 of F (None where F stays below q up to the longest horizon). Features are standardised on the training
windows, a missing feature is imputed with its training mean, each run's windows weigh 1 in all (C = 1).

**The event.** First eval with the event metric ≥ 0.95 (``verify.grokking`` default; Dyck: sequence-level accuracy,
``forecast_signals.EVENT_METRIC``). A run is positive when the event happens in the recorded run, negative
otherwise: the negatives are the controls (weight decay 0, ops that never grok, large initialisation without weight
decay, too little data).

**The evaluation** (``evaluate``; criteria ``forecast.*`` in ``verify/criteria.toml``, fixed before any score):
leave-one-workload-out (LOWO) and leave-one-seed-out (LOSO) folds; per held-out run the run score (max of
F_t(0.5) over its scorable windows: positives before their event), the operating point (threshold above the
training folds' negatives' scores at 90 %), the fire step, the lead; the same protocol for every baseline
(``forecast_signals.BASELINES``: weight-norm decline, loss oscillation, loss gap, the single spectral signals), a
noise-feature null of the same shape, and the curves-only / spectral-only ablations. ``claim_rows`` turns it into
the claims rows; ``head_to_head`` into the table of the book's "Forecasting onset" page.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from numerics.atomic import atomic_write_text
from numerics.errors import SpectralEdgeError
from verify.claims import ClaimRow, draw, inconclusive
from verify.criteria import criterion
from verify.stats import cluster_bootstrap, fmt, wilson_interval
from verify.store import DefectRecord, EvalRecord, NormRecord, Run, SpectrumRecord, load_run, load_runs
from verify.studies.forecast_signals import (
    BASELINES,
    FEATURES,
    SPECTRAL,
    Signals,
    baseline_series,
    signals_of,
    signals_of_run,
)

__all__ = [
    "HORIZONS",
    "MODEL_FILE",
    "WORKLOADS",
    "ForecastCallback",
    "Forecaster",
    "RunForecast",
    "auroc",
    "claim_rows",
    "evaluate",
    "fit",
    "fit_stored",
    "forecast_run",
    "format_table",
    "frozen_model",
    "head_to_head",
    "load_signals",
]

#: Relative horizons h of the model: the event by step (1+h)·t.
HORIZONS = (0.25, 0.5, 1.0, 2.0)
#: The horizon of the run score, the operating point and the calibration (criterion ``forecast.lowo_auroc``).
H0 = 0.5
#: The stored sweeps the forecaster is fitted and evaluated on: workload → its directories under the runs root, in
#: order of preference (the first that exists is read). mod-97: the bitwise re-run that also recorded the weight norm.
WORKLOADS: dict[str, tuple[str, ...]] = {"modular": ("modular-norms", "modular"), "dyck": ("dyck",), "scan": ("scan",),
                                         "li2": ("li2",), "parity": ("parity",), "digits": ("digits",)}
#: The workloads no detector was tuned on (criterion ``forecast.fresh_workloads``).
FRESH = ("parity", "digits")
#: The shipped frozen model, fitted on every stored run of ``WORKLOADS`` (``spectral-edge forecast-fit``).
MODEL_FILE = Path(__file__).resolve().parent / "forecast_model.json"
FPR_TARGET = 0.10
QUANTILES = (0.1, 0.5, 0.9)


class ForecastError(SpectralEdgeError):
    """A forecast cannot be made (no windows, no model, a model of other features)."""


# --- the model ----------------------------------------------------------------------------------------------------


def _logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, *, tol: float = 1e-10,
              max_iter: int = 100) -> np.ndarray:
    """L2 logistic regression, β = (intercept, weights): the minimiser of
    −Σ_i w_i [y_i ln p_i + (1 − y_i) ln(1 − p_i)] + ‖weights‖²/(2C), p = σ(β₀ + X β), the intercept unpenalised.

    Newton's method with step halving (the objective is strictly convex for C < ∞): each iteration costs
    O(n·k²) for n rows and k features, and it stops when the Newton decrement falls below ``tol``.
    """
    n, k = X.shape
    A = np.hstack([np.ones((n, 1)), X])
    pen = np.full(k + 1, 1.0 / C)
    pen[0] = 0.0
    beta = np.zeros(k + 1)

    def objective(b: np.ndarray) -> float:
        z = A @ b
        return float(np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * np.sum(pen * b * b))

    f = objective(beta)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(A @ beta)))
        grad = A.T @ (w * (p - y)) + pen * beta
        H = (A * (w * p * (1 - p))[:, None]).T @ A + np.diag(pen) + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(H, grad)
        decrement = float(grad @ step)
        if decrement / 2 < tol:
            break
        t = 1.0
        while t > 1e-8:
            new = beta - t * step
            f_new = objective(new)
            if f_new <= f - 0.25 * t * decrement:
                break
            t /= 2
        beta, f = new, f_new
    return beta


@dataclass
class Forecaster:
    """A fitted multi-horizon onset model (module docstring). ``threshold``: the operating point on F(``H0``);
    ``calibrated_on``: the ids of the runs it was fitted on (a forecast of one of them is in-sample)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (len(HORIZONS), 1 + len(features))
    threshold: float
    calibrated_on: frozenset[str] = frozenset()
    horizons: tuple[float, ...] = HORIZONS
    meta: dict[str, Any] = field(default_factory=dict)

    def _design(self, X: np.ndarray) -> np.ndarray:
        cols = [FEATURES.index(f) for f in self.features]
        Z = (X[:, cols] - self.mean) / self.scale
        Z[~np.isfinite(Z)] = 0.0  # a missing feature is its training mean
        return Z

    def cdf(self, X: np.ndarray) -> np.ndarray:
        """F_t(h) for every row of ``X`` (n × len(FEATURES)) and every horizon: (n, len(horizons)), monotone in h."""
        Z = self._design(np.atleast_2d(X))
        z = Z @ self.coef[:, 1:].T + self.coef[:, 0]
        return np.maximum.accumulate(1.0 / (1.0 + np.exp(-z)), axis=1)

    def score(self, X: np.ndarray) -> np.ndarray:
        """F_t(``H0``) per window."""
        return self.cdf(X)[:, self.horizons.index(H0)]

    def to_json(self) -> str:
        return json.dumps({
            "schema": "spectral-edge/forecaster", "version": 1, "features": list(self.features),
            "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
            "threshold": self.threshold, "horizons": list(self.horizons), "h0": H0,
            "calibrated_on": sorted(self.calibrated_on), "meta": self.meta}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Forecaster:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ForecastError(f"forecaster file is not JSON: {exc}") from None
        if not isinstance(d, dict) or d.get("schema") != "spectral-edge/forecaster":
            raise ForecastError("not a spectral-edge forecaster file (schema 'spectral-edge/forecaster' expected)")
        missing = [k for k in ("features", "mean", "scale", "coef", "threshold", "horizons") if k not in d]
        if missing:
            raise ForecastError(f"forecaster file lacks {', '.join(missing)} (truncated or hand-edited?)")
        unknown = set(d["features"]) - set(FEATURES)
        if unknown:
            raise ForecastError(f"the model uses features this version does not compute: {sorted(unknown)}")
        k, nh = len(d["features"]), len(d["horizons"])
        mean, scale, coef = np.array(d["mean"], float), np.array(d["scale"], float), np.array(d["coef"], float)
        if mean.shape != (k,) or scale.shape != (k,) or coef.shape != (nh, k + 1) or H0 not in d["horizons"]:
            raise ForecastError(f"forecaster file is inconsistent: {k} features and {nh} horizons, but mean "
                                f"{mean.shape}, scale {scale.shape}, coef {coef.shape} (expected ({nh}, {k + 1})), "
                                f"horizons {d['horizons']} (must include {H0})")
        return cls(tuple(d["features"]), mean, scale, coef, float(d["threshold"]),
                   frozenset(d.get("calibrated_on", ())), tuple(d["horizons"]), dict(d.get("meta", {})))

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Forecaster:
        p = Path(path)
        if not p.is_file():
            raise ForecastError(f"no forecaster file at {p}")
        return cls.from_json(p.read_text())


def scorable(sig: Signals) -> np.ndarray:
    """The windows a run is scored on: all of a negative's, a positive's before its event."""
    return sig.before(sig.event)


def _training_rows(sigs: Sequence[Signals], features: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cols = [FEATURES.index(f) for f in features]
    X, T, W = [], [], []
    for s in sigs:
        m = scorable(s)
        if not m.any():
            continue
        t = s.steps[m].astype(float)
        X.append(s.features[m][:, cols])
        T.append(np.column_stack([np.full(len(t), s.event is not None) & (float(s.event or 0) <= (1 + h) * t)
                                  for h in HORIZONS]).astype(float))
        W.append(np.full(len(t), 1.0 / len(t)))
    if not X:
        raise ForecastError("no scorable windows in the training runs")
    return np.vstack(X), np.vstack(T), np.concatenate(W)


def _threshold(neg_scores: Sequence[float], fpr: float = FPR_TARGET) -> float:
    """The smallest value above the scores of at least (1 − fpr) of the negatives (+inf without negatives)."""
    a = np.sort(np.asarray([s for s in neg_scores if np.isfinite(s)], float))
    if not len(a):
        return float("inf")
    k = math.ceil((1 - fpr) * len(a))
    return float(np.nextafter(a[k - 1], np.inf))


def run_score(series: np.ndarray, sig: Signals) -> float:
    """Max of ``series`` over the run's scorable windows (NaN where none is finite)."""
    v = series[scorable(sig)]
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) else float("nan")


def fire_step(series: np.ndarray, sig: Signals, threshold: float) -> int | None:
    """First scorable window at or above ``threshold``."""
    hit = np.flatnonzero(scorable(sig) & np.isfinite(series) & (series >= threshold))
    return int(sig.steps[hit[0]]) if len(hit) else None


def _first_at_or_above(series: np.ndarray, sig: Signals, threshold: float) -> int | None:
    """First window (any, also at or after the event: the alarm a user would have seen) at or above ``threshold``."""
    hit = np.flatnonzero(np.isfinite(series) & (series >= threshold))
    return int(sig.steps[hit[0]]) if len(hit) else None


def fit(sigs: Sequence[Signals], features: Sequence[str] = FEATURES, *, C: float = 1.0,
        ids: Iterable[str] | None = None) -> Forecaster:
    """Fit the forecaster on ``sigs`` (module docstring); the operating point from their negatives."""
    X, T, W = _training_rows(sigs, features)
    with warnings.catch_warnings():  # an all-missing feature (no run of the fold records it) is imputed as 0
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    Z = (X - mean) / scale
    Z[~np.isfinite(Z)] = 0.0
    coef = np.vstack([_logistic(Z, T[:, j], W, C) for j in range(len(HORIZONS))])
    model = Forecaster(tuple(features), mean, scale, coef, float("inf"),
                       frozenset(ids if ids is not None else (s.id for s in sigs)))
    negs = [run_score(model.score(s.features), s) for s in sigs if s.event is None]
    model.threshold = _threshold(negs)
    return model


def fit_stored(runs_root: str | os.PathLike[str]) -> Forecaster:
    """The shipped model: ``fit`` on every usable stored run of ``WORKLOADS`` under ``runs_root``."""
    items = [x for x in load_signals(runs_root) if x.usable]
    if not items:
        raise ForecastError(f"no stored runs of {sorted(WORKLOADS)} under {runs_root}")
    model = fit([x.sig for x in items])
    model.meta = {"workloads": sorted({x.workload for x in items}), "runs": len(items),
                  "positives": sum(x.positive for x in items), "fpr_target": FPR_TARGET}
    return model


# --- one run's forecast -------------------------------------------------------------------------------------------


@dataclass
class RunForecast:
    """The forecast of a run at its latest window (``forecast_run``): F(h) per horizon, P(event within the next
    ``horizon_steps`` steps), the predicted onset with its 80 % interval, and ``fired_at``: the first window at which
    F(0.5) reached the operating point (the alarm a user watching the run saw; at or after the event it was late)."""

    id: str
    step: int
    cdf: dict[float, float]
    horizon_steps: int
    p_within: float
    p_within_is_lower_bound: bool
    onset: tuple[int | None, int | None, int | None]
    fired_at: int | None
    event: int | None
    in_sample: bool
    series: list[tuple[int, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "step": self.step, "cdf": {str(k): v for k, v in self.cdf.items()},
                "horizon_steps": self.horizon_steps, "p_within": self.p_within,
                "p_within_is_lower_bound": self.p_within_is_lower_bound,
                "onset": {"q10": self.onset[0], "median": self.onset[1], "q90": self.onset[2]},
                "fired_at": self.fired_at, "event": self.event, "in_sample": self.in_sample}

    def line(self) -> str:
        lo, med, hi = (fmt(x, missing=f">{int(self.step * (1 + HORIZONS[-1]))}") for x in self.onset)
        p = f"{'≥' if self.p_within_is_lower_bound else ''}{self.p_within:.2f}"
        fired = f"alarm at step {self.fired_at}" if self.fired_at is not None else "no alarm"
        if self.fired_at is not None and self.event is not None:
            fired += (f" ({self.event - self.fired_at} steps before the event)" if self.fired_at < self.event
                      else " (late: at or after the event)")
        seen = f"; observed event at step {self.event}" if self.event is not None else ""
        tag = " [in-sample: this run calibrated the model]" if self.in_sample else ""
        return (f"{self.id}: step {self.step}: P(groks within the next {self.horizon_steps} steps) = {p}; "
                f"predicted onset {med} (80% interval {lo}–{hi}); operating point {fired}{seen}{tag}")


def _interp_cdf(cdf: np.ndarray, h: float) -> tuple[float, bool]:
    u = np.log1p(np.asarray((0.0, *HORIZONS)))
    f = np.concatenate([[0.0], cdf])
    if h > HORIZONS[-1]:
        return float(f[-1]), True
    return float(np.interp(np.log1p(h), u, f)), False


def _quantile_step(cdf: np.ndarray, q: float, t: int) -> int | None:
    u = np.log1p(np.asarray((0.0, *HORIZONS)))
    f = np.concatenate([[0.0], cdf])
    if f[-1] < q:
        return None
    i = int(np.argmax(f >= q))
    lo, hi = f[i - 1], f[i]
    x = u[i - 1] + (u[i] - u[i - 1]) * ((q - lo) / (hi - lo) if hi > lo else 1.0)
    return round(t * math.exp(x))


def forecast_signals(model: Forecaster, sig: Signals, *, horizon_steps: int | None = None) -> RunForecast:
    """The forecast at the last window of ``sig`` (module docstring); ``horizon_steps`` default ``H0``·t."""
    if not len(sig.steps):
        raise ForecastError(f"{sig.id}: no window with a spectrum and an eval before it: nothing to forecast from")
    F = model.cdf(sig.features)
    t = int(sig.steps[-1])
    H = round(H0 * t) if horizon_steps is None else int(horizon_steps)
    if H <= 0:
        raise ForecastError(f"horizon must be a positive number of steps, got {H}")
    p, lower = _interp_cdf(F[-1], H / max(t, 1))
    s = F[:, model.horizons.index(H0)]
    return RunForecast(sig.id, t, dict(zip(model.horizons, map(float, F[-1]), strict=True)), H, p, lower,
                       tuple(_quantile_step(F[-1], q, t) for q in QUANTILES),  # type: ignore[arg-type]
                       _first_at_or_above(s, sig, model.threshold), sig.event, sig.id in model.calibrated_on,
                       list(zip(map(int, sig.steps), map(float, s), strict=True)))


def forecast_run(model: Forecaster, run: Run | str | os.PathLike[str], *, group: str = "all",
                 metric: str | None = None, horizon_steps: int | None = None) -> RunForecast:
    """``forecast_signals`` of a trajectory file or a stored ``Run`` (any run: the package's or a user's)."""
    r = run if isinstance(run, Run) else load_run(run)
    return forecast_signals(model, signals_of_run(r, group, metric=metric), horizon_steps=horizon_steps)


@cache
def frozen_model() -> Forecaster:
    """The shipped model (``MODEL_FILE``)."""
    return Forecaster.load(MODEL_FILE)


class ForecastCallback:
    """The live forecast: pass it in ``SpectralMonitor(callbacks=[cb])``. It collects the monitor's spectrum records
    of ``group`` and (through the monitor's ``on_eval`` / ``on_record`` hooks) its evals and defect / norm records,
    and after each spectrum record of ``group`` holds ``forecast`` (a ``RunForecast``, the same numbers as
    ``forecast_run`` gives offline at that step). ``on_forecast`` is called with each; ``on_fire`` once, when F(0.5)
    first reaches the model's operating point."""

    def __init__(self, model: Forecaster | None = None, *, eta: float | None = None, delta_s: int = 1,
                 group: str = "all", metric: str = "test_acc", on_forecast: Callable[[RunForecast], Any] | None = None,
                 on_fire: Callable[[RunForecast], Any] | None = None, id: str = "online") -> None:
        self.model = model if model is not None else frozen_model()
        self.eta, self.delta_s, self.group, self.metric, self.id = eta, delta_s, group, metric, id
        self.on_forecast, self.on_fire = on_forecast, on_fire
        self.spectra: list[SpectrumRecord] = []
        self.evals: list[EvalRecord] = []
        self.defects: list[DefectRecord] = []
        self.norms: list[NormRecord] = []
        self.forecast: RunForecast | None = None
        self.fired: RunForecast | None = None

    def on_eval(self, record: Mapping[str, Any]) -> None:
        self.evals.append(EvalRecord.from_record(record))  # type: ignore[arg-type]

    def on_record(self, record: Mapping[str, Any]) -> None:
        kind = record.get("type")
        if kind == "defect":
            self.defects.append(DefectRecord.from_record(record))
        elif kind == "norm":
            self.norms.append(NormRecord.from_record(record))

    def __call__(self, record: Mapping[str, Any]) -> None:
        rec = SpectrumRecord.from_record(record)
        if rec.group != self.group or not rec.has_spectrum:
            return
        self.spectra.append(rec)
        sig = signals_of(self.spectra, self.evals, defects=self.defects, norms=self.norms, eta=self.eta,
                         delta_s=self.delta_s, metric=self.metric, id=self.id)
        if not len(sig.steps):
            return
        self.forecast = forecast_signals(self.model, sig)
        if self.on_forecast is not None:
            self.on_forecast(self.forecast)
        if self.fired is None and self.forecast.fired_at is not None:
            self.fired = self.forecast
            if self.on_fire is not None:
                self.on_fire(self.forecast)


# --- evaluation ---------------------------------------------------------------------------------------------------


@dataclass
class Labelled:
    """A stored run's signals with its workload and seed (the fold keys)."""

    sig: Signals
    workload: str
    seed: int | None

    @property
    def positive(self) -> bool:
        return self.sig.event is not None

    @property
    def usable(self) -> bool:
        """Has a scorable window (a positive whose event precedes its first window is not)."""
        return bool(scorable(self.sig).any())


def load_signals(runs_root: str | os.PathLike[str],
                 workloads: Mapping[str, tuple[str, ...]] = WORKLOADS) -> list[Labelled]:
    """The labelled signals of every finished stored run of ``workloads`` under ``runs_root`` (per workload the first
    of its directories that exists)."""
    return list(_load_signals(str(Path(runs_root).resolve()), tuple(sorted(workloads.items()))))


@cache
def _load_signals(root: str, workloads: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[Labelled, ...]:
    out = []
    for name, subs in workloads:
        d = next((Path(root) / sub for sub in subs if (Path(root) / sub).is_dir()), None)
        if d is None:
            continue
        for r in load_runs([d], finished_only=True):
            if r.groups():
                out.append(Labelled(signals_of_run(r), name, r.seed))
    return tuple(out)


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(score of a positive > score of a negative) + ½ P(tie) (Mann–Whitney); NaN without both classes."""
    p, n = np.asarray(pos, float), np.sort(np.asarray(neg, float))
    if not len(p) or not len(n):
        return float("nan")
    below = np.searchsorted(n, p, side="left")
    ties = np.searchsorted(n, p, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(p) * len(n)))


@dataclass
class Scored:
    """One held-out run under one scorer: run score, fire step at the fold's operating point."""

    id: str
    workload: str
    seed: int | None
    positive: bool
    event: int | None
    score: float
    fired: int | None

    @property
    def hit(self) -> bool:
        return self.positive and self.fired is not None and self.event is not None and self.fired < self.event

    @property
    def false_alarm(self) -> bool:
        return not self.positive and self.fired is not None

    @property
    def rel_lead(self) -> float:
        return (self.event - self.fired) / self.event if self.hit else float("nan")  # type: ignore[operator]


@dataclass
class Evaluation:
    """Every scorer's held-out ``Scored`` runs under one fold scheme, and the forecaster's held-out windows."""

    scheme: str
    scorers: dict[str, list[Scored]]
    windows: list[tuple[str, np.ndarray, np.ndarray, float]]  # (run id, P(H0), target, fold base rate)
    excluded: list[str]

    def auroc(self, name: str, runs: Sequence[Scored] | None = None) -> float:
        rs = [r for r in (self.scorers[name] if runs is None else runs) if np.isfinite(r.score)]
        return auroc([r.score for r in rs if r.positive], [r.score for r in rs if not r.positive])


def _folds(items: Sequence[Labelled], scheme: str) -> list[tuple[str, list[int]]]:
    key = (lambda x: x.workload) if scheme == "lowo" else (lambda x: str(x.seed))
    keys = sorted({key(x) for x in items})
    return [(k, [i for i, x in enumerate(items) if key(x) == k]) for k in keys]


def _noise(items: Sequence[Labelled], seed: int = 0) -> list[Labelled]:
    """The null: every feature replaced by standard Gaussian noise of the same shape (missing entries kept)."""
    rng = np.random.default_rng(seed)
    out = []
    for x in items:
        X = rng.standard_normal(x.sig.features.shape)
        X[np.isnan(x.sig.features)] = np.nan
        s = Signals(x.sig.id, x.sig.steps, X, x.sig.series, x.sig.event, x.sig.final_step)
        out.append(Labelled(s, x.workload, x.seed))
    return out


def evaluate(items: Sequence[Labelled], scheme: str = "lowo", *, variants: bool = True) -> Evaluation:
    """Held-out scores of the forecaster (and, with ``variants``, of the noise null, the ablations and every
    baseline) under ``scheme`` ("lowo" or "loso"); module docstring."""
    if scheme not in ("lowo", "loso"):
        raise ValueError(f"scheme must be 'lowo' or 'loso', got {scheme!r}")
    usable = [x for x in items if x.usable]
    excluded = [x.sig.id for x in items if not x.usable]
    models: dict[str, tuple[Sequence[Labelled], tuple[str, ...]]] = {"forecast": (usable, FEATURES)}
    if variants:
        curves = tuple(f for f in FEATURES if f not in SPECTRAL)
        models |= {"null (noise features)": (_noise(usable), FEATURES), "curves only": (usable, curves),
                   "spectral only": (usable, SPECTRAL)}
    scorers: dict[str, list[Scored]] = {name: [] for name in models}
    if variants:
        scorers |= {name: [] for name in BASELINES}
    windows = []
    for _, test in _folds(usable, scheme):
        test_set = set(test)
        for name, (data, feats) in models.items():
            train = [data[i].sig for i in range(len(data)) if i not in test_set]
            if not any(s.event is not None for s in train) or all(s.event is not None for s in train):
                continue
            model = fit(train, feats)
            if name == "forecast":  # the fold's climatological reference of the calibration row
                _, T, W = _training_rows(train, feats)
                base = float(np.sum(T[:, HORIZONS.index(H0)] * W) / W.sum())
            for i in test:
                x = data[i]
                s = model.score(x.sig.features)
                scorers[name].append(Scored(x.sig.id, x.workload, x.seed, x.positive, x.sig.event,
                                            run_score(s, x.sig), fire_step(s, x.sig, model.threshold)))
                if name == "forecast":
                    _, T_run, _ = _training_rows([x.sig], feats)  # the targets, as the training rows define them
                    windows.append((x.sig.id, s[scorable(x.sig)], T_run[:, HORIZONS.index(H0)], base))
        if not variants:
            continue
        for name in BASELINES:
            train = [usable[i] for i in range(len(usable)) if i not in test_set]
            thr = _threshold([run_score(baseline_series(x.sig, name), x.sig) for x in train if not x.positive])
            for i in test:
                x = usable[i]
                ser = baseline_series(x.sig, name)
                scorers[name].append(Scored(x.sig.id, x.workload, x.seed, x.positive, x.sig.event,
                                            run_score(ser, x.sig), fire_step(ser, x.sig, thr)))
    return Evaluation(scheme, scorers, windows, excluded)


@cache
def _evaluations(root: str) -> tuple[list[Labelled], Evaluation, Evaluation]:
    items = load_signals(root)
    return items, evaluate(items, "lowo"), evaluate(items, "loso", variants=False)


# --- statistics of an evaluation ------------------------------------------------------------------------------------


def _auroc_replicates(positive: np.ndarray, scores: Sequence[np.ndarray], reps: int, seed: int = 0) -> list[np.ndarray]:
    """AUROC of each score vector over ``reps`` run-bootstrap replicates (runs resampled with replacement, the same
    draws for every vector, so differences are paired). Vectorised: with M_ij = [s_i > s_j] + ½[s_i = s_j] over
    (positive i, negative j) and c the replicate's multiplicities, AUROC = c_posᵀ M c_neg / (Σc_pos · Σc_neg)."""
    n = len(positive)
    idx = np.random.default_rng(seed).integers(0, n, (reps, n))
    counts = np.zeros((reps, n))
    np.add.at(counts, (np.repeat(np.arange(reps), n), idx.ravel()), 1.0)
    cp, cn = counts[:, positive], counts[:, ~positive]
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cp.sum(axis=1) * cn.sum(axis=1)
        out = []
        for s in scores:
            sp, sn = s[positive], s[~positive]
            M = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
            out.append(np.einsum("ri,ij,rj->r", cp, M, cn) / norm)
    return out


def _percentile_ci(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))) if len(x) else (float("nan"),) * 2


def _boot_auroc(runs: Sequence[Scored], reps: int) -> tuple[float, float]:
    """95 % run-bootstrap percentile interval of the AUROC of ``runs`` (fixed seed)."""
    rs = [r for r in runs if np.isfinite(r.score)]
    if not rs:
        return float("nan"), float("nan")
    pos = np.array([r.positive for r in rs])
    return _percentile_ci(_auroc_replicates(pos, [np.array([r.score for r in rs])], reps)[0])


def _rates(runs: Sequence[Scored]) -> dict[str, Any]:
    pos = [r for r in runs if r.positive]
    neg = [r for r in runs if not r.positive]
    hits, fas = sum(r.hit for r in pos), sum(r.false_alarm for r in neg)
    leads = [r.rel_lead for r in pos if r.hit]
    fired = hits + fas
    return {"pos": len(pos), "neg": len(neg), "hits": hits, "false_alarms": fas,
            "recall": hits / len(pos) if pos else float("nan"), "fpr": fas / len(neg) if neg else float("nan"),
            "precision": hits / fired if fired else float("nan"),
            "median_rel_lead": float(np.median(leads)) if leads else float("nan"), "leads": leads}


def _ci(lo_hi: tuple[float, float]) -> str:
    return f"[{fmt(lo_hi[0])}, {fmt(lo_hi[1])}]"


def _rate_ci(k: int, n: int) -> str:
    ci = tuple(min(1.0, max(0.0, x)) for x in wilson_interval(k, n)) if n else None  # round-off at 0/n, n/n
    return f"{k}/{n} = {fmt(k / n if n else float('nan'))} {_ci(ci) if ci else ''}".strip()  # type: ignore[arg-type]


def head_to_head(ev: Evaluation, *, reps: int = 2000) -> list[dict[str, Any]]:
    """One row per scorer: runs scored, AUROC with its run-bootstrap interval, precision / recall / FPR at the
    operating point, median relative lead, and per-workload AUROC."""
    rows = []
    for name, runs in ev.scorers.items():
        rs = [r for r in runs if np.isfinite(r.score)]
        if not rs:
            rows.append({"scorer": name, "runs": 0})
            continue
        rates = _rates(rs)
        per = {w: ev.auroc(name, [r for r in rs if r.workload == w]) for w in sorted({r.workload for r in rs})}
        rows.append({"scorer": name, "runs": len(rs), "auroc": ev.auroc(name, rs), "auroc_ci": _boot_auroc(rs, reps),
                     **{k: v for k, v in rates.items() if k != "leads"}, "per_workload": per})
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``head_to_head`` rows as a Markdown table."""
    from verify.report import markdown_table  # local: only the CLI and the book print tables

    head = ["scorer", "runs", "AUROC [95% CI]", "precision", "recall", "FPR", "median lead / t_event", "per workload"]
    body = []
    for r in rows:
        if not r.get("runs"):
            body.append([r["scorer"], "0", "not recorded on these runs", "", "", "", "", ""])
            continue
        body.append([r["scorer"], str(r["runs"]), f"{fmt(r['auroc'])} {_ci(r['auroc_ci'])}", fmt(r["precision"]),
                     f"{r['hits']}/{r['pos']}", f"{r['false_alarms']}/{r['neg']}", fmt(r["median_rel_lead"]),
                     ", ".join(f"{w} {fmt(v, '.2f')}" for w, v in r["per_workload"].items())])
    return markdown_table(head, body)


def _brier(ev: Evaluation, reps: int) -> tuple[float, float, float, tuple[float, float]]:
    """Run-weighted Brier score of P(H0), of the climatological reference, the skill 1 − B/B_ref and its 95 %
    run-bootstrap interval (runs resampled; fixed seed, as ``verify.stats.cluster_bootstrap``)."""
    b = np.array([np.mean((p - y) ** 2) for _, p, y, _ in ev.windows])
    r = np.array([np.mean((base - y) ** 2) for _, _, y, base in ev.windows])
    skill = float(1 - b.mean() / r.mean()) if r.mean() > 0 else float("nan")
    idx = np.random.default_rng(0).integers(0, len(b), (reps, len(b)))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = 1 - b[idx].mean(axis=1) / r[idx].mean(axis=1)
    boot = boot[np.isfinite(boot)]
    ci = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if len(boot) else (float("nan"),) * 2
    return float(b.mean()), float(r.mean()), skill, ci


def reliability(ev: Evaluation, bins: int = 10) -> list[tuple[float, float, float]]:
    """(mean forecast, observed frequency, run weight) per equal-width bin of P(H0), windows weighted 1/n per run."""
    P = np.concatenate([p for _, p, _, _ in ev.windows])
    Y = np.concatenate([y for _, _, y, _ in ev.windows])
    W = np.concatenate([np.full(len(p), 1 / len(p)) for _, p, _, _ in ev.windows])
    idx = np.minimum((P * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append((float(np.average(P[m], weights=W[m])), float(np.average(Y[m], weights=W[m])),
                        float(W[m].sum())))
    return out


# --- claims rows ----------------------------------------------------------------------------------------------------

SOURCE, VERSION = "[S] issue 15 (forecast); [A] gap / A / g23 signals", "2603.28964"


def _controls_line(runs: Sequence[Scored]) -> str:
    neg = [r for r in runs if not r.positive and np.isfinite(r.score)]
    by: dict[str, list[Scored]] = {}
    for r in neg:
        by.setdefault(r.workload, []).append(r)
    parts = [f"{w} {sum(r.false_alarm for r in rs)}/{len(rs)}" for w, rs in sorted(by.items())]
    return f"false alarms on the negative runs (controls) {_rate_ci(sum(r.false_alarm for r in neg), len(neg))}: " \
           + ", ".join(parts)


def _null_line(ev: Evaluation, reps: int) -> str:
    runs = ev.scorers.get("null (noise features)", [])
    if not runs:
        return "n/a: null not evaluated"
    return f"noise features of the same shape: AUROC {fmt(ev.auroc('null (noise features)'))} " \
           f"{_ci(_boot_auroc(runs, reps))}, {_rates(runs)['false_alarms']}/{_rates(runs)['neg']} false alarms"


def _counts(runs: Sequence[Scored]) -> tuple[int, int]:
    rs = [r for r in runs if np.isfinite(r.score)]
    return sum(r.positive for r in rs), sum(not r.positive for r in rs)


def claim_rows(runs_root: Path) -> list[ClaimRow]:
    """The forecast rows (criteria ``forecast.*``); INCONCLUSIVE rows name what is missing."""
    items, lowo, loso = _evaluations(str(Path(runs_root).resolve()))
    claim0 = "A spectral onset forecaster predicts grokking on held-out workloads"
    if not items:
        return [inconclusive(claim0, SOURCE, VERSION, "AUROC ≥ 0.95", f"no stored runs of {sorted(WORKLOADS)}")]
    rows = [_row_auroc(lowo), _row_operating(lowo), _row_lead(lowo), _row_baselines(lowo), _row_fresh(lowo),
            _row_loso(loso, lowo), _row_calibration(lowo)]
    for r in rows:
        r.details.setdefault("excluded (event before the first window)", lowo.excluded)
    return rows


def _inconclusive(c: Any, claim: str, claimed: str, why: str) -> ClaimRow:
    """An INCONCLUSIVE row under criterion ``c``."""
    row = inconclusive(claim, SOURCE, VERSION, claimed, why)
    row.criterion = c.id
    return row


def _verdict_auroc(a: float, ci: tuple[float, float], amin: float) -> str:
    return "PASS" if a >= amin and ci[0] > 0.5 else "FAIL"


def _row_auroc(ev: Evaluation) -> ClaimRow:
    c = criterion("forecast.lowo_auroc")
    runs = ev.scorers["forecast"]
    pos, neg = _counts(runs)
    claim = "Onset forecaster: run-level AUROC on held-out workloads (leave-one-workload-out)"
    if pos < c.params["min_pos"] or neg < c.params["min_neg"]:
        return _inconclusive(c, claim, "AUROC ≥ 0.95", f"{pos} positive / {neg} negative scorable runs")
    a, ci = ev.auroc("forecast"), _boot_auroc(runs, c.params["boot_reps"])
    per = {w: ev.auroc("forecast", [r for r in runs if r.workload == w]) for w in sorted({r.workload for r in runs})}
    verdict = _verdict_auroc(a, ci, c.params["auroc_min"])
    table = head_to_head(ev, reps=c.params["boot_reps"])
    scorers = [(r["scorer"], r["auroc"], *r["auroc_ci"]) for r in table if r.get("runs")]
    return ClaimRow(claim, SOURCE, VERSION, "AUROC ≥ 0.95 (issue 15 target)",
                    f"AUROC {fmt(a)} {_ci(ci)} over {pos} grokking / {neg} non-grokking runs; per workload: "
                    + ", ".join(f"{w} {fmt(v)}" for w, v in per.items()),
                    verdict, f"point {fmt(a)} {'≥' if a >= c.params['auroc_min'] else '<'} "
                    f"{c.params['auroc_min']}; interval lower bound {fmt(ci[0])} vs 0.5",
                    {"per_workload": per, "auroc_ci": ci}, control=_controls_line(runs),
                    null=_null_line(ev, c.params["boot_reps"]), criterion=c.id,
                    plot=draw("draw_forecast", scorers, reliability(ev)))


def _row_operating(ev: Evaluation) -> ClaimRow:
    c = criterion("forecast.lowo_operating_point")
    runs = [r for r in ev.scorers["forecast"] if np.isfinite(r.score)]
    rt = _rates(runs)
    ok = rt["fpr"] <= c.params["fpr_max"] and rt["recall"] >= c.params["recall_min"]
    return ClaimRow("Onset forecaster at its fixed operating point (leave-one-workload-out)", SOURCE, VERSION,
                    "false-positive rate ≤ 0.10 at recall ≥ 0.90",
                    f"recall {_rate_ci(rt['hits'], rt['pos'])}; false-positive rate "
                    f"{_rate_ci(rt['false_alarms'], rt['neg'])}; precision {fmt(rt['precision'])}",
                    "PASS" if ok else "FAIL",
                    f"FPR {fmt(rt['fpr'])} vs ≤ {c.params['fpr_max']}; recall {fmt(rt['recall'])} vs ≥ "
                    f"{c.params['recall_min']}", {k: v for k, v in rt.items() if k != "leads"},
                    control=_controls_line(runs), null=_null_line(ev, 2000), criterion=c.id)


def _row_lead(ev: Evaluation) -> ClaimRow:
    c = criterion("forecast.lowo_lead")
    runs = [r for r in ev.scorers["forecast"] if np.isfinite(r.score)]
    leads = [r.rel_lead for r in runs if r.hit]
    claim = "Onset forecaster: lead time on held-out workloads"
    if len(leads) < c.params["min_hits"]:
        return _inconclusive(c, claim, "median lead ≥ 20% of the grokking step",
                             f"{len(leads)} hits < {c.params['min_hits']}")
    med = float(np.median(leads))
    ci = cluster_bootstrap(leads, lambda u: float(np.median(u)), reps=c.params["boot_reps"])
    abs_leads = [r.event - r.fired for r in runs if r.hit]  # type: ignore[operator]
    return ClaimRow(claim, SOURCE, VERSION, "median lead ≥ 20% of the grokking step",
                    f"median relative lead {fmt(med)} {_ci(ci)} over {len(leads)} hits; median "
                    f"{fmt(float(np.median(abs_leads)))} steps", "PASS" if med >= c.params["lead_min"] else "FAIL",
                    f"median {fmt(med)} vs ≥ {c.params['lead_min']}", {"rel_leads": leads, "leads": abs_leads},
                    control=_controls_line(runs), null=_null_line(ev, 2000), criterion=c.id)


def _row_baselines(ev: Evaluation) -> ClaimRow:
    c = criterion("forecast.vs_baselines")
    fc = {r.id: r for r in ev.scorers["forecast"] if np.isfinite(r.score)}
    diffs, fails = {}, []
    for name in BASELINES:
        base = {r.id: r for r in ev.scorers[name] if np.isfinite(r.score)}
        ids = sorted(set(fc) & set(base))
        if len(ids) < c.params["min_runs"]:
            diffs[name] = ("not scored", len(ids))
            continue
        pos = np.array([fc[i].positive for i in ids])
        a_f, a_b = (np.array([sc[i].score for i in ids]) for sc in (fc, base))
        diff = auroc(a_f[pos], a_f[~pos]) - auroc(a_b[pos], a_b[~pos])
        rep_f, rep_b = _auroc_replicates(pos, [a_f, a_b], c.params["boot_reps"])
        ci = _percentile_ci(rep_f - rep_b)
        diffs[name] = (diff, ci, len(ids), auroc(a_b[pos], a_b[~pos]))
        if not (diff >= c.params["margin"] and ci[0] > 0):
            fails.append(name)
    scored = {k: v for k, v in diffs.items() if v[0] != "not scored"}
    measured = "; ".join(f"{k}: AUROC {fmt(v[3])}, Δ {fmt(v[0])} {_ci(v[1])} (n={v[2]})" for k, v in scored.items())
    unscored = [f"{k} (n={v[1]})" for k, v in diffs.items() if v[0] == "not scored"]
    reason = (f"not ahead by ≥ {c.params['margin']} with the interval above 0: {', '.join(fails)}" if fails
              else f"ahead of every scored baseline by ≥ {c.params['margin']}")
    if unscored:
        reason += f"; too few runs to score: {', '.join(unscored)}"
    return ClaimRow("Onset forecaster against the peers' predictors and each single spectral signal (held-out "
                    "workloads)", SOURCE, VERSION, "ahead of every baseline by ≥ 0.05 AUROC", measured,
                    "FAIL" if fails or not scored else "PASS", reason,
                    {"diffs": {k: list(v) for k, v in diffs.items()}},
                    control=_controls_line(ev.scorers["forecast"]), null=_null_line(ev, 2000), criterion=c.id)


def _row_fresh(ev: Evaluation) -> ClaimRow:
    c = criterion("forecast.fresh_workloads")
    runs = [r for r in ev.scorers["forecast"] if r.workload in FRESH and np.isfinite(r.score)]
    pos, neg = _counts(runs)
    claim = "Onset forecaster on workloads no detector was tuned on (parity, digits; held out)"
    if pos < c.params["min_pos"] or neg < c.params["min_neg"]:
        return _inconclusive(c, claim, "AUROC ≥ 0.95, FPR ≤ 0.10",
                             f"{pos} positive / {neg} negative scorable runs of {', '.join(FRESH)}")
    a, ci = ev.auroc("forecast", runs), _boot_auroc(runs, c.params["boot_reps"])
    rt = _rates(runs)
    ok = _verdict_auroc(a, ci, c.params["auroc_min"]) == "PASS" and rt["fpr"] <= c.params["fpr_max"]
    null_runs = [r for r in ev.scorers.get("null (noise features)", []) if r.workload in FRESH]
    return ClaimRow(claim, SOURCE, VERSION, "AUROC ≥ 0.95, FPR ≤ 0.10",
                    f"AUROC {fmt(a)} {_ci(ci)} ({pos} grokking / {neg} not); FPR "
                    f"{_rate_ci(rt['false_alarms'], rt['neg'])}; recall {_rate_ci(rt['hits'], rt['pos'])}",
                    "PASS" if ok else "FAIL", f"AUROC {fmt(a)} vs ≥ {c.params['auroc_min']}, FPR {fmt(rt['fpr'])} "
                    f"vs ≤ {c.params['fpr_max']}", {k: v for k, v in rt.items() if k != "leads"},
                    control=_controls_line(runs),
                    null=f"noise features: AUROC {fmt(ev.auroc('null (noise features)', null_runs))}",
                    criterion=c.id)


def _row_loso(ev: Evaluation, lowo: Evaluation) -> ClaimRow:
    c = criterion("forecast.loso_auroc")
    runs = ev.scorers["forecast"]
    pos, neg = _counts(runs)
    claim = "Onset forecaster: run-level AUROC on held-out seeds (leave-one-seed-out)"
    if pos < c.params["min_pos"] or neg < c.params["min_neg"]:
        return _inconclusive(c, claim, "AUROC ≥ 0.95", f"{pos} positive / {neg} negative runs")
    a, ci = ev.auroc("forecast"), _boot_auroc(runs, c.params["boot_reps"])
    rt = _rates([r for r in runs if np.isfinite(r.score)])
    return ClaimRow(claim, SOURCE, VERSION, "AUROC ≥ 0.95",
                    f"AUROC {fmt(a)} {_ci(ci)} over {pos} grokking / {neg} not; recall "
                    f"{_rate_ci(rt['hits'], rt['pos'])}, FPR {_rate_ci(rt['false_alarms'], rt['neg'])}",
                    _verdict_auroc(a, ci, c.params["auroc_min"]),
                    f"point {fmt(a)} vs ≥ {c.params['auroc_min']}; lower bound {fmt(ci[0])} vs 0.5",
                    {"auroc_ci": ci}, control=_controls_line(runs),
                    null="leave-one-workload-out " + _null_line(lowo, 2000), criterion=c.id)


def _row_calibration(ev: Evaluation) -> ClaimRow:
    c = criterion("forecast.calibration")
    b, ref, skill, ci = _brier(ev, c.params["boot_reps"])
    rel = reliability(ev, c.params["bins"])
    return ClaimRow("Onset forecaster: calibration of P(groks by 1.5·t) on held-out workloads", SOURCE, VERSION,
                    "Brier skill > 0 against the base rate",
                    f"Brier {fmt(b)} vs reference {fmt(ref)}: skill {fmt(skill)} {_ci(ci)}",
                    "PASS" if skill > 0 and ci[0] > 0 else "FAIL", f"skill interval lower bound {fmt(ci[0])} vs 0",
                    {"reliability": rel, "brier": b, "brier_ref": ref},
                    control="n/a: calibration is over every held-out window, controls included",
                    null=f"the training folds' base rate as a constant forecast: Brier {fmt(ref)}, skill 0 by "
                         "definition", criterion=c.id)
