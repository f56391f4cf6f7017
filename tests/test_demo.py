"""``make demo`` end to end on a few steps, and the phase portrait's refusal of runs without defect records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from numerics.errors import TrajectoryError
from numerics.trajectory import read_trajectory
from verify.demo import run_demo
from verify.figures import phase_portrait
from verify.studies.onset import AdiabaticDetector, DefectDetector, G23Decline, GapOpening, predict

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"
RUNS = ["modular-add-p59-wd0-s0.jsonl", "modular-add-p59-wd1-s0.jsonl"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short demo (120 steps, snapshots and defect every 20) shared by the tests of this module.

    The defect detector is made eager (fires on the 3rd defect record, step 40) so that the live path is exercised:
    in 120 steps no run groks, so both runs are controls and the alarm must be reported as a false positive."""
    out = tmp_path_factory.mktemp("demo")  # run_demo trains on one torch thread itself
    run_demo(out, preset="tiny", progress=False,
             overrides={"max_steps": 120, "eval_every": 40, "monitor": {"window": 3, "every": 20},
                        "defect": {"every": 20, "pairs": 2}},
             detectors=[G23Decline(), GapOpening(), AdiabaticDetector(), DefectDetector(factor=1e-3, floor=0.0)])
    return out


def test_demo_writes_report_figures_and_trajectories(demo_dir: Path) -> None:
    assert sorted(p.name for p in demo_dir.iterdir()) == ["demo.png", *RUNS[:1], RUNS[1], "phase.png", "report.md"]
    for name in ("demo.png", "phase.png"):
        png = (demo_dir / name).read_bytes()
        assert png[:8] == PNG and len(png) > 10_000
    text = (demo_dir / "report.md").read_text()
    assert "| weight decay 1 | all |" in text and "| control (weight decay 0) | attn |" in text
    assert "## Onset prediction (live)" in text and "## Claims these two runs can check" in text
    assert "| claim | source | version | claimed | measured | control | null | verdict | reason | criterion |" in text
    assert "INCONCLUSIVE" in text
    assert "![accuracy and spectrum against steps](demo.png)" in text
    assert "![phase portrait: spectral gap vs commutator defect](phase.png)" in text
    for signal in ("g23", "gap", "adiabatic", "defect"):
        assert f"| {signal} |" in text
    assert "**no**" not in text  # every live record agrees with the offline prediction
    row = "| control (weight decay 0) | control (no weight decay) | did not grok | defect | true | 40 | — | yes |"
    assert row in text
    assert text.count("alarm on a control (false positive)") == 2


def test_demo_trajectories_hold_defect_records_and_live_onset_events(demo_dir: Path) -> None:
    for name in RUNS:
        t = read_trajectory(demo_dir / name)
        defect = t.of_type("defect")
        assert [r["step"] for r in defect] == [0, 20, 40, 60, 80, 100, 120]
        assert all(r["D"] > 0 for r in defect)
        live = {r["signal"]: r["step"] for r in t.of_type("onset")}
        dets = [G23Decline(), GapOpening(), AdiabaticDetector(), DefectDetector(factor=1e-3, floor=0.0)]
        offline = {s["signal"]: s["predicted_step"] for s in predict(t, dets)["signals"] if s["fired"]}
        assert live["defect"] == 40
        assert live == offline  # the live callback fires exactly where the offline detector does
        for r in t.of_type("onset"):
            assert r["group"] == r["signal"] and isinstance(r["params"], dict)


def test_phase_portrait_names_the_file_without_defect_records(demo_dir: Path, tmp_path: Path) -> None:
    src = demo_dir / RUNS[1]
    bare = tmp_path / "no-defect.jsonl"
    lines = [ln for ln in src.read_text().splitlines() if json.loads(ln).get("type") != "defect"]
    bare.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrajectoryError, match=r"no-defect\.jsonl.*defect"):
        phase_portrait({"bare": read_trajectory(bare)}, tmp_path / "phase.png")
    assert not (tmp_path / "phase.png").exists()
    ok = phase_portrait({"with defect": read_trajectory(src)}, tmp_path / "ok.png")
    assert ok.read_bytes()[:8] == PNG
