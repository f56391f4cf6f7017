"""Onset detectors on planted synthetic trajectories (verify.studies.onset, runs read through verify.store): known
answers, split enforced, bad input."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from numerics.errors import SpectralEdgeError, TrajectoryError
from numerics.trajectory import TrajectoryWriter
from verify.store import DefectRecord, RunData, load_rundata
from verify.studies.onset import (
    AdiabaticDetector,
    DefectDetector,
    G23Decline,
    GapOpening,
    OnsetCallback,
    SplitError,
    calibrate,
    evaluate,
    predict,
)


def write_run(path: Path, *, wd: float = 1.0, seed: int = 42, decline_at: int | None = 1500,
              grok_at: int | None = 2500, steps: int = 4000, every: int = 100, op: str = "add",
              task: str = "synthetic", defect_at: int | None = None, defect: bool = False) -> Path:
    """A synthetic run: g23 drops 50× at ``decline_at`` (None: flat), test acc jumps to 1 at ``grok_at``; with
    ``defect_at`` (or ``defect``) also ``defect`` records, D = 1 jumping to 100 at ``defect_at``.

    R rises from 1.2 to 2.0 and g from 0.5 to 2.0 at ``decline_at``; ‖ΔG‖ is 0.1·g² except for a 10× burst over
    the three windows before ``decline_at`` + 300, so A = ‖ΔG‖/(η·Δs·g²) is 1 (η·Δs = 0.1) and 10 in the burst.
    """
    cfg = {"op": op, "lr": 1e-3, "weight_decay": wd}
    rng = np.random.default_rng(seed)
    with TrajectoryWriter(path, provenance={"config": cfg, "seeds": {"init_seed": seed}},
                          meta={"every": every, "task": task}) as w:
        for s in range(every, steps + 1, every):
            late = decline_at is not None and s >= decline_at
            g23 = (0.2 if late else 10.0) * (1 + 0.05 * rng.standard_normal())
            g, R = (2.0, 2.0) if late else (0.5, 1.2)
            burst = decline_at is not None and decline_at + 100 <= s <= decline_at + 300
            dG = (10.0 if burst else 1.0) * 0.1 * g * g
            for group in ("attn", "all"):
                w.write("spectrum", s, group=group, sigma=[3.0, 1.5, 1.0, 0.5], kstar=1, R=R, g=g, g23=g23,
                        dG_norm=dG)
            acc = 1.0 if grok_at is not None and s >= grok_at else 0.02
            w.write("eval", s, train_acc=1.0, test_acc=acc)
            if defect_at is not None or defect:  # defect D: 1, then 100 from ``defect_at`` on
                w.write("defect", s, D=100.0 if defect_at is not None and s >= defect_at else 1.0)
        w.write("end", steps)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, RunData]:
    specs: dict[str, dict[str, Any]] = {
        "grok-s42": {"seed": 42}, "ctrl-s42": {"seed": 42, "wd": 0.0, "decline_at": None, "grok_at": None},
        "grok-s137": {"seed": 137, "decline_at": 1200, "grok_at": 2000},
        "ctrl-s137": {"seed": 137, "wd": 0.0, "decline_at": None, "grok_at": None},
        "ctrlfire-s137": {"seed": 137, "wd": 0.0, "grok_at": None},  # a control whose g23 declines anyway
    }
    return {k: RunData.from_trajectory(write_run(tmp_path / f"{k}.jsonl", **v)) for k, v in specs.items()}


def test_planted_g23_decline_fires_before_grokking(runs: dict[str, RunData]) -> None:
    out = predict(runs["grok-s42"], [G23Decline(frac=0.1, sustain=2)])
    assert out["observed_grok_step"] == 2500
    sig = out["signals"][0]
    assert sig["fired"] and sig["predicted_step"] == 1600 and sig["lead"] == 900  # confirmed on the 2nd window
    assert out["first_signal"] == "g23"
    assert not predict(runs["ctrl-s42"], [G23Decline()])["signals"][0]["fired"]


def test_gap_and_adiabatic_detectors(runs: dict[str, RunData]) -> None:
    assert GapOpening(factor=1.5, key="R", sustain=1).fire(runs["grok-s42"]) == 1500
    assert GapOpening(factor=1.5, key="R").fire(runs["ctrl-s42"]) is None
    # A = 1 outside the burst, 10 inside: threshold 5 fires on the second burst window.
    assert AdiabaticDetector(threshold=5.0, sustain=2).fire(runs["grok-s42"]) == 1700
    assert AdiabaticDetector(threshold=5.0).fire(runs["ctrl-s42"]) is None


def test_no_grokking_reports_did_not_grok(runs: dict[str, RunData]) -> None:
    out = predict(runs["ctrlfire-s137"])
    assert out["observed_grok_step"] == "did not grok" and out["control"]
    assert all(s["lead"] is None for s in out["signals"])
    assert "did not grok" in out["text"]
    defect = next(s for s in out["signals"] if s["signal"] == "defect")
    assert not defect["fired"] and defect["note"] == "no defect records"


def test_calibration_then_held_out_evaluation(runs: dict[str, RunData]) -> None:
    cal = [runs["grok-s42"], runs["ctrl-s42"]]
    held = [runs["grok-s137"], runs["ctrl-s137"], runs["ctrlfire-s137"]]
    det = calibrate("g23", cal)
    assert det.calibrated_on == {"grok-s42", "ctrl-s42"}
    rep = evaluate([det], held)["signals"]["g23"]
    # fires before grokking on the positive, and on the declining control (a false positive; it never grokked)
    assert (rep["tp"], rep["fp"], rep["tn"]) == (1, 1, 1)
    assert rep["recall"] == 1.0 and rep["precision"] == 0.5 and rep["fpr"] == 0.5
    assert rep["lead_median"] > 0


def test_evaluate_refuses_calibration_runs(runs: dict[str, RunData]) -> None:
    det = calibrate("gap", [runs["grok-s42"], runs["ctrl-s42"]])
    with pytest.raises(SplitError, match="grok-s42"):
        evaluate([det], [runs["grok-s137"], runs["grok-s42"]])


def test_online_callback_matches_offline(runs: dict[str, RunData]) -> None:
    run = runs["grok-s42"]
    events: list[dict[str, Any]] = []
    det = G23Decline(frac=0.1, sustain=2)
    cb = OnsetCallback(det, eta=1e-3, delta_s=100, group="attn", on_event=events.append)
    for rec in run.spectra:
        raw = {"type": "spectrum", **dataclasses.asdict(rec)}  # as the monitor hands its records to callbacks
        cb(raw)
        cb({**raw, "group": "all"})  # other groups ignored
    assert len(events) == 1 and events[0]["step"] == det.fire(run) == 1600


def test_online_defect_callback_matches_offline(tmp_path: Path) -> None:
    """Typed defect records (as the demo feeds them); a degenerate spectrum window (no spectrum) is skipped."""
    run = RunData.from_trajectory(write_run(tmp_path / "d.jsonl", defect_at=1500))
    det = DefectDetector()
    cb = OnsetCallback(det, group="attn")
    cb({"type": "spectrum", "step": 50, "group": "attn", "w": 2, "degenerate": "all-zero window"})
    for d in run.defect:
        cb(d)
    assert cb.event is not None
    assert cb.event["step"] == det.fire(run) == 1500


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryError, match="not found"):
        load_rundata([tmp_path / "missing.jsonl"])
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"hello": 1}\n')
    with pytest.raises(TrajectoryError, match="not a spectral-edge trajectory"):
        predict(foreign)
    bad_gz = tmp_path / "bad.jsonl.gz"
    bad_gz.write_bytes(gzip.compress(b"x")[:5])
    with pytest.raises(TrajectoryError):
        predict(bad_gz)
    # truncated mid-record: readable up to the last complete record, with a warning
    path = write_run(tmp_path / "trunc.jsonl", steps=3000)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.warns(UserWarning, match="partial"):
        out = predict(path)
    assert out["observed_grok_step"] == 2500
    empty_header = tmp_path / "nospec.jsonl"
    TrajectoryWriter(empty_header).close()
    with pytest.raises(TrajectoryError, match="no spectrum records"):
        predict(empty_header)


def test_load_runs_directory_and_unfinished(tmp_path: Path) -> None:
    write_run(tmp_path / "a-s42.jsonl")
    p = write_run(tmp_path / "b-s42.jsonl")
    p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")  # drop the end record: still running
    assert {r.id for r in load_rundata([tmp_path])} == {"a-s42", "b-s42"}
    assert [r.id for r in load_rundata([tmp_path], finished_only=True)] == ["a-s42"]


def test_report_per_signal_task_and_workload_in_json_and_text(tmp_path: Path) -> None:
    """Held-out report: per signal, per task (workload-op) and per workload, controls included, text and JSON."""
    specs = {"add-grok-s137": {"op": "add"}, "add-ctrl-s137": {"op": "add", "wd": 0.0, "grok_at": None},
             "mul-grok-s137": {"op": "mul", "decline_at": None},  # no decline: a g23 miss
             "dyck-grok-s137": {"task": "dyck", "op": "x"}, "dyck-ctrl-s137": {"task": "dyck", "op": "x", "wd": 0.0,
                                                                              "decline_at": None, "grok_at": None}}
    runs = [RunData.from_trajectory(write_run(tmp_path / f"{k}.jsonl", seed=137, **v)) for k, v in specs.items()]
    # one run measured the commutator defect (a spike at step 1000); the others did not
    spike = [DefectRecord(s, 100.0 if s >= 1000 else 1.0) for s in range(100, 4001, 100)]
    runs[0] = dataclasses.replace(runs[0], defect=spike)
    rep = evaluate([G23Decline(frac=0.1, sustain=2), DefectDetector(factor=10.0, floor=20.0)], runs)
    g23 = rep["signals"]["g23"]
    assert (g23["tp"], g23["fn"], g23["fp"], g23["tn"]) == (2, 1, 1, 1)
    assert set(g23["per_task"]) == {"synthetic-add", "synthetic-mul", "dyck-x"}
    assert set(g23["per_workload"]) == {"synthetic", "dyck"}
    assert g23["per_task"]["synthetic-add"]["fp"] == 1 and g23["per_task"]["synthetic-mul"]["fn"] == 1
    assert g23["per_workload"]["dyck"]["controls"] == 1 and g23["per_workload"]["synthetic"]["positives"] == 2
    assert sorted(g23["leads"]) == [900, 900] and g23["lead_iqr"] == [900.0, 900.0]
    defect = rep["signals"]["defect"]
    assert defect["positives"] + defect["controls"] == 1 and len(defect["unscored"]) == 4  # measured runs only
    assert defect["tp"] == 1 and defect["lead_median"] == 2500 - 1000
    text = rep["text"]
    for needle in ("task synthetic-add", "task dyck-x", "workload dyck", "workload synthetic", "range 900–900"):
        assert needle in text
    json.dumps(rep)  # JSON-able


def test_predict_marks_false_positives_and_labels(runs: dict[str, RunData]) -> None:
    out = predict(runs["ctrlfire-s137"], [G23Decline()])
    assert out["label"] == "control" and out["signals"][0]["outcome"] == "false positive"
    assert "FALSE POSITIVE (fired on a control)" in out["text"] and "control (weight decay 0)" in out["text"]
    pos = predict(runs["grok-s42"], [G23Decline()])
    assert pos["label"] == "positive" and pos["signals"][0]["outcome"] == "early"
    assert "FALSE POSITIVE" not in pos["text"] and "positive (grokked with weight decay > 0)" in pos["text"]
    forced = dataclasses.replace(runs["grok-s42"], label="control")  # an explicit label overrides the data
    out = predict(forced, [G23Decline()])
    assert out["labelled_by"] == "override" and out["signals"][0]["outcome"] == "false positive"


def test_predict_unknown_group_is_an_error_listing_the_groups(tmp_path: Path) -> None:
    path = write_run(tmp_path / "a-s42.jsonl")
    with pytest.raises(SpectralEdgeError, match=r"no parameter group 'nope'; it records all, attn"):
        predict(path, group="nope")
    assert predict(path, group="all")["group"] == "all"
    assert predict(path)["group"] == "attn"  # no group asked: attn, as before
