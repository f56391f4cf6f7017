"""Davis–Kahan: how far an eigenvector of a symmetric matrix turns under a perturbation, in its valid forms.

Setting (theory reference §3.6, §6.4, §6.7): A is symmetric with eigenpairs (λ_j, v_j), λ descending; Â = A + E with
eigenpairs (λ̂_j, v̂_j); θ_j = ∠(v_j, v̂_j) and gap_j = min_{k≠j} |λ_j − λ_k| is the gap of the *unperturbed* A. For
the update Gram (or its dual C = XᵀX) A, E, λ and gap_j are all in **λ = σ² units**, so ‖E‖/gap is dimensionless.

Theorems (never fail; property-tested in ``tests/test_theory_spectral.py``):

* Yu–Wang–Samworth (2015):  sin θ_j ≤ 2‖E‖_op/gap_j                                 ``sin_theta_bound_yws``
* residual form:            sin θ_j ≤ ‖E v_j‖/min_{k≠j} |λ_j − λ̂_k|                   ``residual_bound``
* subspace form (YWS):      ‖sin Θ(V_{1:k}, V̂_{1:k})‖_F ≤ 2 min(√k‖E‖_op, ‖E‖_F)/(λ_k − λ_{k+1})  ``subspace_bound``
* Weyl:                     max_j |λ̂_j − λ_j| ≤ ‖E‖_op                               ``weyl_shift``
* Hoffman–Wielandt:         √Σ_j (λ̂_j − λ_j)² ≤ ‖E‖_F                                ``hoffman_wielandt_shift``

Not a theorem: the factor-free sin θ_j ≤ ‖E‖/gap_j as the thesis quotes it (Thm 9.1, [C]) fails on about 0.2 % of
random instances, all with ‖E‖_op/gap ∈ (0.3, 1) (theory reference §3.6). ``find_factor_free_counterexample`` produces
one; ``two_by_two_counterexample`` is a closed-form one (derivation ``davis_kahan.two_by_two``). To first order it is
right, with room to spare: 1 − cos²θ_j ≤ ‖E‖_F²/(2 gap_j²) + O(‖E‖³) (derivation ``davis_kahan.first_order``).
So α-DK = 1 − C‖ΔG‖²/gap² (C = 1, ``numerics.stability``) is a first-order estimate, and a rigorous lower bound on
cos²θ_j once ‖E‖_op ≤ (1 − 1/√2)/2·gap_j ≈ 0.146·gap_j (``alpha_dk_bound``).

Only numpy and sympy are imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from theory.derivation import Derivation, Step, derivation
from theory.registry import register
from theory.symbols import dG_norm, gap_lambda

__all__ = [
    "ALPHA_DK_VALID_RATIO",
    "FactorFreeCounterexample",
    "alpha_dk_bound",
    "eigh_desc",
    "factor_free_bound",
    "find_factor_free_counterexample",
    "hoffman_wielandt_shift",
    "match_by_index",
    "match_by_overlap",
    "residual_bound",
    "sin_theta",
    "sin_theta_bound_yws",
    "sin_theta_subspace_F",
    "subspace_bound",
    "two_by_two_counterexample",
    "weyl_shift",
]


# ----- measured quantities ---------------------------------------------------------------------------------


def eigh_desc(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns, same order) of a symmetric matrix, via ``eigh``."""
    lam, V = np.linalg.eigh(np.asarray(A, dtype=np.float64))
    return lam[::-1], V[:, ::-1]


def sin_theta(v: np.ndarray, v_hat: np.ndarray) -> float:
    """sin ∠(v, v̂) = √(1 − cos²), cos = |⟨v, v̂⟩|/(‖v‖‖v̂‖); sign-blind, as an eigenvector's sign is arbitrary."""
    v, v_hat = np.asarray(v, dtype=np.float64), np.asarray(v_hat, dtype=np.float64)
    cos = abs(float(v @ v_hat)) / (float(np.linalg.norm(v)) * float(np.linalg.norm(v_hat)))
    return math.sqrt(max(0.0, 1.0 - cos * cos))  # rounding can push cos a hair above 1


def sin_theta_subspace_F(V: np.ndarray, V_hat: np.ndarray) -> float:
    """‖sin Θ(V, V̂)‖_F = √(k − ‖VᵀV̂‖_F²) for two P×k matrices with orthonormal columns."""
    V, V_hat = np.asarray(V, dtype=np.float64), np.asarray(V_hat, dtype=np.float64)
    k = V.shape[1]
    return math.sqrt(max(0.0, k - float(np.linalg.norm(V.T @ V_hat)) ** 2))


