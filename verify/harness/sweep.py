"""Sweeps: many seeds and conditions of one workload, as concurrent single-threaded processes.

On a CPU, ``jobs`` processes with one torch thread each use the cores better than one process with many threads
(the models are small; thread barriers dominate); with ``device="cuda"`` the processes share the GPU (concurrent
streams). Each run writes its trajectory, holding ``NAME.lock``; only a finished run (``verify.store.run_status``)
is then stored compressed (``.jsonl.gz``). A finished run of the same config (``config_sha``) is skipped, so a killed
sweep is re-run with the same command; one of another config is an error saying what differs (``overwrite``: run
it again). An interrupted run continues from its checkpoint (``NAME.ckpt.pt``, when the config sets
``checkpoint_every``) or, without one, starts again from step 0 with the partial file moved aside to
``*.interrupted``, ``*.interrupted.1``, … (never appended to, overwritten or archived). Workers end with the sweep
process: each watches its parent and stops its run when the parent is gone. A manifest (``sweep.json``, written
atomically) lists each run's file, grokking step and wall time.
"""

from __future__ import annotations

import _thread
import itertools
import json
import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from numerics.atomic import atomic_write_text
from numerics.errors import SpectralEdgeError, TrajectoryError
from numerics.provenance import provenance
from numerics.trajectory import compress_trajectory, read_trajectory
from verify.harness.config import RunConfig
from verify.harness.runner import (
    ConfigMismatch,
    check_device,
    run_lock,
    run_name,
    stored_config_diff,
    train_with_monitor,
)
from verify.store import RunStatus, checkpoint_path, load_run, run_status

__all__ = ["conditions", "run_sweep"]


def conditions(base: RunConfig, seeds: Sequence[int], wds: Sequence[float], **grid: Sequence[Any]) -> list[RunConfig]:
    """The full factorial ``grid`` axes (e.g. ``op=[...]``, run or task fields) × weight decay × seed, all
    validated before anything runs."""
    axes = list(grid.items())
    out = []
    for values in itertools.product(*(v for _, v in axes)):
        for wd in wds:
            cfg = base.with_overrides(**dict(zip((k for k, _ in axes), values, strict=True)), weight_decay=wd)
            out += [cfg.with_seed(s) for s in seeds]
    return out


#: Set in a worker once its sweep process is gone: the run's ``KeyboardInterrupt`` then ends the worker
#: (``_run_one``) instead of returning it to a pool whose parent will never send another task.
_ORPHANED = threading.Event()


def _watch_parent(parent: int, grace_s: float = 10.0, poll_s: float = 0.5) -> None:
    """Worker initializer: a daemon thread that ends this worker when the sweep process that started it dies (the
    worker is re-parented). It interrupts the run first (``KeyboardInterrupt``: the run writes ``interrupted`` and
    ``end``, releases its lock, and the worker exits), and exits hard if that has not ended the process after
    ``grace_s`` (a run stuck outside Python code). The worker's SIGINT gets Python's handler back where its launcher
    ignored it (a sweep started in the background of a non-interactive shell, or under nohup-like launchers): without
    one, ``interrupt_main`` does nothing."""
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        _ORPHANED.set()
        _thread.interrupt_main()
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="sweep-parent-watchdog", daemon=True).start()


def _archive(path: Path) -> Path | None:
    """Compress a *finished* run (``run_status``) to ``.jsonl.gz``; None (and nothing archived) otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finished = run_status(read_trajectory(path)) is RunStatus.FINISHED
    return compress_trajectory(path) if finished else None


def _aside(path: Path, tag: str = "interrupted") -> Path:
    """Move ``path`` to ``path.TAG``, or ``.TAG.1``, ``.TAG.2``, … : the first free name (an earlier one is never
    overwritten)."""
    n = 0
    while True:
        target = path.with_name(f"{path.name}.{tag}" + (f".{n}" if n else ""))
        if not target.exists():
            path.rename(target)
            return target
        n += 1


def _run_one(cfg_json: str, path: str, device: str = "cpu", resume: bool = False,
             overwrite: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)  # one thread per worker process (module docstring)
    cfg = RunConfig.model_validate_json(cfg_json)
    try:
        with run_lock(path):  # held through the archiving: nobody else moves or reads this run half-way
            result = train_with_monitor(cfg, path, progress=False, device=device, resume=resume,
                                        overwrite=overwrite, lock=False)
            gz = _archive(Path(path))
    except KeyboardInterrupt:
        if _ORPHANED.is_set():  # the run has closed its file and the lock is released: nobody waits for this worker
            os._exit(1)
        raise
    if gz is None:
        raise SpectralEdgeError(f"{path}: the run returned but its trajectory is not finished; not archived")
    return {"file": gz.name, "grok_step": result.grok_step, "final_step": result.final_step,
            "wall_s": round(result.wall_s, 2), "resumed_from": result.resumed_from}


def _status(path: Path) -> RunStatus | None:
    """``run_status`` of a file, None when it cannot be read at all."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run_status(read_trajectory(path))
    except TrajectoryError:
        return None


