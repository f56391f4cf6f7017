"""The spectral edge as a live measurement (issue 18): is the top update direction flat yet ablation-critical, and
does it turn at grokking from the loss-descent direction to the weight-decay direction?

Sources: [A] thesis abstract — the spectral edge is "flat under perturbation yet > 4000× more ablation-critical than
random directions", and "at grokking the spectral edge transitions from a gradient-driven functional axis to a
weight-decay compression axis". [R] our operational form, fixed in ``verify/criteria.toml`` ([causal.edge_ablation],
[causal.axis_transition], 2026-12-02) before this module existed.

Notation: θ ∈ ℝ^P every trainable parameter in model order (``numerics.layout.ParamLayout.from_model(model)``, the
"canonical" flat coordinates), L the task's training loss (``ctx.task.loss``) on one fixed diagnostics batch B (drawn
once at setup from the edge stream, never the batch stream), g = ∇L(θ) on B (raw: no clipping, no weight decay; eval
mode [R] — the grokking models have dropout 0, so train mode gives the same g), v₁ … v_k the top-k right singular
vectors of the spectral monitor's current window of group ``all`` (``numerics.gram.RollingGram.right_vectors``:
v_j = Xᵀu_j/σ_j for the W stored updates X, mapped from the monitor layout's column order into the canonical order and
re-orthonormalised in float64; unit vectors, sign arbitrary).

* alignment ([causal.axis_transition]): a = |cos(v₁, −g)| and b = |cos(v₁, −θ)| (``verify.studies.causal.
  edge_alignment``; dimensionless, in [0, 1]). −θ is the direction decoupled weight decay moves θ in, so b ≫ a says
  the edge is a compression axis, a ≫ b a gradient-driven one. Null: the same two cosines for one fresh random unit
  vector r (Gaussian, from the edge stream) per record, E|cos| ≈ √(2/(πP)) ~ 1/√P.
* ablation ([causal.edge_ablation]; ``verify.studies.causal.edge_ablation``, eval mode): ΔL(v₁) = L(θ − c₁v₁) − L(θ),
  c₁ = ⟨θ, v₁⟩ (θ units), against ΔL(r_i) = L(θ − c₁r_i) − L(θ) for ``n_random`` random unit r_i of the same norm c₁
  (loss units); ratio_v1 = ΔL(v₁) / mean_i ΔL(r_i) (≫ 1: v₁ is critical); ΔL(v₁…v_k) removes P_Vθ (norm c_k) against
  the same random directions at norm c_k; curvature h(v) = vᵀHv by a Hessian-vector product (loss/θ²), H the Hessian
  of L on B; curvature_ratio = h(v₁) / mean_i h(r_i) and curvature_ratio_median = h(v₁) / median_i h(r_i) (the
  criterion's "median curvature along the random directions"; ≤ 1: v₁ is no sharper than a random direction, "flat").

As a harness measurement (:class:`EdgeMeasurement`, run-config section ``edge``, off unless ``every`` > 0; meant to
run at the monitor's cadence, ``edge.every`` = ``monitor.every``): one ``edge`` record every ``every`` steps and at the
run's last step, once the monitor's ``all`` window holds ≥ k updates (before: no record). Needs the spectral monitor
(``verify.harness.runner.train_with_monitor``) with an ``all`` group and exact (unsketched) updates. Fields: see
:meth:`EdgeMeasurement.measure`. The measurement reads the model and the monitor and writes neither: training is
bitwise the same with it on, and its stream state and fixed batch are checkpointed, so a resumed run measures bitwise
as an uninterrupted one.

Claim rows (:func:`claim_rows`, on ``verify/runs/edge``): a run is *treated* when its recorded weight decay is > 0 and
it groks (``Run.grok_step()``, default definition: first eval with test accuracy ≥ 0.95), a *control* when its weight
decay is 0; a control is read at the steps of the grokking run of its seed. [causal.edge_ablation] scores the first
``edge`` record at or after the grok step; [causal.axis_transition] the last record strictly before it and the first
at or after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from numerics.errors import ShapeMismatchError, ZeroWindowError
from numerics.layout import ParamLayout
from numerics.probes import LossFn, measurement_mode
from verify.claims import ClaimRow
from verify.criteria import criterion
from verify.harness.config import CadenceConfig, StrictInt
from verify.harness.measurement import BaseMeasurement, RunContext
from verify.stats import cluster_bootstrap, fmt, pct
from verify.store import RUNS_ROOT, Run, load_runs
from verify.store.runs import recorded_weight_decay
from verify.studies.causal import check_exact_monitor, edge_ablation, edge_alignment, monitor_basis
from verify.tasks.base import to_device

__all__ = [
    "RUNS_DIR",
    "EdgeConfig",
    "EdgeMeasurement",
    "ablation_row",
    "axis_row",
    "claim_rows",
    "edge_generator",
    "edge_records",
    "edge_seed",
    "flat_loss_grad",
    "monitor_basis",
]

#: The stored-run directory of the edge runs (``verify/runs/edge``).
RUNS_DIR = "edge"
SRC = "[A] thesis abstract; [R] operational test (verify/criteria.toml [causal.*], fixed before the runs)"
#: SeedSequence spawn key of the edge stream: a child (3, 18) of the ``diag`` stream (index 3 of
#: ``verify.harness.config.STREAMS``; 18 = the issue), independent of the other measurements' streams (geometry's
#: (3, 17), LCH's (3, 8), ``probe``, ``intervention``), so switching the edge on never moves another one's draws.
_EDGE_SPAWN_KEY = (3, 18)
#: A non-positive ablation ratio (removing v₁ lowers the loss while random removals raise it) enters the geometric
#: mean as this floor [R]: v₁ is then far less critical than random, which counts against the claim.
RATIO_FLOOR = 1e-6


def edge_seed(diag_seed: int, scheme: str = "derived") -> int:
    """Seed of the edge stream for a run's ``diag_seed`` (``plain`` streams: ``diag_seed + 18``)."""
    if scheme == "plain":
        return int(diag_seed) + 18
    state = np.random.SeedSequence(int(diag_seed), spawn_key=_EDGE_SPAWN_KEY).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def edge_generator(run_config: Any) -> torch.Generator:
    """A fresh CPU generator of the edge stream of ``run_config`` (its ``diag_seed`` and ``streams``)."""
    return torch.Generator().manual_seed(edge_seed(run_config.diag_seed, run_config.streams))


