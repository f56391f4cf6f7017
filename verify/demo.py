"""``make demo``: the embedded default, with weight decay and without, monitored, summarised and plotted."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from numerics.atomic import atomic_write_text
from numerics.trajectory import read_trajectory
from verify.config import preset as get_preset
from verify.figures import plot_runs
from verify.runner import run_name, train_with_monitor
from verify.summary import summarise

__all__ = ["run_demo"]


def _cell(x: object, spec: str = ".3g") -> str:
    if x is None:
        return "—"
    return format(x, spec) if isinstance(x, float) else str(x)


def run_demo(
    out: str | os.PathLike[str],
    preset: str = "tiny",
    seed: int = 0,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Train ``preset`` (with validated ``overrides``) with its weight decay and with none (the control), then
    write ``report.md`` and ``demo.png`` into ``out``; returns the report path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = get_preset(preset, **dict(overrides or {})).with_seed(seed)
    conditions = {f"weight decay {base.weight_decay:g}": base, "control (weight decay 0)": base.with_overrides(
        weight_decay=0.0)}
    trajectories, walls = {}, {}
    for label, cfg in conditions.items():
        path = out / f"{run_name(cfg)}.jsonl"
        result = train_with_monitor(cfg, path, progress=progress, overwrite=True)
        trajectories[label] = read_trajectory(path)
        walls[label] = result.wall_s
    groups = base.monitor.groups
    rows = []
    for label, t in trajectories.items():
        for group in groups:
            s = summarise(t, group=group)
            rows.append(
                f"| {label} | {group} | {_cell(s['grok_step'])} | {_cell(s['final_test_acc'])} | {s['kstar_mode']} "
                f"({100 * s['kstar_mode_share']:.0f}%) | {_cell(s['R_pre_mean'])} | {_cell(s['R_at_grok'])} | "
                f"{_cell(s['g23_early'])} | {_cell(s['g23_at_grok'])} | {_cell(s['g23_decline'])} | "
                f"{walls[label]:.1f} |"
            )
    figure = plot_runs(trajectories, out / "demo.png", group="attn" if "attn" in groups else groups[0])
    cfg, tc = base, base.task_config
    text = "\n".join(
        [
            "# spectral-edge demo",
            "",
            f"Modular arithmetic ({tc.op} mod {tc.p}), {tc.n_layers}-layer transformer d={tc.d_model}, AdamW "
            f"lr {cfg.lr:g}, batch {cfg.batch_size}, seed {seed}; rolling update Gram W = {cfg.monitor.window}, "
            f"Δs = {cfg.monitor.every} steps, k* = {cfg.monitor.kstar}. Grokking step: first eval with test "
            f"accuracy ≥ {cfg.grok_threshold:g}. g23 = λ2 − λ3 (σ² units); decline = peak before grokking / value "
            "at grokking (whole run for a run that did not grok).",
            "",
            "| run | group | grok step | final test acc | k* mode | R mean before grok | R at grok | g23 peak | "
            "g23 at grok | g23 decline | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Figure: `{figure.name}`. Trajectories: " + ", ".join(f"`{t.path.name}`" for t in trajectories.values()),
            "",
            "Re-inspect any run with `spectral-edge inspect FILE --group attn`.",
            "",
        ]
    )
    return atomic_write_text(out / "report.md", text)
