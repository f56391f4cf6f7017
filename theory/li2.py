"""Tian's Li₂ framework (arXiv 2509.21519) as the author's bridge uses it (arXiv 2605.08119): the weight-decay
convention and the algebra of "Theorem 6" (repulsion of similar features). numpy + sympy only.

**Weight decay.** In Li₂, η is the weight-decay coefficient (not the learning rate). The bridge script trains with
``torch.optim.Adam(..., weight_decay=η)``: PyTorch's Adam adds ηθ to the gradient *before* the adaptive scaling
(coupled L2), unlike AdamW's decoupled θ ← θ − lr·ηθ. Registry quantity ``li2_weight_decay``: ``adam_l2`` [P]
(default: what the bridge's 174 ± 1 was measured with) and ``adamw`` [R] (the decoupled reading). Each variant
returns the ``verify.config.RunConfig.optimizer`` name that implements it.

**Theorem 6 is an identity** (theory reference §6.18, §7.8). Let F̃ ∈ ℝ^{n×K} be the centred hidden activations (columns
f̃_j), η > 0, B = (F̃ᵀF̃ + ηI_K)⁻¹ and, for a pair j ≠ l, P_{η,−jl} = I_n − F̃₋(F̃₋ᵀF̃₋ + ηI)⁻¹F̃₋ᵀ with F̃₋ the
other K − 2 columns. Partition M = F̃ᵀF̃ + ηI into the pair {j, l} and the rest; the Schur complement gives

    [B]_{{j,l}} = (S)⁻¹,   S = [f̃_j f̃_l]ᵀ P_{η,−jl} [f̃_j f̃_l] + ηI₂,

and P_{η,−jl} = η(F̃₋F̃₋ᵀ + ηI)⁻¹ is positive definite (push-through identity), so S is positive definite and the
2×2 inverse has off-diagonal −S₁₂/det S: **sgn(B_jl) = −sgn(f̃_jᵀP_{η,−jl}f̃_l)** always. With the full projector
P_η = I − F̃BF̃ᵀ, F̃ᵀP_ηF̃ = ηI − η²B (same eigenvectors as F̃ᵀF̃; scalar identity a − a²/(a+η) = η − η²/(a+η)),
so the "full-projector sign match" −sgn(f̃_jᵀP_ηf̃_l) = sgn(B_jl) is exact too. A measured sign-match below 1
(the bridge's 0.83 → 0.995) is float cancellation or, in substance, the statistic P[B_jl < 0 | cos(f̃_j, f̃_l) > 0]
[R], which :func:`repulsion_statistic` computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.registry import register

__all__ = [
    "LI2_WEIGHT_DECAY",
    "RepulsionStatistic",
    "full_projector_gram",
    "leave_pair_out_similarity",
    "pair_schur_block",
    "repulsion_statistic",
    "ridge_inverse",
]

LI2_WEIGHT_DECAY = "li2_weight_decay"


@register(LI2_WEIGHT_DECAY, "adam_l2", source="[P] grokking-integrability tian_eigengap/tian_eigengap.py "
          "(torch.optim.Adam(weight_decay=eta))", version="2605.08119", default=True)
def _adam_l2() -> str:
    """η as PyTorch Adam's L2 term: g ← ∇L + ηθ, then the Adam moments (coupled). Default: the bridge's runs
    (174 ± 1, 15/15) were made this way, and Li₂'s dynamics carry η as a term of the gradient."""
    return "adam"


@register(LI2_WEIGHT_DECAY, "adamw", source="[R] decoupled reading of 'weight decay η'", version="—")
def _adamw() -> str:
    """η as AdamW's decoupled decay θ ← θ − lr·ηθ (not what the bridge ran; kept for a sensitivity check)."""
    return "adamw"


# --- Theorem 6 ------------------------------------------------------------------------------------------------


def _check(F: np.ndarray, eta: float) -> np.ndarray:
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError(f"F must be an n×K matrix, got shape {F.shape}")
    if not np.all(np.isfinite(F)):
        raise ValueError("F contains NaN or Inf")
    if not (np.isfinite(eta) and eta >= 0):
        raise ValueError(f"η must be a finite number ≥ 0, got {eta}")
    return F


def ridge_inverse(F: np.ndarray, eta: float, *, rcond: float = 1e-12) -> np.ndarray:
    """B = (F̃ᵀF̃ + ηI)⁻¹ (K×K, symmetric). For η = 0 (the control) the Moore–Penrose pseudo-inverse by
    eigendecomposition of F̃ᵀF̃: eigenvalues ≤ rcond·max are treated as zero."""
    F = _check(F, eta)
    A = F.T @ F
    if eta > 0:  # positive definite: a direct inverse (≈ 5× cheaper than the eigendecomposition at K = 2048)
        B = np.linalg.inv(A + eta * np.eye(A.shape[0]))
        return (B + B.T) / 2
    lam, U = np.linalg.eigh(A)
    lam = np.clip(lam, 0.0, None)
    keep = lam > rcond * max(float(lam.max(initial=0.0)), np.finfo(float).tiny)
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    return (U * inv) @ U.T


def _projector_apply(F_rest: np.ndarray, eta: float, v: np.ndarray) -> np.ndarray:
    """P v with P = I − F₋(F₋ᵀF₋ + ηI)⁻¹F₋ᵀ (a solve, never the n×n matrix)."""
    if F_rest.shape[1] == 0:
        return v
    A = F_rest.T @ F_rest + eta * np.eye(F_rest.shape[1])
    return v - F_rest @ np.linalg.solve(A, F_rest.T @ v)


