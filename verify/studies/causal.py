"""Causal interventions on a subspace B of parameter space (issue 18), and edge-direction ablation helpers.

Source: [P] the author's intervention scripts (arXiv 2602.23696 companion code): after ``backward()``, "1B-project"
removes a fraction s of the gradient component orthogonal to a subspace B, "1B-penalty" does the same with s = λ,
"1A-kick" and "1A-noise" perturb θ along or orthogonal to B; all start at step 500 with s ∈ {0.25, 0.5, 0.75, 1}, and
B is the top-2 trajectory-PCA directions of each attention block. [R] our generalisation and harness form: one
intervention class, :class:`SubspaceIntervention` (run-config section ``causal``, off unless ``enabled``), with the
part (along B or orthogonal to it), the mode, the subspace and a random-subspace control as config fields.

Notation: θ ∈ ℝ^P all trainable parameters in model order (``numerics.layout.ParamLayout.from_model(model)``, group
``all``: the "canonical" flat coordinates below), g = ∇L(θ_t) the raw loss gradient of the training batch (before
clipping, after ``backward``), V ∈ ℝ^{k×P} an orthonormal basis of B (float64), P_B = VᵀV, P_⊥ = I − P_B.

Modes (``mode``), each acting at the steps t ≥ ``start`` with (t − start) % ``every`` = 0:

* ``project`` (the author's 1B-project; 1B-penalty is the same with s = λ) — on the gradient, before clipping:
  g ← g − r with r = s·P_B g (``part="along"``) or r = s·P_⊥ g (``part="orthogonal"``). Units of ‖r‖: loss/θ.
  s = 1 along: the step sees only P_⊥ g; s = 1 orthogonal: only P_B g (the author's "1B" test of whether training
  needs more than B). The two parts are complementary: r_along + r_orth = s·g.
* ``kick`` (1A-kick) — on θ after the optimizer step: θ ← θ + s·‖g‖·u, u a unit vector in B (``along``: u = Vᵀz/‖z‖,
  z ~ N(0, I_k)) or in B^⊥ (``orthogonal``: u = P_⊥ξ/‖P_⊥ξ‖, ξ ~ N(0, I_P)); ‖g‖ is the raw gradient norm of the same
  step. Units: ‖g‖ is loss/θ, so s·‖g‖ is a θ displacement "of one unit learning rate" — as the author's.
* ``noise`` (1A-noise) — on θ after the optimizer step: θ ← θ + s·‖Δθ‖·u, u as for the kick (fresh every time) and
  Δθ = θ_t − θ_{t−1} the optimizer's own update of that step (θ units).

Subspaces (``subspace``), recomputed every ``basis_every`` steps (when an action needs one and the last is that old):

* ``trajectory`` — the top-k *centred* PCA of the trajectory {θ_0, θ_{t_1}, …, θ_{t_N}} (checkpoints every
  ``basis_every`` steps), from a ``numerics.backbone.BackboneTracker`` of group ``all`` that stores D_i = θ_{t_i} −
  θ_0: with K the Gram of {0, D_1..D_N} centred (HKH), v_j = Σ_i U_ij D_i / √λ_j (the centred eigenvectors sum to
  zero, so the mean drops out). Needs N ≥ k checkpoints before ``start`` (checked). [R: the author's B is per
  attention block, a direct sum of per-block 2-D PCA subspaces; ours is one k-D subspace of all parameters.]
* ``update_gram`` — the spectral monitor's window: v_j = Xᵀu_j/σ_j, the top-k right singular vectors of the W
  stored updates of its ``all`` group (``numerics.gram.RollingGram.right_vectors``), re-orthonormalised in float64.
  Needs the monitor (``train_with_monitor``), ``all`` among ``monitor.groups``, k ≤ W and start ≥ k·``monitor.every``.
* ``commutator`` — the directions of the commutator vectors δ = θ_AB − θ_BA of k batch pairs
  (``verify.studies.defect.defect_delta``, η = ``eta``), orthonormalised (k = 1: B = span δ).

Control (``control=True``): the same action with the same norm along a random subspace R of the same dimension (a
fresh Gaussian orthonormal basis at each basis refresh, from the intervention's stream). ``project``: r_c = ‖r‖·P_R
g/‖P_R g‖ with dim R = k for ``along`` and dim R = 1 for ``orthogonal`` (the same norm removed along one random
direction); ``kick``/``noise``: u drawn in R (``along``) or in R^⊥ (``orthogonal``) with the same norm as the real
action. The record's ``norm`` is therefore equal between a run and its control at equal state.

Randomness: every draw (control bases, kick and noise directions, commutator batches) comes from the run's
``intervention`` stream (``RunConfig.generator("intervention")``), never the batch stream. [R: the author's batches
came from the global ``np.random`` shared with the measurements and perturbations, so switching on a control or a
measurement changed the batches; ours do not — a control run and a plain run see the same batches.] The stream's
state, the basis, the control basis and the tracker are checkpointed: a resumed run is bitwise an uninterrupted one.

Records (type ``intervention``), one at the first action and then at most one per ``log_every`` steps: ``mode``,
``part``, ``subspace``, ``control``, ``s``, ``k``; ``norm`` (‖r‖ removed from g, or ‖added‖ to θ, this step),
``ref_norm`` (‖g‖ for project and kick, ‖Δθ‖ for noise), ``along_norm`` (‖P_B g‖, project only, the gradient's
component in B), ``n_acts`` and ``mean_norm`` (actions since the previous record, and their mean ``norm``),
``basis_step`` (the step the basis in use was computed at).

Edge-direction ablation (pure functions): :func:`edge_ablation` (loss increase from removing θ's component along
v₁, and along v₁…v_k, against the mean over random directions of equal norm, and the curvature v₁ᵀHv₁ against
random: "flat but critical" = small h, large ΔL) and :func:`edge_alignment` (|cos(v, −∇L)|, |cos(v, −θ)|).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import Tensor, nn
from torch.func import functional_call

from numerics.backbone import BackboneTracker
from numerics.errors import ShapeMismatchError, SpectralEdgeError, ZeroWindowError
from numerics.layout import ParamLayout
from numerics.probes import LossFn, LossModule, ablation_delta_loss, hessian_curvature, measurement_mode
from verify.harness.config import InterventionConfig, StrictInt
from verify.harness.intervention import BaseIntervention
from verify.harness.measurement import RunContext
from verify.studies.causal_claims import claim_rows
from verify.studies.defect import defect_delta
from verify.tasks.base import to_device

__all__ = [
    "SUBSPACES",
    "CausalConfig",
    "EdgeAblation",
    "SubspaceIntervention",
    "check_exact_monitor",
    "claim_rows",
    "edge_ablation",
    "edge_alignment",
    "monitor_basis",
    "orthonormal_rows",
    "random_basis",
    "trajectory_basis",
]

SUBSPACES = ("trajectory", "update_gram", "commutator")
#: Relative eigenvalue floor of a trajectory PCA direction: λ_k > λ_1·REL_TOL, else B has rank < k.
REL_TOL = 1e-10


class CausalConfig(InterventionConfig):
    """A subspace intervention (module docstring); off unless ``enabled``. Defaults: the author's (start 500, s = 1,
    k = 2 trajectory-PCA directions, gradient projection of the part orthogonal to B)."""

    mode: Literal["project", "kick", "noise"] = Field("project", description="project: on ∇L; kick, noise: on θ")
    part: Literal["along", "orthogonal"] = Field("orthogonal", description="the part of the action w.r.t. B")
    subspace: str = Field("trajectory", description="B: trajectory, update_gram or commutator")
    k: StrictInt = Field(2, description="dimension of B")
    s: float = Field(1.0, description="strength in [0, 1]: fraction removed (project), or scale (kick, noise)")
    start: StrictInt = Field(500, ge=0, description="first step acted on (steps t ≥ start)")
    every: StrictInt = Field(1, ge=1, description="act every `every` steps from start on")
    basis_every: StrictInt = Field(100, ge=1, description="steps between trajectory checkpoints / basis refreshes")
    control: bool = Field(False, description="act along a random subspace of the same dimension, equal norm")
    log_every: StrictInt = Field(100, ge=1, description="at most one intervention record per log_every steps")
    eta: float = Field(1e-3, gt=0.0, description="commutator: the η of defect_delta")
    batch_size: StrictInt | None = Field(None, ge=1, description="commutator: batch size (None: training's)")

    @field_validator("subspace")
    @classmethod
    def _known_subspace(cls, name: str) -> str:
        if name not in SUBSPACES:
            raise ValueError(f"unknown subspace {name!r}; choose from {', '.join(SUBSPACES)}")
        return name

    @field_validator("s")
    @classmethod
    def _unit_interval(cls, s: float) -> float:
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"s is a fraction (of the component removed, or of ‖g‖ / ‖Δθ‖ added) and must lie in "
                             f"[0, 1], got {s}")
        return s

    @field_validator("k")
    @classmethod
    def _positive_k(cls, k: int) -> int:
        if k < 1:
            raise ValueError(f"k is the dimension of the subspace B and must be ≥ 1, got {k}")
        return k


# --- bases -----------------------------------------------------------------------------------------------------


def orthonormal_rows(M: Tensor) -> Tensor:
    """An orthonormal basis (rows, float64) of the row space of the (k × P) ``M`` (reduced QR of Mᵀ); raises
    ``ZeroWindowError`` when M has rank < k."""
    Q, R = torch.linalg.qr(M.to(torch.float64).T)
    d = torch.diagonal(R).abs()
    if d.numel() == 0 or bool((d <= d.max() * 1e-12).any()) or float(d.max()) == 0.0:
        raise ZeroWindowError(f"the {M.shape[0]} basis vectors are linearly dependent (rank < {M.shape[0]})")
    return Q.T.contiguous()


def random_basis(k: int, P: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """A random orthonormal (k × P) float64 basis: Gaussian rows from ``generator`` (CPU), orthonormalised."""
    G = torch.randn((k, P), generator=generator, dtype=torch.float64)
    return orthonormal_rows(G.to(device))


def trajectory_basis(tracker: BackboneTracker, k: int) -> Tensor:
    """The top-k centred PCA directions (k × P, float64, orthonormal) of {θ_0, θ_{t_1}, …, θ_{t_N}} from a
    ``BackboneTracker`` holding D_i = θ_{t_i} − θ_0 unsketched (module docstring)."""
    if tracker.sketch is not None:
        raise SpectralEdgeError("trajectory_basis needs the tracker's full rows (no sketch)")
    N = len(tracker.rows)
    if N < k:
        raise ZeroWindowError(f"trajectory PCA of rank {k} needs ≥ {k} checkpoints, the tracker has {N}")
    K = np.zeros((N + 1, N + 1))
    K[1:, 1:] = tracker.gram()  # the origin θ_0 (D_0 = 0) is a point of the trajectory
    H = np.eye(N + 1) - 1.0 / (N + 1)
    lam, U = np.linalg.eigh(H @ K @ H)
    lam, U = lam[::-1][:k], U[:, ::-1][:, :k]
    if lam[0] <= 0 or lam[-1] <= lam[0] * REL_TOL:
        raise ZeroWindowError(f"the trajectory of {N} checkpoints has centred rank < {k} (λ = {lam.tolist()})")
    coef = torch.as_tensor((U[1:] / np.sqrt(lam)).T.copy(), dtype=torch.float64)  # k × N: v_j = Σ_i c_ji D_i
    rows = tracker.rows
    V = torch.zeros((k, rows[0].numel()), dtype=torch.float64, device=rows[0].device)
    coef = coef.to(V.device)
    for i, row in enumerate(rows):
        V.addr_(coef[:, i], row.to(torch.float64))
    return orthonormal_rows(V)


def check_exact_monitor(mon: Any, layout: ParamLayout, who: str, alternative: str) -> None:
    """Raise ``SpectralEdgeError`` unless ``mon`` is a spectral monitor with exact (unsketched) updates whose ``all``
    group is exactly ``layout``'s parameters: what reading v₁ … v_k of its window (:func:`monitor_basis`) needs.
    ``who`` names the reader in the message, ``alternative`` says what to do instead of adding a monitor."""
    if mon is None or not hasattr(mon, "gram") or not hasattr(mon, "layout"):
        raise SpectralEdgeError(
            f"{who} reads the spectral monitor's window, but this run has no monitor: train with "
            f"verify.harness.runner.train_with_monitor (or pass a monitor_factory), or {alternative}")
    if getattr(mon, "sketch", None) is not None:
        raise SpectralEdgeError(f"{who} needs the monitor's exact updates; this monitor stores JL sketches "
                                "(sketch_dim)")
    if "all" not in mon.layout.groups:
        raise SpectralEdgeError(f"{who} reads the monitor's 'all' group, which this monitor does not have (groups "
                                f"{list(mon.layout.groups)})")
    theirs, ours = set(mon.layout.param_names("all")), set(layout.param_names())
    if theirs != ours:
        raise SpectralEdgeError("the monitor's 'all' group is not the model's trainable parameters: "
                                f"{sorted(theirs ^ ours)[:5]} differ")


def monitor_basis(monitor: Any, layout: ParamLayout, k: int) -> Tensor:
    """v₁ … v_k of the monitor's ``all`` window as an orthonormal (k × P) float64 tensor in ``layout``'s (canonical)
    order: ``monitor.gram.right_vectors("all", k)`` is in the monitor layout's column order, mapped here tensor by
    tensor. ``ZeroWindowError`` when the window has rank < k."""
    rows = monitor.gram.right_vectors("all", k)
    names = layout.param_names()
    sizes = [p.numel() for p in layout.parameters()]
    starts = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    size_of = dict(zip(names, sizes, strict=True))
    V = torch.zeros((rows.shape[0], layout.P), dtype=torch.float64, device=rows.device)
    offset = 0
    for n in monitor.layout.param_names("all"):
        a, size = starts[n], size_of[n]
        V[:, a : a + size] = rows[:, offset : offset + size].to(torch.float64)
        offset += size
    if offset != layout.P:
        raise ShapeMismatchError(f"the monitor's 'all' window has {offset} columns, the model {layout.P} parameters")
    return orthonormal_rows(V)


# --- the intervention ------------------------------------------------------------------------------------------


class SubspaceIntervention(BaseIntervention):
    """The subspace intervention of the module docstring, as a harness plug-in (``verify.harness.intervention``)."""

    Config: ClassVar[type[CausalConfig]] = CausalConfig
    record_type: ClassVar[str] = "intervention"

    @staticmethod
    def check_run_config(cfg: Any) -> None:
        """Cross-field rules (raised as ``ValueError`` when the run config is validated)."""
        for sec in (cfg.model_extra or {}).values():  # the sections of every registered study
            if isinstance(sec, CausalConfig) and sec.enabled:
                SubspaceIntervention._check_section(sec, cfg)

    @staticmethod
    def _check_section(c: CausalConfig, cfg: Any) -> None:
        if c.subspace == "trajectory" and c.start <= c.k * c.basis_every:
            raise ValueError(f"subspace 'trajectory' needs k = {c.k} trajectory checkpoints (every basis_every = "
                             f"{c.basis_every} steps) before it acts: start (= {c.start}) must exceed k·basis_every "
                             f"(= {c.k * c.basis_every})")
        if c.subspace == "update_gram":
            m = cfg.monitor
            if "all" not in m.groups:
                raise ValueError("subspace 'update_gram' reads the spectral monitor's 'all' group: add 'all' to "
                                 f"monitor.groups (now {m.groups})")
            if c.k > m.window:
                raise ValueError(f"subspace 'update_gram': k = {c.k} exceeds the monitor window W = {m.window}")
            if c.start < c.k * m.every:
                raise ValueError(f"subspace 'update_gram' needs k = {c.k} updates in the monitor window before it "
                                 f"acts: start (= {c.start}) must be ≥ k·monitor.every (= {c.k * m.every})")

    def __init__(self, config: CausalConfig, run_config: Any) -> None:
        super().__init__(config, run_config)
        self.gen = run_config.generator("intervention")
        self.batch_size = config.batch_size or run_config.batch_size
        self.basis: Tensor | None = None  # V (k × P, float64, orthonormal)
        self.control_basis: Tensor | None = None  # R (k or 1 × P), control runs only
        self.basis_step: int | None = None
        self.tracker: BackboneTracker | None = None
        self.grad_norm: float | None = None  # ‖g‖ of the last gradient (kick)
        self.theta_prev: Tensor | None = None  # θ before the update (noise; lives within one training step)
        self.n_acts, self.norm_sum, self.last_logged = 0, 0.0, None

    # -- setup ----------------------------------------------------------------------------------------------
    def at_setup(self, ctx: RunContext) -> None:
        c = self.config
        self.layout = ParamLayout.from_model(ctx.model)
        self.params = self.layout.parameters()
        self.names = self.layout.param_names()
        self.P = self.layout.P
        if c.subspace == "trajectory":
            self.tracker = BackboneTracker(self.params)  # θ_0 now (a resume restores the same)
        elif c.subspace == "update_gram":
            check_exact_monitor(ctx.monitor, self.layout, "causal.subspace='update_gram'",
                                "choose subspace='trajectory'")

    # -- schedule -------------------------------------------------------------------------------------------
    def _due(self, t: int) -> bool:
        c = self.config
        return t >= c.start and (t - c.start) % c.every == 0

    def _ensure_basis(self, ctx: RunContext, t: int) -> None:
        if self.basis is not None and t - self.basis_step < self.config.basis_every:  # type: ignore[operator]
            return
        c = self.config
        if c.subspace == "trajectory":
            V = trajectory_basis(self.tracker, c.k)  # type: ignore[arg-type]
        elif c.subspace == "update_gram":
            V = self._update_gram_basis(ctx)
        else:
            V = self._commutator_basis(ctx)
        self.basis, self.basis_step = V, int(t)
        if c.control:
            dim = 1 if c.mode == "project" and c.part == "orthogonal" else c.k
            self.control_basis = random_basis(dim, self.P, self.gen, V.device)

    def _update_gram_basis(self, ctx: RunContext) -> Tensor:
        return monitor_basis(ctx.monitor, self.layout, self.config.k)

    def _commutator_basis(self, ctx: RunContext) -> Tensor:
        c = self.config

        def draw() -> Any:
            return to_device(ctx.task.sample_batch(ctx.data, self.batch_size, self.gen), ctx.device)

        rows = []
        for _ in range(c.k):
            delta, _, _, _ = defect_delta(ctx.model, ctx.task.loss, draw(), draw(), eta=c.eta)
            rows.append(torch.cat([d.reshape(-1).to(torch.float64) for d in delta.values()]))
        return orthonormal_rows(torch.stack(rows))

    # -- flat helpers ---------------------------------------------------------------------------------------
    def _flat_grad(self) -> Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
                          for p in self.params])

    def _flat_theta(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in self.params])

    def _views(self, flat: Tensor) -> list[Tensor]:
        out, a = [], 0
        for p in self.params:
            out.append(flat[a : a + p.numel()].view(p.shape))
            a += p.numel()
        return out

    def _direction(self, V: Tensor, within: bool) -> Tensor:
        """A random unit vector in span(V) (``within``) or in its orthogonal complement, from the stream."""
        if within:
            z = torch.randn(V.shape[0], generator=self.gen, dtype=torch.float64).to(V.device)
            u = V.T @ z
        else:
            xi = torch.randn(self.P, generator=self.gen, dtype=torch.float64).to(V.device)
            u = xi - V.T @ (V @ xi)
        return u / u.norm()

    def _log(self, t: int, rec: dict[str, Any]) -> list[dict[str, Any]]:
        """Accumulate this action; a record at the first action and then at most one per ``log_every`` steps."""
        c = self.config
        self.n_acts += 1
        self.norm_sum += rec["norm"]
        if self.last_logged is not None and t - self.last_logged < c.log_every:
            return []
        out = {"mode": c.mode, "part": c.part, "subspace": c.subspace, "control": c.control, "s": c.s, "k": c.k,
               **rec, "n_acts": self.n_acts, "mean_norm": self.norm_sum / self.n_acts, "basis_step": self.basis_step}
        self.n_acts, self.norm_sum, self.last_logged = 0, 0.0, int(t)
        return [out]

    # -- hooks ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def on_gradient(self, ctx: RunContext, step: int) -> list[dict[str, Any]]:
        c = self.config
        if c.mode != "project":
            if self._due(step + 1):  # a kick / noise acts after this step: it needs ‖g‖ or θ_before
                if c.mode == "kick":
                    self.grad_norm = float(self._flat_grad().norm())
                else:
                    self.theta_prev = self._flat_theta()
            return []
        if not self._due(step):
            return []
        self._ensure_basis(ctx, step)
        V = self.basis
        g = self._flat_grad()
        coef = V @ g  # type: ignore[operator]
        along = V.T @ coef  # type: ignore[union-attr]
        r = c.s * (along if c.part == "along" else g - along)
        if c.control:
            R = self.control_basis
            pr = R.T @ (R @ g)  # type: ignore[union-attr]
            pn = pr.norm()
            unit = pr / pn if float(pn) > 0 else R[0]  # type: ignore[index]
            r = r.norm() * unit
        norm = float(r.norm())
        if c.s > 0 and norm > 0:  # s = 0: every draw above happened, the gradient is left bitwise as it was
            new = g - r
            for p, v in zip(self.params, self._views(new), strict=True):
                if p.grad is None:
                    p.grad = v.to(p.dtype).clone()
                else:
                    p.grad.copy_(v)
        return self._log(step, {"norm": norm, "ref_norm": float(g.norm()), "along_norm": float(coef.norm())})

    @torch.no_grad()
    def after_step(self, ctx: RunContext, step: int) -> list[dict[str, Any]]:
        c = self.config
        if c.mode == "project" or not self._due(step):
            return []
        self._ensure_basis(ctx, step)
        if c.mode == "kick":
            ref = float(self.grad_norm)  # type: ignore[arg-type]
        else:
            ref = float((self._flat_theta() - self.theta_prev).norm())  # type: ignore[operator]
            self.theta_prev = None
        V = self.control_basis if c.control else self.basis
        u = self._direction(V, within=c.part == "along")  # type: ignore[arg-type]
        add = c.s * ref * u
        if c.s > 0 and ref > 0:
            for p, v in zip(self.params, self._views(add), strict=True):
                p.add_(v.to(p.dtype))
        return self._log(step, {"norm": float(add.norm()), "ref_norm": ref})

    def observe(self, ctx: RunContext, step: int) -> list[dict[str, Any]]:
        if self.tracker is not None and step % self.config.basis_every == 0:
            self.tracker.capture(step)
        return []

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "basis": self.basis, "control_basis": self.control_basis,
                "basis_step": self.basis_step, "grad_norm": self.grad_norm, "n_acts": self.n_acts,
                "norm_sum": self.norm_sum, "last_logged": self.last_logged,
                "tracker": self.tracker.state_dict() if self.tracker is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        dev = self.params[0].device
        self.basis = state["basis"].to(dev) if state["basis"] is not None else None
        self.control_basis = state["control_basis"].to(dev) if state["control_basis"] is not None else None
        self.basis_step, self.grad_norm = state["basis_step"], state["grad_norm"]
        self.n_acts, self.norm_sum, self.last_logged = int(state["n_acts"]), float(state["norm_sum"]), \
            state["last_logged"]
        if self.tracker is not None:
            self.tracker.load_state_dict(state["tracker"])


# --- edge-direction ablation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeAblation:
    """Result of :func:`edge_ablation`. Units: ΔL in loss units; c in θ units; h in loss/θ² (unit directions).

    ``dloss_v1`` = L(θ − c₁v₁) − L(θ), c₁ = ⟨θ, v₁⟩; ``dloss_vk`` = L(θ − P_Vθ) − L(θ) (all k directions removed,
    norm c_k = ‖P_Vθ‖); ``dloss_random_v1`` / ``dloss_random_vk``: L(θ − c·r_i) − L(θ) for random unit r_i with the
    same norm c (c₁, resp. c_k), one per draw; ``h_v1`` = v₁ᵀHv₁ and ``h_random`` = r_iᵀHr_i per draw.
    """

    dloss_v1: float
    dloss_vk: float
    c_v1: float
    c_vk: float
    dloss_random_v1: np.ndarray
    dloss_random_vk: np.ndarray
    h_v1: float
    h_random: np.ndarray

    @property
    def ratio_v1(self) -> float:
        """ΔL(v₁) / mean ΔL(random, equal norm): ≫ 1 when v₁ is critical."""
        m = float(np.mean(self.dloss_random_v1))
        return self.dloss_v1 / m if m != 0 else float("nan")

    @property
    def curvature_ratio(self) -> float:
        """h(v₁) / mean h(random): ≲ 1 when v₁ is flat."""
        m = float(np.mean(self.h_random))
        return self.h_v1 / m if m != 0 else float("nan")

    def record(self) -> dict[str, Any]:
        return {"dloss_v1": self.dloss_v1, "dloss_vk": self.dloss_vk, "c_v1": self.c_v1, "c_vk": self.c_vk,
                "dloss_random_v1": float(np.mean(self.dloss_random_v1)),
                "dloss_random_vk": float(np.mean(self.dloss_random_vk)), "ratio_v1": self.ratio_v1,
                "h_v1": self.h_v1, "h_random": float(np.mean(self.h_random)),
                "curvature_ratio": self.curvature_ratio, "n_random": len(self.h_random)}


def _shifted_losses(model: nn.Module, loss_fn: LossFn, batch: Any, layout: ParamLayout, shifts: Tensor,
                    eval_mode: bool) -> np.ndarray:
    """L(θ − shift_i) − L(θ) for each row of ``shifts`` (canonical coordinates), model untouched."""
    params = layout.parameters()
    names = layout.param_names()
    wrapper = LossModule(model, loss_fn)
    out = np.zeros(shifts.shape[0])
    with measurement_mode(model, False if eval_mode else None), torch.no_grad():
        base = wrapper(batch).double()
        for i in range(shifts.shape[0]):
            a, sub = 0, {}
            for n, p in zip(names, params, strict=True):
                d = shifts[i, a : a + p.numel()].view(p.shape)
                sub[f"model.{n}"] = (p.detach().double() - d).to(p.dtype)
                a += p.numel()
            out[i] = (functional_call(wrapper, sub, (batch,)).double() - base).item()
    return out


def edge_ablation(model: nn.Module, loss_fn: LossFn, batch: Any, directions: Tensor | np.ndarray, n_random: int,
                  generator: torch.Generator, *, eval_mode: bool = True) -> EdgeAblation:
    """Is the edge direction critical but flat? (module docstring; [R] our test of the thesis' "flat but critical").

    ``directions``: v₁ (P,) or v₁…v_k (k × P), in the canonical coordinates (all trainable parameters in model order,
    ``ParamLayout.from_model(model)``), orthonormalised here (v₁ keeps its direction). ``generator``: a diagnostics
    stream (never a training one) for the ``n_random`` ≥ 1 random unit directions. Reuses
    ``numerics.probes.ablation_delta_loss`` (ΔL along v₁ and along the unit P_Vθ/‖P_Vθ‖) and
    ``hessian_curvature``; the random equal-norm shifts are evaluated the same way (``functional_call``, eval
    mode by default, the model never written).
    """
    if not isinstance(generator, torch.Generator):
        raise SpectralEdgeError(f"edge_ablation needs an explicit torch.Generator (a diagnostics stream), got "
                                f"{type(generator).__name__}")
    if int(n_random) < 1:
        raise SpectralEdgeError(f"n_random must be ≥ 1, got {n_random}")
    layout = ParamLayout.from_model(model)
    V = torch.as_tensor(directions)
    V = V.unsqueeze(0) if V.dim() == 1 else V
    if V.dim() != 2 or V.shape[1] != layout.P:
        raise ShapeMismatchError(f"directions must have shape ({layout.P},) or (k, {layout.P}), got "
                                 f"{tuple(torch.as_tensor(directions).shape)}")
    device = layout.parameters()[0].device
    V = orthonormal_rows(V.to(device))  # v₁ up to its sign: ΔL and h do not depend on it
    theta = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in layout.parameters()])
    pv = V.T @ (V @ theta)
    c_k = float(pv.norm())
    u_k = pv / c_k if c_k > 0 else V[0]
    dl, c = ablation_delta_loss(model, loss_fn, batch, torch.stack([V[0], u_k]).to(torch.float64), layout, "all",
                                eval_mode=eval_mode)
    c_1 = float(abs(c[0]))
    Rnd = torch.randn((int(n_random), layout.P), generator=generator, dtype=torch.float64).to(device)
    Rnd = Rnd / Rnd.norm(dim=1, keepdim=True)
    d_r1 = _shifted_losses(model, loss_fn, batch, layout, c_1 * Rnd, eval_mode)
    d_rk = _shifted_losses(model, loss_fn, batch, layout, c_k * Rnd, eval_mode)
    h = hessian_curvature(model, loss_fn, batch, torch.cat([V[:1], Rnd]), layout, "all", eval_mode=eval_mode)
    h = np.atleast_1d(np.asarray(h, dtype=float))
    return EdgeAblation(dloss_v1=float(dl[0]), dloss_vk=float(dl[1]), c_v1=c_1, c_vk=c_k, dloss_random_v1=d_r1,
                        dloss_random_vk=d_rk, h_v1=float(h[0]), h_random=h[1:])


def edge_alignment(v: Tensor | np.ndarray, grad: Tensor | np.ndarray,
                   theta: Tensor | np.ndarray) -> tuple[Any, Any]:
    """(|cos(v, −∇L)|, |cos(v, −θ)|): how much the edge direction is the loss-descent direction and how much the
    weight-decay direction (−θ: decoupled decay moves θ along −θ). ``v`` (P,) → two floats; (k × P) → two float64
    arrays (k,); all in the same flat coordinates. [R] NaN where a norm is zero. Dimensionless."""
    V = torch.as_tensor(v).to(torch.float64)
    single = V.dim() == 1
    V = V.unsqueeze(0) if single else V
    g = torch.as_tensor(grad).reshape(-1).to(torch.float64).to(V.device)
    th = torch.as_tensor(theta).reshape(-1).to(torch.float64).to(V.device)
    if V.shape[1] != g.numel() or g.numel() != th.numel():
        raise ShapeMismatchError(f"edge_alignment: v has {V.shape[1]} coordinates, grad {g.numel()}, theta "
                                 f"{th.numel()}")

    def cos(x: Tensor) -> np.ndarray:
        den = (V.norm(dim=1) * x.norm()).cpu().numpy()
        num = (V @ -x).abs().cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    cg, cw = cos(g), cos(th)
    return (float(cg[0]), float(cw[0])) if single else (cg, cw)
