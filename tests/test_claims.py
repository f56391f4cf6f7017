"""The claims table (verify.claims): a synthetic set with known verdicts, and the stored runs when present."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.test_onset import write_run
from verify.claims import VERDICTS, ClaimRow, claims_table, load_claim_runs, to_markdown, write_claims

STORED = Path(__file__).resolve().parents[1] / "verify" / "runs" / "modular"


def _row(rows: list[ClaimRow], prefix: str) -> ClaimRow:
    return next(r for r in rows if r.claim.startswith(prefix))


def test_synthetic_known_verdicts(tmp_path: Path) -> None:
    for seed in (42, 137, 2024):
        write_run(tmp_path / f"grok-s{seed}.jsonl", seed=seed)  # k* = 1, g23 declines 50× before grokking
        write_run(tmp_path / f"ctrl-s{seed}.jsonl", seed=seed, wd=0.0, decline_at=None, grok_at=None)
    rows = claims_table(load_claim_runs([tmp_path]))
    assert all(r.verdict in VERDICTS and r.measured for r in rows)
    assert _row(rows, "k* ≤ 3").verdict == "PASS"
    assert _row(rows, "k* = 1").verdict == "PASS"
    assert _row(rows, "g₂₃ declines before").verdict == "PASS"
    assert _row(rows, "g₂₃ does not decline").verdict == "PASS"  # flat controls
    # R: grok runs average R over pre-grok windows (1.2 then 2.0) vs flat controls (1.2): grok is *higher* → FAIL
    assert _row(rows, "R lower").verdict == "FAIL"
    assert _row(rows, "k* optimizer").verdict == "INCONCLUSIVE"
    md, js = write_claims(rows, tmp_path / "out")
    assert "| claim |" in md.read_text() and len(json.loads(js.read_text())) == len(rows)


def test_controls_that_decline_fail_the_control_claim(tmp_path: Path) -> None:
    for seed in (42, 137):
        write_run(tmp_path / f"grok-s{seed}.jsonl", seed=seed)
        write_run(tmp_path / f"ctrl-s{seed}.jsonl", seed=seed, wd=0.0, grok_at=None)  # g23 declines anyway
    rows = claims_table(load_claim_runs([tmp_path]))
    row = _row(rows, "g₂₃ does not decline")
    assert row.verdict == "FAIL" and row.measured.startswith("2/2")


def test_no_grokking_runs_is_inconclusive(tmp_path: Path) -> None:
    write_run(tmp_path / "ctrl-s42.jsonl", wd=0.0, grok_at=None)
    rows = claims_table(load_claim_runs([tmp_path]))
    assert [r.verdict for r in rows] == ["INCONCLUSIVE"]


def test_bad_verdict_rejected() -> None:
    with pytest.raises(ValueError, match="verdict"):
        ClaimRow("c", "s", "v", "x", "y", "MAYBE", "r")


def test_stored_runs_claims() -> None:
    files = sorted(STORED.glob("*.jsonl*")) if STORED.is_dir() else []
    if not files:
        pytest.skip(f"no stored runs under {STORED}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a sweep may be appending to a plain .jsonl right now
        rows = claims_table(load_claim_runs([STORED]))
    assert len(rows) >= 10
    for r in rows:
        assert r.verdict in VERDICTS and r.measured and r.reason
    assert "| claim |" in to_markdown(rows)
