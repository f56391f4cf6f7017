"""The theorem catalogue: spec §6's property-testable statements, run with hypothesis against the package's code.

Each ``Theorem`` has an id, a one-line statement, a source tag (spectral-edge-math.md tags: [A] abstract,
[C] companion, [P] paper/code, [R] reconstruction, plus the §), what we expect (``"holds"`` or
``"has counterexamples"``), a hypothesis strategy from ``verify.strategies`` and a check. The check computes the
statement's two sides with the package's functions (``numerics.spectrum``, ``numerics.stability``,
``numerics.gram``, ``numerics.sketch``, ``numerics.probes``, ``theory.*``) and raises ``Violation`` with the
measured values when the statement fails on the example.

``run_theorem`` drives the check with ``hypothesis.given`` under explicit settings (no example database, a seed
derived from the theorem id, every health check off) and catches the failure: hypothesis shrinks a falsifying
example and replays the smallest one last, so the last failing call is the minimal counterexample. A result
reports the examples tried (valid ones, up to the first counterexample), the counterexamples found (0 or 1:
hypothesis stops at the first and shrinks it), the shrunk counterexample, the time, and the verdict: PASS when
the outcome is the expected one (no counterexample for "holds", one for "has counterexamples"), FAIL otherwise,
SKIP when a required module (torch) cannot be imported.

Profiles: ``quick`` runs 50 examples per theorem (the catalogue takes ~10 s on one core), ``thorough`` 1000;
a search for an expected counterexample runs up to ``HUNT_EXAMPLES`` examples whatever the profile, and stops
at the first. Statistical statements (BBP, JL, α-half on isotropic noise) are checked per random instance with a
tolerance whose per-instance failure probability is stated in the statement (≤ 1e-6).

``theorems_command`` is the body of ``spectral-edge theorems``.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption
from hypothesis.extra import numpy as hnp

from theory import bbp, kstar, ntk
from theory.davis_kahan import (
    ALPHA_DK_VALID_RATIO,
    alpha_dk_bound,
    eigh_desc,
    factor_free_bound,
    hoffman_wielandt_shift,
    residual_bound,
    sin_theta,
    sin_theta_bound_yws,
    sin_theta_subspace_F,
    subspace_bound,
    weyl_shift,
)
from verify.strategies import (
    KINDS,
    Perturbation,
    Stream,
    gaussian_window,
    linear_models,
    random_orthonormal,
    symmetric_perturbations,
    trajectories,
    well_separated,
    windows,
)

__all__ = [
    "CATALOGUE",
    "COUNTEREXAMPLES",
    "HOLDS",
    "HUNT_EXAMPLES",
    "PROFILES",
    "Theorem",
    "TheoremResult",
    "Violation",
    "report_json",
    "report_text",
    "run_catalogue",
    "run_theorem",
    "select",
    "theorem",
    "theorems_command",
]

HOLDS = "holds"
COUNTEREXAMPLES = "has counterexamples"

#: Examples per theorem for each profile.
PROFILES: dict[str, int] = {"quick": 50, "thorough": 1000}

#: Budget of a search for an expected counterexample (it stops at the first one found).
HUNT_EXAMPLES: int = 5000

_SEEDS = st.integers(0, 2**32 - 1)

#: What an entry that computes with ``numerics`` (which imports torch) needs.
_NUMERICS: tuple[str, ...] = ("numerics",)


class Violation(AssertionError):
    """A statement failed on an example; ``details`` holds the measured values (JSON-able scalars and lists)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def require(ok: bool, message: str, **details: Any) -> None:
    """Raise ``Violation(message, **details)`` unless ``ok``."""
    if not ok:
        raise Violation(message, **details)


@dataclass(frozen=True)
class Theorem:
    """One catalogue entry. ``check(example)`` returns None when the statement holds on ``example`` and raises
    ``Violation`` when it fails (``hypothesis.assume`` rejects an example outside the hypotheses).

    ``requires``: modules that must import (else SKIP); ``statistical``: true for a probabilistic statement checked
    per instance with a stated failure probability.
    """

    id: str
    statement: str
    source: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]
    expected: str = HOLDS
    requires: tuple[str, ...] = ()
    statistical: bool = False

    def __post_init__(self) -> None:
        if self.expected not in (HOLDS, COUNTEREXAMPLES):
            raise ValueError(f"expected must be {HOLDS!r} or {COUNTEREXAMPLES!r}, got {self.expected!r}")


@dataclass
class TheoremResult:
    """Outcome of ``run_theorem``. ``example`` is the raw shrunk counterexample (not in ``to_dict``)."""

    id: str
    statement: str
    source: str
    expected: str
    verdict: str
    examples: int
    rejected: int
    counterexamples: int
    shrink_calls: int
    time_s: float
    statistical: bool = False
    counterexample: dict[str, Any] | None = None
    reason: str = ""
    example: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "example"}
        d["time_s"] = round(self.time_s, 4)
        return d


CATALOGUE: dict[str, Theorem] = {}


