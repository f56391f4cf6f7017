"""The stability coefficient α_j of the spectral-edge directions, from Gram matrices only.

Everything here is computed from the *extended* Gram G_ext, the (w+1)×(w+1) Gram of the rows
[δ_{t−w}, δ_{t−w+1}, …, δ_t]: the previous window is rows 0…w−1 (G_prev = G_ext[:-1, :-1]), the current one rows
1…w (G_now = G_ext[1:, 1:]), and G_ext[:-1, 1:] holds the cross inner products. No P-sized vector is touched.

α_j variants are registered under quantity ``"alpha"`` (theory reference §1.4 describes three inequivalent
versions in the sources; §7.1 why the perturbation is a registry option). All return an array indexed by the
current window's j = 1…w (α-half: j = 1…⌊w/2⌋). NaN marks an α_j that is undefined because a σ_j is zero.

The Davis–Kahan bounds of §3.6 / §6.7 (``sin_theta_bound_yws``, ``residual_bound``, ``subspace_bound`` and the
non-theorem ``factor_free_bound``) live in ``theory.davis_kahan`` and are re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from numerics.errors import ShapeMismatchError, WindowTooSmallError
from numerics.spectrum import GramEigh, Spectrum, as_gram, gram_eigenvalues, spectrum_from_gram
from theory import registry
from theory.davis_kahan import (  # re-exported: the bounds' one home is theory/
    factor_free_bound,
    hoffman_wielandt_shift,
    residual_bound,
    sin_theta_bound_yws,
    subspace_bound,
)

__all__ = [
    "ConsecutiveWindows",
    "alpha",
    "alpha_half_from_gram",
    "delta_C_norm",
    "delta_G_norm",
    "delta_lambda_norm",
    "dk_deltaC",
    "dk_deltaG",
    "dk_dlambda",
    "factor_free_bound",
    "half",
    "residual_bound",
    "rot",
    "sin_theta_bound_yws",
    "subspace_bound",
]


def _ext(G_ext: Any) -> np.ndarray:
    # w ≥ 2 for the current window, so G_ext is at least 3×3.
    return as_gram(G_ext, what="G_ext", min_w=3)


# ----- perturbation norms ----------------------------------------------------------------------------------


def delta_C_norm(G_ext: np.ndarray) -> float:
    """‖ΔC‖_F for the dual operator C = XᵀX = Σ_a δ_aδ_aᵀ (P×P) between consecutive windows (λ units, [R] §6.6).

    ΔC = δ_tδ_tᵀ − δ_{t−w}δ_{t−w}ᵀ (rank ≤ 2), so ‖ΔC‖_F² = ‖δ_t‖⁴ + ‖δ_{t−w}‖⁴ − 2⟨δ_t, δ_{t−w}⟩². It is evaluated
    as (a − b)² + 2(ab − c²), with a = ‖δ_t‖², b = ‖δ_{t−w}‖², c = ⟨δ_t, δ_{t−w}⟩: both terms are ≥ 0 (Cauchy–
    Schwarz), so nothing cancels catastrophically.
    """
    return _delta_C(_ext(G_ext))


def _delta_C(A: np.ndarray) -> float:
    a, b, c = A[-1, -1], A[0, 0], A[0, -1]
    return float(math.sqrt((a - b) ** 2 + 2 * max(a * b - c * c, 0.0)))


def delta_G_norm(G_ext: np.ndarray) -> float:
    """‖G_now − G_prev‖_F, the entrywise "ΔG" between consecutive windows (λ units; [C], ill-posed per §7.1).

    The two windows index different time slots, so entry (a, b) of G_now and of G_prev are inner products of
    different updates; the difference is not a perturbation of one operator.
    """
    return _delta_G(_ext(G_ext))


def _delta_G(A: np.ndarray) -> float:
    return float(np.linalg.norm(A[1:, 1:] - A[:-1, :-1]))


def delta_lambda_norm(spec_prev: Spectrum | np.ndarray, spec_now: Spectrum | np.ndarray) -> float:
    """√Σ_j (λ_j(now) − λ_j(prev))², the author's code proxy for ‖ΔG‖_F (λ units, [C] theory_experiment_match.py).

    By Hoffman–Wielandt it is a lower bound on ‖ΔG‖_F, never the value. Accepts two ``Spectrum`` objects or two
    descending λ arrays of the same length.
    """
    lp = np.asarray(spec_prev.lam if isinstance(spec_prev, Spectrum) else spec_prev, dtype=np.float64)
    ln = np.asarray(spec_now.lam if isinstance(spec_now, Spectrum) else spec_now, dtype=np.float64)
    if lp.shape != ln.shape or lp.ndim != 1:
        raise ShapeMismatchError(f"Δλ needs two windows of the same length, got λ of shapes {lp.shape}, {ln.shape}")
    return hoffman_wielandt_shift(lp, ln)


# ----- α variants ------------------------------------------------------------------------------------------


def _dk_alpha(norm: float, gap: np.ndarray, C: float) -> np.ndarray:
    """max(0, 1 − C·norm²/gap_j²); a zero gap gives 0, unless nothing moved at all (norm = 0), which gives 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.0 - C * norm**2 / gap**2
    a = np.where(gap == 0, 1.0 if norm == 0 else 0.0, a)
    return np.maximum(0.0, a)


