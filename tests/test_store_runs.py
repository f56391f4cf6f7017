"""``verify.studies.backbone.store_runs``: the ``only`` filter that lets two processes share the cores, resume of a
stopped run from its checkpoint, and a manifest that keeps the rows another process wrote meanwhile. Training itself
is replaced by a stub that writes a finished trajectory, so the bookkeeping is what is tested."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from numerics.trajectory import TrajectoryWriter
from verify.studies import backbone


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake_train(cfg: Any, path: Path, **kw: Any) -> SimpleNamespace:
        seen.append({"name": Path(path).name, **kw})
        with TrajectoryWriter(Path(path), provenance={"config": {}}, meta={}) as w:
            w.write("end", 3)
        return SimpleNamespace(final_step=3, grok_step=None)

    monkeypatch.setattr(backbone, "train_with_monitor", fake_train)
    return seen


def test_only_trains_the_named_runs_and_manifests_merge(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    backbone.store_runs("gpt2", tmp_path, size="tiny", only=["adamw", "sgd-wd0-s"])
    assert sorted(c["name"] for c in calls) == ["gpt2-tiny-adamw-wd0.1-s42.jsonl", "gpt2-tiny-sgd-wd0-s42.jsonl"]
    assert all(c["overwrite"] and not c["resume"] for c in calls)
    rows = backbone.store_runs("gpt2", tmp_path, size="tiny", only=["muon"])  # a second process, later
    files = sorted(r["file"] for r in rows)
    assert files == sorted(["gpt2-tiny-adamw-wd0.1-s42.jsonl.gz", "gpt2-tiny-sgd-wd0-s42.jsonl.gz",
                            "gpt2-tiny-muon-wd0.1-s42.jsonl.gz"])
    assert json.loads((tmp_path / "runs.json").read_text())["runs"] == rows
    calls.clear()
    backbone.store_runs("gpt2", tmp_path, size="tiny", only=["adamw"])  # finished: skipped
    assert calls == []


def test_a_stopped_run_with_a_checkpoint_resumes(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    stem = "gpt2-tiny-muon-wd0.1-s42"
    (tmp_path / f"{stem}.jsonl").write_text("")
    (tmp_path / f"{stem}.ckpt.pt").write_bytes(b"")
    rows = backbone.store_runs("gpt2", tmp_path, size="tiny", only=["muon"])
    assert calls[0]["resume"] and not calls[0]["overwrite"] and rows[0].get("resumed") is True
