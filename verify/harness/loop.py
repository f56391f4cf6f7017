"""The one training loop for every workload: run config in, history (and optional monitor trajectory) out.

Source: [P] grokking-integrability ``grok_sweep.py`` (AdamW, clipping, batches drawn with replacement, eval every
100 steps, early stop at test acc ≥ 0.98 × 3), rewritten nanoGPT-style around the :class:`verify.tasks.base.Task`
protocol, with four independent RNG streams (our fix of the author's shared RNG; ``RunConfig.generator``): the data,
the model init, the batch order and a diagnostics stream that only measurements read (commutator-defect batch pairs; the
fixed probe batches come from its sub-stream ``probe``; other studies derive their own). The global RNG is seeded
from its own derived stream for tasks with dropout-like ops, and every measurement runs inside
``torch.random.fork_rng``, so the same seeds give the same trajectory at any measurement cadence, with or without a
monitor.

The loop names no study. Measurements plug in (``verify.harness.measurement``): every registered measurement whose
run-config section is on is built once per run and called at the named points — ``at_setup`` after the monitor
exists, ``measure`` when ``due`` at the top of the loop, ``state_dict`` / ``load_state_dict`` at every checkpoint and
resume — and its records go to the trajectory (``monitor.event``) and to ``History.measurements``. Interventions
(``verify.harness.intervention``: causal tests that act on training) plug in the same way, switched on by their
section's ``enabled``: ``at_setup`` after the measurements', ``on_gradient`` after ``backward`` and before clipping,
``after_step`` and ``observe`` after ``optimizer.step``, their state in every checkpoint; each call in its own
``fork_rng``. With none switched on, no call is made and a run is bitwise what it was.

Per step s (s = completed optimizer steps; 0 = at init), in this order: the monitor's optimizer post-hook captures
(inside ``optimizer.step``); then at the top of the loop the eval (every ``eval_every`` and at ``max_steps``), the
due measurements in registration order (``verify/studies/__init__.py``), the stop test, and the checkpoint
(``checkpoint_every``). A resumed run restarts right after that checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from numerics.atomic import atomic_path, atomic_write_text
from numerics.errors import SpectralEdgeError
from numerics.provenance import provenance
from verify.harness.checkpoint import load_checkpoint, save_checkpoint
from verify.harness.config import RunConfig, stream_seed
from verify.harness.intervention import intervention_class, intervention_names
from verify.harness.measurement import RunContext, measurement_class, measurement_names
from verify.harness.optim import build_optimizer, set_lr
from verify.tasks import get_task
from verify.tasks.base import Task, to_device

__all__ = ["History", "Monitor", "MonitorFactory", "RunResult", "diag_generator", "run_label", "train"]


class Monitor(Protocol):
    """What ``train`` needs from a monitor (e.g. ``numerics.monitor.SpectralMonitor``).

    Optional, used when present: ``event(kind, step, **fields)`` (measurement records), ``state_dict`` /
    ``load_state_dict`` (checkpoints), ``gram``, ``layout`` and ``latest`` (the window measurements read).
    """

    def log(self, step: int, **scalars: float) -> None: ...

    def close(self) -> None: ...


MonitorFactory = Callable[[nn.Module, torch.optim.Optimizer, RunConfig], Monitor]


@dataclass
class History:
    """Evaluation and measurement records; ``steps[i]`` counts completed optimizer steps (0 = at init).

    ``metrics[i]`` holds every metric of eval i as ``{split}_{name}`` (``train_acc``, ``test_loss``, task extras);
    ``measurements[name]`` one dict per record of measurement ``name`` (with its ``step``), also readable as an
    attribute (``history.defect``, ``history.probes``).
    """

    steps: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    measurements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> list[dict[str, Any]]:
        measurements = self.__dict__.get("measurements", {})
        if name in measurements or name in measurement_names() or name in intervention_names():
            return measurements.get(name, [])
        raise AttributeError(f"History has no attribute or measurement {name!r}")


@dataclass
class RunResult:
    """Outcome of one run. ``grok_step``: first eval step with test acc ≥ ``config.grok_threshold`` (None: never)."""

    config: RunConfig
    history: History
    grok_step: int | None
    final_step: int
    wall_s: float
    n_params: int
    model: nn.Module = field(repr=False)
    resumed_from: int | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready record (config, history, grok step, wall time) without the model."""
        return {"config": self.config.model_dump(mode="json"), "history": asdict(self.history),
                "grok_step": self.grok_step, "final_step": self.final_step, "wall_s": self.wall_s,
                "n_params": self.n_params, "resumed_from": self.resumed_from}