def weyl_shift(lam: np.ndarray, lam_hat: np.ndarray) -> float:
    """max_j |λ̂_j − λ_j| with both spectra sorted descending; Weyl's theorem: ≤ ‖E‖_op (λ units; a theorem)."""
    a, b = _paired(lam, lam_hat)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def hoffman_wielandt_shift(lam: np.ndarray, lam_hat: np.ndarray) -> float:
    """√Σ_j (λ̂_j − λ_j)² with both spectra sorted descending; Hoffman–Wielandt: ≤ ‖E‖_F (λ units; a theorem).

    This is the author's code proxy for ‖ΔG‖_F ([C] ``theory_experiment_match.py``), so the proxy can only
    under-state the perturbation (``numerics.stability.delta_lambda_norm`` uses it).
    """
    a, b = _paired(lam, lam_hat)
    return float(np.linalg.norm(a - b))


def _paired(lam: np.ndarray, lam_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(lam, dtype=np.float64)
    b = np.asarray(lam_hat, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"two spectra of the same length are needed, got shapes {a.shape} and {b.shape}")
    # Weyl and Hoffman–Wielandt pair the eigenvalues in sorted order; any other pairing is not what they bound.
    return np.sort(a)[::-1], np.sort(b)[::-1]


# ----- bounds ----------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float:
    if num < 0:
        raise ValueError(f"a norm must be ≥ 0, got {num!r}")
    if den <= 0:
        return math.inf
    with np.errstate(over="ignore"):  # a gap near the float minimum: the bound is +inf, which is right
        return float(np.float64(num) / np.float64(den))


def sin_theta_bound_yws(E_op: float, gap: float) -> float:
    """sin θ_j ≤ 2‖E‖_op/gap_j (Yu–Wang–Samworth 2015, Biometrika 102; a theorem; [R] theory reference §3.6 (i)).

    ``E_op`` = ‖E‖_op and ``gap`` = gap_j of the *unperturbed* matrix, both in λ units; the result is
    dimensionless (compare it with sin θ_j ∈ [0, 1]). A gap ≤ 0 gives +inf.
    """
    return 2.0 * _ratio(E_op, gap)


def residual_bound(residual_norm: float, lam_j: float, lam_hat_others: np.ndarray) -> float:
    """sin θ_j ≤ ‖E v_j‖/min_{k≠j} |λ_j − λ̂_k| (residual form of the Davis–Kahan sin θ theorem; a theorem; [R] §3.6).

    ``residual_norm`` = ‖E v_j‖ = ‖(Â − λ_j)v_j‖ for the unperturbed eigenpair (λ_j, v_j); ``lam_hat_others`` are
    the eigenvalues of Â = A + E other than the j-th (λ units). No factor 2, but the denominator mixes the two
    spectra, so it needs Â's eigenvalues.
    """
    others = np.asarray(lam_hat_others, dtype=np.float64)
    return _ratio(residual_norm, float(np.min(np.abs(lam_j - others))) if others.size else math.inf)


def subspace_bound(E_op: float, E_F: float, k: int, lam_k: float, lam_k1: float) -> float:
    """‖sin Θ(V_{1:k}, V̂_{1:k})‖_F ≤ 2·min(√k‖E‖_op, ‖E‖_F)/(λ_k − λ_{k+1}) (Yu–Wang–Samworth; a theorem).

    The dominant block of the spectral edge is k = k*: its rotation is protected by λ_{k*} − λ_{k*+1} = 2d̄g
    ([R] theory reference §3.6 (iii), §6.19). λ units in, dimensionless out.
    """
    return 2.0 * _ratio(min(math.sqrt(k) * E_op, E_F), lam_k - lam_k1)


def factor_free_bound(E_norm: float, gap: float) -> float:
    """‖E‖/gap_j, the bound as the thesis quotes it (Thm 9.1, [C]). **Not a theorem.**

    It fails on about 0.2 % of random instances, all with ‖E‖_op/gap ∈ (0.3, 1) (theory reference §3.6; worst sin
    θ/bound ≈ 1.71 with the operator norm, ≈ 1.30 with the Frobenius norm); see ``find_factor_free_counterexample`` and
    ``two_by_two_counterexample``. Valid to first order, ‖E‖ ≪ gap_j. λ units in, dimensionless out.
    """
    return _ratio(E_norm, gap)


#: ‖E‖_op/gap_j up to which ``alpha_dk_bound`` is a theorem: (1 − 1/√2)/2 ≈ 0.146 ([R], proof in its docstring).
ALPHA_DK_VALID_RATIO: float = (1 - 1 / math.sqrt(2)) / 2


def alpha_dk_bound(E_F: float, gap: float) -> float:
    """max(0, 1 − ‖E‖_F²/gap_j²), the α-DK form with C = 1: a lower bound on cos²θ_j when ‖E‖_op ≤ 0.146·gap_j.

    A theorem for ‖E‖_op ≤ ``ALPHA_DK_VALID_RATIO``·gap_j ([R], our proof; theory reference §6.7 found 0 violations in
    4.9×10⁵ instances with ‖E‖_op < 0.1·gap_j): take μ = v_jᵀÂv_j = λ_j + E_jj; the residual form with shift μ gives
    sin θ_j ≤ ‖(I − v_jv_jᵀ)Ev_j‖/min_{k≠j}|μ − λ̂_k|. By Weyl the denominator is ≥ gap_j − 2‖E‖_op, and
    ‖(I − v_jv_jᵀ)Ev_j‖² = Σ_{k≠j} E_jk² ≤ ‖E‖_F²/2 (in A's eigenbasis each off-diagonal entry appears twice in
    ‖E‖_F²). So sin²θ_j ≤ ‖E‖_F²/(2(gap_j − 2‖E‖_op)²) ≤ ‖E‖_F²/gap_j² while (gap_j − 2‖E‖_op)² ≥ gap_j²/2.
    Beyond that regime it is only the first-order estimate of derivation ``davis_kahan.first_order`` and can fail.
    λ units in, dimensionless out.
    """
    return max(0.0, 1.0 - _ratio(E_F, gap) ** 2)


# ----- counterexamples to the factor-free form -------------------------------------------------------------


@dataclass(frozen=True)
class FactorFreeCounterexample:
    """A symmetric G and a perturbation E for which sin θ_j > ‖E‖/gap_j (the factor-free form fails).

    ``j`` is 0-indexed into G's eigenvalues sorted descending; ``norm`` says which ‖E‖ (``"op"`` or ``"F"``);
    ``gap`` is gap_j of G, ``bound`` = ‖E‖/gap_j and ``yws`` = 2‖E‖_op/gap_j, which does hold.
    """

    G: np.ndarray
    E: np.ndarray
    j: int
    sin_theta: float
    bound: float
    yws: float
    gap: float
    norm: str

    @property
    def ratio(self) -> float:
        """sin θ_j/(‖E‖/gap_j) > 1: by how much the factor-free form fails."""
        return self.sin_theta / self.bound


def _measure(G: np.ndarray, E: np.ndarray, j: int, norm: str) -> FactorFreeCounterexample:
    lam, V = eigh_desc(G)
    _, V_hat = eigh_desc(G + E)
    gap = float(np.min(np.abs(lam[j] - np.delete(lam, j))))
    E_op = float(np.linalg.norm(E, 2))
    E_norm = E_op if norm == "op" else float(np.linalg.norm(E))
    return FactorFreeCounterexample(
        G=G,
        E=E,
        j=j,
        sin_theta=sin_theta(V[:, j], V_hat[:, j]),
        bound=factor_free_bound(E_norm, gap),
        yws=sin_theta_bound_yws(E_op, gap),
        gap=gap,
        norm=norm,
    )


def find_factor_free_counterexample(
    rng: np.random.Generator,
    *,
    max_tries: int = 20_000,
    n_range: tuple[int, int] = (2, 6),
    ratio_range: tuple[float, float] = (0.3, 1.0),
    norm: str = "op",
    margin: float = 1e-6,
) -> FactorFreeCounterexample | None:
    """A random instance (G, E, j) with sin θ_j > (1 + margin)·‖E‖/gap_j, or None after ``max_tries``.

    Each try draws n ∈ [n_range) (n×n), G = Q diag(λ) Qᵀ with λ i.i.d. N(0, 1), a mode j, and a symmetric Gaussian
    E rescaled to ‖E‖_op = r·gap_j with r uniform in ``ratio_range`` — the region (0.3, 1) where all of spec
    §3.6's failures lie; there about 1.5 % of tries fail the operator-norm form (seed 0 finds one in ~200).
    ``norm`` picks ‖E‖_op (``"op"``) or ‖E‖_F (``"F"``, rarer failures) in the bound.
    """
    if norm not in ("op", "F"):
        raise ValueError(f"norm must be 'op' or 'F', got {norm!r}")
    for _ in range(max_tries):
        n = int(rng.integers(*n_range))
        lam = np.sort(rng.standard_normal(n))[::-1]
        Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
        G = (Q * lam) @ Q.T
        G = (G + G.T) / 2
        j = int(rng.integers(n))
        gap = float(np.min(np.abs(lam[j] - np.delete(lam, j))))
        E = rng.standard_normal((n, n))
        E = (E + E.T) / 2
        E *= rng.uniform(*ratio_range) * gap / np.linalg.norm(E, 2)
        found = _measure(G, E, j, norm)
        if found.sin_theta > found.bound * (1 + margin):
            return found
    return None


def two_by_two_counterexample(gap: float = 1.0, eps: float = 0.1) -> FactorFreeCounterexample:
    """The closed-form counterexample of derivation ``davis_kahan.two_by_two`` (needs 0 < ε < 1/2).

    G = diag(gap, 0), E = gap·[[−1/2, ε], [ε, 1/2]]: G + E has equal diagonal entries, so its eigenvectors are
    (1, ±1)/√2 and θ₁ = π/4 exactly, while ‖E‖_op/gap = √(1/4 + ε²) < 1/√2 = sin θ₁. λ units for ``gap``.
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"the 2×2 counterexample needs 0 < eps < 1/2, got {eps!r}")
    G = np.diag([gap, 0.0])
    E = gap * np.array([[-0.5, eps], [eps, 0.5]])
    return _measure(G, E, 0, "op")


# ----- derivations -----------------------------------------------------------------------------------------

_theta = sp.Symbol("theta", real=True)
_eps = sp.Symbol("epsilon", positive=True)


def _rotation(theta: sp.Expr) -> sp.Matrix:
    return sp.Matrix([[sp.cos(theta), -sp.sin(theta)], [sp.sin(theta), sp.cos(theta)]])


@derivation("davis_kahan.two_by_two")
@cache
def two_by_two() -> Derivation:
    """Exact 2×2 rotation angle, and the closed-form counterexample to the factor-free bound."""
    p, q, r = sp.symbols("p q r", real=True)
    M = sp.Matrix([[p, q], [q, r]])
    off = (_rotation(_theta).T * M * _rotation(_theta))[0, 1]
    g = gap_lambda
    G = sp.diag(g, 0)
    E = g * sp.Matrix([[-sp.Rational(1, 2), _eps], [_eps, sp.Rational(1, 2)]])
    E_op = g * sp.sqrt(sp.Rational(1, 4) + _eps**2)
    sin_t = sp.sin(sp.pi / 4)
    return Derivation(
        name="davis_kahan.two_by_two",
        statement=sp.StrictGreaterThan(sin_t, E_op / g, evaluate=False),
        source="[R] theory reference §3.6 (the factor-free form of [C] Thm 9.1 is not a theorem)",
        steps=(
            Step(
                "off-diagonal of R(θ)ᵀMR(θ) = ½(r − p) sin 2θ + q cos 2θ, so tan 2θ = 2q/(p − r)",
                lhs=off, rhs=(sp.Rational(1, 2) * (r - p) * sp.sin(2 * _theta) + q * sp.cos(2 * _theta)),
            ),
            Step(
                "G + E has equal diagonal, so θ = π/4 diagonalises it",
                lhs=(G + E)[0, 0],
                rhs=(G + E)[1, 1],
            ),
            Step("‖E‖_op = gap·√(1/4 + ε²): det E = −‖E‖_op², so ±‖E‖_op are E's eigenvalues",
                 lhs=E.det(), rhs=-(E_op**2)),
            Step("E's eigenvalues come in a ± pair (trace 0)", lhs=E[0, 0], rhs=-E[1, 1]),
            Step(
                "sin²θ − (‖E‖_op/gap)² = 1/4 − ε² > 0 for ε < 1/2",
                lhs=sin_t**2 - (E_op / g) ** 2, rhs=(sp.Rational(1, 4) - _eps**2),
            ),
            Step("YWS holds: (2‖E‖_op/gap)² = 1 + 4ε² ≥ 1 ≥ sin²θ", lhs=(2 * E_op / g) ** 2, rhs=(1 + 4 * _eps**2)),
        ),
        assumptions="G = diag(gap, 0), E = gap·[[−1/2, ε], [ε, 1/2]], 0 < ε < 1/2; λ units",
        notes="sin θ/bound → √2 as ε → 0; random search reaches ≈ 1.71 for n ≤ 5 (theory reference §3.6)",
    )


@derivation("davis_kahan.first_order")
@cache
def first_order() -> Derivation:
    """First-order rotation of v_1 under G + εE (3×3 suffices to show the pattern), and the α-DK relation."""
    l1, l2, l3 = sp.symbols("lambda_1:4", real=True)
    e = {(i, k): sp.Symbol(f"E_{min(i, k)}{max(i, k)}", real=True) for i in range(1, 4) for k in range(1, 4)}
    E = sp.Matrix(3, 3, lambda i, k: e[(i + 1, k + 1)])
    Lam = sp.diag(l1, l2, l3)
    x = sp.Matrix([0, e[(2, 1)] / (l1 - l2), e[(3, 1)] / (l1 - l3)])  # first-order correction of v_1 = e_1
    e1 = sp.Matrix([1, 0, 0])
    first = (Lam - l1 * sp.eye(3)) * x + (E - e[(1, 1)] * sp.eye(3)) * e1  # O(ε) part of the eigen-equation
    mu1 = sp.Symbol("mu_1")  # unknown first-order eigenvalue shift
    xs = sp.symbols("xi_1:4")  # unknown first-order eigenvector correction
    first_mu = (Lam - l1 * sp.eye(3)) * x + (E - mu1 * sp.eye(3)) * e1
    first_x = (Lam - l1 * sp.eye(3)) * sp.Matrix(xs) + (E - e[(1, 1)] * sp.eye(3)) * e1
    assert first == first_mu.subs(mu1, e[(1, 1)])
    # cos²θ of v̂ = e_1 + εx + ε²y (x ⊥ e_1; y arbitrary) expanded to O(ε²)
    x2, x3, y1, y2, y3 = sp.symbols("x_2 x_3 y_1 y_2 y_3", real=True)
    eps = sp.Symbol("epsilon", real=True)
    vhat = sp.Matrix([1 + eps**2 * y1, eps * x2 + eps**2 * y2, eps * x3 + eps**2 * y3])
    cos2 = vhat[0] ** 2 / (vhat.T * vhat)[0]
    cos2_series = sp.series(cos2, eps, 0, 3).removeO()
    # exact 2×2: tan 2θ = 2εq/(gap + ε(a − b)), so cos²θ = (1 + 1/√(1 + tan²2θ))/2
    a, b, q = sp.symbols("a b q", real=True)
    g = gap_lambda
    den = g + eps * (a - b)
    cos2_exact = (1 + den / sp.sqrt(den**2 + 4 * eps**2 * q**2)) / 2
    F2 = sum(E[i, k] ** 2 for i in range(3) for k in range(3))
    theta_j = sp.Symbol("theta_j", real=True)
    # the exact regime of alpha_dk_bound: a unit v = cos θ·v̂_j + sin θ·w, w an eigenvector of Â for λ̂_k
    lh_j, lh_k, mu = sp.symbols("lambdahat_j lambdahat_k mu", real=True)
    v = sp.Matrix([sp.cos(theta_j), sp.sin(theta_j)])
    resid2 = ((sp.diag(lh_j, lh_k) - mu * sp.eye(2)) * v).norm() ** 2
    x0 = (1 - 1 / sp.sqrt(2)) * g / 2
    return Derivation(
        name="davis_kahan.first_order",
        statement=sp.LessThan(sp.sin(theta_j) ** 2, dG_norm**2 / (2 * gap_lambda**2), evaluate=False),
        source=("[R] first-order perturbation theory; relates α-DK ([C] draft Def 6.1) to cos²θ "
                "(theory reference §3.6, §6.7)"),
        steps=(
            Step("O(ε) eigen-equation, component 1: the shift is λ̂_1 − λ_1 = εE_11",
                 lhs=sp.solve(first_mu[0], mu1)[0], rhs=e[(1, 1)]),
            Step("O(ε) eigen-equation, component 2: x_2 = E_21/(λ_1 − λ_2)",
                 lhs=sp.solve(first_x[1], xs[1])[0], rhs=e[(2, 1)] / (l1 - l2)),
            Step("O(ε) eigen-equation, component 3: x_3 = E_31/(λ_1 − λ_3)",
                 lhs=sp.solve(first_x[2], xs[2])[0], rhs=e[(3, 1)] / (l1 - l3)),
            Step(
                "cos²θ = 1 − ε²‖x‖² + O(ε³) whatever the O(ε²) correction y",
                lhs=cos2_series, rhs=(1 - eps**2 * (x2**2 + x3**2)),
            ),
            Step(
                "exact 2×2 angle agrees: cos²θ = 1 − ε²q²/gap² + O(ε³)",
                lhs=sp.series(cos2_exact, eps, 0, 3).removeO(), rhs=(1 - eps**2 * q**2 / g**2),
            ),
            Step(
                "‖E‖_F² − 2Σ_{k≠1}E_1k² is a sum of squares, so ‖x‖² ≤ Σ_{k≠1}E_1k²/gap² ≤ ‖E‖_F²/(2gap²)",
                lhs=F2
                - 2 * (e[(1, 2)] ** 2 + e[(1, 3)] ** 2),
                rhs=(e[(1, 1)] ** 2 + e[(2, 2)] ** 2 + e[(3, 3)] ** 2 + 2 * e[(2, 3)] ** 2),
            ),
            Step(
                "‖(Â − μ)v‖² = cos²θ(λ̂_j − μ)² + sin²θ(λ̂_k − μ)² ≥ sin²θ·min_{k≠j}|λ̂_k − μ|² (residual form)",
                lhs=sp.expand(resid2),
                rhs=sp.expand(sp.cos(theta_j) ** 2 * (lh_j - mu) ** 2 + sp.sin(theta_j) ** 2 * (lh_k - mu) ** 2),
            ),
            Step(
                "exact regime: (gap − 2‖E‖_op)² ≥ gap²/2 up to ‖E‖_op = (1 − 1/√2)·gap/2",
                lhs=(g - 2 * x0) ** 2, rhs=g**2 / 2,
            ),
        ),
        assumptions="E = ΔG; λ_1 simple, ε‖E‖ ≪ gap_1; the inequality holds to O(ε²), not beyond (see two_by_two)",
        notes=(
            "α-DK = 1 − C‖ΔG‖²/gap² with C = 1 allows twice the first-order rotation; C = 1/2 is the first-order "
            "Frobenius bound. With C = 1 it is exact for ‖E‖_op ≤ 0.146·gap (alpha_dk_bound: residual form with "
            "μ = λ_j + E_jj, Weyl, and the sum of squares above); beyond, higher orders can break it "
            "(factor-free counterexamples at ‖E‖_op/gap ≳ 0.3)."
        ),
    )


@register(
    "davis_kahan_matching",
    "by_overlap",
    source="[R] theory reference §0.1 errata 6: eigenvectors keep their label; match modes by maximal |overlap|",
    version="errata 2026-12",
    default=True,
)
def match_by_overlap(V_old: np.ndarray, V_new: np.ndarray) -> np.ndarray:
    """perm with V_new[:, perm[j]] the partner of V_old[:, j], chosen greedily by the largest |⟨v_j, v̂_k⟩|.

    Default because the Frobenius form sin θ_j ≤ ‖ΔG‖_F/gap_j was never violated when modes keep their label; its
    apparent violations ("worst ratio 1.30") come from index matching across a label swap, possible once
    ‖E‖_op ≥ gap/2 (errata 6). Columns are eigenvectors; returns an integer array (a permutation).
    """
    O = np.abs(np.asarray(V_old, dtype=np.float64).T @ np.asarray(V_new, dtype=np.float64))
    k = O.shape[0]
    perm = np.full(k, -1, dtype=int)
    for _ in range(k):
        j, m = np.unravel_index(np.argmax(O), O.shape)
        perm[j] = m
        O[j, :] = -1.0
        O[:, m] = -1.0
    return perm


@register(
    "davis_kahan_matching",
    "by_index",
    source="[C] thesis §6.7 as quoted: mode j of one window compared with mode j of the next (sorted by λ)",
    version="thesis Thm 9.1 tests",
)
def match_by_index(V_old: np.ndarray, V_new: np.ndarray) -> np.ndarray:
    """The identity permutation: mode j ↔ mode j by eigenvalue rank; wrong across a label swap (errata 6)."""
    return np.arange(np.asarray(V_old).shape[1])
