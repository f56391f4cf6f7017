"""Geometry of the training trajectory (issue 17): its dimension, the commutator's escape from it, the curvature
across it, what the final weights keep of it, and how fragile they are across it.

Definitions: criteria.toml [geometry.*] (fixed 2026-12-02 before this module existed), operational [R] where the
sources give no formula. D_i = θ_{t_i} − θ_0 at the geometry checkpoints t_i > 0 (group ``all``: every trainable
parameter; ``attn``: the task's attention weights), kept by ``numerics.backbone.BackboneTracker`` (exact, no sketch;
its Gram K_ij = ⟨D_i, D_j⟩ in squared parameter units).

* uncentred PCA: eigenvalues of K; centred PCA: eigenvalues of J K J, J = I − 11ᵀ/n (the D_i column-centred, as the
  author); k95 = least k whose eigenvalues reach 95 % of the sum; PC1 share = λ_1 / Σλ.
* centred directions (top-K, orthonormal): v_j = Σ_i U_ij (D_i − D̄) / s_j, (U, s²) the eigenpairs of J K J.
* integrability [geometry.integrability]: δ = θ_AB − θ_BA (``verify.studies.defect.defect_delta``: one pair of
  training batches from the geometry stream, η = ``eta``, train mode, raw gradients), ρ_K = ‖δ − BBᵀδ‖ / ‖δ‖ with B
  the top-K centred directions so far (dimensionless, 1 = δ orthogonal to the trajectory); null ρ_random = the same
  for Q = QR(Gaussian P × K), mean over ``random_bases`` draws (≈ √(1 − K/P)).
* orthogonal curvature [geometry.orth_curvature_lead]: λ_⊥ = top Ritz value (``numerics.lanczos``, ``lanczos_iters``
  Hessian-vector products) of (I − uuᵀ) H (I − uuᵀ), u = centred PC1 so far, H the Hessian of the task loss on one
  fixed diagnostics batch at the current θ; λ_∥ = uᵀHu (units: loss / θ²). H is taken in eval mode (as
  ``numerics.probes``' default; the grokking models have dropout 0, so train mode gives the same H), on a deep copy
  of the model in ``hessian_dtype`` (float64 by default), on the math attention kernel (twice differentiable).
* final step only: per 2-D weight matrix (a parameter named ``*weight`` with two dimensions) the numerical rank
  (singular values > s_max·max(m, n)·1.2e-7) and rank95 (least r with Σ_{i≤r} s_i² ≥ 0.95 Σ s²) against min(m, n);
  holographic reconstruction [geometry.holographic]: θ_rec = θ_0 + W Wᵀ D_T, W the top-k uncentred directions
  (k = uncentred k95), test accuracies of θ_rec, of the null θ_0 + Q Qᵀ D_T (Q a random k-dim subspace) and of θ_T;
  transverse fragility [geometry.transverse_fragility]: ΔL(d) = L(θ_T + eps·‖D_T‖·d) − L(θ_T) on the fixed batch
  (float64, eval mode) for unit d ⊥ span(B), inside span(B), and inside a random K-dim subspace (null).

As a harness measurement (``GeometryMeasurement``, run-config section ``geometry``): one ``geometry`` record every
``geometry.every`` steps after step 0 and at the run's last step (whatever its cadence: D_T must be a trajectory
point), fields listed in :meth:`GeometryMeasurement.measure`. Its random draws come from its own diagnostics stream
(:func:`geometry_generator`, a SeedSequence child of ``diag``), checkpointed with the trackers and the fixed batch.

The offline helpers (``trajectory_gram``, ``pca_spectrum``, ``k_at``, ``pc1_share``, ``random_walk_null``,
``spike_step``, ``power_law_fit``) are pure numpy and serve the claim rows.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from numerics.backbone import BackboneTracker, gram_from_rows
from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.lanczos import lanczos
from numerics.probes import LossModule, measurement_mode
from verify.claims import ClaimRow
from verify.criteria import criterion
from verify.harness.config import CadenceConfig, RunConfig, StrictInt
from verify.harness.measurement import BaseMeasurement, RunContext
from verify.stats import cluster_bootstrap, fmt, fmt_list, pct
from verify.store import RUNS_ROOT, Run, load_runs
from verify.studies.backbone import backbone_trackers
from verify.studies.defect import defect_delta
from verify.studies.multitask import RUNS_DIRS, grok_steps, groks, weight_decay
from verify.tasks import get_task
from verify.tasks.base import to_device

__all__ = [
    "FlatModel",
    "GeometryConfig",
    "GeometryMeasurement",
    "centred_directions",
    "claim_rows",
    "curvature_leads",
    "first_grok",
    "geometry_generator",
    "geometry_seed",
    "hessian_ritz",
    "k_at",
    "matrix_ranks",
    "pc1_share",
    "pca_spectrum",
    "power_law_fit",
    "random_basis",
    "random_walk_null",
    "residual_ratio",
    "spike_step",
    "step_norms",
    "trajectory_gram",
    "trajectory_stats",
    "uncentred_directions",
]

#: SeedSequence spawn key of the geometry stream: a child (3, 17) of the ``diag`` stream (index 3 of
#: ``verify.harness.config.STREAMS``; 17 = the issue), independent of the defect's ``diag``, the probes' ``probe``
#: and LCH's (3, 8) streams, so switching geometry on never moves another measurement's draws.
_GEOMETRY_SPAWN_KEY = (3, 17)
#: Relative eigenvalue floor of a trajectory direction: λ_j > λ_1·REL_TOL (s_j > 1e-5·s_1), far above the float32
#: rounding of the stored rows.
REL_TOL = 1e-10
RANK_RTOL = 1.2e-7  # numerical rank: s > s_max·max(m, n)·1.2e-7 (float32 machine epsilon)
COVERAGE = 0.95


def geometry_seed(diag_seed: int, scheme: str = "derived") -> int:
    """Seed of the geometry stream for a run's ``diag_seed`` (``plain`` streams: ``diag_seed + 17``)."""
    if scheme == "plain":
        return int(diag_seed) + 17
    state = np.random.SeedSequence(int(diag_seed), spawn_key=_GEOMETRY_SPAWN_KEY).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def geometry_generator(run_config: Any) -> torch.Generator:
    """A fresh CPU generator of the geometry stream of ``run_config`` (its ``diag_seed`` and ``streams``)."""
    return torch.Generator().manual_seed(geometry_seed(run_config.diag_seed, run_config.streams))


# --- offline helpers (pure numpy) -----------------------------------------------------------------------------------


def trajectory_gram(records: Iterable[Mapping[str, Any]], key: str = "dots_all") -> np.ndarray:
    """K_ij = ⟨D_i, D_j⟩ (float64, n × n) rebuilt from successive geometry records' new Gram rows ``key``
    (``dots_all`` or ``dots_attn``; record n holds ⟨D_i, D_n⟩ for i ≤ n). ``ShapeMismatchError`` on a gap."""
    return gram_from_rows({"dots": r[key]} for r in records)


def _centre(K: np.ndarray) -> np.ndarray:
    n = K.shape[0]
    J = np.eye(n) - np.full((n, n), 1.0 / n)
    Kc = J @ K @ J
    return 0.5 * (Kc + Kc.T)