# --- pieces (torch) -------------------------------------------------------------------------------------------------


def flat_loss_grad(model: nn.Module, loss_fn: LossFn, batch: Any, layout: ParamLayout, *,
                   eval_mode: bool = True) -> tuple[float, Tensor]:
    """(L(θ), ∇L(θ)) on ``batch``: the loss (loss units) and its raw gradient as a flat float64 (P,) tensor in
    ``layout``'s order (loss/θ units), by ``torch.autograd.grad`` — the model's ``.grad``, values and modes are left
    as they were. Eval mode unless ``eval_mode`` is False (then the model's own mode)."""
    params = layout.parameters()
    with measurement_mode(model, False if eval_mode else None):
        loss = loss_fn(model, batch)
        if loss.dim() != 0:
            raise ShapeMismatchError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    g = torch.cat([(gr if gr is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
                   for gr, p in zip(grads, params, strict=True)])
    return float(loss.detach()), g


# --- the measurement ------------------------------------------------------------------------------------------------


class EdgeConfig(CadenceConfig):
    """The spectral edge's alignment and ablation (module docstring) every ``every`` steps (0/None: off) and at the
    last step; ``every`` is meant to equal ``monitor.every``."""

    k: StrictInt = Field(3, ge=1, description="edge directions v1..vk of the dloss_vk ablation")
    n_random: StrictInt = Field(20, ge=1, description="random unit directions of the ablation and curvature null")
    batch_size: StrictInt | None = Field(None, ge=1, description="fixed diagnostics batch; None: the training's")


class EdgeMeasurement(BaseMeasurement):
    """The edge measurement of the module docstring, as a harness plug-in (``verify.harness.measurement``)."""

    Config = EdgeConfig
    record_type = "edge"

    @staticmethod
    def check_run_config(cfg: Any) -> None:
        """The monitor must have the ``all`` group, and its window must hold k directions (``ValueError``)."""
        e, m = cfg.edge, cfg.monitor
        if "all" not in m.groups:
            raise ValueError(f"edge reads the spectral monitor's 'all' group: add 'all' to monitor.groups (now "
                             f"{m.groups})")
        if e.k > m.window:
            raise ValueError(f"edge.k = {e.k} exceeds the monitor window W = {m.window}")

    def __init__(self, config: EdgeConfig, run_config: Any) -> None:
        super().__init__(config, run_config)
        self.batch_size = config.batch_size or run_config.batch_size
        self.gen = edge_generator(run_config)

    def at_setup(self, ctx: RunContext) -> None:
        self.layout = ParamLayout.from_model(ctx.model)
        check_exact_monitor(ctx.monitor, self.layout, "the edge measurement", "switch edge off")
        self.fixed = to_device(ctx.task.sample_batch(ctx.data, self.batch_size, self.gen), ctx.device)

    def due(self, step: int) -> bool:
        """On the cadence, and at every step where the run may end (evals, ``max_steps``): the last step is measured
        whatever its cadence (``measure`` returns nothing at an off-cadence, non-final step)."""
        cfg = self.run_config
        return step % self.config.every == 0 or step % cfg.eval_every == 0 or step >= cfg.max_steps

    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]:
        """One ``edge`` record (none off the cadence unless ``final``, none while the window holds < k updates):

        ``w`` (updates in the window), ``k``, ``P``; ``loss`` (L on the fixed batch), ``grad_norm`` ‖g‖,
        ``theta_norm`` ‖θ‖; ``cos_grad`` = |cos(v₁, −g)|, ``cos_theta`` = |cos(v₁, −θ)|, ``cos_grad_k`` /
        ``cos_theta_k`` (the same for v₁ … v_k, lists), ``cos_grad_null`` / ``cos_theta_null`` (one random unit
        vector); the ablation fields of ``EdgeAblation.record()`` (``dloss_v1``, ``dloss_vk``, ``c_v1``, ``c_vk``,
        ``dloss_random_v1``, ``dloss_random_vk``, ``ratio_v1``, ``h_v1``, ``h_random`` (mean), ``curvature_ratio``,
        ``n_random``) and ``h_random_median``, ``curvature_ratio_median``. A window of rank < k gives a record with
        ``w``, ``k`` and ``skipped`` (the reason) only.
        """
        c = self.config
        if step % c.every != 0 and not final:
            return []
        mon = ctx.monitor
        w = int(mon.gram.w)
        if w < c.k:
            return []
        try:
            V = monitor_basis(mon, self.layout, c.k)
        except ZeroWindowError as exc:
            return [{"w": w, "k": c.k, "skipped": str(exc)}]
        params = self.layout.parameters()
        theta = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in params])
        loss, g = flat_loss_grad(ctx.model, ctx.task.loss, self.fixed, self.layout)
        r = torch.randn(self.layout.P, generator=self.gen, dtype=torch.float64).to(theta.device)
        r = r / r.norm()
        cg, ct = edge_alignment(V, g, theta)
        ng, nt = edge_alignment(r, g, theta)
        abl = edge_ablation(ctx.model, ctx.task.loss, self.fixed, V, c.n_random, self.gen)
        h_med = float(np.median(abl.h_random))
        return [{"w": w, "k": c.k, "P": self.layout.P, "loss": loss, "grad_norm": float(g.norm()),
                 "theta_norm": float(theta.norm()), "cos_grad": float(cg[0]), "cos_theta": float(ct[0]),
                 "cos_grad_k": [float(x) for x in cg], "cos_theta_k": [float(x) for x in ct],
                 "cos_grad_null": ng, "cos_theta_null": nt, **abl.record(), "h_random_median": h_med,
                 "curvature_ratio_median": abl.h_v1 / h_med if h_med != 0 else float("nan")}]

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "fixed": to_device(self.fixed, "cpu")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.fixed = to_device(state["fixed"], self.layout.parameters()[0].device)