@registry.register(
    "alpha",
    "dk_deltaC",
    source="[R] Davis–Kahan on the dual operator C = XᵀX, theory reference §7.1",
    version="reconstruction",
    default=True,
)
def dk_deltaC(G_ext: np.ndarray, *, C: float = 1.0) -> np.ndarray:
    """α_j = max(0, 1 − C·‖ΔC‖_F²/gap_j²), C = 1, gap_j that of C = XᵀX in the current window (length w; [R]).

    Why the default: the v_j are the eigenvectors of C = XᵀX (P×P), and consecutive windows give one operator
    perturbed by ΔC = δ_tδ_tᵀ − δ_{t−w}δ_{t−w}ᵀ, so Davis–Kahan applies to exactly the objects whose rotation α is
    meant to measure. The entrywise ΔG compares different time slots (§7.1) and the Δλ proxy only bounds ‖ΔG‖
    from below. C's non-zero eigenvalues are those of G, so gap_j is that of G, except that C (P > w assumed, as
    always in practice) also has the eigenvalue 0: gap_w becomes min(λ_{w−1} − λ_w, λ_w). The gap is taken in
    the current window (Davis–Kahan is symmetric in the two operators). C = 1 follows the author's code;
    the thesis's constant is unknown ([S]). Read it as a first-order estimate: the factor-free bound behind it is
    not a theorem (§3.6).
    """
    now = spectrum_from_gram(_ext(G_ext)[1:, 1:])
    # C is P×P and, for P > w, also has the eigenvalue 0 (multiplicity P − w); v_j's nearest neighbour in C's
    # spectrum is min(gap_j, λ_j), which differs from gap_j only for j = w.
    return _dk_alpha(delta_C_norm(G_ext), np.minimum(now.gap, now.lam), C)


@registry.register(
    "alpha",
    "dk_deltaG",
    source='[C] mini_gpt theory_experiment_match.py "Def 6.1", ΔG entrywise',
    version="draft Def 6.1",
)
def dk_deltaG(G_ext: np.ndarray, *, C: float = 1.0) -> np.ndarray:
    """α_j = max(0, 1 − C·‖G_now − G_prev‖_F²/gap_j²) with the entrywise ΔG (length w; [C], ill-posed per §7.1)."""
    return _dk_alpha(delta_G_norm(G_ext), spectrum_from_gram(_ext(G_ext)[1:, 1:]).gap, C)


@registry.register(
    "alpha",
    "dk_dlambda",
    source="[C] mini_gpt theory_experiment_match.py (code proxy for ‖ΔG‖_F)",
    version="draft Def 6.1, as coded",
)
def dk_dlambda(G_ext: np.ndarray, *, C: float = 1.0) -> np.ndarray:
    """α_j = max(0, 1 − C·Σ(Δλ)²/gap_j²), the author's code: ‖ΔG‖_F replaced by its Hoffman–Wielandt lower bound.

    Length w. Since Σ(Δλ)² ≤ ‖ΔG‖_F², this α is never below ``dk_deltaG`` ([C]). The author adds 1e-20 to gap²;
    here a zero gap gives 0 (or 1 when nothing moved), which agrees except at exact degeneracy.
    """
    A = _ext(G_ext)
    now = spectrum_from_gram(A[1:, 1:])
    return _dk_alpha(delta_lambda_norm(gram_eigenvalues(A[:-1, :-1]), now.lam), now.gap, C)