def _square(K: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    K = np.atleast_2d(np.asarray(K, dtype=np.float64))
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ShapeMismatchError(f"Gram must be square, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise SpectralEdgeError("Gram has NaN/Inf entries")
    return 0.5 * (K + K.T)


def pca_spectrum(K: np.ndarray | Sequence[Sequence[float]], centred: bool) -> np.ndarray:
    """Eigenvalues (descending, clipped at 0; squared parameter units) of the Gram K (uncentred PCA) or of J K J,
    J = I − 11ᵀ/n (centred PCA of the rows)."""
    K = _square(K)
    lam = np.linalg.eigvalsh(_centre(K) if centred else K)
    return np.clip(lam[::-1], 0.0, None)


def k_at(spectrum: np.ndarray | Sequence[float], coverage: float = COVERAGE) -> int:
    """Least k with Σ_{j≤k} λ_j ≥ ``coverage``·Σλ (λ descending); 0 for an all-zero spectrum."""
    if not 0.0 < coverage <= 1.0:
        raise SpectralEdgeError(f"coverage must lie in (0, 1], got {coverage}")
    lam = np.sort(np.clip(np.asarray(spectrum, dtype=np.float64), 0.0, None))[::-1]
    total = lam.sum()
    if total <= 0:
        return 0
    return int(min(np.searchsorted(np.cumsum(lam) / total, coverage - 1e-12) + 1, len(lam)))


def pc1_share(spectrum: np.ndarray | Sequence[float]) -> float:
    """λ_1 / Σλ (dimensionless; NaN for an all-zero spectrum)."""
    lam = np.clip(np.asarray(spectrum, dtype=np.float64), 0.0, None)
    total = lam.sum()
    return float(lam.max() / total) if total > 0 else float("nan")


def _wishart_gram(n: int, P: int, rng: np.random.Generator) -> np.ndarray:
    """The Gram of n iid N(0, I_P) vectors, exactly in distribution, by Bartlett's decomposition (P ≥ n):
    W = A Aᵀ, A lower triangular, A_ii = √χ²_{P−i} (i = 0..n−1), A_ij ~ N(0, 1) below the diagonal."""
    A = np.tril(rng.standard_normal((n, n)), -1)
    A[np.diag_indices(n)] = np.sqrt(rng.chisquare(P - np.arange(n)))
    return A @ A.T


def random_walk_null(step_norms: Sequence[float], P: int, statistic: Callable[[np.ndarray], float], draws: int = 20,
                     seed: int = 0, method: str = "auto") -> np.ndarray:
    """``statistic`` of the Gram of X_i = Σ_{j≤i} s_j, s_j = ‖step_j‖·g_j/‖g_j‖ with g_j iid N(0, I_P): the
    random-walk null of a trajectory whose successive steps ‖D_i − D_{i−1}‖ are ``step_norms`` (criteria.toml
    [geometry.*]: 20 draws, the claim rows take their median). Returns the ``draws`` values (float64 array).

    Exact in distribution either way: ``bartlett`` samples the step Gram G = g gᵀ as a Wishart_n(P, I) by Bartlett's
    decomposition (O(n³) per draw, any P ≥ n); ``direct`` draws the n × P Gaussian steps (O(n·P) memory and
    O(n²·P) time per draw: 120 × 300k ≈ 0.3 GB). ``auto``: bartlett when P ≥ n, else direct.
    The Gram of the walk is L S Lᵀ with S_ij = ⟨s_i, s_j⟩ and L the lower-triangular matrix of ones.
    """
    norms = np.asarray(step_norms, dtype=np.float64)
    n = len(norms)
    if n < 1 or P < 1 or draws < 1:
        raise SpectralEdgeError(f"random_walk_null needs steps, P and draws >= 1 (got {n}, {P}, {draws})")
    if method == "auto":
        method = "bartlett" if P >= n else "direct"
    if method not in ("bartlett", "direct") or (method == "bartlett" and P < n):
        raise SpectralEdgeError(f"method {method!r} not possible for P={P}, n={n}; use bartlett (P >= n) or direct")
    rng = np.random.default_rng(seed)
    L = np.tril(np.ones((n, n)))
    out = np.empty(draws)
    for d in range(draws):
        if method == "bartlett":
            G = _wishart_gram(n, P, rng)
        else:
            g = rng.standard_normal((n, P))
            G = g @ g.T
        dg = np.sqrt(np.diag(G))
        S = G / np.outer(dg, dg) * np.outer(norms, norms)
        out[d] = float(statistic(L @ S @ L.T))
    return out


def spike_step(steps: Sequence[int], values: Sequence[float], factor: float = 3.0, n_base: int = 3,
               start: int = 3) -> int | None:
    """First step (record index ≥ ``start``) with value > ``factor`` × the median of the first ``n_base`` values
    (criteria.toml [geometry.orth_curvature_lead]: from the 4th record on, 3× the median of the first 3); None
    when no record qualifies or there are too few. Non-finite values never fire."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) != len(steps):
        raise ShapeMismatchError(f"steps and values differ in length: {len(steps)} vs {len(v)}")
    if len(v) <= max(start, n_base - 1) or n_base < 1:
        return None
    base = float(np.median(v[:n_base]))
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(np.isfinite(v) & (v > factor * base))
    hits = hits[hits >= start]
    return int(steps[hits[0]]) if len(hits) else None


def _ols(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float, float]:
    """(a, β, R²) of ly = a + β lx by least squares."""
    X = np.column_stack([np.ones_like(lx), lx])
    coef = np.linalg.lstsq(X, ly, rcond=None)[0]
    resid = ly - X @ coef
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(coef[0]), float(coef[1]), r2


def power_law_fit(x: Sequence[float], y: Sequence[float], boot_reps: int = 2000,
                  seed: int = 0) -> tuple[float, tuple[float, float], float]:
    """(β, (lo, hi), R²) of ln y = a + β ln x by least squares (criteria.toml [geometry.lead_power_law]); (lo, hi)
    is the 95 % run-bootstrap percentile interval of β (runs = the (x, y) pairs resampled with replacement;
    resamples with a single distinct x are skipped). Needs ≥ 3 pairs with x, y > 0."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ShapeMismatchError(f"x and y must be 1-D of equal length, got {xa.shape} and {ya.shape}")
    if len(xa) < 3 or np.any(xa <= 0) or np.any(ya <= 0):
        raise SpectralEdgeError("power_law_fit needs >= 3 pairs with x > 0 and y > 0")
    lx, ly = np.log(xa), np.log(ya)
    if np.ptp(lx) == 0:
        raise SpectralEdgeError("power_law_fit: all x are equal, the exponent is undefined")
    _, beta, r2 = _ols(lx, ly)
    rng = np.random.default_rng(seed)
    betas = []
    for _ in range(int(boot_reps)):
        idx = rng.integers(0, len(lx), len(lx))
        if np.ptp(lx[idx]) > 0:
            betas.append(_ols(lx[idx], ly[idx])[1])
    lo, hi = (np.percentile(betas, [2.5, 97.5]) if betas else (np.nan, np.nan))
    return beta, (float(lo), float(hi)), r2


# --- directions and projections (torch, float64) ------------------------------------------------------------------


def _directions(rows: Sequence[Tensor], coeff: np.ndarray, centre: bool) -> Tensor:
    """Σ_i coeff[i, j] (D_i − D̄) (or D_i) as the orthonormal columns of a P × r float64 tensor (QR with positive
    diagonal: the j-th column is the normalised j-th combination, made orthogonal to the earlier ones)."""
    X = torch.stack([r.to(torch.float64) for r in rows])
    if centre:
        X = X - X.mean(dim=0, keepdim=True)
    C = torch.as_tensor(coeff, dtype=torch.float64, device=X.device)
    V = X.T @ C
    Q, R = torch.linalg.qr(V)
    sign = torch.sign(torch.diagonal(R))
    return Q * torch.where(sign == 0, torch.ones_like(sign), sign)


def _eig_top(K: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    lam, U = np.linalg.eigh(K)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    keep = lam > max(lam[0], 0.0) * REL_TOL if lam[0] > 0 else np.zeros(len(lam), bool)
    r = int(keep.sum())
    r = r if k is None else min(r, int(k))
    return lam[:r], U[:, :r]


def centred_directions(rows: Sequence[Tensor], K: np.ndarray, k: int) -> Tensor:
    """Top-``k`` centred trajectory directions (P × r, orthonormal, r = min(k, rank of J K J)): v_j = Σ_i U_ij
    (D_i − D̄)/s_j with (U, s²) the eigenpairs of J K J, K the Gram of the ``rows`` D_i (module docstring)."""
    if len(rows) != K.shape[0]:
        raise ShapeMismatchError(f"{len(rows)} rows but a {K.shape[0]}×{K.shape[0]} Gram")
    lam, U = _eig_top(_centre(_square(K)), k)
    if not len(lam):
        return torch.zeros((rows[0].numel(), 0), dtype=torch.float64, device=rows[0].device)
    return _directions(rows, U / np.sqrt(lam), centre=True)


def uncentred_directions(rows: Sequence[Tensor], K: np.ndarray, k: int) -> Tensor:
    """Top-``k`` uncentred trajectory directions: w_j = Σ_i U_ij D_i / s_j, (U, s²) the eigenpairs of K itself."""
    if len(rows) != K.shape[0]:
        raise ShapeMismatchError(f"{len(rows)} rows but a {K.shape[0]}×{K.shape[0]} Gram")
    lam, U = _eig_top(_square(K), k)
    if not len(lam):
        return torch.zeros((rows[0].numel(), 0), dtype=torch.float64, device=rows[0].device)
    return _directions(rows, U / np.sqrt(lam), centre=False)


def residual_ratio(delta: Tensor, B: Tensor) -> float:
    """ρ = ‖δ − BBᵀδ‖ / ‖δ‖ for B with orthonormal columns (dimensionless; NaN when δ = 0)."""
    delta = delta.to(torch.float64)
    nd = float(delta.norm())
    if nd == 0.0:
        return float("nan")
    return float((delta - B @ (B.T @ delta)).norm()) / nd


def random_basis(P: int, k: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """Q of the QR decomposition of a P × k standard Gaussian matrix drawn from ``generator``: an orthonormal basis
    of a uniformly random k-dimensional subspace (float64)."""
    G = torch.randn(P, k, generator=generator, dtype=torch.float64)
    return torch.linalg.qr(G.to(device))[0]


def matrix_ranks(model: nn.Module) -> list[dict[str, Any]]:
    """For every 2-D parameter named ``*weight``: name, shape, numerical rank (s > s_max·max(m, n)·1.2e-7), rank95
    (least r with Σ_{i≤r} s_i² ≥ 0.95 Σ s²) and full = min(m, n); singular values in float64."""
    out = []
    for name, p in model.named_parameters():
        if p.dim() != 2 or not name.endswith("weight"):
            continue
        s = torch.linalg.svdvals(p.detach().to(torch.float64)).cpu().numpy()
        m, n = p.shape
        tol = (s.max() if len(s) else 0.0) * max(m, n) * RANK_RTOL
        out.append({"name": name, "shape": [int(m), int(n)], "rank": int((s > tol).sum()),
                    "rank95": k_at(s**2, COVERAGE), "full": int(min(m, n))})
    return out


# --- the measurement ----------------------------------------------------------------------------------------------


class GeometryConfig(CadenceConfig):
    """The trajectory geometry (module docstring; criteria.toml [geometry.*]) every ``every`` steps (0/None: off)
    and at the last step."""

    K: StrictInt = Field(4, ge=1, description="trajectory basis dimension of integrability and fragility")
    Ks: list[StrictInt] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1,
                                description="further basis dimensions whose rho is reported")
    lanczos_iters: StrictInt = Field(20, ge=2, description="Hessian-vector products of the Lanczos run")
    eta: float = Field(1e-3, gt=0.0, description="η of the commutator vector")
    random_bases: StrictInt = Field(5, ge=1, description="random K-dim subspaces of the rho null")
    eps: float = Field(0.1, gt=0.0, description="fragility radius as a fraction of ||D_T||")
    fragility_dirs: StrictInt = Field(5, ge=1, description="random directions per fragility mean")
    batch_size: StrictInt | None = Field(None, ge=1, description="None: the training batch size")
    hessian_dtype: Literal["float64", "float32"] = Field(
        "float64", description="dtype of the Hessian-vector products (float32: about half the cost on the CPU, "
        "relative error ~1e-6 of lam_perp); the fragility losses are always float64")

    @field_validator("Ks")
    @classmethod
    def _positive_distinct(cls, Ks: list[int]) -> list[int]:
        if any(k < 1 for k in Ks) or len(set(Ks)) != len(Ks):
            raise ValueError(f"Ks must be distinct integers >= 1, got {Ks}")
        return sorted(Ks)


def _flat_names(model: nn.Module) -> list[str]:
    """The ``all`` group, in the tracker's (and ``defect_delta``'s) order: trainable parameters in model order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _as_float(batch: Any, dtype: torch.dtype) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(dtype) if batch.is_floating_point() else batch
    if isinstance(batch, Mapping):
        return {k: _as_float(v, dtype) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_as_float(v, dtype) for v in batch)
    return batch


class FlatModel:
    """A deep copy of ``model`` (float64 unless ``dtype``) whose parameters ``names`` (default: every trainable
    one, the ``all`` group's order) are one flat vector θ: ``loss(θ, batch)`` by ``functional_call``. The live model
    is never touched (its parameters, ``.grad`` and modes)."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], Tensor],
                 names: list[str] | None = None, dtype: torch.dtype = torch.float64) -> None:
        names = _flat_names(model) if names is None else list(names)
        self.dtype = dtype
        self.model = copy.deepcopy(model).to(dtype)
        for p in self.model.parameters():
            p.grad = None
            p.requires_grad_(False)
        named = dict(self.model.named_parameters())
        self.names = names
        self.shapes = [named[n].shape for n in names]
        self.sizes = [named[n].numel() for n in names]
        self.wrapper = LossModule(self.model, loss_fn)

    def loss(self, theta: Tensor, batch: Any) -> Tensor:
        """L(θ) on ``batch`` (floating tensors of the batch cast to the copy's dtype)."""
        parts = torch.split(theta.to(self.dtype), self.sizes)
        batch = _as_float(batch, self.dtype)
        params = {f"model.{n}": t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}
        return functional_call(self.wrapper, params, (batch,))


def hessian_ritz(flat: FlatModel, batch: Any, theta: Tensor, u: Tensor, *, iters: int,
                 generator: torch.Generator) -> tuple[np.ndarray, float, float]:
    """(Ritz values of (I − uuᵀ) H (I − uuᵀ) descending, uᵀHu, L(θ)) for H the Hessian of the loss of ``flat``
    (a copy of the model, :class:`FlatModel`, whose dtype the products are taken in) at the flat θ on ``batch``, by
    ``iters`` Lanczos steps on Hessian-vector products (H v = ∇⟨∇L, v⟩, one graph for ∇L, reused; the Lanczos
    vectors are float64), eval mode, math attention kernel. ``u``: a unit vector (P). Units: loss / θ² (Ritz
    values, uᵀHu) and loss."""
    th = theta.detach().to(flat.dtype).clone().requires_grad_(True)
    u = u.to(torch.float64)
    with measurement_mode(flat.model, False), sdpa_kernel(SDPBackend.MATH):
        loss = flat.loss(th, batch)
        (g,) = torch.autograd.grad(loss, th, create_graph=True)

        def hvp(v: Tensor) -> Tensor:
            if not g.requires_grad:  # ∇L constant in θ: H = 0
                return torch.zeros_like(v)
            (hv,) = torch.autograd.grad(g, th, grad_outputs=v.to(flat.dtype), retain_graph=True)
            return hv.detach().to(torch.float64)

        ritz = lanczos(hvp, th.numel(), iters=iters, project=u.unsqueeze(1), generator=generator, device=th.device)
        lam_par = float(u @ hvp(u))
    return ritz, lam_par, float(loss.detach())


class GeometryMeasurement(BaseMeasurement):
    """Trajectory geometry as a harness measurement: trackers of groups ``all`` and ``attn`` (exact), one fixed
    diagnostics batch drawn at setup, a ``geometry`` record per due step (:meth:`measure`)."""

    Config = GeometryConfig
    record_type = "geometry"

    def __init__(self, config: GeometryConfig, run_config: Any) -> None:
        super().__init__(config, run_config)
        self.batch_size = config.batch_size or run_config.batch_size
        self.gen = geometry_generator(run_config)

    def at_setup(self, ctx: RunContext) -> None:
        # the backbone study's group selection (trunk/all/attn), exact trackers, θ_0 = the parameters now
        view = SimpleNamespace(backbone=SimpleNamespace(groups=["all", "attn"], sketch_dim=None),
                               task=self.run_config.task, seed=self.run_config.seed)
        self.trackers: dict[str, BackboneTracker] = backbone_trackers(ctx.model, view)
        self.names = _flat_names(ctx.model)
        if sum(dict(ctx.model.named_parameters())[n].numel() for n in self.names) != self.trackers["all"].n_params:
            raise ShapeMismatchError("geometry: the 'all' tracker and the trainable parameters disagree")
        self.fixed = to_device(ctx.task.sample_batch(ctx.data, self.batch_size, self.gen), ctx.device)

    def due(self, step: int) -> bool:
        """On the cadence after step 0, and at every step where the run may end (evals, ``max_steps``): the last
        step is measured whatever its cadence (``measure`` returns nothing at an off-cadence, non-final step)."""
        cfg = self.run_config
        return step > 0 and (step % self.config.every == 0 or step % cfg.eval_every == 0 or step >= cfg.max_steps)

    # -- pieces --------------------------------------------------------------------------------------------------
    def _draw_batch(self, ctx: RunContext) -> Any:
        return to_device(ctx.task.sample_batch(ctx.data, self.batch_size, self.gen), ctx.device)

    @torch.no_grad()
    def _theta(self) -> Tensor:
        """The current θ of group ``all`` (flat float64, the tracker's order)."""
        return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in self.trackers["all"].params])

    def _integrability(self, ctx: RunContext, B_all: Tensor, rank: int) -> dict[str, Any]:
        d = self.config
        a, b = self._draw_batch(ctx), self._draw_batch(ctx)
        delta, _, _, _ = defect_delta(ctx.model, ctx.task.loss, a, b, eta=d.eta, train_mode=True)
        dvec = torch.cat([delta[n].reshape(-1).to(torch.float64) for n in self.names])
        P = dvec.numel()
        k_used = min(d.K, rank)
        rho, rho_random = {}, {}
        for k in sorted({*d.Ks, d.K, k_used}):
            if k > rank:
                continue
            rho[str(k)] = residual_ratio(dvec, B_all[:, :k])
            rho_random[str(k)] = float(np.mean([residual_ratio(dvec, random_basis(P, k, self.gen, dvec.device))
                                                for _ in range(d.random_bases)]))
        return {"delta_norm": float(dvec.norm()), "rho": rho, "rho_random": rho_random, "K_used": k_used,
                "rho_K": rho[str(k_used)], "rho_random_K": rho_random[str(k_used)]}

    def _holographic(self, ctx: RunContext, theta0: Tensor, D_T: Tensor) -> dict[str, Any]:
        tr = self.trackers["all"]
        K = tr.gram()
        k = k_at(pca_spectrum(K, centred=False))
        W = uncentred_directions(tr.rows, K, k)
        Q = random_basis(D_T.numel(), W.shape[1], self.gen, D_T.device)
        clone = copy.deepcopy(ctx.model)
        for p in clone.parameters():
            p.grad = None
        named = dict(clone.named_parameters())

        def acc_at(theta: Tensor) -> dict[str, float]:
            with torch.no_grad():
                for n, part in zip(self.names, torch.split(theta, [named[n].numel() for n in self.names]),
                                   strict=True):
                    named[n].copy_(part.view(named[n].shape).to(named[n].dtype))
            res = ctx.task.evaluate(clone, ctx.data, "test")
            return {key: float(v) for key, v in res.items() if key.startswith("acc")}

        return {"k": k, "k_used": int(W.shape[1]), "acc_rec": acc_at(theta0 + W @ (W.T @ D_T)),
                "acc_random": acc_at(theta0 + Q @ (Q.T @ D_T)), "acc_final": acc_at(theta0 + D_T)}

    def _fragility(self, flat: FlatModel, theta: Tensor, D_T: Tensor, B: Tensor) -> dict[str, Any]:
        d = self.config
        P, k = theta.numel(), B.shape[1]
        radius = d.eps * float(D_T.norm())
        dev = theta.device

        def unit(x: Tensor) -> Tensor:
            return x / x.norm()

        def gauss(n: int) -> Tensor:
            return torch.randn(n, generator=self.gen, dtype=torch.float64).to(dev)

        perp = [unit((g := gauss(P)) - B @ (B.T @ g)) for _ in range(d.fragility_dirs)]
        par = [unit(B @ gauss(k)) for _ in range(d.fragility_dirs)]
        Q = random_basis(P, k, self.gen, dev)
        rand = [unit(Q @ gauss(k)) for _ in range(d.fragility_dirs)]
        with measurement_mode(flat.model, False), torch.no_grad():
            L0 = float(flat.loss(theta, self.fixed))

            def dl(dirs: list[Tensor]) -> list[float]:
                return [float(flat.loss(theta + radius * v, self.fixed)) - L0 for v in dirs]

            dp, dq, dr = dl(perp), dl(par), dl(rand)
        mp, mq, mr = float(np.mean(dp)), float(np.mean(dq)), float(np.mean(dr))
        return {"L0": L0, "radius": radius, "K_used": k, "dL_perp": dp, "dL_par": dq, "dL_rand_par": dr,
                "mean_perp": mp, "mean_par": mq, "mean_rand_par": mr,
                "ratio": mp / mq if mq != 0 else None, "ratio_null": mp / mr if mr != 0 else None}

    # -- the protocol ------------------------------------------------------------------------------------------------
    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]:
        """One ``geometry`` record:

        * always: ``n`` (trajectory points so far), ``dots_all`` / ``dots_attn`` (the new Gram rows ⟨D_i, D_n⟩,
          i ≤ n: ``trajectory_gram`` rebuilds K), ``norm_all`` / ``norm_attn`` (‖D_n‖), ``rank`` = the number of
          centred directions available, min(max(Ks ∪ {K}), rank of J K J) (group all; n − 1 in practice);
        * n ≥ 3: ``delta_norm`` ‖δ‖, ``rho`` / ``rho_random`` {str(K): ρ_K} for K in Ks ∪ {K, K_used} with K ≤ rank,
          ``K_used`` = min(K, rank), ``rho_K`` / ``rho_random_K`` at K_used; ``lam_perp``, ``lam_par``,
          ``ritz_perp`` (all Ritz values, descending), ``loss_fixed`` (L on the fixed batch);
        * final: ``matrix_ranks`` (list), ``holographic`` {k, k_used, acc_rec, acc_random, acc_final: {acc_*: …}},
          ``fragility`` {L0, radius, K_used, dL_perp, dL_par, dL_rand_par, mean_perp, mean_par, mean_rand_par,
          ratio, ratio_null} (None when the centred trajectory has rank 0).
        """
        if step % self.config.every != 0 and not final:
            return []
        rec: dict[str, Any] = {}
        for group, tracker in self.trackers.items():
            cap = tracker.capture(step)
            rec[f"dots_{group}"], rec[f"norm_{group}"] = cap["dots"], cap["norm"]
        tr = self.trackers["all"]
        n = len(tr.rows)
        rec["n"] = n
        K = tr.gram()
        need = max(self.config.K, *self.config.Ks)
        B = centred_directions(tr.rows, K, need) if n >= 2 else torch.zeros((tr.n_params, 0), dtype=torch.float64)
        rank = int(B.shape[1])
        rec["rank"] = rank
        theta = self._theta() if n >= 3 or final else None
        if n >= 3 and rank >= 1:
            rec.update(self._integrability(ctx, B, rank))
            flat = FlatModel(ctx.model, ctx.task.loss, self.names, getattr(torch, self.config.hessian_dtype))
            ritz, lam_par, loss = hessian_ritz(flat, self.fixed, theta, B[:, 0], iters=self.config.lanczos_iters,
                                               generator=self.gen)
            rec.update(lam_perp=float(ritz[0]), lam_par=lam_par, ritz_perp=ritz.tolist(), loss_fixed=loss)
        if final:
            D_T = theta - tr.theta0  # exact: the stored row is its float32 rounding
            rec["matrix_ranks"] = matrix_ranks(ctx.model)
            rec["holographic"] = self._holographic(ctx, tr.theta0, D_T)
            k_frag = min(self.config.K, rank)
            rec["fragility"] = (self._fragility(FlatModel(ctx.model, ctx.task.loss, self.names), theta, D_T,
                                                    B[:, :k_frag]) if k_frag >= 1 else None)
        return [rec]

    def state_dict(self) -> dict[str, Any]:
        return {"trackers": {g: t.state_dict() for g, t in self.trackers.items()}, "gen": self.gen.get_state(),
                "fixed": to_device(self.fixed, "cpu")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for group, tracker in self.trackers.items():
            tracker.load_state_dict(state["trackers"][group])
        self.gen.set_state(state["gen"])
        device = next(iter(self.trackers["all"].params)).device
        self.fixed = to_device(state["fixed"], device)


# --- claims rows (criteria.toml [geometry.*]) ------------------------------------------------------------------------

SRC = ("[S] seed research page (multi-task geometry: low-dimensional trajectories, integrability, execution "
       "manifolds, orthogonal curvature); author's grokking-integrability and multitask-grokking code notes")


def _records(run: Run) -> list[dict[str, Any]]:
    return [r for r in run.events("geometry") if "dots_all" in r]


def first_grok(run: Run, acc: float = 0.9) -> int | None:
    """The earliest task's grok step (first eval with its own test accuracy ≥ ``acc``); None when none groks."""
    steps = [s for s in grok_steps(run, acc).values() if s is not None]
    return min(steps) if steps else None


def _split(runs: Sequence[Run], acc: float) -> tuple[list[Run], list[Run]]:
    """(treated: weight decay > 0 and every task groks; controls: weight decay 0), runs with geometry records."""
    with_geo = [r for r in runs if _records(r)]
    return ([r for r in with_geo if weight_decay(r) > 0 and groks(r, acc)],
            [r for r in with_geo if weight_decay(r) == 0])


def step_norms(K: np.ndarray) -> np.ndarray:
    """‖D_i − D_{i−1}‖ from the Gram of D_1..D_n (D_0 = 0)."""
    d = np.diag(K)
    prev = np.concatenate([[0.0], d[:-1]])
    cross = np.concatenate([[0.0], np.diag(K, -1)])
    return np.sqrt(np.clip(d + prev - 2 * cross, 0.0, None))


def _group_sizes(run: Run) -> dict[str, int]:
    """P of the run's groups ('all': every trainable parameter; 'attn': the task's attention weights, the selection
    of ``backbone_trackers``), from one model rebuilt from its stored config (then moved to the meta device)."""
    cfg = RunConfig.model_validate(run.config)
    task = get_task(cfg.task)
    model = task.build_model(cfg.task_config, torch.Generator().manual_seed(0), "meta")
    named = dict(model.named_parameters())
    names = {"all": [n for n, q in named.items() if q.requires_grad], "attn": task.attention_weight_names(model)}
    return {group: int(sum(named[n].numel() for n in ns)) for group, ns in names.items()}


def _k95c(K: np.ndarray) -> float:
    return float(k_at(pca_spectrum(K, centred=True)))


def _pc1c(K: np.ndarray) -> float:
    return pc1_share(pca_spectrum(K, centred=True))


def _null(K: np.ndarray, P: int, statistic: Callable[[np.ndarray], float]) -> float:
    return float(np.median(random_walk_null(step_norms(K), P, statistic, draws=20, seed=0)))


def trajectory_stats(run: Run, acc: float = 0.9) -> dict[str, Any]:
    """Per run: centred/uncentred k95 and centred PC1 share of the whole 'all' trajectory, the random-walk nulls, the
    attention trajectory's centred k95 up to the first grok step (the whole run for a run that never groks), and
    the final record's matrix ranks, holographic and fragility blocks."""
    recs = _records(run)
    K = trajectory_gram(recs, "dots_all")
    sizes = _group_sizes(run)
    P = sizes["all"]
    fg = first_grok(run, acc)
    upto = [r for r in recs if fg is None or r["step"] <= fg]
    Ka = trajectory_gram(upto, "dots_attn") if len(upto) >= 2 else None
    final = recs[-1]
    out: dict[str, Any] = {
        "n": len(recs), "k95_centred": _k95c(K), "k95_uncentred": float(k_at(pca_spectrum(K, centred=False))),
        "pc1_centred": _pc1c(K), "null_k95": _null(K, P, _k95c), "null_pc1": _null(K, P, _pc1c), "P": P,
        "first_grok": fg, "exec_k95": _k95c(Ka) if Ka is not None else None,
        "exec_null_k95": _null(Ka, sizes["attn"], _k95c) if Ka is not None else None,
        "matrix_ranks": final.get("matrix_ranks"), "holographic": final.get("holographic"),
        "fragility": final.get("fragility")}
    ranks = out["matrix_ranks"] or []
    out["full_rank"] = bool(ranks) and all(m["rank"] == m["full"] for m in ranks)
    out["rank95_fraction"] = float(np.median([m["rank95"] / m["full"] for m in ranks])) if ranks else None
    return out


def _med(xs: Sequence[float | None]) -> float:
    v = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.median(v)) if v else float("nan")


