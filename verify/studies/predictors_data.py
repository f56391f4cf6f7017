"""Data and per-run statistics of the predictors study (``verify.studies.predictors``): the compiled predictors of
``numerics.predictors`` evaluated on the probe runs' measured inputs, and their errors against the measured σ_j
and gap.

A ``PredRun`` holds one run's probe checkpoints (σ of the window, k*, w, the probed modes with h_j, G_j^tr, the
test accuracy) as plain arrays, so synthetic runs (tests) and stored runs (``load_pred_runs``) go through the same
functions. Conventions (fixed in ``verify/criteria.toml`` ``[predictors.*]`` before the statistics were computed):
η = lr·Δs for the time-free predictors (one checkpoint interval is one step of the quasi-static flow), so rates
are per checkpoint interval; the gap forecast integrates with η = lr and ``delta_s`` = Δs (the same thing);
W = w of the window, G = G^tr, d = σ. A *plateau* checkpoint: full window (w = W), before the grok step and test
accuracy < ``PLATEAU_ACC``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from numerics import predictors as P
from numerics.errors import SpectralEdgeError
from theory.hierarchy import steady_state_d
from verify.store import load_runs

Variant = Literal["corrected", "quoted"]
VARIANTS: tuple[Variant, Variant] = ("corrected", "quoted")
#: Test accuracy below which a pre-grokking window counts as plateau.
PLATEAU_ACC = 0.5
#: Forecast horizons in checkpoint intervals.
HORIZONS = (1, 2, 3, 4, 5)


@dataclass
class Checkpoint:
    """One probe checkpoint: the window's σ (descending), k* and w; the probed modes (1-indexed) with h_j, G_j^tr."""

    step: int
    sigma: np.ndarray
    w: int
    kstar: int | None
    modes: list[int]
    h: np.ndarray
    G: np.ndarray
    test_acc: float = float("nan")

    def pair(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(d, h, G) of the modes (k, k+1), or None when either is not probed or σ has no mode k+1."""
        if k not in self.modes or k + 1 not in self.modes or len(self.sigma) < k + 1:
            return None
        i = [self.modes.index(k), self.modes.index(k + 1)]
        return self.sigma[k - 1: k + 1], self.h[i], self.G[i]


@dataclass
class PredRun:
    """One probe run: condition, η = lr, ω = weight decay, Δs, the full window W, its checkpoints and σ by step."""

    id: str
    op: str
    weight_decay: float
    seed: int | None
    grok_step: int | None
    lr: float
    delta_s: int
    W: int
    checkpoints: list[Checkpoint]
    sigma_by_step: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def grokking(self) -> bool:
        """Weight decay > 0 and grokked: the runs the claims are about (the rest are controls)."""
        return self.weight_decay > 0 and self.grok_step is not None

    @property
    def eta(self) -> float:
        """η per checkpoint interval, lr·Δs."""
        return self.lr * self.delta_s

    @property
    def condition(self) -> str:
        return f"{self.op} wd{self.weight_decay:g}"

    def selected(self, plateau: bool = True) -> list[Checkpoint]:
        """Full-window checkpoints; with ``plateau`` only those before the grok step with test acc < PLATEAU_ACC."""
        out = [c for c in self.checkpoints if c.w == self.W]
        if plateau:
            out = [c for c in out if (self.grok_step is None or c.step < self.grok_step)
                   and np.isfinite(c.test_acc) and c.test_acc < PLATEAU_ACC]
        return out

    def gap_at(self, step: int, k: int) -> float:
        """σ_k − σ_{k+1} of the window at ``step`` (NaN when absent)."""
        s = self.sigma_by_step.get(step)
        return float(s[k - 1] - s[k]) if s is not None and len(s) >= k + 1 else float("nan")


def load_pred_runs(paths: Sequence[str | os.PathLike[str]], group: str = "attn") -> list[PredRun]:
    """Finished probe runs of files or directories (``verify.store.load_runs``) with probe records of ``group``."""
    out = []
    for run in load_runs(paths):
        probes = run.probes(group)
        lr, wd, every = run.setting("lr"), run.setting("weight_decay"), run.meta.get("every")
        if not probes or lr is None or wd is None or every is None:
            continue
        spectra = {r.step: r for r in run.spectra(group) if r.sigma}
        steps, acc = run.eval_series("test_acc")
        acc_at = {int(s): float(a) for s, a in zip(steps, acc, strict=True)}
        cps = []
        for pr in probes:
            sp = spectra.get(pr.step)
            if sp is None:
                continue
            cps.append(Checkpoint(pr.step, np.asarray(sp.sigma, float), int(sp.w),
                                  None if sp.kstar is None else int(sp.kstar), list(pr.modes),
                                  np.asarray(pr.h, float), np.asarray(pr.G_train, float),
                                  acc_at.get(pr.step, float("nan"))))
        op = run.setting("op")
        out.append(PredRun(run.id, "?" if op is None else str(op), float(wd), run.seed, run.grok_step(), float(lr),
                           int(every), max((int(r.w) for r in spectra.values()), default=0), cps,
                           {s: np.asarray(r.sigma, float) for s, r in spectra.items()}))
    return out


# --- per-mode fixed point and the inverted hierarchy ------------------------------------------------------------


@dataclass
class ModePoints:
    """(checkpoint, mode) points with h_j + ω > 0 of one run: measured σ, the predictors, group labels."""

    sigma: np.ndarray
    corrected: np.ndarray
    quoted: np.ndarray
    hierarchy: np.ndarray  # ∝ |G|/√(h+ω)
    checkpoint: np.ndarray  # index of the checkpoint (for within-checkpoint shuffles)
    mode: np.ndarray
    G: np.ndarray
    h: np.ndarray
    dropped: int  # points with h + ω ≤ 0 or σ ≤ 0 (no fixed point)


def mode_points(run: PredRun, plateau: bool = True) -> ModePoints:
    """The fixed-point and hierarchy predictions at every probed mode of the selected checkpoints."""
    rows: list[tuple[float, float, float, int, int]] = []
    dropped = 0
    for i, c in enumerate(run.selected(plateau)):
        for j, m in enumerate(c.modes):
            if m > len(c.sigma) or c.sigma[m - 1] <= 0 or not c.h[j] + run.weight_decay > 0:
                dropped += 1
                continue
            rows.append((float(c.sigma[m - 1]), float(c.h[j]), float(c.G[j]), i, m))
    a = np.asarray(rows, float).reshape(-1, 5)
    sigma, h, G = a[:, 0], a[:, 1], a[:, 2]
    fp = {v: fixed_point(G, h, run.weight_decay, run.eta, run.W, v) for v in VARIANTS}
    hier = steady_state_d(h, G, run.weight_decay, 1) if len(h) else np.zeros(0)
    return ModePoints(sigma, fp["corrected"], fp["quoted"], hier, a[:, 3].astype(int), a[:, 4].astype(int), G, h,
                      dropped)


def fixed_point(G: np.ndarray, h: np.ndarray, omega: float, eta: float, W: int, variant: Variant) -> np.ndarray:
    """σ_j* of ``numerics.predictors.mode_fixed_point`` (corrected |G|√(ηW/(h+ω)); quoted |G|√(W/(h+ω)))."""
    if not len(G):
        return np.zeros(0)
    return np.asarray(P.mode_fixed_point(G, h, omega, eta, W, variant=variant), float)


def log_error(pred: np.ndarray, meas: np.ndarray) -> float:
    """Median |ln(pred/meas)| over the points where both are > 0 (NaN when none)."""
    ok = (pred > 0) & (meas > 0) & np.isfinite(pred) & np.isfinite(meas)
    return float(np.median(np.abs(np.log(pred[ok] / meas[ok])))) if ok.any() else float("nan")


def constant_error(meas: np.ndarray) -> float:
    """The constant predictor's error: median |ln(m/σ)| with m the median measured value."""
    m = meas[meas > 0]
    return log_error(np.full(len(m), np.median(m)), m) if len(m) else float("nan")


def shuffled_g_error(pts: ModePoints, run: PredRun, n_perm: int = 200, seed: int = 0) -> float:
    """Mean error of the corrected σ* with G permuted across the modes of each checkpoint (a null)."""
    if not len(pts.sigma):
        return float("nan")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(pts.checkpoint == i) for i in np.unique(pts.checkpoint)]
    errs = []
    for _ in range(n_perm):
        G = pts.G.copy()
        for g in groups:
            G[g] = G[rng.permutation(g)]
        errs.append(log_error(fixed_point(G, pts.h, run.weight_decay, run.eta, run.W, "corrected"), pts.sigma))
    return float(np.nanmean(errs))


