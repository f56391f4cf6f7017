"""Optimisers of a run: AdamW (default), SGD, and Muon with AdamW for the parameters Muon is not meant for.

* ``adamw``: ``torch.optim.AdamW`` over every parameter (decoupled weight decay on all of them, as the author's
  ``grok_sweep.py``).
* ``adam``: ``torch.optim.Adam`` (``weight_decay`` is the coupled L2 term ηθ added to the gradient before the
  moments, as Tian's Li₂ setup; ``theory.li2``).
* ``sgd``: ``torch.optim.SGD`` (momentum ``config.momentum`` or 0; ``weight_decay`` is PyTorch's L2 term in the
  gradient, not decoupled).
* ``muon``: ``torch.optim.Muon`` (Newton–Schulz orthogonalised momentum; Jordan et al. 2024) on the weights of
  ``nn.Linear`` layers (2-D hidden matrices), AdamW on the rest: embeddings (also when tied to an output layer),
  learned positions, biases, norms, and output heads (names matching ``config.muon_exclude``, default ``*head*``).
  This is the split the ``torch.optim.Muon`` documentation and the Muon authors prescribe ("embeddings, the
  classifier head and scalar/vector parameters should be optimized by a standard method such as AdamW"). With
  ``muon_adjust_lr="match_rms_adamw"`` (default; Liu et al. 2025, "Muon is Scalable for LLM Training") Muon reuses
  AdamW's lr and weight decay, so ``adamw`` and ``muon`` runs at the same ``lr``/``weight_decay`` are matched.

Every optimiser is one ``torch.optim.Optimizer`` object: step hooks (the spectral monitor), ``zero_grad`` and
``state_dict``/``load_state_dict`` (checkpoints) work the same for all three. A task may define
``no_decay_names(model)`` (e.g. biases and norms, as nanoGPT): those parameters get weight decay 0 (AdamW, SGD and the
AdamW part of muon); without it every parameter is decayed, as the author's scripts do.

The learning-rate schedule (``warmup_steps``, ``lr_decay``) is a pure function of the step (:func:`lr_factor`, as
nanoGPT's ``get_lr``), applied before each step: nothing to checkpoint, so a resumed run has the same schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

import torch
from torch import Tensor, nn

from verify.harness.config import RunConfig

__all__ = ["Muon", "MuonAdamW", "build_optimizer", "lr_factor", "muon_split", "newton_schulz", "set_lr"]


def muon_split(model: nn.Module, exclude: list[str]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(matrices for Muon, the rest for AdamW): nn.Linear weights that are no nn.Embedding's weight and match no
    ``exclude`` pattern go to Muon. Each trainable parameter appears once (tied weights are deduplicated)."""
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    matrices, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_hidden_matrix = (p.ndim == 2 and id(p) in linear and id(p) not in embedding
                            and not any(fnmatch(name, pat) for pat in exclude))
        (matrices if is_hidden_matrix else rest).append(p)
    return matrices, rest