def _few(claim: str, claimed: str, cid: str, n_t: int, n_c: int, need: str) -> ClaimRow:
    return ClaimRow(claim, SRC, "seed", claimed, f"{n_t} grokking weight-decay runs and {n_c} controls with geometry "
                    "records", "INCONCLUSIVE", need, {}, criterion=cid)


def trajectory_dim_row(stats: Mapping[str, dict[str, Any]], treated: Sequence[Run],
                       controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.trajectory_dim"
    prm = criterion(cid).params
    claim = "Multi-task trajectories live in a 2–6-dimensional global subspace while individual weights stay full-rank"
    claimed = "2–6 global dimensions; every weight matrix full rank"
    if len(treated) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(treated), len(controls), f"needs {prm['min_runs']} treated runs")
    t = [stats[r.id] for r in treated]
    k = _med([s["k95_centred"] for s in t])
    full = float(np.mean([s["full_rank"] for s in t]))
    below = float(np.mean([s["k95_centred"] < s["null_k95"] for s in t]))
    ok = prm["k_lo"] <= k <= prm["k_hi"] and full >= prm["share_min"] and below >= prm["share_min"]
    c = [stats[r.id] for r in controls]
    measured = (f"centred k95 median {fmt(k)} (runs: {fmt_list([s['k95_centred'] for s in t], '.0f')}), uncentred "
                f"{fmt(_med([s['k95_uncentred'] for s in t]))}; every weight matrix full numerical rank in "
                f"{pct(full)} of {len(t)} runs (rank95/full median {fmt(_med([s['rank95_fraction'] for s in t]))}); "
                f"below the random-walk null in {pct(below)}")
    return ClaimRow(claim, SRC, "seed", claimed, measured, "PASS" if ok else "FAIL", criterion(cid).text,
                    {"runs": {r.id: _slim(stats[r.id]) for r in [*treated, *controls]}},
                    plot=_spectra_plot([stats[r.id] for r in treated], treated),
                    control=(f"weight decay 0 ({len(c)} runs): centred k95 median "
                             f"{fmt(_med([s['k95_centred'] for s in c]))}" if c else
                             "n/a: no control run with geometry records"),
                    null=("random walk, same step norms and P: centred k95 median "
                          f"{fmt(_med([s['null_k95'] for s in t]))}"),
                    criterion=cid)