def permuted_hierarchy(pts: ModePoints, rng: np.random.Generator) -> np.ndarray:
    """The hierarchy prediction with each mode's (h_j, G_j) permuted across the run's checkpoints."""
    out = pts.hierarchy.copy()
    for m in np.unique(pts.mode):
        g = np.flatnonzero(pts.mode == m)
        out[g] = pts.hierarchy[rng.permutation(g)]
    return out


# --- normal form -------------------------------------------------------------------------------------------------


def normal_form(d: np.ndarray, h: np.ndarray, G: np.ndarray, omega: float, eta: float, W: int,
                variant: Variant) -> tuple[float, float, float]:
    """(c, κ, g* = c/κ) at one gap pair (d, h, G of the modes k*, k*+1): ``normal_form_prediction`` (c at the
    collapse point, κ of ``normal_form_kappa``) and ``normal_form_equilibrium``; g* NaN unless c > 0 and κ > 0."""
    nf = P.normal_form_prediction(d, h, G, 1, eta, omega, W, variant=variant)
    c, kappa = float(nf["c"]), float(nf["kappa"])
    g_star = float(P.normal_form_equilibrium(c, kappa)) if c > 0 and kappa > 0 else float("nan")
    return c, kappa, g_star


@dataclass
class GapPoints:
    """Per checkpoint (pair probed, c > 0, κ > 0 for the corrected form): measured g and g* of both variants."""

    g: np.ndarray
    corrected: np.ndarray
    quoted: np.ndarray
    n_checkpoints: int  # checkpoints with the pair probed (before the c > 0 filter)


