"""Adapters: the spectral monitor inside the trainers people already use.

- ``numerics.adapters.huggingface.SpectralEdgeCallback``: a ``transformers.TrainerCallback`` (extra ``hf``).
- ``numerics.adapters.lightning.SpectralEdgeLightningCallback``: a Lightning ``Callback`` (extra ``lightning``).

Each is imported explicitly by its user (``from numerics.adapters.huggingface import SpectralEdgeCallback``), so
neither ``transformers`` nor ``lightning`` is imported by ``import numerics`` or by this package. The shared part,
``MonitorSettings`` and ``unwrap_optimizer``, needs torch only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from numerics.monitor import SpectralMonitor

__all__ = ["MonitorSettings", "numeric_metrics", "unwrap_optimizer"]


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a wrapper (``accelerate``'s ``AcceleratedOptimizer``, Lightning's
    ``LightningOptimizer``): the step hook must sit on the optimizer whose ``step`` really runs."""
    seen = 0
    while not _is_plain(optimizer) and seen < 8:
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if inner is None or inner is optimizer:
            break
        optimizer, seen = inner, seen + 1
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"the spectral monitor needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer


def _is_plain(optimizer: Any) -> bool:
    return isinstance(optimizer, torch.optim.Optimizer) and not isinstance(
        getattr(optimizer, "optimizer", None), torch.optim.Optimizer
    )


def numeric_metrics(metrics: Mapping[str, Any], rename: Mapping[str, str] | None = None,
                    drop: tuple[str, ...] = ()) -> dict[str, float]:
    """The numbers of a metrics dict as floats (one-element tensors and numpy scalars included; strings, lists,
    booleans and ``drop`` names left out), keys renamed by ``rename``."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if k in drop:
            continue
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                continue
            v = v.item()
        if isinstance(v, bool | str) or not hasattr(v, "__float__"):
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        out[(rename or {}).get(k, k)] = x
    return out


@dataclass
class MonitorSettings:
    """The ``SpectralMonitor`` keyword arguments an adapter passes on (see ``numerics.monitor.SpectralMonitor``)."""

    window: int = 10
    every: int = 100
    groups: Mapping[str, Any] | None = None
    path: str | os.PathLike[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def attach(self, model: torch.nn.Module, optimizer: Any, meta: Mapping[str, Any]) -> SpectralMonitor:
        opts = dict(self.options)
        opts["meta"] = {**meta, **dict(opts.get("meta") or {})}
        return SpectralMonitor(model, unwrap_optimizer(optimizer), window=self.window, every=self.every,
                               groups=self.groups, path=self.path, **opts)
