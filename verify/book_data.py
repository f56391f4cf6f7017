"""Rendering helpers for the book's pages: derivations and LaTeX, and the onset tables of the workload chapters.

Pages read stored runs through the run store (``verify.store.load_stored``: a missing or stale file raises
``StoredRunError`` naming the file and the command that regenerates it) and write tables with
``verify.report.markdown_table``. The helpers here return plain Markdown strings; the pages wrap them in
``IPython.display.Markdown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verify.report import markdown_table
from verify.stats import fmt
from verify.store import RunData, StoredRunError
from verify.studies.onset import FAMILIES, calibrate, default_detectors, evaluate, predict, split_runs

__all__ = ["LATEX_NAMES", "derivation_markdown", "heldout_markdown", "latex", "onset_markdown"]


# --- derivations --------------------------------------------------------------------------------------------------

#: How the book prints symbols whose sympy names are ASCII stand-ins (``hbar`` is h̄, not ħ).
LATEX_NAMES: dict[str, str] = {
    "hbar": r"\bar{h}",
    "dbar": r"\bar{d}",
    "DeltaG_F": r"\|\Delta G\|_F",
    "Kdot": r"\|\dot K\|",
    "gap_lambda": r"\mathrm{gap}_\lambda",
    "Delta_s": r"\Delta s",
    "G_tr": r"G^{\mathrm{tr}}",
    "G_val": r"G^{\mathrm{val}}",
    "G_eff": r"G^{\mathrm{eff}}",
    "W_minus_1": r"(W-1)",
    "sigma_W": r"\sigma_W",
    "sigma_noise": r"\sigma_{\mathrm{noise}}",
    "d_crit": r"d_{\mathrm{crit}}",
    "R_BBP": r"R_{\mathrm{BBP}}",
    "theta_j": r"\theta_j",
    "lambda_lin": r"\lambda_{\mathrm{lin}}",
}


def latex(expr: Any) -> str:
    """``sympy.latex`` of ``expr`` with the book's names for the ASCII stand-in symbols (``LATEX_NAMES``)."""
    import sympy as sp  # local: sympy costs ~1 s to import; only the derivation pages need it

    names = {s: LATEX_NAMES[s.name] for s in getattr(expr, "free_symbols", set()) if s.name in LATEX_NAMES}
    return sp.latex(expr, symbol_names=names)


def derivation_markdown(name: str) -> str:
    """A registered derivation as MyST Markdown: statement (``Derivation.latex``), source, assumptions, and each step
    with its residual after ``sympy.simplify`` (0 when the step holds). Raises ``DerivationError`` if a step fails,
    so a page can never show a derivation that does not check."""
    # local: importing theory registers every derivation and imports sympy (~1 s); only the derivation pages need it
    import theory  # noqa: F401 - registers every derivation
    from theory.derivation import all_derivations  # local: as above

    derivations = all_derivations()
    if name not in derivations:
        raise KeyError(f"unknown derivation {name!r}; registered: {', '.join(sorted(derivations))}")
    d = derivations[name]
    d.check()
    lines = [f"**`{d.name}`** ({d.source})", "", "$$", latex(d.statement), "$$", ""]
    if d.assumptions:
        lines += [f"*Assumptions:* {d.assumptions}.", ""]
    lines.append(markdown_table(["step", "residual (lhs − rhs) after simplification"],
                                [[step.claim, f"${latex(res)}$"] for step, res in zip(d.steps, d.residuals(),
                                                                                      strict=True)]))
    if d.notes:
        lines += ["", f"*Note:* {d.notes}."]
    return "\n".join(lines)


# --- onset prediction on a run set (the workload chapters) ---------------------------------------------------------


def _dash(x: Any) -> str:
    return fmt(x, missing="—")


def onset_markdown(runs: Sequence[RunData], detectors: Sequence[Any] | None = None) -> str:
    """Per run, predicted vs observed onset with frozen detectors (``verify.studies.onset.predict``): one table row
    per run with its kind (positive / control), observed grokking step, and per signal the step it fired at and the lead
    (observed − predicted; a control that fires is a false positive)."""
    dets = list(detectors) if detectors is not None else default_detectors()
    header = ["run", "kind", "observed grok step", *[f"{d.signal}: fired (lead)" for d in dets]]
    rows = []
    for r in sorted(runs, key=lambda r: r.id):
        p = predict(r, dets)
        kind = "positive" if not p["control"] else ("control (wd 0)" if not (r.weight_decay or 0) > 0
                                                    else "control (no grok)")
        cells = []
        for s in p["signals"]:
            if not s["fired"]:
                cells.append("no" if not s["note"] else f"no ({s['note']})")
            elif p["control"]:
                cells.append(f"{s['predicted_step']} (**false positive**)")
            else:
                cells.append(f"{s['predicted_step']} ({s['lead']})" if s["lead"] > 0
                             else f"{s['predicted_step']} (late: {s['lead']})")
        rows.append([r.id, kind, _dash(r.grok_step), *cells])
    return markdown_table(header, rows)


def heldout_markdown(runs: Sequence[RunData], calibration_seeds: Sequence[int] = (42,)) -> tuple[str, dict[str, Any]]:
    """Calibrate every detector family on the runs of ``calibration_seeds`` and score them on the other seeds only
    (``verify.studies.onset.calibrate`` / ``evaluate``; the same split as ``spectral-edge predict
    --calibration-seeds``). Returns a Markdown table and the ``evaluate`` report. Raises ``StoredRunError`` when a
    split is empty."""
    cal, held = split_runs(list(runs), calibration_seeds)
    if not cal or not held:
        raise StoredRunError(f"cannot split {len(runs)} runs by calibration seeds {list(calibration_seeds)}: "
                             f"{len(cal)} calibration, {len(held)} held-out")
    families = [f for f in FAMILIES if f != "defect" or any(r.defect for r in cal)]
    dets = [calibrate(f, cal) for f in families]
    report = evaluate(dets, held)
    rows = []
    for sig, e in report["signals"].items():
        params = ", ".join(f"{k}={v}" for k, v in e["params"].items())
        rows.append([sig, params, _dash(e["precision"]), _dash(e["recall"]), _dash(e["fpr"]),
                     f"{e['tp']}/{e['late']}/{e['fn']}", f"{e['fp']}/{e['tn']}", _dash(e["lead_median"])])
    table = markdown_table(["signal", "fitted on seeds " + ", ".join(map(str, calibration_seeds)), "precision",
                            "recall", "false-positive rate", "tp/late/fn", "fp/tn", "median lead"], rows)
    return table, report
