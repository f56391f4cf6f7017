"""The linear model (NTK regime): gradient descent on least squares gives an exactly known window Gram.

Model (theory reference §3.2 "NTK characterisation", §6.12) [R]: f(θ) = Jθ with J ∈ ℝ^{n×P}, loss L = ½‖Jθ − y‖² (no
1/n: with L = (1/2n)‖·‖² replace K by K/n), residual r_s = Jθ_s − y, GD θ_{s+1} = θ_s − ηJᵀr_s. Then r_{s+1} = (I −
ηK)r_s with the NTK Gram K = JJᵀ (eigenpairs κ_i, q_i), so the update is

    δ_s = θ_{s+1} − θ_s = −ηJᵀ(I − ηK)^s r₀                                         (exact)

With w_i = Jᵀq_i/√κ_i (orthonormal in ℝ^P), X = Σ_i a_i w_iᵀ and the window Gram G = XXᵀ = Σ_i a_i a_iᵀ, a sum of
rank-one terms with geometric temporal profiles a_i(s) = −η√κ_i⟨r₀, q_i⟩(1 − ηκ_i)^s (σ units: ‖a_i‖ is a
singular-value-sized quantity; G is in λ units). ``linear_model_updates`` simulates GD; ``ntk_gram`` is the closed
form; they agree to rounding.

Modes with ηWκ_i ≪ 1 barely change within a window and merge into one "drift" direction; modes with ηWκ_i ≳ 1
are resolvable. Hence the Krylov count ``krylov_kstar_bound`` = #{i : ηWκ_i ≳ 1} + 1 as an *expected* upper bound
on k*. It is a statistical tendency, not a theorem (§6.12), and it needs a noise floor: see its docstring. For
MSE the Gauss–Newton Hessian JᵀJ has the non-zero spectrum of K, so the draft's Hessian count (Prop 2.6 [C]) is the
same count without the +1.

Only numpy is imported.
"""

from __future__ import annotations

import numpy as np

from theory.registry import register

__all__ = [
    "krylov_kstar_bound",
    "krylov_kstar_bound_draft",
    "linear_model_updates",
    "ntk_eigenpairs",
    "ntk_gram",
    "ntk_profiles",
]


def _check(J: np.ndarray, r0: np.ndarray, eta: float) -> tuple[np.ndarray, np.ndarray]:
    J = np.asarray(J, dtype=np.float64)
    r0 = np.asarray(r0, dtype=np.float64)
    if J.ndim != 2 or r0.shape != (J.shape[0],):
        raise ValueError(f"J must be n×P and r0 of length n, got J {J.shape} and r0 {r0.shape}")
    if not eta > 0:
        raise ValueError(f"the learning rate η must be > 0, got {eta!r}")
    return J, r0