def _overlap(spec_a: Spectrum, spec_b: Spectrum, cross: np.ndarray, n: int) -> np.ndarray:
    """|⟨v_j^a, v_j^b⟩| = |u_jᵃᵀ X_a X_bᵀ u_jᵇ|/(σ_jᵃσ_jᵇ) for j = 1…n, NaN where a σ is 0, clipped to ≤ 1."""
    num = np.einsum("ij,ik,kj->j", spec_a.u[:, :n], cross, spec_b.u[:, :n])
    den = spec_a.sigma[:n] * spec_b.sigma[:n]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.abs(num) / den
    # |cos| ≤ 1 exactly; the excess is rounding.
    return np.where(den > 0, np.minimum(a, 1.0), np.nan)


def alpha_half_from_gram(G: np.ndarray, *, odd_row: str = "drop") -> np.ndarray:
    """α-half of a single window from its w×w Gram G (w ≥ 4); see ``half``.

    ``odd_row`` says what happens to the middle row when w is odd: ``"drop"`` (default; halves are the first and
    the last ⌊w/2⌋ rows, equal sizes, our choice [S]) or ``"second"`` (the second half gets it, as the author's
    ``loss_decomposition.py`` does with ``mid = n // 2``). Returns length ⌊w/2⌋.
    """
    A = as_gram(G, what="G", min_w=4)
    w = A.shape[0]
    h = w // 2
    if odd_row == "drop":
        first, second = np.arange(h), np.arange(w - h, w)
    elif odd_row == "second":
        first, second = np.arange(h), np.arange(h, w)
    else:
        raise ValueError(f"odd_row must be 'drop' or 'second', got {odd_row!r}")
    s1 = spectrum_from_gram(A[np.ix_(first, first)])
    s2 = spectrum_from_gram(A[np.ix_(second, second)])
    return _overlap(s1, s2, A[np.ix_(first, second)], h)


@registry.register(
    "alpha",
    "half",
    source="[P] dyck_scan spectral/loss_decomposition.py (half-window eigenvectors)",
    version="Lifecycle paper (arXiv 2604.07380)",
)
def half(G_ext: np.ndarray, *, odd_row: str = "drop") -> np.ndarray:
    """α_j = |⟨v_j⁽¹⁾, v_j⁽²⁾⟩| between the right singular vectors of the two halves of the current window ([P]).

    Computed from Gram blocks: ⟨v_i⁽¹⁾, v_j⁽²⁾⟩ = u⁽¹⁾_iᵀ G[h1, h2] u⁽²⁾_j/(σ⁽¹⁾_i σ⁽²⁾_j). Uses only the current
    window G_ext[1:, 1:], which needs w ≥ 4 (2 + 2 rows). **Returns length ⌊w/2⌋**, not w: a half has only
    ⌊w/2⌋ directions. NaN where σ_j of either half is 0. Middle row of an odd window: see
    ``alpha_half_from_gram``. Dimensionless, in [0, 1]; = 1 for a rank-1 window (§6.20).
    """
    A = _ext(G_ext)
    if A.shape[0] - 1 < 4:
        raise WindowTooSmallError(f"α-half needs a window of w ≥ 4 updates (2 per half), got w = {A.shape[0] - 1}")
    return alpha_half_from_gram(A[1:, 1:], odd_row=odd_row)


@registry.register(
    "alpha",
    "rot",
    source="[P] dyck_scan spectral/edge_rotation_stability.py",
    version="Lifecycle paper (arXiv 2604.07380)",
)
def rot(G_ext: np.ndarray) -> np.ndarray:
    """α_j = |cos ∠(v_j(t−1), v_j(t))| between consecutive windows (length w, in [0, 1]; [P]).

    ⟨v_j(t−1), v_j(t)⟩ = u_j(t−1)ᵀ G_ext[:-1, 1:] u_j(t)/(σ_j(t−1) σ_j(t)). Directions are matched by index j,
    as the author does, so a swap of two nearly equal σ reads as a large rotation. NaN where a σ_j is 0.
    """
    A = _ext(G_ext)
    prev, now = spectrum_from_gram(A[:-1, :-1]), spectrum_from_gram(A[1:, 1:])
    return _overlap(prev, now, A[:-1, 1:], now.w)