def gap_points(run: PredRun, plateau: bool = True) -> GapPoints:
    """g* = c/κ of both variants against the measured g at the k* pair of every selected checkpoint."""
    rows, n = [], 0
    for c in run.selected(plateau):
        if c.kstar is None or (p := c.pair(c.kstar)) is None or p[0][1] <= 0:
            continue
        n += 1
        gs = {v: normal_form(*p, run.weight_decay, run.eta, c.w, v)[2] for v in VARIANTS}
        if np.isfinite(gs["corrected"]):
            rows.append((float(p[0][0] - p[0][1]), gs["corrected"], gs["quoted"]))
    a = np.asarray(rows, float).reshape(-1, 3)
    return GapPoints(a[:, 0], a[:, 1], a[:, 2], n)


@dataclass
class Relaxation:
    """Measured relaxation of the gap's fluctuations of one run against the predicted κ of both variants."""

    k: int | None
    rho: float
    rate: float  # −ln ρ per checkpoint interval; NaN unless 0 < ρ < 1
    kappa: float
    kappa_quoted: float
    n: int


def lag1_autocorrelation(steps: Sequence[int], g: Sequence[float], delta_s: int) -> float:
    """ρ = Σ x_s x_{s+Δs} / Σ x_s² over the series, x = g − mean(g) (pairs exactly Δs apart); NaN below 3 points."""
    s, x = np.asarray(steps, int), np.asarray(g, float)
    if len(x) < 3 or not np.all(np.isfinite(x)):
        return float("nan")
    x = x - x.mean()
    den = float(np.sum(x * x))
    at = {int(a): i for i, a in enumerate(s)}
    num = sum(x[i] * x[at[int(a) + delta_s]] for i, a in enumerate(s) if int(a) + delta_s in at)
    return float(num / den) if den > 0 else float("nan")