@dataclass
class _Run:
    """Everything one training run holds; the checkpoint is this minus what the config rebuilds."""

    cfg: RunConfig
    task: Task
    device: torch.device
    data: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    batch_gen: torch.Generator
    monitor: Any = None
    measurements: dict[str, Any] = field(default_factory=dict)  # name → Measurement (verify.harness.measurement)
    interventions: dict[str, Any] = field(default_factory=dict)  # name → Intervention (verify.harness.intervention)
    step: int = 0
    grok_step: int | None = None
    streak: int = 0  # consecutive evals at or above early_stop.acc
    wall_s: float = 0.0  # spent before this invocation (resumed runs)
    history: History = field(default_factory=History)


def diag_generator(config: RunConfig) -> torch.Generator:
    """The diagnostics stream: a fresh generator of ``config``'s diagnostics seed, for measurements only. Training
    never reads it."""
    return config.generator("diag")


def run_label(config: RunConfig) -> str:
    """File stem of a run: ``{task}-{label}-wd{wd:g}-s{init_seed}`` (``label`` from the task's optional
    ``run_label``; modular: ``modular-add-p97-wd1-s42``)."""
    task = get_task(config.task)
    label = task.run_label(config.task_config) if hasattr(task, "run_label") else ""
    return "-".join(p for p in (config.task, label, f"wd{config.weight_decay:g}", f"s{config.init_seed}") if p)