def pc1_row(stats: Mapping[str, dict[str, Any]], treated: Sequence[Run], controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.pc1_share"
    prm = criterion(cid).params
    claim = "Training evolves within a single dominant component (68–83 % of the variance)"
    claimed = "PC1 68–83 %"
    if len(treated) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(treated), len(controls), f"needs {prm['min_runs']} treated runs")
    t = [stats[r.id] for r in treated]
    share, null = _med([s["pc1_centred"] for s in t]), _med([s["null_pc1"] for s in t])
    ok = prm["lo"] <= share <= prm["hi"] and share > null
    c = [stats[r.id] for r in controls]
    return ClaimRow(claim, SRC, "seed", claimed,
                    f"centred PC1 share median {pct(share)} (runs: {fmt_list([s['pc1_centred'] for s in t], '.2f')})",
                    "PASS" if ok else "FAIL", criterion(cid).text, {"pc1": {r.id: stats[r.id]["pc1_centred"]
                                                                            for r in [*treated, *controls]}},
                    control=(f"weight decay 0: median {pct(_med([s['pc1_centred'] for s in c]))}" if c else
                             "n/a: no control run with geometry records"),
                    null=f"random walk, same step norms: median {pct(null)} (Brownian motion, centred: 6/π² ≈ 61 %)",
                    criterion=cid)