def newton_schulz(update: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype) -> Tensor:
    """The quintic Newton–Schulz iteration X ← aX + (bA + cA²)X, A = XXᵀ, from X = U/‖U‖_F (wide side first), in
    ``dtype``: ≈ U S' Vᵀ with S'_ii ∈ (0.5, 1.5) for U = U S Vᵀ (Jordan et al. 2024). With ``torch.bfloat16`` this is
    ``torch.optim.Muon``'s own iteration, operation for operation (tested bitwise)."""
    a, b, c = coefficients
    x = update.to(dtype)
    tall = update.size(0) > update.size(1)
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` whose Newton–Schulz iteration runs in float32 on the CPU and in bfloat16 elsewhere.

    torch's iteration always casts to bfloat16, which a GPU multiplies at full speed but the CPU does not: on the
    4-layer d-192 GPT-2 (``cpu4``) it made a step 3.3× an AdamW step (5.5 s against 1.7 s). float32 is the more
    exact of the two; everything else (Nesterov momentum, the lr adjustment, decoupled weight decay, the state
    keys) is torch's; with ``ns_dtype = torch.bfloat16`` the step equals torch's bit for bit (tested)."""

    ns_dtype: torch.dtype = torch.float32

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.device.type != "cpu":
                    raise ValueError("verify.harness.optim.Muon steps CPU parameters; use torch.optim.Muon elsewhere")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"],
                                       self.ns_dtype)
                lr = float(group["lr"])
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-_adjusted_lr(lr, group["adjust_lr_fn"], p.shape))
        return loss


def _adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """torch.optim.Muon's per-matrix lr: lr·√max(1, A/B) (original) or lr·0.2·√max(A, B) (match_rms_adamw)."""
    rows, cols = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr


class MuonAdamW(torch.optim.Optimizer):
    """Muon on ``matrices`` (``torch.optim.Muon``; on the CPU :class:`Muon`, its float32 Newton–Schulz twin) and
    ``torch.optim.AdamW`` on ``rest``, stepped together as one optimizer.

    ``param_groups`` are the parts' own group dicts (an LR scheduler changes both); ``state_dict`` holds both parts.
    """

    def __init__(self, matrices: list[nn.Parameter], rest: list[nn.Parameter] | list[dict[str, Any]], *,
                 muon: dict[str, Any], adamw: dict[str, Any]) -> None:
        self.parts: list[torch.optim.Optimizer] = []
        if matrices:
            on_cpu = all(p.device.type == "cpu" for p in matrices)
            self.parts.append((Muon if on_cpu else torch.optim.Muon)(matrices, **muon))
        if rest:
            self.parts.append(torch.optim.AdamW(rest, **adamw))
        super().__init__([p for part in self.parts for g in part.param_groups for p in g["params"]], {})
        self.param_groups = [g for part in self.parts for g in part.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        parts = state_dict.get("parts")
        if not isinstance(parts, list) or len(parts) != len(self.parts):
            raise ValueError(f"optimizer state has {len(parts or [])} parts, this MuonAdamW has {len(self.parts)}")
        for part, state in zip(self.parts, parts, strict=True):
            part.load_state_dict(state)


def _groups(params: list[nn.Parameter], no_decay: set[int]) -> list[nn.Parameter] | list[dict[str, Any]]:
    """Parameters as they are, or two groups when some get no weight decay."""
    if not no_decay & {id(p) for p in params}:
        return params
    groups = [{"params": [p for p in params if id(p) not in no_decay]},
              {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: RunConfig, no_decay: list[str] | None = None) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` over ``model``'s trainable parameters (see the module docstring); parameters
    named in ``no_decay`` get weight decay 0. Each group remembers its configured lr as ``initial_lr``."""
    params = [p for p in model.parameters() if p.requires_grad]
    named = dict(model.named_parameters())
    skip = {id(named[n]) for n in no_decay or []}
    adamw = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    opt: torch.optim.Optimizer
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(_groups(params, skip), **adamw)
    elif cfg.optimizer == "adam":  # weight decay as an L2 term in the gradient (Tian's Li2 setup)
        opt = torch.optim.Adam(_groups(params, skip), **adamw)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(_groups(params, skip), lr=cfg.lr, momentum=cfg.momentum or 0.0,
                              weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "muon":
        matrices, rest = muon_split(model, cfg.muon_exclude)
        muon = dict(lr=cfg.muon_lr or cfg.lr, weight_decay=cfg.weight_decay,
                    momentum=0.95 if cfg.momentum is None else cfg.momentum, adjust_lr_fn=cfg.muon_adjust_lr)
        opt = MuonAdamW(matrices, _groups(rest, skip), muon=muon, adamw=adamw)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adamw, adam, sgd or muon")
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


def lr_factor(cfg: RunConfig, step: int) -> float:
    """lr multiplier for the update from ``step`` to ``step + 1``: linear warmup over ``warmup_steps``, then constant
    or cosine down to ``min_lr_frac`` at ``max_steps`` (nanoGPT ``get_lr``)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_decay == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_frac + (1.0 - cfg.min_lr_frac) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, cfg: RunConfig, step: int) -> None:
    """Set every group's lr to ``initial_lr × lr_factor`` (a no-op for the constant schedule without warmup)."""
    if cfg.warmup_steps == 0 and cfg.lr_decay == "constant":
        return
    factor = lr_factor(cfg, step)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
