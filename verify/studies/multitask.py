"""Multi-task grokking (one trunk, a head per operation): the weight-decay phase diagram, the seed's phase portrait,
and the claims rows of the author's multi-task statements, re-derived from the stored runs (``verify/runs/multitask``
and ``verify/runs/multitask-tri``, workload :mod:`verify.tasks.multitask`).

Definitions, fixed with the criteria (``verify/criteria.toml``, ``multitask.*``) before any multi-task run existed:

* a task groks at the first eval step with its own test accuracy ≥ 0.9 (the author's per-task threshold); a run groks
  when every task does within its budget; treatment = weight decay > 0, control = weight decay 0;
* σ_j are the singular values of the monitor's update window (σ = √λ of its Gram; group ``all``, full windows w = W);
  the seed's "spectral gap" axis is σ₁ − σ₂ and "the gap opens" is measured by s = max_t (σ₁ − σ₂)/σ₁ (scale-free:
  the update size itself changes with weight decay);
* the commutator defect D is the harness's ``defect`` record (median over its batch pairs).

Rows (``claim_rows``): staggered task ordering (``multitask.staggered``), the gap opens with weight decay and never
without (``multitask.gap_opens``), non-commutativity peaks before grokking (``multitask.defect_peak``). The geometric
statements of the same papers (global trajectory dimension against per-matrix rank, integrability, execution manifolds,
the orthogonal-curvature spike and its power-law lead, holographic incompressibility, transverse fragility) have no
row yet.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verify.claims import ClaimRow
from verify.criteria import criterion
from verify.stats import cluster_bootstrap, fmt, pct
from verify.store import RUNS_ROOT, Run, load_runs

__all__ = ["RUNS_DIRS", "claim_rows", "defect_peak_step", "gap_statistic", "gaussian_gap_null", "grok_steps",
           "phase_diagram", "portrait", "task_ops"]

#: The stored-run directories (``verify/runs/<dir>``): the dual task and the tri task.
RUNS_DIRS = ("multitask", "multitask-tri")
SRC = "[S] seed research page (multi-task grokking; phase portrait); author's multitask-grokking code notes"


def task_ops(run: Run) -> tuple[str, ...]:
    """The run's operations, in head order (its task config ``ops``)."""
    return tuple(run.task_config.get("ops") or ())


def weight_decay(run: Run) -> float:
    return float(run.config.get("weight_decay", float("nan")))


def grok_steps(run: Run, acc: float = 0.9) -> dict[str, int | None]:
    """Per task, the first eval step with ``test_acc_<op>`` ≥ ``acc`` (None: never within the run)."""
    out: dict[str, int | None] = {}
    for op in task_ops(run):
        steps, values = run.eval_series(f"test_acc_{op}")
        hit = np.flatnonzero(np.asarray(values, dtype=float) >= acc)
        out[op] = int(steps[hit[0]]) if len(hit) else None
    return out


def groks(run: Run, acc: float = 0.9) -> bool:
    """Every task groks within the run."""
    steps = grok_steps(run, acc)
    return bool(steps) and all(s is not None for s in steps.values())


def _full_sigmas(run: Run, group: str = "all") -> list[tuple[int, np.ndarray]]:
    W = int(run.meta.get("window", 0))
    return [(r.step, np.asarray(r.sigma, dtype=float)) for r in run.spectra(group)
            if r.w == W and r.sigma is not None and len(r.sigma) >= 2]


def relative_gap(sigma: np.ndarray) -> float:
    """(σ₁ − σ₂)/σ₁ ∈ [0, 1] of one window (σ sorted descending); 0 for an all-zero window."""
    return float((sigma[0] - sigma[1]) / sigma[0]) if sigma[0] > 0 else 0.0


def gap_statistic(run: Run, group: str = "all") -> float | None:
    """s = max over the run's full windows of (σ₁ − σ₂)/σ₁ (None without a full window)."""
    sig = _full_sigmas(run, group)
    return max(relative_gap(s) for _, s in sig) if sig else None


