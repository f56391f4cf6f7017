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


# --- the provider registry (extension point) --------------------------------------------------------------------

def _two_rows(runs_root: Path) -> list[ClaimRow]:
    def draw(fig) -> None:
        fig.add_subplot().plot([0, 1], [1, 0])

    return [ClaimRow("planted A", "[S]", "—", "x", f"root {runs_root.name}", "PASS", "r", plot=draw),
            ClaimRow("planted B", "[S]", "—", "x", "y", "FAIL", "r")]


def test_provider_registry_plugs_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from verify import claims

    monkeypatch.setattr(claims, "CLAIM_PROVIDERS", dict(claims.CLAIM_PROVIDERS))
    claims.register_claims("planted", _two_rows)
    claims.register_claims("no_args", lambda: [ClaimRow("planted C", "[S]", "—", "x", "y", "INCONCLUSIVE", "r")])
    rows = claims.all_claims(tmp_path, only=["planted", "no_args"])
    assert [r.claim for r in rows] == ["planted A", "planted B", "planted C"]
    assert rows[0].measured == f"root {tmp_path.name}"  # the provider was given the run root
    _md, js = write_claims(rows, tmp_path / "out")
    data = json.loads(js.read_text())
    assert data[0]["figure"] and "plot" not in data[0] and data[1]["figure"] is None
    png = (tmp_path / "out" / data[0]["figure"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_broken_provider_is_a_named_row_or_raises_when_strict(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from verify import claims

    monkeypatch.setattr(claims, "CLAIM_PROVIDERS", dict(claims.CLAIM_PROVIDERS))
    claims.register_claims("missing", "verify.no_such_module:claim_rows")
    rows = claims.all_claims(tmp_path, only=["missing"])
    assert len(rows) == 1 and rows[0].verdict == "INCONCLUSIVE" and "no_such_module" in rows[0].reason
    with pytest.raises(ModuleNotFoundError):
        claims.all_claims(tmp_path, only=["missing"], strict=True)
    with pytest.raises(ValueError, match="unknown claims provider"):
        claims.all_claims(tmp_path, only=["nope"])
    with pytest.raises(ValueError, match="module:function"):
        claims.register_claims("bad", "verify.li2")
    claims.register_claims("wrong_type", lambda root: ["not a row"])
    with pytest.raises(TypeError, match="not ClaimRow"):
        claims.all_claims(tmp_path, only=["wrong_type"], strict=True)


def test_all_claims_on_empty_root_is_inconclusive(tmp_path: Path) -> None:
    from verify.claims import all_claims

    rows = all_claims(tmp_path, strict=True)
    assert rows and all(r.verdict == "INCONCLUSIVE" for r in rows)
