"""Reports of a catalogue run (a text table, rows as they finish, or JSON) and ``spectral-edge theorems``."""

from __future__ import annotations

import json
import sys
from typing import Any

import hypothesis
import numpy as np

from verify.theorems.registry import HOLDS
from verify.theorems.run import HUNT_EXAMPLES, TheoremResult, examples_for, run_catalogue, select

__all__ = ["report_json", "report_text", "theorems_command"]

_ID_WIDTH = 38


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            return str(v)
        if a.size > 12:
            return f"<{a.shape} array>"
        return np.array2string(a, precision=4, separator=", ").replace("\n", " ")
    return str(v)


def _row(r: TheoremResult) -> list[str]:
    exp = "holds" if r.expected == HOLDS else "has cex"
    lines = [f"{r.id:<{_ID_WIDTH}} {exp:<8} {r.examples:>6} {r.counterexamples:>4} {r.time_s:>7.2f}s  {r.verdict}"]
    lines.append(f"    {r.statement}" + ("  [statistical]" if r.statistical else ""))
    if r.counterexample is not None:
        c = r.counterexample
        details = ", ".join(f"{k} = {_fmt(v)}" for k, v in c["details"].items())
        lines.append(f"    smallest counterexample: {c['message']}" + (f": {details}" if details else ""))
        ex = c["example"]
        if isinstance(ex, dict) and sum(np.size(v) for v in ex.values()) <= 32:
            for k, v in ex.items():
                lines.append(f"      {k} = {np.array2string(np.asarray(v), precision=4, separator=', ')}"
                             .replace("\n", " "))
    if r.reason and r.verdict != "PASS":
        lines.append(f"    {r.verdict}: {r.reason}")
    return lines


def _header(profile: str | int, seed: int) -> list[str]:
    n = examples_for(profile)
    return [
        f"spectral-edge theorems: profile {profile} ({n} examples per theorem; expected counterexamples searched "
        f"in up to {max(n, HUNT_EXAMPLES)}), seed {seed}, hypothesis {hypothesis.__version__}",
        "",
        f"{'theorem':<{_ID_WIDTH}} {'expected':<8} {'tried':>6} {'cex':>4} {'time':>8}  verdict",
    ]


def _summary(results: list[TheoremResult]) -> dict[str, Any]:
    counts = {v: sum(r.verdict == v for r in results) for v in ("PASS", "FAIL", "SKIP")}
    return {"theorems": len(results), **counts, "time_s": round(sum(r.time_s for r in results), 3)}


def _summary_line(results: list[TheoremResult]) -> str:
    s = _summary(results)
    return (f"{s['theorems']} theorems: {s['PASS']} PASS, {s['FAIL']} FAIL, {s['SKIP']} SKIP; "
            f"total {s['time_s']:.1f} s")


def report_text(results: list[TheoremResult], profile: str | int = "quick", seed: int = 0) -> str:
    """The text table: one row per theorem (tried = valid examples up to the first counterexample, cex = 0/1),
    its statement, and the shrunk counterexample where one was found."""
    lines = _header(profile, seed)
    for r in results:
        lines.extend(_row(r))
    lines += ["", _summary_line(results)]
    return "\n".join(lines)


def report_json(results: list[TheoremResult], profile: str | int = "quick", seed: int = 0) -> dict[str, Any]:
    """The JSON report: profile, seed, versions, the per-theorem results (``TheoremResult.to_dict``), a summary."""
    return {
        "profile": profile,
        "examples_per_theorem": examples_for(profile),
        "hunt_examples": HUNT_EXAMPLES,
        "seed": seed,
        "hypothesis": hypothesis.__version__,
        "numpy": np.__version__,
        "results": [r.to_dict() for r in results],
        "summary": _summary(results),
    }


def theorems_command(profile: str = "quick", only: list[str] | None = None, as_json: bool = False) -> int:
    """Run the catalogue and print the report (text, rows as they finish; or JSON at the end).

    Exit code: 0 when every theorem behaves as expected (PASS or SKIP), 1 when any FAILs, 2 for an unknown
    profile or theorem id.
    """
    try:
        examples_for(profile)
        select(only)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if as_json:
        results = run_catalogue(profile, only)
        print(json.dumps(report_json(results, profile), indent=2))
    else:
        print("\n".join(_header(profile, 0)), flush=True)
        results = run_catalogue(profile, only, on_result=lambda r: print("\n".join(_row(r)), flush=True))
        print("\n" + _summary_line(results))
    return 1 if any(r.verdict == "FAIL" for r in results) else 0
