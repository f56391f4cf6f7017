"""Task-level code the workloads share: building a model initialised from its own generator, evaluating in chunks,
the metrics of a classification split and of padded token targets, and the attention-weight Gram group."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from verify.tasks.base import eval_mode
from verify.tasks.layers import attention_weight_names

__all__ = ["IGNORE", "AttentionGramTask", "TokenCounts", "build_initialised", "chunks", "sample_rows", "split_metrics"]

IGNORE = -100  # target of padding positions (ignored by the loss and the metrics)


M = TypeVar("M", bound=nn.Module)


def build_initialised(make: Callable[[], M], generator: torch.Generator, device: torch.device | str) -> M:
    """``make()`` on the CPU with the global RNG's state restored afterwards (PyTorch's default init draws from it;
    the global stream stays untouched), initialised by its ``reset_parameters(generator)``, then moved to ``device``
    (so the init is the same on every device). Not on the meta device: there ``normal_`` (embeddings) loads torch's
    Python reference ops, 1.4 s of imports in every process that builds a model, against milliseconds of default init
    at these sizes."""
    with torch.random.fork_rng(devices=[]):
        model = make()
    model.reset_parameters(generator)
    return model.to(device)


def chunks(tensors: Sequence[Tensor], size: int, device: torch.device | str) -> Iterator[tuple[Tensor, ...]]:
    """Consecutive slices of ``size`` rows of every tensor (all of the same length), each moved to ``device``."""
    for i in range(0, len(tensors[0]), size):
        yield tuple(t[i : i + size].to(device) for t in tensors)


def sample_rows(data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A minibatch of ``data["train"] = (x, y)`` drawn without replacement by one ``randperm`` of ``generator``;
    the whole split (full batch, nothing drawn) when ``batch_size`` covers it."""
    x, y = data["train"]
    if batch_size >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=generator)[:batch_size]
    return x[idx], y[idx]


def split_metrics(model: nn.Module, data: dict[str, Any], split: str,
                  loss: Callable[[Tensor, Tensor], Tensor]) -> dict[str, float]:
    """``acc`` (argmax right) and ``loss(out, y)`` on the whole split ``data[split] = (x, y)`` in one batch, in eval
    mode (the previous mode restored). The caller holds ``torch.no_grad``."""
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in data[split])
    with eval_mode(model):
        out = model(x)
        return {"acc": (out.argmax(-1) == y).float().mean().item(), "loss": loss(out, y).item()}


class TokenCounts:
    """Running sums of a chunked, teacher-forced evaluation on padded targets (``IGNORE`` marks padding): summed
    token cross-entropy, tokens right, real tokens, and sequences right at every real token."""

    def __init__(self) -> None:
        self.loss_sum, self.correct, self.tokens, self.seq_ok = 0.0, 0, 0, 0

    def add(self, logits: Tensor, target: Tensor) -> Tensor:
        """Count one chunk: ``logits`` (B, T, C), ``target`` (B, T). Returns the mask of real target tokens."""
        mask = target != IGNORE
        hit = (logits.argmax(-1) == target) & mask
        self.loss_sum += F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                                         reduction="sum").item()
        self.correct += int(hit.sum())
        self.tokens += int(mask.sum())
        self.seq_ok += int((hit | ~mask).all(1).sum())
        return mask


class AttentionGramTask:
    """Base of the transformer workloads: the author's Gram group is every attention weight (W_Q, W_K, W_V, W_O)."""

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        return attention_weight_names(model)
