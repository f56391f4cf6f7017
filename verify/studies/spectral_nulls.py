"""Controls and nulls of the spectral and probe rows: the run classes, share and mean differences with intervals,
and the random-window statistics (``numerics.nulls``) that the structural rows are scored against.

Run classes (issue 13): *grokking* = grokked with weight decay > 0; controls split into *wd 0* (no weight decay)
and *non-grokking wd* (weight decay > 0, never grokked: the ops that do not grok). Runs are the independent units
of every interval: a share is a count of runs (95 % Wilson; a difference of two shares by Newcombe's hybrid score
interval), a mean is over per-run values (95 % t; a difference of two means by a run bootstrap, each class
resampled on its own, fixed seed).

Random-window nulls (``numerics.nulls``; fixed seeds): for k*, W independent random directions in ℝ^P with the
window's row norms; the stored modular windows keep no Gram, so their row norms are taken equal with the window's
trace Σλ (a flat profile; ``flat`` below). For the BBP and Marchenko–Pastur rows, pure noise (i.i.d. entries) of
the same P and w, scored with the same ν estimator as ``numerics.spectrum`` (ν² = mean of the bottom half of λ
over P, 0-indexed from w//2; textbook d_crit = ν(Pw)^¼, the definition the stored records used).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numerics.nulls import gaussian_window_grams, noise_grams
from verify.stats import mean_ci, wilson_interval

__all__ = ["CLASSES", "diff_means", "mean_str", "newcombe", "null_kstar_runs", "null_noise_quantiles",
           "share_str", "sigma_batch"]

#: Control classes, in the order the rows print them.
CLASSES = ("wd 0", "non-grokking wd")


def share_str(k: int, n: int) -> str:
    """``k/n = p [lo, hi]`` with the 95 % Wilson interval; ``0/0`` → ``n/a (no runs)``."""
    if n < 1:
        return "n/a (no runs)"
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """p1 − p2 and its 95 % Newcombe hybrid score interval (from the two Wilson intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d, d - float(np.hypot(p1 - l1, u2 - p2)), d + float(np.hypot(u1 - p1, p2 - l2))


def mean_str(x: Sequence[float], spec: str = ".3g") -> str:
    """``mean [lo, hi] (n=N)`` with the 95 % t interval over the finite values."""
    m, lo, hi = mean_ci(x)
    n = int(np.isfinite(np.asarray(x, float)).sum())
    return f"{m:{spec}} [{lo:{spec}}, {hi:{spec}}] (n={n})"


def diff_means(a: Sequence[float], b: Sequence[float], *, seed: int = 0, reps: int = 2000) -> tuple[float, float,
                                                                                                       float]:
    """mean(a) − mean(b) and its 95 % run-bootstrap interval (each class resampled on its own; ``a`` and ``b`` are
    per-run values; two-sample percentile bootstrap, fixed ``seed``: ``verify.stats.cluster_bootstrap`` resamples
    one pool of units and could leave a class empty)."""
    a_, b_ = [float(v) for v in a if np.isfinite(v)], [float(v) for v in b if np.isfinite(v)]
    if not a_ or not b_:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    reps_d = [float(np.mean(rng.choice(a_, len(a_))) - np.mean(rng.choice(b_, len(b_)))) for _ in range(reps)]
    lo, hi = (float(v) for v in np.percentile(reps_d, [2.5, 97.5]))
    return float(np.mean(a_) - np.mean(b_)), lo, hi


def sigma_batch(G: np.ndarray) -> np.ndarray:
    """Singular values σ_1 ≥ … ≥ σ_w of a batch of Grams (size, w, w) (negative round-off clipped to 0)."""
    lam = np.linalg.eigvalsh(G)[..., ::-1]
    return np.sqrt(np.clip(lam, 0.0, None))


def kstar_batch(sigma: np.ndarray) -> np.ndarray:
    """Plain-argmax k* (1-indexed) of a batch of σ vectors, as ``theory.kstar`` ``argmax`` (σ_{j+1} = 0 → ∞)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sigma[..., :-1] / sigma[..., 1:]
    r = np.where(np.isnan(r), 1.0, r)
    return np.argmax(r, axis=-1) + 1


def null_kstar_runs(windows: Sequence[Sequence[tuple[int, float]]], P: int, *, draws: int, seed: int,
                    stat: Callable[[int], bool]) -> dict[str, Any]:
    """Random-window null of a run-level k* statistic.

    ``windows``: per run, its windows as (w, Σλ); each window is replaced by ``draws`` Grams of w random directions
    in ℝ^P with flat row norms √(Σλ/w) (``numerics.nulls.gaussian_window_grams``). Null run d = the d-th draw of
    each of its windows; its modal k* is scored by ``stat``. Returns the share of null runs (runs × draws) with
    ``stat(modal k*)`` true, its Wilson interval, and the share of null windows with ``stat(k*)`` true.
    """
    rng = np.random.default_rng(seed)
    hits, n_runs, win_hits, n_win = 0, 0, 0, 0
    for run in windows:
        ks = []
        for w, tr in run:
            G = gaussian_window_grams(np.full(w, np.sqrt(tr / w)), P, rng, draws)
            ks.append(kstar_batch(sigma_batch(G)))
        K = np.stack(ks, axis=1)  # (draws, windows)
        for row in K:
            mode = Counter(row.tolist()).most_common(1)[0][0]
            hits += bool(stat(int(mode)))
        win_hits += int(sum(stat(int(k)) for k in K.ravel()))
        n_runs += K.shape[0]
        n_win += K.size
    return {"runs": n_runs, "runs_hit": hits, "share_runs": hits / n_runs if n_runs else float("nan"),
            "wilson95_runs": list(wilson_interval(hits, n_runs)) if n_runs else None,
            "windows": n_win, "share_windows": win_hits / n_win if n_win else float("nan")}


def null_noise_quantiles(w: int, P: int, *, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Pure-noise windows of the same w and P (``numerics.nulls.noise_grams``, ν = 1: the statistics are
    scale-free): per draw σ_w/d_crit (textbook d_crit) and σ_1/(Marchenko–Pastur upper edge), with ν estimated as
    ``numerics.spectrum`` does. Returns the two arrays (length ``draws``)."""
    s = sigma_batch(noise_grams(w, P, np.random.default_rng(seed), draws))
    lam = s**2
    nu = np.sqrt(lam[:, w // 2:].mean(axis=1) / P)
    d_crit = nu * (P * w) ** 0.25
    edge = nu * (np.sqrt(P) + np.sqrt(w))
    return {"bbp": s[:, -1] / d_crit, "top_over_edge": s[:, 0] / edge}