def gaussian_gap_null(W: int, P: int, *, reps: int = 20, seed: int = 0) -> tuple[float, float]:
    """Mean and maximum over ``reps`` draws of (σ₁ − σ₂)/σ₁ for a window of W i.i.d. N(0, 1) update vectors of
    length P (at most 2·10⁵ coordinates are drawn; beyond, the statistic only shrinks, as O(1/√P))."""
    rng = np.random.default_rng(seed)
    p = min(P, 200_000)
    vals = [relative_gap(np.linalg.svd(rng.standard_normal((W, p)), compute_uv=False)) for _ in range(reps)]
    return float(np.mean(vals)), float(np.max(vals))


def defect_peak_step(run: Run) -> int | None:
    """The step of the largest defect record (None without finite defect records)."""
    recs = [r for r in run.defects() if math.isfinite(r.D)]
    return max(recs, key=lambda r: r.D).step if recs else None


# --- rows ---------------------------------------------------------------------------------------------------------


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def _first_task(steps: dict[str, int | None]) -> str | None:
    """The task that groks strictly before every other one (None on a tie or a task that never groks)."""
    if any(s is None for s in steps.values()):
        return None
    ordered = sorted(steps.items(), key=lambda kv: kv[1])  # type: ignore[arg-type, return-value]
    return ordered[0][0] if len(ordered) == 1 or ordered[0][1] < ordered[1][1] else None


def staggered_row(runs: Sequence[Run]) -> ClaimRow:
    c = criterion("multitask.staggered")
    prm = c.params
    claim = "Weight decay drives staggered task ordering: the tasks grok one after another, in a consistent order"
    claimed = "staggered ordering (seed portrait: ModMul at step 16300, then ModAdd at 16400)"
    sets: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:
        if weight_decay(r) > 0 and groks(r, prm["grok_acc"]):
            sets.setdefault(task_ops(r), []).append(r)
    per_set, ok, scored = {}, [], 0
    for ops, rs in sorted(sets.items()):
        firsts = [_first_task(grok_steps(r, prm["grok_acc"])) for r in rs]
        counts = Counter(f for f in firsts if f is not None)
        top, k = counts.most_common(1)[0] if counts else (None, 0)
        n = len(rs)
        p = min(1.0, len(ops) * _binomial_tail(k, n, 1 / len(ops))) if n else 1.0
        gaps = [max(s for s in grok_steps(r, prm["grok_acc"]).values()) - min(grok_steps(r, prm["grok_acc"]).values())
                for r in rs]
        per_set["+".join(ops)] = {"runs": n, "first": top, "share": k / n if n else None, "p": p,
                                  "counts": dict(counts), "ties": firsts.count(None), "median_stagger": float(
                                      np.median(gaps)) if gaps else None}
        if n >= prm["min_runs"]:
            scored += 1
            ok.append(k / n >= prm["share_min"] and p < prm["alpha"])
    controls = [r for r in runs if weight_decay(r) == 0]
    ctrl_grok = sum(groks(r, prm["grok_acc"]) for r in controls)
    measured = "; ".join(f"{name}: {v['first']} first in {v['share'] and pct(v['share'])} of {v['runs']} runs "
                         f"(p = {fmt(v['p'])}, ties {v['ties']}, median stagger {fmt(v['median_stagger'])} steps)"
                         for name, v in per_set.items()) or "no weight-decay run in which every task grokked"
    verdict = "INCONCLUSIVE" if not scored else ("PASS" if all(ok) else "FAIL")
    why = (f"no task set has {prm['min_runs']} grokking weight-decay runs" if not scored else c.text)
    return ClaimRow(claim, SRC, "seed", claimed, measured, verdict, why, {"sets": per_set},
                    plot=_phase_plot(runs, prm["grok_acc"]) if runs else None,
                    control=f"weight decay 0: {ctrl_grok}/{len(controls)} runs grok every task (the ordering needs "
                            "grokking runs; the control says whether weight decay is what brings them)",
                    null="chance ordering: a given task first with probability 1/n_tasks (binomial, ×n_tasks for "
                         "picking the task): p per set above", criterion="multitask.staggered")


