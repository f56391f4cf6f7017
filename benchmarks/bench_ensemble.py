"""Ensemble mode vs one run at a time, on the author's mod-97 model (``mod97`` preset: 290,401 parameters, batch 512,
AdamW, monitor W = 10 every Δs = 100 steps, eval every 100 steps, as the stored runs).

The same work both ways: M = 4 runs (seeds 0, 1 × weight decay 1, 0) of ``STEPS`` steps each (default 100, env
``BENCH_ENSEMBLE_STEPS``), early stop off, every run writing its trajectory. Throughput is runs × steps per wall
second, setup and file writing included:

1. one process, one torch thread: ``verify.harness.ensemble.train_ensemble`` vs the four runs one after another
   (``runner.train_with_monitor``, what a sweep worker does);
2. two cores: the ensemble with ``torch.set_num_threads(2)`` vs two worker processes of one thread each sharing the
   four runs (what ``sweep --jobs 2`` does; the workers are started and warm before the clock starts).

Thread choice: a sweep worker runs one torch thread (``sweep._run_one``), so comparison 1 pins one thread in this
process; comparison 2 gives both sides the two cores. Ratios > 1 favour the ensemble. Both are measured in this run,
one after the other; on a loaded machine the ratios are noisy (run ``make bench bench_ensemble`` twice).

Measured (2-core CPU shared with two training processes, load ≈ 9, ``BENCH_ENSEMBLE_STEPS=20``): 0.98x with one
thread (0.9 vs 1.0 runs·steps/s) and 0.29x on two cores (0.23 vs 0.78). At batch 512 a mod-97 step is ~1.8 GFLOP of
matmuls per run, so on a CPU the step is compute-bound and stacking the runs saves little dispatch; two threads in one
process lose to two processes when the cores are shared (the sweep module's reason for one thread per worker). The
ensemble's gain is expected where one run cannot fill the device (a GPU); on a CPU run one ensemble per core.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from verify.harness.config import RunConfig, preset
from verify.harness.ensemble import train_ensemble
from verify.harness.runner import run_name, train_with_monitor
from verify.harness.sweep import conditions

SEEDS, WDS = [0, 1], [1.0, 0.0]


def _base(steps: int) -> RunConfig:
    return preset("mod97", "modular").with_overrides(max_steps=steps, early_stop=None)


def _sequential(cfgs: list[RunConfig], out: Path) -> float:
    t0 = time.perf_counter()
    for cfg in cfgs:
        train_with_monitor(cfg, out / f"{run_name(cfg)}.jsonl", progress=False)
    return time.perf_counter() - t0


def _ensemble(base: RunConfig, out: Path) -> float:
    t0 = time.perf_counter()
    train_ensemble(base, SEEDS, WDS, out)
    return time.perf_counter() - t0


def _worker_init() -> None:
    torch.set_num_threads(1)


def _ready(_: int = 0) -> int:
    return os.getpid()


def _one(cfg_json: str, path: str) -> None:
    train_with_monitor(RunConfig.model_validate_json(cfg_json), path, progress=False)


def _two_processes(cfgs: list[RunConfig], out: Path) -> float:
    with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn"), initializer=_worker_init) as pool:
        pids = set()
        while len(pids) < 2:  # both workers started and past their imports before the clock starts
            pids |= set(pool.map(_ready, range(8)))
            time.sleep(0.05)
        t0 = time.perf_counter()
        futures = [pool.submit(_one, c.model_dump_json(), str(out / f"{run_name(c)}.jsonl")) for c in cfgs]
        for f in futures:
            f.result()
        return time.perf_counter() - t0


def main() -> None:
    steps = int(os.environ.get("BENCH_ENSEMBLE_STEPS", "100"))
    base = _base(steps)
    cfgs = conditions(base, SEEDS, WDS)
    work = len(cfgs) * steps
    before = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            torch.set_num_threads(1)
            seq = _sequential(cfgs, root / "sequential")
            ens1 = _ensemble(base, root / "ensemble-1")
            print(f"ensemble vs sequential (1 thread, M={len(cfgs)}, {steps} steps): {seq / ens1:.2f}x runs·steps/s "
                  f"({work / ens1:.1f} vs {work / seq:.1f})")
            two = _two_processes(cfgs, root / "two-processes")
            torch.set_num_threads(2)
            ens2 = _ensemble(base, root / "ensemble-2")
            print(f"ensemble (2 threads) vs two processes (1 thread each): {two / ens2:.2f}x runs·steps/s "
                  f"({work / ens2:.1f} vs {work / two:.1f})")
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    main()
