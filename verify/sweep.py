"""Sweeps: many seeds and conditions of one workload, as concurrent single-threaded processes.

On a CPU, ``jobs`` processes with one torch thread each use the cores better than one process with many threads
(the models are small; thread barriers dominate). Each run writes its trajectory, which is then validated and
stored compressed (``.jsonl.gz``). A finished run (its ``.jsonl.gz`` exists) is skipped, so a killed sweep is
re-run with the same command; a run that was interrupted mid-way is started again from step 0 and the partial file
is moved aside to ``*.interrupted`` (never silently appended to or overwritten). A manifest (``sweep.json``,
written atomically) lists each run's condition, grokking step and wall time.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from numerics.atomic import atomic_write_text
from numerics.provenance import provenance
from numerics.trajectory import compress_trajectory, read_trajectory
from verify.config import ModularConfig
from verify.summary import summarise

__all__ = ["conditions", "run_sweep"]


def conditions(
    base: ModularConfig, ops: Sequence[str], seeds: Sequence[int], wds: Sequence[float]
) -> list[ModularConfig]:
    """The full factorial op × weight decay × seed, validated before anything runs."""
    return [base.with_overrides(op=op, weight_decay=wd).with_seed(s) for op in ops for wd in wds for s in seeds]


def _run_one(cfg_json: str, path: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from verify.config import ModularConfig as _Cfg
    from verify.runner import train_with_monitor

    cfg = _Cfg.model_validate_json(cfg_json)
    result = train_with_monitor(cfg, path, progress=False)
    gz = compress_trajectory(path)
    return {"file": gz.name, "grok_step": result.grok_step, "final_step": result.final_step,
            "wall_s": round(result.wall_s, 2)}


def run_sweep(
    cfgs: Sequence[ModularConfig], out: str | Path, *, jobs: int = 2, progress: bool = True
) -> list[dict[str, Any]]:
    """Run every config (skipping finished ones); returns the manifest rows."""
    from verify.runner import run_name

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo, rows = [], []
    for cfg in cfgs:
        plain = out / f"{run_name(cfg)}.jsonl"
        gz = plain.with_name(plain.name + ".gz")
        if gz.exists():
            s = summarise(read_trajectory(gz))
            rows.append({"file": gz.name, "grok_step": s["grok_step"], "final_step": None, "wall_s": None})
            continue
        if plain.exists():
            plain.rename(plain.with_name(plain.name + ".interrupted"))
        todo.append((cfg, plain))
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited thread pools or RNG state
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        futures = {pool.submit(_run_one, cfg.model_dump_json(), str(path)): cfg for cfg, path in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), disable=not progress, desc="sweep"):
            rows.append(fut.result())
    manifest = {
        "provenance": provenance({"n_runs": len(cfgs), "jobs": jobs}),
        "wall_s_this_invocation": round(time.perf_counter() - t0, 1),
        "runs": sorted(rows, key=lambda r: r["file"]),
    }
    atomic_write_text(out / "sweep.json", json.dumps(manifest, indent=1) + "\n")
    return manifest["runs"]
