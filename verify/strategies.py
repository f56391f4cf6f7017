"""Public hypothesis strategies: random update windows, perturbations and trajectories for property tests.

Every strategy draws plain float64 numpy data, in the units of the thing it models: a window X ∈ ℝ^{w×P} stacks
updates δ (parameter units) as rows, so its singular values σ_j are in σ units and the Gram G = XXᵀ, its
eigenvalues λ_j = σ_j² and every perturbation E of a Gram are in λ = σ² units (theory reference §1.2).
Where a draw goes through a numpy generator, hypothesis draws the seed; the quantities a statement is about (the
singular values of a planted gap, the entries of a perturbation, scales, ranks, window lengths) are drawn by
hypothesis itself, so that a falsifying example shrinks to something readable.

* ``windows(w=, P=, kind=)``: X ∈ ℝ^{w×P}; kinds ``"entries"`` (every entry drawn: exact zeros, 1e-6 next to 10),
  ``"gaussian"`` (i.i.d. N(0, s²)), ``"low_rank_noise"`` (Σ_k s_k a_k b_kᵀ plus i.i.d. noise) and
  ``"planted_gap"`` (exact SVD with a known k*); a tuple of kinds mixes them.
* ``planted_gap_windows(k=, ratio=)``: ``PlantedWindow(X, kstar, sigma)`` with σ_{k*}/σ_{k*+1} ≥ ratio and every
  other consecutive ratio at most ratio/margin, so k* = argmax σ_j/σ_{j+1} is known exactly.
* ``symmetric_perturbations(n=, ratio=)``: ``Perturbation(G, E)``, G symmetric with well-separated eigenvalues and
  E symmetric with ‖E‖_op = r·min_j gap_j (or r·(1 + max|λ|)), for Weyl / Davis–Kahan / Dyson statements.
* ``trajectories(T=, W=, kind=)``: ``Stream(deltas, W)``, T ≥ W + 1 consecutive updates for sliding-window
  statements; ``.windows()`` and ``.extended()`` walk it.
* ``linear_models()``: ``LinearModel(J, r0, eta)`` for gradient descent on least squares (the NTK picture, §3.2).

Property-testing your own statement takes a few lines. The statement below, "argmax σ_j/σ_{j+1} finds a planted
gap", holds; the second one, "k* of a Gaussian window is 1", is false, and hypothesis says so:

>>> from hypothesis import given, settings
>>> from numerics.spectrum import spectrum_from_updates
>>> from verify.strategies import planted_gap_windows, windows
>>> @settings(max_examples=25, database=None, derandomize=True)
... @given(planted_gap_windows(k=(1, 3), ratio=(4.0, 20.0)))
... def test_kstar_finds_the_planted_gap(case):
...     assert spectrum_from_updates(case.X).kstar == case.kstar
>>> test_kstar_finds_the_planted_gap()
>>> @settings(max_examples=50, database=None, derandomize=True)
... @given(windows(w=(3, 8), P=(20, 60), kind="gaussian"))
... def test_kstar_is_always_one(X):
...     assert spectrum_from_updates(X).kstar == 1
>>> try:
...     test_kstar_is_always_one()
... except AssertionError:
...     print("falsified")
falsified

``verify.theorems`` runs the same kind of property over the catalogue of theory reference §6 (``spectral-edge
theorems``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "ELEMENT",
    "KINDS",
    "TRAJECTORY_KINDS",
    "LinearModel",
    "Perturbation",
    "PlantedWindow",
    "Stream",
    "gaussian_window",
    "linear_models",
    "low_rank_window",
    "planted_gap_windows",
    "random_orthonormal",
    "symmetric_perturbations",
    "trajectories",
    "well_separated",
    "windows",
]

#: One window entry for ``kind="entries"``: exact 0, or |x| ∈ [1e-6, 10] of either sign. Far from underflow: the
#: square of 1e-300 is 0, which would make a non-zero X look like a zero window.
ELEMENT = st.one_of(st.just(0.0), st.floats(1e-6, 10), st.floats(-10, -1e-6))

#: Window kinds of ``windows``.
KINDS: tuple[str, ...] = ("entries", "gaussian", "low_rank_noise", "planted_gap")

#: Stream kinds of ``trajectories``.
TRAJECTORY_KINDS: tuple[str, ...] = ("entries", "gaussian", "drift", "gd")

_SEEDS = st.integers(0, 2**32 - 1)

IntRange = int | tuple[int, int]
FloatRange = float | tuple[float, float]


# ----- numpy builders (seeded; no hypothesis) ----------------------------------------------------------------


def gaussian_window(rng: np.random.Generator, w: int, P: int) -> np.ndarray:
    """X ∈ ℝ^{w×P} with i.i.d. N(0, 1) entries (parameter units; σ_j ≈ √P ± √w for w ≪ P, Marchenko–Pastur)."""
    return rng.standard_normal((w, P))


def low_rank_window(rng: np.random.Generator, w: int, P: int, rank: int, noise: float) -> np.ndarray:
    """Σ_k s_k a_k b_kᵀ with well-separated strengths s_k = 10·3^{−k}, plus i.i.d. noise of scale ``noise``.

    a_k ∈ ℝ^w, b_k ∈ ℝ^P Gaussian, rescaled so that the signal rows have norm ≈ s_k·√(P/w)·‖a‖ (parameter units).
    """
    A = rng.standard_normal((w, rank))
    B = rng.standard_normal((rank, P)) / np.sqrt(P)
    s = 10.0 * 3.0 ** -np.arange(rank)
    return (A * s) @ B * np.sqrt(P) / np.sqrt(w) + noise * rng.standard_normal((w, P))


def random_orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """An n×k matrix with orthonormal columns, Haar-distributed (QR of a Gaussian with the sign of R's diagonal)."""
    Q, R = np.linalg.qr(rng.standard_normal((n, k)))
    return Q * np.where(np.diag(R) < 0, -1.0, 1.0)


def well_separated(sigma: np.ndarray, rel: float = 1e-4) -> bool:
    """True when σ is far from rank deficiency and its top ratio beats the runner-up by a factor 1 + rel.

    Under such margins k* and R = σ_{k*}/σ_{k*+1} cannot be flipped by rounding, so invariance statements may
    compare them exactly. ``sigma`` descending, σ units.
    """
    if sigma[-1] < rel * sigma[0]:
        return False
    r = np.sort(sigma[:-1] / sigma[1:])[::-1]
    return r.size == 1 or r[0] > (1 + rel) * r[1]


# ----- helpers -----------------------------------------------------------------------------------------------


def _int_range(x: IntRange, name: str, low: int = 1) -> tuple[int, int]:
    lo, hi = (x, x) if isinstance(x, (int, np.integer)) else (int(x[0]), int(x[1]))
    if not low <= lo <= hi:
        raise ValueError(f"{name} must be an int ≥ {low} or a range (lo, hi) with {low} ≤ lo ≤ hi, got {x!r}")
    return int(lo), int(hi)


def _float_range(x: FloatRange, name: str, low: float = 0.0) -> tuple[float, float]:
    lo, hi = (float(x), float(x)) if isinstance(x, (int, float)) else (float(x[0]), float(x[1]))
    if not (np.isfinite(lo) and np.isfinite(hi) and low <= lo <= hi):
        raise ValueError(f"{name} must be a number ≥ {low} or a range (lo, hi) with {low} ≤ lo ≤ hi, got {x!r}")
    return lo, hi


def _draw_float(draw: st.DrawFn, lo: float, hi: float) -> float:
    return lo if lo == hi else draw(st.floats(lo, hi))


def _kinds(kind: str | Sequence[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``kind`` as a non-empty tuple of names from ``allowed`` (raises ``ValueError`` otherwise)."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not kinds or any(x not in allowed for x in kinds):
        raise ValueError(f"kind must be one of {allowed} or a tuple of them, got {kind!r}")
    return kinds


def _draw_kind(draw: st.DrawFn, kinds: tuple[str, ...]) -> str:
    """The one kind, or one drawn from several (mixed)."""
    return kinds[0] if len(kinds) == 1 else draw(st.sampled_from(kinds))


def _draw_P(draw: st.DrawFn, P: IntRange | None, n: int) -> int:
    """A column count P ≥ n, drawn in ``P`` (default (n, 40))."""
    p_lo, p_hi = (n, max(40, n)) if P is None else _int_range(P, "P")
    return draw(st.integers(max(p_lo, n), max(p_hi, n)))


def _draw_entries(draw: st.DrawFn, shape: tuple[int, int]) -> np.ndarray:
    """An array of ``shape`` with every entry drawn from ``ELEMENT``, not all zero."""
    X = draw(hnp.arrays(np.float64, shape, elements=ELEMENT, fill=st.nothing()))
    assume(np.any(X != 0))
    return X


def _draw_scale(draw: st.DrawFn, log10_scale: FloatRange) -> float:
    """10^e with e drawn in ``log10_scale``: shrinks to e = 0, i.e. unit scale, whenever 0 is in the range."""
    lo, hi = (float(log10_scale), float(log10_scale)) if isinstance(log10_scale, (int, float)) else log10_scale
    if lo == hi:
        return float(10.0**lo)
    return float(10.0 ** draw(st.floats(lo, hi)))


# ----- windows -----------------------------------------------------------------------------------------------


class PlantedWindow(NamedTuple):
    """A window with a planted spectral edge: X = U diag(σ) Vᵀ exactly, so σ(X) = ``sigma`` and k* = ``kstar``.

    ``X``: (w × P) float64; ``kstar``: 1-indexed position of the edge (σ_{k*}/σ_{k*+1} is the largest consecutive
    ratio by the factor ``margin`` of the strategy); ``sigma``: the planted singular values, descending (σ units).
    """

    X: np.ndarray
    kstar: int
    sigma: np.ndarray


def _planted(
    draw: st.DrawFn,
    w: int,
    P: int,
    k: tuple[int, int],
    ratio: tuple[float, float],
    margin: float,
    inner_max: float,
    log10_scale: FloatRange,
) -> PlantedWindow:
    if P < w:
        raise ValueError(f"a planted-gap window needs P ≥ w (orthonormal right singular vectors), got w={w}, P={P}")
    kstar = draw(st.integers(max(1, k[0]), max(1, min(k[1], w - 1))))
    R = _draw_float(draw, *ratio)
    inner_hi = max(1.0, min(inner_max, ratio[0] / margin))
    ratios = [R if j == kstar - 1 else _draw_float(draw, 1.0, inner_hi) for j in range(w - 1)]
    sigma = _draw_scale(draw, log10_scale) / np.cumprod([1.0, *ratios])
    rng = np.random.default_rng(draw(_SEEDS))
    U = random_orthonormal(rng, w, w)
    V = random_orthonormal(rng, P, w)
    return PlantedWindow((U * sigma) @ V.T, kstar, sigma)


def _check_planted(ratio: FloatRange, margin: float, k: IntRange) -> tuple[tuple[float, float], tuple[int, int]]:
    r = _float_range(ratio, "ratio", low=1.0)
    if not margin >= 1:
        raise ValueError(f"margin must be ≥ 1, got {margin!r}")
    if r[0] <= margin:
        raise ValueError(f"the planted ratio must exceed the margin (others ≤ ratio/margin), got {ratio!r}, {margin!r}")
    return r, _int_range(k, "k")


@st.composite
def planted_gap_windows(
    draw: st.DrawFn,
    k: IntRange = (1, 3),
    ratio: FloatRange = (3.0, 30.0),
    *,
    w: IntRange = (2, 12),
    P: IntRange | None = None,
    margin: float = 1.5,
    inner_max: float = 2.0,
    log10_scale: FloatRange = (-2.0, 2.0),
) -> PlantedWindow:
    """``PlantedWindow(X, kstar, sigma)`` with a known k* = argmax_j σ_j/σ_{j+1} ([A] Def 3.1; theory reference §1.3).

    X = U diag(σ) Vᵀ with Haar-random U (w×w) and V (P×w, orthonormal columns), so its singular values are σ to
    rounding. σ_{k*}/σ_{k*+1} = R is drawn in ``ratio`` (a number fixes it); every other consecutive ratio is drawn
    in [1, min(inner_max, ratio_min/margin)], exact ties (ratio 1) included; σ₁ = 10^e with e in ``log10_scale``
    (σ units). k* is drawn in ``k`` and clipped to [1, w − 1]; w is drawn in ``w`` with w ≥ k_min + 1; P in ``P``
    (default (w, 40)), at least w. The dynamic range σ₁/σ_w ≤ R·inner_max^{w−2} keeps λ_w far above rounding.

    >>> from hypothesis import find
    >>> case = find(planted_gap_windows(k=2, ratio=10.0), lambda c: True)
    >>> case.kstar, float(case.sigma[1] / case.sigma[2])
    (2, 10.0)
    """
    r, kk = _check_planted(ratio, margin, k)
    w_lo, w_hi = _int_range(w, "w", low=2)
    n = draw(st.integers(max(w_lo, kk[0] + 1), max(w_hi, kk[0] + 1)))
    Pn = _draw_P(draw, P, n)
    return _planted(draw, n, Pn, kk, r, margin, inner_max, log10_scale)


@st.composite
def windows(
    draw: st.DrawFn,
    w: IntRange = (2, 12),
    P: IntRange | None = None,
    kind: str | Sequence[str] = "entries",
    *,
    extra_rows: int = 0,
    min_w: int | None = None,
    max_w: int | None = None,
    max_P: int | None = None,
    rank: IntRange = (1, 3),
    noise: FloatRange = (0.0, 0.3),
    k: IntRange = (1, 3),
    ratio: FloatRange = (3.0, 30.0),
    log10_scale: FloatRange = (-2.0, 2.0),
) -> np.ndarray:
    """A window X ∈ ℝ^{(w + extra_rows)×P} of updates (rows δ_a, parameter units), float64, never all zero.

    ``w`` and ``P`` are an int or a range (lo, hi); ``P`` defaults to (w, 40), so P ≥ w. ``min_w``, ``max_w`` and
    ``max_P`` are shorthands for the bounds of those ranges. ``extra_rows`` appends rows of the same kind, e.g. 1
    for two consecutive windows X[:-1], X[1:] (theory reference §6.5). ``kind`` (or a tuple of kinds, mixed):

    * ``"entries"``: every entry drawn from ``ELEMENT`` (exact zeros, rank drops, 1e-6 next to 10): adversarial,
      and shrinks entry by entry.
    * ``"gaussian"``: i.i.d. N(0, s²), s = 10^e, e in ``log10_scale`` (a Marchenko–Pastur window, §3.1).
    * ``"low_rank_noise"``: ``low_rank_window`` of rank r in ``rank`` (clipped to the row count) with strengths
      10·3^{−k} and noise level in ``noise``, times s (Axiom 1's signal plus noise, §2).
    * ``"planted_gap"``: as ``planted_gap_windows`` with ``k`` and ``ratio`` over all w + extra_rows rows (needs P
      ≥ w + extra_rows, which the default P range ensures).
    """
    kinds = _kinds(kind, KINDS)
    if extra_rows < 0:
        raise ValueError(f"extra_rows must be ≥ 0, got {extra_rows!r}")
    w_lo, w_hi = _int_range(w, "w", low=1)
    w_lo, w_hi = _int_range((min_w if min_w is not None else w_lo, max_w if max_w is not None else w_hi), "w", 1)
    chosen = _draw_kind(draw, kinds)
    n = draw(st.integers(w_lo, w_hi))
    rows = n + extra_rows
    if P is None:
        lo_P = n if chosen != "planted_gap" else rows
        Pn = draw(st.integers(lo_P, max(max_P or 40, lo_P)))
    else:
        p_lo, p_hi = _int_range(P, "P")
        Pn = draw(st.integers(p_lo, max_P if max_P is not None else p_hi))
    if chosen == "entries":
        return _draw_entries(draw, (rows, Pn))
    if chosen == "planted_gap":
        r, kk = _check_planted(ratio, 1.5, k)
        return _planted(draw, rows, max(Pn, rows), kk, r, 1.5, 2.0, log10_scale).X
    scale = _draw_scale(draw, log10_scale)
    if chosen == "gaussian":
        return scale * gaussian_window(np.random.default_rng(draw(_SEEDS)), rows, Pn)
    r_lo, r_hi = _int_range(rank, "rank")
    r = draw(st.integers(min(r_lo, rows), min(r_hi, rows)))
    nz = _draw_float(draw, *_float_range(noise, "noise"))
    return scale * low_rank_window(np.random.default_rng(draw(_SEEDS)), rows, Pn, r, nz)


# ----- symmetric perturbations -------------------------------------------------------------------------------


#: An entry of E before rescaling: a multiple of 1/8 in [−1, 1] (readable shrunk examples, and a distribution
#: that reaches structured perturbations often), or any float in [−1, 1] (tiny off-diagonals, near-degeneracy).
_E_ENTRY = st.one_of(st.integers(-8, 8).map(lambda k: k / 8), st.floats(-1.0, 1.0, allow_subnormal=False))


class Perturbation(NamedTuple):
    """A symmetric n×n matrix ``G`` and a symmetric perturbation ``E`` (both float64, λ = σ² units)."""

    G: np.ndarray
    E: np.ndarray


@st.composite
def symmetric_perturbations(
    draw: st.DrawFn,
    n: IntRange = (2, 8),
    ratio: FloatRange = (0.0, 1.0),
    *,
    relative_to: str = "gap",
    min_spacing: float = 1e-2,
    psd: bool = False,
    rotate: bool = True,
) -> Perturbation:
    """``Perturbation(G, E)`` for eigenvalue and eigenvector perturbation statements (Weyl, Davis–Kahan, Dyson).

    G = Q diag(λ) Qᵀ: λ_n in [0, 10] if ``psd`` else [−10, 10], and consecutive spacings λ_j − λ_{j+1} drawn in
    [``min_spacing``, 10], so every gap_j = min_{k≠j}|λ_j − λ_k| ≥ min_spacing (0 allows repeated eigenvalues).
    E has its entries drawn in G's eigenbasis (so a falsifying E reads directly as E_jk = u_jᵀEu_k) and is
    rescaled to ‖E‖_op = r·ref, r in ``ratio``, ref = min_j gap_j (``relative_to="gap"``) or 1 + max|λ|
    (``"scale"``); r = 0 or an all-zero draw gives E = 0. Q is Haar-random from a drawn seed; seed 0, the shrink
    target, and ``rotate=False`` give Q = I (G diagonal). Units: λ units for G and E; r dimensionless.
    """
    if relative_to not in ("gap", "scale"):
        raise ValueError(f"relative_to must be 'gap' or 'scale', got {relative_to!r}")
    if not min_spacing >= 0:
        raise ValueError(f"min_spacing must be ≥ 0, got {min_spacing!r}")
    lo, hi = _int_range(n, "n")
    size = draw(st.integers(lo, hi))
    bottom = draw(st.floats(0.0 if psd else -10.0, 10.0))
    spacing = draw(hnp.arrays(np.float64, size - 1, elements=st.floats(min_spacing, max(10.0, min_spacing))))
    lam = bottom + np.concatenate([np.cumsum(spacing[::-1])[::-1], [0.0]])
    upper = draw(hnp.arrays(np.float64, size * (size + 1) // 2, elements=_E_ENTRY))
    E = np.zeros((size, size))
    E[np.triu_indices(size)] = upper
    E = E + np.triu(E, 1).T
    r = _draw_float(draw, *_float_range(ratio, "ratio"))
    gaps = np.abs(lam[:, None] - lam[None, :]) + np.diag(np.full(size, np.inf))
    ref = float(gaps.min()) if (relative_to == "gap" and size > 1) else 1.0 + float(np.abs(lam).max())
    norm = float(np.linalg.norm(E, 2))
    E = (E / norm) * (r * ref) if norm > 0 else E
    seed = draw(_SEEDS) if rotate else 0
    if seed == 0:
        return Perturbation(np.diag(lam), E)
    Q = random_orthonormal(np.random.default_rng(seed), size, size)
    G, E = (Q * lam) @ Q.T, Q @ E @ Q.T
    return Perturbation((G + G.T) / 2, (E + E.T) / 2)


# ----- linear models and trajectories ------------------------------------------------------------------------


class LinearModel(NamedTuple):
    """Least squares f(θ) = Jθ, L = ½‖Jθ − y‖², from θ₀ = 0 with residual r₀ and step η (theory reference §3.2,
    ``theory.ntk``).

    ``J``: n×P; ``r0``: length n; ``eta``: learning rate per step (ηκ_max < 2: gradient descent is stable).
    """

    J: np.ndarray
    r0: np.ndarray
    eta: float


@st.composite
def linear_models(
    draw: st.DrawFn,
    n: IntRange = (2, 8),
    P: IntRange | None = None,
    *,
    log10_kappa: tuple[float, float] = (-3.0, 0.0),
    eta_kappa_max: tuple[float, float] = (0.05, 1.5),
) -> LinearModel:
    """``LinearModel(J, r0, eta)``: NTK eigenvalues κ_i = 10^{e_i}, e_i drawn in ``log10_kappa`` (so fast and slow
    modes coexist), J = Q diag(√κ) Vᵀ with Haar Q, V from a drawn seed, r₀ ~ N(0, I), and η = c/κ_max with c in
    ``eta_kappa_max`` (c < 2: stable; c > 1: oscillating fast modes). P defaults to (n, 40). Units: κ in those of
    JJᵀ, η per step.
    """
    lo, hi = _int_range(n, "n")
    m = draw(st.integers(lo, hi))
    Pn = _draw_P(draw, P, m)
    kappa = 10.0 ** draw(hnp.arrays(np.float64, m, elements=st.floats(*log10_kappa)))
    c = draw(st.floats(*eta_kappa_max))
    rng = np.random.default_rng(draw(_SEEDS))
    J = (random_orthonormal(rng, m, m) * np.sqrt(kappa)) @ random_orthonormal(rng, Pn, m).T
    return LinearModel(J, rng.standard_normal(m), float(c / kappa.max()))


class Stream(NamedTuple):
    """T consecutive updates δ_1 … δ_T (``deltas``, T×P, rows in time order) and a window length ``W`` ≤ T − 1."""

    deltas: np.ndarray
    W: int

    def windows(self) -> Iterator[np.ndarray]:
        """The T − W + 1 full windows X(t) = rows t−W+1 … t (W×P each), oldest first (theory reference §1.2)."""
        for t in range(self.W, self.deltas.shape[0] + 1):
            yield self.deltas[t - self.W : t]

    def extended(self) -> Iterator[np.ndarray]:
        """The T − W (W+1)-row blocks [δ_{t−W}, …, δ_t]: previous window = block[:-1], current = block[1:]."""
        for t in range(self.W + 1, self.deltas.shape[0] + 1):
            yield self.deltas[t - self.W - 1 : t]


@st.composite
def trajectories(
    draw: st.DrawFn,
    T: IntRange = (3, 16),
    W: IntRange = (2, 8),
    P: IntRange = (2, 40),
    kind: str | Sequence[str] = ("gaussian", "drift", "gd"),
    *,
    log10_scale: FloatRange = (-2.0, 2.0),
) -> Stream:
    """``Stream(deltas, W)``: a stream of T updates in ℝ^P with T ≥ W + 1, for sliding-window statements (§6.5–6.6).

    Kinds (a tuple mixes them):

    * ``"entries"``: every entry drawn from ``ELEMENT`` (adversarial; not all zero).
    * ``"gaussian"``: i.i.d. N(0, s²) updates.
    * ``"drift"``: r ∈ {1, 2, 3} fixed directions with strengths 3^{−k}, each update's coefficients wobbling by a
      drawn relative amount, plus isotropic noise: a slowly varying edge (Axiom 3).
    * ``"gd"``: gradient descent on a ``linear_models()`` least-squares problem (``theory.ntk``), the first T steps.

    s = 10^e scales the stream (parameter units), e in ``log10_scale``; "gd" keeps its natural scale.
    """
    chosen = _draw_kind(draw, _kinds(kind, TRAJECTORY_KINDS))
    W_lo, W_hi = _int_range(W, "W", low=1)
    Wn = draw(st.integers(W_lo, W_hi))
    T_lo, T_hi = _int_range(T, "T")
    Tn = draw(st.integers(max(T_lo, Wn + 1), max(T_hi, Wn + 1)))
    P_lo, P_hi = _int_range(P, "P")
    if chosen == "gd":
        from theory.ntk import linear_model_updates  # theory imports sympy: kept out of import time

        model = draw(linear_models(n=(1, min(8, P_hi)), P=(P_lo, P_hi)))
        deltas = linear_model_updates(model.J, model.r0, model.eta, Tn)
        assume(np.any(deltas != 0))
        return Stream(deltas, Wn)
    Pn = draw(st.integers(P_lo, P_hi))
    if chosen == "entries":
        return Stream(_draw_entries(draw, (Tn, Pn)), Wn)
    scale = _draw_scale(draw, log10_scale)
    if chosen == "gaussian":
        return Stream(scale * np.random.default_rng(draw(_SEEDS)).standard_normal((Tn, Pn)), Wn)
    r = draw(st.integers(1, min(3, Pn)))
    wobble = draw(st.floats(0.0, 0.5))
    noise = draw(st.floats(0.0, 0.1))
    rng = np.random.default_rng(draw(_SEEDS))
    V = random_orthonormal(rng, Pn, r).T
    coef = 3.0 ** -np.arange(r) * (1 + wobble * rng.standard_normal((Tn, r)))
    return Stream(scale * (coef @ V + noise * rng.standard_normal((Tn, Pn)) / np.sqrt(Pn)), Wn)