def exec_row(stats: Mapping[str, dict[str, Any]], treated: Sequence[Run], controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.exec_manifold"
    prm = criterion(cid).params
    claim = "Modular-arithmetic training collapses onto 3–4-dimensional execution manifolds"
    claimed = "execution manifold of dimension 3–4 [R: centred k95 of the attention-weight trajectory to grokking]"
    t = [stats[r.id] for r in treated if stats[r.id]["exec_k95"] is not None]
    if len(t) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(t), len(controls), f"needs {prm['min_runs']} treated runs")
    k, null = _med([s["exec_k95"] for s in t]), _med([s["exec_null_k95"] for s in t])
    ok = prm["k_lo"] <= k <= prm["k_hi"] and k < null
    c = [stats[r.id] for r in controls if stats[r.id]["exec_k95"] is not None]
    return ClaimRow(claim, SRC, "seed", claimed,
                    f"attention trajectory to the first grok: centred k95 median {fmt(k)} (runs: "
                    f"{fmt_list([s['exec_k95'] for s in t], '.0f')})", "PASS" if ok else "FAIL", criterion(cid).text,
                    {"exec_k95": {r.id: stats[r.id]["exec_k95"] for r in [*treated, *controls]}},
                    control=(f"weight decay 0 (whole run): median {fmt(_med([s['exec_k95'] for s in c]))}" if c else
                             "n/a: no control run with geometry records"),
                    null=f"random walk, same attention step norms: median {fmt(null)}", criterion=cid)


