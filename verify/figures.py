"""Figures of trajectories: accuracy and the spectral quantities against optimizer steps (``plot_runs``), the
phase portrait in the (spectral gap, commutator defect) plane (``phase_portrait``), and one figure per claims row
(``claim_figure``, given the row's drawing callable, e.g. ``verify.claims.draw("draw_box", ...)``).

Runs are given as parsed trajectories or as run-store runs (``verify.store.Run``, e.g. ``load_stored(name).runs``).
Importing this module imports matplotlib; the claims kernel and the studies reach it only when a figure is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from numerics.atomic import atomic_path
from numerics.errors import TrajectoryError
from numerics.trajectory import Trajectory
from verify.grokking import grok_step
from verify.store import Run

__all__ = [
    "claim_figure",
    "draw_bars",
    "draw_box",
    "draw_forecast",
    "draw_hist",
    "draw_scatter",
    "phase_points",
    "phase_portrait",
    "plot_runs",
]


def _trajectory(run: Trajectory | Run) -> Trajectory:
    return run.trajectory if isinstance(run, Run) else run


def plot_runs(runs: Mapping[str, Trajectory | Run], path: str | os.PathLike[str], group: str = "attn") -> Path:
    """Four panels per run set: test/train accuracy, gap ratio R, g₂₃ (log scale), and k*, against steps.

    The grokking step (registry default) of each run is marked with a dotted vertical line.
    """
    # A bare Figure (no pyplot) renders headless without switching the global backend, so notebooks that
    # import this module keep inline figures.
    fig = Figure(figsize=(8, 10), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, run), color in zip(runs.items(), colors, strict=False):
        t = _trajectory(run)
        steps, test = t.series("eval", "test_acc")
        _, train = t.series("eval", "train_acc")
        axes[0].plot(steps, test, color=color, label=f"{label}: test")
        axes[0].plot(steps, train, color=color, ls="--", alpha=0.6, label=f"{label}: train")
        s, r = t.series("spectrum", "R", group)
        axes[1].plot(s, r, color=color, label=label)
        s, g23 = t.series("spectrum", "g23", group)
        ok = np.isfinite(g23) & (g23 > 0)
        axes[2].semilogy(s[ok], g23[ok], color=color, label=label)
        s, k = t.series("spectrum", "kstar", group)
        axes[3].step(s, k, where="post", color=color, label=label)
        gs = grok_step(steps, test) if len(steps) else None
        if gs is not None:
            for ax in axes:
                ax.axvline(gs, color=color, ls=":", lw=1)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8, ncol=2)
    axes[1].set_ylabel(r"$R=\sigma_{k^*}/\sigma_{k^*+1}$")
    axes[2].set_ylabel(r"$g_{23}=\lambda_2-\lambda_3$")
    axes[3].set_ylabel(r"$k^*$")
    axes[3].set_xlabel("optimizer step")
    axes[3].yaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title(f"rolling update-Gram spectrum, group '{group}' (dotted: grokking step)")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)


def _latest_before(steps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index into sorted ``steps`` of the last entry ≤ each of ``at`` (−1 where there is none)."""
    return np.searchsorted(steps, at, side="right") - 1


def _log_helps(x: np.ndarray) -> bool:
    """A log axis helps when every value is positive and they span more than a decade."""
    x = x[np.isfinite(x)]
    return bool(len(x)) and bool(np.all(x > 0)) and float(x.max() / x.min()) > 10.0


