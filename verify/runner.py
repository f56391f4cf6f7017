"""Glue between a workload config, the training loop and the spectral monitor: one trajectory file per run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from numerics.errors import SpectralEdgeError
from numerics.layout import per_layer_groups
from numerics.monitor import SpectralMonitor
from numerics.provenance import provenance
from verify.config import ModularConfig, load_config, preset
from verify.tasks.modular import attention_weight_names
from verify.train import MonitorFactory, RunResult, train

__all__ = ["TASKS", "monitor_groups", "run_name", "run_task", "spectral_monitor_factory", "train_with_monitor"]

TASKS = ("modular",)


def monitor_groups(model: nn.Module, names: Sequence[str]) -> dict[str, Any]:
    """Group selectors by name: ``all`` (every trainable parameter), ``attn`` (W_Q, W_K, W_V, W_O weights, as the
    author's grokking experiments use), ``layers`` (one group per transformer layer)."""
    groups: dict[str, Any] = {}
    for name in names:
        if name == "all":
            groups["all"] = "*"
        elif name == "attn":
            groups["attn"] = attention_weight_names(model)
        elif name == "layers":
            groups.update(per_layer_groups(model))
        else:
            raise SpectralEdgeError(f"unknown monitor group {name!r}; choose from all, attn, layers")
    return groups


def spectral_monitor_factory(path: str | Path, device: str | torch.device = "cpu") -> MonitorFactory:
    """A ``monitor_factory`` for :func:`verify.train.train` that records to ``path`` with full provenance."""

    def make(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: ModularConfig) -> SpectralMonitor:
        seeds = {k: getattr(cfg, k) for k in ("data_seed", "init_seed", "batch_seed", "diag_seed")}
        return SpectralMonitor(
            model,
            optimizer,
            window=cfg.monitor.window,
            every=cfg.monitor.every,
            groups=monitor_groups(model, cfg.monitor.groups),
            path=path,
            provenance=provenance(cfg.model_dump(mode="json"), seeds, device),
            meta={"task": "modular", "grok_threshold": cfg.grok_threshold},
            kstar=cfg.monitor.kstar,
            keep_records=False,
        )

    return make


def run_name(cfg: ModularConfig) -> str:
    """A file stem that names the condition: op, modulus, weight decay and seed."""
    return f"modular-{cfg.op}-p{cfg.p}-wd{cfg.weight_decay:g}-s{cfg.init_seed}"


def train_with_monitor(
    cfg: ModularConfig, path: str | Path, *, device: str = "cpu", progress: bool = True, overwrite: bool = False
) -> RunResult:
    """Train ``cfg`` with the spectral monitor writing ``path``; refuses to append to an existing file."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        path.unlink()
    return train(cfg, monitor_factory=spectral_monitor_factory(path, device), progress=progress, device=device)


def run_task(
    task: str,
    *,
    config: Path | None = None,
    preset: str = "mod97",
    out: Path = Path("out/train"),
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    weight_decay: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Iterator[Path]:
    """Validate everything first, then train once per seed; yields the trajectory paths."""
    if task not in TASKS:
        raise SpectralEdgeError(f"unknown task {task!r}; available: {', '.join(TASKS)}")
    base = load_config(config) if config is not None else _preset(preset)
    if weight_decay is not None:
        base = base.with_overrides(weight_decay=weight_decay)
    cfgs = [base.with_seed(s) for s in seeds] if seeds else [base]
    out.mkdir(parents=True, exist_ok=True)
    for cfg in cfgs:
        path = out / f"{run_name(cfg)}.jsonl"
        train_with_monitor(cfg, path, device=device, progress=progress, overwrite=overwrite)
        yield path


def _preset(name: str) -> ModularConfig:
    try:
        return preset(name)
    except KeyError as exc:
        raise SpectralEdgeError(str(exc.args[0])) from None
