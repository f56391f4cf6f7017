"""Streaming backbone PCA: the uncentred, row-normalised PCA of cumulative displacements θ_t − θ_0.

Source: [P] mini_gpt ``backbone_decomposition.py`` (arXiv 2602.23696);
theory reference §1.2 (a separate object from the update Gram: uncentred *and row-normalised*) and §5 (claim:
AdamW PC1 60–80 %, SGD PC1 = 100 % / k95 = 1).

Definitions. At checkpoints t_1 < … < t_N (never t = 0) the cumulative displacement of a parameter group is
D_i = θ_{t_i} − θ_0 ∈ ℝ^P (the author: trunk weights, attention and MLP matrices, in float64). Row-normalise,
Z_i = D_i/‖D_i‖, and take the uncentred SVD Z = Σ_j s_j u_j v_jᵀ. Everything follows from the N×N Gram
K_ij = ⟨D_i, D_j⟩ (units: squared parameter units; the normalised K̃_ij = K_ij/√(K_ii K_jj) = (Z Zᵀ)_ij is
dimensionless, with eigenvalues λ_j = s_j² and trace N):

* PC share of component j: λ_j / Σλ = λ_j / N; **PC1 share** = λ_1/N (1 exactly when every D_i points the same way:
  pure drift); **k95** = the least k with Σ_{j≤k} λ_j/N ≥ 0.95.
* backbone v_b = v_1 = Zᵀu_1/s_1, sign fixed so that a(t_N) > 0 ([P]); a(t) = ⟨D_t, v_b⟩ = ‖D_t‖ s_1 u_1[t];
  **backbone fraction** b(t) = a(t)²/‖D_t‖² = λ_1 u_1[t]² ∈ [0, 1]; residual r(t) = ‖D_t − a(t)v_b‖ = ‖D_t‖√(1 − b).
* early/late rotation: v_E and v_L are the backbones of the first and second half of the checkpoints;
  |⟨v_E, v_L⟩| = |u_Eᵀ K̃_EL u_L| / (s_E s_L) ([P] reports 0.323, "≈ 71°").

Streaming. :class:`BackboneTracker` keeps θ_0 and one stored row per checkpoint (D_i, or its JL sketch ΦD_i for
large P: ``numerics.sketch``, Φθ_t − Φθ_0 = ΦD_t by linearity), and appends the new Gram row ⟨D_i, D_n⟩ (i ≤ n,
n dot products accumulated in float64) per capture: never a recompute. Rows are stored in float32 by default
(relative rounding 6e-8 of each D_i; the dots are accumulated in float64).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from numerics.errors import NonFiniteUpdateError, ShapeMismatchError, SpectralEdgeError, ZeroWindowError
from numerics.sketch import JLSketch

__all__ = ["BackboneSpectrum", "BackboneTracker", "backbone_from_gram", "gram_from_rows", "trunk_weight_names"]


def trunk_weight_names(model: nn.Module, exclude: Sequence[str] = ("head",)) -> list[str]:
    """The author's "trunk": weight matrices of every ``nn.Linear`` (attention Q/K/V/O and MLP up/down), in model
    order, minus output heads (names containing any of ``exclude``). Embeddings, positions, LayerNorms and biases
    are not trunk; GPT-2's tied head is the embedding, so it is excluded as well."""
    out = []
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not any(x in mod_name for x in exclude):
            out.append(f"{mod_name}.weight" if mod_name else "weight")
    return out


