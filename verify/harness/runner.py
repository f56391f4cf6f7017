"""Glue between a run config, the training loop and the spectral monitor: one trajectory file per run.

A run ``NAME`` (``run_label``, e.g. ``modular-add-p97-wd1-s42``) writes ``NAME.jsonl``; with ``checkpoint_every`` it
also keeps ``NAME.ckpt.pt`` next to it until it finishes. ``resume=True`` continues both from the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from numerics.errors import SpectralEdgeError
from numerics.layout import per_layer_groups
from numerics.monitor import SpectralMonitor
from numerics.provenance import provenance
from verify.harness.config import RunConfig, load_config, make_run_config, preset
from verify.harness.loop import MonitorFactory, RunResult, run_label, train
from verify.store import checkpoint_path, is_finished
from verify.tasks import get_entry, get_task

__all__ = [
    "RunFinished",
    "base_config",
    "checkpoint_path",
    "is_finished",
    "monitor_groups",
    "parse_sets",
    "parse_value",
    "run_name",
    "run_task",
    "spectral_monitor_factory",
    "train_with_monitor",
]


def monitor_groups(model: nn.Module, names: Sequence[str], task: str = "modular") -> dict[str, Any]:
    """Group selectors by name: ``all`` (every trainable parameter), ``attn`` (the task's attention weights
    W_Q, W_K, W_V, W_O, as the author's grokking experiments use), ``layers`` (one group per transformer layer),
    ``task`` (the task's ``monitor_groups(model)``: name → parameter names)."""
    groups: dict[str, Any] = {}
    for name in names:
        if name == "all":
            groups["all"] = "*"
        elif name == "attn":
            groups["attn"] = get_task(task).attention_weight_names(model)
        elif name == "layers":
            groups.update(per_layer_groups(model))
        elif name == "task":  # the task's own named groups (e.g. li2: the first-layer W only)
            groups.update(get_task(task).monitor_groups(model))
        else:
            raise SpectralEdgeError(f"unknown monitor group {name!r}; choose from all, attn, layers, task")
    return groups


def spectral_monitor_factory(path: str | Path, device: str | torch.device = "cpu") -> MonitorFactory:
    """A ``monitor_factory`` for :func:`verify.harness.loop.train` that records to ``path`` with full provenance."""

    def make(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: RunConfig) -> SpectralMonitor:
        seeds = {k: getattr(cfg, k) for k in ("data_seed", "init_seed", "batch_seed", "diag_seed")}
        return SpectralMonitor(
            model,
            optimizer,
            window=cfg.monitor.window,
            every=cfg.monitor.every,
            groups=monitor_groups(model, cfg.monitor.groups, cfg.task),
            path=path,
            provenance=provenance(cfg.model_dump(mode="json"), seeds, device),
            meta={"task": cfg.task, "grok_threshold": cfg.grok_threshold, "optimizer": cfg.optimizer,
                  "streams": cfg.streams},
            kstar=cfg.monitor.kstar,
            storage_dtype=getattr(torch, cfg.monitor.storage_dtype),
            keep_records=False,
        )

    return make


def run_name(cfg: RunConfig) -> str:
    """A file stem that names the condition (``modular-{op}-p{p}-wd{wd:g}-s{seed}`` for modular arithmetic)."""
    return run_label(cfg)


class RunFinished(SpectralEdgeError):
    """Resume was asked for a run whose trajectory is complete (nothing to do)."""


def train_with_monitor(
    cfg: RunConfig, path: str | Path, *, device: str = "cpu", progress: bool = True, overwrite: bool = False,
    resume: bool = False, **train_kwargs: Any,
) -> RunResult:
    """Train ``cfg`` with the spectral monitor writing ``path``.

    Refuses to append to an existing file unless ``resume`` (continue it from ``NAME.ckpt.pt``; a missing
    checkpoint is an error) or ``overwrite`` (start over: the file and any checkpoint are deleted).
    """
    path = Path(path)
    ckpt = checkpoint_path(path)
    if resume and overwrite:
        raise SpectralEdgeError("resume and overwrite exclude each other")
    if resume:
        if not path.exists():
            raise SpectralEdgeError(f"cannot resume: trajectory {path} does not exist")
        if is_finished(path):
            raise RunFinished(f"cannot resume: {path} is a finished run (it has an end record, no checkpoint)")
    elif path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it, or resume=True "
                                  "(--resume) to continue it")
        path.unlink()
        ckpt.unlink(missing_ok=True)
    return train(cfg, monitor_factory=spectral_monitor_factory(path, device), progress=progress, device=device,
                 checkpoint=ckpt, resume=resume, **train_kwargs)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string, e.g. op=mul


def parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    """``["lr=3e-4", "monitor.every=50", "op=mul"]`` → ``{"lr": 3e-4, "monitor": {"every": 50}, "op": "mul"}``
    (values parsed as JSON when they are JSON, else kept as strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpectralEdgeError(f"--set expects KEY=VALUE, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = parse_value(value)
    return out


def base_config(
    task: str, *, config: Path | None = None, preset_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The run config of a command line: ``--config FILE`` or ``--preset P`` (default: the task's default preset),
    then flat ``overrides``; nested overrides (``monitor: {every: 50}``) update that sub-config key by key."""
    try:
        entry = get_entry(task)
    except KeyError as exc:
        raise SpectralEdgeError(str(exc.args[0])) from None
    if config is not None and preset_name is not None:
        raise SpectralEdgeError("give --config or --preset, not both")
    if config is not None:
        base = load_config(config, task)
    else:
        name = preset_name or entry.default_preset
        try:
            base = preset(name, task) if name is not None else make_run_config(task, {})
        except KeyError as exc:
            raise SpectralEdgeError(str(exc.args[0])) from None
    if overrides:
        dumped = base.model_dump()
        nested = {k: {**dumped[k], **v} if isinstance(v, Mapping) and isinstance(dumped.get(k), Mapping) else v
                  for k, v in overrides.items()}
        base = base.with_overrides(**nested)
    return base


def run_task(
    task: str,
    *,
    config: Path | None = None,
    preset: str | None = None,
    out: Path = Path("out/train"),
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    weight_decay: float | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Validate every config first, then train once per seed; yields the trajectory paths. With ``resume``, runs
    that already finished are skipped (reported through ``log``), so the same command can be repeated."""
    extra = dict(overrides or {})
    if weight_decay is not None:
        extra["weight_decay"] = weight_decay
    base = base_config(task, config=config, preset_name=preset, overrides=extra)
    cfgs = [base.with_seed(s) for s in seeds] if seeds else [base]
    out.mkdir(parents=True, exist_ok=True)
    for cfg in cfgs:
        path = out / f"{run_name(cfg)}.jsonl"
        if resume and is_finished(path):
            if log is not None:
                log(f"{path}: already finished")
        else:
            train_with_monitor(cfg, path, device=device, progress=progress, overwrite=overwrite, resume=resume)
        yield path
