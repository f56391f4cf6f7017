"""Ensemble sweeps: the seeds × weight decays of ONE run config trained as one vmapped model.

A sweep of a small model (mod-97: 290,401 parameters) spends much of each step outside the arithmetic, once per run
and per parameter tensor. Here the M members' parameters are stacked along a leading axis
(``torch.func.stack_module_state``) and one ``vmap(grad_and_value(loss))`` over ``functional_call`` computes every
member's loss and gradient; AdamW, clipping and the spectral monitor then run on (M, ...) tensors.

**Members keep the single run's semantics** (``verify.harness.loop.train`` with ``runner.spectral_monitor_factory``).
Member m is the config ``sweep.conditions(base, seeds, weight_decays)[m]`` and draws everything from its own
streams exactly as ``train`` does: its data split (``generator("data")``), its initialisation (``generator("init")``,
the task's ``build_model``), its batch order (``generator("batch")`` through the task's ``sample_batch``). Per step
and member, in ``train``'s order:

- loss and gradient of the member's batch (a non-finite loss ends that member, as ``train`` raises);
- gradient clipping by the member's own global norm: g ← g · min(1, c / (‖g‖₂ + 10⁻⁶)), ‖g‖₂ over all its
  parameters (``torch.nn.utils.clip_grad_norm_``);
- the lr schedule ``optim.lr_factor`` (η_t), then AdamW with the member's weight decay ω_m, decoupled as
  ``torch.optim.AdamW``: θ ← θ(1 − η_t ω_m), m ← β₁m + (1 − β₁)g (``lerp``), v ← β₂v + (1 − β₂)g²,
  θ ← θ − η_t/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε), with the ops of torch's single-tensor AdamW (parameters the task
  names in ``no_decay_names`` get ω = 0);
- eval at ``eval_every`` and at the last step (whole splits, the task's accuracy and mean cross-entropy), grokking
  step and early stop per member.

**Early stop.** A member that stops (early stop, or a non-finite loss or update) *leaves the batch*: its rows are
sliced out of every stacked tensor, so it costs nothing afterwards and the others go on unchanged; its trajectory
gets its final eval and ``end`` record at its own step, as its single run's.

**The spectral monitor, batched.** Every Δs = ``monitor.every`` steps all members' θ are gathered into one (M, P)
snapshot in the single-run monitor's layout (``numerics.layout.ParamLayout`` of the configured groups), δ = θ_now −
θ_prev is pushed into one (M, W, P) ring buffer, and the new Gram row of each member, G_ab = ⟨δ_a, δ_b⟩, comes
from one batched product per atom (``torch.bmm``, dots accumulated in the storage dtype, atoms summed into groups in
float64, as ``numerics.gram.RollingGram``). The records are built from each member's W×W Gram (and the
(W+1)×(W+1) extended Gram once the window is full) by the spectrum code of ``numerics.spectrum`` /
``numerics.stability`` (``GramEigh``, ``ConsecutiveWindows``, ``stability.alpha``), field for field what
``numerics.monitor.SpectralMonitor`` writes. Each member writes ``{out_dir}/{run_name}.jsonl`` with the single run's
header (provenance of its config, seeds, ``config_sha`` and optimiser; the monitor's meta), so
``verify.store.load_run`` reads it as a single run; the provenance also names the ensemble (``ensemble``).

**Equality with single runs** (``tests/test_ensemble.py``): data splits, initial parameters and batch indices are
bitwise those of the single runs. The batched products (``bmm`` for the members' matmuls and Gram dots, dim-wise
reductions for the losses and clip norms) may add float32 sums in another order than the single run's ``mm`` /
``mv`` / full reductions, so losses, gradients and hence parameters agree to float32 rounding (relative ~10⁻⁶,
growing slowly with the steps), not bitwise; accuracies (counts over a split) and k* agree exactly unless a
prediction or an eigenvalue ratio sits on a tie. Attention runs PyTorch's math SDPA kernel under ``vmap`` (the
fused CPU kernel has no batching rule; the two differ by float32 rounding).

**Not supported in ensemble mode** (refused by :func:`check_members` with the names): the study measurements
(``defect``, ``probes``, ``backbone``, ``lch``, ... any registered section switched on), checkpoints / resume,
optimisers other than AdamW, ``bfloat16`` monitor storage, and tasks without a batched evaluation
(``BATCHED_EVAL``: those whose ``evaluate`` is accuracy + mean cross-entropy of ``model(x)`` on ``data[split] = (x,
y)``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from numerics.errors import SpectralEdgeError
from numerics.layout import ParamLayout
from numerics.monitor import DEFAULT_ALPHAS, spectrum_record
from numerics.provenance import merge_provenance, provenance, run_provenance
from numerics.spectrum import GramEigh
from numerics.trajectory import TrajectoryWriter, compress_trajectory
from verify.harness.checkpoint import config_diff
from verify.harness.config import RunConfig, config_sha
from verify.harness.intervention import intervention_names
from verify.harness.loop import History, RunResult, run_label
from verify.harness.measurement import measurement_names
from verify.harness.optim import build_optimizer, lr_factor
from verify.harness.runner import check_device, monitor_groups, run_lock
from verify.harness.sweep import conditions
from verify.tasks import get_task
from verify.tasks.base import to_device

__all__ = ["BATCHED_EVAL", "BatchedRollingGram", "MemberResult", "check_members", "train_ensemble", "train_members"]

#: Rows of a split × members per batched eval forward, a bound on its activations (mod-97: 13 members of ~4,705 rows).
EVAL_ROWS = 65_536

#: Fields in which the members of one ensemble may differ: the seeds and the weight decay (everything else is one
#: model, one schedule, one monitor).
MEMBER_FIELDS = ("data_seed", "init_seed", "batch_seed", "diag_seed", "weight_decay")


def _cross_entropy_metrics(logits: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per member: ``acc`` = mean of argmax == y and ``loss`` = mean cross-entropy over the split (logits (M, N, C),
    y (M, N)); what ``verify.tasks.common.split_metrics(..., F.cross_entropy)`` returns for one member."""
    acc = (logits.argmax(-1) == y).float().mean(-1)
    loss = vmap(F.cross_entropy)(logits, y)
    return {"acc": acc, "loss": loss}