# --- claim rows (criteria.toml [causal.edge_ablation], [causal.axis_transition]) -------------------------------------


def edge_records(run: Run) -> list[dict[str, Any]]:
    """The run's measured ``edge`` records (skipped windows left out), in step order."""
    return sorted((r for r in run.events("edge") if "cos_grad" in r), key=lambda r: int(r["step"]))


def _first_at(recs: Sequence[dict[str, Any]], step: int) -> dict[str, Any] | None:
    return next((r for r in recs if int(r["step"]) >= step), None)


def _last_before(recs: Sequence[dict[str, Any]], step: int) -> dict[str, Any] | None:
    before = [r for r in recs if int(r["step"]) < step]
    return before[-1] if before else None


def _num(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(float(x)) else None


def _med(xs: Sequence[float | None]) -> float:
    v = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.median(v)) if v else float("nan")


def _split(runs: Sequence[Run]) -> tuple[list[tuple[Run, int]], list[tuple[Run, int | None]]]:
    """(treated: (run, grok step) of the weight-decay > 0 runs that grok; controls: (run, grok step of its seed's
    grokking run, None when its seed has none) of the weight-decay 0 runs), among the runs with edge records. The
    grokking run of a seed is its first treated run in run-id order."""
    with_edge = [r for r in runs if edge_records(r)]
    treated = []
    for r in with_edge:
        wd, grok = recorded_weight_decay(r), r.grok_step()
        if wd is not None and wd > 0 and grok is not None:
            treated.append((r, int(grok)))
    by_seed: dict[Any, int] = {}
    for r, grok in treated:
        by_seed.setdefault(r.seed, grok)
    controls = [(r, by_seed.get(r.seed)) for r in with_edge if recorded_weight_decay(r) == 0]
    return treated, controls


