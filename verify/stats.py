"""Statistics of the claims and studies: intervals, bootstrap, rank correlations, and the one number formatter.

Runs are the independent units (checkpoints within a run are correlated), so every interval over pooled points is
a run-level one: ``mean_ci`` over per-run values, ``cluster_bootstrap`` resampling runs. Every function is
deterministic (fixed seeds): a claims row is reproducible bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "average_ranks",
    "balanced_sign_accuracy",
    "cluster_bootstrap",
    "finite",
    "fmt",
    "fmt_list",
    "mean_ci",
    "mean_sd",
    "median_iqr",
    "median_range",
    "pct",
    "pearson",
    "spearman",
    "wilson_interval",
]

T = TypeVar("T")


def fmt(x: Any, spec: str = ".3g", missing: str = "n/a") -> str:
    """The one number formatter: ``missing`` for None and non-finite floats, ``format(x, spec)`` for floats
    (numpy floats included), ``str(x)`` for everything else (integers such as steps print in full)."""
    if x is None:
        return missing
    if isinstance(x, (float, np.floating)):
        return format(float(x), spec) if np.isfinite(x) else missing
    return str(x)


def finite(x: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """The finite values of ``x`` as a float array (None and NaN/±inf dropped)."""
    return np.asarray([v for v in x if v is not None and np.isfinite(v)], dtype=float)


def mean_sd(x: Sequence[float | None]) -> str:
    """``mean ± sd (n=N)`` over the finite values (sd with ddof 1; 0 for one value); ``n/a`` for none."""
    a = finite(x)
    if not len(a):
        return "n/a"
    return f"{a.mean():.3g} ± {a.std(ddof=1) if len(a) > 1 else 0:.2g} (n={len(a)})"


def median_iqr(x: Sequence[float | None], spec: str = ".3g", label: str = "") -> str:
    """``median [{label}q25, q75] (n=N)`` over the finite values, numbers in ``spec``; ``n/a`` for none."""
    a = finite(x)
    if not len(a):
        return "n/a"
    q = np.percentile(a, [25, 50, 75])
    return f"{q[1]:{spec}} [{label}{q[0]:{spec}}, {q[2]:{spec}}] (n={len(a)})"


def median_range(x: Sequence[float]) -> str:
    """``median M, range lo–hi (n = N)`` (3 significant digits)."""
    a = np.asarray(x, float)
    return f"median {np.median(a):.3g}, range {a.min():.3g}–{a.max():.3g} (n = {len(a)})"


def fmt_list(xs: Sequence[Any], spec: str = ".3g", empty: str = "") -> str:
    """The values ``fmt``-ed and comma-joined; ``empty`` for none."""
    return ", ".join(fmt(x, spec) for x in xs) if len(xs) else empty


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal (``0.615`` → ``61.5%``)."""
    return f"{100 * x:.1f}%"


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k/n (n ≥ 1)."""
    if n < 1:
        raise ValueError("wilson_interval needs n ≥ 1")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def mean_ci(x: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t interval over the finite values (NaN interval below two values)."""
    from scipy import stats  # local: scipy.stats costs ~0.3 s to import and most callers never need it

    a = finite(x)
    if len(a) < 2:
        m = float(a.mean()) if len(a) else float("nan")
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-d array, ties given the mean of the ranks they span (``scipy.stats.rankdata``'s
    ``"average"``), in numpy alone: the statistics below call it tens of thousands of times per claims table."""
    a = np.asarray(a)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    new_value = np.concatenate(([True], s[1:] != s[:-1]))
    starts = np.flatnonzero(new_value)
    ends = np.append(starts[1:], len(a))
    ranks = np.empty(len(a))
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new_value) - 1]
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ: the Pearson correlation of the average ranks (``scipy.stats.spearmanr``, to round-off, at about a
    twentieth of its cost); NaN below three points, for a constant input, or when either input has a NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"spearman needs two arrays of one length, got {len(x)} and {len(y)}")
    if len(x) < 3 or np.isnan(x).any() or np.isnan(y).any() or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    return float(np.clip(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)), -1.0, 1.0))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN below three points or for a constant input."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def balanced_sign_accuracy(pred: np.ndarray, meas: np.ndarray) -> float:
    """Mean over the measured signs (+, −) of the fraction predicted with that sign: 0.5 for any constant-sign
    predictor, whatever the base rate (NaN when only one measured sign occurs)."""
    rec = [float(np.mean(np.sign(pred[m]) == s)) for s, m in ((1, meas > 0), (-1, meas < 0)) if m.any()]
    return float(np.mean(rec)) if len(rec) == 2 else float("nan")


def cluster_bootstrap(units: Sequence[T], stat: Callable[[Sequence[T]], float], *, reps: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of ``stat`` with ``units`` (runs) resampled with replacement. Fixed ``seed``."""
    rng = np.random.default_rng(seed)
    vals = [stat([units[i] for i in rng.integers(0, len(units), len(units))]) for _ in range(reps)]
    a = np.asarray([v for v in vals if np.isfinite(v)])
    return (float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))) if len(a) else (float("nan"),) * 2