def _rho_median(run: Run, key: str, upto: int | None, K: int) -> float | None:
    vals = [r[key][str(K)] for r in _records(run) if key in r and str(K) in r[key]
            and (upto is None or r["step"] < upto)]
    return float(np.median(vals)) if vals else None


def integrability_row(treated: Sequence[Run], controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.integrability"
    prm = criterion(cid).params
    claim = "Universal trajectory integrability: the commutator lies outside the low-dimensional trajectory subspace"
    claimed = "commutator vectors almost entirely orthogonal to the trajectory subspace, at every weight decay"
    K = int(prm["K"])
    rho = {r.id: _rho_median(r, "rho", first_grok(r, prm["grok_acc"]), K) for r in treated}
    rnd = {r.id: _rho_median(r, "rho_random", first_grok(r, prm["grok_acc"]), K) for r in treated}
    scored = [i for i, v in rho.items() if v is not None]
    if len(scored) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(scored), len(controls), f"needs {prm['min_runs']} treated runs")
    share = float(np.mean([rho[i] >= prm["rho_min"] for i in scored]))

    def excess(a: float, b: float) -> float:
        return float(np.sqrt(max(1 - a * a, 0.0)) / np.sqrt(max(1 - b * b, 1e-300)))

    ex = [excess(rho[i], rnd[i]) for i in scored if rnd[i] is not None]
    ctrl = [v for v in (_rho_median(r, "rho", None, K) for r in controls) if v is not None]
    return ClaimRow(claim, SRC, "seed", claimed,
                    f"ρ_{K} = ‖δ − BBᵀδ‖/‖δ‖ before grokking: median {fmt(_med(list(rho.values())), '.4f')} "
                    f"(≥ {prm['rho_min']} in {pct(share)} of {len(scored)} runs); in-subspace share over a random "
                    f"subspace's: median {fmt(_med(ex))}×", "PASS" if share >= prm["share_min"] else "FAIL",
                    criterion(cid).text, {"rho": rho, "rho_random": rnd, "excess": ex},
                    control=(f"weight decay 0 ({len(ctrl)} runs): ρ_{K} median {fmt(_med(ctrl), '.4f')}" if ctrl else
                             "n/a: no control run with geometry records"),
                    null=(f"random {K}-dim subspaces: ρ median {fmt(_med(list(rnd.values())), '.6f')} (√(1 − K/P)): "
                          "any vector is almost orthogonal to a few directions in P ≈ 6·10⁴; the excess ratio says how "
                          "much more of δ the trajectory subspace holds than chance"), criterion=cid)