def _rng_fork(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Save the global CPU (and this CUDA device's) RNG state and restore it on exit."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else []
    return torch.random.fork_rng(devices=devices)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _checkpoint_path(cfg: RunConfig, out_dir: Path | None, checkpoint: str | Path | None, resume: bool) -> Path | None:
    if checkpoint is not None:
        return Path(checkpoint)
    if out_dir is not None:
        return out_dir / "checkpoint.pt"
    if cfg.checkpoint_every or resume:
        raise SpectralEdgeError("checkpointing or resuming needs a place: pass out_dir or checkpoint=PATH")
    return None


def train(
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    monitor_factory: MonitorFactory | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    step_callback: Callable[[int], None] | None = None,
) -> RunResult:
    """Train one run of ``config``; stop at ``max_steps`` or early stop.

    ``monitor_factory(model, optimizer, config)`` is called once, after the optimizer exists (and after a resumed
    run's model and optimizer state are loaded); the monitor may register optimizer hooks, gets
    ``monitor.log(step, train_acc=..., test_acc=..., train_loss=..., test_loss=..., <task extras>)`` at every eval,
    ``event(record_type, step, ...)`` per measurement record, and ``close()`` at the end (also on error, after an
    ``interrupted`` event). ``optimizer.global_step`` holds the number of completed optimizer steps (already
    incremented when step-post hooks run).

    Checkpoints (``config.checkpoint_every``) go to ``checkpoint`` (default ``out_dir/checkpoint.pt``) and are
    removed when the run finishes. ``resume=True`` continues from that checkpoint and ends bitwise identical to an
    uninterrupted run; a missing, corrupt, foreign or other-config checkpoint raises ``CheckpointError`` first.
    ``step_callback(step)`` runs after every optimizer step (tests use it to kill a run). If ``out_dir`` is given,
    writes ``config.json``, ``result.json`` and ``model.safetensors`` there (atomically).
    """
    cfg = config
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = _checkpoint_path(cfg, out, checkpoint, resume)
    saved = load_checkpoint(ckpt_path, cfg) if ckpt_path is not None and resume else None  # before anything else

    with _rng_fork(torch.device(device)):  # the caller's global RNG is restored on exit
        run = _build(cfg, torch.device(device), saved)
        run.monitor = monitor_factory(run.model, run.optimizer, cfg) if monitor_factory is not None else None
        bar = tqdm(total=cfg.max_steps, initial=int(saved["step"]) if saved else 0, disable=not progress,
                   desc=run_label(cfg))
        try:
            ctx = _context(run)
            with _rng_fork(run.device):  # what a setup draws never reaches the training RNG
                for m in run.measurements.values():  # e.g. fixed probe batches; θ_0 (a resume restores it)
                    m.at_setup(ctx)
                for iv in run.interventions.values():
                    iv.at_setup(ctx)
            if saved is not None:
                _restore(run, saved, ckpt_path)  # type: ignore[arg-type]
            pending = saved is None  # measurements at run.step still to do (a checkpoint is written after them)
            run.model.train()
            while True:
                if pending:
                    if _measure(run):
                        break
                    if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0 and run.step > 0:
                        _checkpoint(run, ckpt_path, time.perf_counter() - t0)  # type: ignore[arg-type]
                pending = True
                _train_step(run)
                bar.update(1)
                if step_callback is not None:
                    step_callback(run.step)
        except BaseException as exc:
            if hasattr(run.monitor, "event"):
                run.monitor.event("interrupted", run.step, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            bar.close()
            if run.monitor is not None:
                run.monitor.close()

    if ckpt_path is not None and cfg.checkpoint_every:
        ckpt_path.unlink(missing_ok=True)  # the run is complete; its checkpoint has served
    result = RunResult(config=cfg, history=run.history, grok_step=run.grok_step, final_step=run.step,
                       wall_s=run.wall_s + time.perf_counter() - t0, n_params=sum(p.numel() for p in
                                                                                  run.model.parameters()),
                       model=run.model, resumed_from=int(saved["step"]) if saved is not None else None)
    if out is not None:
        _save(result, out)
    return result


def _build(cfg: RunConfig, device: torch.device, saved: dict[str, Any] | None) -> _Run:
    """Data, model, optimizer and the RNG streams, from the config (and a checkpoint's model/optimizer state)."""
    torch.manual_seed(stream_seed(cfg.batch_seed, "global"))  # dropout & co. read the global RNG
    task = get_task(cfg.task)
    data = task.make_data(cfg.task_config, cfg.generator("data"))  # stream 1: data (CPU)
    model = task.build_model(cfg.task_config, cfg.generator("init"), device)  # stream 2: init
    no_decay = task.no_decay_names(model) if hasattr(task, "no_decay_names") else None
    optimizer = build_optimizer(model, cfg, no_decay)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    optimizer.global_step = int(saved["step"]) if saved is not None else 0  # type: ignore[attr-defined]
    # stream 3: batch order (a CPU generator: the order does not depend on the device); the diagnostics stream and
    # its sub-streams belong to the measurements, which draw them themselves
    measurements = {name: measurement_class(name)(cfg.section(name), cfg) for name in measurement_names()
                    if cfg.section(name).every}
    interventions = {name: intervention_class(name)(cfg.section(name), cfg) for name in intervention_names()
                     if cfg.section(name).enabled}
    return _Run(cfg, task, device, data, model, optimizer, cfg.generator("batch"), measurements=measurements,
                interventions=interventions)


def _context(run: _Run) -> RunContext:
    return RunContext(run.cfg, run.task, run.data, run.model, run.optimizer, run.device, run.monitor)


def _train_step(run: _Run) -> None:
    cfg = run.cfg
    batch = to_device(run.task.sample_batch(run.data, cfg.batch_size, run.batch_gen), run.device)
    loss = run.task.loss(run.model, batch)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"non-finite training loss {loss.item()} at step {run.step}")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.interventions:  # on ∇L(θ_s), before clipping (verify.harness.intervention)
        _intervene(run, "on_gradient")
    if cfg.grad_clip is not None:
        nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    set_lr(run.optimizer, cfg, run.step)
    run.step += 1
    run.optimizer.global_step = run.step  # type: ignore[attr-defined]  # visible to step-post hooks
    run.optimizer.step()
    if run.interventions:  # on θ_{s+1} (kicks, noise), then the interventions' own state
        _intervene(run, "after_step", "observe")


def _intervene(run: _Run, *points: str) -> None:
    """Call every intervention at ``points`` (in order) with the step ``run.step``, each call in its own fork of
    the global RNG; write the records they return."""
    ctx = _context(run)
    for point in points:
        for name, iv in run.interventions.items():
            with _rng_fork(run.device):  # nothing an intervention draws can reach the training RNG
                recs = getattr(iv, point)(ctx, run.step)
            for rec in recs:
                _record(run, name, iv.record_type, rec)


# --- measurements ----------------------------------------------------------------------------------------------


def _measure(run: _Run) -> bool:
    """Eval and the measurements due at ``run.step``; True when the run should stop here."""
    cfg, step = run.cfg, run.step
    with _rng_fork(run.device):  # nothing a measurement draws can reach the training RNG
        stop = step >= cfg.max_steps
        if step % cfg.eval_every == 0 or stop:
            stop = _evaluate(run) or stop
        ctx = _context(run)
        for name, m in run.measurements.items():
            if m.due(step):
                for rec in m.measure(ctx, step, final=stop):
                    _record(run, name, m.record_type, rec)
    return stop


def _record(run: _Run, name: str, record_type: str, rec: dict[str, Any]) -> None:
    run.history.measurements.setdefault(name, []).append({"step": run.step, **rec})
    if hasattr(run.monitor, "event"):
        run.monitor.event(record_type, run.step, **rec)


def _evaluate(run: _Run) -> bool:
    cfg, h = run.cfg, run.history
    metrics = {f"{split}_{k}": float(v) for split in ("train", "test")
               for k, v in run.task.evaluate(run.model, run.data, split).items()}
    h.steps.append(run.step)
    for name in ("train_acc", "test_acc", "train_loss", "test_loss"):
        getattr(h, name).append(metrics[name])
    h.metrics.append(metrics)
    if run.monitor is not None:
        run.monitor.log(run.step, **metrics)
    acc = metrics["test_acc"]
    if run.grok_step is None and acc >= cfg.grok_threshold:
        run.grok_step = run.step
    run.streak = run.streak + 1 if cfg.early_stop is not None and acc >= cfg.early_stop.acc else 0
    return cfg.early_stop is not None and run.streak >= cfg.early_stop.patience


# --- checkpoints -----------------------------------------------------------------------------------------------


def _sync_monitor(monitor: Any) -> None:
    """fsync the monitor's trajectory (``monitor.sync()``, optional in the ``Monitor`` protocol), so that no
    checkpoint refers to records a machine crash could still lose."""
    sync = getattr(monitor, "sync", None)
    if callable(sync):
        sync()


def _checkpoint(run: _Run, path: Path, elapsed: float) -> None:
    monitor = run.monitor
    _sync_monitor(monitor)  # the trajectory is on disk before the checkpoint that continues it
    save_checkpoint(
        path, run.cfg, run.step,
        model=run.model.state_dict(),
        optimizer=run.optimizer.state_dict(),
        rng={"batch": run.batch_gen.get_state(), **_rng_state(run.device)},
        monitor=monitor.state_dict() if hasattr(monitor, "state_dict") else None,
        measurements={name: m.state_dict() for name, m in run.measurements.items()},
        interventions={name: iv.state_dict() for name, iv in run.interventions.items()},
        loop={"grok_step": run.grok_step, "streak": run.streak, "wall_s": run.wall_s + elapsed,
              "history": asdict(run.history)},
    )


def _restore(run: _Run, saved: dict[str, Any], path: Path) -> None:
    """RNG, monitor, measurement and loop state from a validated checkpoint (model and optimizer were loaded in
    ``_build``)."""
    monitor = run.monitor
    has_state = hasattr(monitor, "load_state_dict")
    if (saved["monitor"] is None) == has_state:
        raise SpectralEdgeError(f"{path} was written {'without' if saved['monitor'] is None else 'with'} a monitor "
                                f"state; this run has {'a' if has_state else 'no'} checkpointable monitor")
    run.batch_gen.set_state(saved["rng"]["batch"])
    _set_rng_state(saved["rng"], run.device)
    if has_state:
        monitor.load_state_dict(saved["monitor"])  # writes a "resume" record
    states = saved.get("measurements") or {}
    if set(states) != set(run.measurements):
        raise SpectralEdgeError(f"{path} holds the state of measurements {sorted(states)}, this run has "
                                f"{sorted(run.measurements)}")
    for name, m in run.measurements.items():
        m.load_state_dict(states[name])
    states = saved.get("interventions") or {}  # checkpoints written before interventions existed hold none
    if set(states) != set(run.interventions):
        raise SpectralEdgeError(f"{path} holds the state of interventions {sorted(states)}, this run has "
                                f"{sorted(run.interventions)}")
    for name, iv in run.interventions.items():
        iv.load_state_dict(states[name])
    s = saved["loop"]
    run.step, run.grok_step, run.streak = int(saved["step"]), s["grok_step"], int(s["streak"])
    run.wall_s, run.history = float(s["wall_s"]), History(**s["history"])
    if hasattr(monitor, "event"):  # who resumed, from what code, on what (the file header has the first run's)
        monitor.event("resumed", run.step, checkpoint=str(path), provenance=provenance(None, None, run.device))


def _save(result: RunResult, out: Path) -> None:
    from safetensors.torch import save_file  # local import: only needed when writing a run

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", result.config.model_dump_json(indent=2) + "\n")
    atomic_write_text(out / "result.json", json.dumps(result.summary(), indent=1) + "\n")
    with atomic_path(out / "model.safetensors", suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}, str(tmp))
