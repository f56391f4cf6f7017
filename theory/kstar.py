"""k*, the position of the spectral edge, in the variants the thesis and the author's code use.

Every variant is a pure numpy function of the singular values σ₁ ≥ … ≥ σ_w ≥ 0 of the window X (σ units; the
Gram eigenvalues are λ_j = σ_j²) and returns a 1-indexed int in [1, w−1]: the edge lies between σ_{k*} and
σ_{k*+1}. The variants are registered under quantity ``"kstar"`` (see ``theory.registry``); the default is
``argmax``. Drift between them is catalogued in theory reference §1.3 ([P] the author's dyck_scan,
multitask-grokking and mini_gpt scripts each pin a different one).

Conventions shared by all variants (the sources never say what happens at a rank drop, so these are ours):

* r_j = σ_j/σ_{j+1} is +inf when σ_{j+1} = 0 < σ_j (an exact rank drop is an infinitely sharp edge) and 1 when
  σ_j = σ_{j+1} = 0 (two zeros are not separated by anything); so r_j ≥ 1 always.
* Ties go to the first (smallest) index, as ``np.argmax`` and the author's strict ``>`` loops do.

Only ``numpy`` is imported: ``theory/`` must stay free of torch.
"""

from __future__ import annotations

import numpy as np

from theory.registry import register

__all__ = ["argmax", "diff", "sigma_ratios", "var95", "variance_count", "weighted", "weighted_eps"]


