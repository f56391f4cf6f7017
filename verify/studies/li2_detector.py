"""The Li₂ Stage-III lock-in detector [P] (arXiv 2605.08119, the author's bridge to Tian's Li₂; theory reference §1.8),
on plain
arrays: the helper module of the ``li2`` study (``verify.studies.li2``), which applies it to stored runs.

On the W = 20 rolling Gram of first-layer updates (one update per epoch), the eigenvalue ratio ρ(t) = λ₂/λ₃
(eigenvalue units, σ² of the updates: the bridge's "σ₂/σ₃" is λ_k(ΔᵀΔ), theory reference §1.3 / §7.3), its slope
s(t) = [log ρ(t) − log ρ(t − 25)]/25 (log of max(ρ, 1e-6), as the bridge's ``analysis.py``) and the fire epoch = the
first t ≥ 100 with s(t) > 0.04. Frozen thresholds from the paper: nothing here is fitted to our runs.

Every function is pure numpy on (steps, values) arrays; steps are matched by value, never by position. The first
step at which test accuracy reaches a level is ``verify.grokking.first_crossing``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "FIRE_THRESHOLD",
    "LAG",
    "LATE",
    "RATIO_FLOOR",
    "T_MIN",
    "eigen_ratio",
    "fire_epoch",
    "late_median",
    "log_ratio",
    "slope_signal",
]

#: The bridge's frozen detector settings [P] (2605.08119; theory reference §1.8).
LAG = 25
FIRE_THRESHOLD = 0.04
T_MIN = 100
RATIO_FLOOR = 1e-6  # log(max(ρ, 1e-6)) [P analysis.py]
LATE = (200, 400)  # late stage, epochs [P]


def eigen_ratio(lam: Sequence[float] | np.ndarray) -> float:
    """ρ = λ₂/λ₃ of one window (eigenvalues, descending); NaN when the window has < 3 eigenvalues or λ₂ = 0,
    +inf when λ₃ = 0 < λ₂."""
    lam = np.asarray(lam, dtype=float)
    if lam.size < 3 or not np.all(np.isfinite(lam[:3])):
        return float("nan")
    if lam[1] <= 0:
        return float("nan")
    return float(lam[1] / lam[2]) if lam[2] > 0 else float("inf")


def log_ratio(ratio: np.ndarray) -> np.ndarray:
    """log max(ρ, 1e-6) (NaN stays NaN, +inf stays +inf)."""
    r = np.asarray(ratio, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.log(np.where(np.isnan(r), np.nan, np.maximum(r, RATIO_FLOOR)))


def slope_signal(steps: Sequence[int] | np.ndarray, ratio: Sequence[float] | np.ndarray, lag: int = LAG) -> np.ndarray:
    """s(t) = [log ρ(t) − log ρ(t − lag)]/lag at every step t whose partner t − lag is recorded (else NaN).

    Steps are matched by value, not position, so a missing record gives NaN rather than a shifted difference.
    """
    steps = np.asarray(steps, dtype=np.int64)
    if steps.shape != np.shape(ratio):
        raise ValueError(f"steps {steps.shape} and ratio {np.shape(ratio)} differ in shape")
    if lag < 1:
        raise ValueError(f"lag must be ≥ 1, got {lag}")
    x = log_ratio(np.asarray(ratio, dtype=float))
    where = {int(s): i for i, s in enumerate(steps)}
    out = np.full(x.shape, np.nan)
    for i, s in enumerate(steps):
        j = where.get(int(s) - lag)
        if j is not None:
            with np.errstate(invalid="ignore"):
                out[i] = (x[i] - x[j]) / lag
    return out


def fire_epoch(steps: Sequence[int] | np.ndarray, ratio: Sequence[float] | np.ndarray, *,
               threshold: float = FIRE_THRESHOLD, lag: int = LAG, t_min: int = T_MIN) -> int | None:
    """The first step t ≥ ``t_min`` with s(t) > ``threshold`` (None: never fires)."""
    steps = np.asarray(steps, dtype=np.int64)
    s = slope_signal(steps, ratio, lag)
    with np.errstate(invalid="ignore"):
        hit = (steps >= t_min) & (s > threshold)
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if idx.size else None


def late_median(steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray,
                lo: int = LATE[0], hi: int = LATE[1]) -> float:
    """Median of ``values`` over steps lo ≤ t ≤ hi, NaNs ignored (NaN when none)."""
    steps, v = np.asarray(steps), np.asarray(values, dtype=float)
    sel = v[(steps >= lo) & (steps <= hi)]
    sel = sel[~np.isnan(sel)]
    return float(np.median(sel)) if sel.size else float("nan")