def _stored_row(gz: Path) -> dict[str, Any]:
    """The manifest row of a finished run already stored as ``gz`` (not trained by this invocation); its grok step by
    the same rule as a trained run's row (the run's own threshold)."""
    return {"file": gz.name, "grok_step": load_run(gz).recorded_grok_step(), "final_step": None, "wall_s": None}


def _plan(cfg: RunConfig, plain: Path, overwrite: bool, rows: list[dict[str, Any]],
          mismatches: list[str]) -> bool | None:
    """What to do with one run (called holding its lock): None when it is done (a row is added), else whether the
    worker resumes it. A finished run of another config is a mismatch (or, with ``overwrite``, redone:
    its archive is replaced when the new run is archived); a run archived unfinished (by an older version or an
    orphaned worker) and a partial run without a checkpoint are moved aside, numbered, and run again."""
    gz = plain.with_name(plain.name + ".gz")
    if gz.exists():
        status = _status(gz)
        if status is RunStatus.FINISHED:
            diff = stored_config_diff(gz, cfg)
            if not diff:
                rows.append(_stored_row(gz))
                return None
            if not overwrite:
                mismatches.append(f"{gz.name}: " + "; ".join(diff))
                return None
        else:
            _aside(gz)
    if plain.exists():
        status = _status(plain)
        diff = stored_config_diff(plain, cfg) if status is not None else []
        if diff and not overwrite:
            if status is RunStatus.FINISHED or checkpoint_path(plain).exists():
                mismatches.append(f"{plain.name}: " + "; ".join(diff))
                return None
        if status is RunStatus.FINISHED and not diff:  # finished, not yet archived (its worker was stopped)
            rows.append(_stored_row(compress_trajectory(plain)))
            return None
        if checkpoint_path(plain).exists() and status is not None and not diff:
            return True
        _aside(plain)
        checkpoint_path(plain).unlink(missing_ok=True)
    return False


def _merged_rows(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This invocation's rows plus the earlier manifest's rows for runs still stored in ``out`` and not re-listed,
    so a sweep run in several invocations (e.g. one seed at a time) keeps one manifest of every stored run."""
    mine = {r["file"] for r in rows}
    try:
        earlier = json.loads((out / "sweep.json").read_text()).get("runs", [])
    except (OSError, ValueError, AttributeError):
        earlier = []
    kept = [r for r in earlier
            if isinstance(r, dict) and r.get("file") not in mine and (out / str(r.get("file"))).exists()]
    return sorted(rows + kept, key=lambda r: r["file"])


def run_sweep(
    cfgs: Sequence[RunConfig], out: str | Path, *, jobs: int = 2, progress: bool = True, device: str = "cpu",
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Run every config (skipping finished ones of the same config, resuming checkpointed ones); returns the
    manifest rows. A stored finished run of another config is an error saying what differs, unless ``overwrite``
    (then it is run again and its archive replaced when the new run is archived)."""
    names = [run_name(cfg) for cfg in cfgs]
    clashes = [n for n, c in Counter(names).items() if c > 1]
    if clashes:
        raise SpectralEdgeError(f"sweep conditions share run names {clashes}: the swept field is not in the file "
                                "name; sweep it into separate --out directories")
    check_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[RunConfig, Path, bool]] = []
    rows: list[dict[str, Any]] = []
    mismatches: list[str] = []
    for cfg, name in zip(cfgs, names, strict=True):
        plain = out / f"{name}.jsonl"
        with run_lock(plain):  # a live writer of this run (another sweep, a train) is an error, named
            resume = _plan(cfg, plain, overwrite, rows, mismatches)
        if resume is not None:
            todo.append((cfg, plain, resume))
    if mismatches:
        raise ConfigMismatch(f"{len(mismatches)} stored run(s) in {out} were made with a different config than this "
                             "sweep's, so they are not its own:\n  " + "\n  ".join(mismatches) + "\nTo replace them "
                             "re-run with overwrite=True (sweep --overwrite); to keep them, sweep into another --out.")
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited thread pools or RNG state
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx, initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:  # workers end when this process dies
        futures = {pool.submit(_run_one, cfg.model_dump_json(), str(path), device, resume,
                               overwrite and not resume): cfg for cfg, path, resume in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), disable=not progress, desc="sweep"):
            rows.append(fut.result())
    manifest = {
        "provenance": provenance({"n_runs": len(cfgs), "jobs": jobs, "device": device}),
        "wall_s_this_invocation": round(time.perf_counter() - t0, 1),
        "runs": _merged_rows(out, rows),
    }
    atomic_write_text(out / "sweep.json", json.dumps(manifest, indent=1) + "\n")
    return manifest["runs"]
