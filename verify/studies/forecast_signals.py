"""The causal per-window signals of one run: the onset forecaster's features and the baselines' series.

A run is seen as its *windows*: the spectrum records of one parameter group that carry a spectrum and have an eval at
or before them. Every value at window i is computed from the window's own spectrum and the records with step < t_i only
(causal: the training loop writes a step's spectrum before that step's eval and measurements), so the same numbers
come out offline (``signals_of``) and online (``verify.studies.forecast.ForecastCallback`` re-reads its growing
prefix). Missing inputs give NaN, never a guess: the forecaster imputes a training-fold mean, a baseline skips
the window.

Features (dimensionless; theory reference §1.3 gap ratio, §1.6 adiabatic parameter, §4.2 g₂₃; units stated):

============== ===================================================================================================
``log_R``      ln R_i − median of ln R over the first 3 windows (before the 3rd: those so far); R = σ_{k*}/σ_{k*+1}
               (σ units, a ratio)
``kstar_stab`` share of the last 5 windows with k* = 1
``g23_scale``  log₁₀(g₂₃/λ₁): g₂₃ = λ₂ − λ₃ (λ = σ² units) normalised by the update scale λ₁
``g23_decl``   ln(g₂₃ / running peak of g₂₃) (≤ 0)
``log_A``      log₁₀ A, A = ‖ΔG‖_F/(η·Δs·g²) (``numerics.predictors.adiabatic``, Δs = monitor cadence), clipped ±4
``defect``     ln D − median of ln D over the first 3 records (before the 3rd: over those so far), latest
               commutator-defect record before t (NaN where none was measured)
``sigma_trend`` ln σ₁(t_i) − ln σ₁(t_{i−3}): the update scale's trend
``train_acc``  train accuracy at the latest eval
``test_acc``   test accuracy (the event metric) at the latest eval
``test_slope`` test accuracy now − 3 evals earlier
``loss_gap``   ln(test loss / train loss) at the latest eval (nats)
``gap_close``  running max of ``loss_gap`` − ``loss_gap`` (nats): the train/test gap closing
``mem_age``    (t − t_mem)/t, t_mem = first eval with train accuracy ≥ 0.99 (0 before)
``norm_decl``  (running peak ‖θ‖ − ‖θ‖)/peak at the latest ``norm`` record (NaN where none was recorded)
============== ===================================================================================================

Baselines (``BASELINES``; a score series each, higher = "grokking sooner"): the weight-norm decline (Omnigrok; the
progress-measures papers), the early loss-oscillation energy (Notsawo et al. 2023: oscillations of the training loss
before grokking; ours is the running mean of (Δ² ln L_train)² over the evals so far), the train/test loss-gap
closing, and the single spectral signals g₂₃ decline (1 − g₂₃/peak), gap opening (R / baseline R), A, k*
stability and the commutator defect (D / baseline D).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from numerics.predictors import adiabatic
from verify.store import DefectRecord, EvalRecord, NormRecord, Run, SpectrumRecord

__all__ = ["BASELINES", "EVENT_METRIC", "FEATURES", "Signals", "baseline_series", "event_metric", "signals_of"]

FEATURES = ("log_R", "kstar_stab", "g23_scale", "g23_decl", "log_A", "defect", "sigma_trend", "train_acc",
            "test_acc", "test_slope", "loss_gap", "gap_close", "mem_age", "norm_decl")

#: The spectral features (the rest are the run's own curves); the ablations drop one family or the other.
SPECTRAL = FEATURES[:7]

#: Baseline name → the series it scores (a key of ``Signals.series``), in table order.
BASELINES = {
    "weight-norm decline": "norm_decl",
    "loss oscillation": "loss_osc",
    "train/test loss gap": "gap_close",
    "g23 decline": "g23_drop",
    "gap opening R": "R_ratio",
    "adiabatic A": "log_A",
    "k* stability": "kstar_stab",
    "commutator defect": "defect_ratio",
}

#: The event metric per workload (the eval field whose first crossing of 0.95 is the event): Dyck's per-token
#: accuracy passes 0.95 on memorising runs too, so its event is sequence-level accuracy.
EVENT_METRIC = {"dyck": "test_seq_acc"}

_MEM_ACC = 0.99  # train accuracy at which a run counts as memorised (mem_age)
_BASE_N = 3  # windows / defect records of the baseline medians
_STAB_N = 5  # windows of k* stability
_LAG = 3  # windows / evals of the trends


def event_metric(task: str | None) -> str:
    """The eval field whose first crossing of the threshold is the grokking event of ``task``."""
    return EVENT_METRIC.get(str(task), "test_acc")


@dataclass
class Signals:
    """One run's causal series at its windows: ``steps`` (int), ``features`` (n × len(FEATURES)) and the baseline
    ``series`` (name → length-n array), plus the event step of its eval history (None: never)."""

    id: str
    steps: np.ndarray
    features: np.ndarray
    series: dict[str, np.ndarray] = field(default_factory=dict)
    event: int | None = None
    final_step: int | None = None

    def before(self, step: int | None) -> np.ndarray:
        """Mask of the windows strictly before ``step`` (all windows for None)."""
        return np.ones(len(self.steps), bool) if step is None else self.steps < step


def _running_max(x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, np.nan)
    peak = -np.inf
    for i, v in enumerate(x):
        if np.isfinite(v):
            peak = max(peak, v)
        out[i] = peak if np.isfinite(peak) else np.nan
    return out


def _latest(rec_steps: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """values of the latest record with step < each of ``at`` (NaN where none): strictly before, because the loop
    records a step's spectrum before its eval and measurements, so online only earlier ones exist."""
    if not len(rec_steps):
        return np.full(len(at), np.nan)
    idx = np.searchsorted(rec_steps, at, side="left") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan)
    return out.astype(float)


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[lag:] = x[lag:] - x[:-lag]
    return out


