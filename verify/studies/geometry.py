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
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from verify.harness.config import CadenceConfig, StrictInt
from verify.harness.measurement import BaseMeasurement, RunContext
from verify.studies.backbone import backbone_trackers
from verify.studies.defect import defect_delta
from verify.tasks.base import to_device

__all__ = [
    "FlatModel",
    "GeometryConfig",
    "GeometryMeasurement",
    "centred_directions",
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
    "trajectory_gram",
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