def _ablation_point(run: Run, step: int) -> dict[str, Any] | None:
    rec = _first_at(edge_records(run), step)
    if rec is None:
        return None
    return {"step": int(rec["step"]), "ratio_v1": _num(rec.get("ratio_v1")),
            "curvature_ratio": _num(rec.get("curvature_ratio_median", rec.get("curvature_ratio"))),
            "dloss_v1": _num(rec.get("dloss_v1")), "dloss_random_v1": _num(rec.get("dloss_random_v1")),
            "n_random": rec.get("n_random")}


def _log_ratio(p: dict[str, Any]) -> float | None:
    """ln max(ratio_v1, RATIO_FLOOR) of a point whose random ΔL is positive (None otherwise: no comparison)."""
    if p["ratio_v1"] is None or p["dloss_random_v1"] is None or p["dloss_random_v1"] <= 0:
        return None
    return float(np.log(max(p["ratio_v1"], RATIO_FLOOR)))


def _geo(logs: Sequence[float]) -> float:
    return float(np.exp(np.mean(logs))) if len(logs) else float("nan")


def _no_control(controls: Sequence[tuple[Run, int | None]]) -> str:
    """The control column when no control could be read: why."""
    if not controls:
        return "n/a: no weight-decay-0 runs stored"
    if all(s is None for _, s in controls):
        return "n/a: no weight-decay-0 run shares a seed with a grokking run"
    return "n/a: no weight-decay-0 run has an edge record at its seed's steps"