def _lam_series(run: Run) -> tuple[list[int], list[float]]:
    recs = [r for r in _records(run) if r.get("lam_perp") is not None]
    return [int(r["step"]) for r in recs], [float(r["lam_perp"]) for r in recs]


def curvature_leads(runs: Sequence[Run], acc: float, factor: float) -> dict[str, dict[str, Any]]:
    """Per run: the λ_⊥ spike step, the first grok step and lead = first grok − spike (None where either is None)."""
    out = {}
    for r in runs:
        steps, lam = _lam_series(r)
        spike = spike_step(steps, lam, factor=factor) if steps else None
        fg = first_grok(r, acc) if groks(r, acc) else None
        out[r.id] = {"spike": spike, "first_grok": fg,
                     "lead": fg - spike if fg is not None and spike is not None else None}
    return out


def _shuffle_share(runs: Sequence[Run], acc: float, factor: float, reps: int = 200, seed: int = 0) -> float:
    """Time-shuffle null: mean over runs of the fraction of ``reps`` permutations of the λ_⊥ series whose spike
    comes before the first grok step."""
    rng = np.random.default_rng(seed)
    shares = []
    for r in runs:
        steps, lam = _lam_series(r)
        fg = first_grok(r, acc)
        hits = 0
        for _ in range(reps):
            s = spike_step(steps, list(rng.permutation(lam)), factor=factor)
            hits += s is not None and fg is not None and s < fg
        shares.append(hits / reps)
    return float(np.mean(shares)) if shares else float("nan")


def orth_lead_row(treated: Sequence[Run], controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.orth_curvature_lead"
    prm = criterion(cid).params
    claim = "Orthogonal curvature (Hessian curvature off the dominant trajectory direction) spikes ahead of grokking"
    claimed = "λ_⊥ spikes before grokking"
    if len(treated) < prm["min_runs"] or len(controls) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(treated), len(controls),
                    f"needs {prm['min_runs']} treated runs and {prm['min_runs']} controls")
    leads = curvature_leads(treated, prm["grok_acc"], prm["factor"])
    ctrl = curvature_leads(controls, prm["grok_acc"], prm["factor"])
    share = float(np.mean([v["lead"] is not None and v["lead"] > 0 for v in leads.values()]))
    fired = float(np.mean([v["spike"] is not None for v in ctrl.values()]))
    null = _shuffle_share(treated, prm["grok_acc"], prm["factor"])
    ok = share >= prm["share_min"] and fired <= prm["control_max"] and share - null >= prm["margin"]
    pos = [v["lead"] for v in leads.values() if v["lead"] is not None and v["lead"] > 0]
    return ClaimRow(claim, SRC, "seed", claimed,
                    f"spike before the first grok in {pct(share)} of {len(leads)} runs (leads: "
                    f"{fmt_list([v['lead'] for v in leads.values()], '.0f') or 'none'}; median positive lead "
                    f"{fmt(_med(pos))} steps)", "PASS" if ok else "FAIL", criterion(cid).text,
                    {"treated": leads, "controls": ctrl, "shuffle_share": null},
                    plot=_curvature_plot(treated, controls, prm["grok_acc"]),
                    control=f"weight decay 0: the spike fires in {pct(fired)} of {len(ctrl)} runs (none grok)",
                    null=f"time-shuffled λ_⊥ series: spike before grokking in {pct(null)} (mean over runs)",
                    criterion=cid)


def power_law_row(treated: Sequence[Run]) -> ClaimRow:
    cid = "geometry.lead_power_law"
    prm = criterion(cid).params
    lead_prm = criterion("geometry.orth_curvature_lead").params
    claim = "The orthogonal-curvature lead time follows a power law in the grokking time"
    claimed = "lead ∝ T_grok^β"
    leads = curvature_leads(treated, lead_prm["grok_acc"], lead_prm["factor"])
    pts = [(v["first_grok"], v["lead"]) for v in leads.values() if v["lead"] is not None and v["lead"] > 0]
    span = max(p[0] for p in pts) / min(p[0] for p in pts) if pts else 0.0
    if len(pts) < prm["min_runs"] or span < prm["span_min"]:
        return ClaimRow(claim, SRC, "seed", claimed, f"{len(pts)} runs with a positive lead, grok steps spanning "
                        f"a factor {fmt(span)}", "INCONCLUSIVE",
                        f"needs {prm['min_runs']} runs with a positive lead whose grok steps span a factor "
                        f"{prm['span_min']}", {"points": pts}, criterion=cid)
    x, y = [p[0] for p in pts], [p[1] for p in pts]
    beta, (lo, hi), r2 = power_law_fit(x, y, boot_reps=int(prm["boot_reps"]))
    rng = np.random.default_rng(0)
    null_r2 = _med([_ols(np.log(x), np.log(rng.permutation(y)))[2] for _ in range(200)])
    ok = (lo > 0 or hi < 0) and r2 >= prm["r2_min"]
    return ClaimRow(claim, SRC, "seed", claimed, f"β = {fmt(beta)} [95% {fmt(lo)}, {fmt(hi)}], R² = {fmt(r2)} over "
                    f"{len(pts)} runs", "PASS" if ok else "FAIL", criterion(cid).text,
                    {"points": pts, "beta": beta, "ci": (lo, hi), "r2": r2, "null_r2": null_r2},
                    control="n/a: the controls never grok, so they have no lead",
                    null=f"leads permuted across runs: median R² {fmt(null_r2)}", criterion=cid)


