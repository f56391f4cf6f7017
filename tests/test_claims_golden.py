"""The claims table is unchanged by the verify/ refactor of issue 12 (harness, run store, claims kernel, studies).

``tests/data/claims-before-issue-12.json`` is ``spectral-edge claims --out DIR``'s ``claims.json`` on the stored
runs, taken from main before the refactor began (commit 5a20507). Every row (claim, source, claimed, measured text,
verdict, reason, details and figure name) must come out the same from the refactored code: a behaviour-preserving
change moves code, never a number. When a later issue changes a row on purpose, it replaces this file and says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from verify.claims import all_claims, to_json

BEFORE = Path(__file__).resolve().parent / "data" / "claims-before-issue-12.json"


def _same(a: object, b: object, where: str) -> list[str]:
    """Differences between two JSON values (NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: missing after" for k in a.keys() - b.keys()]
        out += [f"{where}.{k}: new after" for k in b.keys() - a.keys()]
        for k in a.keys() & b.keys():
            out += _same(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} before, {len(b)} after"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{where}: {a!r} before, {b!r} after"]


@pytest.mark.slow
def test_claims_json_unchanged_by_the_refactor() -> None:
    before = json.loads(BEFORE.read_text())
    rows = all_claims(strict=True)
    after = json.loads(to_json(rows))
    # figure names are set by write_claims only when figures are drawn; compare them from the row order instead
    for i, (r_before, r_after) in enumerate(zip(before, after, strict=False)):
        assert (r_before.pop("figure", None) is not None) == (rows[i].plot is not None), \
            f"row {i + 1} ({r_after['claim']}) gained or lost its figure"
        r_after.pop("figure", None)
    diffs = _same(before, after, "rows")
    assert not diffs, "claims changed by the refactor:\n" + "\n".join(diffs[:40])


def test_claims_golden_can_fail() -> None:
    """The comparison sees a changed number (a test that cannot fail checks nothing)."""
    before = json.loads(BEFORE.read_text())
    changed = json.loads(json.dumps(before))
    changed[0]["measured"] += " (changed)"
    assert _same(before, changed, "rows")
    assert not _same(before, json.loads(json.dumps(before)), "rows")
