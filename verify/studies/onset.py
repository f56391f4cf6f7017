"""Grokking-onset prediction from spectral signals: frozen detectors, calibration, held-out evaluation, online use.

Signals (issue 6, "Onset prediction"; theory reference §1.3, §1.6, §1.8, §5):

- ``g23``: g₂₃ falls below a fraction ``frac`` of its running peak for ``sustain`` consecutive windows
  ([A]/[P] Table 7: "g₂₃ declines before every grokking event"; the author's analysis is post hoc, ours is causal).
- ``gap``: the gap at k* opens: R = σ_{k*}/σ_{k*+1} exceeds ``factor`` × the median of its first ``n_baseline``
  windows for ``sustain`` windows ([C] Thm 10.7 "gap opening ⇔ capability gain").
- ``adiabatic``: A = ‖ΔG‖_F/(η_eff g²), η_eff = η·Δs (``numerics.predictors.adiabatic``, ``on_zero_gap="inf"``;
  η = the run's ``lr`` from the provenance config, Δs the monitor cadence) crosses upward into the transition regime
  (A ≥ ``threshold`` after at least one window below it) for ``sustain`` windows ([A] regime map, theory reference
  §1.6; the threshold is [S] and is what calibration fits).
- ``defect``: the commutator defect D exceeds ``factor`` × the median of its first 3 records and ``floor``
  ([P] ``find_spike_step``, ``verify.studies.defect.onset_ratio``); only when ``defect`` records exist.

Every detector is causal: the step it reports is the step of the window at which its condition is *confirmed*
(the last window of a sustained run), so the same detector run online (``OnsetCallback``) and offline
(``predict``) reports the same step. Lead time = observed grokking step (``verify.grokking`` default,
``first>=0.95``) − predicted step; a positive lead means the detector fired before grokking.

Labels: a run is *positive* when it grokked and had weight decay > 0; every other run (no weight decay, or never
grokked) is a *control*. A detector firing on a control is a false positive; firing on a positive at or after
its grokking step is a miss (late), never a hit: "the run grokked" is never counted as "the detector fired".

Calibration (``calibrate``) fits a detector family's thresholds on a calibration split by a grid search that
maximises (true positives − false positives) with positive lead; the detector it returns remembers the runs it
saw, and ``evaluate`` refuses any of them (held-out evaluation only).

The detectors read a run through the run store: ``verify.store.RunData`` (one run seen through one parameter
group; ``verify.store.load_rundata`` reads files and directories). The claims row (``claim_rows``, provider
"onset"): the author's frozen defect detector on every stored sweep that measured the commutator defect.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numerics.errors import SpectralEdgeError
from numerics.predictors import adiabatic
from numerics.trajectory import Trajectory
from verify.claims import ClaimRow, draw, inconclusive, rate
from verify.stats import fmt
from verify.store import DefectRecord, RunData, SpectrumRecord, load_run, load_rundata

__all__ = [
    "DEFECT_GROK_DEFINITION",
    "FAMILIES",
    "AdiabaticDetector",
    "DefectDetector",
    "Detector",
    "G23Decline",
    "GapOpening",
    "OnsetCallback",
    "SplitError",
    "adiabatic_series",
    "calibrate",
    "claim_rows",
    "default_detectors",
    "detector_params",
    "evaluate",
    "format_evaluation",
    "predict",
    "split_runs",
]


class SplitError(SpectralEdgeError):
    """A calibration run was given to ``evaluate`` (the held-out split must be disjoint from calibration)."""


# --- detectors -----------------------------------------------------------------------------------------------------


def _sustained(cond: Sequence[bool], steps: Sequence[int], sustain: int) -> int | None:
    """Step of the window at which ``cond`` has held for ``sustain`` consecutive windows (causal confirmation)."""
    run = 0
    for step, ok in zip(steps, cond, strict=True):
        run = run + 1 if ok else 0
        if run >= sustain:
            return int(step)
    return None


@dataclass(frozen=True)
class G23Decline:
    """g₂₃ < ``frac`` × running peak for ``sustain`` windows, after the peak was at least ``min_windows`` in.

    Source: [A]/[P] Table 7 (theory reference §4.2, §5; g₂₃ = σ₂² − σ₃² of the update Gram, the replication's
    definition).
    """

    frac: float = 0.1
    sustain: int = 2
    calibrated_on: frozenset[str] = frozenset()
    signal: str = "g23"

    def fire(self, run: RunData) -> int | None:
        steps, g = run.series("g23")
        peak, cond = -np.inf, []
        for v in g:
            cond.append(bool(np.isfinite(v) and np.isfinite(peak) and peak > 0 and v < self.frac * peak))
            if np.isfinite(v):
                peak = max(peak, v)
        return _sustained(cond, steps, self.sustain)


@dataclass(frozen=True)
class GapOpening:
    """R (``key="R"``) or g (``key="g"``) at k* > ``factor`` × median of its first ``n_baseline`` finite windows,
    for ``sustain`` windows. Source: [C] Thm 10.7 / Test 7 (theory reference §4.2 #7), measured on the update Gram."""

    factor: float = 1.5
    key: str = "R"
    n_baseline: int = 3
    sustain: int = 2
    calibrated_on: frozenset[str] = frozenset()
    signal: str = "gap"

    def fire(self, run: RunData) -> int | None:
        steps, x = run.series(self.key)
        finite = np.flatnonzero(np.isfinite(x))
        if len(finite) <= self.n_baseline:
            return None
        base = float(np.median(x[finite[: self.n_baseline]]))
        start = finite[self.n_baseline - 1] + 1
        cond = [bool(i >= start and np.isfinite(v) and v > self.factor * base) for i, v in enumerate(x)]
        return _sustained(cond, steps, self.sustain)


def adiabatic_series(run: RunData) -> tuple[list[int], np.ndarray]:
    """(steps, A) with A = ‖ΔG‖_F/(η·Δs·g²) per window (``numerics.predictors.adiabatic``, on_zero_gap="inf").

    Windows without ``dG_norm`` (the first ones) or g give NaN. Needs η (``lr`` in the provenance config).
    """
    if run.eta is None:
        raise SpectralEdgeError(f"{run.id}: no learning rate ('lr') in the provenance config; A needs η")
    keep = [r for r in run.spectra if r.dG_norm is not None and r.g is not None]
    steps = [r.step for r in run.spectra]
    out = np.full(len(steps), np.nan)
    if keep:
        A, _ = adiabatic(np.array([r.dG_norm for r in keep]), np.array([r.g for r in keep]), run.eta,
                         run.delta_s, on_zero_gap="inf")
        pos = {r.step: a for r, a in zip(keep, np.atleast_1d(A), strict=True)}
        out = np.array([pos.get(s, np.nan) for s in steps])
    return steps, out


@dataclass(frozen=True)
class AdiabaticDetector:
    """A crosses upward into the transition regime: A ≥ ``threshold`` for ``sustain`` windows after at least one
    window with A < ``threshold``. Source: [A] regime map (A ≪ 1 plateau, A ~ 1 transition), theory reference §1.6; η →
    η·Δs ([S], ``numerics.predictors``)."""

    threshold: float = 0.1
    sustain: int = 2
    calibrated_on: frozenset[str] = frozenset()
    signal: str = "adiabatic"

    def fire(self, run: RunData) -> int | None:
        steps, A = adiabatic_series(run)
        seen_below, cond = False, []
        for a in A:
            cond.append(bool(seen_below and a >= self.threshold))
            if np.isfinite(a) and a < self.threshold:
                seen_below = True
        return _sustained(cond, steps, self.sustain)


@dataclass(frozen=True)
class DefectDetector:
    """Commutator defect D > ``factor`` × max(median of the first 3, 0.1) and D > ``floor`` (from the 3rd record).

    Source: [P] grokking-integrability ``find_spike_step`` (``verify.studies.defect.onset_ratio``). Returns None
    when the run has no ``defect`` records (the signal is optional)."""

    factor: float = 10.0
    floor: float = 20.0
    calibrated_on: frozenset[str] = frozenset()
    signal: str = "defect"

    def fire(self, run: RunData) -> int | None:
        # local: verify.studies.defect imports torch (its measurement); the detector reads stored runs without it
        from verify.studies.defect import onset_ratio

        if not run.defect:
            return None
        return onset_ratio([r.step for r in run.defect], [r.D for r in run.defect], factor=self.factor,
                           floor=self.floor)


Detector = G23Decline | GapOpening | AdiabaticDetector | DefectDetector

#: detector families and their calibration grids (parameter name → candidate values).
FAMILIES: dict[str, tuple[type, dict[str, Sequence[Any]]]] = {
    "g23": (G23Decline, {"frac": [0.5, 0.3, 0.1, 0.05, 0.02, 0.01], "sustain": [1, 2, 3]}),
    "gap": (GapOpening, {"factor": [1.1, 1.25, 1.5, 2.0, 3.0], "key": ["R", "g"], "sustain": [1, 2, 3]}),
    "adiabatic": (AdiabaticDetector, {"threshold": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                                      "sustain": [1, 2, 3]}),
    "defect": (DefectDetector, {"factor": [3.0, 10.0, 30.0], "floor": [1.0, 5.0, 20.0]}),
}


def default_detectors() -> list[Detector]:
    """Uncalibrated detectors with the author-like defaults (for ``predict`` without a calibration)."""
    return [G23Decline(), GapOpening(), AdiabaticDetector(), DefectDetector()]


def detector_params(det: Detector) -> dict[str, Any]:
    """A detector's thresholds by name (its dataclass fields but ``calibrated_on`` and ``signal``)."""
    return {f.name: getattr(det, f.name) for f in dataclasses.fields(det) if f.name not in ("calibrated_on",
                                                                                              "signal")}


# --- prediction ----------------------------------------------------------------------------------------------------


def predict(run: RunData | Trajectory | str | os.PathLike[str], detectors: Sequence[Detector] | None = None,
            group: str | None = None) -> dict[str, Any]:
    """Per run: observed grokking step, its label (positive / control, and why), and per signal the predicted
    step, lead time, whether it fired and what the firing means (``outcome``: early, late, or false positive on a
    control).

    Returns a JSON-able dict with ``text``. A run that did not grok reports ``"did not grok"`` (lead None). The
    ``defect`` signal reports ``"no defect records"`` when the run has none. For a file, ``group=None`` reads
    "attn" (else "all", else the first recorded group); a ``group`` the file did not record raises
    ``SpectralEdgeError`` listing the groups it has.
    """
    if isinstance(run, RunData):
        r = run
    else:
        loaded = load_run(run)
        if group is not None and group not in loaded.groups():
            raise SpectralEdgeError(f"{loaded.path}: no parameter group {group!r}; it records "
                                    f"{', '.join(loaded.groups()) or 'none'} (choose one with --group)")
        r = RunData.from_run(loaded, group or "attn")
    dets = list(detectors) if detectors is not None else default_detectors()
    obs = r.grok_step
    signals = []
    for d in dets:
        if d.signal == "defect" and not r.defect:
            signals.append({"signal": d.signal, "params": detector_params(d), "predicted_step": None, "lead": None,
                            "fired": False, "note": "no defect records"})
            continue
        try:
            step = d.fire(r)
            note = ""
        except SpectralEdgeError as exc:
            step, note = None, str(exc)
        lead = None if step is None or obs is None else obs - step
        signals.append({"signal": d.signal, "params": detector_params(d), "predicted_step": step, "lead": lead,
                        "fired": step is not None, "note": note})
    fired = [s for s in signals if s["fired"]]
    first = min(fired, key=lambda s: s["predicted_step"]) if fired else None
    label = "control" if r.is_control else "positive"
    for s in signals:  # what a firing means for this run: a control's firing is a false positive
        s["outcome"] = (None if not s["fired"] else "false positive" if r.is_control
                        else "late" if obs is None or s["predicted_step"] >= obs else "early")
    out = {"run": r.id, "task": r.task, "group": r.group, "weight_decay": r.weight_decay, "seed": r.seed,
           "observed_grok_step": obs if obs is not None else "did not grok", "control": r.is_control,
           "label": label, "labelled_by": "override" if r.label is not None else "data",
           "signals": signals, "first_signal": first["signal"] if first else None,
           "predicted_step": first["predicted_step"] if first else None,
           "lead": first["lead"] if first else None}
    why = ("set explicitly" if r.label is not None else
           "grokked with weight decay > 0" if not r.is_control else
           "no weight decay recorded" if r.weight_decay is None else
           "weight decay 0" if not r.weight_decay > 0 else "did not grok")
    lines = [f"run {r.id} ({r.task}, group {r.group}, wd {r.weight_decay}, seed {r.seed}): {label} ({why}); "
             f"observed grokking step {out['observed_grok_step']}"]
    for s in signals:
        if s["fired"]:
            what = f"fired at step {s['predicted_step']}" + (f", lead {s['lead']}" if s["lead"] is not None else "")
            what += {"false positive": " — FALSE POSITIVE (fired on a control)",
                     "late": " — late (at or after grokking: a miss)", "early": ""}[s["outcome"]]
        else:
            what = f"did not fire{' (' + s['note'] + ')' if s['note'] else ''}"
        lines.append(f"  {s['signal']:<10} {what}")
    out["text"] = "\n".join(lines)
    return out


# --- calibration and evaluation ------------------------------------------------------------------------------------


def _outcome(det: Detector, run: RunData) -> tuple[str, int | None]:
    """("tp" | "late" | "fn" | "fp" | "tn", lead) of one detector on one run."""
    try:
        step = det.fire(run)
    except SpectralEdgeError:
        step = None
    if run.is_control:
        return ("fp" if step is not None else "tn"), None
    obs = run.grok_step
    assert obs is not None
    if step is None:
        return "fn", None
    return ("tp", obs - step) if step < obs else ("late", obs - step)


def calibrate(family: str, runs: Sequence[RunData], grid: Mapping[str, Sequence[Any]] | None = None) -> Detector:
    """Fit a detector family's thresholds on ``runs`` (the calibration split) by grid search.

    Score = true positives (fired strictly before grokking on a positive run) − false positives (fired on a
    control); ties go to the larger median lead, then to the grid order. The returned frozen detector records the
    calibration run ids in ``calibrated_on``.
    """
    if family not in FAMILIES:
        raise SpectralEdgeError(f"unknown detector family {family!r}; choose one of {', '.join(FAMILIES)}")
    if not runs:
        raise SpectralEdgeError("calibrate needs at least one run")
    cls, default_grid = FAMILIES[family]
    grid = dict(grid or default_grid)
    ids = frozenset(r.id for r in runs)
    best: tuple[Any, ...] | None = None
    best_det: Detector | None = None
    for combo in itertools.product(*grid.values()):
        det = cls(**dict(zip(grid, combo, strict=True)), calibrated_on=ids)
        outs = [_outcome(det, r) for r in runs]
        tp = sum(o == "tp" for o, _ in outs)
        fp = sum(o == "fp" for o, _ in outs)
        leads = [lead for o, lead in outs if o == "tp"]
        key = (tp - fp, float(np.median(leads)) if leads else -np.inf)
        if best is None or key > best:
            best, best_det = key, det
    assert best_det is not None
    return best_det


def _rates(outs: list[tuple[str, int | None]]) -> dict[str, Any]:
    n = {k: sum(o == k for o, _ in outs) for k in ("tp", "late", "fn", "fp", "tn")}
    pos, ctrl = n["tp"] + n["late"] + n["fn"], n["fp"] + n["tn"]
    leads = [lead for o, lead in outs if o == "tp"]
    q = np.percentile(leads, [25, 50, 75]) if leads else [None] * 3
    return {**n, "positives": pos, "controls": ctrl,
            "precision": n["tp"] / (n["tp"] + n["fp"]) if n["tp"] + n["fp"] else None,
            "recall": n["tp"] / pos if pos else None, "fpr": n["fp"] / ctrl if ctrl else None,
            "lead_median": None if q[1] is None else float(q[1]),
            "lead_iqr": None if q[0] is None else [float(q[0]), float(q[2])], "leads": leads}


def evaluate(detectors: Sequence[Detector], runs: Sequence[RunData]) -> dict[str, Any]:
    """Held-out report per signal, per task (modular: per operation) and per workload: precision, recall,
    false-positive rate, lead median, IQR and range, and every lead (``leads``).

    Raises ``SplitError`` if any run was in a detector's calibration split. Positives: grokked with weight decay;
    controls: everything else. Counts: tp (fired before grokking), late (fired at/after grokking: a miss), fn,
    fp (fired on a control), tn.
    """
    for d in detectors:
        leaked = sorted(d.calibrated_on & {r.id for r in runs})
        if leaked:
            raise SplitError(f"{d.signal} detector was calibrated on {leaked}; evaluate on held-out runs only")
    report: dict[str, Any] = {"runs": [r.id for r in runs], "signals": {}}
    for d in detectors:
        # The defect signal is scored only on runs that measured the defect (a run without defect records is
        # neither a miss nor a true negative of it).
        scored = [r for r in runs if r.defect] if d.signal == "defect" else list(runs)
        outs = [_outcome(d, r) for r in scored]
        per_task: dict[str, list[tuple[str, int | None]]] = {}
        per_workload: dict[str, list[tuple[str, int | None]]] = {}
        for r, o in zip(scored, outs, strict=True):
            per_task.setdefault(r.task, []).append(o)
            per_workload.setdefault(r.task.split("-")[0], []).append(o)  # "modular-add" → "modular"
        entry = {"params": detector_params(d), "calibrated_on": sorted(d.calibrated_on), **_rates(outs),
                 "per_task": {t: _rates(o) for t, o in sorted(per_task.items())},
                 "per_workload": {t: _rates(o) for t, o in sorted(per_workload.items())}}
        if len(scored) < len(runs):
            entry["note"] = (f"scored on the {len(scored)} runs with defect records; {len(runs) - len(scored)} "
                             "without are left out")
            entry["unscored"] = sorted(r.id for r in runs if not r.defect)
        report["signals"][d.signal] = entry
    report["text"] = format_evaluation(report)
    return report


def _rate_line(label: str, e: Mapping[str, Any]) -> str:
    iqr = "" if e["lead_iqr"] is None else f" [{e['lead_iqr'][0]:.0f}, {e['lead_iqr'][1]:.0f}]"
    span = f" range {min(e['leads']):.0f}–{max(e['leads']):.0f}" if e.get("leads") else ""
    return (f"{label:<52} {fmt(e['precision'], '.2f'):>5} {fmt(e['recall'], '.2f'):>5} {fmt(e['fpr'], '.2f'):>5}  "
            f"{e['tp']:>2}/{e['late']}/{e['fn']:<2}{'':>5} {e['fp']:>2}/{e['tn']:<2}{'':>2} "
            f"{fmt(e['lead_median'], '.0f')}{iqr}{span}")


def format_evaluation(report: Mapping[str, Any]) -> str:
    """Plain-text table of an ``evaluate`` report: one line per signal, then one per workload and per task
    (controls included: their firings are the fp column)."""
    lines = [f"held-out runs: {len(report['runs'])}",
             f"{'signal / workload / task':<52} {'prec':>5} {'rec':>5} {'FPR':>5}  tp/late/fn  fp/tn  "
             "lead med [IQR] range"]
    for sig, e in report["signals"].items():
        params = json.dumps(e["params"], separators=(",", ":"))
        lines.append(_rate_line(f"{sig} {params}", e) + (f"  ({e['note']})" if e.get("note") else ""))
        subs = [*(("workload", k, v) for k, v in e.get("per_workload", {}).items()
                  if len(e.get("per_workload", {})) > 1),
                *(("task", k, v) for k, v in e.get("per_task", {}).items())]
        lines.extend(_rate_line(f"  {kind} {name}", v) for kind, name, v in subs)
    return "\n".join(lines)


def split_runs(runs: Sequence[RunData], calibration_seeds: Iterable[int] = (42,)) -> tuple[list[RunData],
                                                                                             list[RunData]]:
    """(calibration, held-out) by seed: runs whose seed is in ``calibration_seeds`` calibrate, the rest evaluate."""
    cal = set(calibration_seeds)
    return [r for r in runs if r.seed in cal], [r for r in runs if r.seed not in cal]


# --- online form ---------------------------------------------------------------------------------------------------


class OnsetCallback:
    """SpectralMonitor callback: feed spectrum (and defect) records; emits one event when the frozen detector fires.
    (For a probability that the run groks within the next H steps and a predicted onset with an interval, use the
    forecaster's live callback, ``verify.studies.forecast.ForecastCallback``.)

    ``OnsetCallback(detector, eta=lr, delta_s=every, group="attn", on_event=print)``; pass it in
    ``SpectralMonitor(callbacks=[cb])``: the monitor calls it with each spectrum record (a mapping, read as a
    ``verify.store.SpectrumRecord``); defect measurements are fed as ``DefectRecord``. ``event`` is None until the
    detector fires, then ``{"type": "onset", "signal", "step", "params"}``; ``on_event`` is called once with it.
    Records of other groups, and degenerate windows (no spectrum, as ``predict`` leaves them out offline), are
    ignored. Since every detector is causal the event step equals what ``predict`` finds offline.
    """

    def __init__(self, detector: Detector, *, eta: float | None = None, delta_s: int = 1, group: str = "attn",
                 on_event: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.detector, self.group, self.on_event = detector, group, on_event
        self._run = RunData(id="online", spectra=[], eta=eta, delta_s=delta_s)
        self.event: dict[str, Any] | None = None

    def __call__(self, record: Mapping[str, Any] | SpectrumRecord | DefectRecord) -> None:
        if self.event is not None:
            return
        if isinstance(record, DefectRecord):
            self._run.defect.append(record)
        else:
            rec = record if isinstance(record, SpectrumRecord) else SpectrumRecord.from_record(record)
            if rec.group != self.group or not rec.has_spectrum:
                return
            self._run.spectra.append(rec)
        step = self.detector.fire(self._run)
        if step is not None:
            self.event = {"type": "onset", "signal": self.detector.signal, "step": step,
                          "params": detector_params(self.detector)}
            if self.on_event is not None:
                self.on_event(self.event)


# --- claim rows ------------------------------------------------------------------------------------------------

#: Grokking-step definition of the defect lead times per workload: the author's ([P] 2602.16746 grok_90 for
#: modular arithmetic; 2602.16967 first test accuracy ≥ 0.99 for Dyck/SCAN, dyck_scan).
DEFECT_GROK_DEFINITION = {"modular": "first>=0.9", "dyck": "first>=0.99", "scan": "first>=0.99"}


#: Time-shuffled null of the defect detector: permutations of each run's D series over its steps (fixed seed).
NULL_PERMUTATIONS, NULL_SEED = 50, 0


def shuffled_defect_early(runs: Sequence[RunData], det: DefectDetector, n: int = NULL_PERMUTATIONS,
                          seed: int = NULL_SEED) -> tuple[int, int]:
    """(fired strictly before grokking, draws) of ``det`` on ``n`` time-shuffled copies of each grokking run's
    defect series (steps kept, D permuted): the null where the order of the records matters."""
    # local: verify.studies.defect imports torch (its measurement); the detector reads stored runs without it
    from verify.studies.defect import onset_ratio

    rng = np.random.default_rng(seed)
    early = total = 0
    for r in runs:
        steps, D = [d.step for d in r.defect], np.array([d.D for d in r.defect], dtype=float)
        for _ in range(n):
            step = onset_ratio(steps, list(rng.permutation(D)), factor=det.factor, floor=det.floor)
            early += step is not None and r.grok_step is not None and step < r.grok_step
            total += 1
    return early, total


def claim_rows(runs_root: Path, *, group: str = "attn") -> list[ClaimRow]:
    """The claims provider (``verify.claims``): "commutator-defect onset leads grokking" with the author's frozen
    detector (D > 10× its early median and > 20, ``DefectDetector`` defaults: nothing fitted) on the finished runs
    with ``defect`` records in ``runs_root/{modular,dyck,scan}``.

    PASS: the detector fires strictly before grokking on ≥ 80 % of the positive runs (grokked with weight decay)
    and on ≤ 20 % of the controls; FAIL otherwise; INCONCLUSIVE without a positive run that measured the defect.
    """
    claim, source, claimed = "commutator-defect onset leads grokking", "[P] 2602.16746, 2602.16967", \
        "defect spike 600–1600 steps before grokking"
    det = DefectDetector()
    pos: list[tuple[str, int | None]] = []
    pos_runs: list[RunData] = []
    ctrl: list[tuple[str, bool]] = []
    for workload, definition in DEFECT_GROK_DEFINITION.items():
        d = Path(runs_root) / workload
        if not d.is_dir():
            continue
        for r in load_rundata([d], group, finished_only=True, grok_definition=definition):
            if not r.defect:
                continue
            fired = predict(r, [det], group)["signals"][0]
            if r.is_control:
                ctrl.append((r.id, bool(fired["fired"])))
            else:
                pos.append((r.id, fired["lead"]))  # None: never fired
                pos_runs.append(r)
    if not pos:
        row = inconclusive(claim, source, "—", claimed, f"no grokking run with defect records under {runs_root}")
        row.criterion = "onset.defect_lead"
        return [row]
    early = [lead for _, lead in pos if lead is not None and lead > 0]
    in_band = [lead for lead in early if 600 <= lead <= 1600]
    fp = sum(f for _, f in ctrl)
    recall, fpr = len(early) / len(pos), (fp / len(ctrl) if ctrl else 0.0)
    verdict = "PASS" if recall >= 0.8 and fpr <= 0.2 else "FAIL"
    leads = {rid: lead for rid, lead in pos}
    n_early, n_draws = shuffled_defect_early(pos_runs, det)
    return [ClaimRow(
        claim, source, "—", claimed,
        f"fires before grokking on {len(early)}/{len(pos)} grokking runs (leads {sorted(early)}; "
        f"{len(in_band)} in 600–1600); late or never on {len(pos) - len(early)} "
        f"({ {k: v for k, v in leads.items() if v is None or v <= 0} }); fires on {fp}/{len(ctrl)} controls",
        verdict,
        "frozen author detector (10× early median and > 20, nothing fitted); grokking step per workload "
        f"{DEFECT_GROK_DEFINITION}; PASS needs ≥ 80% of grokking runs fired before grokking and ≤ 20% of controls "
        "fired; controls = no weight decay or never grokked",
        {"leads": leads, "controls_fired": dict(ctrl), "grok_definition": DEFECT_GROK_DEFINITION,
         "null_early": n_early, "null_draws": n_draws},
        plot=draw("draw_bars", [rid.replace("-p97", "") for rid, _ in pos],
                  [float(lead) if lead is not None else 0.0 for _, lead in pos],
                  ylabel="lead = grok step − defect onset (0: never fired)", band=(600.0, 1600.0)),
        control=(f"fires on {rate(fp, len(ctrl))} controls (no weight decay or never grokked); grokking runs fired "
                 f"early {rate(len(early), len(pos))}") if ctrl else "n/a: no control run with defect records",
        null=(f"time-shuffled defect series of the grokking runs ({NULL_PERMUTATIONS} permutations each): fires "
              f"before grokking in {rate(n_early, n_draws)}") if n_draws else "n/a: no defect series",
        criterion="onset.defect_lead")]