class ConsecutiveWindows:
    """The α variants and perturbation norms of one extended Gram, with each window decomposed once.

    ``alpha(G_ext, name)`` validates G_ext for every call and each variant decomposes the current window itself
    (α-rot the previous one too): α-DK and α-rot of one record cost 3 ``eigh`` and 5 validations of G_ext. Built
    once per record, this validates G_ext once, decomposes each window at most once, and takes the decompositions
    it is handed: ``now`` (a ``GramEigh`` of the current window, e.g. the record's own spectrum's) and ``prev``
    (the previous window's, e.g. kept from the previous record), each used only when its matrix equals the
    corresponding block of the validated G_ext entry for entry — otherwise that window is decomposed here.

    ``alpha(name)`` returns what ``alpha(G_ext, name)`` returns, value for value (the same arithmetic on the same
    arrays after the same ``eigh``), and raises what it raises; variants without a shared form here (``half``,
    anything registered later, any keyword) are called on G_ext as they are.
    """

    def __init__(self, G_ext: Any, *, now: GramEigh | None = None, prev: GramEigh | None = None) -> None:
        self.G_ext = G_ext
        self.A = _ext(G_ext)
        self._eigh_now = now if now is not None and np.array_equal(now.A, self.A[1:, 1:]) else None
        self._eigh_prev = prev if prev is not None and np.array_equal(prev.A, self.A[:-1, :-1]) else None
        self._spec: dict[str, Spectrum] = {}
        self._norms: dict[str, float] = {}

    def _window(self, which: str) -> Spectrum:
        """``spectrum_from_gram(A[1:, 1:])`` (``"now"``) or ``spectrum_from_gram(A[:-1, :-1])`` (``"prev"``)."""
        if which in self._spec:
            return self._spec[which]
        attr = "_eigh_now" if which == "now" else "_eigh_prev"
        eig = getattr(self, attr)
        if eig is None:
            eig = GramEigh.of(self.A[1:, 1:] if which == "now" else self.A[:-1, :-1])
            setattr(self, attr, eig)
        spec = eig.spectrum()  # raises as spectrum_from_gram does (ZeroWindowError, the P = None PSD check)
        self._spec[which] = spec
        return spec

    @property
    def now(self) -> Spectrum:
        """The current window's spectrum as the α variants compute it (``P = None``)."""
        return self._window("now")

    @property
    def prev(self) -> Spectrum:
        """The previous window's spectrum as α-rot computes it (``P = None``)."""
        return self._window("prev")

    @property
    def eigh_now(self) -> GramEigh:
        """The current window's decomposition (made here if none was handed in): keep it as the next ``prev``."""
        if self._eigh_now is None:
            self._eigh_now = GramEigh.of(self.A[1:, 1:])
        return self._eigh_now

    @property
    def dC_norm(self) -> float:
        """``delta_C_norm(G_ext)``."""
        if "dC" not in self._norms:
            self._norms["dC"] = _delta_C(self.A)
        return self._norms["dC"]

    @property
    def dG_norm(self) -> float:
        """``delta_G_norm(G_ext)``."""
        if "dG" not in self._norms:
            self._norms["dG"] = _delta_G(self.A)
        return self._norms["dG"]

    def alpha(self, variant: str | None = None, **kw: Any) -> np.ndarray:
        """``alpha(G_ext, variant, **kw)``, from the shared decompositions where the variant has a shared form."""
        fn = registry.get("alpha", variant).fn
        shared = _SHARED.get(fn)
        if shared is None or kw:
            return fn(self.G_ext, **kw)
        return shared(self)


def _dk_dlambda_shared(c: ConsecutiveWindows) -> np.ndarray:
    now = c.now  # first, as in dk_dlambda
    return _dk_alpha(delta_lambda_norm(gram_eigenvalues(c.A[:-1, :-1]), now.lam), now.gap, 1.0)


# The shared forms: each line is its variant's body with the windows' spectra and norms taken from the
# ConsecutiveWindows (C at its default, 1).
_SHARED = {
    dk_deltaC: lambda c: _dk_alpha(c.dC_norm, np.minimum(c.now.gap, c.now.lam), 1.0),
    dk_deltaG: lambda c: _dk_alpha(c.dG_norm, c.now.gap, 1.0),
    dk_dlambda: _dk_dlambda_shared,
    rot: lambda c: _overlap(c.prev, c.now, c.A[:-1, 1:], c.now.w),
}


def alpha(G_ext: np.ndarray, variant: str | None = None, **kw: Any) -> np.ndarray:
    """α_j of the current window by registry variant ``variant`` (None → the default, ``dk_deltaC``).

    ``G_ext`` is the (w+1)×(w+1) extended Gram. Length w, except ``half``: ⌊w/2⌋. ``kw`` goes to the variant
    (``C`` for the dk_* variants, ``odd_row`` for ``half``).
    """
    return registry.get("alpha", variant)(G_ext, **kw)
