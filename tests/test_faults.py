"""Nothing lost, nothing mixed (issue 14, item 4): one writer per run, config hashes checked before a run is reused,
``--overwrite`` that replaces the old run only once the new one has a checkpoint, sweeps whose workers die with them
and never archive a partial run, numbered ``.interrupted`` files, fsync before each checkpoint, interrupted runs that
no reader counts as finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from numerics.errors import SpectralEdgeError
from numerics.trajectory import TrajectoryWriter, read_trajectory
from verify.harness import loop as loop_module
from verify.harness.config import RunConfig, config_sha, preset
from verify.harness.runner import (
    ConfigMismatch,
    RunFinished,
    RunLocked,
    lock_path,
    run_lock,
    run_task,
    train_with_monitor,
)
from verify.harness.sweep import _archive, run_sweep
from verify.store import RunStatus, checkpoint_path, is_finished, load_runs, run_status

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent


class Killed(Exception):
    """Stands in for a kill: raised from the step callback."""


def killer(at: int, exc: type[BaseException] = Killed):
    def hook(step: int) -> None:
        if step == at:
            raise exc(f"killed at step {step}")

    return hook


def small(**overrides: Any) -> RunConfig:
    return preset("tiny", **{"p": 23, "d_model": 32, "max_steps": 20, "eval_every": 10, "early_stop": None,
                             "monitor": {"window": 3, "every": 5}, **overrides})


# --- one writer per run ------------------------------------------------------------------------------------------


def test_a_second_writer_gets_an_error_naming_the_file_and_the_holder(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    with run_lock(path):
        with pytest.raises(RunLocked, match=rf"{path}.*pid {os.getpid()}"):
            train_with_monitor(small(), path, progress=False)
    assert not path.exists() and not lock_path(path).exists()  # nothing written; the lock is released on exit
    # a lock held by another *process*
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from verify.harness.runner import run_lock
        with run_lock({str(path)!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=rf"pid {holder.pid}\b"):
            train_with_monitor(small(), path, progress=False)
    finally:
        holder.kill()
        holder.wait()
    # the dead holder's lock file is stale: taken over
    assert lock_path(path).read_text().strip() == str(holder.pid)
    train_with_monitor(small(), path, progress=False)
    assert is_finished(path) and not lock_path(path).exists()


# --- configs: hash in the header, checked before reuse -----------------------------------------------------------


def test_resume_of_a_finished_run_with_another_config_says_what_differs(tmp_path) -> None:
    cfg = small()
    path = tmp_path / "run.jsonl"
    train_with_monitor(cfg, path, progress=False)
    assert read_trajectory(path).provenance["config_sha"] == config_sha(cfg)
    with pytest.raises(ConfigMismatch, match=r"different config: lr: 0.003 \(stored\) vs 0.1 \(now\).*--overwrite"):
        train_with_monitor(cfg.with_overrides(lr=0.1), path, progress=False, resume=True)
    with pytest.raises(RunFinished):  # the same config: finished indeed
        train_with_monitor(cfg, path, progress=False, resume=True)
    # the command-line path (train --resume --set lr=0.1): not "already finished"
    logged: list[str] = []
    base = {"p": 23, "d_model": 32, "max_steps": 20, "eval_every": 10, "early_stop": None,
            "monitor": {"window": 3, "every": 5}}
    paths = list(run_task("modular", preset="tiny", out=tmp_path / "cli", overrides=base, progress=False))
    with pytest.raises(ConfigMismatch, match="lr"):
        list(run_task("modular", preset="tiny", out=tmp_path / "cli", overrides={**base, "lr": 0.1},
                      progress=False, resume=True, log=logged.append))
    list(run_task("modular", preset="tiny", out=tmp_path / "cli", overrides=base, progress=False, resume=True,
                  log=logged.append))
    assert logged == [f"{paths[0]}: already finished"]


# --- --overwrite ---------------------------------------------------------------------------------------------------


def test_overwrite_validates_the_device_before_anything_is_deleted(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    train_with_monitor(small(), path, progress=False)
    before = path.read_bytes()
    with pytest.raises(SpectralEdgeError, match="cuda:99"):
        train_with_monitor(small(), path, progress=False, overwrite=True, device="cuda:99")
    assert path.read_bytes() == before


def test_overwrite_replaces_the_old_run_only_at_the_new_runs_first_checkpoint(tmp_path) -> None:
    old_cfg, new_cfg = small(), small(lr=1e-2, checkpoint_every=7)
    path = tmp_path / "run.jsonl"
    train_with_monitor(old_cfg, path, progress=False)
    before = path.read_bytes()
    with pytest.raises(Killed):  # before the first checkpoint (step 7): the old run stays, byte for byte
        train_with_monitor(new_cfg, path, progress=False, overwrite=True, step_callback=killer(5))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]
    with pytest.raises(Killed):  # after it: the new run (resumable) has replaced the old one
        train_with_monitor(new_cfg, path, progress=False, overwrite=True, step_callback=killer(12))
    assert read_trajectory(path).provenance["config_sha"] == config_sha(new_cfg)
    assert checkpoint_path(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt.pt", "run.jsonl"]
    result = train_with_monitor(new_cfg, path, progress=False, resume=True)
    assert result.resumed_from is not None and is_finished(path)
    # a complete overwrite leaves the new run alone
    train_with_monitor(old_cfg, path, progress=False, overwrite=True)
    assert read_trajectory(path).provenance["config_sha"] == config_sha(old_cfg) and is_finished(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]


# --- interrupted runs and fsync ------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [KeyboardInterrupt, FloatingPointError])
def test_an_interrupted_run_is_never_counted_as_finished(tmp_path, exc: type[BaseException]) -> None:
    path = tmp_path / "run.jsonl"
    with pytest.raises(exc):
        train_with_monitor(small(), path, progress=False, step_callback=killer(8, exc))
    t = read_trajectory(path)
    assert [r["type"] for r in t.records[-2:]] == ["interrupted", "end"]
    assert t.records[-1]["step"] == t.records[-2]["step"] == 8
    assert run_status(t) is RunStatus.INTERRUPTED and not is_finished(path)
    assert load_runs([tmp_path]) == [] and len(load_runs([tmp_path], finished_only=False)) == 1
    assert _archive(path) is None and path.exists()  # never archived as finished


def test_the_trajectory_is_fsynced_before_each_checkpoint(tmp_path, monkeypatch) -> None:
    events: list[str] = []
    real_sync, real_save = TrajectoryWriter.sync, loop_module.save_checkpoint

    def sync(self: TrajectoryWriter) -> None:
        events.append("sync")
        real_sync(self)

    def save(*args: Any, **kwargs: Any) -> Any:
        events.append("checkpoint")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(TrajectoryWriter, "sync", sync)
    monkeypatch.setattr(loop_module, "save_checkpoint", save)
    train_with_monitor(small(checkpoint_every=7), tmp_path / "run.jsonl", progress=False)
    assert events == ["sync", "checkpoint"] * 2  # steps 7 and 14


# --- sweeps --------------------------------------------------------------------------------------------------------


def test_sweep_restarts_partial_runs_numbers_interrupted_files_and_checks_configs(tmp_path) -> None:
    cfg = small()
    name = "modular-add-p23-wd1-s0"
    plain, gz = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.jsonl.gz"
    # an orphaned worker's truncated run, archived by an older version as if finished, and an earlier .interrupted
    with pytest.raises(Killed):
        train_with_monitor(cfg, plain, progress=False, step_callback=killer(9))
    text = plain.read_text().splitlines(keepends=True)
    plain.unlink()
    import gzip

    gz.write_bytes(gzip.compress("".join(text[:-2]).encode()))  # no interrupted, no end: a cut run
    (tmp_path / f"{name}.jsonl.interrupted").write_text("first\n")
    plain.write_text("".join(text[:4]))  # and a partial plain file (no checkpoint)
    rows = run_sweep([cfg], tmp_path, jobs=1, progress=False)
    assert [r["file"] for r in rows] == [gz.name] and rows[0]["final_step"] == 20  # run again, not skipped
    assert run_status(read_trajectory(gz)) is RunStatus.FINISHED
    assert (tmp_path / f"{name}.jsonl.interrupted").read_text() == "first\n"  # never overwritten
    assert (tmp_path / f"{name}.jsonl.gz.interrupted").exists()
    assert (tmp_path / f"{name}.jsonl.interrupted.1").read_text() == "".join(text[:4])
    # a re-run with another lr does not take the stored run for its own
    with pytest.raises(ConfigMismatch, match=r"(?s)lr: 0.003 \(stored\) vs 0.1 \(now\).*overwrite=True"):
        run_sweep([cfg.with_overrides(lr=0.1)], tmp_path, jobs=1, progress=False)
    assert run_sweep([cfg], tmp_path, jobs=1, progress=False)[0]["final_step"] is None  # its own: skipped


def test_archive_refuses_an_unfinished_run(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    train_with_monitor(small(), path, progress=False)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))  # an orphaned worker's truncated file: no end
    assert _archive(path) is None and path.exists() and not (tmp_path / "run.jsonl.gz").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sweep_workers_die_with_their_parent(tmp_path) -> None:
    # SIGINT ignored, as for a sweep started in the background of a non-interactive shell: the worker inherits that,
    # and must still be interrupted when its sweep dies.
    script = textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from verify.harness.config import preset
        from verify.harness.sweep import run_sweep
        cfg = preset("tiny", p=23, d_model=32, max_steps=10_000_000, eval_every=1000, early_stop=None,
                     monitor={{"window": 3, "every": 5}})
        run_sweep([cfg], {str(tmp_path)!r}, jobs=1, progress=False)
        """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True)
    lock = tmp_path / "modular-add-p23-wd1-s0.lock"
    try:
        worker = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = lock.read_text().strip() if lock.exists() else ""
            if text.isdigit() and int(text) != parent.pid and (tmp_path / "modular-add-p23-wd1-s0.jsonl").exists():
                worker = int(text)
                break
            time.sleep(0.2)
        assert worker is not None, "the sweep's worker never started"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

        def alive(pid: int) -> bool:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return False
            return state not in ("Z", "X")

        # The interrupted run ends the worker (``sweep._ORPHANED``), well before the watchdog's 10 s hard exit.
        deadline = time.monotonic() + 8
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker), "the worker outlived its sweep by 8 s (the interrupted run did not end it)"
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)  # anything of that session still running (a failed test)
        except ProcessLookupError:
            pass
    assert not (tmp_path / "modular-add-p23-wd1-s0.jsonl.gz").exists()  # never archived
    assert run_status(read_trajectory(tmp_path / "modular-add-p23-wd1-s0.jsonl")) is not RunStatus.FINISHED
