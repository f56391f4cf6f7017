"""The stored mod-97 sweep reproduces bitwise: ``verify/runs/modular-norms`` (re-run 2026-12-02 with the weight-norm
measurement, ``streams=plain``) holds, for every one of the 36 runs, exactly the eval and spectrum records of
``verify/runs/modular`` (written 2026-11-24 by an older harness), value for value. Only what the newer monitor adds
to a spectrum record (the window Gram, ``gram_extended``, the live α variants) and the ``norm`` records differ."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

RUNS = Path(__file__).resolve().parent.parent / "verify" / "runs"
LIVE_ONLY = {"gram", "gram_extended", "alpha"}
PAIRS = sorted(p.name for p in (RUNS / "modular-norms").glob("*.jsonl.gz"))


def _records(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh][1:]  # the header records provenance (commit, time): not compared


def test_every_run_is_in_both_sweeps() -> None:
    assert len(PAIRS) == 36
    assert PAIRS == sorted(p.name for p in (RUNS / "modular").glob("*.jsonl.gz"))


@pytest.mark.parametrize("name", PAIRS)
def test_rerun_records_equal_the_stored_ones(name: str) -> None:
    old = _records(RUNS / "modular" / name)
    new = [r for r in _records(RUNS / "modular-norms" / name) if r.get("type") != "norm"]
    assert len(old) == len(new), f"{name}: {len(old)} records stored, {len(new)} re-run"
    for a, b in zip(old, new, strict=True):
        kept_a = {k: v for k, v in a.items() if k not in LIVE_ONLY}
        kept_b = {k: v for k, v in b.items() if k not in LIVE_ONLY}
        assert kept_a == kept_b, f"{name}: {a.get('type')} record at step {a.get('step')} differs"
    assert any(r.get("type") == "norm" for r in _records(RUNS / "modular-norms" / name))