def phase_points(run: Trajectory | Run, group: str = "attn") -> dict[str, np.ndarray]:
    """The phase-portrait points of one run: per spectrum record of ``group`` (falls back to ``all``), its step,
    gap g = σ_{k*} − σ_{k*+1}, the median commutator defect D of the latest ``defect`` record at or before that step,
    and the test accuracy of the latest ``eval`` record at or before it (NaN if none).

    Spectrum records before the first defect record, and degenerate ones (no g), are dropped. Raises
    ``TrajectoryError`` naming the file when the run has no ``defect`` records (train with ``defect.every``), no
    spectrum records of the group, or no point where both are known.
    """
    t = _trajectory(run)
    groups = t.groups()
    if not groups:
        raise TrajectoryError(f"{t.path}: no spectrum records; cannot draw a phase portrait")
    g_name = group if group in groups else ("all" if "all" in groups else groups[0])
    d_steps, d_vals = t.series("defect", "D")
    ok = np.isfinite(d_vals)
    d_steps, d_vals = d_steps[ok], d_vals[ok]
    if not len(d_steps):
        raise TrajectoryError(f"{t.path}: no commutator-defect ('defect') records; the phase portrait needs a run "
                              "trained with the defect on (e.g. --set defect.every=50)")
    s_steps, gap = t.series("spectrum", "g", g_name)
    keep = np.isfinite(gap)
    s_steps, gap = s_steps[keep], gap[keep]
    idx = _latest_before(d_steps, s_steps)
    keep = idx >= 0
    if not keep.any():
        raise TrajectoryError(f"{t.path}: no spectrum record of group {g_name!r} at or after the first defect record")
    s_steps, gap, D = s_steps[keep], gap[keep], d_vals[idx[keep]]
    e_steps, acc = t.series("eval", "test_acc")
    e_idx = _latest_before(e_steps, s_steps)
    test_acc = np.where(e_idx >= 0, acc[np.maximum(e_idx, 0)] if len(acc) else np.nan, np.nan)
    return {"step": s_steps, "g": gap, "D": D, "test_acc": test_acc, "group": np.asarray(g_name)}


def phase_portrait(runs: Mapping[str, Trajectory | Run], path: str | os.PathLike[str], group: str = "attn") -> Path:
    """Each run's trajectory in the (spectral gap g, commutator defect D) plane, written as a PNG to ``path``.

    x: g = σ_{k*} − σ_{k*+1} of the rolling update-Gram spectrum (group ``group``); y: the median commutator defect
    D of the latest ``defect`` record at or before the spectrum step. Two panels: points coloured by optimizer step
    and by test accuracy; one marker per run (in legend order: circle, triangle, square, ...) joined by a thin line
    in the run's colour; a hollow black ring marks the start, a star the grokking step (first point at or after it).
    Axes are logarithmic where all values are positive and span more than a factor of 10. Raises
    ``TrajectoryError`` naming the file for a run without defect records (never a silently empty figure).
    """
    if not runs:
        raise ValueError("phase_portrait needs at least one run")
    points = {label: phase_points(t, group) for label, t in runs.items()}
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = ["o", "^", "s", "D", "v", "P", "X"]
    all_steps = np.concatenate([p["step"] for p in points.values()])
    step_norm = mpl.colors.Normalize(vmin=float(all_steps.min()), vmax=float(all_steps.max()))
    acc_norm = mpl.colors.Normalize(vmin=0.0, vmax=1.0)
    panels = ((axes[0], "step", "viridis", step_norm, "optimizer step"),
              (axes[1], "test_acc", "plasma", acc_norm, "test accuracy"))
    for i, (label, p) in enumerate(points.items()):
        color, marker = colors[i % len(colors)], markers[i % len(markers)]
        e_steps, acc = _trajectory(runs[label]).series("eval", "test_acc")
        gs = grok_step(e_steps, acc) if len(e_steps) else None
        at_grok = np.nonzero(p["step"] >= gs)[0] if gs is not None else np.array([], dtype=int)
        for ax, key, cmap, norm, _ in panels:
            ax.plot(p["g"], p["D"], color=color, lw=0.8, alpha=0.6, zorder=1)
            ax.scatter(p["g"], p["D"], c=p[key], cmap=cmap, norm=norm, marker=marker, s=36, edgecolors=color,
                       linewidths=0.8, zorder=2, label=f"{label} (group {p['group']})")
            ax.scatter(p["g"][:1], p["D"][:1], s=140, facecolors="none", edgecolors="k", linewidths=1.2, zorder=3)
            if len(at_grok):
                j = at_grok[0]
                ax.scatter(p["g"][j:j + 1], p["D"][j:j + 1], marker="*", s=260, facecolors="none",
                           edgecolors="k", linewidths=1.2, zorder=3)
    xs = np.concatenate([p["g"] for p in points.values()])
    ys = np.concatenate([p["D"] for p in points.values()])
    for ax, _key, cmap, norm, title in panels:
        # Minor tick labels crowd a log axis that spans only a decade or two.
        if _log_helps(xs):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if _log_helps(ys):
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(r"spectral gap $g=\sigma_{k^*}-\sigma_{k^*+1}$ (update-Gram, $\sigma$ units)")
        ax.set_title(f"coloured by {title}")
        fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=title)
    axes[0].set_ylabel("commutator defect D (median over batch pairs)")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"phase portrait, group '{group}' (ring: first point; star: grokking step)")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)