def pair_schur_block(F: np.ndarray, eta: float, j: int, l: int) -> np.ndarray:
    """S = [f̃_j f̃_l]ᵀP_{η,−jl}[f̃_j f̃_l] + ηI₂ (2×2); its inverse is the {j, l} block of B (η > 0)."""
    F = _check(F, eta)
    if eta <= 0:
        raise ValueError("the Schur form needs η > 0")
    K = F.shape[1]
    if not (0 <= j < K and 0 <= l < K and j != l):
        raise ValueError(f"need two distinct columns in 0..{K - 1}, got j={j}, l={l}")
    rest = np.delete(F, [j, l], axis=1)
    pair = F[:, [j, l]]
    return pair.T @ _projector_apply(rest, eta, pair) + eta * np.eye(2)


def leave_pair_out_similarity(F: np.ndarray, eta: float, j: int, l: int) -> float:
    """f̃_jᵀ P_{η,−jl} f̃_l, the "residual similarity" of Theorem 6: sgn(B_jl) = −sgn(this)."""
    return float(pair_schur_block(F, eta, j, l)[0, 1])


def full_projector_gram(F: np.ndarray, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """(F̃ᵀP_ηF̃ computed with P_η = I − F̃BF̃ᵀ, and ηI − η²B): equal by the identity (η > 0)."""
    F = _check(F, eta)
    B = ridge_inverse(F, eta)
    FtF = F.T @ F
    direct = FtF - FtF @ B @ FtF
    return direct, eta * np.eye(F.shape[1]) - eta**2 * B


@dataclass(frozen=True)
class RepulsionStatistic:
    """P[B_jl < 0 | cos(f̃_j, f̃_l) > 0] on the ``top_pairs`` most similar pairs (by |cos|, as the bridge) and on
    all pairs with cos > 0; counts so that the fractions can be pooled."""

    top_pairs: int
    top_positive: int  # pairs among the top with cos > 0
    top_negative_B: int  # ... of which B_jl < 0
    all_positive: int
    all_negative_B: int
    eta: float

    @property
    def p_top(self) -> float:
        return self.top_negative_B / self.top_positive if self.top_positive else float("nan")

    @property
    def p_all(self) -> float:
        return self.all_negative_B / self.all_positive if self.all_positive else float("nan")


def repulsion_statistic(F: np.ndarray, eta: float, top_pairs: int = 200) -> RepulsionStatistic:
    """The meaningful Theorem-6 statistic [R] (theory reference §7.8) of the centred activations ``F`` (n×K; centre over
    samples first: F̃ = F − mean_i F_i). Columns with zero norm are left out (their cosine is undefined)."""
    F = _check(F, eta)
    norms = np.linalg.norm(F, axis=0)
    live = norms > 0
    F = F[:, live]
    K = F.shape[1]
    if K < 2:
        raise ValueError("need at least two non-zero columns")
    B = ridge_inverse(F, eta)
    Fn = F / norms[live]
    cos = Fn.T @ Fn
    iu = np.triu_indices(K, 1)
    c, b = cos[iu], B[iu]
    k = min(int(top_pairs), c.size)
    top = np.argpartition(-np.abs(c), k - 1)[:k] if k < c.size else np.arange(c.size)
    pos_top = c[top] > 0
    pos = c > 0
    return RepulsionStatistic(
        top_pairs=k, top_positive=int(pos_top.sum()), top_negative_B=int((b[top][pos_top] < 0).sum()),
        all_positive=int(pos.sum()), all_negative_B=int((b[pos] < 0).sum()), eta=float(eta))


# --- the symbolic steps -----------------------------------------------------------------------------------------


@derivation("li2.theorem6_identity")
@cache
def _theorem6() -> Derivation:
    a, d, eta, lam = sp.symbols("a d eta lambda", positive=True)
    c = sp.Symbol("c", real=True)
    p, q, r = sp.symbols("p q r", real=True)
    S = sp.Matrix([[a, c], [c, d]])
    Sinv = S.inv()
    # 1×1 blocks stand in for the pair block and the rest: the (1,1) entry of [[p, q], [q, r]]⁻¹ is 1/(p − q²/r).
    M2 = sp.Matrix([[p, q], [q, r]])
    return Derivation(
        name="li2.theorem6_identity",
        statement=sp.Eq(sp.Symbol("B_jl"), -c / (a * d - c**2)),
        source="[R] theory reference §6.18 (Tian 2509.21519 Theorem 6 is the Schur complement of F̃ᵀF̃ + ηI)",
        steps=(
            Step("Schur: (M⁻¹)_pair = (M_pp − M_pr M_rr⁻¹ M_rp)⁻¹ (scalar blocks)",
                 lhs=M2.inv()[0, 0], rhs=1 / (p - q**2 / r)),
            Step("2×2 inverse: (S⁻¹)₁₂ = −S₁₂/det S", lhs=Sinv[0, 1], rhs=-c / (a * d - c**2)),
            Step("det S = ad − c²", lhs=S.det(), rhs=(a * d - c**2)),
            Step("push-through: 1 − a/(a+η) = η/(a+η), so P_{η,−jl} = η(F̃₋F̃₋ᵀ+ηI)⁻¹ ≻ 0",
                 lhs=1 - lam / (lam + eta),
                 rhs=eta / (lam + eta)),
            Step("full projector: a − a²/(a+η) = η − η²/(a+η), so F̃ᵀP_ηF̃ = ηI − η²B",
                 lhs=lam - lam**2 / (lam + eta),
                 rhs=(eta - eta**2 / (lam + eta))),
        ),
        assumptions="η > 0; S = [f̃_j f̃_l]ᵀP_{η,−jl}[f̃_j f̃_l] + ηI₂ is positive definite (det S > 0), hence "
                    "sgn(B_jl) = −sgn(S₁₂) = −sgn(f̃_jᵀP_{η,−jl}f̃_l)",
    )