def gap_row(runs: Sequence[Run]) -> ClaimRow:
    c = criterion("multitask.gap_opens")
    prm = c.params
    claim = "With weight decay the spectral gap opens; without, it never opens"
    claimed = "the gap σ₁ − σ₂ opens in the weight-decay run and never in the no-weight-decay run (same seed)"
    treat = [(r, gap_statistic(r)) for r in runs if weight_decay(r) > 0 and groks(r, prm["grok_acc"])]
    ctrl = [(r, gap_statistic(r)) for r in runs if weight_decay(r) == 0]
    treat = [(r, s) for r, s in treat if s is not None]
    ctrl = [(r, s) for r, s in ctrl if s is not None]
    details: dict[str, Any] = {"treated": {r.id: s for r, s in treat}, "controls": {r.id: s for r, s in ctrl}}
    if len(treat) < prm["min_runs"] or len(ctrl) < prm["min_runs"]:
        return ClaimRow(claim, SRC, "seed", claimed, f"{len(treat)} grokking weight-decay runs, {len(ctrl)} controls",
                        "INCONCLUSIVE", f"needs {prm['min_runs']} runs in each group", details,
                        criterion="multitask.gap_opens")
    st, sc = np.array([s for _, s in treat]), np.array([s for _, s in ctrl])
    opened_t, opened_c = float(np.mean(st >= prm["open_min"])), float(np.mean(sc >= prm["open_min"]))
    units = [(1, s) for s in st] + [(0, s) for s in sc]

    def diff(sample: Sequence[tuple[int, float]]) -> float:
        a = [s for g, s in sample if g == 1]
        b = [s for g, s in sample if g == 0]
        return float(np.mean(a) - np.mean(b)) if a and b else float("nan")

    lo, hi = cluster_bootstrap(units, diff, reps=int(prm["boot_reps"]))
    first = treat[0][0]
    W, P = int(first.meta.get("window", 10)), int(first.meta.get("n_params", 0) or _n_params(first))
    null_mean, null_max = gaussian_gap_null(W, P)
    ok = opened_t >= prm["share_min"] and opened_c <= prm["control_max"] and lo > 0
    details.update(open_share_treated=opened_t, open_share_controls=opened_c, diff_ci=(lo, hi),
                   null_mean=null_mean, null_max=null_max)
    measured = (f"s = max (σ₁ − σ₂)/σ₁: grokking wd > 0 {fmt(float(np.mean(st)))} (opened {pct(opened_t)} of "
                f"{len(st)}), wd 0 {fmt(float(np.mean(sc)))} (opened {pct(opened_c)} of {len(sc)}); difference "
                f"{fmt(float(np.mean(st) - np.mean(sc)))} [95% {fmt(lo)}, {fmt(hi)}]")
    return ClaimRow(claim, SRC, "seed", claimed, measured, "PASS" if ok else "FAIL", c.text, details,
                    plot=_gap_plot(treat, ctrl, prm["open_min"]),
                    control=f"weight decay 0 (same seeds): mean s {fmt(float(np.mean(sc)))}, opened {pct(opened_c)}",
                    null=f"i.i.d. Gaussian windows, W = {W}, P = {P}: mean s {fmt(null_mean)}, max {fmt(null_max)}",
                    criterion="multitask.gap_opens")


def _n_params(run: Run) -> int:
    """P of the run's 'all' group from its first spectrum record's layout, else the task config's model size."""
    sizes = (run.meta.get("groups") or {}).get("all") if isinstance(run.meta.get("groups"), dict) else None
    if isinstance(sizes, dict) and "size" in sizes:
        return int(sizes["size"])
    import torch  # local: only when the file does not say P

    from verify.harness.config import RunConfig  # local: as torch, only when the file does not say P
    from verify.tasks import get_task  # local: as torch

    cfg = RunConfig.model_validate(run.config)
    model = get_task(cfg.task).build_model(cfg.task_config, torch.Generator().manual_seed(0), "meta")
    return int(sum(p.numel() for p in model.parameters()))