def theorem(
    id: str,
    statement: str,
    source: str,
    strategy: st.SearchStrategy[Any],
    *,
    expected: str = HOLDS,
    requires: tuple[str, ...] = (),
    statistical: bool = False,
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Decorator: register ``check`` as catalogue entry ``id`` (ids are unique)."""

    def register(check: Callable[[Any], None]) -> Callable[[Any], None]:
        if id in CATALOGUE:
            raise ValueError(f"theorem id {id!r} is already registered")
        CATALOGUE[id] = Theorem(id, statement, source, strategy, check, expected, requires, statistical)
        return check

    return register


# ----- shared helpers ----------------------------------------------------------------------------------------


def _gaps(lam: np.ndarray) -> np.ndarray:
    """gap_j = min_{k≠j} |λ_j − λ_k| (λ units)."""
    d = np.abs(lam[:, None] - lam[None, :])
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def _spectra(case: Perturbation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """λ, V of G; λ̂, V̂ of G + E (descending); ‖E‖_op, ‖E‖_F; and the scale 1 + max|λ| + ‖E‖_op."""
    G, E = case
    lam, V = eigh_desc(G)
    lam_hat, V_hat = eigh_desc(G + E)
    E_op, E_F = float(np.linalg.norm(E, 2)), float(np.linalg.norm(E))
    return lam, V, lam_hat, V_hat, E_op, E_F, 1.0 + float(np.abs(lam).max()) + E_op


def _mixed_windows(**kw: Any) -> st.SearchStrategy[np.ndarray]:
    return windows(kind=KINDS, **kw)


def _spectrum(X: np.ndarray, **kw: Any) -> Any:
    from numerics.spectrum import spectrum_from_updates

    return spectrum_from_updates(X, **kw)


# Eigen-solver rounding is ~eps·‖A‖ in λ and ~eps·‖A‖/gap in angle; gaps here are ≥ 1e-2 on a scale ≤ ~100, so
# 1e-7 on sin θ and 1e-9·scale on eigenvalues are generous and never mask a real violation (those are O(1e-2+)).
_ANGLE_TOL = 1e-7
_EIG_TOL = 1e-9


# ===== §6.1 SVD / Gram consistency ============================================================================


@theorem(
    "svd_gram",
    "eig(XXᵀ) = σ(X)²; the non-zero eigenvalues of XᵀX are those of XXᵀ; v_j = Xᵀu_j/σ_j are orthonormal; "
    "XXᵀ = Σ_b X_bX_bᵀ over any column partition",
    "[R] §6.1, §1.2",
    st.tuples(_mixed_windows(), _SEEDS),
    requires=_NUMERICS,
)
def _svd_gram(case: tuple[np.ndarray, int]) -> None:
    from numerics.spectrum import right_vectors, spectrum_from_gram

    X, seed = case
    w, P = X.shape
    s = np.linalg.svd(X, compute_uv=False)  # the twin: SVD of X itself, never the Gram
    spec = spectrum_from_gram(X @ X.T, P=P)
    tol = 1e-10 * s[0] ** 2
    lam_svd = np.zeros(w)
    lam_svd[: s.size] = s**2
    err = float(np.max(np.abs(spec.lam - lam_svd)))
    require(err <= tol, "eig(XXᵀ) ≠ σ(X)²", max_abs_error=err, tol=tol)
    m = min(w, P)
    big = np.sort(np.linalg.eigvalsh(X.T @ X))[::-1][:m]
    err = float(np.max(np.abs(spec.lam[:m] - np.clip(big, 0, None))))
    require(err <= tol, "non-zero eigenvalues of XᵀX ≠ those of XXᵀ", max_abs_error=err, tol=tol)
    k = int(np.sum(spec.sigma > 1e-4 * spec.sigma[0]))
    V = right_vectors(X, spec, k)
    err = float(np.max(np.abs(V.T @ V - np.eye(k))))
    require(err <= 1e-6, "v_j = Xᵀu_j/σ_j not orthonormal", k=k, max_abs_error=err)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, P + 1, size=int(rng.integers(0, 5))))
    shards = np.split(rng.permutation(P), cuts)
    G = sum(X[:, c] @ X[:, c].T for c in shards)
    err = float(np.max(np.abs(G - X @ X.T)))
    tol = 1e-9 * max(1.0, float(np.abs(X).max()) ** 2 * P)
    require(err <= tol, "shard sum Σ_b X_bX_bᵀ ≠ XXᵀ", shards=len(shards), max_abs_error=err, tol=tol)


# ===== §6.2 invariances ========================================================================================


@theorem(
    "invariance.scaling",
    "X ↦ cX (c ≠ 0) leaves every ratio σ_j/σ_{j+1}, k* and R unchanged and scales σ, g by |c|, g₂₃ by c²",
    "[R] §6.2",
    st.tuples(_mixed_windows(), st.floats(1e-3, 1e3), st.booleans()),
    requires=_NUMERICS,
)
def _scaling(case: tuple[np.ndarray, float, bool]) -> None:
    X, c, negate = case
    c = -c if negate else c
    a = _spectrum(X)
    assume(well_separated(a.sigma))
    b = _spectrum(c * X)
    rel = lambda x, y: float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300)))  # noqa: E731
    details = dict(c=c, sigma=a.sigma.tolist(), kstar=a.kstar, kstar_scaled=b.kstar)
    require(rel(b.sigma, abs(c) * a.sigma) <= 1e-8, "σ(cX) ≠ |c|σ(X)", **details)
    require(rel(b.ratios, a.ratios) <= 1e-8 and b.kstar == a.kstar, "ratios or k* changed under X ↦ cX", **details)
    require(math.isclose(b.g, abs(c) * a.g, rel_tol=1e-6), "g(cX) ≠ |c|g(X)", g=a.g, g_scaled=b.g, **details)
    if X.shape[0] >= 3:
        ok = math.isclose(b.g23, c * c * a.g23, rel_tol=1e-6, abs_tol=1e-9 * b.lam[0])
        require(ok, "g₂₃(cX) ≠ c²g₂₃(X)", g23=a.g23, g23_scaled=b.g23, **details)


@theorem(
    "invariance.parameter_rotation",
    "X ↦ XQ, Q orthogonal on ℝ^P (rotation or permutation of the parameters), leaves σ, k* and R unchanged",
    "[R] §6.2, §1.1 (flattening order is irrelevant)",
    st.tuples(_mixed_windows(), _SEEDS, st.booleans()),
    requires=_NUMERICS,
)
def _parameter_rotation(case: tuple[np.ndarray, int, bool]) -> None:
    X, seed, permute = case
    P = X.shape[1]
    rng = np.random.default_rng(seed)
    Q = np.eye(P)[rng.permutation(P)] if permute else random_orthonormal(rng, P, P)
    a = _spectrum(X)
    assume(well_separated(a.sigma))
    b = _spectrum(X @ Q)
    err = float(np.max(np.abs(b.sigma - a.sigma)) / a.sigma[0])
    require(err <= 1e-8 and b.kstar == a.kstar and math.isclose(b.R, a.R, rel_tol=1e-8),
            "σ, k* or R changed under X ↦ XQ", permutation=permute, rel_sigma_error=err, kstar=a.kstar,
            kstar_rotated=b.kstar, R=a.R, R_rotated=b.R)


@theorem(
    "invariance.window_order",
    "X ↦ ΠX, Π a signed permutation of the W rows, leaves σ, k*, R and g₂₃ unchanged: window order does not matter",
    "[R] §6.2",
    st.tuples(_mixed_windows(), _SEEDS),
    requires=_NUMERICS,
)
def _window_order(case: tuple[np.ndarray, int]) -> None:
    X, seed = case
    w = X.shape[0]
    rng = np.random.default_rng(seed)
    Pi = np.eye(w)[rng.permutation(w)] * rng.choice([-1.0, 1.0], size=w)[:, None]
    a = _spectrum(X)
    assume(well_separated(a.sigma))
    b = _spectrum(Pi @ X)
    err = float(np.max(np.abs(b.sigma - a.sigma)) / a.sigma[0])
    require(err <= 1e-8 and b.kstar == a.kstar and math.isclose(b.R, a.R, rel_tol=1e-8),
            "σ, k* or R changed under X ↦ ΠX", rel_sigma_error=err, kstar=a.kstar, kstar_permuted=b.kstar)
    if w >= 3:
        require(math.isclose(b.g23, a.g23, rel_tol=1e-6, abs_tol=1e-9 * a.lam[0]), "g₂₃ changed under X ↦ ΠX",
                g23=a.g23, g23_permuted=b.g23)


# ===== §6.3 k* ================================================================================================


def _same_choice(r: np.ndarray, k_a: int, k_b: int) -> bool:
    """k_a = k_b, or r has (to rounding) the same maximal value at both: a tie the two maps may break apart."""
    return k_a == k_b or math.isclose(float(r[k_a - 1]), float(r[k_b - 1]), rel_tol=1e-9)


@theorem(
    "kstar.equivalences",
    "argmax σ_j/σ_{j+1} = argmax λ_j/λ_{j+1} = argmax (λ_j − λ_{j+1})/λ_j; 1 ≤ k* ≤ W−1, R ≥ 1, ties to the first",
    "[A] Def 3.1; [R] §1.3, §6.2, §6.3",
    _mixed_windows(),
    requires=_NUMERICS,
)
def _kstar_equivalences(X: np.ndarray) -> None:
    spec = _spectrum(X)
    k, r, lam = spec.kstar, spec.ratios, spec.lam
    require(1 <= k <= spec.w - 1 and spec.R >= 1 and bool(np.all(r >= 1)), "k* out of [1, W−1] or a ratio < 1",
            kstar=k, ratios=r.tolist())
    require(k == int(np.argmax(r)) + 1, "k* is not the first index of the largest ratio", kstar=k,
            ratios=r.tolist())
    k_lam = int(np.argmax(kstar.sigma_ratios(lam))) + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_gap = np.where(lam[:-1] > 0, (lam[:-1] - lam[1:]) / lam[:-1], 0.0)
    k_rel = int(np.argmax(rel_gap)) + 1
    require(_same_choice(r, k, k_lam) and _same_choice(r, k, k_rel), "the three argmaxes disagree",
            kstar_sigma=k, kstar_lambda=k_lam, kstar_relative_gap=k_rel, sigma=spec.sigma.tolist())


@theorem(
    "kstar.weighted_equals_argmax",
    "the signal-weighted k*_w = argmax_j (σ_j/Σσ)(σ_j/σ_{j+1}) equals the plain argmax k* (it need not: §6.3)",
    "[C] Table-7 replication scripts; [R] §1.3, §6.3",
    _mixed_windows(),
    expected=COUNTEREXAMPLES,
    requires=_NUMERICS,
)
def _kstar_weighted(X: np.ndarray) -> None:
    a, b = _spectrum(X), _spectrum(X, kstar="weighted")
    require(a.kstar == b.kstar, "weighted k* ≠ argmax k*", kstar_argmax=a.kstar, kstar_weighted=b.kstar,
            sigma=a.sigma.tolist())


# ===== §6.4 Weyl / Hoffman–Wielandt ===========================================================================


_ANY_PERTURBATION = symmetric_perturbations(n=(1, 8), ratio=(0.0, 2.0), relative_to="scale", min_spacing=0.0)


@theorem(
    "weyl",
    "max_j |λ_j(G+E) − λ_j(G)| ≤ ‖E‖_op for symmetric G, E (eigenvalues sorted)",
    "[R] §6.4 (Weyl)",
    _ANY_PERTURBATION,
)
def _weyl(case: Perturbation) -> None:
    lam, _, lam_hat, _, E_op, _, scale = _spectra(case)
    shift = weyl_shift(lam, lam_hat)
    require(shift <= E_op + _EIG_TOL * scale, "Weyl fails", shift=shift, E_op=E_op)


@theorem(
    "hoffman_wielandt",
    "√Σ_j(λ_j(G+E) − λ_j(G))² ≤ ‖E‖_F for symmetric G, E (eigenvalues sorted)",
    "[R] §6.4 (Hoffman–Wielandt)",
    _ANY_PERTURBATION,
)
def _hoffman_wielandt(case: Perturbation) -> None:
    lam, _, lam_hat, _, _, E_F, scale = _spectra(case)
    shift = hoffman_wielandt_shift(lam, lam_hat)
    require(shift <= E_F + _EIG_TOL * scale, "Hoffman–Wielandt fails", shift=shift, E_F=E_F)


@theorem(
    "hoffman_wielandt.dlambda_proxy",
    "the author's proxy √Σ(Δλ_j)² between consecutive windows never exceeds ‖G_now − G_prev‖_F",
    "[C] theory_experiment_match.py; [R] §1.4, §6.4",
    trajectories(kind=("entries", "gaussian", "drift", "gd")),
    requires=_NUMERICS,
)
def _dlambda_proxy(stream: Stream) -> None:
    from numerics.spectrum import gram_eigenvalues
    from numerics.stability import delta_G_norm, delta_lambda_norm

    for t, B in enumerate(stream.extended()):
        G_ext = B @ B.T
        G_ext = (G_ext + G_ext.T) / 2
        proxy = delta_lambda_norm(gram_eigenvalues(G_ext[:-1, :-1]), gram_eigenvalues(G_ext[1:, 1:]))
        dG = delta_G_norm(G_ext)
        require(proxy <= dG + 1e-9 * max(float(np.trace(G_ext)), 1e-300), "Δλ proxy exceeds ‖ΔG‖_F",
                t=t, proxy=proxy, delta_G=dG)


# ===== §6.5 / §6.6 sliding windows ============================================================================


@theorem(
    "interlacing.sliding_window",
    "consecutive windows share W−1 rows, so λ_{j+1}(G_{t+1}) ≤ λ_j(G_t) and λ_{j+1}(G_t) ≤ λ_j(G_{t+1}) "
    "(Grams from the streaming RollingGram)",
    "[R] §6.5 (Cauchy interlacing)",
    trajectories(kind=("entries", "gaussian", "drift", "gd")),
    requires=("torch", "numerics"),
)
def _sliding_interlacing(stream: Stream) -> None:
    import torch

    from numerics.gram import RollingGram
    from numerics.spectrum import gram_eigenvalues

    rg = RollingGram(stream.W, stream.deltas.shape[1], dtype=torch.float64)
    for t, delta in enumerate(stream.deltas):
        rg.push(torch.from_numpy(np.ascontiguousarray(delta)))
        G_ext = rg.extended_gram()
        if G_ext is None:
            continue
        a, b = gram_eigenvalues(G_ext[:-1, :-1]), gram_eigenvalues(G_ext[1:, 1:])
        tol = 1e-9 * max(float(a[0]), float(b[0]), 1e-300)
        ok = bool(np.all(b[1:] <= a[:-1] + tol) and np.all(a[1:] <= b[:-1] + tol))
        require(ok, "Cauchy interlacing of consecutive windows fails", t=t, lam_prev=a.tolist(), lam_now=b.tolist())


def _padded_eigs(B: np.ndarray, n: int) -> np.ndarray:
    """The n largest eigenvalues of BᵀB (the dual operator C, P×P), from the Gram BBᵀ, padded with zeros."""
    lam = np.zeros(n)
    e = np.sort(np.linalg.eigvalsh(B @ B.T))[::-1]
    lam[: e.size] = np.clip(e, 0, None)
    return lam


@theorem(
    "interlacing.rank_one",
    "C_t = C_{t−1} + δ_tδ_tᵀ − δ_{t−W}δ_{t−W}ᵀ: adding δδᵀ gives λ_j(C) ≤ λ_j(C+δδᵀ) ≤ λ_{j−1}(C); removal reverses",
    "[R] §6.6 (rank-one interlacing on the dual operator C = XᵀX)",
    trajectories(kind=("entries", "gaussian", "drift", "gd")),
)
def _rank_one_interlacing(stream: Stream) -> None:
    n = stream.W + 1
    for t, B in enumerate(stream.extended()):
        prev, mid, now = _padded_eigs(B[:-1], n), _padded_eigs(B, n), _padded_eigs(B[1:], n)
        tol = 1e-9 * max(float(mid[0]), 1e-300)
        add = bool(np.all(prev <= mid + tol) and np.all(mid[1:] <= prev[:-1] + tol))
        require(add, "adding δ_tδ_tᵀ breaks interlacing", t=t, lam_C=prev.tolist(), lam_C_plus=mid.tolist())
        rem = bool(np.all(now <= mid + tol) and np.all(mid[1:] <= now[:-1] + tol))
        require(rem, "removing δ_{t−W}δ_{t−W}ᵀ breaks interlacing", t=t, lam_C_minus=now.tolist(),
                lam_C=mid.tolist())


@theorem(
    "rank_one.delta_C_norm",
    "‖ΔC‖_F² = ‖δ_t‖⁴ + ‖δ_{t−W}‖⁴ − 2⟨δ_t, δ_{t−W}⟩², and numerics.stability.delta_C_norm equals the explicit "
    "‖C_t − C_{t−1}‖_F",
    "[R] §6.6, §7.1",
    trajectories(kind=("entries", "gaussian", "drift", "gd")),
    requires=_NUMERICS,
)
def _delta_C_norm(stream: Stream) -> None:
    from numerics.stability import delta_C_norm

    for t, B in enumerate(stream.extended()):
        explicit = float(np.linalg.norm(B[1:].T @ B[1:] - B[:-1].T @ B[:-1]))
        a, b, c = B[-1] @ B[-1], B[0] @ B[0], B[-1] @ B[0]
        closed = math.sqrt(max(a * a + b * b - 2 * c * c, 0.0))
        G_ext = B @ B.T
        code = delta_C_norm((G_ext + G_ext.T) / 2)
        tol = 1e-7 * max(a, b, 1e-300)
        require(abs(closed - explicit) <= tol and abs(code - explicit) <= tol, "‖ΔC‖_F formula fails", t=t,
                explicit=explicit, closed_form=closed, delta_C_norm=code, tol=tol)


# ===== §6.7 Davis–Kahan ========================================================================================

_DK_PERTURBATION = symmetric_perturbations(n=(2, 8), ratio=(0.0, 2.0))


@theorem(
    "davis_kahan.yws",
    "sin θ_j ≤ 2‖E‖_op/gap_j (gap_j of the unperturbed G)",
    "[R] §3.6 (i), §6.7; Yu–Wang–Samworth 2015",
    _DK_PERTURBATION,
)
def _dk_yws(case: Perturbation) -> None:
    lam, V, _, V_hat, E_op, _, _ = _spectra(case)
    for j, gap in enumerate(_gaps(lam)):
        s, bound = sin_theta(V[:, j], V_hat[:, j]), sin_theta_bound_yws(E_op, gap)
        require(s <= bound + _ANGLE_TOL, "YWS bound fails", j=j, sin_theta=s, bound=bound, E_op=E_op, gap=gap)


@theorem(
    "davis_kahan.residual",
    "sin θ_j ≤ ‖Ev_j‖/min_{k≠j}|λ_j − λ̂_k|",
    "[R] §3.6 (ii), §6.7 (residual form)",
    _DK_PERTURBATION,
)
def _dk_residual(case: Perturbation) -> None:
    lam, V, lam_hat, V_hat, _, _, scale = _spectra(case)
    E = case.E
    for j in range(lam.size):
        if np.min(np.abs(lam[j] - np.delete(lam_hat, j))) <= _EIG_TOL * scale:
            # λ_j is (to rounding) another eigenvalue λ̂_k of G + E: then v_j can be that eigenvector, the residual
            # is 0 too, and the bound is 0/0, i.e. rounding noise over rounding noise (found by the thorough run)
            continue
        s = sin_theta(V[:, j], V_hat[:, j])
        bound = residual_bound(float(np.linalg.norm(E @ V[:, j])), float(lam[j]), np.delete(lam_hat, j))
        require(s <= bound + _ANGLE_TOL, "residual bound fails", j=j, sin_theta=s, bound=bound)


@theorem(
    "davis_kahan.subspace",
    "‖sin Θ(V_{1:k}, V̂_{1:k})‖_F ≤ 2·min(√k‖E‖_op, ‖E‖_F)/(λ_k − λ_{k+1}) for every k",
    "[R] §3.6 (iii), §6.7; Yu–Wang–Samworth 2015",
    _DK_PERTURBATION,
)
def _dk_subspace(case: Perturbation) -> None:
    lam, V, _, V_hat, E_op, E_F, _ = _spectra(case)
    for k in range(1, lam.size):
        s = sin_theta_subspace_F(V[:, :k], V_hat[:, :k])
        bound = subspace_bound(E_op, E_F, k, float(lam[k - 1]), float(lam[k]))
        require(s <= bound + _ANGLE_TOL, "subspace bound fails", k=k, sin_theta_F=s, bound=bound)


@theorem(
    "davis_kahan.conditional",
    "if ‖E‖_op ≤ 0.146·gap_j then cos²θ_j ≥ 1 − ‖E‖_F²/gap_j² (α-DK with C = 1 is then a lower bound on cos²θ)",
    "[R] §6.7 (spec: 0 violations at ‖E‖_op < 0.1·gap); proof in theory.davis_kahan.alpha_dk_bound",
    symmetric_perturbations(n=(2, 8), ratio=(0.0, ALPHA_DK_VALID_RATIO)),
)
def _dk_conditional(case: Perturbation) -> None:
    lam, V, _, V_hat, E_op, E_F, scale = _spectra(case)
    for j, gap in enumerate(_gaps(lam)):
        if E_op > ALPHA_DK_VALID_RATIO * gap:
            continue
        cos2 = 1 - sin_theta(V[:, j], V_hat[:, j]) ** 2
        bound = alpha_dk_bound(E_F, gap)
        require(cos2 >= bound - 1e-9 * scale / gap, "cos²θ_j < 1 − ‖E‖_F²/gap_j²", j=j, cos2=cos2, bound=bound)


def _factor_free(case: Perturbation, norm: str, relabel: bool) -> None:
    """sin θ_j ≤ ‖E‖/gap_j for every j whose v̂_j is determined (λ̂_j not repeated); with ``relabel=False`` only
    where v̂_j is also v_j's best match among the v̂_k (a genuine rotation, no swap of labels)."""
    lam, V, lam_hat, V_hat, E_op, E_F, _ = _spectra(case)
    E_norm = E_op if norm == "op" else E_F
    for j, (gap, gap_hat) in enumerate(zip(_gaps(lam), _gaps(lam_hat), strict=True)):
        if gap_hat < 1e-3 * gap:
            continue  # λ̂_j (nearly) repeated: v̂_j is not determined, and sin θ_j = 1 would be an artefact
        overlaps = np.abs(V[:, j] @ V_hat)
        if not relabel and overlaps[j] < overlaps.max():
            continue
        s, bound = sin_theta(V[:, j], V_hat[:, j]), factor_free_bound(E_norm, gap)
        # a violation must clear rounding by far: genuine ones exceed the bound by a factor ≥ 1 + O(1e-2)
        require(s <= bound * (1 + 1e-6) + _ANGLE_TOL, f"sin θ_j > ‖E‖_{norm}/gap_j", j=j, sin_theta=s, bound=bound,
                ratio=s / bound if bound > 0 else math.inf, E_norm_over_gap=E_norm / gap,
                E_op_over_gap=E_op / gap, yws_bound=sin_theta_bound_yws(E_op, gap))


# 2×2 suffices for a counterexample and is where they are densest (spec §3.6: all at ‖E‖_op/gap ∈ (0.3, 1)).
_FACTOR_FREE = symmetric_perturbations(n=2, ratio=(0.3, 1.0))


@theorem(
    "davis_kahan.factor_free",
    "sin θ_j ≤ ‖E‖_op/gap_j, the thesis's Thm 9.1 without the factor 2: NOT a theorem, even for a genuine "
    "rotation (v̂_j = v_j's best match; searched on 2×2, ‖E‖_op/gap ∈ (0.3, 1), where the failures lie)",
    "[C] Thm 9.1 as quoted; [R] §3.6, §6.7 (negative test)",
    _FACTOR_FREE,
    expected=COUNTEREXAMPLES,
)
def _dk_factor_free(case: Perturbation) -> None:
    _factor_free(case, "op", relabel=False)


@theorem(
    "davis_kahan.factor_free_frobenius",
    "sin θ_j ≤ ‖E‖_F/gap_j, i.e. cos²θ_j ≥ 1 − ‖E‖_F²/gap_j² at any size, modes matched by index as the author's "
    "code does: NOT a theorem (searched on 2×2, ‖E‖_op/gap ∈ (0.3, 1))",
    "[C] Thm 9.1, Def 6.1 (α-DK); [R] §3.6, §6.7",
    _FACTOR_FREE,
    expected=COUNTEREXAMPLES,
)
def _dk_factor_free_F(case: Perturbation) -> None:
    _factor_free(case, "F", relabel=True)


# ===== §6.11 loss decomposition ===============================================================================


@theorem(
    "loss_decomposition.window_identity",
    "1ᵀXg = Σ_j σ_j(u_jᵀ1)(v_jᵀg) for every g ∈ ℝ^P (theory.loss_decomposition.window_displacement_projection)",
    "[R] §3.7, §6.11",
    st.tuples(_mixed_windows(), _SEEDS, st.floats(-3, 3)),
)
def _window_identity(case: tuple[np.ndarray, int, float]) -> None:
    from theory.loss_decomposition import window_displacement_projection

    X, seed, log_scale = case
    g = 10.0**log_scale * np.random.default_rng(seed).standard_normal(X.shape[1])
    terms = window_displacement_projection(X, g)
    lhs = float(X.sum(axis=0) @ g)
    tol = 1e-9 * float(np.linalg.norm(X)) * float(np.linalg.norm(g)) * math.sqrt(X.shape[0])
    require(abs(terms.sum() - lhs) <= tol, "1ᵀXg ≠ Σ_j σ_j(u_jᵀ1)(v_jᵀg)", lhs=lhs, rhs=float(terms.sum()), tol=tol)


# ===== §6.12 linear model / NTK ==============================================================================

_NTK_CASES = st.tuples(linear_models(), st.integers(0, 5), st.integers(2, 10))


@theorem(
    "ntk.gram_identity",
    "GD on least squares: the simulated window Gram XXᵀ equals Σ_i a_ia_iᵀ, a_i(s) = −η√κ_i⟨r₀,q_i⟩(1−ηκ_i)^s",
    "[R] §3.2, §6.12 (theory.ntk)",
    _NTK_CASES,
)
def _ntk_gram(case: tuple[Any, int, int]) -> None:
    (J, r0, eta), s0, W = case
    full = ntk.linear_model_updates(J, r0, eta, s0 + W)
    X = full[s0:]
    G_sim = X @ X.T
    G = ntk.ntk_gram(J, r0, eta, s0, W)
    err = float(np.max(np.abs(G - G_sim)))
    # relative to the largest update of the run: a mode with ηκ_i = 1 dies after one step, leaving rounding only
    tol = 1e-9 * max(float(np.max(np.sum(full**2, axis=1))), 1e-300)
    require(err <= tol, "NTK closed form ≠ simulated GD Gram", max_abs_error=err, tol=tol, eta=eta, s0=s0, W=W)


@theorem(
    "ntk.krylov_universal",
    "k* ≤ #{i : ηWκ_i ≥ 1} + 1 in every noiseless linear-model window (a tendency, not a theorem: §6.12)",
    "[C] draft Prop 2.6; [R] §3.2, §6.12",
    _NTK_CASES,
    expected=COUNTEREXAMPLES,
    requires=_NUMERICS,
)
def _ntk_krylov(case: tuple[Any, int, int]) -> None:
    from numerics.spectrum import spectrum_from_gram

    (J, r0, eta), s0, W = case
    G = ntk.ntk_gram(J, r0, eta, s0, W)
    assume(float(np.trace(G)) > 0)
    k = spectrum_from_gram(G).kstar
    kappa, _ = ntk.ntk_eigenpairs(J)
    bound = ntk.krylov_kstar_bound(kappa, eta, W)
    require(k <= bound, "k* exceeds the Krylov count + 1", kstar=k, bound=bound,
            eta_W_kappa=(eta * W * kappa).tolist())


# ===== §6.13 Dyson second order ===============================================================================


@theorem(
    "dyson.second_order",
    "|λ_j(G+E) − (λ_j + E_jj + Σ_{k≠j}E_jk²/(λ_j−λ_k))| ≤ 4‖E‖³/(gap_j(gap_j − 2‖E‖)) for ‖E‖_op < gap_j/2",
    "[R] §3.5, §6.13 (theory.dyson); remainder bound: Bauer–Fike + Cauchy estimate (see check docstring)",
    symmetric_perturbations(n=(2, 8), ratio=(0.0, 0.45)),
)
def _dyson(case: Perturbation) -> None:
    """The bound, [R] ours: for complex ε with |ε|‖E‖ < gap_j/2 the eigenvalues of G + εE lie in discs of radius
    |ε|‖E‖ around those of G (Bauer–Fike, G normal); λ_j's disc is isolated, so λ_j(ε) is analytic there with
    |λ_j(ε) − λ_j| ≤ |ε|‖E‖. Cauchy's estimate on |ε| = R → r = gap_j/(2‖E‖) bounds the Taylor remainder after
    ε² at ε = 1 by ‖E‖/(r(r − 1)) = 4‖E‖³/(gap_j(gap_j − 2‖E‖)). λ units throughout.
    """
    from theory.dyson import second_order_eigenvalues

    G, E = case
    lam, _, lam_hat, _, E_op, _, scale = _spectra(case)
    approx = second_order_eigenvalues(G, E, 1.0)
    for j, gap in enumerate(_gaps(lam)):
        err = abs(float(lam_hat[j] - approx[j]))
        bound = 4 * E_op**3 / (gap * (gap - 2 * E_op))
        require(err <= bound + _EIG_TOL * scale, "second-order remainder exceeds its bound", j=j, error=err,
                bound=bound, E_op_over_gap=E_op / gap, second_order_term=float(approx[j] - lam[j]))


# ===== §6.14 BBP (statistical) ================================================================================

_BBP_REPLICAS = 4
_BBP_TOL = 2.5  # in units of ν


@st.composite
def _bbp_cases(draw: st.DrawFn) -> tuple[int, int, float, float, int]:
    W = draw(st.integers(4, 16))
    P = draw(st.integers(1000, 6000))
    mult = draw(st.one_of(st.floats(2.0, 10.0), st.floats(0.1, 0.5)))
    return W, P, mult, 10.0 ** draw(st.floats(-1, 1)), draw(_SEEDS)


@theorem(
    "bbp.top_singular_value",
    "X = d·u vᵀ + N (N i.i.d. N(0,ν²)): the mean σ₁ of 4 draws is within 2.5ν of ν√P√((1+θ²)(c+θ²))/θ for "
    "d ≥ 2d_crit, and of the bulk edge ν(√P+√W) for d ≤ d_crit/2 (≈ 5.5 and 10 standard deviations)",
    "[R] §3.1, §6.14 (Benaych-Georges–Nadakuditi; theory.bbp)",
    _bbp_cases(),
    statistical=True,
)
def _bbp(case: tuple[int, int, float, float, int]) -> None:
    """Calibration (2000 instances, W 4–16, P 1000–6000): the mean of 4 draws deviates from the prediction by
    0.45ν (std) above the threshold, max 1.6ν; below it the finite-W edge shift is −0.5ν ± 0.23ν. σ units.
    """
    W, P, mult, nu, seed = case
    rng = np.random.default_rng(seed)
    d = mult * bbp.d_crit_textbook(nu, P, W)
    u, v = rng.standard_normal(W), rng.standard_normal(P)
    S = d * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    tops = []
    for _ in range(_BBP_REPLICAS):
        X = S + nu * rng.standard_normal((W, P))
        tops.append(math.sqrt(float(np.linalg.eigvalsh(X @ X.T)[-1])))
    obs, pred = float(np.mean(tops)), bbp.bbp_top_sigma(d, nu, P, W)
    require(abs(obs - pred) <= _BBP_TOL * nu, "top singular value off the BBP prediction", W=W, P=P,
            d_over_d_crit=mult, nu=nu, observed=obs, predicted=pred, deviation_in_nu=(obs - pred) / nu)


# ===== §6.15 commutator on quadratics ==========================================================================


@st.composite
def _quadratic_pairs(draw: st.DrawFn, same_hessian: bool = False) -> tuple[Any, ...]:
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(_SEEDS))
    eta = 10.0 ** draw(st.floats(-3, 0))
    sym = lambda: (lambda M: (M + M.T) / 2)(rng.standard_normal((n, n)))  # noqa: E731
    H_A = sym()
    H_B = H_A.copy() if same_hessian else sym()
    theta0 = rng.standard_normal(n)
    b_A = rng.standard_normal(n)
    if same_hessian:  # g_B = c·g_A at θ₀: b_B = c(H_Aθ₀ + b_A) − H_Bθ₀
        c = draw(st.floats(-3, 3))
        b_B = c * (H_A @ theta0 + b_A) - H_B @ theta0
    else:
        b_B = rng.standard_normal(n)
    return H_A, H_B, b_A, b_B, theta0, float(eta)