def claim_figure(draw: Callable[[Figure], None], path: str | os.PathLike[str], *, title: str = "",
                 verdict: str = "") -> Path:
    """One claims row's figure: ``draw(fig)`` fills a bare 6.4 × 4.4 in ``Figure`` (it adds its own axes), the row's
    claim and verdict become the title, and the PNG is written atomically to ``path``."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    draw(fig)
    if not fig.axes:
        raise ValueError(f"claim figure {title!r}: the drawing callable added no axes")
    fig.suptitle(f"{title} [{verdict}]" if verdict else title, fontsize=9)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return Path(path)


# --- drawing callables for claims rows (each adds its own axes to a bare Figure) -----------------------------------


def _finite(x: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in x], dtype=float)
    return a[np.isfinite(a)]


def _symlog_threshold(*xs: np.ndarray) -> float:
    """Linear range of a symlog axis: the 5th percentile of the non-zero magnitudes (so most points are logged)."""
    a = np.abs(np.concatenate([x[np.isfinite(x)] for x in xs]))
    a = a[a > 0]
    return float(np.percentile(a, 5)) if len(a) else 1.0


def draw_scatter(fig: Figure, x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *,
                 groups: Sequence[str] | None = None, xlabel: str = "", ylabel: str = "",
                 quadrants: bool = False) -> None:
    """y against x, one colour per distinct ``groups`` label; symlog axes when the values span decades of both
    signs; ``quadrants``: lines at 0 (sign agreement = points in the first and third quadrants)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ax = fig.add_subplot()
    labels = list(groups) if groups is not None else [""] * len(xa)
    for name in sorted(set(labels)):
        m = np.asarray([g == name for g in labels], dtype=bool)
        ax.scatter(xa[m], ya[m], s=12, alpha=0.6, label=name or None)
    for a, setter, axis in ((xa, ax.set_xscale, ax.xaxis), (ya, ax.set_yscale, ax.yaxis)):
        f = a[np.isfinite(a)]
        if len(f) and (f.min() < 0 < f.max() or _log_helps(np.abs(f[f != 0]))):
            setter("symlog", linthresh=_symlog_threshold(a))
            # a label on every decade crowds a symlog axis spanning many of them: about 7 labelled ticks
            locator = mpl.ticker.SymmetricalLogLocator(linthresh=_symlog_threshold(a), base=10)
            locator.set_params(numticks=7)
            axis.set_major_locator(locator)
            axis.set_minor_formatter(NullFormatter())
    if quadrants:
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if any(labels):
        ax.legend(fontsize=7)


