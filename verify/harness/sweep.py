"""Sweeps: many seeds and conditions of one workload, as concurrent single-threaded processes.

On a CPU, ``jobs`` processes with one torch thread each use the cores better than one process with many threads
(the models are small; thread barriers dominate); with ``device="cuda"`` the processes share the GPU (concurrent
streams). Each run writes its trajectory, which is then validated and stored compressed (``.jsonl.gz``). A finished
run (its ``.jsonl.gz`` exists) is skipped, so a killed sweep is re-run with the same command; an interrupted run
continues from its checkpoint (``NAME.ckpt.pt``, when the config sets ``checkpoint_every``) or, without one, starts
again from step 0 with the partial file moved aside to ``*.interrupted`` (never silently appended to or
overwritten). A manifest (``sweep.json``, written atomically) lists each run's file, grokking step and wall time.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from numerics.atomic import atomic_write_text
from numerics.errors import SpectralEdgeError
from numerics.provenance import provenance
from numerics.trajectory import compress_trajectory
from verify.harness.config import RunConfig
from verify.harness.runner import run_name, train_with_monitor
from verify.store import checkpoint_path, load_run

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


def _run_one(cfg_json: str, path: str, device: str = "cpu", resume: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)  # one thread per worker process (module docstring)
    cfg = RunConfig.model_validate_json(cfg_json)
    result = train_with_monitor(cfg, path, progress=False, device=device, resume=resume)
    gz = compress_trajectory(path)
    return {"file": gz.name, "grok_step": result.grok_step, "final_step": result.final_step,
            "wall_s": round(result.wall_s, 2), "resumed_from": result.resumed_from}


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
    cfgs: Sequence[RunConfig], out: str | Path, *, jobs: int = 2, progress: bool = True, device: str = "cpu"
) -> list[dict[str, Any]]:
    """Run every config (skipping finished ones, resuming checkpointed ones); returns the manifest rows."""
    names = [run_name(cfg) for cfg in cfgs]
    clashes = [n for n, c in Counter(names).items() if c > 1]
    if clashes:
        raise SpectralEdgeError(f"sweep conditions share run names {clashes}: the swept field is not in the file "
                                "name; sweep it into separate --out directories")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo, rows = [], []
    for cfg, name in zip(cfgs, names, strict=True):
        plain = out / f"{name}.jsonl"
        gz = plain.with_name(plain.name + ".gz")
        if gz.exists():
            rows.append({"file": gz.name, "grok_step": load_run(gz).grok_step(), "final_step": None, "wall_s": None})
            continue
        resume = plain.exists() and checkpoint_path(plain).exists()
        if plain.exists() and not resume:
            plain.rename(plain.with_name(plain.name + ".interrupted"))
        todo.append((cfg, plain, resume))
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited thread pools or RNG state
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        futures = {pool.submit(_run_one, cfg.model_dump_json(), str(path), device, resume): cfg
                   for cfg, path, resume in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), disable=not progress, desc="sweep"):
            rows.append(fut.result())
    manifest = {
        "provenance": provenance({"n_runs": len(cfgs), "jobs": jobs, "device": device}),
        "wall_s_this_invocation": round(time.perf_counter() - t0, 1),
        "runs": _merged_rows(out, rows),
    }
    atomic_write_text(out / "sweep.json", json.dumps(manifest, indent=1) + "\n")
    return manifest["runs"]