def _as_sigma(sigma: np.ndarray) -> np.ndarray:
    """σ as a float64 1-D array, checked: length ≥ 2, finite, ≥ 0, non-increasing."""
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"σ must be a 1-D array of singular values, got shape {s.shape}")
    if s.size < 2:
        raise ValueError(f"k* needs at least 2 singular values (w ≥ 2), got {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"σ contains NaN or Inf: {s.tolist()}")
    if np.any(s < 0):
        raise ValueError(f"singular values must be ≥ 0, got min {s.min()!r}")
    if np.any(np.diff(s) > 0):
        raise ValueError(f"σ must be sorted descending, got {s.tolist()}")
    return s


def sigma_ratios(sigma: np.ndarray) -> np.ndarray:
    """Consecutive ratios r_j = σ_j/σ_{j+1}, j = 1…w−1 (length w−1, dimensionless, [A]).

    +inf where σ_{j+1} = 0 < σ_j; 1.0 where σ_j = σ_{j+1} = 0 (see the module docstring). The ratio is the same in
    σ and λ units up to squaring, so every ratio-based k* is unit-free.
    """
    s = _as_sigma(sigma)
    num, den = s[:-1], s[1:]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # overflow to +inf is the right limit
        r = num / den
    r[(den == 0) & (num > 0)] = np.inf
    r[(den == 0) & (num == 0)] = 1.0
    return r


def variance_count(sigma: np.ndarray, frac: float = 0.95) -> int:
    """Number of leading λ_j = σ_j² needed to reach ``frac`` of Σλ, in [1, w] ([P] mini_gpt ``geometric.py``).

    Computed as the author does, ``#{k : cumsum(λ/Σλ)_k < frac} + 1``; an all-zero σ gives 1.
    """
    s = _as_sigma(sigma)
    if not 0 < frac <= 1:
        raise ValueError(f"frac must lie in (0, 1], got {frac!r}")
    lam = s**2
    total = lam.sum()
    if total == 0:
        return 1
    count = int(np.sum(np.cumsum(lam / total) < frac)) + 1
    return min(count, s.size)


def _clip_index(k: int, w: int) -> int:
    return int(min(max(k, 1), w - 1))


@register(
    "kstar",
    "argmax",
    source="[A] thesis Def 3.1 (draft numbering); mini_gpt theory_experiment_match.py",
    version="v1-v3",
    default=True,
)
def argmax(sigma: np.ndarray) -> int:
    """Plain argmax: k* = argmax_{1≤j≤w−1} σ_j/σ_{j+1} (dimensionless ratio of σ; [A] thesis Def 3.1).

    Why this is the default: it is the only definition the thesis states ("k* = argmax σ_j/σ_{j+1}", abstract and
    Def 3.1), the one the author's own theory–experiment comparison uses, and it has the clean invariances the
    theory relies on (σ ↦ cσ, and argmax σ_j/σ_{j+1} = argmax λ_j/λ_{j+1} = argmax (λ_j − λ_{j+1})/λ_j). The
    weighted variants add an ad-hoc prior towards large σ_j that appears only in replication scripts.

    Ties → the first index; σ_{j+1} = 0 < σ_j gives r_j = +inf, so the first exact rank drop wins.
    """
    return int(np.argmax(sigma_ratios(sigma))) + 1


@register(
    "kstar",
    "weighted",
    source="[P] dyck_scan spectral/thesis_table7_replication.py (Table-7 replication)",
    version="replication of v1 Table 7",
)
def weighted(sigma: np.ndarray) -> int:
    """Signal-weighted k* = argmax_j (σ_j/Σσ)·(σ_j/σ_{j+1}) ([P] dyck_scan Table-7 replication).

    Replicates the author's loop exactly: if σ_{j+1} < 1e-12 (absolute, σ units) the score is the sentinel
    (σ_j/Σσ)·1e6, so a finite ratio above 1e6 can beat a rank drop; if Σσ < 1e-12 the result is 1; ties keep
    the first index (strict ``>``). The author computed σ with float32 ``svdvals``; here σ is float64.
    """
    s = _as_sigma(sigma)
    total = s.sum()
    if total < 1e-12:
        return 1
    best_score, best_j = -1.0, 0
    with np.errstate(over="ignore"):
        for j in range(s.size - 1):
            ratio = 1e6 if s[j + 1] < 1e-12 else s[j] / s[j + 1]
            score = (s[j] / total) * ratio
            if score > best_score:
                best_score, best_j = score, j
    return best_j + 1


@register(
    "kstar",
    "weighted_eps",
    source="[P] spectral-probe-circuits probe_circuit_per_head.py kstar_weighted (eps = 0.05), off-by-one kept",
    version="spectral-probe-circuits @708bf34",
)
def weighted_eps(sigma: np.ndarray, eps: float = 0.05) -> int:
    """ε-restricted signal-weighted k*, kept exactly as the author's code computes it, bug included ([P]).

    Score (σ_k/Σσ)·(σ_k/σ_{k+1}), but only for k = 2…w−1: the author's loop starts at 0-based index 1, so
    the σ₁/σ₂ ratio is never scored and **k* = 1 can never be returned** (an off-by-one). The loop stops at the
    first k with σ_k < ε·σ₁ (the code tests the numerator σ_k, while its docstring states the condition on
    σ_{k+1}), skips k with σ_{k+1} = 0, and falls back to k* = 2 when nothing is scored. For w = 2 that fallback
    is w itself, out of range; we clip it to w − 1 = 1 (our guard, not the author's). Σσ ≤ 0 gives 1.
    """
    s = _as_sigma(sigma)
    total = s.sum()
    if total <= 0:
        return 1
    best_j, best_score = 1, -np.inf
    with np.errstate(over="ignore"):
        for j in range(1, s.size - 1):  # the author's range: index 0 (k = 1) is skipped
            if s[j] < eps * s[0]:
                break
            if s[j + 1] <= 0:
                continue
            score = (s[j] / total) * (s[j] / s[j + 1])
            if score > best_score:
                best_score, best_j = score, j
    return _clip_index(best_j + 1, s.size)


@register("kstar", "var95", source="[P] mini_gpt training/geometric.py UpdatePCA k_star_95", version="mini_gpt")
def var95(sigma: np.ndarray) -> int:
    """Number of leading λ_j = σ_j² holding 95 % of Σλ, clipped to [1, w−1] ([P] mini_gpt ``geometric.py``).

    The author applies it to a *centred* PCA of updates; here it is applied to the uncentred window spectrum, so
    it is a variance-count analogue of k*, not a gap position. The clip keeps the k* contract (an edge needs a
    σ_{k*+1}); ``variance_count`` gives the unclipped count.
    """
    s = _as_sigma(sigma)
    return _clip_index(variance_count(s, 0.95), s.size)


@register(
    "kstar",
    "diff",
    source="[T] third-party repository, NOT Xu's definition (theory reference §1.3)",
    version="n/a",
)
def diff(sigma: np.ndarray) -> int:
    """Largest absolute gap k* = argmax_j (σ_j − σ_{j+1}) in σ units; third party, **not Xu's definition**.

    Unlike the ratio variants it depends on the units (σ versus λ = σ² can pick different j) and favours the head
    of the spectrum. Kept only to quantify how much the choice matters. Ties → the first index.
    """
    s = _as_sigma(sigma)
    return int(np.argmax(s[:-1] - s[1:])) + 1
