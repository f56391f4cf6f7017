"""Checkpoint and resume: a run killed at any step resumes and ends bitwise identical to an uninterrupted run
(model, history, measurements — every study's, LCH and the backbone included —, trajectory records); bad checkpoints
are refused before any training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from numerics.trajectory import read_trajectory
from verify.cli import app
from verify.harness.checkpoint import CheckpointError
from verify.harness.config import RunConfig, preset, save_config
from verify.harness.loop import RunResult, train
from verify.harness.runner import ConfigMismatch, RunFinished, stored_config_diff, train_with_monitor
from verify.store import checkpoint_path

pytestmark = pytest.mark.usefixtures("one_thread")

# Records that exist only because a run was interrupted and resumed.
BOOKKEEPING = {"interrupted", "end", "resume", "resumed"}


class Killed(Exception):
    """Stands in for SIGKILL: raised from the step callback."""


def killer(at: int):
    def hook(step: int) -> None:
        if step == at:
            raise Killed(f"killed at step {step}")

    return hook


def config(**overrides: Any) -> RunConfig:
    """40 steps with everything on: monitor (W = 3, Δs = 5), defect and probes every 10, checkpoints every 7."""
    return preset("tiny", **{
        "p": 23, "d_model": 32, "max_steps": 40, "eval_every": 10, "early_stop": None, "checkpoint_every": 7,
        "monitor": {"window": 3, "every": 5}, "defect": {"every": 10, "pairs": 1, "batch_size": 32},
        "probes": {"every": 10, "k": 2, "batch_size": 32}, **overrides})


def records(path: Path) -> list[dict[str, Any]]:
    t = read_trajectory(path)
    return sorted((r for r in t.records if r["type"] not in BOOKKEEPING),
                  key=lambda r: (r["step"], r["type"], r.get("group", "")))


def same_model(a: RunResult, b: RunResult) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


VARIANTS: dict[str, dict[str, Any]] = {
    "adamw": {},
    "muon": {"optimizer": "muon"},  # Muon + AdamW: both parts' state
    "cosine": {"warmup_steps": 5, "lr_decay": "cosine"},  # the lr schedule is a function of the step
    # every study measurement on: the backbone's θ_0 and Gram rows, LCH's gradient window and its own stream
    "studies": {"backbone": {"every": 5, "groups": ["trunk", "attn"]},
                "lch": {"every": 10, "grad_every": 5, "window": 3, "k": 2, "n_probe": 32, "n_random": 2,
                        "grad_batch": 32}},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple[RunResult, Path]]:
    """Uninterrupted runs, one per variant."""
    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: runs before the function-scoped one_thread fixture
    try:
        for name, over in VARIANTS.items():
            path = tmp_path_factory.mktemp(f"ref-{name}") / "run.jsonl"
            out[name] = (train_with_monitor(config(**over), path, progress=False), path)
            assert read_trajectory(path).spectra("attn")  # the monitor's hook fired
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize(("variant", "kills"), [
    ("adamw", [17]),  # between checkpoints (14, 21), after the eval/defect/probes at 10
    ("adamw", [21, 35]),  # at a checkpoint step (killed before it is written), then again after resuming
    ("adamw", [3]),  # before the first checkpoint: nothing to resume from
    ("muon", [26]),
    ("cosine", [12]),
    ("studies", [17]),  # LCH's window holds pushes from steps 5, 10, 15 when killed
    ("studies", [23, 38]),
])
def test_killed_and_resumed_run_is_bitwise_identical(tmp_path, reference, variant: str, kills: list[int]) -> None:
    ref, ref_path = reference[variant]
    cfg = config(**VARIANTS[variant])
    path = tmp_path / "run.jsonl"
    resume = False
    for k in kills:
        with pytest.raises(Killed):
            train_with_monitor(cfg, path, progress=False, resume=resume, step_callback=killer(k))
        assert {p.name for p in tmp_path.iterdir()} <= {"run.jsonl", "run.ckpt.pt"}  # no temp files left
        if k < cfg.checkpoint_every:
            assert not checkpoint_path(path).exists()
            with pytest.raises(CheckpointError, match="no checkpoint"):
                train_with_monitor(cfg, path, progress=False, resume=True)
            return
        resume = True
    result = train_with_monitor(cfg, path, progress=False, resume=True)
    assert result.resumed_from == 7 * ((kills[-1] - 1) // 7)
    assert same_model(result, ref)
    assert result.history == ref.history and result.grok_step == ref.grok_step and result.final_step == 40
    assert records(path) == records(ref_path)  # spectra, evals, defect and probe records: all identical
    t = read_trajectory(path)
    assert [r["step"] for r in t.of_type("resume")] == [7 * ((k - 1) // 7) for k in kills]
    assert max(r["step"] for r in t.of_type("end")) == 40
    assert not checkpoint_path(path).exists()  # removed once the run is complete


def test_bad_checkpoints_are_refused_before_training(tmp_path) -> None:
    cfg = config()
    path = tmp_path / "run.jsonl"
    with pytest.raises(Killed):
        train_with_monitor(cfg, path, progress=False, step_callback=killer(10))
    ckpt = checkpoint_path(path)
    good = ckpt.read_bytes()
    n_records = len(read_trajectory(path).records)
    steps: list[int] = []

    def resume(c: RunConfig = cfg) -> None:
        train_with_monitor(c, path, progress=False, resume=True, step_callback=steps.append)

    with pytest.raises(ConfigMismatch, match=r"different config: lr: 0.003 \(stored\) vs 0.01 \(now\).*--overwrite"):
        resume(cfg.with_overrides(lr=1e-2))  # the trajectory's config_sha is checked before the checkpoint's
    ckpt.write_bytes(good[: len(good) // 2])  # truncated mid-write by a crash (what atomic writes prevent)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        resume()
    ckpt.write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        resume()
    torch.save({"model": {}}, ckpt)  # a foreign torch file
    with pytest.raises(CheckpointError, match="not a spectral-edge checkpoint"):
        resume()
    ckpt.unlink()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resume()
    assert steps == []  # not one training step was taken
    assert len(read_trajectory(path).records) == n_records  # and the trajectory was not touched
    with pytest.raises(FileExistsError, match="resume"):  # without --resume an existing run is not restarted
        train_with_monitor(cfg, path, progress=False)


def test_checkpoint_needs_a_place_and_resume_needs_a_run(tmp_path) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        train(config(), progress=False)  # checkpoint_every without out_dir or checkpoint=
    with pytest.raises(ValueError, match="does not exist"):
        train_with_monitor(config(), tmp_path / "none.jsonl", progress=False, resume=True)
    r = train(config(probes={"every": 0}), tmp_path / "out", progress=False)  # no monitor: no probes
    assert r.final_step == 40 and not (tmp_path / "out" / "checkpoint.pt").exists()


def test_cli_resume(tmp_path) -> None:
    """`spectral-edge train modular --config F --resume` continues a killed run to the same file as a clean run."""
    cfg_path = save_config(config(defect={"every": 0}, probes={"every": 0}), tmp_path / "cfg.json")
    cfg = RunConfig.model_validate_json(cfg_path.read_text())
    runner = CliRunner()
    args = ["train", "modular", "--config", str(cfg_path), "--no-progress", "--seeds", "5"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "clean")]).exit_code == 0
    name = "modular-add-p23-wd1-s5.jsonl"
    killed = tmp_path / "killed" / name
    with pytest.raises(Killed):
        train_with_monitor(cfg.with_seed(5), killed, progress=False, step_callback=killer(30))
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "killed")])
    assert res.exit_code != 0 and "--resume" in str(res.exception)
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "killed"), "--resume"])
    assert res.exit_code == 0, res.output
    assert records(killed) == records(tmp_path / "clean" / name)
    before = killed.read_bytes()
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "killed"), "--resume"])  # repeatable: skips finished
    assert res.exit_code == 0 and "already finished" in res.output and killed.read_bytes() == before
    with pytest.raises(RunFinished, match="finished run"):
        train_with_monitor(cfg.with_seed(5), killed, progress=False, resume=True)


def test_a_study_added_after_the_run_does_not_refuse_it(tmp_path) -> None:
    """A run recorded before a config section existed (simulated by removing the 'norms' section from its stored
    config and checkpoint) still resumes, and is still reused by a sweep: the section takes its default (off); a
    changed field is still refused."""
    cfg = config()
    path = tmp_path / "run.jsonl"
    with pytest.raises(Killed):
        train_with_monitor(cfg, path, progress=False, step_callback=killer(10))
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert cfg.model_dump(mode="json")["norms"] == header["provenance"]["config"]["norms"]
    del header["provenance"]["config"]["norms"]  # as written before the norms study existed
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    ckpt = checkpoint_path(path)
    state = torch.load(ckpt, weights_only=True)
    saved = json.loads(state["config"])
    del saved["norms"]
    state["config"] = json.dumps(saved)
    torch.save(state, ckpt)

    assert stored_config_diff(path, cfg) == []
    assert stored_config_diff(path, cfg.with_overrides(lr=1e-2)) == ["lr: 0.003 (stored) vs 0.01 (now)"]
    train_with_monitor(cfg, path, progress=False, resume=True)  # neither the header nor the checkpoint refuses it
    assert read_trajectory(path).records[-1]["type"] == "end"