def ablation_row(treated: Sequence[tuple[Run, int]], controls: Sequence[tuple[Run, int | None]]) -> ClaimRow:
    """[causal.edge_ablation] on the treated runs' first edge record at or after grokking (module docstring)."""
    cid = "causal.edge_ablation"
    crit = criterion(cid)
    prm = crit.params
    claim = "The spectral edge is flat under perturbation yet ablation-critical"
    claimed = "flat under perturbation yet > 4000× more ablation-critical than random directions"
    pts = {r.id: _ablation_point(r, g) for r, g in treated}
    logs = {i: _log_ratio(p) for i, p in pts.items() if p is not None}
    scored = {i: v for i, v in logs.items() if v is not None}
    unscored = len(treated) - len(scored)
    details: dict[str, Any] = {"treated": pts, "log_ratio": scored}
    if len(scored) < prm["min_runs"]:
        return ClaimRow(claim, SRC, "seed", claimed,
                        f"{len(scored)} grokking weight-decay runs with an edge record at or after grokking "
                        f"({len(treated)} grokking, {len(controls)} weight-decay-0 controls with edge records)",
                        "INCONCLUSIVE",
                        f"needs {prm['min_runs']} grokking weight-decay runs with an edge record at or after the grok "
                        "step", details, criterion=cid,
                        plot=_ablation_plot(treated, controls) if treated else None)
    lr = list(scored.values())
    lo, hi = cluster_bootstrap(lr, lambda s: float(np.mean(s)), reps=int(prm["boot_reps"]))
    curv = _med([pts[i]["curvature_ratio"] for i in scored])
    floored = sum(pts[i]["ratio_v1"] is not None and pts[i]["ratio_v1"] <= RATIO_FLOOR for i in scored)
    ok = lo > 0 and curv <= prm["flat_max"]
    details.update(geo_mean=_geo(lr), ci=(float(np.exp(lo)), float(np.exp(hi))), curvature_median=curv)
    measured = (f"ΔL(v₁) / mean ΔL(random, equal norm) at the first edge record at or after grokking: geometric mean "
                f"{fmt(_geo(lr))} [95% {fmt(float(np.exp(lo)))}, {fmt(float(np.exp(hi)))}] over {len(lr)} runs"
                f"{f' ({floored} non-positive, floored at {RATIO_FLOOR:g})' if floored else ''}"
                f"{f'; {unscored} grokking runs without a usable record' if unscored else ''}; curvature v₁ᵀHv₁ / "
                f"median random: median {fmt(curv)} (flat: ≤ {prm['flat_max']})")
    cpts = {r.id: _ablation_point(r, s) for r, s in controls if s is not None}
    clogs = [v for v in (_log_ratio(p) for p in cpts.values() if p is not None) if v is not None]
    details["controls"] = cpts
    control = (f"weight decay 0 at the same steps as their seed's grokking run ({len(clogs)} runs): geometric mean "
               f"ratio {fmt(_geo(clogs))}, curvature ratio median "
               f"{fmt(_med([p['curvature_ratio'] for p in cpts.values() if p is not None]))}" if clogs else
               _no_control(controls))
    rnd = float(np.mean([pts[i]["dloss_random_v1"] for i in scored]))
    dv1 = _med([pts[i]["dloss_v1"] for i in scored])
    n_rnd = sorted({int(pts[i]["n_random"]) for i in scored if pts[i]["n_random"] is not None})
    null = (f"random unit directions of the same norm (the ratio's denominator, 1 by construction): mean ΔL "
            f"{fmt(rnd)} against median ΔL(v₁) {fmt(dv1)} (loss units; {'/'.join(map(str, n_rnd)) or 'n/a'} "
            f"directions per record, the criterion's {prm['n_random']})")
    return ClaimRow(claim, SRC, "seed", claimed, measured, "PASS" if ok else "FAIL", crit.text, details,
                    control=control, null=null, criterion=cid, plot=_ablation_plot(treated, controls))


