"""The causal intervention rows (helper module of ``verify.studies.causal``, whose :func:`claim_rows` this is).

The claims ([S] seed research page; [P] the author's intervention experiments): amplifying the commutator direction
accelerates grokking by 32–50 % and suppressing it slows (SCAN 2.3×, Dyck about 1.5×) or prevents it; motion along
the dominant (trajectory-PCA) subspace is necessary for generalisation; suppressing the gradient component orthogonal
to that subspace prevents grokking.

Layout of the stored runs: ``runs_root/causal/{workload}-{arm}`` (treated) and ``…-{arm}-ctl`` (the same
intervention of equal norm along a random subspace, ``CausalConfig.control``), one run per seed; the untreated runs
are the workload's plain runs of the same code, config and seed (:data:`WORKLOADS`; mod-97: the weight-decay-1 runs
of ``runs_root/edge``, whose ``edge`` measurement never changes training). Arms (criteria ``causal.*`` of
``verify/criteria.toml``, fixed before any intervention run existed):

* ``kick``: kick along the commutator direction δ, s = 0.5 (``causal.defect_amplify``);
* ``noise``: noise of half the optimizer step's norm along δ, s = 0.5 (``causal.defect_amplify_noise``, the author's
  1A-noise; fixed 2026-12-03, after the other four had been scored and before any of its runs);
* ``csup``: remove the gradient's component along δ, s = 1 (``causal.defect_suppress``);
* ``along``: remove the gradient's component in the top-2 trajectory-PCA subspace (``causal.subspace_necessary``);
* ``orth``: remove the gradient's component orthogonal to it (``causal.orthogonal_suppression``).

Per seed: u = the untreated grok step, budget b = ``budget_factor``·u; the treated (control) grok step t (c) is
censored at b when the run has not grokked by then ("prevented", a lower bound on the slow-down); ratios t/u and
t/c (dimensionless). Per workload: the geometric mean of each ratio over seeds and its 95 % seed-bootstrap
interval (``verify.stats.cluster_bootstrap`` of the log ratios). A seed whose untreated run never grokked has no
ratio and is left out (reported).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verify.claims import ClaimRow
from verify.criteria import criterion
from verify.grokking import first_crossing
from verify.stats import cluster_bootstrap, fmt, pct
from verify.store import RUNS_ROOT, Run, load_runs
from verify.store.runs import recorded_weight_decay

__all__ = ["ARMS", "WORKLOADS", "ArmResult", "SeedOutcome", "Workload", "arm_results", "claim_rows"]

SRC = "[S] seed research page (causal tests); [P] the author's intervention experiments (1A-kick, 1B-project)"
CAUSAL_DIR = "causal"


def _grok_default(run: Run) -> int | None:
    return run.grok_step()


def _grok_series(name: str, threshold: float = 0.9) -> Callable[[Run], int | None]:
    def grok(run: Run) -> int | None:
        steps, acc = run.eval_series(name)
        return first_crossing(steps, acc, threshold) if len(steps) else None
    return grok


@dataclass(frozen=True)
class Workload:
    """One workload of the causal rows: where its untreated runs live and which of them count (``op``, weight
    decay), and its grokking step (mod-97: the harness default; Dyck-1: sequence accuracy ≥ 0.9; SCAN: exact match
    ≥ 0.9, as the criteria fix)."""

    name: str
    label: str
    untreated: str
    op: str | None
    weight_decay: float
    grok: Callable[[Run], int | None]

    def is_untreated(self, run: Run) -> bool:
        return (self.op is None or run.setting("op") == self.op) and recorded_weight_decay(run) == self.weight_decay


WORKLOADS: tuple[Workload, ...] = (
    Workload("mod97", "mod-97 addition", "edge", "add", 1.0, _grok_default),
    Workload("dyck", "Dyck-1", f"{CAUSAL_DIR}/dyck-untreated", None, 1.0, _grok_series("test_seq_acc")),
    Workload("scan", "SCAN", f"{CAUSAL_DIR}/scan-untreated", None, 1.0, _grok_series("test_acc")),
)

#: criterion id → (arm folder name, the claimed statement, what was claimed in numbers).
ARMS: dict[str, tuple[str, str, str]] = {
    "causal.defect_amplify": ("kick", "Amplifying the commutator direction accelerates grokking",
                              "32–50 % faster (SCAN 1A-noise 32 %, Dyck 1A-kick 50 %, 1A-noise 40 %)"),
    "causal.defect_amplify_noise": ("noise", "Amplifying the commutator direction accelerates grokking (noise variant)",
                                    "32–40 % faster (SCAN 1A-noise 32 %, Dyck 1A-noise 40 %)"),
    "causal.defect_suppress": ("csup", "Suppressing the commutator direction slows or prevents grokking",
                               "SCAN 2.3× slower, Dyck about 50 % slower or prevented"),
    "causal.subspace_necessary": ("along", "Motion along the dominant subspace is necessary for generalisation",
                                  "removing the gradient's component in the top trajectory directions prevents or "
                                  "slows grokking"),
    "causal.orthogonal_suppression": ("orth", "Suppressing the orthogonal gradient component prevents grokking",
                                      "prevented when the gradient is confined to the trajectory subspace"),
}


@dataclass(frozen=True)
class SeedOutcome:
    """One seed of one arm: untreated grok step u, budget b, and the treated / control grok steps (None: not
    grokked by the end of the run) with the steps the runs reached."""

    seed: int
    untreated: int
    budget: int
    treated: int | None
    treated_final: int
    control: int | None
    control_final: int | None

    @staticmethod
    def _censored(grok: int | None, final: int | None, budget: int) -> float | None:
        """The grok step censored at the budget; None when the run stopped before its budget without grokking."""
        if grok is not None and grok <= budget:
            return float(grok)
        return float(budget) if (final or 0) >= budget else None

    @property
    def t(self) -> float | None:
        return self._censored(self.treated, self.treated_final, self.budget)

    @property
    def c(self) -> float | None:
        return None if self.control_final is None else self._censored(self.control, self.control_final, self.budget)

    @property
    def prevented(self) -> bool:
        return self.t is not None and (self.treated is None or self.treated > self.budget)

    @property
    def control_prevented(self) -> bool:
        return self.c is not None and (self.control is None or self.control > self.budget)

    @property
    def ratio_untreated(self) -> float | None:
        return None if self.t is None else self.t / self.untreated

    @property
    def ratio_control(self) -> float | None:
        return None if self.t is None or self.c is None else self.t / self.c

    @property
    def control_ratio_untreated(self) -> float | None:
        return None if self.c is None else self.c / self.untreated


@dataclass(frozen=True)
class ArmResult:
    """One arm on one workload: its seeds and the geometric-mean ratios with their seed-bootstrap intervals."""

    workload: Workload
    arm: str
    seeds: tuple[SeedOutcome, ...]
    missing: tuple[str, ...]  # why seeds were left out

    def _geo(self, attr: str, reps: int) -> tuple[float, float, float]:
        logs = [np.log(v) for s in self.seeds if (v := getattr(s, attr)) is not None]
        if not logs:
            return (float("nan"),) * 3

        def geo(sample: Sequence[float]) -> float:
            return float(np.exp(np.mean(sample)))

        lo, hi = cluster_bootstrap(logs, geo, reps=reps)
        return geo(logs), lo, hi

    def vs_untreated(self, reps: int) -> tuple[float, float, float]:
        return self._geo("ratio_untreated", reps)

    def vs_control(self, reps: int) -> tuple[float, float, float]:
        return self._geo("ratio_control", reps)

    def control_vs_untreated(self, reps: int) -> tuple[float, float, float]:
        return self._geo("control_ratio_untreated", reps)

    @property
    def n(self) -> int:
        return sum(s.t is not None for s in self.seeds)


def arm_results(arm: str, runs_root: str | os.PathLike[str] = RUNS_ROOT,
                budget_factor: float = 3.0) -> list[ArmResult]:
    """The arm on every workload of :data:`WORKLOADS` (an empty result where nothing is stored)."""
    root = Path(runs_root)
    out = []
    for w in WORKLOADS:
        untreated = {r.seed: r for r in load_runs([root / w.untreated], missing_ok=True) if w.is_untreated(r)}
        treated = {r.seed: r for r in load_runs([root / CAUSAL_DIR / f"{w.name}-{arm}"], missing_ok=True)}
        control = {r.seed: r for r in load_runs([root / CAUSAL_DIR / f"{w.name}-{arm}-ctl"], missing_ok=True)}
        seeds, missing = [], []
        for seed in sorted(s for s in treated if s is not None):
            u = untreated.get(seed)
            g = None if u is None else w.grok(u)
            if g is None:
                missing.append(f"seed {seed}: " + ("no untreated run" if u is None else "untreated never grokked"))
                continue
            t, c = treated[seed], control.get(seed)
            seeds.append(SeedOutcome(seed, g, round(budget_factor * g), w.grok(t), t.final_step or 0,
                                     None if c is None else w.grok(c), None if c is None else (c.final_step or 0)))
        out.append(ArmResult(w, arm, tuple(seeds), tuple(missing)))
    return out


def _interval(v: tuple[float, float, float]) -> str:
    return f"{fmt(v[0])}× [95% {fmt(v[1])}, {fmt(v[2])}]"


def _seed_list(res: ArmResult) -> str:
    def step(x: float | None, prevented: bool) -> str:
        return "n/a" if x is None else (f"≥{x:.0f} (prevented)" if prevented else f"{x:.0f}")

    return "; ".join(f"s{s.seed}: untreated {s.untreated}, treated {step(s.t, s.prevented)}, control "
                     f"{step(s.c, s.control_prevented)}" for s in res.seeds)


def _null(results: Sequence[ArmResult]) -> str:
    parts = []
    for r in results:
        u = [s.untreated for s in r.seeds]
        if len(u) >= 2:
            parts.append(f"{r.workload.label}: untreated grok steps {sorted(u)} (max/min {fmt(max(u) / min(u))}×, "
                         "the seed-to-seed spread a ratio must beat)")
    return "; ".join(parts) or "n/a: fewer than 2 untreated seeds"


def _scored(cid: str, runs_root: str | os.PathLike[str]) -> ClaimRow | tuple[Any, ...]:
    """The arm of criterion ``cid`` on every workload: its INCONCLUSIVE row when no workload has ``min_seeds`` scored
    seeds, else (criterion, params, claim, claimed, arm, results, scored workloads, details)."""
    c = criterion(cid)
    prm = c.params
    arm, claim, claimed = ARMS[cid]
    results = arm_results(arm, runs_root, prm["budget_factor"])
    scored = [r for r in results if r.n >= prm["min_seeds"]]
    details: dict[str, Any] = {r.workload.name: {"seeds": [vars(s) for s in r.seeds], "missing": list(r.missing)}
                               for r in results}
    if not scored:
        have = ", ".join(f"{r.workload.label} {r.n}" for r in results)
        return ClaimRow(claim, SRC, "seed", claimed, f"seeds with treated and untreated runs: {have}",
                        "INCONCLUSIVE", f"needs {prm['min_seeds']} seeds on at least one workload", details,
                        control="n/a: no scored workload", null="n/a: no scored workload", criterion=cid)
    return c, prm, claim, claimed, arm, results, scored, details


def _ratio_row(cid: str, faster: bool, runs_root: str | os.PathLike[str]) -> ClaimRow:
    arm_rows = _scored(cid, runs_root)
    if isinstance(arm_rows, ClaimRow):
        return arm_rows
    c, prm, claim, claimed, arm, results, scored, details = arm_rows
    reps = int(prm["boot_reps"])
    ok, measured, control = True, [], []
    for r in scored:
        vu, vc, cu = r.vs_untreated(reps), r.vs_control(reps), r.control_vs_untreated(reps)
        details[r.workload.name].update(vs_untreated=vu, vs_control=vc, control_vs_untreated=cu)
        ok &= (vu[2] < 1 and vc[2] < 1) if faster else (vu[1] > 1 and vc[1] > 1)
        measured.append(f"{r.workload.label} ({r.n} seeds): treated/untreated {_interval(vu)}, treated/control "
                        f"{_interval(vc)} ({_seed_list(r)})")
        control.append(f"{r.workload.label}: random-subspace control of equal norm / untreated {_interval(cu)}")
    return ClaimRow(claim, SRC, "seed", claimed, "; ".join(measured), "PASS" if ok else "FAIL", c.text, details,
                    plot=_outcome_plot(results, arm), control="; ".join(control), null=_null(scored),
                    criterion=cid)


def _share_row(cid: str, runs_root: str | os.PathLike[str]) -> ClaimRow:
    arm_rows = _scored(cid, runs_root)
    if isinstance(arm_rows, ClaimRow):
        return arm_rows
    c, prm, claim, claimed, arm, results, scored, details = arm_rows
    slow = prm.get("slow_min")
    seeds = [s for r in scored for s in r.seeds if s.t is not None]
    ctrl = [s for s in seeds if s.c is not None]

    def hit(prevented: bool, ratio: float | None) -> bool:
        return prevented or (slow is not None and ratio is not None and ratio >= 1 + slow)

    share_t = float(np.mean([hit(s.prevented, s.ratio_untreated) for s in seeds]))
    share_c = float(np.mean([hit(s.control_prevented, s.control_ratio_untreated) for s in ctrl])) if ctrl else 1.0
    ok = share_t >= prm["share_min"] and bool(ctrl) and share_c <= prm["control_max"]
    what = "prevented" + ("" if slow is None else f" or slowed ≥ {1 + slow:g}×")
    per = "; ".join(f"{r.workload.label}: {_seed_list(r)}" for r in scored)
    details.update(share_treated=share_t, share_control=share_c)
    measured = f"{what}: treated {pct(share_t)} of {len(seeds)} runs ({per})"
    control = (f"random subspace of equal norm: {what} {pct(share_c)} of {len(ctrl)} runs"
               if ctrl else "n/a: no control runs stored (the row cannot pass without them)")
    return ClaimRow(claim, SRC, "seed", claimed, measured, "PASS" if ok else "FAIL", c.text, details,
                    plot=_outcome_plot(results, arm), control=control, null=_null(scored), criterion=cid)


def claim_rows(runs_root: str | os.PathLike[str] = RUNS_ROOT) -> list[ClaimRow]:
    """The five intervention rows on ``runs_root/causal`` (INCONCLUSIVE rows without runs)."""
    return [_ratio_row("causal.defect_amplify", True, runs_root),
            _ratio_row("causal.defect_amplify_noise", True, runs_root),
            _ratio_row("causal.defect_suppress", False, runs_root),
            _share_row("causal.subspace_necessary", runs_root),
            _share_row("causal.orthogonal_suppression", runs_root)]


# --- figure ---------------------------------------------------------------------------------------------------------


def outcome_figure(fig: Any, results: Sequence[ArmResult], arm: str) -> None:
    """Per workload with seeds: each seed's grok step untreated, treated and under the random-subspace control; a
    prevented run sits at its budget with an upward arrow, the budget as a dotted tick."""
    shown = [r for r in results if r.seeds]
    for i, r in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1)
        for j, s in enumerate(r.seeds):
            ax.plot([j - 0.3, j + 0.3], [s.budget, s.budget], color="grey", ls=":", lw=0.8)
            for dx, y, prevented, marker, color in ((-0.15, s.untreated, False, "o", "k"),
                                                    (0.0, s.t, s.prevented, "o", "C3"),
                                                    (0.15, s.c, s.control_prevented, "s", "C0")):
                if y is not None:
                    ax.plot(j + dx, y, marker="^" if prevented else marker, color=color, ls="none")
        ax.set_xticks(range(len(r.seeds)), [f"seed {s.seed}" for s in r.seeds])
        ax.set_ylabel("grok step")
        ax.set_title(f"{r.workload.label}: arm {arm}", fontsize=9)
        ax.legend(handles=[ax.plot([], [], "ko", label="untreated")[0], ax.plot([], [], "C3o", label="treated")[0],
                           ax.plot([], [], "C0s", label="random control")[0],
                           ax.plot([], [], "k^", label="prevented (at budget)")[0]], fontsize=7)
    if not shown:
        fig.add_subplot(1, 1, 1).text(0.5, 0.5, "no runs", ha="center")


def _outcome_plot(results: Sequence[ArmResult], arm: str) -> Callable[[Any], None]:
    def plot(fig: Any) -> None:
        outcome_figure(fig, results, arm)
    return plot