def linear_model_updates(J: np.ndarray, r0: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """δ_0 … δ_{steps−1} (rows, steps×P) of GD on L = ½‖Jθ − y‖² from θ₀ = 0, y = −r₀ (so r(θ₀) = r₀) [R].

    A direct simulation (θ and the residual recomputed from θ every step), the twin of the closed form
    ``ntk_gram``. Units: δ in parameter units; η per step.
    """
    J, r0 = _check(J, r0, eta)
    y = -r0
    theta = np.zeros(J.shape[1])
    out = np.empty((steps, J.shape[1]))
    for s in range(steps):
        step = -eta * (J.T @ (J @ theta - y))
        out[s] = step
        theta = theta + step
    return out


def ntk_eigenpairs(J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """κ (descending, clipped at 0) and q (columns) of the NTK Gram K = JJᵀ (n×n; κ in the units of JJᵀ)."""
    J = np.asarray(J, dtype=np.float64)
    kappa, q = np.linalg.eigh(J @ J.T)
    return np.maximum(kappa[::-1], 0.0), q[:, ::-1]


def ntk_profiles(J: np.ndarray, r0: np.ndarray, eta: float, s0: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """(κ, A): A[s, i] = a_i(s0 + s) = −η√κ_i⟨r₀, q_i⟩(1 − ηκ_i)^{s0+s}, s = 0…W−1 (W×n; [R] §3.2).

    Column i is the temporal profile of NTK mode i over the window δ_{s0}, …, δ_{s0+W−1}; X = A·[w_1 … w_n]ᵀ with
    w_i = Jᵀq_i/√κ_i. Modes with κ_i = 0 have a zero profile (J does not move along them).
    """
    J, r0 = _check(J, r0, eta)
    kappa, q = ntk_eigenpairs(J)
    s = np.arange(s0, s0 + W, dtype=np.float64)[:, None]
    A = -eta * np.sqrt(kappa) * (q.T @ r0) * (1.0 - eta * kappa) ** s
    return kappa, A


def ntk_gram(J: np.ndarray, r0: np.ndarray, eta: float, s0: int, W: int) -> np.ndarray:
    """G = Σ_i a_i a_iᵀ, the W×W Gram of the window δ_{s0}, …, δ_{s0+W−1}, from the NTK eigenpairs (λ units; [R]).

    Equal to XXᵀ of ``linear_model_updates(J, r0, eta, s0 + W)[s0:]`` up to rounding (tested to 1e-10 relative).
    """
    _, A = ntk_profiles(J, r0, eta, s0, W)
    return A @ A.T


@register(
    "krylov_bound",
    "ntk",
    source="[R] NTK profiles, theory reference §3.2, §6.12",
    version="reconstruction",
    default=True,
)
def krylov_kstar_bound(kappas: np.ndarray, eta: float, W: int, threshold: float = 1.0) -> int:
    """#{i : ηWκ_i ≥ threshold} + 1, the expected upper bound on k* for a linear model ([R]; a tendency, not a theorem).

    ``kappas`` are NTK eigenvalues κ_i (or Gauss–Newton/Hessian curvatures h_i, same non-zero spectrum for MSE),
    η per step (per checkpoint interval use η·Δs), W the window length; "≳ 1" is made concrete by
    ``threshold``. The resolvable modes each get a direction and the slow ones merge into one drift direction,
    hence the +1.

    Why default (over the draft's count, ``krylov_kstar_bound_draft``): without the +1 a window with no fast mode
    would predict k* ≤ 0, and k* ≥ 1 always.

    When it fails: the slow-mode drift block is a Krylov (Vandermonde-like) sum of nearly constant geometric
    profiles, whose singular values decay faster than geometrically. In noiseless GD the largest ratio
    σ_j/σ_{j+1} therefore sits deep in that tail, and k* exceeds this count in almost every random instance.
    A noise floor (SGD noise; the Marchenko–Pastur scalar shift of §3.1, λ_j → λ_j + ν²P) flattens the tail
    ratios towards 1. With a floor of 10⁻⁴λ₁ (noise 1 % of σ₁ in σ units) the count held in ≈ 99 % of random
    instances (ηWκ_i log-uniform on [10⁻³, 9], 5–20 modes, W = 10), with 10⁻⁶λ₁ in ≈ 87–98 %; never in all:
    modes just below the threshold are sometimes resolved (``tests/test_theory_spectral.py``).
    """
    k = np.asarray(kappas, dtype=np.float64)
    return int(np.sum(eta * W * k >= threshold)) + 1


@register(
    "krylov_bound",
    "draft",
    source="[C] thesis draft Prop 2.6 (k* ≤ #{h_j ≳ 1/(ηW)})",
    version="draft Prop 2.6",
)
def krylov_kstar_bound_draft(kappas: np.ndarray, eta: float, W: int, threshold: float = 1.0) -> int:
    """#{j : h_j ≥ threshold/(ηW)}, the draft's Krylov count K of Hessian directions relaxing in one window ([C]).

    The draft tested it only against literature Hessian counts (theory reference §3.2, §7.7). Can be 0, below any k*.
    """
    k = np.asarray(kappas, dtype=np.float64)
    return int(np.sum(eta * W * k >= threshold))