def _prefix_median(x: np.ndarray, n: int) -> float:
    finite = x[np.isfinite(x)]
    return float(np.median(finite[:n])) if len(finite) else float("nan")


def _baseline_ratio(x: np.ndarray, n: int) -> np.ndarray:
    """ln(x / median of the first n finite values), causal: before the n-th finite value the median of those so far."""
    out = np.full(len(x), np.nan)
    seen: list[float] = []
    for i, v in enumerate(x):
        if np.isfinite(v) and v > 0:
            if len(seen) < n:
                seen.append(float(np.log(v)))
            out[i] = np.log(v) - float(np.median(seen))
    return out


def signals_of(spectra: Sequence[SpectrumRecord], evals: Sequence[EvalRecord], *,
               defects: Sequence[DefectRecord] = (), norms: Sequence[NormRecord] = (), eta: float | None = None,
               delta_s: int = 1, metric: str = "test_acc", threshold: float = 0.95, id: str = "run") -> Signals:
    """The causal signals of one run from its records (one group's spectra; module docstring).

    ``eta`` (the learning rate) is needed for A only (NaN without it); ``metric`` is the eval field of the event.
    """
    ev = sorted((e for e in evals if e.get(metric) is not None), key=lambda e: e.step)
    e_steps = np.array([e.step for e in ev], dtype=np.int64)
    spec = [r for r in spectra if r.has_spectrum and len(e_steps) and r.step >= e_steps[0]]
    steps = np.array([r.step for r in spec], dtype=np.int64)
    n = len(steps)
    event = next((int(e.step) for e in ev if float(e.get(metric)) >= threshold), None)

    R = np.array([r.R_value for r in spec], float)
    logR = _baseline_ratio(np.where(np.isinf(R), np.nan, R), _BASE_N)
    kstar1 = np.array([float(r.kstar == 1) for r in spec])
    kstab = np.array([kstar1[max(0, i - _STAB_N + 1): i + 1].mean() for i in range(n)]) if n else np.zeros(0)
    lam1 = np.array([r.lam[0] if r.lam else np.nan for r in spec], float)
    g23 = np.array([np.nan if r.g23 is None else r.g23 for r in spec], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g23_scale = np.log10(np.where((g23 > 0) & (lam1 > 0), g23 / lam1, np.nan))
        peak = _running_max(g23)
        g23_decl = np.log(np.where((g23 > 0) & (peak > 0), g23 / peak, np.nan))
        g23_drop = np.where(peak > 0, 1.0 - g23 / peak, np.nan)
        sigma1 = np.log(np.array([r.sigma[0] if r.sigma and r.sigma[0] > 0 else np.nan for r in spec], float))
    log_A = np.full(n, np.nan)
    if eta is not None and n:
        ok = np.array([r.dG_norm is not None and r.g is not None for r in spec])
        if ok.any():
            A, _ = adiabatic(np.array([spec[i].dG_norm for i in np.flatnonzero(ok)], float),
                             np.array([spec[i].g for i in np.flatnonzero(ok)], float), eta, delta_s,
                             on_zero_gap="inf")
            with np.errstate(divide="ignore"):
                log_A[ok] = np.clip(np.log10(np.atleast_1d(A)), -4, 4)
    d_steps = np.array([d.step for d in defects], dtype=np.int64)
    d_ratio = _baseline_ratio(np.array([d.D for d in defects], float), _BASE_N)
    defect = _latest(d_steps, d_ratio, steps)

    def curve(name: str) -> np.ndarray:
        return np.array([np.nan if e.get(name) is None else float(e.get(name)) for e in ev], float)

    train_acc, test_acc = curve("train_acc"), curve(metric)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.log(curve("test_loss") / curve("train_loss"))
        log_train = np.log(curve("train_loss"))
    gap_close = _running_max(gap) - gap
    osc = np.full(len(ev), np.nan)
    with np.errstate(invalid="ignore"):  # a train loss of exactly 0 (ln = -inf) gives NaN, skipped by nancumsum
        d2 = np.diff(log_train, 2)
    if len(d2):
        csum = np.nancumsum(d2 ** 2)
        osc[2:] = csum / np.arange(1, len(d2) + 1)
    mem = np.flatnonzero(train_acc >= _MEM_ACC)
    t_mem = e_steps[mem[0]] if len(mem) else None
    mem_age = np.zeros(n) if t_mem is None else np.where(steps > t_mem, (steps - t_mem) / np.maximum(steps, 1), 0.0)
    n_steps = np.array([r.step for r in norms], dtype=np.int64)
    nv = np.array([r.norm for r in norms], float)
    norm_decl = _latest(n_steps, (_running_max(nv) - nv) / _running_max(nv) if len(nv) else nv, steps)

    cols = {
        "log_R": logR, "kstar_stab": kstab, "g23_scale": g23_scale, "g23_decl": g23_decl, "log_A": log_A,
        "defect": defect, "sigma_trend": _lagged(sigma1, _LAG), "train_acc": _latest(e_steps, train_acc, steps),
        "test_acc": _latest(e_steps, test_acc, steps), "test_slope": _latest(e_steps, _lagged(test_acc, _LAG), steps),
        "loss_gap": _latest(e_steps, gap, steps), "gap_close": _latest(e_steps, gap_close, steps),
        "mem_age": mem_age, "norm_decl": norm_decl,
    }
    X = np.column_stack([cols[f] for f in FEATURES]) if n else np.zeros((0, len(FEATURES)))
    X[~np.isfinite(X)] = np.nan
    series = {
        "norm_decl": norm_decl, "loss_osc": _latest(e_steps, osc, steps), "gap_close": cols["gap_close"],
        "g23_drop": g23_drop, "R_ratio": np.exp(logR), "log_A": log_A, "kstar_stab": kstab,
        "defect_ratio": np.exp(defect),
    }
    final = int(max(e_steps[-1], steps[-1] if n else 0)) if len(e_steps) else None
    return Signals(id, steps, X, {k: np.where(np.isfinite(v), v, np.nan) for k, v in series.items()}, event, final)


def signals_of_run(run: Run, group: str = "all", *, metric: str | None = None, threshold: float = 0.95) -> Signals:
    """``signals_of`` a stored run: ``group`` if recorded, else ``all``, else its first group; the event metric of
    its task (``EVENT_METRIC``) unless ``metric`` is given; η = its config's ``lr``."""
    groups = run.groups()
    g = group if group in groups else ("all" if "all" in groups else (groups[0] if groups else group))
    lr = run.setting("lr")
    return signals_of(run.spectra(g), run.evals(), defects=run.defects(), norms=run.norms(),
                      eta=None if lr is None else float(lr), delta_s=run.delta_s,
                      metric=metric or event_metric(run.task), threshold=threshold, id=run.id)


def baseline_series(sig: Signals, name: str) -> np.ndarray:
    """The score series of baseline ``name`` (a key of ``BASELINES``)."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return sig.series[BASELINES[name]]