def defect_row(runs: Sequence[Run]) -> ClaimRow:
    c = criterion("multitask.defect_peak")
    prm = c.params
    claim = "Non-commutativity peaks before grokking (then the trajectory crosses into the alignment quadrant)"
    claimed = "defect peak at step 15200, before ModMul (16300) and ModAdd (16400) grok"
    info: dict[str, Any] = {}
    for r in runs:
        if weight_decay(r) > 0 and groks(r, prm["grok_acc"]) and r.defects():
            first = min(s for s in grok_steps(r, prm["grok_acc"]).values() if s is not None)
            peak = defect_peak_step(r)
            steps = [d.step for d in r.defects()]
            info[r.id] = {"peak": peak, "first_grok": first, "before": peak is not None and peak < first,
                          "null_share": sum(s < first for s in steps) / len(steps)}
    if len(info) < prm["min_runs"]:
        return ClaimRow(claim, SRC, "seed", claimed, f"{len(info)} grokking weight-decay runs with defect records",
                        "INCONCLUSIVE", f"needs {prm['min_runs']}", {"runs": info}, criterion="multitask.defect_peak")
    share = float(np.mean([v["before"] for v in info.values()]))
    null = float(np.mean([v["null_share"] for v in info.values()]))
    ok = share >= prm["share_min"] and share - null >= prm["margin"]
    ctrl = [r for r in runs if weight_decay(r) == 0 and r.defects()]
    ctrl_peaks = [defect_peak_step(r) for r in ctrl]
    measured = (f"peak before the first task groks in {pct(share)} of {len(info)} runs; lead (first grok − peak) "
                f"median {fmt(float(np.median([v['first_grok'] - v['peak'] for v in info.values()])))} steps")
    return ClaimRow(claim, SRC, "seed", claimed, measured, "PASS" if ok else "FAIL", c.text, {"runs": info},
                    plot=portrait(runs),
                    control=f"weight decay 0 ({len(ctrl)} runs): defect peaks at steps {ctrl_peaks} (they never grok)",
                    null=f"time shuffle: expected share {pct(null)} (fraction of defect records before the first grok)",
                    criterion="multitask.defect_peak")


def claim_rows(runs_root: str | os.PathLike[str] = RUNS_ROOT) -> list[ClaimRow]:
    """The multi-task rows on ``runs_root/multitask`` and ``runs_root/multitask-tri`` (INCONCLUSIVE rows without
    runs)."""
    runs = load_runs([Path(runs_root) / d for d in RUNS_DIRS], missing_ok=True)
    return [staggered_row(runs), gap_row(runs), defect_row(runs)]


# --- figures --------------------------------------------------------------------------------------------------------


def phase_diagram(fig: Any, runs: Sequence[Run], acc: float = 0.9) -> None:
    """Per task set, each task's grok step against weight decay (one marker per seed); runs where a task never groks
    sit on the 'never' line above the budget."""
    sets = sorted({task_ops(r) for r in runs})
    for i, ops in enumerate(sets):
        ax = fig.add_subplot(1, len(sets), i + 1)
        rs = [r for r in runs if task_ops(r) == ops]
        wds = sorted({weight_decay(r) for r in rs})
        budget = max((r.final_step or 0) for r in rs) or 1
        never = budget * 1.15
        for j, op in enumerate(ops):
            xs, ys = [], []
            for r in rs:
                s = grok_steps(r, acc)[op]
                xs.append(wds.index(weight_decay(r)) + (j - (len(ops) - 1) / 2) * 0.12)
                ys.append(never if s is None else s)
            ax.scatter(xs, ys, label=op, s=22, alpha=0.8)
        ax.axhline(never, color="grey", ls=":", lw=0.8)
        ax.text(0.01, never, "never", va="bottom", fontsize=7, color="grey", transform=ax.get_yaxis_transform())
        ax.set_xticks(range(len(wds)), [f"{w:g}" for w in wds])
        ax.set_xlim(-0.5, len(wds) - 0.5)
        ax.set_xlabel("weight decay")
        ax.set_ylabel(f"grok step (test acc ≥ {acc})")
        ax.set_title("+".join(ops), fontsize=9)
        ax.legend(fontsize=7)