def _commutator(H_A: np.ndarray, H_B: np.ndarray, b_A: np.ndarray, b_B: np.ndarray, theta0: np.ndarray,
                eta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(θ_AB − θ_BA, g_A(θ₀), g_B(θ₀)) for two SGD steps on L_X = ½θᵀH_Xθ + b_Xᵀθ (spec §1.8)."""
    g_A = lambda th: H_A @ th + b_A  # noqa: E731
    g_B = lambda th: H_B @ th + b_B  # noqa: E731
    th_AB = theta0 - eta * g_A(theta0) - eta * g_B(theta0 - eta * g_A(theta0))
    th_BA = theta0 - eta * g_B(theta0) - eta * g_A(theta0 - eta * g_B(theta0))
    return th_AB - th_BA, g_A(theta0), g_B(theta0)


@theorem(
    "commutator.quadratic",
    "for L_X = ½θᵀH_Xθ + b_Xᵀθ: θ_AB − θ_BA = η²(H_B g_A − H_A g_B) exactly, g at θ₀",
    "[R] §6.15 (commutator defect of §1.8)",
    _quadratic_pairs(),
)
def _commutator_identity(case: tuple[Any, ...]) -> None:
    H_A, H_B, b_A, b_B, theta0, eta = case
    delta, g_A, g_B = _commutator(H_A, H_B, b_A, b_B, theta0, eta)
    pred = eta**2 * (H_B @ g_A - H_A @ g_B)
    scale = eta * (1 + np.abs(theta0).max()) * (1 + np.abs(H_A).max() + np.abs(H_B).max()) ** 2
    err = float(np.max(np.abs(delta - pred)))
    require(err <= 1e-12 * scale, "θ_AB − θ_BA ≠ η²(H_B g_A − H_A g_B)", max_abs_error=err, eta=eta)


@theorem(
    "commutator.parallel_gradients",
    "D = 0 when H_A = H_B and g_A ∥ g_B, as §6.15 states (it need not: θ_AB − θ_BA = η²H(g_A − g_B) ≠ 0 in general)",
    "[R] §6.15 (second clause; erratum: the condition is H_B g_A = H_A g_B)",
    _quadratic_pairs(same_hessian=True),
    expected=COUNTEREXAMPLES,
)
def _commutator_parallel(case: tuple[Any, ...]) -> None:
    H_A, H_B, b_A, b_B, theta0, eta = case
    delta, g_A, g_B = _commutator(H_A, H_B, b_A, b_B, theta0, eta)
    na, nb = float(np.linalg.norm(eta * g_A)), float(np.linalg.norm(eta * g_B))
    assume(na > 1e-6 and nb > 1e-6)
    D = float(np.linalg.norm(delta)) / (na * nb)
    require(D <= 1e-6, "D ≠ 0 with H_A = H_B and g_A ∥ g_B", D=D, g_A=g_A.tolist(), g_B=g_B.tolist(),
            H=H_A.tolist(), eta=eta)


# ===== §6.16 AdamW split (torch) ==============================================================================


@st.composite
def _adamw_cases(draw: st.DrawFn) -> tuple[int, int, float, float, int]:
    return (draw(st.integers(1, 30)), draw(st.integers(1, 4)), 10.0 ** draw(st.floats(-4, -1)),
            draw(st.floats(0.0, 1.0)), draw(_SEEDS))


@theorem(
    "adamw.split",
    "PyTorch AdamW: Δθ = Δθ_grad + Δθ_wd with Δθ_wd = −ηωθ_prev exactly and Δθ_grad = the AdamW(ω=0) step; the "
    "fractions |⟨Δθ_x, v⟩|/(|⟨Δθ_grad, v⟩| + |⟨Δθ_wd, v⟩|) lie in [0, 1] and sum to 1",
    "[P] §1.5; [R] §6.16 (numerics.probes.adamw_split)",
    _adamw_cases(),
    requires=("torch", "numerics.probes"),
)
def _adamw(case: tuple[int, int, float, float, int]) -> None:
    import torch

    from numerics.probes import adamw_split, split_fractions

    P, steps, lr, wd, seed = case
    g = torch.Generator().manual_seed(seed % 2**63)
    theta0 = torch.randn(P, generator=g, dtype=torch.float64)
    p_wd, p_plain = torch.nn.Parameter(theta0.clone()), torch.nn.Parameter(theta0.clone())
    opt_wd = torch.optim.AdamW([p_wd], lr=lr, weight_decay=wd)
    opt_plain = torch.optim.AdamW([p_plain], lr=lr, weight_decay=0.0)
    for step in range(steps):
        grad = torch.randn(P, generator=g, dtype=torch.float64)
        prev_wd, prev_plain = p_wd.detach().clone(), p_plain.detach().clone()
        p_wd.grad, p_plain.grad = grad.clone(), grad.clone()
        opt_wd.step()
        opt_plain.step()
        d_grad, d_wd = adamw_split(prev_wd, p_wd.detach(), lr, wd)
        scale = float(prev_wd.abs().max()) + lr
        err_wd = float((d_wd + lr * wd * prev_wd).abs().max())
        err_grad = float((d_grad - (p_plain.detach() - prev_plain)).abs().max())
        require(err_wd <= 1e-15 * scale and err_grad <= 1e-13 * scale, "AdamW split is not exact", step=step,
                err_wd=err_wd, err_grad=err_grad, lr=lr, wd=wd)
        v = torch.randn(P, generator=g, dtype=torch.float64)
        f_grad, f_wd = split_fractions(d_grad, d_wd, v)
        if not (math.isnan(f_grad) or math.isnan(f_wd)):
            require(0 <= f_grad <= 1 and 0 <= f_wd <= 1 and abs(f_grad + f_wd - 1) <= 1e-12,
                    "split fractions outside [0, 1] or not summing to 1", f_grad=f_grad, f_wd=f_wd)


# ===== §6.17 JL sketch (statistical, torch) ===================================================================

_JL_DELTA = 1e-6


@theorem(
    "jl.subspace_embedding",
    "JLSketch at d = 10W: every eigenvalue of the sketched Gram XΦᵀΦXᵀ lies in [(1−ε)₊², (1+ε)²]·λ_j, "
    "ε = √(W/d) + √(2 ln(2/δ)/d), per-instance failure probability δ = 1e-6",
    "[R] §6.17; Davidson–Szarek bound for the Gaussian Φ restricted to X's row space (numerics.sketch)",
    st.tuples(windows(w=(2, 12), P=(50, 400), kind=("gaussian", "low_rank_noise", "planted_gap")), _SEEDS),
    requires=("torch", "numerics.sketch"),
    statistical=True,
)
def _jl(case: tuple[np.ndarray, int]) -> None:
    """For V an orthonormal basis of the row space (rank r ≤ W), ΦV is d×r with i.i.d. N(0, 1/d) entries, so its
    singular values lie in 1 ± (√(r/d) + t) with probability ≥ 1 − 2e^{−dt²/2} (Davidson–Szarek); hence
    (1−ε)₊²G ≼ Ĝ ≼ (1+ε)²G in Loewner order and every eigenvalue follows. λ units.
    """
    import torch

    from numerics.sketch import JLSketch, default_sketch_dim

    X, seed = case
    W = X.shape[0]
    d = default_sketch_dim(W)
    Y = JLSketch(d, seed).apply(torch.from_numpy(np.ascontiguousarray(X))).numpy()
    lam = np.sort(np.clip(np.linalg.eigvalsh(X @ X.T), 0, None))[::-1]
    lam_hat = np.sort(np.clip(np.linalg.eigvalsh(Y @ Y.T), 0, None))[::-1]
    eps = math.sqrt(W / d) + math.sqrt(2 * math.log(2 / _JL_DELTA) / d)
    lo, hi = max(0.0, 1 - eps) ** 2, (1 + eps) ** 2
    tol = 1e-6 * float(lam[0])  # Φ is drawn in float32
    ok = bool(np.all(lam_hat >= lo * lam - tol) and np.all(lam_hat <= hi * lam + tol))
    require(ok, "sketched eigenvalues outside the JL band", W=W, d=d, eps=eps, lam=lam.tolist(),
            lam_sketched=lam_hat.tolist())


# ===== §6.18 Tian Theorem 6 ===================================================================================


@st.composite
def _tian_cases(draw: st.DrawFn) -> tuple[np.ndarray, float, int, int]:
    m = draw(st.integers(2, 8))
    n = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(_SEEDS))
    F = rng.standard_normal((n, m)) * 10.0 ** rng.uniform(-1, 1, m)  # columns f̃_j of varied norms
    eta = 10.0 ** draw(st.floats(-3, 1)) * float(np.mean(F**2) * n)
    j = draw(st.integers(0, m - 1))
    l = (j + 1 + draw(st.integers(0, m - 2))) % m
    return F, eta, j, l


def _projector(F: np.ndarray, eta: float) -> np.ndarray:
    """P_η = I − F(FᵀF + ηI)⁻¹Fᵀ (n×n; identity for an empty F)."""
    n, m = F.shape
    if m == 0:
        return np.eye(n)
    return np.eye(n) - F @ np.linalg.solve(F.T @ F + eta * np.eye(m), F.T)


@theorem(
    "tian.theorem6_sign",
    "B = (F̃ᵀF̃+ηI)⁻¹: B's {j,l} block is ([f̃_j f̃_l]ᵀP_{η,−jl}[f̃_j f̃_l] + ηI₂)⁻¹, so sgn B_jl = −sgn f̃_jᵀP_{η,−jl}f̃_l; "
    "and F̃ᵀP_ηF̃ = ηI − η²B",
    "[R] §6.18, §7.8 (Schur complement; Tian 2509.21519 Thm 6 is an identity, not an empirical test)",
    _tian_cases(),
)
def _tian(case: tuple[np.ndarray, float, int, int]) -> None:
    F, eta, j, l = case
    m = F.shape[1]
    B = np.linalg.inv(F.T @ F + eta * np.eye(m))
    rest = [i for i in range(m) if i not in (j, l)]
    P = _projector(F[:, rest], eta)
    pair = F[:, [j, l]]
    S = pair.T @ P @ pair + eta * np.eye(2)
    block = B[np.ix_([j, l], [j, l])]
    S_inv = np.linalg.inv(S)
    err = float(np.max(np.abs(block - S_inv)) / np.abs(S_inv).max())
    require(err <= 1e-8, "B's 2×2 block ≠ the Schur-complement inverse", j=j, l=l, rel_error=err, eta=eta)
    b = float(pair[:, 0] @ P @ pair[:, 1])
    if abs(b) > 1e-8 * math.sqrt(S[0, 0] * S[1, 1]):
        require(np.sign(B[j, l]) == -np.sign(b), "sgn B_jl ≠ −sgn f̃_jᵀP f̃_l", B_jl=float(B[j, l]), f_P_f=b)
    full = F.T @ _projector(F, eta) @ F
    err = float(np.max(np.abs(full - (eta * np.eye(m) - eta**2 * B))) / max(eta, float(np.abs(full).max())))
    require(err <= 1e-8, "F̃ᵀP_ηF̃ ≠ ηI − η²B", rel_error=err, eta=eta)


# ===== §6.19 relative gap / α bookkeeping =====================================================================


@cache
def _one_minus_alpha() -> Callable[..., Any]:
    from numerics.compile import compile_expr
    from theory.adiabatic import ALPHA_ARGS, ONE_MINUS_ALPHA

    return compile_expr(ONE_MINUS_ALPHA, ALPHA_ARGS)


@theorem(
    "alpha.bookkeeping",
    "λ_{k*} − λ_{k*+1} = 2d̄g; if λ_{k*+1} is λ_{k*}'s nearest neighbour, 1 − α-DK_{k*} = ‖ΔG‖²/(4d̄²g²) = "
    "(ηA)²g²/(4d̄²), A = ‖ΔG‖_F/(ηg²)",
    "[R] §3.6, §6.19 (numerics.stability.dk_deltaG, theory.adiabatic)",
    st.tuples(trajectories(kind=("gaussian", "drift", "gd")), st.floats(-4, 0)),
    requires=_NUMERICS,
)
def _alpha_bookkeeping(case: tuple[Stream, float]) -> None:
    from numerics.spectrum import spectrum_from_gram
    from numerics.stability import delta_G_norm, dk_deltaG
    from theory.adiabatic import a_delta_g, nearest_neighbour_is_next

    stream, log_eta = case
    B = list(stream.extended())[-1]
    G_ext = B @ B.T
    G_ext = (G_ext + G_ext.T) / 2
    assume(np.trace(G_ext[1:, 1:]) > 0)
    now = spectrum_from_gram(G_ext[1:, 1:])
    k, lam = now.kstar, now.lam
    g, d_bar = now.g, now.d_bar
    gap_pair = float(lam[k - 1] - lam[k])
    assume(gap_pair > 1e-6 * lam[0])  # a pair gap at rounding level makes every relative comparison noise
    require(math.isclose(gap_pair, 2 * d_bar * g, rel_tol=1e-8), "λ_{k*} − λ_{k*+1} ≠ 2d̄g", kstar=k,
            gap=gap_pair, two_dbar_g=2 * d_bar * g)
    dG = delta_G_norm(G_ext)
    if not nearest_neighbour_is_next(lam, k) or dG > gap_pair:
        return  # the identity's hypotheses: nearest neighbour below, and α-DK's max(0, ·) inactive
    alpha = float(dk_deltaG(G_ext)[k - 1])
    eta = 10.0**log_eta
    A = a_delta_g(dG, eta, g)
    lhs, mid = 1 - alpha, dG**2 / (4 * d_bar**2 * g**2)
    rhs = float(_one_minus_alpha()(A, eta, g, d_bar))
    require(math.isclose(lhs, mid, rel_tol=1e-8, abs_tol=1e-12) and math.isclose(mid, rhs, rel_tol=1e-8,
            abs_tol=1e-12), "1 − α-DK ≠ ‖ΔG‖²/(4d̄²g²) ≠ (ηA)²g²/(4d̄²)", kstar=k, one_minus_alpha=lhs,
            dG_over_2dg_sq=mid, eta_A_form=rhs)


# ===== §6.20 α-half ===========================================================================================


@st.composite
def _half_cases(draw: st.DrawFn) -> tuple[np.ndarray, bool]:
    rank_one = draw(st.booleans())
    if not rank_one:
        return draw(_mixed_windows(w=(4, 12))), False
    w = draw(st.integers(4, 12))
    P = draw(st.integers(1, 40))
    coef = draw(hnp.arrays(np.float64, w, elements=st.one_of(st.floats(0.1, 10), st.floats(-10, -0.1))))
    v = np.random.default_rng(draw(_SEEDS)).standard_normal(P)
    return np.outer(coef, v), True


@theorem(
    "alpha.half_range",
    "α-half_j = |⟨v_j⁽¹⁾, v_j⁽²⁾⟩| ∈ [0, 1], and α-half_1 = 1 when every update is a multiple of one vector",
    "[P] dyck_scan loss_decomposition.py; [R] §1.4, §6.20 (numerics.stability.alpha_half_from_gram)",
    _half_cases(),
    requires=_NUMERICS,
)
def _alpha_half_range(case: tuple[np.ndarray, bool]) -> None:
    from numerics.stability import alpha_half_from_gram

    X, rank_one = case
    w = X.shape[0]
    h = w // 2
    assume(np.any(X[:h] != 0) and np.any(X[w - h :] != 0))  # both halves non-zero (else α-half is undefined)
    G = X @ X.T
    alpha = alpha_half_from_gram((G + G.T) / 2)
    ok = alpha[~np.isnan(alpha)]
    require(bool(np.all((ok >= 0) & (ok <= 1))), "α-half outside [0, 1]", alpha=alpha.tolist())
    if rank_one:
        require(abs(float(alpha[0]) - 1) <= 1e-9, "α-half_1 ≠ 1 on a rank-1 window", alpha_1=float(alpha[0]))


_HALF_DELTA = 1e-6


@theorem(
    "alpha.half_isotropic",
    "i.i.d. Gaussian window in ℝ^P: every α-half_j ≤ √(2 ln(2⌊W/2⌋/δ)/P) = O(1/√P), per-instance failure "
    "probability δ = 1e-6",
    "[R] §6.20 (spherical-cap bound: v_j⁽²⁾ is uniform on the sphere given the first half)",
    st.tuples(st.integers(4, 12), st.integers(50, 2000), _SEEDS),
    statistical=True,
    requires=_NUMERICS,
)
def _alpha_half_isotropic(case: tuple[int, int, int]) -> None:
    """Given the first half, v_j⁽²⁾ is uniform on S^{P−1} (the second half is rotation-invariant and independent),
    so P(|⟨v_j⁽¹⁾, v_j⁽²⁾⟩| ≥ t) ≤ 2e^{−Pt²/2}; a union bound over the ⌊W/2⌋ modes gives the threshold.
    """
    from numerics.stability import alpha_half_from_gram

    w, P, seed = case
    X = gaussian_window(np.random.default_rng(seed), w, P)
    alpha = alpha_half_from_gram(X @ X.T)
    h = w // 2
    t = math.sqrt(2 * math.log(2 * h / _HALF_DELTA) / P)
    require(bool(np.all(alpha <= t)), "α-half above the isotropic bound", W=w, P=P, threshold=t,
            alpha=alpha.tolist())


# ===== §6.18 Tian Theorem 6 (Li₂) ===========================================================================


@st.composite
def _li2_features(draw: st.DrawFn) -> tuple[np.ndarray, float, int, int]:
    """Centred activations F̃ (n×K; some columns planted near-duplicates, so |cos| spans (0, 1)), η, a pair j ≠ l."""
    n, K = draw(st.integers(2, 9)), draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(_SEEDS))
    F = rng.standard_normal((n, K)) * rng.uniform(0.1, 10, size=K)
    for _ in range(draw(st.integers(0, K // 2))):
        a, b = rng.choice(K, size=2, replace=False)
        F[:, b] = rng.choice([-1.0, 1.0]) * F[:, a] + rng.uniform(0.01, 1.0) * rng.standard_normal(n)
    F -= F.mean(axis=0, keepdims=True) if n > 2 else 0.0
    eta = float(10 ** draw(st.floats(-4, 1)))
    j, l = (int(v) for v in rng.choice(K, size=2, replace=False))
    return F, eta, j, l


@theorem(
    "li2.theorem6_sign",
    "Tian Thm 6 is an identity: the {j,l} block of B = (F̃ᵀF̃ + ηI)⁻¹ is (F̃_pᵀP_{η,−jl}F̃_p + ηI₂)⁻¹, so "
    "sgn(B_jl) = −sgn(f̃_jᵀP_{η,−jl}f̃_l) always; and F̃ᵀP_ηF̃ = ηI − η²B (full projector)",
    "[R] §6.18, §7.8 (theory.li2; Tian 2509.21519 Theorem 6)",
    _li2_features(),
)
def _li2_theorem6_sign(case: tuple[np.ndarray, float, int, int]) -> None:
    from theory.li2 import full_projector_gram, pair_schur_block

    F, eta, j, l = case
    K = F.shape[1]
    B = np.linalg.inv(F.T @ F + eta * np.eye(K))  # the twin: a plain inverse of the whole matrix
    S = pair_schur_block(F, eta, j, l)
    block = B[np.ix_([j, l], [j, l])]
    scale = float(np.abs(block).max())
    err = float(np.abs(np.linalg.inv(S) - block).max())
    require(err <= 1e-7 * scale, "Schur block ≠ the {j,l} block of B", max_abs_error=err, scale=scale)
    require(float(np.linalg.eigvalsh(S).min()) > 0, "S not positive definite", eig=np.linalg.eigvalsh(S).tolist())
    resid = float(S[0, 1])
    # the sign is decided wherever B_jl is not rounding noise
    if abs(B[j, l]) > 1e-9 * scale:
        require(np.sign(B[j, l]) == -np.sign(resid), "sgn(B_jl) ≠ −sgn(f̃_jᵀP_{η,−jl}f̃_l)", B_jl=float(B[j, l]),
                residual_similarity=resid)
    direct, closed = full_projector_gram(F, eta)
    tol = 1e-8 * (1.0 + float(np.abs(F.T @ F).max()))
    err = float(np.abs(direct - closed).max())
    require(err <= tol, "F̃ᵀP_ηF̃ ≠ ηI − η²B", max_abs_error=err, tol=tol)


# ===== running ================================================================================================


def _missing(requires: Iterable[str]) -> str | None:
    for name in requires:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken install raising anything at import
            return f"requires {name} ({type(exc).__name__}: {exc})"
    return None


def _jsonable(x: Any, depth: int = 0) -> Any:
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist(), depth)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if hasattr(x, "_asdict"):
        return {k: _jsonable(v, depth + 1) for k, v in x._asdict().items()}
    if isinstance(x, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return repr(x)


# No "explain" phase: it traces coverage (slow) to annotate a failure we report ourselves.
_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def _seed_for(theorem_id: str, seed: int) -> int:
    return zlib.crc32(f"{theorem_id}:{seed}".encode())


def run_theorem(thm: Theorem, max_examples: int, *, seed: int = 0) -> TheoremResult:
    """Run ``thm`` through hypothesis with ``max_examples`` (``HUNT_EXAMPLES`` at least when a counterexample is
    expected). Seeded by (theorem id, ``seed``); reproducible for a given hypothesis version and set of imported
    modules (hypothesis mixes literal constants of the loaded source modules into its draws).

    The check is wrapped in a ``@given`` test under ``settings(max_examples, database=None, deadline=None,
    report_multiple_bugs=False, no explain phase, every health check suppressed)`` and ``hypothesis.seed``; the
    exception hypothesis raises after shrinking is caught, and the last failing call (its replay of the minimal
    example) is the reported counterexample. An exception other than ``Violation`` is a crash of the code under
    test: FAIL with its message.
    """
    base = dict(id=thm.id, statement=thm.statement, source=thm.source, expected=thm.expected,
                statistical=thm.statistical)
    missing = _missing(thm.requires)
    if missing is not None:
        return TheoremResult(**base, verdict="SKIP", examples=0, rejected=0, counterexamples=0, shrink_calls=0,
                             time_s=0.0, reason=missing)
    n = max(max_examples, HUNT_EXAMPLES) if thm.expected == COUNTEREXAMPLES else max_examples
    state: dict[str, Any] = {"tried": 0, "rejected": 0, "shrink": 0, "failure": None}

    def test(example: Any) -> None:
        before = state["failure"] is None
        if before:
            state["tried"] += 1
        else:
            state["shrink"] += 1
        try:
            thm.check(example)
        except UnsatisfiedAssumption:
            if before:
                state["rejected"] += 1
            raise
        except Exception as exc:
            state["failure"] = (example, exc)
            raise

    test.__name__ = test.__qualname__ = "check_" + thm.id.replace(".", "_")
    run = hypothesis.seed(_seed_for(thm.id, seed))(
        settings(
            max_examples=n,
            database=None,
            deadline=None,
            derandomize=False,
            report_multiple_bugs=False,
            verbosity=Verbosity.normal,  # nothing is printed; "Failing test case" becomes an exception note
            phases=_PHASES,
            suppress_health_check=list(HealthCheck),
        )(given(thm.strategy)(test))
    )
    t0 = time.perf_counter()
    raised: BaseException | None = None
    try:
        run()
    except Exception as exc:  # the shrunk failure, re-raised by hypothesis; or hypothesis's own error
        raised = exc
    elapsed = time.perf_counter() - t0
    examples = state["tried"] - state["rejected"]
    common = dict(**base, examples=examples, rejected=state["rejected"], shrink_calls=state["shrink"],
                  time_s=elapsed)
    failure = state["failure"]
    if failure is None:
        if raised is not None:
            return TheoremResult(**common, verdict="FAIL", counterexamples=0,
                                 reason=f"hypothesis error: {type(raised).__name__}: {raised}")
        if thm.expected == HOLDS:
            return TheoremResult(**common, verdict="PASS", counterexamples=0)
        return TheoremResult(**common, verdict="FAIL", counterexamples=0,
                             reason=f"expected a counterexample, none in {examples} examples")
    example, exc = failure
    notes = [line for line in getattr(raised, "__notes__", []) if line.strip()]
    falsifying = "\n".join(n for n in notes if n.startswith("Failing test case"))
    cex = {"message": str(exc), "details": _jsonable(getattr(exc, "details", {})), "example": _jsonable(example),
           "falsifying": falsifying}
    if not isinstance(exc, Violation):
        return TheoremResult(**common, verdict="FAIL", counterexamples=0, counterexample=cex, example=example,
                             reason=f"the check crashed: {type(exc).__name__}: {exc}")
    verdict = "PASS" if thm.expected == COUNTEREXAMPLES else "FAIL"
    reason = "counterexample found, as expected" if verdict == "PASS" else "counterexample to a statement that holds"
    return TheoremResult(**common, verdict=verdict, counterexamples=1, counterexample=cex, example=example,
                         reason=reason)


def select(only: Iterable[str] | None = None) -> list[Theorem]:
    """Catalogue entries in order; ``only`` picks ids or id prefixes (``davis_kahan`` → every ``davis_kahan.*``).

    Raises ``KeyError`` naming the unknown ones.
    """
    if not only:
        return list(CATALOGUE.values())
    wanted = list(only)
    unknown = [w for w in wanted if w not in CATALOGUE and not any(k.startswith(w + ".") for k in CATALOGUE)]
    if unknown:
        raise KeyError(f"unknown theorem ids {unknown}; known: {', '.join(CATALOGUE)}")
    return [t for k, t in CATALOGUE.items() if any(k == w or k.startswith(w + ".") for w in wanted)]


def _examples_for(profile: str | int) -> int:
    if isinstance(profile, int) and not isinstance(profile, bool):
        if profile < 1:
            raise ValueError(f"a numeric profile is examples per theorem, ≥ 1; got {profile}")
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} (or an int)")
    return PROFILES[profile]


def run_catalogue(
    profile: str | int = "quick",
    only: Iterable[str] | None = None,
    *,
    seed: int = 0,
    on_result: Callable[[TheoremResult], None] | None = None,
) -> list[TheoremResult]:
    """Run the selected theorems at ``profile`` ("quick", "thorough" or examples per theorem); ``on_result`` is
    called after each one (e.g. to print progress)."""
    n = _examples_for(profile)
    results = []
    for thm in select(only):
        r = run_theorem(thm, n, seed=seed)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results


# ----- reports ------------------------------------------------------------------------------------------------

_ID_WIDTH = 38


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            return str(v)
        if a.size > 12:
            return f"<{a.shape} array>"
        return np.array2string(a, precision=4, separator=", ").replace("\n", " ")
    return str(v)


def _row(r: TheoremResult) -> list[str]:
    exp = "holds" if r.expected == HOLDS else "has cex"
    lines = [f"{r.id:<{_ID_WIDTH}} {exp:<8} {r.examples:>6} {r.counterexamples:>4} {r.time_s:>7.2f}s  {r.verdict}"]
    lines.append(f"    {r.statement}" + ("  [statistical]" if r.statistical else ""))
    if r.counterexample is not None:
        c = r.counterexample
        details = ", ".join(f"{k} = {_fmt(v)}" for k, v in c["details"].items())
        lines.append(f"    smallest counterexample: {c['message']}" + (f": {details}" if details else ""))
        ex = c["example"]
        if isinstance(ex, dict) and sum(np.size(v) for v in ex.values()) <= 32:
            for k, v in ex.items():
                lines.append(f"      {k} = {np.array2string(np.asarray(v), precision=4, separator=', ')}"
                             .replace("\n", " "))
    if r.reason and r.verdict != "PASS":
        lines.append(f"    {r.verdict}: {r.reason}")
    return lines


def _header(profile: str | int, seed: int) -> list[str]:
    n = _examples_for(profile)
    return [
        f"spectral-edge theorems: profile {profile} ({n} examples per theorem; expected counterexamples searched "
        f"in up to {max(n, HUNT_EXAMPLES)}), seed {seed}, hypothesis {hypothesis.__version__}",
        "",
        f"{'theorem':<{_ID_WIDTH}} {'expected':<8} {'tried':>6} {'cex':>4} {'time':>8}  verdict",
    ]


def _summary(results: list[TheoremResult]) -> dict[str, Any]:
    counts = {v: sum(r.verdict == v for r in results) for v in ("PASS", "FAIL", "SKIP")}
    return {"theorems": len(results), **counts, "time_s": round(sum(r.time_s for r in results), 3)}


def _summary_line(results: list[TheoremResult]) -> str:
    s = _summary(results)
    return (f"{s['theorems']} theorems: {s['PASS']} PASS, {s['FAIL']} FAIL, {s['SKIP']} SKIP; "
            f"total {s['time_s']:.1f} s")


def report_text(results: list[TheoremResult], profile: str | int = "quick", seed: int = 0) -> str:
    """The text table: one row per theorem (tried = valid examples up to the first counterexample, cex = 0/1),
    its statement, and the shrunk counterexample where one was found."""
    lines = _header(profile, seed)
    for r in results:
        lines.extend(_row(r))
    lines += ["", _summary_line(results)]
    return "\n".join(lines)


def report_json(results: list[TheoremResult], profile: str | int = "quick", seed: int = 0) -> dict[str, Any]:
    """The JSON report: profile, seed, versions, the per-theorem results (``TheoremResult.to_dict``), a summary."""
    return {
        "profile": profile,
        "examples_per_theorem": _examples_for(profile),
        "hunt_examples": HUNT_EXAMPLES,
        "seed": seed,
        "hypothesis": hypothesis.__version__,
        "numpy": np.__version__,
        "results": [r.to_dict() for r in results],
        "summary": _summary(results),
    }


def theorems_command(profile: str = "quick", only: list[str] | None = None, as_json: bool = False) -> int:
    """Run the catalogue and print the report (text, rows as they finish; or JSON at the end).

    Exit code: 0 when every theorem behaves as expected (PASS or SKIP), 1 when any FAILs, 2 for an unknown
    profile or theorem id.
    """
    try:
        _examples_for(profile)
        select(only)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if as_json:
        results = run_catalogue(profile, only)
        print(json.dumps(report_json(results, profile), indent=2))
    else:
        print("\n".join(_header(profile, 0)), flush=True)
        results = run_catalogue(profile, only, on_result=lambda r: print("\n".join(_row(r)), flush=True))
        print("\n" + _summary_line(results))
    return 1 if any(r.verdict == "FAIL" for r in results) else 0
