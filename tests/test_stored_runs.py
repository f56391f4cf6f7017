"""Every stored trajectory under verify/runs/ is readable, complete, carries provenance, and its manifest's
numbers are re-derived from the file itself (not trusted from the run that wrote them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from numerics.trajectory import read_trajectory
from verify.grokking import grok_step
from verify.store import load_run
from verify.summary import summarise

RUNS = Path(__file__).resolve().parents[1] / "verify" / "runs"
FILES = sorted(RUNS.glob("**/*.jsonl.gz"))
MANIFESTS = sorted(RUNS.glob("**/sweep.json"))


def test_stored_runs_exist():
    assert FILES, f"no stored trajectories under {RUNS}; regenerate with `spectral-edge sweep modular`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_stored_run_is_complete_with_provenance(path):
    t = read_trajectory(path)
    assert not t.truncated
    prov = t.provenance
    for key in ("config", "seeds", "versions", "git", "device"):
        assert prov.get(key), f"{path.name}: provenance lacks {key}"
    assert t.of_type("end"), f"{path.name}: run did not finish (no end record)"
    for group in t.meta["groups"]:
        s = summarise(t, group=group)
        assert s["n_windows"] > 0 and 1 <= s["kstar_mode"] < t.meta["window"]
    # the recorded grokking threshold reproduces the run's own detection from its evals
    steps, acc = t.series("eval", "test_acc")
    assert grok_step(steps, acc) == summarise(t)["grok_step"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_manifest_matches_files(manifest):
    rows = json.loads(manifest.read_text())["runs"]
    for row in rows:
        path = manifest.parent / row["file"]
        assert path.exists(), f"{manifest}: lists missing {row['file']}"
        # the harness's grok step: first eval with test acc ≥ the run's own recorded threshold
        assert load_run(path).recorded_grok_step() == row["grok_step"], row["file"]