def _phase_plot(runs: Sequence[Run], acc: float) -> Any:
    def plot(fig: Any) -> None:
        phase_diagram(fig, runs, acc)

    return plot


def _gap_plot(treat: Sequence[tuple[Run, float]], ctrl: Sequence[tuple[Run, float]], open_min: float) -> Any:
    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for label, pairs, colour in (("weight decay > 0, grokked", treat, "C0"), ("weight decay 0", ctrl, "C3")):
            for k, (r, _) in enumerate(pairs):
                sig = _full_sigmas(r)
                ax.plot([s for s, _ in sig], [relative_gap(v) for _, v in sig], color=colour, lw=0.8, alpha=0.6,
                        label=label if k == 0 else None)
        ax.axhline(open_min, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("(σ₁ − σ₂)/σ₁ (all parameters)")
        ax.legend(fontsize=7)

    return plot


def portrait(runs: Sequence[Run], acc: float = 0.9) -> Any:
    """The seed's phase portrait on one grokking weight-decay run (the dual task, seed 42 where stored): σ₁ − σ₂
    against the defect D, coloured by step (left) and by the lowest task accuracy (right), with the competition zone
    (σ₂ ≥ 0.9 σ₁), the defect peak and each task's grok step marked."""
    cands = sorted((r for r in runs if weight_decay(r) > 0 and r.defects() and groks(r, acc)),
                   key=lambda r: (len(task_ops(r)), r.seed != 42, -weight_decay(r), r.id))

    def plot(fig: Any) -> None:
        if not cands:
            fig.text(0.5, 0.5, "no grokking weight-decay run with defect records", ha="center")
            return
        run = cands[0]
        sig = _full_sigmas(run)
        d = run.defects()
        d_steps = np.array([x.step for x in d])
        steps = np.array([s for s, _ in sig])
        keep = steps >= d_steps[0]
        steps = steps[keep]
        gap = np.array([v[0] - v[1] for _, v in sig])[keep]
        comp = np.array([v[1] >= 0.9 * v[0] for _, v in sig])[keep]
        D = np.array([x.D for x in d])[np.searchsorted(d_steps, steps, side="right") - 1]
        e_steps = None
        accs = []
        for op in task_ops(run):
            e_steps, a = run.eval_series(f"test_acc_{op}")
            accs.append(np.asarray(a, dtype=float))
        low = np.min(np.vstack(accs), axis=0) if accs else np.zeros(1)
        low_at = low[np.clip(np.searchsorted(np.asarray(e_steps), steps, side="right") - 1, 0, None)]
        peak = defect_peak_step(run)
        marks = {f"{op} groks": s for op, s in grok_steps(run, acc).items() if s is not None}
        for i, (colour, label, cmap) in enumerate(((steps, "step", "viridis"), (low_at, "lowest task test acc",
                                                                                 "plasma"))):
            ax = fig.add_subplot(1, 2, i + 1)
            ax.plot(gap, D, color="lightgrey", lw=0.6, zorder=0)
            sc = ax.scatter(gap, D, c=colour, cmap=cmap, s=12, zorder=1)
            ax.scatter(gap[comp], D[comp], facecolors="none", edgecolors="k", s=30, lw=0.5,
                       label="competition zone (σ₂ ≥ 0.9 σ₁)")
            for name, s in {"defect peak": peak, **marks}.items():
                j = int(np.argmin(np.abs(steps - s))) if s is not None else None
                if j is not None:
                    ax.annotate(f"{name} ({s})", (gap[j], D[j]), fontsize=6, xytext=(4, 4),
                                textcoords="offset points")
            ax.set_xlabel("σ₁ − σ₂ (all parameters)")
            ax.set_ylabel("commutator defect D")
            ax.set_yscale("log")
            fig.colorbar(sc, ax=ax, label=label)
            if i == 0:
                ax.legend(fontsize=6)
        fig.suptitle(run.id, fontsize=8)

    return plot