def relaxation(run: PredRun, plateau: bool = True) -> Relaxation:
    """ρ and r = −ln ρ of g = σ_k − σ_{k+1} (k the modal k*) over the selected checkpoints; κ = median κ."""
    cps = [c for c in run.selected(plateau) if c.kstar is not None]
    if not cps:
        return Relaxation(None, float("nan"), float("nan"), float("nan"), float("nan"), 0)
    ks, counts = np.unique([c.kstar for c in cps], return_counts=True)
    k = int(ks[np.argmax(counts)])
    steps = [c.step for c in cps if len(c.sigma) >= k + 1]
    g = [float(c.sigma[k - 1] - c.sigma[k]) for c in cps if len(c.sigma) >= k + 1]
    rho = lag1_autocorrelation(steps, g, run.delta_s)
    rate = float(-np.log(rho)) if 0 < rho < 1 else float("nan")
    kap: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for c in cps:
        if (p := c.pair(k)) is not None and p[0][1] > 0:
            for v in VARIANTS:
                kap[v].append(normal_form(*p, run.weight_decay, run.eta, c.w, v)[1])
    med = {v: float(np.median(x)) if x else float("nan") for v, x in kap.items()}
    return Relaxation(k, rho, rate, med["corrected"], med["quoted"], len(g))


# --- gap forecasts -----------------------------------------------------------------------------------------------


@dataclass
class Forecasts:
    """Per horizon k: squared errors of the model and the two baselines over the origins with a target."""

    model: dict[int, np.ndarray]
    persistence: dict[int, np.ndarray]
    linear: dict[int, np.ndarray]
    n_origins: int
    #: Term 2 alone (a diagnostic, not a criterion baseline): g(s)·exp(−η(h̄+ω)k), the damping without drivers.
    damping: dict[int, np.ndarray] = field(default_factory=dict)


def forecast_gap(d: np.ndarray, h: np.ndarray, G: np.ndarray, run: PredRun, w: int, variant: Variant,
                 horizons: Sequence[int] = HORIZONS) -> np.ndarray:
    """g at t = horizons (checkpoint intervals) from ``numerics.predictors.integrate_gap`` of the pair; 0 after a
    level crossing (the pair relabels: the gap at the old labels is gone)."""
    sol = P.integrate_gap(d, h, G, 1, run.lr, run.weight_decay, w, (0.0, float(max(horizons))),
                          t_eval=[0.0, *(float(k) for k in horizons)], delta_s=run.delta_s, rtol=1e-7,
                          atol=1e-10, variant=variant)  # t = 0 in t_eval: the solution is never empty
    out = np.zeros(len(horizons))
    out[: len(sol.g) - 1] = sol.g[1:]
    return out


def forecasts(run: PredRun, variant: Variant = "corrected", horizons: Sequence[int] = HORIZONS) -> Forecasts:
    """Forecasts of g from every full-window checkpoint with the k* pair probed and g(s − Δs) at the same pair."""
    errs: dict[str, dict[int, list[float]]] = {n: {k: [] for k in horizons} for n in ("m", "p", "l", "d")}
    n = 0
    for c in run.selected(plateau=False):
        if c.kstar is None or (p := c.pair(c.kstar)) is None or not p[0][0] > p[0][1] > 0:
            continue
        g0, prev = float(p[0][0] - p[0][1]), run.gap_at(c.step - run.delta_s, c.kstar)
        if not np.isfinite(prev):
            continue
        try:
            pred = forecast_gap(*p, run, c.w, variant, horizons)
        except SpectralEdgeError:
            continue
        n += 1
        decay = run.lr * run.delta_s * (float(p[1].mean()) + run.weight_decay)
        for i, k in enumerate(horizons):
            target = run.gap_at(c.step + k * run.delta_s, c.kstar)
            if not np.isfinite(target):
                continue
            errs["m"][k].append((pred[i] - target) ** 2)
            errs["p"][k].append((g0 - target) ** 2)
            errs["l"][k].append((g0 + k * (g0 - prev) - target) ** 2)
            errs["d"][k].append((g0 * np.exp(-decay * k) - target) ** 2)
    arr = {n_: {k: np.asarray(v, float) for k, v in d.items()} for n_, d in errs.items()}
    return Forecasts(arr["m"], arr["p"], arr["l"], n, arr["d"])


def pooled_skill(fcs: Sequence[Forecasts], k: int, baseline: Literal["persistence", "linear"],
                 model: Literal["model", "damping"] = "model") -> float:
    """1 − Σ SE_model / Σ SE_baseline at horizon k, pooled over the runs' origins (NaN when no origin)."""
    num = sum(float(getattr(f, model)[k].sum()) for f in fcs)
    den = sum(float(getattr(f, baseline)[k].sum()) for f in fcs)
    return 1 - num / den if den > 0 else float("nan")
