"""Figures of trajectories: accuracy and the spectral quantities against optimizer steps."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from numerics.atomic import atomic_path
from numerics.trajectory import Trajectory

__all__ = ["plot_runs"]


def plot_runs(runs: Mapping[str, Trajectory], path: str | os.PathLike[str], group: str = "attn") -> Path:
    """Four panels per run set: test/train accuracy, gap ratio R, g₂₃ (log scale), and k*, against steps.

    The grokking step (registry default) of each run is marked with a dotted vertical line.
    """
    from verify.grokking import grok_step

    # A bare Figure (no pyplot) renders headless without switching the global backend, so notebooks that
    # import this module keep inline figures.
    fig = Figure(figsize=(8, 10), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, t), color in zip(runs.items(), colors, strict=False):
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
