"""The claims table changes only on purpose.

``tests/data/claims-golden.json`` is ``spectral-edge claims --out DIR``'s ``claims.json`` on the stored runs. Every
row (claim, source, claimed, measured text, control, null, verdict, reason, criterion, details and figure name) must
come out the same until a change means to move it: a refactor moves code, never a number. History: taken before the
issue-12 refactor (commit 5a20507) and held through it unchanged; replaced for issue 13 (controls and nulls in every
row, dated criteria, the corrected theory as default, the predictor-vs-run rows); edited for issue 14 in the sources
only ("spec §X" → "theory reference §X", the book's own page); seven forecast rows appended for issue 15 (the 40 rows
before them unchanged); for issues 16 and 17 the four GPT-2 rows moved on purpose (they score the 1,000-step
``verify/runs/gpt2-cpu4`` runs now) and three multi-task rows were appended (the other 43 rows unchanged but for
round-off in their details: floats compare to rel 1e-9, since another machine's LAPACK moved the 16th digit); for
issue 17 again the three multi-task rows moved on purpose (the dual grid's weight-decay-0 and 0.3 runs and the tri runs
were added) and eight geometry rows were appended (the other 47 rows unchanged); for issue 18 two edge rows and
four causal intervention rows were appended (the other 58 rows unchanged); for issues 17 and 18 again the three
multi-task and eight geometry rows moved on purpose (the dual and tri weight-decay grids were completed: 0.5, 0.2, 0.1
and tri 0.3 seed 2024) and the causal noise-arm row was inserted after ``causal.defect_amplify`` (the other 53 rows
unchanged). A change that moves a row on purpose
replaces the file and says so here and in its commit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from verify.claims import ClaimRow, to_json

BEFORE = Path(__file__).resolve().parent / "data" / "claims-golden.json"


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
    if isinstance(a, float) and isinstance(b, float):
        # NaN equals NaN; otherwise equal to the last bits (rel 1e-9): another CPU's BLAS/LAPACK moves the 16th digit
        # of a bootstrap bound or an eigenvalue (seen between two machines), a change in the code moves more
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [f"{where}: {a!r} before, {b!r} after"]
    return [] if a == b else [f"{where}: {a!r} before, {b!r} after"]


@pytest.mark.slow
def test_claims_json_unchanged(stored_claims: list[ClaimRow]) -> None:
    before = json.loads(BEFORE.read_text())
    rows = stored_claims  # all_claims(strict=True), computed once per session (conftest)
    after = json.loads(to_json(rows))
    # figure names are set by write_claims only when figures are drawn; compare them from the row order instead (a
    # row read back from the book's claims cache has its drawn figure and no plot)
    for i, (r_before, r_after) in enumerate(zip(before, after, strict=False)):
        has_figure = rows[i].plot is not None or rows[i].figure is not None
        assert (r_before.pop("figure", None) is not None) == has_figure, \
            f"row {i + 1} ({r_after['claim']}) gained or lost its figure"
        r_after.pop("figure", None)
    diffs = _same(before, after, "rows")
    assert not diffs, "claims changed (replace the golden file only on purpose):\n" + "\n".join(diffs[:40])


def test_claims_golden_can_fail() -> None:
    """The comparison sees a changed number (a test that cannot fail checks nothing)."""
    before = json.loads(BEFORE.read_text())
    changed = json.loads(json.dumps(before))
    changed[0]["measured"] += " (changed)"
    assert _same(before, changed, "rows")
    assert _same(1.0, 1.0 + 1e-7, "x") and not _same(1.0, 1.0 + 1e-13, "x")  # a moved number, not round-off
    assert not _same(before, json.loads(json.dumps(before)), "rows")
