"""The spectrum of one window of updates, computed from its W×W Gram matrix.

X ∈ ℝ^{w×P} stacks the updates δ of the window as rows; G = X Xᵀ (uncentred, unnormalised, theory reference
§1.2) is all this module needs. With G = U Λ Uᵀ: λ_j (σ² units) are the eigenvalues, σ_j = √λ_j the singular
values of X, u_j ∈ ℝ^w the temporal profiles, and v_j = Xᵀu_j/σ_j ∈ ℝ^P the spectral-edge directions, which
``right_vectors`` forms only when X itself is at hand.

Quantities whose definition drifts are looked up in ``theory.registry``: k* (quantity ``"kstar"``, registered
in ``theory.kstar``) and d_crit (quantity ``"d_crit"``, registered in ``theory.bbp``, which also holds the
Marchenko–Pastur edges and the noise-scale estimator used here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

import theory.kstar as _kstar  # registers the k* variants
from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    WindowTooSmallError,
    ZeroWindowError,
)
from theory import bbp, registry
from theory.bbp import d_crit_author_code, d_crit_textbook  # re-exported: registered under "d_crit" in theory.bbp

__all__ = [
    "GramEigh",
    "Spectrum",
    "as_gram",
    "d_crit_author_code",
    "d_crit_textbook",
    "gram_eigenvalues",
    "psd_tolerance",
    "right_vectors",
    "spectrum_from_gram",
    "spectrum_from_updates",
]

_EPS = np.finfo(np.float64).eps
# Unit roundoff u = eps/2 of the dtypes a Gram's dot products may be accumulated in (numpy has no bfloat16).
_UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "bfloat16": 2.0**-8, "float16": 2.0**-11}
# c in the PSD tolerance c·u·√n·trace(G): standard deviations of the probabilistic rounding bound (see psd_tolerance).
PSD_SAFETY = 8.0
# A clipped negative eigenvalue −ν measures the round-off actually present: eigenvalues up to NOISE_FLOOR·ν are zeroed.
NOISE_FLOOR = 4.0
# |G − Gᵀ| this large (relative to max |G|) is not rounding either.
_SYM_TOL = 1e-10


def as_gram(G: Any, *, what: str = "G", min_w: int = 2) -> np.ndarray:
    """``G`` as a symmetric float64 array after the checks every Gram-based quantity needs.

    Raises ``ShapeMismatchError`` (not square 2-D, or not symmetric to 1e-10·max|G|), ``WindowTooSmallError``
    (fewer than ``min_w`` rows) and ``NonFiniteUpdateError`` (NaN or Inf). Returns (G + Gᵀ)/2 so that rounding
    asymmetry never reaches ``eigh``.
    """
    try:
        A = np.array(G, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeMismatchError(f"{what} must be a real square matrix; could not convert it: {exc}") from exc
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ShapeMismatchError(f"{what} must be a square 2-D Gram matrix, got shape {A.shape}")
    w = A.shape[0]
    if w < min_w:
        raise WindowTooSmallError(f"{what} is {w}×{w}; the window needs at least {min_w} updates (w ≥ {min_w})")
    if not np.all(np.isfinite(A)):
        bad = np.argwhere(~np.isfinite(A))[0]
        raise NonFiniteUpdateError(
            f"{what} contains NaN or Inf (first at entry {tuple(int(i) for i in bad)}: {A[tuple(bad)]!r}); "
            "an update in the window is not finite"
        )
    scale = float(np.max(np.abs(A)))
    asym = float(np.max(np.abs(A - A.T)))
    if asym > _SYM_TOL * scale:
        raise ShapeMismatchError(
            f"{what} is not symmetric: max |G − Gᵀ| = {asym:.3g} against max |G| = {scale:.3g}; a Gram X Xᵀ is"
        )
    return (A + A.T) / 2


def _unit_roundoff(dot_dtype: Any) -> float:
    name = str(dot_dtype).replace("torch.", "")
    if name not in _UNIT_ROUNDOFF:
        try:
            name = np.dtype(dot_dtype).name
        except TypeError:
            pass
    if name not in _UNIT_ROUNDOFF:
        raise SpectralEdgeError(f"dot_dtype must be one of {sorted(_UNIT_ROUNDOFF)} (numpy/torch dtype or name), "
                                f"got {dot_dtype!r}")
    return _UNIT_ROUNDOFF[name]


def psd_tolerance(G: np.ndarray, *, n_terms: int | None = None, dot_dtype: Any = "float32") -> float:
    """How far below 0 an eigenvalue of a Gram G = X Xᵀ may lie from round-off alone (λ units, ≥ 0).

        tol = (c · u · √n  +  w · eps₆₄) · trace(G),      c = PSD_SAFETY = 8,

    with u the unit roundoff of ``dot_dtype`` (the precision the dots G_ab = Σ_i x_ai x_bi were *accumulated* in:
    2⁻²⁴ for float32, 2⁻⁵³ for float64), n = ``n_terms`` the number of terms per dot (at most P; None → 1, i.e.
    G's entries were only rounded once), trace(G) = Σ_a ‖x_a‖² = Σ λ_j ≤ w·λ₁.

    Derivation. The computed Ĝ = G + E with, per entry, |E_ab| ≤ λ√n·u·Σ_i |x_ai x_bi| ≤ λ√n·u·‖x_a‖‖x_b‖ with
    probability ≥ 1 − 2exp(−λ²(1 − u)²/2) (Higham & Mary 2019, probabilistic rounding error of a sum of n
    products; the deterministic worst case has n·u in place of √n·u, and blocked BLAS sums do better than both).
    Then ‖E‖₂ ≤ ‖E‖_F ≤ λ√n·u·Σ_a ‖x_a‖² = λ√n·u·trace(G), and by Weyl's inequality every eigenvalue of Ĝ is within
    ‖E‖₂ of G's, which are ≥ 0: λ_min(Ĝ) ≥ −λ√n·u·trace(G). c = λ = 8 puts a false refusal at probability
    < 1e-13 per entry. The w·eps₆₄ term covers the float64 eigensolver's own backward error. Rounding the stored rows
    (e.g. to bfloat16) does not enter: the stored X̃ has an exactly PSD Gram X̃X̃ᵀ; only the accumulation does.

    Examples (float32 dots, P = n): P = 3·10⁵ → 2.6e-4·trace(G); P = 10⁷ → 1.5e-3·trace(G). Genuinely indefinite
    inputs (not a Gram at all) have negative eigenvalues of the order of λ₁ and are still refused.
    """
    n = 1 if n_terms is None else max(int(n_terms), 1)
    trace = max(float(np.trace(G)), 0.0)
    return (PSD_SAFETY * _unit_roundoff(dot_dtype) * math.sqrt(n) + G.shape[0] * _EPS) * trace


def gram_eigenvalues(G: np.ndarray, *, n_terms: int | None = None, dot_dtype: Any = "float32") -> np.ndarray:
    """Eigenvalues of a (checked) Gram matrix, descending, clipped at 0, with λ_j < w·eps·λ₁ set to exact 0.

    A negative eigenvalue within `psd_tolerance(G, n_terms=, dot_dtype=)` is clipped to 0; beyond it
    ``SpectralEdgeError``. An all-zero G gives all zeros (no error); ``spectrum_from_gram`` is the strict entry point.
    """
    lam = np.linalg.eigvalsh(G)[::-1]
    return _clean_eigenvalues(lam, G.shape[0], psd_tolerance(G, n_terms=n_terms, dot_dtype=dot_dtype))[0]


def _clean_eigenvalues(lam: np.ndarray, w: int, tol: float, what: str = "G",
                       eps: float = _EPS) -> tuple[np.ndarray, float]:
    """(λ cleaned, the most negative eigenvalue clipped below the floor w·eps·λ₁, or 0.0); raises beyond ``tol``.

    Zeroed: every λ_j < w·eps·λ₁ and, when a negative −ν was clipped, every λ_j ≤ NOISE_FLOOR·ν. The round-off
    eigenvalues of a rank-deficient window are spread on both sides of 0 with comparable sizes; zeroing only the
    negative ones would leave positive noise followed by exact zeros, an +inf ratio inside the noise that k* = argmax
    would pick. With the data-driven floor the window reads as the rank drop it is (as in float64).
    """
    top = float(lam[0])
    low = float(lam[-1])
    if top > 0 and low < -tol:
        raise SpectralEdgeError(
            f"{what} is not positive semidefinite: smallest eigenvalue {low:.3g} against largest {top:.3g}, beyond "
            f"the round-off tolerance {tol:.3g} of its dot products; a Gram matrix X Xᵀ cannot have one"
        )
    # Below w·eps·λ₁ an eigenvalue is indistinguishable from rounding the entries of G (eps of the dots' dtype);
    # calling it exactly zero makes rank drops exact (+inf ratios) instead of ratios of noise. Negative ones within
    # tol (round-off of the dots) become 0 too.
    floor = w * eps * max(top, 0.0)
    clipped = low if low < -floor else 0.0
    lam = np.where(lam < max(floor, -NOISE_FLOOR * clipped), 0.0, lam)
    return np.ascontiguousarray(lam), clipped


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Spectrum of one window, built by ``spectrum_from_gram``; every derived quantity is cached on first use.

    Fields: ``G`` (w×w float64, read-only), ``lam`` (λ_j descending, σ² units), ``u`` (w×w, column j = u_j, sign
    fixed so that its largest-|entry| is positive), ``P`` (number of parameters, or None), ``kstar_name``
    (the registry name of the k* definition in use), ``psd_tol`` (the round-off tolerance of `psd_tolerance`, λ
    units) and ``psd_clipped`` (the negative eigenvalue, within ``psd_tol``, that was clipped to 0 because the dots
    were rounded; 0.0 when none beyond float64 eigensolver noise).
    """

    G: np.ndarray = field(repr=False)
    lam: np.ndarray
    u: np.ndarray = field(repr=False)
    P: int | None = None
    kstar_name: str = "argmax"
    psd_tol: float = 0.0
    psd_clipped: float = 0.0

    # ----- basic spectrum ---------------------------------------------------------------------------------

    @property
    def w(self) -> int:
        """Window length (number of updates)."""
        return int(self.lam.size)

    @cached_property
    def sigma(self) -> np.ndarray:
        """σ_j = √λ_j, the singular values of X (σ units), descending."""
        return _frozen(np.sqrt(self.lam))

    @cached_property
    def ratios(self) -> np.ndarray:
        """r_j = σ_j/σ_{j+1}, length w−1; +inf at an exact rank drop, 1 between two zeros ([A])."""
        return _frozen(_kstar.sigma_ratios(self.sigma))

    @cached_property
    def kstar(self) -> int:
        """k* by the registry definition ``kstar_name`` (1-indexed, in [1, w−1])."""
        return int(registry.get("kstar", self.kstar_name)(self.sigma))

    @property
    def R(self) -> float:
        """Gap ratio R = r_{k*} = σ_{k*}/σ_{k*+1} ([C, P]); +inf at an exact rank drop."""
        return float(self.ratios[self.kstar - 1])

    @property
    def g(self) -> float:
        """Gap g = σ_{k*} − σ_{k*+1} in σ units ([C]; d_j ≡ σ_j as in all of the author's code)."""
        k = self.kstar
        return float(self.sigma[k - 1] - self.sigma[k])

    @property
    def d_bar(self) -> float:
        """d̄ = (σ_{k*} + σ_{k*+1})/2 in σ units ([C]); λ_{k*} − λ_{k*+1} = 2·d̄·g exactly."""
        k = self.kstar
        return float((self.sigma[k - 1] + self.sigma[k]) / 2)

    @property
    def g23(self) -> float:
        """g₂₃ = λ₂ − λ₃ = σ₂² − σ₃² in λ units ([C], "thesis exact definition"); needs w ≥ 3.

        The dyck_scan replication returns σ₂² for w = 2; we raise instead, since λ₃ does not exist.
        """
        if self.w < 3:
            raise WindowTooSmallError(f"g₂₃ = λ₂ − λ₃ needs a window of w ≥ 3 updates, got w = {self.w}")
        return float(self.lam[1] - self.lam[2])

    @cached_property
    def gap(self) -> np.ndarray:
        """gap_j = min_{k≠j} |λ_j − λ_k| in λ units (length w; the Davis–Kahan denominator, [C])."""
        d = np.abs(self.lam[:, None] - self.lam[None, :])
        np.fill_diagonal(d, np.inf)
        return _frozen(d.min(axis=1))

    @property
    def pc1_frac(self) -> float:
        """λ₁/Σλ, the fraction of the window's energy in the top direction ([P] SED)."""
        return float(self.lam[0] / self.lam.sum())

    @property
    def k95(self) -> int:
        """Number of leading λ_j holding 95 % of Σλ, in [1, w] ([P]; unclipped, unlike the ``var95`` k*)."""
        return _kstar.variance_count(self.sigma, 0.95)

    @property
    def drift_speed(self) -> float:
        """‖mean_a δ_a‖ = √(1ᵀG1)/w in σ units ([P] SED ``drift_speed``)."""
        return float(math.sqrt(max(float(self.G.sum()), 0.0)) / self.w)

    # ----- noise scale and BBP (need P) ------------------------------------------------------------------

    def _need_P(self, what: str) -> int:
        if self.P is None:
            raise SpectralEdgeError(f"{what} needs the number of parameters P; pass P= to spectrum_from_gram")
        return self.P

    @cached_property
    def noise_scale_nu(self) -> float:
        """ν, with ν² = mean(λ_j : j > w/2)/P, the per-entry noise scale (σ units per √entry; [C] author's estimator).

        The bottom half of a window is assumed pure noise; when it is not, ν is overestimated.
        """
        return bbp.noise_scale_nu(self.lam, self._need_P("ν"))

    @property
    def mp_bulk_edges(self) -> tuple[float, float]:
        """Marchenko–Pastur band of pure-noise singular values, ν(|√P − √w|, √P + √w) in σ units ([R] §3.1)."""
        return bbp.mp_bulk_edges(self.noise_scale_nu, self._need_P("the Marchenko–Pastur edges"), self.w)

    def d_crit(self, variant: str | None = None) -> float:
        """BBP detection threshold d_crit in σ units, by registry quantity ``"d_crit"`` (None → the default)."""
        P = self._need_P("d_crit")
        return float(registry.get("d_crit", variant)(self.noise_scale_nu, P, self.w))

    def bbp_ratio(self, variant: str | None = None) -> float:
        """σ_w/d_crit, the "BBP is vacuous" statistic ([C] Prop 2.1 test; predicted ≫ 1, nearly automatic, §3.1)."""
        dc = self.d_crit(variant)
        return float(self.sigma[-1] / dc) if dc > 0 else math.inf

    # ----- serialisation ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable scalars and lists; +inf (an exact rank drop in ``ratios`` or ``R``) becomes None.

        Keys: w, sigma, lam, ratios, kstar, R, g, d_bar, g23 (None if w < 3), gap, pc1_frac, k95, drift_speed,
        definitions (the registry names used); with P also: P, nu, mp_bulk_edges, d_crit, bbp_ratio; when a
        round-off eigenvalue was clipped also psd_clipped and psd_tol (λ units).
        """
        out: dict[str, Any] = {
            "w": self.w,
            "sigma": _json_list(self.sigma),
            "lam": _json_list(self.lam),
            "ratios": _json_list(self.ratios),
            "kstar": self.kstar,
            "R": _json_float(self.R),
            "g": self.g,
            "d_bar": self.d_bar,
            "g23": self.g23 if self.w >= 3 else None,
            "gap": _json_list(self.gap),
            "pc1_frac": self.pc1_frac,
            "k95": self.k95,
            "drift_speed": self.drift_speed,
            "definitions": {"kstar": self.kstar_name},
        }
        if self.P is not None:
            out["definitions"]["d_crit"] = registry.default_name("d_crit")
            out.update(
                P=self.P,
                nu=self.noise_scale_nu,
                mp_bulk_edges=[float(e) for e in self.mp_bulk_edges],
                d_crit=self.d_crit(),
                bbp_ratio=_json_float(self.bbp_ratio()),
            )
        if self.psd_clipped < 0:
            out.update(psd_clipped=self.psd_clipped, psd_tol=self.psd_tol)
        return out


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _json_list(a: np.ndarray) -> list[float | None]:
    """``[_json_float(float(x)) for x in a]``, one ``tolist`` (the same Python floats) when all are finite."""
    values = a.tolist()
    if np.isfinite(a).all():
        return values
    return [_json_float(x) for x in values]


# ----- constructors ----------------------------------------------------------------------------------------


def spectrum_from_gram(
    G: np.ndarray,
    *,
    P: int | None = None,
    kstar: str = "argmax",
    dot_dtype: Any = None,
    n_terms: int | None = None,
) -> Spectrum:
    """The ``Spectrum`` of the window whose Gram matrix is ``G`` = X Xᵀ (w×w, uncentred, unnormalised).

    G is cast to float64 and decomposed with ``eigh``; λ are sorted descending, clipped at 0, and those below
    w·eps·λ₁ (and, after a clipped negative −ν, those ≤ 4ν: see ``_clean_eigenvalues``) are set to exact 0.
    Each u_j is sign-fixed so that its largest-|entry| (first on ties) is positive, which makes u deterministic
    wherever the λ_j are simple.

    PSD check: G's dots were accumulated in ``dot_dtype`` over ``n_terms`` terms each (default: P, else 1); a
    negative eigenvalue within `psd_tolerance` is round-off, clipped to 0 and recorded in ``psd_clipped``; beyond
    it ``SpectralEdgeError`` names both. ``dot_dtype=None`` (unknown) checks against float32 dots, the least
    precise accumulation `RollingGram` performs (float32, bfloat16 and float16 storage all accumulate in float32),
    so a Gram from any window passes, and keeps the float64 zero floor w·eps₆₄·λ₁. A given ``dot_dtype`` sets both:
    the tolerance, and the floor w·eps(dot_dtype)·λ₁ below which λ_j is exactly 0 (eigenvalues the entries'
    own rounding cannot resolve; with it, a rank drop in a float32 window reads R = +inf as in float64).

    Raises ``ShapeMismatchError`` (not square/symmetric, or P not a positive int), ``WindowTooSmallError``
    (w < 2), ``NonFiniteUpdateError`` (NaN/Inf in G), ``ZeroWindowError`` (σ₁ = 0), ``SpectralEdgeError`` (not
    PSD beyond round-off, or an unknown dot_dtype), and ``DefinitionError`` for an unknown k* name.
    """
    A = as_gram(G)
    P = _check_P(P)
    registry.get("kstar", kstar)  # fail fast on an unknown name
    lam, U = np.linalg.eigh(A)
    return _spectrum_from_eigh(A, lam, U, P=P, kstar=kstar, dot_dtype=dot_dtype, n_terms=n_terms)


def _check_P(P: Any) -> int | None:
    if P is not None:
        if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 1:
            raise ShapeMismatchError(f"P (number of parameters) must be a positive int, got {P!r}")
        P = int(P)
    return P


def _spectrum_from_eigh(A: np.ndarray, lam: np.ndarray, U: np.ndarray, *, P: int | None, kstar: str,
                        dot_dtype: Any, n_terms: int | None) -> Spectrum:
    """The rest of ``spectrum_from_gram`` once ``eigh`` ran: ``A`` checked (``as_gram``), ``lam``/``U`` as ``eigh``
    returns them (ascending; not modified), ``P`` checked. The PSD check, the zero floor and the sign fix."""
    w = A.shape[0]
    lam, U = lam[::-1], U[:, ::-1]
    tol = psd_tolerance(A, n_terms=P if n_terms is None else n_terms,
                        dot_dtype="float32" if dot_dtype is None else dot_dtype)
    eps = _EPS if dot_dtype is None else 2 * _unit_roundoff(dot_dtype)
    lam, clipped = _clean_eigenvalues(lam, w, tol, eps=eps)
    if lam[0] <= 0:
        raise ZeroWindowError(
            f"all updates in the window are zero (σ₁ = 0; trace G = {float(np.trace(A))!r}): "
            "ratios, k* and gaps are undefined"
        )
    idx = np.argmax(np.abs(U), axis=0)
    signs = np.where(U[idx, np.arange(w)] < 0, -1.0, 1.0)
    U = np.ascontiguousarray(U * signs)
    return Spectrum(G=_frozen(A), lam=_frozen(lam), u=_frozen(U), P=P, kstar_name=kstar, psd_tol=tol,
                    psd_clipped=clipped)


@dataclass(frozen=True, eq=False)
class GramEigh:
    """A checked Gram (``as_gram``) and its one ``eigh``: every ``Spectrum`` of that Gram without decomposing again.

    ``GramEigh.of(G).spectrum(P=..., ...)`` equals ``spectrum_from_gram(G, P=..., ...)`` value for value (the same
    code after the same ``eigh`` of the same array), whatever the PSD-check settings; the monitor asks one
    decomposition for the record's spectrum (P terms per dot) and for the α variants' (``P=None``).
    """

    A: np.ndarray = field(repr=False)
    lam: np.ndarray
    U: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, G: Any, *, what: str = "G") -> GramEigh:
        A = as_gram(G, what=what)
        lam, U = np.linalg.eigh(A)
        return cls(A=A, lam=lam, U=U)

    def spectrum(self, *, P: int | None = None, kstar: str = "argmax", dot_dtype: Any = None,
                 n_terms: int | None = None) -> Spectrum:
        """``spectrum_from_gram(self.A, P=P, kstar=kstar, dot_dtype=dot_dtype, n_terms=n_terms)``, same raises."""
        P = _check_P(P)
        registry.get("kstar", kstar)
        return _spectrum_from_eigh(self.A, self.lam, self.U, P=P, kstar=kstar, dot_dtype=dot_dtype,
                                   n_terms=n_terms)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def spectrum_from_updates(X: Any, *, kstar: str = "argmax") -> Spectrum:
    """``spectrum_from_gram(X Xᵀ, P=X.shape[1])`` with G formed in float64 (numpy or torch X, w×P).

    A convenience for tests and small data: it copies X to float64. Streaming use goes through numerics/gram.py.
    """
    if _is_torch(X):
        import torch  # local: the spectrum itself is numpy; only torch inputs need torch

        if X.ndim != 2:
            raise ShapeMismatchError(f"X must be a 2-D w×P matrix of updates, got shape {tuple(X.shape)}")
        if not bool(torch.isfinite(X).all()):
            raise NonFiniteUpdateError("X contains NaN or Inf; an update in the window is not finite")
        X64 = X.detach().to(torch.float64)
        G = (X64 @ X64.T).cpu().numpy()
    else:
        X64 = np.asarray(X, dtype=np.float64)
        if X64.ndim != 2:
            raise ShapeMismatchError(f"X must be a 2-D w×P matrix of updates, got shape {X64.shape}")
        if not np.all(np.isfinite(X64)):
            rows = sorted({int(i) for i in np.argwhere(~np.isfinite(X64))[:, 0]})
            raise NonFiniteUpdateError(f"X contains NaN or Inf in window rows {rows}; an update is not finite")
        G = X64 @ X64.T
    return spectrum_from_gram(G, P=int(X.shape[1]), kstar=kstar, dot_dtype="float64")


def right_vectors(X: Any, spec: Spectrum, k: int) -> Any:
    """The spectral-edge directions v_j = Xᵀu_j/σ_j, j = 1…k, as the columns of a P×k matrix.

    ``X`` is the w×P window the Gram of ``spec`` came from (numpy array or torch tensor; the result is of the
    same library, dtype and device, float64 for integer numpy input). They are orthonormal when the σ_j are
    distinct and X matches ``spec``. Raises ``ShapeMismatchError`` when X's shape disagrees with ``spec``,
    ``NonFiniteUpdateError`` for NaN/Inf in X, and ``ZeroWindowError`` when some σ_j = 0 with j ≤ k.
    """
    shape = tuple(X.shape)
    if len(shape) != 2 or shape[0] != spec.w or (spec.P is not None and shape[1] != spec.P):
        want = f"({spec.w}, {spec.P if spec.P is not None else 'P'})"
        raise ShapeMismatchError(f"X has shape {shape}, but the spectrum is of a window of shape {want}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= spec.w:
        raise SpectralEdgeError(f"k must be an int in [1, w] = [1, {spec.w}], got {k!r}")
    zero = [j + 1 for j in range(k) if spec.sigma[j] == 0]
    if zero:
        raise ZeroWindowError(
            f"σ_j = 0 for j = {zero}: v_j = Xᵀu_j/σ_j is undefined; ask for k ≤ rank = {int(np.sum(spec.sigma > 0))}"
        )
    coef = spec.u[:, :k] / spec.sigma[:k]
    if _is_torch(X):
        import torch  # local: the spectrum itself is numpy; only torch inputs need torch

        if not bool(torch.isfinite(X).all()):
            raise NonFiniteUpdateError("X contains NaN or Inf; an update in the window is not finite")
        return X.T @ torch.as_tensor(coef, dtype=X.dtype, device=X.device)
    Xn = np.asarray(X)
    if not np.issubdtype(Xn.dtype, np.floating):
        Xn = Xn.astype(np.float64)
    if not np.all(np.isfinite(Xn)):
        raise NonFiniteUpdateError("X contains NaN or Inf; an update in the window is not finite")
    return Xn.T @ coef.astype(Xn.dtype)