@dataclass(frozen=True)
class BackboneSpectrum:
    """The backbone PCA of N checkpoints (all arrays in checkpoint order; see the module docstring).

    ``norms`` ‖D_i‖ (parameter units); ``shares`` λ_j/N (descending, sum 1); ``pc1_share``; ``k95``; ``a``
    (signed backbone coordinate, parameter units), ``fraction`` b(t) = a²/‖D‖²; ``residual`` r(t);
    ``rotation`` |⟨v_E, v_L⟩| of the half-trajectory backbones (None for N < 4).
    """

    n: int
    norms: np.ndarray
    shares: np.ndarray
    pc1_share: float
    k95: int
    a: np.ndarray
    fraction: np.ndarray
    residual: np.ndarray
    rotation: float | None

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (lists of floats)."""
        return {"n": self.n, "pc1_share": self.pc1_share, "k95": self.k95, "shares": self.shares.tolist(),
                "fraction": self.fraction.tolist(), "a": self.a.tolist(), "norms": self.norms.tolist(),
                "rotation": self.rotation}


def _normalised(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ShapeMismatchError(f"backbone Gram must be square, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise NonFiniteUpdateError("backbone Gram has NaN/Inf entries")
    norms2 = np.diag(K).copy()
    if np.any(norms2 <= 0):
        bad = np.flatnonzero(norms2 <= 0).tolist()
        raise ZeroWindowError(f"checkpoints {bad} have zero displacement ‖θ_t − θ_0‖ = 0: cannot row-normalise")
    norms = np.sqrt(norms2)
    Kn = K / np.outer(norms, norms)
    return 0.5 * (Kn + Kn.T), norms


def _top(Kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, U = np.linalg.eigh(Kn)
    order = np.argsort(lam)[::-1]
    return np.clip(lam[order], 0.0, None), U[:, order]


def backbone_from_gram(K: np.ndarray | Sequence[Sequence[float]], coverage: float = 0.95) -> BackboneSpectrum:
    """The backbone PCA from the Gram K_ij = ⟨D_i, D_j⟩ of N ≥ 1 cumulative displacements (formulas above).

    Raises ``ZeroWindowError`` for a zero displacement, ``ShapeMismatchError`` for a non-square K and
    ``NonFiniteUpdateError`` for NaN/Inf.
    """
    if not 0.0 < coverage <= 1.0:
        raise SpectralEdgeError(f"coverage must lie in (0, 1], got {coverage}")
    Kn, norms = _normalised(np.atleast_2d(np.asarray(K, dtype=np.float64)))
    n = len(norms)
    lam, U = _top(Kn)
    shares = lam / lam.sum()
    k95 = int(np.searchsorted(np.cumsum(shares), coverage - 1e-12) + 1)
    u1 = U[:, 0] * (1.0 if U[-1, 0] >= 0 else -1.0)  # sign: a(t_N) > 0
    coord = np.sqrt(lam[0]) * u1  # ⟨Z_t, v_b⟩
    fraction = np.clip(coord**2, 0.0, 1.0)
    rotation = None
    if n >= 4:
        h = n // 2
        lam_e, U_e = _top(Kn[:h, :h])
        lam_l, U_l = _top(Kn[h:, h:])
        if lam_e[0] > 0 and lam_l[0] > 0:
            rotation = float(abs(U_e[:, 0] @ Kn[:h, h:] @ U_l[:, 0]) / np.sqrt(lam_e[0] * lam_l[0]))
    return BackboneSpectrum(n=n, norms=norms, shares=shares, pc1_share=float(shares[0]), k95=min(k95, n),
                            a=norms * coord, fraction=fraction, residual=norms * np.sqrt(1.0 - fraction),
                            rotation=rotation)


class BackboneTracker:
    """θ_0 and the Gram of cumulative displacements D_i = θ_{t_i} − θ_0 of one parameter group, streaming.

    Args:
        params: the group's tensors (a sequence, or a name → tensor mapping), read in place at every capture.
        sketch_dim: None keeps every D_i (N·P numbers); d > 0 keeps the JL sketch ΦD_i (N·d numbers), whose
            Gram is unbiased with relative entry error ≈ √(2/d) (``numerics.sketch``).
        seed: the sketch's seed.
        storage_dtype: dtype of the stored rows (float32 default; dots are accumulated in float64).

    ``capture(step)`` returns the record of the new checkpoint (its Gram row, ‖D‖, the running PC1 share and k95,
    ‖θ_0‖ and cos∠(D, −θ_0): near 1 when weight decay shrinking the init dominates the displacement);
    ``spectrum()`` is the backbone PCA of all checkpoints so far; ``state_dict``/``load_state_dict`` for resume.
    """

    def __init__(self, params: Sequence[Tensor] | Mapping[str, Tensor], *, sketch_dim: int | None = None,
                 seed: int = 0, storage_dtype: torch.dtype = torch.float32) -> None:
        tensors = list(params.values()) if isinstance(params, Mapping) else list(params)
        if not tensors:
            raise SpectralEdgeError("backbone tracker needs at least one parameter tensor")
        self.params = tensors
        self.n_params = sum(p.numel() for p in tensors)
        self.sketch = JLSketch(sketch_dim, seed) if sketch_dim is not None else None
        self.storage_dtype = storage_dtype
        self.theta0 = self._coords()
        self.rows: list[Tensor] = []
        self.steps: list[int] = []
        self._gram = np.zeros((0, 0), dtype=np.float64)

    @torch.no_grad()
    def _flat(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in self.params])

    def _coords(self) -> Tensor:
        """θ in the stored coordinates: the flat float64 vector, or its sketch Φθ (float64)."""
        flat = self._flat()
        if not torch.isfinite(flat).all():
            raise NonFiniteUpdateError("backbone tracker: parameters contain NaN/Inf")
        return flat if self.sketch is None else self.sketch.apply(flat)

    @torch.no_grad()
    def capture(self, step: int) -> dict[str, Any]:
        """Append checkpoint ``step``: D = θ_step − θ_0, its dots with every stored D_i; returns the record."""
        d = self._coords() - self.theta0
        norm2 = float(d @ d)
        if norm2 <= 0.0:
            raise ZeroWindowError(f"step {step}: zero displacement θ_t − θ_0 (cannot row-normalise)")
        dots = [float(r.to(torch.float64) @ d) for r in self.rows] + [norm2]
        n = len(dots)
        g = np.zeros((n, n), dtype=np.float64)
        g[: n - 1, : n - 1] = self._gram
        g[n - 1, :] = g[:, n - 1] = dots
        self._gram = g
        self.rows.append(d.to(self.storage_dtype).clone())
        self.steps.append(int(step))
        spec = backbone_from_gram(g)
        theta0_norm = float(self.theta0.norm())
        # cos∠(D_t, −θ_0) → 1 when the displacement is shrinkage of the init (weight decay), not learning
        shrink = float(-(d @ self.theta0) / (np.sqrt(norm2) * theta0_norm)) if theta0_norm > 0 else None
        return {"n": n, "norm": float(np.sqrt(norm2)), "dots": dots, "pc1_share": spec.pc1_share, "k95": spec.k95,
                "fraction": float(spec.fraction[-1]), "theta0_norm": theta0_norm, "cos_minus_theta0": shrink}

    def gram(self) -> np.ndarray:
        """K (N×N float64) of the checkpoints so far."""
        return self._gram.copy()

    def spectrum(self) -> BackboneSpectrum:
        if not self.steps:
            raise ZeroWindowError("backbone tracker has no checkpoints yet")
        return backbone_from_gram(self._gram)

    def state_dict(self) -> dict[str, Any]:
        return {"theta0": self.theta0.clone(), "rows": [r.clone() for r in self.rows], "steps": list(self.steps),
                "gram": torch.from_numpy(self._gram.copy()), "n_params": self.n_params,
                "sketch_dim": None if self.sketch is None else self.sketch.dim}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        want = None if self.sketch is None else self.sketch.dim
        if int(state["n_params"]) != self.n_params or state["sketch_dim"] != want:
            raise ShapeMismatchError(f"backbone state for P={state['n_params']}, sketch {state['sketch_dim']} does "
                                     f"not fit this tracker (P={self.n_params}, sketch {want})")
        self.theta0 = state["theta0"].clone()
        self.rows = [r.clone() for r in state["rows"]]
        self.steps = [int(s) for s in state["steps"]]
        self._gram = np.asarray(state["gram"], dtype=np.float64).copy()


def gram_from_rows(records: Iterable[Mapping[str, Any]]) -> np.ndarray:
    """K rebuilt from the ``dots`` of successive capture records (record n holds ⟨D_i, D_n⟩ for i ≤ n)."""
    rows = [list(r["dots"]) for r in records]
    n = len(rows)
    K = np.zeros((n, n), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != i + 1:
            raise ShapeMismatchError(f"backbone record {i} has {len(row)} dots, expected {i + 1} (missing checkpoints)")
        K[i, : i + 1] = row
        K[: i + 1, i] = row
    return K

