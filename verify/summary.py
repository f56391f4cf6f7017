"""Per-run summary numbers re-derived from a trajectory file (never from in-memory state of the run).

The run is read through the run store (``verify.store``: typed spectrum and eval records). The g₂₃ summary
follows the author's Table-7 replication ([P] dyck_scan ``thesis_table7_replication.py``): g₂₃_early is the largest g₂₃
over windows up to the grokking step, g₂₃_grok the last window at or before it, and the decline is their ratio (≥ 1 by
construction). For a run that did not grok the whole run is used (peak / final).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from numerics.errors import TrajectoryError
from numerics.trajectory import Trajectory
from verify.report import markdown_table
from verify.stats import fmt
from verify.store import Run, load_run, run_id

__all__ = ["runs_table", "summarise"]


def summarise(
    trajectory: str | os.PathLike[str] | Trajectory | Run, group: str | None = None,
    grok_definition: str | None = None,
) -> dict[str, Any]:
    """Summary of one run: grokking step, k* (mode and share), R and g₂₃ before/at grokking, final accuracy.

    ``group=None`` takes "all" when the run recorded it, else its first recorded group (the grokking workloads
    may record only the attention weights).
    """
    run = trajectory if isinstance(trajectory, Run) else load_run(trajectory)
    if group is None:
        recorded = run.groups()
        group = "all" if "all" in recorded or not recorded else recorded[0]
    specs = run.spectra(group)
    if not specs:
        raise TrajectoryError(f"{run.path}: no spectrum records for group {group!r} (groups: "
                              f"{run.groups() or 'none'})")
    _, acc = run.eval_series("test_acc")
    gstep = run.grok_step(grok_definition)
    cutoff = gstep if gstep is not None else specs[-1].step
    pre = [r for r in specs if r.step <= cutoff] or specs[:1]
    kstars = Counter(int(r.kstar) for r in specs if r.kstar is not None)
    kmode, kcount = kstars.most_common(1)[0]
    g23 = [(r.step, r.g23) for r in pre if r.g23 is not None]
    g23_early = max(v for _, v in g23) if g23 else None
    g23_at = g23[-1][1] if g23 else None
    decline = g23_early / g23_at if g23 and g23_at and g23_at > 0 else None
    out: dict[str, Any] = {
        "path": str(run.path),
        "group": group,
        "truncated": run.trajectory.truncated,
        "seeds": run.seeds,
        "commit": (run.provenance.get("git") or {}).get("commit"),
        "grok_step": gstep,
        "grok_definition": grok_definition or "first>=0.95",
        "final_test_acc": float(acc[-1]) if len(acc) else None,
        "final_train_acc": float(run.eval_series("train_acc")[1][-1]) if len(acc) else None,
        "n_windows": len(specs),
        "kstar_mode": kmode,
        "kstar_mode_share": kcount / len(specs),
        "R_pre_mean": float(np.mean([r.R_value for r in pre])),
        "R_at_grok": pre[-1].R_value,
        "g23_early": g23_early,
        "g23_at_grok": g23_at,
        "g23_decline": decline,
    }
    lines = [
        f"run: {run.path}",
        f"  grokking step ({out['grok_definition']}): {gstep if gstep is not None else 'did not grok'}; "
        f"final test acc {fmt(out['final_test_acc'])}",
        f"  group {group!r}: {len(specs)} windows, k* mode {kmode} ({100 * kcount / len(specs):.0f}% of windows)",
        f"  R mean before grokking {fmt(out['R_pre_mean'])}, at grokking {fmt(out['R_at_grok'])}",
        f"  g23 peak before grokking {fmt(g23_early)}, at grokking {fmt(g23_at)}, "
        f"decline {fmt(decline)}{'x' if decline else ''}",
    ]
    out["text"] = "\n".join(lines)
    return out


def runs_table(summaries: list[dict[str, Any]]) -> str:
    """A Markdown table of run summaries (one row per run), as ``spectral-edge inspect A B ...`` prints it."""
    return markdown_table(
        ["run", "group", "grok step", "final test acc", "k* mode (share)", "R before grok", "g23 decline"],
        [[run_id(s["path"]), s["group"], s["grok_step"] if s["grok_step"] is not None else "—",
          fmt(s["final_test_acc"]), f"{s['kstar_mode']} ({100 * s['kstar_mode_share']:.0f}%)",
          fmt(s["R_pre_mean"]), fmt(s["g23_decline"])] for s in summaries])