#: task name → batched metrics of ``model(x)`` on a split ``(x, y)``: the tasks ensemble mode can evaluate.
BATCHED_EVAL: dict[str, Callable[[Tensor, Tensor], dict[str, Tensor]]] = {"modular": _cross_entropy_metrics}


@dataclass
class MemberResult(RunResult):
    """A member's :class:`~verify.harness.loop.RunResult` plus its trajectory ``path`` and ``error`` (None, or why it
    ended early: a non-finite loss or update, which a single run raises). ``wall_s`` is the ensemble's wall time
    until this member ended (the members share it)."""

    path: Path | None = None
    error: str | None = None


# --- validation --------------------------------------------------------------------------------------------------


def check_members(configs: Sequence[RunConfig]) -> None:
    """Raise ``SpectralEdgeError`` unless ``configs`` can train as one ensemble: at least one member; every config
    equal to the first except in ``MEMBER_FIELDS``; AdamW; no study measurement, checkpoint or bfloat16 monitor
    storage; a task with a batched evaluation; distinct run names (one trajectory file each)."""
    if len(configs) == 0:
        raise SpectralEdgeError("an ensemble needs at least one member (M = 0): pass at least one seed and one "
                                "weight decay")
    first = configs[0]
    ref = {k: v for k, v in first.model_dump(mode="json").items() if k not in MEMBER_FIELDS}
    for i, cfg in enumerate(configs[1:], start=1):
        other = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in MEMBER_FIELDS}
        diff = config_diff(ref, other, labels=("member 0", f"member {i}"))
        if diff:
            raise SpectralEdgeError(f"ensemble members may differ only in {', '.join(MEMBER_FIELDS)}; member {i} "
                                    f"differs from member 0 in: {'; '.join(diff)}")
    measurements = [name for name in measurement_names() if first.section(name).every]
    if measurements:
        raise SpectralEdgeError(f"measurements {measurements} are not supported in ensemble mode (only the spectral "
                                "monitor is): switch them off (every = 0) or train these runs one by one")
    interventions = [name for name in intervention_names() if first.section(name).enabled]
    if interventions:
        raise SpectralEdgeError(f"interventions {interventions} are not supported in ensemble mode: switch them off "
                                "(enabled = false) or train these runs one by one")
    if first.optimizer != "adamw":
        raise SpectralEdgeError(f"ensemble mode implements AdamW only; this config has optimizer "
                                f"{first.optimizer!r}")
    if first.checkpoint_every:
        raise SpectralEdgeError("checkpoints (checkpoint_every) are not supported in ensemble mode: an ensemble "
                                "runs start to end; set checkpoint_every = 0")
    if first.monitor.storage_dtype == "bfloat16":
        raise SpectralEdgeError("monitor.storage_dtype 'bfloat16' is not supported in ensemble mode; use float32 "
                                "or float64")
    if first.task not in BATCHED_EVAL:
        raise SpectralEdgeError(f"task {first.task!r} has no batched evaluation for ensemble mode; supported: "
                                f"{sorted(BATCHED_EVAL)}")
    names = [run_label(c) for c in configs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise SpectralEdgeError(f"ensemble members share run names {clashes} (a repeated seed or weight decay?): "
                                "each member needs its own trajectory file")


# --- the batched rolling Gram ------------------------------------------------------------------------------------


class BatchedRollingGram:
    """The rolling windows of M members at once: the last W updates of each in an (M, W, P) ring buffer and, per
    member and group, the W×W Gram G = X Xᵀ in float64 (``numerics.gram.RollingGram`` for one member; all members
    push together, so they share the ring position).

    ``push(δ)`` (δ: (M, P)) computes, per atom [s, e), the dots of δ with every stored row (the oldest included,
    which gives the extended Gram) by ``bmm`` and ⟨δ, δ⟩, sums atoms into groups in float64 and returns the
    members whose dots are not all finite (their windows are left unchanged; the caller drops them).
    """

    def __init__(self, n_members: int, window: int, layout: ParamLayout, *, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.W = int(window)
        self.slices = layout.atom_slices
        self.group_names = list(layout.groups)
        membership = np.zeros((len(self.group_names), len(self.slices)))
        for gi, g in enumerate(self.group_names):
            membership[gi, layout.groups[g]] = 1.0
        self._membership = torch.as_tensor(membership, dtype=torch.float64, device=device)
        self.dtype = dtype
        self.X = torch.zeros((n_members, self.W, layout.P), dtype=dtype, device=device)  # zero rows: exact 0 dots
        self.G = np.zeros((n_members, len(self.group_names), self.W, self.W))  # slot order
        self.G_ext: np.ndarray | None = None  # (M, n_groups, W+1, W+1), time order, after a push that evicted
        self.head = 0
        self.n_pushed = 0

    @property
    def w(self) -> int:
        """Current window length min(W, pushes) (adaptive start)."""
        return min(self.W, self.n_pushed)

    def time_order(self) -> list[int]:
        """Slot indices oldest → newest."""
        if self.n_pushed < self.W:
            return list(range(self.n_pushed))
        return [(self.head + i) % self.W for i in range(self.W)]

    @torch.no_grad()
    def push(self, delta: Tensor) -> np.ndarray:
        """Append δ (M, P) to every member's window; returns the indices of the members whose dots are not finite
        (NaN/Inf in δ or an overflow; nothing was stored for any member then, so the caller drops those members
        with :meth:`keep` and pushes the others again)."""
        M, W = delta.shape[0], self.W
        atom_dots = torch.empty((M, len(self.slices), W + 1), dtype=self.dtype, device=delta.device)
        for a, (s, e) in enumerate(self.slices):
            d = delta[:, s:e].unsqueeze(-1)  # (M, n, 1)
            atom_dots[:, a, :W] = torch.bmm(self.X[:, :, s:e], d).squeeze(-1)
            atom_dots[:, a, W] = torch.bmm(d.transpose(1, 2), d).reshape(M)
        dots = torch.matmul(self._membership, atom_dots.to(torch.float64)).cpu().numpy()  # (M, n_groups, W+1)
        bad = np.flatnonzero(~np.isfinite(dots).all(axis=(1, 2)))
        if bad.size:
            return bad
        slot, order = self.head, self.time_order()
        evicting = self.n_pushed >= W
        if evicting:  # [δ_{t−W}, …, δ_{t−1}, δ_t]: the old window bordered by the new dots
            ext = np.empty((M, len(self.group_names), W + 1, W + 1))
            ext[:, :, :W, :W] = self.G[:, :, order][:, :, :, order]
            ext[:, :, :W, W] = dots[:, :, order]
            ext[:, :, W, :W] = dots[:, :, order]
            ext[:, :, W, W] = dots[:, :, W]
            self.G_ext = ext
        else:
            self.G_ext = None
        self.G[:, :, slot, :] = dots[:, :, :W]
        self.G[:, :, :, slot] = dots[:, :, :W]
        self.G[:, :, slot, slot] = dots[:, :, W]
        self.X[:, slot].copy_(delta)
        self.head = (slot + 1) % W
        self.n_pushed += 1
        return bad

    def gram(self, member: int, group: int) -> np.ndarray:
        """Member ``member``'s w×w Gram of group index ``group``, time order (``RollingGram.gram``)."""
        order = self.time_order()
        return self.G[member, group][np.ix_(order, order)].copy()

    def extended_gram(self, member: int, group: int) -> np.ndarray | None:
        """The (W+1)×(W+1) extended Gram when the last push evicted a row, else None (``RollingGram``)."""
        return None if self.G_ext is None else self.G_ext[member, group].copy()

    def keep(self, index: Tensor) -> None:
        """Keep only the members ``index`` (positions), in that order."""
        self.X = self.X[index.to(self.X.device)]
        rows = index.cpu().numpy()
        self.G = self.G[rows]
        if self.G_ext is not None:
            self.G_ext = self.G_ext[rows]


# --- members -----------------------------------------------------------------------------------------------------


@dataclass
class _Member:
    """What one member holds outside the stacked tensors."""

    cfg: RunConfig
    data: dict[str, Any]
    batch_gen: torch.Generator
    model: nn.Module  # built from the member's init stream; receives the final parameters
    path: Path
    writer: TrajectoryWriter | None = None
    history: History = field(default_factory=History)
    grok_step: int | None = None
    streak: int = 0
    step: int = 0
    wall_s: float = 0.0
    error: str | None = None
    eigh_last: dict[str, GramEigh] = field(default_factory=dict)


def _header(member: _Member, optimizer: torch.optim.Optimizer, layout: ParamLayout, device: torch.device,
            ensemble: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(provenance, meta) of the member's trajectory header: what ``runner.spectral_monitor_factory`` and
    ``SpectralMonitor`` write for its single run, plus ``provenance.ensemble``."""
    cfg = member.cfg
    seeds = {k: getattr(cfg, k) for k in ("data_seed", "init_seed", "batch_seed", "diag_seed")}
    user = {**provenance(cfg.model_dump(mode="json"), seeds, device), "config_sha": config_sha(cfg),
            "ensemble": ensemble}
    storage = cfg.monitor.storage_dtype
    meta = {
        "window": cfg.monitor.window,
        "every": cfg.monitor.every,
        "kstar": cfg.monitor.kstar,
        "groups": {g: {"P": d, "params": layout.param_names(g)} for g, d in layout.group_dims().items()},
        "storage_dtype": storage,
        "sketch_dim": None,
        "sketch_seed": None,
        "capture_point": "optimizer step post-hook (after the update incl. decoupled weight decay)",
        "task": cfg.task, "grok_threshold": cfg.grok_threshold, "optimizer": cfg.optimizer, "streams": cfg.streams,
    }
    return merge_provenance(run_provenance(optimizer, device), user), meta


def _stack_batches(batches: Sequence[Any]) -> Any:
    """One batch of M members' batches: tensors stacked on a new leading axis, tuples/lists/dicts recursed."""
    first = batches[0]
    if isinstance(first, Tensor):
        return torch.stack(batches)
    if isinstance(first, Mapping):
        return {k: _stack_batches([b[k] for b in batches]) for k in first}
    if isinstance(first, tuple | list):
        return type(first)(_stack_batches([b[i] for b in batches]) for i in range(len(first)))
    raise SpectralEdgeError(f"cannot stack batches of type {type(first).__name__} for ensemble mode")


class _Bound:
    """``model(x)`` of the skeleton with given parameters (what a task's ``loss(model, batch)`` calls)."""

    def __init__(self, skeleton: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor]) -> None:
        self.skeleton, self.state = skeleton, (params, buffers)

    def __call__(self, *args: Any) -> Tensor:
        return functional_call(self.skeleton, self.state, args)


# --- the ensemble ------------------------------------------------------------------------------------------------


class _Ensemble:
    """The stacked state of the active members: parameters, AdamW moments, snapshot, windows, stacked data."""

    def __init__(self, members: list[_Member], device: torch.device) -> None:
        cfg = members[0].cfg
        self.cfg, self.device, self.members = cfg, device, list(members)
        self.task = get_task(cfg.task)
        models = [m.model for m in members]
        params, buffers = stack_module_state(models)  # type: ignore[arg-type]
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.skeleton = copy.deepcopy(models[0]).to("meta")
        no_decay = set(self.task.no_decay_names(models[0]) if hasattr(self.task, "no_decay_names") else [])
        self.decayed = [k for k in self.params if k not in no_decay]
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.wd = torch.tensor([m.cfg.weight_decay for m in members], dtype=torch.float64)
        self.splits = {s: to_device(_stack_batches([m.data[s] for m in members]), device) for s in ("train", "test")}
        # the monitor: the single run's layout (groups of the first member's model; every member's is the same)
        layout = ParamLayout.from_model(models[0], monitor_groups(models[0], cfg.monitor.groups, cfg.task))
        self.layout, self.group_P = layout, layout.group_dims()
        self.offsets: list[tuple[str, int, int]] = []  # (parameter, start, end) in the flat vector
        sizes = dict(models[0].named_parameters())
        for atom in layout.atoms:
            start = atom.start
            for name in atom.names:
                self.offsets.append((name, start, start + sizes[name].numel()))
                start += sizes[name].numel()
        storage = getattr(torch, cfg.monitor.storage_dtype)
        snap = torch.float64 if storage == torch.float64 or any(p.dtype == torch.float64 for p in params.values()) \
            else torch.float32
        self.prev = torch.empty((len(members), layout.P), dtype=snap, device=device)
        self._gather(self.prev)
        self.gram = BatchedRollingGram(len(members), cfg.monitor.window, layout, dtype=storage, device=device)
        self._grad = vmap(grad_and_value(self._loss))
        self._forward = vmap(lambda p, b, x: functional_call(self.skeleton, (p, b), (x,)))

    def _loss(self, params: dict[str, Tensor], buffers: dict[str, Tensor], batch: Any) -> Tensor:
        return self.task.loss(_Bound(self.skeleton, params, buffers), batch)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return len(self.members)

    @torch.no_grad()
    def _gather(self, out: Tensor) -> None:
        """θ of every member into the rows of ``out`` (M, P), in the monitor layout's order."""
        for name, s, e in self.offsets:
            out[:, s:e].copy_(self.params[name].reshape(self.size, -1))

    def keep(self, positions: Sequence[int]) -> None:
        """Keep only the members at ``positions`` (the rest leave the batch)."""
        index = torch.as_tensor(list(positions), dtype=torch.long)
        dev = index.to(self.device)
        for d in (self.params, self.buffers, self.exp_avg, self.exp_avg_sq):
            for k in d:
                d[k] = d[k][dev]
        self.splits = {s: _take(v, dev) for s, v in self.splits.items()}
        self.wd = self.wd[index]
        self.prev = self.prev[dev]
        self.gram.keep(index)
        self.members = [self.members[i] for i in positions]

    # -- one step ------------------------------------------------------------------------------------------------
    def gradients(self) -> tuple[dict[str, Tensor], list[float]]:
        """Each member's batch from its own stream (``task.sample_batch``), then every loss and gradient at once."""
        batches = [self.task.sample_batch(m.data, self.cfg.batch_size, m.batch_gen) for m in self.members]
        batch = to_device(_stack_batches(batches), self.device)
        with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention kernel has no vmap batching rule
            grads, losses = self._grad(self.params, self.buffers, batch)
        return grads, losses.tolist()

    @torch.no_grad()
    def clip(self, grads: dict[str, Tensor]) -> None:
        """g ← g · min(1, c/(‖g‖ + 1e-6)) with ‖g‖ each member's global norm (``clip_grad_norm_``)."""
        if self.cfg.grad_clip is None:
            return
        M = self.size
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(M, -1), dim=1) for g in grads.values()], dim=1)
        total = torch.linalg.vector_norm(norms, dim=1)
        coef = torch.clamp(self.cfg.grad_clip / (total + 1e-6), max=1.0)
        for g in grads.values():
            g.mul_(coef.view(M, *([1] * (g.dim() - 1))))

    @torch.no_grad()
    def adamw(self, grads: dict[str, Tensor], lr: float, step: int) -> None:
        """One AdamW step (module docstring) with per-member decoupled weight decay, ``step`` the new step count."""
        cfg, M = self.cfg, self.size
        beta1, beta2 = cfg.betas
        if self.decayed and bool((self.wd != 0).any()):
            factor = (1 - lr * self.wd).to(self.device)  # 1 − η ω_m in double, as AdamW's Python float
            for k in self.decayed:
                p = self.params[k]
                p.mul_(factor.to(p.dtype).view(M, *([1] * (p.dim() - 1))))
        keys = list(self.params)
        params = [self.params[k] for k in keys]
        g = [grads[k] for k in keys]
        m1, m2 = [self.exp_avg[k] for k in keys], [self.exp_avg_sq[k] for k in keys]
        torch._foreach_lerp_(m1, g, 1 - beta1)
        torch._foreach_mul_(m2, beta2)
        torch._foreach_addcmul_(m2, g, g, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** float(step)
        bias_correction2 = 1 - beta2 ** float(step)
        step_size = lr / bias_correction1
        denom = torch._foreach_sqrt(m2)
        torch._foreach_div_(denom, bias_correction2**0.5)
        torch._foreach_add_(denom, cfg.eps)
        torch._foreach_addcdiv_(params, m1, denom, value=-step_size)

    # -- measurement ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Every member's ``{train,test}_{acc,loss}`` on the whole splits (``task.evaluate``'s metrics)."""
        metric = BATCHED_EVAL[self.cfg.task]
        out: list[dict[str, float]] = [{} for _ in self.members]
        with sdpa_kernel(SDPBackend.MATH):
            for split in ("train", "test"):
                x, y = self.splits[split]
                chunk = max(1, EVAL_ROWS // max(1, x.shape[1]))  # members per forward: bounded activations
                for a in range(0, self.size, chunk):
                    part = slice(a, a + chunk)
                    params = {k: v[part] for k, v in self.params.items()}
                    buffers = {k: v[part] for k, v in self.buffers.items()}
                    values = metric(self._forward(params, buffers, x[part]), y[part])
                    for k, v in values.items():
                        for i, value in enumerate(v.tolist(), start=a):
                            out[i][f"{split}_{k}"] = float(value)
        return out  # keys in the single run's order: train_acc, train_loss, test_acc, test_loss

    @torch.no_grad()
    def capture(self) -> tuple[list[int], list[tuple[int, str, dict[str, Any]]]]:
        """Snapshot, δ = θ_now − θ_prev, push: (positions of members whose update is not finite, [(position,
        group, record)] of the others once w ≥ 2). The caller drops the failed members; their windows and
        snapshots are discarded with them."""
        cur = torch.empty_like(self.prev)
        self._gather(cur)
        delta = cur - self.prev
        storage = self.gram.dtype
        bad = self.gram.push(delta if delta.dtype == storage else delta.to(storage))
        if bad.size:
            return bad.tolist(), []
        self.prev = cur
        w = self.gram.w
        records: list[tuple[int, str, dict[str, Any]]] = []
        if w < 2:
            return [], records
        cfg = self.cfg.monitor
        for i, member in enumerate(self.members):
            for gi, group in enumerate(self.gram.group_names):
                rec = spectrum_record(group, w, self.gram.gram(i, gi), self.gram.extended_gram(i, gi),
                                      P=self.group_P[group], kstar=cfg.kstar, alphas=DEFAULT_ALPHAS,
                                      eigh_last=member.eigh_last)
                records.append((i, group, rec))
        return [], records

    def write_back(self, positions: Sequence[int]) -> None:
        """Copy the stacked parameters and buffers of the members at ``positions`` into their own ``model``."""
        with torch.no_grad():
            for i in positions:
                m = self.members[i]
                for name, p in m.model.named_parameters():
                    p.copy_(self.params[name][i])
                for name, b in m.model.named_buffers():
                    if name in self.buffers:
                        b.copy_(self.buffers[name][i])


def _take(batch: Any, index: Tensor) -> Any:
    if isinstance(batch, Tensor):
        return batch[index]
    if isinstance(batch, Mapping):
        return {k: _take(v, index) for k, v in batch.items()}
    return type(batch)(_take(v, index) for v in batch)


# --- the loop ----------------------------------------------------------------------------------------------------


def train_ensemble(base_cfg: RunConfig, seeds: Sequence[int], weight_decays: Sequence[float],
                   out_dir: str | Path, **kwargs: Any) -> list[MemberResult]:
    """Train the members ``sweep.conditions(base_cfg, seeds, weight_decays)`` (weight decay outer, seed inner; all
    four seeds of a member equal its seed, ``RunConfig.with_seed``) as one ensemble; see :func:`train_members`."""
    if len(seeds) == 0 or len(weight_decays) == 0:
        raise SpectralEdgeError(f"an ensemble needs at least one member (M = 0): got {len(seeds)} seeds and "
                                f"{len(weight_decays)} weight decays")
    return train_members(conditions(base_cfg, seeds, weight_decays), out_dir, **kwargs)


def train_members(configs: Sequence[RunConfig], out_dir: str | Path, *, device: str | torch.device = "cpu",
                  progress: bool = False, overwrite: bool = False, archive: bool = False) -> list[MemberResult]:
    """Train ``configs`` (equal but for seeds and weight decay, :func:`check_members`) as one vmapped ensemble;
    member m writes ``out_dir/{run_name}.jsonl`` (``archive``: compressed to ``.jsonl.gz`` when it finished), holding
    its ``NAME.lock`` throughout. An existing file is an error unless ``overwrite`` (it is replaced). Returns one
    :class:`MemberResult` per config, in order; a member ended by a non-finite loss or update has ``error`` set and
    an ``interrupted`` record before its ``end`` (its single run would raise), and the others go on."""
    configs = list(configs)
    check_members(configs)
    dev = check_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{run_label(c)}.jsonl" for c in configs]
    with contextlib.ExitStack() as stack:
        for p in paths:
            stack.enter_context(run_lock(p))
        for p in paths:
            if p.exists():
                if not overwrite:
                    raise FileExistsError(f"{p} exists; pass overwrite=True to replace it (ensemble mode does not "
                                          "resume)")
                p.unlink()
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            results = _run(configs, paths, dev, progress)
        if archive:  # still holding the locks: nobody reads a file half-moved
            for r in results:
                if r.error is None and r.path is not None:
                    r.path = compress_trajectory(r.path)
    return results


def _build_member(cfg: RunConfig, path: Path, device: torch.device) -> tuple[_Member, torch.optim.Optimizer]:
    """Data, model and batch stream of one member, drawn as ``loop._build`` draws them, and the optimizer its single
    run would build (described in the header; never stepped)."""
    task = get_task(cfg.task)
    data = task.make_data(cfg.task_config, cfg.generator("data"))
    model = task.build_model(cfg.task_config, cfg.generator("init"), device)
    no_decay = task.no_decay_names(model) if hasattr(task, "no_decay_names") else None
    optimizer = build_optimizer(model, cfg, no_decay)
    return _Member(cfg, data, cfg.generator("batch"), model, path), optimizer


def _run(configs: list[RunConfig], paths: list[Path], device: torch.device, progress: bool) -> list[MemberResult]:
    t0 = time.perf_counter()
    built = [_build_member(c, p, device) for c, p in zip(configs, paths, strict=True)]
    members = [m for m, _ in built]
    ens = _Ensemble(members, device)
    ensemble_info = {"size": len(members), "seeds": [c.init_seed for c in configs],
                     "weight_decays": [c.weight_decay for c in configs]}
    cfg = configs[0]
    constant_lr = cfg.warmup_steps == 0 and cfg.lr_decay == "constant"
    bar = tqdm(total=cfg.max_steps, disable=not progress, desc=f"ensemble of {len(members)}")
    step = 0
    try:
        for i, (m, opt) in enumerate(built):
            prov, meta = _header(m, opt, ens.layout, device, {**ensemble_info, "member": i})
            m.writer = TrajectoryWriter(m.path, provenance=prov, meta=meta)
        while ens.size:
            _measure(ens, step, t0)
            if not ens.size:
                break
            grads, losses = ens.gradients()
            bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
            if bad:
                _fail(ens, bad, step, [f"FloatingPointError: non-finite training loss {losses[i]} at step {step}"
                                       for i in bad], t0)
                if not ens.size:
                    break
                keep = [i for i in range(len(losses)) if i not in bad]
                index = torch.as_tensor(keep, device=device)
                grads = {k: v[index] for k, v in grads.items()}
            ens.clip(grads)
            lr = cfg.lr if constant_lr else cfg.lr * lr_factor(cfg, step)
            step += 1
            ens.adamw(grads, lr, step)
            for m in ens.members:
                m.step = step
            if step % cfg.monitor.every == 0:
                _capture(ens, step, t0)
            bar.update(1)
    except BaseException as exc:
        for m in ens.members:
            if m.writer is not None:
                m.writer.write("interrupted", m.step, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
        for m in members:
            _close(m)
    return [MemberResult(config=m.cfg, history=m.history, grok_step=m.grok_step, final_step=m.step, wall_s=m.wall_s,
                         n_params=sum(p.numel() for p in m.model.parameters()), model=m.model, path=m.path,
                         error=m.error) for m in members]


def _close(m: _Member) -> None:
    """The member's ``end`` record (at its own step) and the file closed, as ``SpectralMonitor.close``."""
    if m.writer is not None:
        m.writer.write("end", m.step)
        m.writer.close()
        m.writer = None


def _capture(ens: _Ensemble, step: int, t0: float) -> None:
    """The monitor's capture at ``step`` for every active member; members with a non-finite update end."""
    while ens.size:
        bad, records = ens.capture()
        if not bad:
            for i, _group, rec in records:
                ens.members[i].writer.write("spectrum", step, **rec)  # type: ignore[union-attr]
            return
        _fail(ens, bad, step, [f"NonFiniteUpdateError: the update at step {step} has NaN/Inf entries (or its dots "
                               "overflow)"] * len(bad), t0)


def _fail(ens: _Ensemble, positions: list[int], step: int, errors: list[str], t0: float) -> None:
    """End the members at ``positions`` with an error (``interrupted`` record), as their single runs would raise."""
    ens.write_back(positions)
    for i, err in zip(positions, errors, strict=True):
        m = ens.members[i]
        m.error, m.step, m.wall_s = err, step, time.perf_counter() - t0
        warnings.warn(f"ensemble member {run_label(m.cfg)} ended at step {step}: {err}", RuntimeWarning, stacklevel=3)
        m.writer.write("interrupted", step, error=err)  # type: ignore[union-attr]
        _close(m)
    ens.keep([i for i in range(ens.size) if i not in positions])


def _measure(ens: _Ensemble, step: int, t0: float) -> None:
    """Eval at ``step`` (``eval_every``, and at ``max_steps``): history, eval records, grokking, early stop; members
    that stop leave the ensemble with their final parameters written back."""
    cfg = ens.cfg
    last = step >= cfg.max_steps
    if not (step % cfg.eval_every == 0 or last):
        return
    stopping = []
    for i, (m, metrics) in enumerate(zip(ens.members, ens.evaluate(), strict=True)):
        h = m.history
        h.steps.append(step)
        for name in ("train_acc", "test_acc", "train_loss", "test_loss"):
            getattr(h, name).append(metrics[name])
        h.metrics.append(metrics)
        m.writer.write("eval", step, **metrics)  # type: ignore[union-attr]
        acc = metrics["test_acc"]
        if m.grok_step is None and acc >= cfg.grok_threshold:
            m.grok_step = step
        m.streak = m.streak + 1 if cfg.early_stop is not None and acc >= cfg.early_stop.acc else 0
        if last or (cfg.early_stop is not None and m.streak >= cfg.early_stop.patience):
            stopping.append(i)
            m.wall_s = time.perf_counter() - t0
    if stopping:
        ens.write_back(stopping)
        for i in stopping:
            _close(ens.members[i])
        ens.keep([i for i in range(ens.size) if i not in stopping])
