"""The grokking step, in every definition the author's code uses (registry quantity ``grok_step``).

Each function takes the eval history (steps, test accuracies; same length, steps increasing) and returns the
grokking step or ``None`` if the run did not grok. The thresholds drift across the author's scripts
([P] the author's scripts: 0.5 / 0.9 / 0.95 / 0.99 first crossings; 0.98 × 3 patience), so all are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from theory.registry import get, register

__all__ = ["first_crossing", "grok_step"]


def first_crossing(steps: Sequence[int], acc: Sequence[float], threshold: float, patience: int = 1) -> int | None:
    """First step at which ``acc ≥ threshold`` has held for ``patience`` consecutive evals (the last of them)."""
    s = np.asarray(steps)
    a = np.asarray(acc, dtype=float)
    if s.shape != a.shape:
        raise ValueError(f"steps and accuracies differ in length: {s.shape} vs {a.shape}")
    run = 0
    for step, ok in zip(s, a >= threshold, strict=True):
        run = run + 1 if ok else 0
        if run >= patience:
            return int(step)
    return None


@register("grok_step", "first>=0.95", source="[P] dyck_scan thesis_table7_replication.py (Gram analysis)",
          version="replication", default=True)
def _first_095(steps: Sequence[int], acc: Sequence[float]) -> int | None:
    """First eval with test accuracy ≥ 0.95.

    Default because it is the threshold of the author's update-Gram (Table 7) replication, the analysis our
    spectral quantities reproduce.
    """
    return first_crossing(steps, acc, 0.95)


@register("grok_step", "first>=0.9", source="[P] grokking-integrability (grok_90, lead times)", version="2602.16746")
def _first_090(steps: Sequence[int], acc: Sequence[float]) -> int | None:
    """First eval with test accuracy ≥ 0.9 (the commutator-defect lead times)."""
    return first_crossing(steps, acc, 0.9)


@register("grok_step", "first>=0.99", source="[P] dyck_scan commutator_analysis.py (lead times)", version="2602.16967")
def _first_099(steps: Sequence[int], acc: Sequence[float]) -> int | None:
    """First eval with test accuracy ≥ 0.99 (Dyck/SCAN lead times)."""
    return first_crossing(steps, acc, 0.99)


@register("grok_step", "first>=0.5", source="[P] grokking-integrability (grok_50)", version="2602.16746")
def _first_050(steps: Sequence[int], acc: Sequence[float]) -> int | None:
    """First eval with test accuracy ≥ 0.5."""
    return first_crossing(steps, acc, 0.5)


@register("grok_step", "patience(0.98,3)", source="[P] grokking-integrability grok_sweep.py early stop",
          version="2602.16746")
def _patience_098(steps: Sequence[int], acc: Sequence[float]) -> int | None:
    """Third consecutive eval with test accuracy ≥ 0.98 (the author's stopping rule, stored as grok_step)."""
    return first_crossing(steps, acc, 0.98, patience=3)


def grok_step(steps: Sequence[int], acc: Sequence[float], definition: str | None = None) -> int | None:
    """The grokking step under the named definition (default ``first>=0.95``)."""
    return get("grok_step", definition)(steps, acc)
