"""Spectral loss decomposition (Test 8): the window displacement split over the modes, and the α-weighted prediction.

Exact identity [R, theory reference §3.7, §6.11]: the cumulative displacement over the window is Δθ_win = Σ_a δ_a =
Xᵀ1_W, and with X = Σ_j σ_j u_j v_jᵀ, for every vector g ∈ ℝ^P::

    1ᵀXg = Σ_j σ_j (u_jᵀ1)(v_jᵀg)

(σ units times those of g; sign flips of (u_j, v_j) cancel in each term). With g = ∇L_val this is the first-order
change of the validation loss over the window, mode by mode (exact for linear L).

α-weighted first-order prediction [R; operational form α_j·G_j^tr·G_j^val is [P] dyck_scan
spectral/loss_decomposition.py; the constant and the cross terms are [S]]::

    ΔL_val ≈ −ηW Σ_j α_j G_j^tr G_j^val

from σ_j(u_jᵀ1) ≈ −ηW G_j^tr when δ_a ≈ −η∇L_tr and v_j persists over the window, with α_j discounting rotation.
η per optimizer step (per checkpoint interval η·Δs). For quadratic L the first-order remainder is exactly
ΔL − ⟨∇L, Δθ⟩ = ½ΔθᵀHΔθ.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.symbols import G_tr, G_val, W, alpha, eta

__all__ = [
    "ARGS",
    "MODE_LOSS_ARGS",
    "MODE_LOSS_CONTRIBUTION",
    "WINDOW_DISPLACEMENT_IDENTITY",
    "window_displacement_projection",
]

#: Argument order of ``MODE_LOSS_CONTRIBUTION``.
MODE_LOSS_ARGS: tuple[sp.Symbol, ...] = (eta, W, alpha, G_tr, G_val)
ARGS = MODE_LOSS_ARGS

#: Mode j's first-order share of ΔL_val over one window: −ηW α_j G_j^tr G_j^val  [R; P for α·G^tr·G^val].
MODE_LOSS_CONTRIBUTION: sp.Expr = -eta * W * alpha * G_tr * G_val

_j = sp.Symbol("j", integer=True, positive=True)
_sigma = sp.IndexedBase("sigma")
_u1 = sp.IndexedBase(r"\left(u^{\top}\mathbf{1}\right)")
_vg = sp.IndexedBase(r"\left(v^{\top}g\right)")

#: 1ᵀXg = Σ_j σ_j (u_jᵀ1)(v_jᵀg), for rendering (checked on generic matrices in ``loss_decomposition.window_identity``).
WINDOW_DISPLACEMENT_IDENTITY: sp.Eq = sp.Eq(
    sp.Symbol(r"\mathbf{1}^{\top} X g"), sp.Sum(_sigma[_j] * _u1[_j] * _vg[_j], (_j, 1, W))
)


@derivation("loss_decomposition.window_identity")
@cache
def _window_identity() -> Derivation:
    # X = U S Vᵀ with *generic* U (2×2), V (3×2), S = diag(s): the identity is bilinear algebra, so it holds
    # without orthogonality, hence for the SVD in particular.
    U = sp.Matrix(2, 2, lambda i, k: sp.Symbol(f"u_{i}{k}", real=True))
    V = sp.Matrix(3, 2, lambda i, k: sp.Symbol(f"v_{i}{k}", real=True))
    s = sp.symbols("s_0 s_1", real=True)
    gv = sp.Matrix(3, 1, lambda i, _: sp.Symbol(f"g_{i}", real=True))
    one = sp.ones(2, 1)
    X = U * sp.diag(*s) * V.T
    lhs = (one.T * X * gv)[0, 0]
    rhs = sum(s[k] * (U[:, k].T * one)[0, 0] * (V[:, k].T * gv)[0, 0] for k in range(2))
    return Derivation(
        name="loss_decomposition.window_identity",
        statement=WINDOW_DISPLACEMENT_IDENTITY,
        source="[R] theory reference §3.7, §6.11",
        steps=(Step("1ᵀ(U S Vᵀ)g = Σ_k s_k (u_kᵀ1)(v_kᵀg), W = 2, P = 3", lhs=sp.expand(lhs), rhs=sp.expand(rhs)),),
        assumptions="X = Σ_j σ_j u_j v_jᵀ (any factorisation of that form)",
    )


@derivation("loss_decomposition.mode_contribution")
@cache
def _mode_contribution() -> Derivation:
    # Persistent model: all W updates equal −η∇L_tr, so X = −η 1 ∇L_trᵀ is rank one with σ₁ = η√W‖∇L_tr‖,
    # u₁ = 1/√W, v₁ = −∇L_tr/‖∇L_tr‖ and G₁^tr = v₁ᵀ∇L_tr = −‖∇L_tr‖. Checked on ∇L_tr = (p, q).
    p, q = sp.symbols("p q", real=True)
    grad = sp.Matrix([p, q])
    norm = sp.sqrt(p**2 + q**2)
    sigma1 = eta * sp.sqrt(W) * norm
    u1_dot_1 = W / sp.sqrt(W)  # u₁ = 1/√W, so u₁ᵀ1 = √W
    v1 = -grad / norm
    G1_tr = (v1.T * grad)[0, 0]
    X_row = -eta * grad.T  # every row of X
    sv_row = sigma1 * (1 / sp.sqrt(W)) * v1.T  # the row of σ₁u₁v₁ᵀ
    first_order = sp.Symbol(r"\Delta L_{\mathrm{val}}^{(j)}")
    # Exact for plain GD (errata 7): with X = U S Vᵀ (V orthonormal) v_jᵀXᵀ1 = σ_j(u_jᵀ1), and Xᵀ1 = Σ_a δ_a = −ηW ḡ.
    phi = sp.Symbol("phi", real=True)
    V = sp.Matrix([[sp.cos(phi), -sp.sin(phi)], [sp.sin(phi), sp.cos(phi)]])
    U = sp.Matrix(2, 2, lambda i, k: sp.Symbol(f"u_{i}{k}", real=True))
    s = sp.symbols("s_0 s_1", positive=True)
    X = U * sp.diag(*s) * V.T
    ones = sp.ones(2, 1)
    ga = [sp.Matrix(sp.symbols(f"g_{a}0 g_{a}1", real=True)) for a in range(2)]  # ∇L_tr(θ_a), W = 2 rows
    mean_grad = (ga[0] + ga[1]) / 2
    return Derivation(
        name="loss_decomposition.mode_contribution",
        statement=sp.Eq(first_order, MODE_LOSS_CONTRIBUTION),
        source=("[R] theory reference §3.7 and §0.1 errata 7; [P] α_j G_j^tr G_j^val operational form; "
                "[S] constant, cross terms"),
        steps=(
            Step(
                "exact: v_jᵀ(Xᵀ1) = σ_j(u_jᵀ1) for X = Σ σ_j u_j v_jᵀ (j = 1, 2; V orthonormal)",
                lhs=sp.expand(sp.simplify(V[:, 0].T * X.T * ones)[0, 0]),
                rhs=sp.expand(s[0] * (U[:, 0].T * ones)[0, 0]),
            ),
            Step(
                "exact for plain GD (δ_a = −η∇L_tr(θ_a)): Xᵀ1 = Σ_a δ_a = −ηW·ḡ_tr, so σ_j(u_jᵀ1) = −ηW⟨ḡ_tr, v_j⟩",
                lhs=-eta * ga[0] - eta * ga[1],
                rhs=-eta * 2 * mean_grad,
            ),
            Step("persistent window: −η1∇Lᵀ = σ₁u₁v₁ᵀ (row)", lhs=X_row, rhs=sv_row),
            Step("… where σ₁(u₁ᵀ1) = −ηW G₁^tr (α = 1 exactly)", lhs=sigma1 * u1_dot_1, rhs=-eta * W * G1_tr),
            Step("u₁ = 1/√W has unit norm", lhs=W * (1 / sp.sqrt(W)) ** 2, rhs=1),
            Step(
                "definition: ΔL_val^(j) := −ηW α_j G_j^tr G_j^val (the α-weighted model; an assumption, not derived)",
                lhs=first_order,
                rhs=MODE_LOSS_CONTRIBUTION,
                definition=True,
            ),
        ),
        assumptions=(
            "MODELLING ASSUMPTION [R] (theory reference §0.1 errata 7): in general ⟨ḡ_tr, v_j⟩ is replaced by "
            "α_j·G_j^tr, a point "
            "gradient discounted by the stability α_j; nothing derives this step (measured ratios "
            "σ_j(u_jᵀ1)/(−ηW G_j^tr) on one window: 1.39, 0.12, 0.02, −0.02, −0.14). Exact only for a persistent "
            "window (all δ_a equal, α = 1); first order in η"
        ),
        notes="derived: the exact GD identity σ_j(u_jᵀ1) = −ηW⟨ḡ_tr, v_j⟩; assumed: α_j; cross terms j ≠ k [S]",
    )


@derivation("loss_decomposition.quadratic_remainder")
@cache
def _quadratic_remainder() -> Derivation:
    th = sp.Matrix(sp.symbols("theta_0 theta_1", real=True))
    dth = sp.Matrix(sp.symbols("Delta_0 Delta_1", real=True))
    h00, h01, h11, b0, b1, c0 = sp.symbols("H_00 H_01 H_11 b_0 b_1 c_0", real=True)
    H = sp.Matrix([[h00, h01], [h01, h11]])
    b = sp.Matrix([b0, b1])

    def loss(x: sp.Matrix) -> sp.Expr:
        return (x.T * H * x / 2 + b.T * x)[0, 0] + c0

    grad = H * th + b
    P = sp.Symbol("P", integer=True, positive=True)
    dtheta = sp.MatrixSymbol(r"\Delta\theta", P, 1)
    gradL = sp.MatrixSymbol(r"\nabla{L}", P, 1)
    dL = sp.MatrixSymbol(r"\Delta{L}", 1, 1)
    return Derivation(
        name="loss_decomposition.quadratic_remainder",
        statement=sp.Eq(dL - gradL.T * dtheta, dtheta.T * sp.MatrixSymbol("H", P, P) * dtheta / 2),
        source="[R] theory reference §6.11",
        steps=(
            Step(
                "L = ½θᵀHθ + bᵀθ + c on ℝ²: ΔL − ⟨∇L, Δθ⟩ = ½ΔθᵀHΔθ",
                lhs=sp.expand(loss(th + dth) - loss(th) - (grad.T * dth)[0, 0]),
                rhs=sp.expand((dth.T * H * dth)[0, 0] / 2),
            ),
        ),
        assumptions="L quadratic, H symmetric",
    )


def window_displacement_projection(X: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Per-mode terms σ_j(u_jᵀ1)(v_jᵀg) of 1ᵀXg, for the thin SVD of X, σ descending [R, exact].

    ``X`` is the W×P window (rows δ_a), ``grad`` a P-vector g (e.g. ∇L_val); returns an array of length
    min(W, P) whose sum is 1ᵀXg = ⟨Δθ_win, g⟩ to rounding. Units: σ (of X) times those of g. Sign ambiguities of
    the singular vectors cancel in each term, so the terms are well defined for simple σ_j.
    """
    Xa = np.asarray(X, dtype=np.float64)
    ga = np.asarray(grad, dtype=np.float64)
    if Xa.ndim != 2:
        raise ValueError(f"X must be a W×P matrix, got shape {Xa.shape}")
    if ga.ndim != 1 or ga.shape[0] != Xa.shape[1]:
        raise ValueError(f"grad must be a vector of length P = {Xa.shape[1]}, got shape {ga.shape}")
    if not (np.all(np.isfinite(Xa)) and np.all(np.isfinite(ga))):
        raise ValueError("X and grad must be finite")
    U, s, Vt = np.linalg.svd(Xa, full_matrices=False)
    return s * U.sum(axis=0) * (Vt @ ga)
