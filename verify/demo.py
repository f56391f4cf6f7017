"""``make demo``: the whole story on the embedded default (issue 6, "The main job").

Two runs of a preset (default ``tiny`` modular arithmetic): with its weight decay and the control without. Both are
trained with the spectral monitor, the commutator defect (``defect.every`` = the monitor cadence unless overridden)
and a *live* onset prediction: the frozen forecaster (``verify.studies.forecast.ForecastCallback``) and one
``verify.studies.onset.OnsetCallback`` per default (frozen, uncalibrated) detector are attached to the monitor; the
forecaster writes a ``forecast`` record at every window, and each detector that fires writes an ``onset`` record into
the trajectory during training. The report (``report.md``) then has the per-run table, the live forecast, the onset
prediction per run (predicted step, observed grokking step, lead, which signal fired; controls included), the
spectral claims rows these two runs can check (``verify.studies.spectral``; the rest come out INCONCLUSIVE) and two
figures: ``demo.png`` (``plot_runs``) and ``phase.png`` (``phase_portrait``). Runs are read back through the run
store (``verify.store``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from numerics.atomic import atomic_write_text
from numerics.monitor import SpectralMonitor
from verify.claims import to_markdown
from verify.figures import phase_portrait, plot_runs
from verify.harness.config import RunConfig
from verify.harness.config import preset as get_preset
from verify.harness.loop import MonitorFactory, RunResult, train
from verify.harness.runner import run_name, spectral_monitor_factory
from verify.report import markdown_table
from verify.stats import fmt
from verify.store import DefectRecord, Run, RunData, checkpoint_path, load_run
from verify.studies.forecast import H0, HORIZONS, ForecastCallback, RunForecast, forecast_run, frozen_model
from verify.studies.onset import Detector, OnsetCallback, default_detectors, detector_params, predict
from verify.studies.spectral import claims_table, load_claim_runs
from verify.summary import summarise

__all__ = ["DEMO_MAX_STEPS", "onset_monitor_factory", "run_demo"]

#: The demo's step cap (unless ``overrides`` set ``max_steps``): the tiny preset's weight-decay run groks at step
#: 1000–1200 (seeds 0–2) and early-stops soon after; the control never groks, so 2000 steps show that without the
#: preset's 3000-step tail and keep ``make demo`` near a minute on two cores.
DEMO_MAX_STEPS = 2000


def _cell(x: object) -> str:
    return fmt(x, missing="—")


def _primary_group(names: Sequence[str]) -> str:
    """The group the detectors and figures read: ``attn`` when monitored (the author's choice), else ``all``."""
    return "attn" if "attn" in names else ("all" if "all" in names else names[0])


def onset_monitor_factory(path: str | Path, device: str | torch.device = "cpu",
                          detectors: Sequence[Detector] | None = None) -> MonitorFactory:
    """``spectral_monitor_factory(path)`` plus live onset prediction with frozen ``detectors`` (default:
    ``default_detectors()``).

    Each detector gets an ``OnsetCallback`` among the monitor's callbacks (it keeps the spectrum records of the
    primary group, only complete ones, as ``predict`` reads them offline) and is fed the ``defect`` records that
    ``train`` writes through ``monitor.event`` (the monitor's callbacks see spectrum records only, so ``event`` is
    wrapped on the instance).
    When a detector fires, an ``onset`` record ``{signal, params, group: signal}`` is written at the step it
    reports; ``group`` carries the signal name so that two signals firing at one step stay distinct records.
    """
    base = spectral_monitor_factory(path, device)
    dets = list(detectors) if detectors is not None else default_detectors()

    def make(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: RunConfig) -> SpectralMonitor:
        mon = base(model, optimizer, cfg)
        group = _primary_group(list(mon.layout.groups))

        def write(ev: dict[str, Any]) -> None:
            mon.event("onset", ev["step"], group=ev["signal"], signal=ev["signal"], params=ev["params"])

        callbacks = [OnsetCallback(d, eta=cfg.lr, delta_s=cfg.monitor.every, group=group, on_event=write)
                     for d in dets]

        mon.callbacks.extend(callbacks)
        fgroup = "all" if "all" in mon.layout.groups else group

        def write_forecast(f: RunForecast) -> None:
            mon.event("forecast", f.step, group=fgroup, p_h0=f.cdf[H0], p_within=f.p_within,
                      horizon_steps=f.horizon_steps, onset=list(f.onset), fired_at=f.fired_at)

        mon.callbacks.append(ForecastCallback(eta=cfg.lr, delta_s=cfg.monitor.every, group=fgroup,
                                              on_forecast=write_forecast))
        event = mon.event

        def event_and_feed(kind: str, step: int | None = None, **fields: Any) -> None:
            event(kind, step, **fields)
            if kind == "defect":
                rec = DefectRecord.from_record({"step": mon.step if step is None else int(step), **fields})
                for cb in callbacks:
                    cb(rec)

        mon.event = event_and_feed  # type: ignore[method-assign]
        return mon

    return make


def _train(cfg: RunConfig, path: Path, progress: bool, detectors: Sequence[Detector]) -> RunResult:
    """Train ``cfg`` into ``path`` (replaced if present) with the monitor, defect and live onset prediction."""
    path.unlink(missing_ok=True)
    ckpt = checkpoint_path(path)
    ckpt.unlink(missing_ok=True)
    factory = onset_monitor_factory(path, detectors=detectors)
    return train(cfg, monitor_factory=factory, progress=progress, checkpoint=ckpt)


def _live_alarms(run: Run, detectors: Sequence[Detector]) -> dict[str, int]:
    """Signal → step of the live ``onset`` record each detector wrote (its group is the signal's name)."""
    steps = {d.signal: run.trajectory.series("onset", "step", d.signal)[0] for d in detectors}
    return {signal: int(s[-1]) for signal, s in steps.items() if len(s)}


def _onset_rows(label: str, run: Run, group: str, detectors: Sequence[Detector]) -> tuple[str, list[list[Any]]]:
    """For one run: a Markdown summary line of the live first alarm, and a table row per signal, each compared
    with the offline ``predict`` of the same frozen ``detectors`` on the finished file."""
    p = predict(RunData.from_run(run, group), detectors)
    live = _live_alarms(run, detectors)
    obs = p["observed_grok_step"]
    if not p["control"]:
        kind = "grokking run (positive)"
    elif not (p["weight_decay"] or 0) > 0:
        kind = "control (no weight decay)"
    else:
        kind = "control (did not grok)"
    first = min(live.items(), key=lambda kv: kv[1]) if live else None
    if first is None:
        verdict = "no alarm (true negative)" if p["control"] else "no alarm (missed)"
    elif p["control"]:
        verdict = "alarm on a control (false positive)"
    else:
        verdict = "hit (before grokking)" if first[1] < obs else "late (at/after grokking: a miss)"
    rows = []
    for s in p["signals"]:
        fired_live = s["signal"] in live
        agree = "yes" if fired_live == s["fired"] and (not fired_live or live[s["signal"]] == s["predicted_step"]) \
            else "**no**"
        rows.append([label, kind, obs, s["signal"], "true" if fired_live else "false", _cell(live.get(s["signal"])),
                     _cell(s["lead"]), agree, s["note"] or ""])
    summary = (f"- **{label}** ({kind}, observed grokking step {obs}): "
               + (f"first live alarm `{first[0]}` at step {first[1]}"
                  + (f", lead {obs - first[1]} steps" if isinstance(obs, int) else "") if first else "no live alarm")
               + f" → {verdict}.")
    return summary, rows


def _forecast_section(runs: Mapping[str, Run]) -> list[str]:
    """The live forecast of each run: the model's first alarm against the observed grokking step, the forecast
    at a few windows as it was written during training, and the check that the live records equal the offline
    forecast of the finished file."""
    model = frozen_model()
    lines, table = [], []
    for label, run in runs.items():
        recs = run.events("forecast")
        if not recs:
            lines.append(f"- **{label}**: no forecast (no window with a spectrum and an eval before it).")
            continue
        off = forecast_run(model, run, group=str(recs[0]["group"]))
        obs = off.event
        fired = next((r["fired_at"] for r in recs if r["fired_at"] is not None), None)
        verdict = ("no alarm" + (" (missed)" if obs is not None else " (true negative)") if fired is None
                   else ("alarm on a run that did not grok (false positive)" if obs is None
                         else ("hit, lead " + str(obs - fired) + " steps" if fired < obs else "late (a miss)")))
        same = abs(recs[-1]["p_h0"] - off.cdf[H0]) < 1e-9 and recs[-1]["onset"] == list(off.onset)
        lines.append(f"- **{label}** (observed grokking step {_cell(obs)}): first live alarm at step "
                     f"{_cell(fired)} → {verdict}; live = offline: {'yes' if same else '**no**'}.")
        picks = sorted({0, len(recs) // 4, len(recs) // 2, 3 * len(recs) // 4, len(recs) - 1})
        for i in picks:
            r = recs[i]
            beyond = f">{r['step'] * (1 + HORIZONS[-1]):g}"  # past the longest horizon
            lo, med, hi = (beyond if x is None else str(x) for x in r["onset"])
            table.append([label, r["step"], f"{r['p_within']:.2f}", r["horizon_steps"], med, f"{lo}–{hi}",
                          _cell(r["fired_at"])])
    return [*lines, "", markdown_table(["run", "step", "P(groks within H)", "H (steps)", "predicted onset",
                                        "80% interval", "alarm at"], table)]


def run_demo(
    out: str | os.PathLike[str],
    preset: str = "tiny",
    seed: int = 0,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
    *,
    detectors: Sequence[Detector] | None = None,
) -> Path:
    """Train ``preset`` (with validated ``overrides``) with its weight decay and with none (the control), monitored,
    with the commutator defect and live onset prediction; write ``report.md``, ``demo.png`` and ``phase.png`` into
    ``out``; returns the report path.

    Unless ``overrides`` say otherwise, ``max_steps`` is capped at ``DEMO_MAX_STEPS`` and ``defect.every`` is the
    monitor cadence. The control trains for as many steps as the weight-decay run did (which early-stops once it
    has grokked), so both cover the same horizon. ``detectors`` (default ``default_detectors()``) are the frozen
    detectors run live.
    """
    dets = list(detectors) if detectors is not None else default_detectors()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = dict(overrides or {})
    base = get_preset(preset, **overrides).with_seed(seed)
    extra: dict[str, Any] = {}
    if "max_steps" not in overrides:
        extra["max_steps"] = min(base.max_steps, DEMO_MAX_STEPS)
    if base.defect.every is None:
        extra["defect"] = {"every": base.monitor.every}
    if extra:
        base = base.with_overrides(**extra)
    runs: dict[str, Run] = {}
    walls, paths = {}, []
    cfg = base
    for label in (f"weight decay {base.weight_decay:g}", "control (weight decay 0)"):
        path = out / f"{run_name(cfg)}.jsonl"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as fast as two for this model, and robust when the cores are shared
        try:
            result = _train(cfg, path, progress, dets)
        finally:
            torch.set_num_threads(threads)
        runs[label] = load_run(path)
        walls[label] = result.wall_s
        paths.append(path)
        # The control trains as long as the weight-decay run did (it early-stops after grokking), so both cover
        # the same horizon and the demo does not spend the cap's tail on a run that does not grok.
        cfg = base.with_overrides(weight_decay=0.0, max_steps=max(result.final_step, cfg.eval_every))
    groups = base.monitor.groups
    group = _primary_group(groups)
    rows = []
    for label, run in runs.items():
        for g in groups:
            s = summarise(run, group=g)
            rows.append([label, g, _cell(s["grok_step"]), _cell(s["final_test_acc"]),
                         f"{s['kstar_mode']} ({100 * s['kstar_mode_share']:.0f}%)", _cell(s["R_pre_mean"]),
                         _cell(s["R_at_grok"]), _cell(s["g23_early"]), _cell(s["g23_at_grok"]),
                         _cell(s["g23_decline"]), f"{walls[label]:.1f}"])
    figure = plot_runs(runs, out / "demo.png", group=group)
    phase = phase_portrait(runs, out / "phase.png", group=group)
    onset_lines: list[str] = []
    onset_table: list[list[Any]] = []
    for label, run in runs.items():
        summary, table = _onset_rows(label, run, group, dets)
        onset_lines.append(summary)
        onset_table.extend(table)
    claims = claims_table(load_claim_runs(paths), group=group)
    det_text = ", ".join(f"`{d.signal}` {_params_text(d)}" for d in dets)
    cfg, tc = base, base.task_config
    text = "\n".join(
        [
            "# spectral-edge demo",
            "",
            f"Modular arithmetic ({tc.op} mod {tc.p}), {tc.n_layers}-layer transformer d={tc.d_model}, AdamW "
            f"lr {cfg.lr:g}, batch {cfg.batch_size}, {base.max_steps} steps at most (the control: as many as the "
            f"weight-decay run), seed {seed}; rolling update "
            f"Gram W = {cfg.monitor.window}, Δs = {cfg.monitor.every} steps, k* = {cfg.monitor.kstar}; commutator "
            f"defect every {cfg.defect.every} steps (K = {cfg.defect.pairs} batch pairs, η = {cfg.defect.eta:g}). "
            f"Grokking step: first eval with test accuracy ≥ {cfg.grok_threshold:g}. g23 = λ2 − λ3 (σ² units); "
            "decline = peak before grokking / value at grokking (whole run for a run that did not grok).",
            "",
            "## Runs",
            "",
            markdown_table(["run", "group", "grok step", "final test acc", "k* mode", "R mean before grok",
                            "R at grok", "g23 peak", "g23 at grok", "g23 decline", "wall s"], rows),
            "",
            "## Onset prediction (live)",
            "",
            f"Frozen detectors, not calibrated on these runs ({det_text}), group `{group}`, each attached to the "
            "monitor as an `OnsetCallback` during training; an `onset` record is written into the trajectory when "
            "one fires. Lead = observed grokking step − predicted step (positive: before grokking). A control "
            "(no weight decay, or did not grok) that fires is a false positive. `live = offline`: the live record "
            "matches `spectral-edge predict` on the finished file.",
            "",
            *onset_lines,
            "",
            markdown_table(["run", "kind", "observed grok step", "signal", "fired", "predicted step", "lead",
                            "live = offline", "note"], onset_table),
            "",
            "## Forecast (live)",
            "",
            "The frozen onset forecaster (`spectral-edge forecast`; fitted on the stored calibration runs only, never "
            "on these) attached as a `ForecastCallback`: at every window it gives P(the run groks within the next "
            "H steps), H = half the current step, and the predicted onset with its 80% interval; its operating "
            "point raises one alarm. A `forecast` record is written into the trajectory at every window.",
            "",
            *_forecast_section(runs),
            "",
            "## Claims these two runs can check",
            "",
            "`verify.studies.spectral.claims_table` on the two runs; rows that need more runs, other optimisers or "
            "probes are INCONCLUSIVE with the reason. Spreads over runs have n = 1 here: run `spectral-edge claims` "
            "on a sweep for the real table.",
            "",
            to_markdown(claims),
            "## Figures",
            "",
            f"![accuracy and spectrum against steps]({figure.name})",
            "",
            f"![phase portrait: spectral gap vs commutator defect]({phase.name})",
            "",
            "Trajectories: " + ", ".join(f"`{r.path.name}`" for r in runs.values()),
            "",
            "Re-inspect any run with `spectral-edge inspect FILE --group attn`.",
            "",
        ]
    )
    return atomic_write_text(out / "report.md", text)


def _params_text(d: Detector) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in detector_params(d).items()) + ")"