def draw_box(fig: Figure, data: Mapping[str, Sequence[float]], *, ylabel: str = "", log: bool = False,
             hlines: Sequence[float] = ()) -> None:
    """One box (with the points jittered on top) per label; ``hlines`` mark claimed thresholds."""
    ax = fig.add_subplot()
    vals = [_finite(v) for v in data.values()]
    ax.boxplot(vals, showfliers=False)
    ax.set_xticks(range(1, len(vals) + 1), list(data), fontsize=8)
    rng = np.random.default_rng(0)  # jitter only: fixed, so the figure is reproducible
    for i, v in enumerate(vals, start=1):
        ax.scatter(i + 0.08 * rng.standard_normal(len(v)), v, s=10, alpha=0.6)
    if log and all(len(v) and np.all(v > 0) for v in vals):
        ax.set_yscale("log")
    for h in hlines:
        ax.axhline(h, color="k", ls="--", lw=0.8)
    ax.set_ylabel(ylabel)


def draw_hist(fig: Figure, values: Sequence[float], *, xlabel: str = "", log: bool = False,
              vlines: Sequence[float] = (), discrete: bool = False) -> None:
    """Histogram (integer bins for ``discrete``; log-spaced bins for ``log``); ``vlines`` mark thresholds."""
    ax = fig.add_subplot()
    v = _finite(values)
    if discrete:
        bins = np.arange(v.min() - 0.5, v.max() + 1.5) if len(v) else 10
    elif log and len(v) and np.all(v > 0) and v.max() > v.min():
        bins = np.geomspace(v.min(), v.max(), 30)
        ax.set_xscale("log")
    else:
        bins = 30
    ax.hist(v, bins=bins)
    for x in vlines:
        ax.axvline(x, color="k", ls="--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


def draw_bars(fig: Figure, labels: Sequence[str], means: Sequence[float], errors: Sequence[float] | None = None, *,
              ylabel: str = "", log: bool = False, band: tuple[float, float] | None = None) -> None:
    """Bars with optional error bars (e.g. the α ordering: mean ± sd over runs); ``band`` shades a claimed range."""
    ax = fig.add_subplot()
    if band is not None:
        ax.axhspan(*band, color="0.85", zorder=0, label="claimed")
        ax.legend(fontsize=7)
    ax.bar(range(len(labels)), means, yerr=errors, capsize=4)
    ax.set_xticks(range(len(labels)), list(labels), fontsize=8)
    if log and all(m > 0 for m in means):
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)


def draw_forecast(fig: Figure, scorers: Sequence[tuple[str, float, float, float]],
                  reliability: Sequence[tuple[float, float, float]]) -> None:
    """Left: run-level AUROC with its 95 % interval per scorer (``(name, auroc, lo, hi)``; 0.5 = chance). Right: the
    reliability diagram of the forecast probability (``(mean forecast, observed frequency, weight)`` per bin)."""
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    names = [s[0] for s in scorers]
    y = np.arange(len(names))[::-1]
    a = np.array([s[1] for s in scorers], float)
    lo, hi = np.array([s[2] for s in scorers], float), np.array([s[3] for s in scorers], float)
    ax1.errorbar(a, y, xerr=[np.nan_to_num(a - lo), np.nan_to_num(hi - a)], fmt="o", color="C0", capsize=3)
    ax1.axvline(0.5, color="grey", ls=":", lw=1)
    ax1.axvline(0.95, color="C3", ls="--", lw=1, label="target 0.95")
    ax1.set_yticks(y, names, fontsize=8)
    ax1.set_xlim(0, 1.02)
    ax1.set_xlabel("run-level AUROC (held-out)")
    ax1.legend(fontsize=8, loc="lower left")
    if reliability:
        p, o, w = (np.array(v, float) for v in zip(*reliability, strict=True))
        ax2.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax2.scatter(p, o, s=20 + 400 * w / w.max(), color="C1", zorder=3)
        ax2.plot(p, o, color="C1", lw=1)
    ax2.set_xlim(0, 1)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("forecast P(groks by 1.5·t)")
    ax2.set_ylabel("observed frequency")
    ax2.set_title("reliability (size: run weight)", fontsize=9)