def _axis_point(run: Run, step: int) -> dict[str, Any]:
    recs = edge_records(run)
    out: dict[str, Any] = {"grok": step}
    for when, rec in (("before", _last_before(recs, step)), ("after", _first_at(recs, step))):
        out[when] = None if rec is None else {
            "step": int(rec["step"]), "a": _num(rec.get("cos_grad")), "b": _num(rec.get("cos_theta")),
            "a_null": _num(rec.get("cos_grad_null")), "b_null": _num(rec.get("cos_theta_null")), "P": rec.get("P")}
    return out


def _complete(p: dict[str, Any]) -> bool:
    return all(p[w] is not None and p[w]["a"] is not None and p[w]["b"] is not None for w in ("before", "after"))


def _shares(points: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(share with a > b before grokking, share with b > a after)."""
    return (float(np.mean([p["before"]["a"] > p["before"]["b"] for p in points])),
            float(np.mean([p["after"]["b"] > p["after"]["a"] for p in points])))


def _control_point(run: Run, treated: dict[str, Any]) -> dict[str, Any] | None:
    """The control's records at the treated run's before/after steps (the first at or after each)."""
    if not _complete(treated):
        return None
    recs = edge_records(run)
    out: dict[str, Any] = {}
    for when in ("before", "after"):
        rec = _first_at(recs, treated[when]["step"])
        if rec is None or _num(rec.get("cos_grad")) is None or _num(rec.get("cos_theta")) is None:
            return None
        out[when] = {"step": int(rec["step"]), "a": _num(rec["cos_grad"]), "b": _num(rec["cos_theta"])}
    return out


def axis_row(treated: Sequence[tuple[Run, int]], controls: Sequence[tuple[Run, int | None]]) -> ClaimRow:
    """[causal.axis_transition] at the treated runs' last edge record before grokking and first at or after."""
    cid = "causal.axis_transition"
    crit = criterion(cid)
    prm = crit.params
    claim = ("At grokking the spectral edge turns from a gradient-driven functional axis to a weight-decay "
             "compression axis")
    claimed = ("at grokking the spectral edge transitions from a gradient-driven functional axis to a weight-decay "
               "compression axis")
    pts = {r.id: _axis_point(r, g) for r, g in treated}
    scored = {i: p for i, p in pts.items() if _complete(p)}
    details: dict[str, Any] = {"treated": pts}
    plot = _axis_plot(treated, controls) if treated else None
    if len(scored) < prm["min_runs"]:
        return ClaimRow(claim, SRC, "seed", claimed,
                        f"{len(scored)} grokking weight-decay runs with edge records both before and after grokking "
                        f"({len(treated)} grokking, {len(controls)} weight-decay-0 controls with edge records)",
                        "INCONCLUSIVE", f"needs {prm['min_runs']} grokking weight-decay runs with an edge record "
                        "before and one at or after the grok step", details, criterion=cid, plot=plot)
    before, after = _shares(list(scored.values()))
    ok = before >= prm["share_min"] and after >= prm["share_min"]
    sp = list(scored.values())
    med = {f"{x}_{w}": _med([p[w][x] for p in sp]) for w in ("before", "after") for x in ("a", "b")}
    details.update(share_before=before, share_after=after, medians=med)
    measured = (f"a = |cos(v₁, −∇L)| > b = |cos(v₁, −θ)| before grokking in {pct(before)} of {len(sp)} runs (median "
                f"a {fmt(med['a_before'])}, b {fmt(med['b_before'])}); b > a after in {pct(after)} (median a "
                f"{fmt(med['a_after'])}, b {fmt(med['b_after'])})")
    first_of_seed: dict[Any, str] = {}
    for r, _ in treated:
        first_of_seed.setdefault(r.seed, r.id)  # the seed's grokking run, as in _split
    cpts = {r.id: _control_point(r, pts[first_of_seed[r.seed]]) for r, s in controls if s is not None}
    cvals = [p for p in cpts.values() if p is not None]
    details["controls"] = cpts
    if cvals:
        cb, ca = _shares(cvals)
        control = (f"weight decay 0 at the same steps ({len(cvals)} runs): a > b at the 'before' step in {pct(cb)}, "
                   f"b > a at the 'after' step in {pct(ca)}")
    else:
        control = _no_control(controls)
    nulls = [p[w] for p in sp for w in ("before", "after")]
    Ps = [int(q["P"]) for q in nulls if q.get("P")]
    null = (f"one random unit vector per record: median |cos(r, −∇L)| {fmt(_med([q['a_null'] for q in nulls]))}, "
            f"|cos(r, −θ)| {fmt(_med([q['b_null'] for q in nulls]))}"
            + (f" (1/√P = {fmt(1 / np.sqrt(np.median(Ps)))})" if Ps else ""))
    return ClaimRow(claim, SRC, "seed", claimed, measured, "PASS" if ok else "FAIL", crit.text, details,
                    control=control, null=null, criterion=cid, plot=plot)


def claim_rows(runs_root: str | os.PathLike[str] = RUNS_ROOT) -> list[ClaimRow]:
    """The two edge rows on ``runs_root/edge`` (INCONCLUSIVE rows without runs)."""
    runs = load_runs([Path(runs_root) / RUNS_DIR], missing_ok=True)
    treated, controls = _split(runs)
    return [ablation_row(treated, controls), axis_row(treated, controls)]


# --- figures ---------------------------------------------------------------------------------------------------------


def _series(run: Run, key: str) -> tuple[list[int], list[float]]:
    recs = [r for r in edge_records(run) if _num(r.get(key)) is not None]
    return [int(r["step"]) for r in recs], [float(r[key]) for r in recs]


def _ablation_plot(treated: Sequence[tuple[Run, int]],
                   controls: Sequence[tuple[Run, int | None]]) -> Callable[[Any], None]:
    def plot(fig: Any) -> None:
        axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
        for ax, key, label in ((axes[0], "ratio_v1", "ΔL(v₁) / mean ΔL(random)"),
                               (axes[1], "curvature_ratio_median", "v₁ᵀHv₁ / median random")):
            for r, grok in treated:
                line, = ax.plot(*_series(r, key), lw=1, label=r.id)
                ax.axvline(grok, color=line.get_color(), lw=0.6, ls="--")
            for r, _ in controls:
                ax.plot(*_series(r, key), ":", color="grey", lw=0.8)
            ax.axhline(1.0, color="black", lw=0.6)
            ax.set(xlabel="step", ylabel=label, yscale="log")
        axes[0].set_title("ablation ratio (dashed: grok step; dotted grey: weight decay 0)", fontsize=8)
        axes[1].set_title("curvature ratio", fontsize=8)
        axes[0].legend(fontsize=6)
    return plot


def _axis_plot(treated: Sequence[tuple[Run, int]],
               controls: Sequence[tuple[Run, int | None]]) -> Callable[[Any], None]:
    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for r, grok in treated:
            line, = ax.plot(*_series(r, "cos_grad"), "-", lw=1, label=f"{r.id}: |cos(v₁, −∇L)|")
            ax.plot(*_series(r, "cos_theta"), "--", lw=1, color=line.get_color(), label=f"{r.id}: |cos(v₁, −θ)|")
            ax.axvline(grok, color=line.get_color(), lw=0.6, ls=":")
        for r, _ in controls:
            ax.plot(*_series(r, "cos_grad"), "-", color="grey", lw=0.6, alpha=0.6)
            ax.plot(*_series(r, "cos_theta"), "--", color="grey", lw=0.6, alpha=0.6)
        ax.set(xlabel="step", ylabel="|cos|", yscale="log",
               title="Edge alignment: solid −∇L, dashed −θ; dotted vertical: grok step; grey: weight decay 0")
        ax.legend(fontsize=6)
    return plot
