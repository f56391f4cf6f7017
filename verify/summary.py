"""Per-run summary numbers re-derived from a trajectory file (never from in-memory state of the run).

The g₂₃ summary follows the author's Table-7 replication (author-experiments.md §2.3): g₂₃_early is the
largest g₂₃ over windows up to the grokking step, g₂₃_grok the last window at or before it, and the decline is
their ratio (≥ 1 by construction). For a run that did not grok the whole run is used (peak / final).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from numerics.errors import TrajectoryError
from numerics.trajectory import Trajectory, read_trajectory
from verify.grokking import grok_step

__all__ = ["runs_table", "summarise"]


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, spec)


def _ratio(x: float | None) -> float:
    """R is stored as null when it is +inf (an exact rank drop in the window)."""
    return float("inf") if x is None else float(x)


def summarise(
    trajectory: str | os.PathLike[str] | Trajectory, group: str | None = None, grok_definition: str | None = None
) -> dict[str, Any]:
    """Summary of one run: grokking step, k* (mode and share), R and g₂₃ before/at grokking, final accuracy.

    ``group=None`` takes "all" when the run recorded it, else its first recorded group (the grokking workloads
    may record only the attention weights).
    """
    t = trajectory if isinstance(trajectory, Trajectory) else read_trajectory(trajectory)
    if group is None:
        recorded = t.groups()
        group = "all" if "all" in recorded or not recorded else recorded[0]
    specs = [r for r in t.spectra(group) if "sigma" in r]
    if not specs:
        raise TrajectoryError(f"{t.path}: no spectrum records for group {group!r} (groups: {t.groups() or 'none'})")
    steps, acc = t.series("eval", "test_acc")
    gstep = grok_step(steps, acc, grok_definition) if len(steps) else None
    cutoff = gstep if gstep is not None else specs[-1]["step"]
    pre = [r for r in specs if r["step"] <= cutoff] or specs[:1]
    kstars = Counter(int(r["kstar"]) for r in specs)
    kmode, kcount = kstars.most_common(1)[0]
    g23 = [(r["step"], r["g23"]) for r in pre if r.get("g23") is not None]
    g23_early = max(v for _, v in g23) if g23 else None
    g23_at = g23[-1][1] if g23 else None
    decline = g23_early / g23_at if g23 and g23_at and g23_at > 0 else None
    out: dict[str, Any] = {
        "path": str(t.path),
        "group": group,
        "truncated": t.truncated,
        "seeds": t.provenance.get("seeds", {}),
        "commit": (t.provenance.get("git") or {}).get("commit"),
        "grok_step": gstep,
        "grok_definition": grok_definition or "first>=0.95",
        "final_test_acc": float(acc[-1]) if len(acc) else None,
        "final_train_acc": float(t.series("eval", "train_acc")[1][-1]) if len(acc) else None,
        "n_windows": len(specs),
        "kstar_mode": kmode,
        "kstar_mode_share": kcount / len(specs),
        "R_pre_mean": float(np.mean([_ratio(r["R"]) for r in pre])),
        "R_at_grok": _ratio(pre[-1]["R"]),
        "g23_early": g23_early,
        "g23_at_grok": g23_at,
        "g23_decline": decline,
    }
    lines = [
        f"run: {t.path}",
        f"  grokking step ({out['grok_definition']}): {gstep if gstep is not None else 'did not grok'}; "
        f"final test acc {_fmt(out['final_test_acc'])}",
        f"  group {group!r}: {len(specs)} windows, k* mode {kmode} ({100 * kcount / len(specs):.0f}% of windows)",
        f"  R mean before grokking {_fmt(out['R_pre_mean'])}, at grokking {_fmt(out['R_at_grok'])}",
        f"  g23 peak before grokking {_fmt(g23_early)}, at grokking {_fmt(g23_at)}, "
        f"decline {_fmt(decline)}{'x' if decline else ''}",
    ]
    out["text"] = "\n".join(lines)
    return out


def runs_table(summaries: list[dict[str, Any]]) -> str:
    """A Markdown table of run summaries (one row per run), as ``spectral-edge inspect A B ...`` prints it."""
    rows = [
        "| run | group | grok step | final test acc | k* mode (share) | R before grok | g23 decline |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        name = os.path.basename(s["path"]).removesuffix(".gz").removesuffix(".jsonl")
        grok = s["grok_step"] if s["grok_step"] is not None else "—"
        rows.append(
            f"| {name} | {s['group']} | {grok} | {_fmt(s['final_test_acc'])} | {s['kstar_mode']} "
            f"({100 * s['kstar_mode_share']:.0f}%) | {_fmt(s['R_pre_mean'])} | {_fmt(s['g23_decline'])} |"
        )
    return "\n".join(rows)
