"""The contract every workload implements, so one training loop serves them all.

A workload module (``verify/tasks/<name>.py``) exposes one object implementing :class:`Task`. Everything random
takes an explicit ``torch.Generator`` (the harness owns four streams: data, init, batches, diagnostics), so a
task never reads the global RNG.

Batches are task-defined objects (a tuple of tensors for classification, a dict for seq2seq); the harness only
moves them to a device with :func:`to_device` and hands them back to the task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from pydantic import BaseModel
from torch import Tensor, nn

__all__ = ["Batch", "Task", "eval_mode", "to_device"]

Batch = Any


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """Move a tensor, or a tuple/list/dict of tensors, to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; the previous train/eval mode is restored on exit, also on error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@runtime_checkable
class Task(Protocol):
    """One workload: data, model, loss and metrics.

    ``config`` is the task's own pydantic model (task + model fields only; optimiser, schedule, seeds and monitor
    live in the harness's run config).
    """

    name: str
    config_class: type[BaseModel]

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        """Build the dataset once, from the data stream only: ``{"train": ..., "test": ..., ...}`` on the CPU."""
        ...

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        """A freshly initialised model; every parameter drawn from ``generator`` (the init stream)."""
        ...

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> Batch:
        """A training batch drawn with ``generator`` (the batch stream or, for measurements, the diagnostics one)."""
        ...

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Scalar training loss of ``model`` on ``batch``."""
        ...

    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """Metrics on a whole split (no grad); must include ``acc`` (the grokking metric) and ``loss``."""
        ...

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        """Names of the attention projection weights (W_Q, W_K, W_V, W_O; cross-attention too), the author's
        Gram parameter group for the grokking tasks."""
        ...
