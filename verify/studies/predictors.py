"""The predictors study: the compiled predictors of ``numerics.predictors`` confronted with the stored probe runs.

No measurement of its own: it reads the probe sweep ``runs_root/probes`` (``verify.studies.probes``; h_j, G_j^tr per
probed mode every Δs steps on the attention group) with the window spectra at the same steps. Data and per-run
statistics live in ``verify.studies.predictors_data``. Claim rows (``claim_rows(runs_root)``, provider
"predictors"), each with its pass rule fixed in ``verify/criteria.toml`` ``[predictors.*]`` before it was computed:

- the per-mode fixed point σ_j* (corrected) against the measured σ_j in plateau windows, against a constant
  predictor (``predictors.fixed_point``), and corrected vs quoted (``predictors.fixed_point_variant``);
- the normal form's equilibrium g* = c/κ against the measured gap (``predictors.normal_form_gstar``) and κ against
  the relaxation rate of the gap's fluctuations (``predictors.normal_form_kappa``);
- forecasts of g over 1–5 checkpoint intervals by integrating the gap pair, scored against persistence and linear
  extrapolation (``predictors.gap_forecast``);
- the inverted hierarchy's ranking against a permutation null (``predictors.hierarchy``).

Grokking runs (weight decay > 0, grokked) carry the verdict; the weight-decay-0 runs are the controls (all their
full windows). Runs are the independent units of every interval (``verify.stats``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verify.claims import ClaimRow, draw, inconclusive
from verify.criteria import criterion
from verify.stats import cluster_bootstrap, fmt, mean_ci, spearman
from verify.studies.predictors_data import (
    HORIZONS,
    VARIANTS,
    Forecasts,
    PredRun,
    constant_error,
    forecasts,
    gap_points,
    load_pred_runs,
    log_error,
    mode_points,
    permuted_hierarchy,
    pooled_skill,
    relaxation,
    shuffled_g_error,
)

__all__ = ["PROBE_RUNS", "claim_rows", "fixed_point_row", "forecast_row", "gstar_row", "hierarchy_row",
           "kappa_row", "variant_row"]

#: The stored probe sweep read by the rows (``verify/runs/probes``).
PROBE_RUNS = "probes"
SOURCE = "[C] §3.3–3.5, Prop 5.1; errata 2–3 (theory reference §0.1)"
CONTROL_NOTE = "weight decay 0 (no probe runs of non-grokking weight-decay ops exist)"


def _params(cid: str) -> dict[str, Any]:
    return criterion(cid).params


def _boot_mean(values: Sequence[float], reps: int = 2000) -> tuple[float, float, float]:
    """Mean of the finite per-run values and its 95 % run-bootstrap interval."""
    v = [float(x) for x in values if np.isfinite(x)]
    if not v:
        return (float("nan"),) * 3
    lo, hi = cluster_bootstrap(v, lambda s: float(np.mean(s)), reps=reps)
    return float(np.mean(v)), lo, hi


def _ci(m: float, lo: float, hi: float, kind: str = "run bootstrap") -> str:
    return f"{fmt(m)} (95% {kind} [{fmt(lo)}, {fmt(hi)}])"


def _split(runs: Sequence[PredRun]) -> tuple[list[PredRun], list[PredRun]]:
    """(grokking runs, controls)."""
    return [r for r in runs if r.grokking], [r for r in runs if not r.grokking]


def _missing(claim: str, claimed: str, cid: str, why: str) -> ClaimRow:
    row = inconclusive(claim, SOURCE, "corrected (errata)", claimed, why)
    row.control, row.null, row.criterion = "n/a: no runs", "n/a: no runs", cid
    return row


# --- fixed point ------------------------------------------------------------------------------------------------


def _fixed_point_stats(runs: Sequence[PredRun], plateau: bool, min_points: int, null: bool = False
                       ) -> dict[str, dict[str, float]]:
    """Per run (with ≥ min_points points): E (corrected, quoted), E_const, Spearman, shuffled-G E (``null``)."""
    out = {}
    for r in runs:
        pts = mode_points(r, plateau)
        if len(pts.sigma) < min_points:
            continue
        out[r.id] = {"E": log_error(pts.corrected, pts.sigma), "E_quoted": log_error(pts.quoted, pts.sigma),
                     "E_const": constant_error(pts.sigma), "rho": spearman(pts.corrected, pts.sigma),
                     "bias": float(np.median(np.log(pts.corrected / pts.sigma))),
                     "bias_quoted": float(np.median(np.log(pts.quoted / pts.sigma))), "n": len(pts.sigma),
                     "dropped": pts.dropped,
                     "E_shuffled_G": shuffled_g_error(pts, r) if null else float("nan")}
    return out


def _col(stats: dict[str, dict[str, float]], key: str) -> list[float]:
    return [s[key] for s in stats.values()]


def _diff(stats: dict[str, dict[str, float]], a: str, b: str) -> list[float]:
    return [s[a] - s[b] for s in stats.values()]


def fixed_point_row(runs: Sequence[PredRun]) -> ClaimRow:
    """σ_j* = |G_j|√(ηW/(h_j+ω)) against σ_j in plateau windows, against a constant predictor (criterion
    ``predictors.fixed_point``)."""
    cid = "predictors.fixed_point"
    claim = "per-mode fixed point σ_j* (corrected) predicts σ_j in plateau windows"
    claimed = "σ_j* = |G_j|·√(ηW/(h_j+ω)) ≈ σ_j (beats the run's median σ; ranks σ_j)"
    p = _params(cid)
    grok, ctrl = _split(runs)
    st = _fixed_point_stats(grok, True, p["min_points"], null=True)
    if len(st) < p["min_runs"]:
        return _missing(claim, claimed, cid, f"{len(st)} grokking runs with ≥ {p['min_points']} plateau points "
                        f"(need {p['min_runs']}); run the probe sweep into verify/runs/probes")
    d = _boot_mean(_diff(st, "E_const", "E"), p["boot_reps"])
    rho = mean_ci(_col(st, "rho"))
    e, ec = _boot_mean(_col(st, "E")), _boot_mean(_col(st, "E_const"))
    verdict = "PASS" if d[1] > 0 and rho[1] > 0 else "FAIL"
    cs = _fixed_point_stats(ctrl, False, p["min_points"])
    cd, crho = _boot_mean(_diff(cs, "E_const", "E")), mean_ci(_col(cs, "rho"))
    en = _boot_mean(_col(st, "E_shuffled_G"))
    pts = {r.id: mode_points(r, r.grokking) for r in runs}
    x = np.concatenate([pts[r.id].corrected for r in runs])
    y = np.concatenate([pts[r.id].sigma for r in runs])
    groups = [r.condition + ("" if r.grokking else " (control)") for r in runs for _ in pts[r.id].sigma]
    return ClaimRow(
        claim, SOURCE, "corrected (errata 2)", claimed,
        f"error E = median |ln(σ*/σ)| {_ci(*e)} vs constant predictor {_ci(*ec)}; E_const − E {_ci(*d)}; "
        f"Spearman(σ*, σ) per run {_ci(*rho, kind='t')}; median ln(σ*/σ) per run "
        f"{fmt(float(np.median(_col(st, 'bias'))))}; {len(st)} grokking runs, "
        f"{int(sum(_col(st, 'n')))} (plateau checkpoint, mode) points ({int(sum(_col(st, 'dropped')))} with "
        "h_j + ω ≤ 0 left out)",
        verdict,
        f"{'beats' if d[1] > 0 else 'does not beat'} the constant predictor (run median σ); rank correlation "
        f"{'above' if rho[1] > 0 else 'not above'} 0; η = lr·Δs, W = w, G = G^tr; plateau = full window, before "
        "the grok step, test acc < 0.5",
        {"per_run": st, "control_per_run": cs, "E_const_minus_E": d, "spearman": rho},
        control=f"{CONTROL_NOTE}, all full windows ({len(cs)} runs): E_const − E {_ci(*cd)}; Spearman "
                f"{_ci(*crho, kind='t')}",
        null=f"G shuffled across the modes of each checkpoint (200 permutations): E {_ci(*en)} vs E {fmt(e[0])}",
        criterion=cid,
        plot=draw("draw_scatter", x, y, groups=groups, xlabel=r"predicted $\sigma_j^*$ (corrected)",
                  ylabel=r"measured $\sigma_j$ (window)"))


def variant_row(runs: Sequence[PredRun]) -> ClaimRow:
    """Corrected vs quoted fixed point: which fits the plateau σ_j better (criterion
    ``predictors.fixed_point_variant``)."""
    cid = "predictors.fixed_point_variant"
    claim = "fixed point: the corrected form fits better than the quoted one"
    claimed = "E(quoted) − E(corrected) > 0 (errata 2: the quoted d* lacks √η)"
    p = _params(cid)
    grok, ctrl = _split(runs)
    st = _fixed_point_stats(grok, True, p["min_points"])
    if len(st) < p["min_runs"]:
        return _missing(claim, claimed, cid, f"{len(st)} grokking runs with plateau points (need {p['min_runs']})")
    d = _boot_mean(_diff(st, "E_quoted", "E"), p["boot_reps"])
    e, eq, ec = (_boot_mean(_col(st, k)) for k in ("E", "E_quoted", "E_const"))
    verdict = "PASS" if d[1] > 0 else "FAIL"
    better = "corrected" if d[1] > 0 else "quoted" if d[2] < 0 else "neither (unresolved)"
    cs = _fixed_point_stats(ctrl, False, p["min_points"])
    cd = _boot_mean(_diff(cs, "E_quoted", "E"))
    bias, bias_q = float(np.median(_col(st, "bias"))), float(np.median(_col(st, "bias_quoted")))
    return ClaimRow(
        claim, SOURCE, "corrected vs quoted", claimed,
        f"E corrected {_ci(*e)}, quoted {_ci(*eq)}, constant {_ci(*ec)}; E_quoted − E_corrected {_ci(*d)}; "
        f"median ln(σ*/σ): corrected {fmt(bias)}, quoted {fmt(bias_q)} ({len(st)} grokking runs)",
        verdict,
        f"fits better: {better}. The two forms differ by the constant factor √η (η = lr·Δs) only, so this compares "
        "their absolute scale; their rank correlation with σ is identical",
        {"per_run": st, "control_per_run": cs, "E_quoted_minus_E": d, "better": better},
        control=f"{CONTROL_NOTE}, all full windows ({len(cs)} runs): E_quoted − E_corrected {_ci(*cd)}",
        null="n/a: a paired comparison of two predictors on the same points (the constant predictor's E is "
             f"{fmt(ec[0])})",
        criterion=cid,
        plot=draw("draw_bars", ["corrected", "quoted", "constant"], [e[0], eq[0], ec[0]],
                  [max(e[2] - e[0], 0), max(eq[2] - eq[0], 0), max(ec[2] - ec[0], 0)],
                  ylabel=r"median $|\ln(\sigma^*/\sigma)|$ per run (mean, upper 95% bootstrap)"))


# --- normal form ------------------------------------------------------------------------------------------------


def _gstar_stats(runs: Sequence[PredRun], plateau: bool, min_points: int) -> dict[str, dict[str, float]]:
    out = {}
    for r in runs:
        gp = gap_points(r, plateau)
        if len(gp.g) < min_points:
            continue
        out[r.id] = {"E": log_error(gp.corrected, gp.g), "E_quoted": log_error(gp.quoted, gp.g),
                     "E_const": constant_error(gp.g), "n": len(gp.g), "n_pair": gp.n_checkpoints,
                     "bias": float(np.median(np.log(gp.corrected / gp.g)))}
    return out


def gstar_row(runs: Sequence[PredRun]) -> ClaimRow:
    """g* = c/κ (corrected) against the measured gap, against the quoted form and a constant (criterion
    ``predictors.normal_form_gstar``)."""
    cid = "predictors.normal_form_gstar"
    claim = "normal form: equilibrium gap g* = c/κ (corrected) predicts the plateau gap"
    claimed = "g* = c/κ, κ = η(h̄+ω) + η²W(G₁²+G₂²)/(2d̄²) ≈ g = σ_{k*} − σ_{k*+1}"
    p = _params(cid)
    grok, ctrl = _split(runs)
    st = _gstar_stats(grok, True, p["min_points"])
    if len(st) < p["min_runs"]:
        return _missing(claim, claimed, cid, f"{len(st)} grokking runs with ≥ {p['min_points']} plateau checkpoints "
                        f"with c > 0 and the gap pair probed (need {p['min_runs']})")
    dq, dc = _boot_mean(_diff(st, "E_quoted", "E"), p["boot_reps"]), _boot_mean(_diff(st, "E_const", "E"))
    e, eq, ec = (_boot_mean(_col(st, k)) for k in ("E", "E_quoted", "E_const"))
    verdict = "PASS" if dq[1] > 0 and dc[1] > 0 else "FAIL"
    cs = _gstar_stats(ctrl, False, p["min_points"])
    cdq, cdc = _boot_mean(_diff(cs, "E_quoted", "E")), _boot_mean(_diff(cs, "E_const", "E"))
    n, npair = int(sum(_col(st, "n"))), int(sum(_col(st, "n_pair")))
    gps = [gap_points(r, r.grokking) for r in runs]
    g = np.concatenate([np.concatenate([gp.g, gp.g]) for gp in gps])
    gs = np.concatenate([np.concatenate([gp.corrected, gp.quoted]) for gp in gps])
    labels = [f"{v}{'' if r.grokking else ' (control)'}" for r, gp in zip(runs, gps, strict=True)
              for v in VARIANTS for _ in gp.g]
    return ClaimRow(
        claim, SOURCE, "corrected (errata 3)", claimed,
        f"E = median |ln(g*/g)|: corrected {_ci(*e)}, quoted {_ci(*eq)}, constant (run median g) {_ci(*ec)}; "
        f"E_quoted − E {_ci(*dq)}; E_const − E {_ci(*dc)}; median ln(g*/g) {fmt(float(np.median(_col(st, 'bias'))))}"
        f"; {len(st)} grokking runs, {n} of {npair} plateau checkpoints with the pair probed have c > 0",
        verdict,
        f"corrected {'beats' if dq[1] > 0 else 'does not beat'} the quoted form and "
        f"{'beats' if dc[1] > 0 else 'does not beat'} the constant; checkpoints with c ≤ 0 (a collapsing gap, "
        "no equilibrium) are left out and counted",
        {"per_run": st, "control_per_run": cs, "E_quoted_minus_E": dq, "E_const_minus_E": dc},
        control=f"{CONTROL_NOTE}, all full windows ({len(cs)} runs): E_quoted − E {_ci(*cdq)}; E_const − E "
                f"{_ci(*cdc)}",
        null=f"constant predictor (run median g): E {_ci(*ec)}",
        criterion=cid,
        plot=draw("draw_scatter", gs, g, groups=labels, xlabel=r"predicted $g^* = c/\kappa$",
                  ylabel=r"measured $g=\sigma_{k^*}-\sigma_{k^*+1}$"))


def kappa_row(runs: Sequence[PredRun]) -> ClaimRow:
    """κ against the measured relaxation rate −ln ρ of the gap's fluctuations (criterion
    ``predictors.normal_form_kappa``)."""
    cid = "predictors.normal_form_kappa"
    claim = "normal form: κ predicts the relaxation rate of the gap's fluctuations"
    claimed = "κ ≈ −ln ρ₁(g) per checkpoint interval (within a factor 2; closer than the quoted η(h̄+ω))"
    p = _params(cid)
    grok, ctrl = _split(runs)
    rel = {r.id: relaxation(r, True) for r in grok}
    ok = {k: v for k, v in rel.items() if np.isfinite(v.rate) and np.isfinite(v.kappa) and v.kappa > 0}
    if len(ok) < p["min_runs"]:
        return _missing(claim, claimed, cid, f"{len(ok)} grokking runs with a finite relaxation rate (0 < ρ < 1) "
                        f"and κ (need {p['min_runs']})")
    lr = mean_ci([np.log(v.kappa / v.rate) for v in ok.values()])
    lrq = mean_ci([np.log(v.kappa_quoted / v.rate) for v in ok.values()])
    d = _boot_mean([abs(np.log(v.kappa_quoted / v.rate)) - abs(np.log(v.kappa / v.rate)) for v in ok.values()],
                   p["boot_reps"])
    bound = float(np.log(p["factor"]))
    verdict = "PASS" if -bound < lr[1] and lr[2] < bound and d[1] > 0 else "FAIL"
    crel = {r.id: relaxation(r, False) for r in ctrl}
    cok = [v for v in crel.values() if np.isfinite(v.rate) and np.isfinite(v.kappa) and v.kappa > 0]
    clr = mean_ci([np.log(v.kappa / v.rate) for v in cok])
    W = max((r.W for r in grok), default=0)
    r_null = float(-np.log(1 - 1 / W)) if W > 1 else float("nan")
    med = {k: fmt(float(np.median([getattr(v, k) for v in ok.values()]))) for k in ("rate", "kappa", "rho")}
    allr = {**rel, **crel}
    return ClaimRow(
        claim, SOURCE, "corrected (errata 3)", claimed,
        f"ln(κ/r) per run {_ci(*lr, kind='t')}; quoted ln(κ_q/r) {_ci(*lrq, kind='t')}; |ln(κ_q/r)| − |ln(κ/r)| "
        f"{_ci(*d)}; medians: r {med['rate']}, κ {med['kappa']}, ρ {med['rho']} per checkpoint interval "
        f"({len(ok)} of {len(grok)} grokking runs with 0 < ρ < 1)",
        verdict,
        f"criterion: ln(κ/r) interval inside ±ln {p['factor']} and the corrected κ closer than the quoted one; "
        "g at the run's modal plateau k*, consecutive plateau checkpoints; caveat: consecutive windows share W − 1 "
        "of their W updates, so ρ of any window statistic is pulled towards 1 − 1/W",
        {"per_run": {k: vars(v) for k, v in allr.items()}, "log_kappa_over_rate": lr, "quoted": lrq,
         "abs_quoted_minus_abs_corrected": d},
        control=f"{CONTROL_NOTE}, all full windows ({len(cok)} of {len(ctrl)} runs with 0 < ρ < 1): ln(κ/r) "
                f"{_ci(*clr, kind='t')}",
        null=f"overlap null: a window statistic of i.i.d. updates has ρ ≈ 1 − 1/W, r ≈ {fmt(r_null)} per interval "
             f"(W = {W}); measured median r {med['rate']}",
        criterion=cid,
        plot=draw("draw_scatter", [v.kappa for v in allr.values()], [v.rate for v in allr.values()],
                  groups=[next(r.condition for r in runs if r.id == k) for k in allr],
                  xlabel=r"predicted $\kappa$ (corrected), per interval", ylabel=r"measured $-\ln\rho_1(g)$"))


# --- gap forecasts ----------------------------------------------------------------------------------------------


def _skill(fcs: Sequence[Forecasts], k: int, base: str, reps: int) -> tuple[float, float, float]:
    s = pooled_skill(fcs, k, base)  # type: ignore[arg-type]
    lo, hi = cluster_bootstrap(list(fcs), lambda f: pooled_skill(f, k, base), reps=reps)  # type: ignore[arg-type]
    return s, lo, hi


def _draw_skill(table: dict[str, list[tuple[float, float, float]]]) -> Callable[[Any], None]:
    def plot(fig: Any) -> None:
        ax = fig.add_subplot()
        for i, (name, vals) in enumerate(table.items()):
            x = np.asarray(HORIZONS, float) + 0.08 * (i - 1)
            m = np.asarray([v[0] for v in vals])
            err = np.abs(np.asarray([[v[1] for v in vals], [v[2] for v in vals]]) - m)
            ax.errorbar(x, m, yerr=err, marker="o", capsize=3, label=name)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("horizon (checkpoint intervals)")
        ax.set_ylabel("skill 1 − MSE_model/MSE_baseline (95% run bootstrap)")
        ax.legend(fontsize=7)

    return plot


def forecast_row(runs: Sequence[PredRun]) -> ClaimRow:
    """Forecasts of g by integrating the gap pair, scored against persistence and linear extrapolation (criterion
    ``predictors.gap_forecast``)."""
    cid = "predictors.gap_forecast"
    claim = "gap ODE forecasts g over 1–5 windows better than persistence and linear extrapolation"
    claimed = "skill 1 − MSE_ODE/MSE_baseline > 0 at horizon 1 against both baselines"
    p = _params(cid)
    grok, ctrl = _split(runs)
    fc = [f for f in (forecasts(r) for r in grok) if f.n_origins >= p["min_points"]]
    if len(fc) < p["min_runs"]:
        return _missing(claim, claimed, cid, f"{len(fc)} grokking runs with ≥ {p['min_points']} forecast origins "
                        f"(need {p['min_runs']})")
    reps = p["boot_reps"]
    table = {f"vs {b}": [_skill(fc, k, b, reps) for k in HORIZONS] for b in ("persistence", "linear")}
    s1p, s1l = table["vs persistence"][0], table["vs linear"][0]
    verdict = "PASS" if s1p[1] > 0 and s1l[1] > 0 else "FAIL"
    fq = [f for f in (forecasts(r, "quoted") for r in grok) if f.n_origins >= p["min_points"]]
    q1p, q1l = _skill(fq, 1, "persistence", reps), _skill(fq, 1, "linear", reps)
    fcc = [f for f in (forecasts(r) for r in ctrl) if f.n_origins >= p["min_points"]]
    c1p = _skill(fcc, 1, "persistence", reps) if fcc else (float("nan"),) * 3
    c1l = _skill(fcc, 1, "linear", reps) if fcc else (float("nan"),) * 3
    dmp = pooled_skill(fc, 1, "persistence", "damping")
    per_h = "; ".join(f"k={k}: {fmt(table['vs persistence'][i][0])} / {fmt(table['vs linear'][i][0])}"
                      for i, k in enumerate(HORIZONS))
    return ClaimRow(
        claim, SOURCE, "corrected (errata 2)", claimed,
        f"skill at horizon 1 vs persistence {_ci(*s1p)}, vs linear extrapolation {_ci(*s1l)}; per horizon "
        f"(vs persistence / vs linear) {per_h}; quoted flow at horizon 1: vs persistence {_ci(*q1p)}, vs linear "
        f"{_ci(*q1l)}; diagnostic: the damping term alone, g(s)·exp(−η(h̄+ω)k), scores {fmt(dmp)} vs persistence "
        f"at horizon 1; {len(fc)} grokking runs, {sum(f.n_origins for f in fc)} forecast origins",
        verdict,
        "criterion: the 95% run-bootstrap interval of the horizon-1 skill above 0 against both baselines; h, G "
        "frozen at the origin's probe values; g = 0 after a level crossing. What it measures: the damping term "
        f"alone scores {fmt(dmp)} (≥ the full flow) and the controls (ω = 0) show no skill against persistence, so "
        "the skill is the weight-decay contraction of the gap, not the gradient driving",
        {"skill": table, "quoted_h1": {"persistence": q1p, "linear": q1l},
         "control_h1": {"persistence": c1p, "linear": c1l}, "damping_only_h1_vs_persistence": dmp,
         "origins": {r.id: f.n_origins for r, f in zip(grok, (forecasts(r) for r in grok), strict=True)}},
        control=f"{CONTROL_NOTE} ({len(fcc)} runs): horizon-1 skill vs persistence {_ci(*c1p)}, vs linear "
                f"{_ci(*c1l)}",
        null="the baselines are the null: persistence g(t+k) = g(t) and linear extrapolation (skill 0 = no better)",
        criterion=cid,
        plot=_draw_skill(table))


# --- inverted hierarchy -----------------------------------------------------------------------------------------


def _hierarchy(runs: Sequence[PredRun], plateau: bool, min_points: int, n_perm: int, seed: int
               ) -> tuple[dict[str, float], np.ndarray]:
    """Per-run Spearman(∝|G|/√(h+ω), σ) and the null distribution of their mean (permutations within runs)."""
    pts = {r.id: mode_points(r, plateau) for r in runs}
    pts = {k: v for k, v in pts.items() if len(v.sigma) >= min_points}
    rho = {k: spearman(v.hierarchy, v.sigma) for k, v in pts.items()}
    rng = np.random.default_rng(seed)
    null = np.asarray([np.nanmean([spearman(permuted_hierarchy(v, rng), v.sigma) for v in pts.values()])
                       for _ in range(n_perm)]) if pts else np.zeros(0)
    return rho, null


def hierarchy_row(runs: Sequence[PredRun]) -> ClaimRow:
    """Spearman(|G_j|/√(h_j+ω), σ_j) against a permutation null (criterion ``predictors.hierarchy``)."""
    cid = "predictors.hierarchy"
    claim = "inverted hierarchy: σ_j ranks as |G_j|/√(h_j+ω)"
    claimed = "steady state σ_j ∝ |G_j|/√(h_j+ω) (Prop 5.1): rank correlation > 0, beyond a permutation null"
    p = _params(cid)
    grok, ctrl = _split(runs)
    rho, null = _hierarchy(grok, True, p["min_points"], p["n_perm"], p["seed"])
    if len(rho) < p["min_runs"]:
        return _missing(claim, claimed, cid, f"{len(rho)} grokking runs with ≥ {p['min_points']} plateau points "
                        f"(need {p['min_runs']})")
    T = float(np.nanmean(list(rho.values())))
    ci = mean_ci(list(rho.values()))
    curv = mean_ci([spearman(-pts.h, pts.sigma) for r in grok if len((pts := mode_points(r)).sigma) >= 3])
    pval = float((1 + np.sum(null >= T)) / (1 + len(null)))
    q95 = float(np.percentile(null, 95))
    verdict = "PASS" if T > q95 and pval < p["alpha"] and ci[1] > 0 else "FAIL"
    crho, cnull = _hierarchy(ctrl, False, p["min_points"], p["n_perm"], p["seed"])
    cT = float(np.nanmean(list(crho.values()))) if crho else float("nan")
    cci = mean_ci(list(crho.values()))
    cp = float((1 + np.sum(cnull >= cT)) / (1 + len(cnull))) if len(cnull) else float("nan")
    return ClaimRow(
        claim, "[C] Prop 5.1; theory.hierarchy", "—", claimed,
        f"mean per-run Spearman {_ci(*ci, kind='t')} over {len(rho)} grokking runs (plateau checkpoints × probed "
        f"modes); permutation null (each mode's (h_j, G_j) across checkpoints, {p['n_perm']} permutations): mean "
        f"{fmt(float(np.mean(null)))}, 95th percentile {fmt(q95)}, p = {fmt(pval)}; diagnostic: curvature alone, "
        f"Spearman(−h_j, σ_j) {_ci(*curv, kind='t')} (with ω = 1 ≫ h_j the prediction ranks as |G_j|)",
        verdict,
        f"{'above' if T > q95 else 'not above'} the null's 95th percentile; per-run Spearman interval "
        f"{'above' if ci[1] > 0 else 'not above'} 0. The null keeps each mode's marginal, so it scores how much the "
        "checkpoint's own h and G add beyond the mode order",
        {"per_run": rho, "null_mean": float(np.mean(null)), "null_q95": q95, "p": pval, "control_per_run": crho,
         "spearman_minus_h_sigma": curv},
        control=f"{CONTROL_NOTE}, all full windows ({len(crho)} runs): mean Spearman {_ci(*cci, kind='t')}, "
                f"permutation p = {fmt(cp)}",
        null=f"(h_j, G_j) permuted across plateau checkpoints within run and mode: mean {fmt(float(np.mean(null)))}, "
             f"95th percentile {fmt(q95)}; observed {fmt(T)}, p = {fmt(pval)}",
        criterion=cid,
        plot=draw("draw_hist", null, xlabel="mean per-run Spearman under the permutation null", vlines=[T]))


# --- provider ---------------------------------------------------------------------------------------------------

ROWS = (fixed_point_row, variant_row, gstar_row, kappa_row, forecast_row, hierarchy_row)


def claim_rows(runs_root: Path, *, group: str = "attn") -> list[ClaimRow]:
    """The claims provider: the predictor-vs-run rows on the stored probe sweep ``runs_root/probes``."""
    d = Path(runs_root) / PROBE_RUNS
    runs = load_pred_runs([d], group) if d.is_dir() else []
    return [make(runs) for make in ROWS]