def holographic_row(stats: Mapping[str, dict[str, Any]], treated: Sequence[Run],
                    controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.holographic"
    prm = criterion(cid).params
    claim = ("Holographic incompressibility [R]: the final weights are not recoverable from the low-dimensional "
             "trajectory subspace")
    claimed = "incompressible (no formula in the sources; operational definition [R])"
    t = [stats[r.id]["holographic"] for r in treated if stats[r.id]["holographic"]]
    if len(t) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(t), len(controls), f"needs {prm['min_runs']} treated runs")
    acc = [h["acc_rec"]["acc"] for h in t]
    share = float(np.mean([a < prm["acc_max"] for a in acc]))
    c = [stats[r.id]["holographic"] for r in controls if stats[r.id]["holographic"]]
    return ClaimRow(claim, SRC, "seed", claimed,
                    f"test accuracy (worst task) of θ_0 + the projection of θ_T − θ_0 on the top-k95 uncentred "
                    f"directions: median {fmt(_med(acc))} (k = {fmt_list([h['k'] for h in t], '.0f')}; final "
                    f"{fmt(_med([h['acc_final']['acc'] for h in t]))}); below {prm['acc_max']} in {pct(share)} of "
                    f"{len(t)} runs", "PASS" if share >= prm["share_min"] else "FAIL", criterion(cid).text,
                    {"holographic": {r.id: stats[r.id]["holographic"] for r in [*treated, *controls]}},
                    control=(f"weight decay 0: reconstruction accuracy median "
                             f"{fmt(_med([h['acc_rec']['acc'] for h in c]))}" if c else
                             "n/a: no control run with geometry records"),
                    null=f"random k-dim subspace: accuracy median {fmt(_med([h['acc_random']['acc'] for h in t]))}",
                    criterion=cid)


def fragility_row(stats: Mapping[str, dict[str, Any]], treated: Sequence[Run], controls: Sequence[Run]) -> ClaimRow:
    cid = "geometry.transverse_fragility"
    prm = criterion(cid).params
    claim = ("Transverse fragility [R]: the trained weights are more fragile across the trajectory subspace than "
             "along it")
    claimed = "fragile transversally (no formula in the sources; operational definition [R])"

    def logs(runs: Sequence[Run], key: str) -> tuple[list[float], int]:
        vals, bad = [], 0
        for r in runs:
            f = stats[r.id]["fragility"]
            if not f:
                continue
            v = f.get(key)
            if v is None or not np.isfinite(v) or v <= 0:
                bad += 1
            else:
                vals.append(float(np.log(v)))
        return vals, bad

    lr, bad = logs(treated, "ratio")
    if len(lr) < prm["min_runs"]:
        return _few(claim, claimed, cid, len(lr), len(controls), f"needs {prm['min_runs']} treated runs with a "
                    f"positive loss increase both ways ({bad} without)")
    lo, hi = cluster_bootstrap(lr, lambda s: float(np.mean(s)), reps=int(prm["boot_reps"]))
    ln_null, _ = logs(treated, "ratio_null")
    lc, _ = logs(controls, "ratio")
    return ClaimRow(claim, SRC, "seed", claimed,
                    f"ΔL across / ΔL along at radius {prm['eps']}·‖θ_T − θ_0‖: geometric mean "
                    f"{fmt(float(np.exp(np.mean(lr))))} [95% {fmt(float(np.exp(lo)))}, {fmt(float(np.exp(hi)))}] over "
                    f"{len(lr)} runs ({bad} without a positive increase both ways)", "PASS" if lo > 0 else "FAIL",
                    criterion(cid).text, {"log_ratio": lr, "log_ratio_null": ln_null, "log_ratio_controls": lc},
                    control=(f"weight decay 0: geometric mean {fmt(float(np.exp(np.mean(lc))))} over {len(lc)} runs"
                             if lc else "n/a: no control run with geometry records"),
                    null=(f"'along' directions from a random {prm['K']}-dim subspace: geometric mean "
                          f"{fmt(float(np.exp(np.mean(ln_null)))) if ln_null else 'n/a'}"), criterion=cid)


def _slim(s: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in ("matrix_ranks", "holographic", "fragility")}


def claim_rows(runs_root: str | os.PathLike[str] = RUNS_ROOT) -> list[ClaimRow]:
    """The geometry rows on the multi-task runs that carry ``geometry`` records (INCONCLUSIVE without them)."""
    runs = load_runs([Path(runs_root) / d for d in RUNS_DIRS], missing_ok=True)
    acc = criterion("geometry.trajectory_dim").params["grok_acc"]
    treated, controls = _split(runs, acc)
    stats = {r.id: trajectory_stats(r, acc) for r in [*treated, *controls]}
    return [trajectory_dim_row(stats, treated, controls), pc1_row(stats, treated, controls),
            exec_row(stats, treated, controls), integrability_row(treated, controls),
            orth_lead_row(treated, controls), power_law_row(treated), holographic_row(stats, treated, controls),
            fragility_row(stats, treated, controls)]


# --- figures -------------------------------------------------------------------------------------------------------


def _spectra_plot(stats: Sequence[Mapping[str, Any]], runs: Sequence[Run]) -> Callable[[Any], None]:
    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for r in runs:
            lam = pca_spectrum(trajectory_gram(_records(r), "dots_all"), centred=True)
            share = np.cumsum(lam) / lam.sum()
            ax.plot(np.arange(1, len(share) + 1), share, marker=".", label=r.id)
        ax.axhline(0.95, color="grey", ls="--", lw=0.8)
        ax.set(xlabel="components", ylabel="cumulative variance share (centred)", xscale="log",
               title="Trajectory PCA of θ_t − θ_0 (weight decay > 0, grokking)")
        ax.legend(fontsize=6)
    return plot


def _curvature_plot(treated: Sequence[Run], controls: Sequence[Run], acc: float) -> Callable[[Any], None]:
    def plot(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for r, style in [*((r, "-") for r in treated), *((r, ":") for r in controls)]:
            steps, lam = _lam_series(r)
            line, = ax.plot(steps, lam, style, lw=1, label=f"{r.id}")
            fg = first_grok(r, acc) if groks(r, acc) else None
            if fg is not None:
                ax.axvline(fg, color=line.get_color(), lw=0.6, ls="--")
        ax.set(xlabel="step", ylabel="λ_⊥ (top Hessian eigenvalue off PC1)", yscale="log",
               title="Orthogonal curvature; dashed: first grok (solid: weight decay > 0, dotted: controls)")
        ax.legend(fontsize=6)
    return plot
