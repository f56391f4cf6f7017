"""Probes: measure the inputs of the predictors (h_j, G_j, the AdamW split) on a live torch model.

Definitions (theory reference §1.5, tags [C] for h and G, [P] for the split):

- h_j = v_jᵀ H v_j, the loss-Hessian curvature along the spectral-edge direction v_j (units: loss / θ², for a unit
  v_j). Computed by one Hessian-vector product (reverse over reverse: H v = ∇⟨∇L, v⟩), never forming H.
- G_j = ⟨∇L, v_j⟩, the gradient projection (units: loss / θ). Train and val versions come from the same function
  on a fixed train batch and a fixed val batch (``fixed_batches``).
- Ablation Δloss (theory reference §3.7 [P] ``loss_decomposition.py``, Test 8): ΔL_j = L(θ − c_j v_j) − L(θ) with
  c_j = ⟨θ_g, v_j⟩, the loss change when direction v_j is projected out of the group's weights (units: loss);
  to first order ΔL_j ≈ −c_j G_j (c_j in θ units).
- AdamW split (theory reference §1.5, §6.16): PyTorch's AdamW first decays, θ ← θ(1 − ηω), then adds the Adam step, so
one
  step splits exactly as Δθ = Δθ_grad + Δθ_wd with Δθ_wd = −ηω θ_prev.

Directions v are given in a group's flat coordinates of a ``numerics.layout.ParamLayout``: the concatenation, in
atom order, of the group's parameters (``layout.param_names(group)``) flattened — the coordinates in which
``RollingGram.right_vectors(group, k)`` returns v_j. A (k × P_g) array of directions gives k values at once.

Side effects: none. The ablation evaluates the loss at substituted parameters with ``torch.func.functional_call``
(the model's own tensors are never written). The probes differentiate with ``torch.autograd.grad`` (so ``.grad``
is never accumulated; the previous ``.grad`` tensors are put back anyway), leave parameters untouched, and run the
forward in eval mode by default (dropout off, BatchNorm statistics frozen) and restore every submodule's
train/eval flag. Attention runs on the math SDPA kernel inside a probe (the fused kernels are not twice
differentiable). Random draws for the batches come only from the generator passed in — a diagnostics stream
(``verify.train`` uses the ``probe`` sub-stream of the diagnostics seed), never the training streams — so running
probes does not change the training trajectory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.layout import ParamLayout

__all__ = [
    "LossFn",
    "LossModule",
    "ablation_delta_loss",
    "adamw_split",
    "cross_entropy_loss",
    "curvature_and_gradient",
    "fixed_batches",
    "gradient_projection",
    "group_coordinates",
    "hessian_curvature",
    "measurement_mode",
    "split_fractions",
]

LossFn = Callable[[nn.Module, Any], Tensor]
"""``loss_fn(model, batch) -> scalar tensor``: the loss whose gradient and Hessian the probes measure."""


def cross_entropy_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean cross-entropy of ``model(x)`` against ``y`` for ``batch = (x, y)`` (the modular-arithmetic loss)."""
    x, y = batch
    return F.cross_entropy(model(x), y)


# --- batches -------------------------------------------------------------------------------------------------------


def fixed_batches(n: int | Mapping[str, int], size: int, generator: torch.Generator) -> Tensor | dict[str, Tensor]:
    """Indices of fixed measurement batches, drawn without replacement from the *diagnostics* generator only.

    ``n`` is the number of examples to draw from (an int → one index tensor of length min(size, n)), or a mapping
    such as ``{"train": len(train_y), "val": len(test_y)}`` → one index tensor per key, drawn in key order.
    ``generator`` must be the diagnostics stream (``verify.train.diag_generator(config)``): the global RNG and
    the training streams are never read, so drawing these batches cannot move the training trajectory.
    Indices are on the generator's device (CPU for ``diag_generator``); move them with ``.to(device)``.
    """
    if not isinstance(generator, torch.Generator):
        # Falling back to the global RNG would silently couple measurements and training.
        raise SpectralEdgeError(f"fixed_batches needs an explicit torch.Generator (the diagnostics stream), "
                                f"got {type(generator).__name__}")
    if int(size) < 1:
        raise SpectralEdgeError(f"batch size must be ≥ 1, got {size}")
    if isinstance(n, Mapping):
        return {k: _draw(int(v), int(size), generator, k) for k, v in n.items()}
    return _draw(int(n), int(size), generator, "n")


def _draw(n: int, size: int, generator: torch.Generator, what: str) -> Tensor:
    if n < 1:
        raise SpectralEdgeError(f"cannot draw a batch from {n} examples ({what})")
    return torch.randperm(n, generator=generator, device=generator.device)[: min(size, n)]


# --- h_j and G_j ---------------------------------------------------------------------------------------------------


def _group_params(model: nn.Module, layout: ParamLayout, group: str) -> list[Tensor]:
    named = dict(model.named_parameters())
    names = layout.param_names(group)
    missing = [n for n in names if n not in named]
    if missing:
        raise SpectralEdgeError(f"layout group {group!r} names parameters the model does not have: {missing}")
    return [named[n] for n in names]


def _directions(v: Tensor | np.ndarray, params: list[Tensor]) -> tuple[Tensor, bool]:
    """v as a (k × P_g) tensor on the parameters' device (its own float dtype: dots are float64); flag: one v."""
    V = torch.as_tensor(v)
    single = V.dim() == 1
    V = V.unsqueeze(0) if single else V
    P_g = sum(p.numel() for p in params)
    if V.dim() != 2 or V.shape[1] != P_g:
        raise ShapeMismatchError(f"directions must have shape ({P_g},) or (k, {P_g}) in the group's flat "
                                 f"coordinates, got {tuple(torch.as_tensor(v).shape)}")
    return V.to(device=params[0].device, dtype=V.dtype if V.is_floating_point() else torch.float64), single


def _tangents(row: Tensor, params: list[Tensor]) -> list[Tensor]:
    """Scatter one flat group vector into parameter-shaped tangents (views, no copy)."""
    out, offset = [], 0
    for p in params:
        out.append(row[offset: offset + p.numel()].view(p.shape))
        offset += p.numel()
    return out


def _dot(xs: list[Tensor | None], ys: list[Tensor]) -> Tensor:
    # float64 accumulation: P can be 10⁸ and the dot is the measured quantity.
    total = torch.zeros((), dtype=torch.float64, device=ys[0].device)
    for x, y in zip(xs, ys, strict=True):
        if x is not None:  # None: the loss does not depend on this parameter along this path (zero contribution)
            total = total + (x.double() * y.double()).sum()
    return total


@contextlib.contextmanager
def measurement_mode(model: nn.Module, train: bool | None) -> Iterator[None]:
    """A measurement's context: grad enabled (measurements may run inside no_grad code, e.g. an optimizer hook),
    the model in train (``True``) or eval (``False``) mode, or left as it is (``None``); every submodule's mode is
    restored on exit, also on error. Shared by the probes, the commutator defect and the LCH coupling."""
    modes = [(m, m.training) for m in model.modules()]
    if train is not None:
        model.train(train)
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, was in modes:
            m.training = was


@contextlib.contextmanager
def _untouched(model: nn.Module, eval_mode: bool) -> Iterator[None]:
    """Run a probe with grad enabled, in eval mode if asked; restore every module's mode and every ``.grad``."""
    grads = [(p, p.grad) for p in model.parameters()]
    try:
        # The math SDPA kernel: the fused flash / memory-efficient attention kernels have no double backward; the
        # math one computes the same function and is twice differentiable (used for G as well, so G agrees between
        # all probe functions).
        with measurement_mode(model, False if eval_mode else None), sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        for p, gr in grads:
            p.grad = gr


def curvature_and_gradient(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    v: Tensor | np.ndarray,
    layout: ParamLayout,
    group: str = "all",
    *,
    eval_mode: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(h, G) for each direction: h_j = v_jᵀ H v_j and G_j = ⟨∇L, v_j⟩, from one forward and 1 + k backward passes.

    ``v``: (P_g,) or (k × P_g) in ``group``'s flat coordinates (theory reference §1.5 wants unit v_j, as
    ``right_vectors`` returns them; the bilinear form is evaluated as given). H and ∇L are those of ``loss_fn(model,
    batch)`` restricted to the group's parameters (v is zero elsewhere). Returns two float64 arrays of shape (k,).
    """
    return _probe(model, loss_fn, batch, v, layout, group, eval_mode=eval_mode, curvature=True)


def hessian_curvature(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    v: Tensor | np.ndarray,
    layout: ParamLayout,
    group: str = "all",
    *,
    eval_mode: bool = True,
) -> float | np.ndarray:
    """h_j = v_jᵀ H v_j by a Hessian-vector product (theory reference §1.5 [C]; units loss/θ² for unit v_j).

    ``v`` one direction (P_g,) → float; k directions (k × P_g) → float64 array (k,). See ``curvature_and_gradient``.
    """
    V = torch.as_tensor(v)
    h, _ = _probe(model, loss_fn, batch, V, layout, group, eval_mode=eval_mode, curvature=True)
    return float(h[0]) if V.dim() == 1 else h


def gradient_projection(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    v: Tensor | np.ndarray,
    layout: ParamLayout,
    group: str = "all",
    *,
    eval_mode: bool = True,
) -> float | np.ndarray:
    """G_j = ⟨∇L, v_j⟩ (theory reference §1.5 [C]; units loss/θ for unit v_j), one forward and one backward pass.

    ``v`` one direction (P_g,) → float; k directions (k × P_g) → float64 array (k,).
    """
    V = torch.as_tensor(v)
    _, G = _probe(model, loss_fn, batch, V, layout, group, eval_mode=eval_mode, curvature=False)
    return float(G[0]) if V.dim() == 1 else G


def _probe(model: nn.Module, loss_fn: LossFn, batch: Any, v: Tensor | np.ndarray, layout: ParamLayout, group: str,
           *, eval_mode: bool, curvature: bool) -> tuple[np.ndarray, np.ndarray]:
    params = _group_params(model, layout, group)
    V, _ = _directions(v, params)
    with _untouched(model, eval_mode):
        loss = loss_fn(model, batch)
        if loss.dim() != 0:
            raise ShapeMismatchError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        grads = torch.autograd.grad(loss, params, create_graph=curvature, allow_unused=True)
        h = np.zeros(V.shape[0])
        G = np.zeros(V.shape[0])
        for j in range(V.shape[0]):
            tangents = _tangents(V[j], params)
            gv = _dot(list(grads), tangents)
            G[j] = gv.item()
            if curvature and gv.requires_grad:  # else ∇L is constant in θ (e.g. a linear loss): h_j = 0
                # H v = ∇⟨∇L, v⟩ with v held constant: one extra backward per direction.
                hv = torch.autograd.grad(gv, params, retain_graph=j + 1 < V.shape[0], allow_unused=True)
                h[j] = _dot(list(hv), tangents).item()
    return h, G


class LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a module, so ``functional_call`` can substitute the model's parameters (used
    here and by the commutator defect, ``verify.defect``)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> Tensor:
        return self.loss_fn(self.model, batch)


def ablation_delta_loss(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    v: Tensor | np.ndarray,
    layout: ParamLayout,
    group: str = "all",
    *,
    eval_mode: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(ΔL, c) per direction: ΔL_j = L(θ − c_j v_j) − L(θ), c_j = ⟨θ_g, v_j⟩ (theory reference §3.7 [P], the author's
    Test 8
    ablation: v_j projected out of the group's weights; v_j unit, as ``right_vectors`` returns them).

    ``v``: (P_g,) or (k × P_g) in ``group``'s flat coordinates. One forward for L(θ) and one per direction, under
    ``no_grad``, with the parameters substituted by ``functional_call`` (the model is never written; mode and
    ``.grad`` restored as for the other probes). Units: ΔL in loss units, c in θ units; float64 arrays (k,).
    First order: ΔL_j ≈ −c_j·G_j with G_j = ⟨∇L, v_j⟩ on the same batch (``gradient_projection``).
    """
    params = _group_params(model, layout, group)
    names = layout.param_names(group)
    V, _ = _directions(v, params)
    wrapper = LossModule(model, loss_fn)
    dloss, coef = np.zeros(V.shape[0]), np.zeros(V.shape[0])
    with _untouched(model, eval_mode), torch.no_grad():
        base = wrapper(batch)
        if base.dim() != 0:
            raise ShapeMismatchError(f"loss_fn must return a scalar, got shape {tuple(base.shape)}")
        for j in range(V.shape[0]):
            tangents = _tangents(V[j], params)
            c = _dot([p.detach() for p in params], tangents)
            ablated = {f"model.{n}": (p.detach().double() - c * t.double()).to(p.dtype)
                       for n, p, t in zip(names, params, tangents, strict=True)}
            dloss[j] = (functional_call(wrapper, ablated, (batch,)).double() - base.double()).item()
            coef[j] = c.item()
    return dloss, coef


# --- the AdamW split -----------------------------------------------------------------------------------------------


def adamw_split(theta_prev: Tensor, theta_next: Tensor, lr: float,
                weight_decay: float | Tensor) -> tuple[Tensor, Tensor]:
    """(Δθ_grad, Δθ_wd) for one AdamW step θ_prev → θ_next (theory reference §1.5 [P], §6.16).

    PyTorch's AdamW (decoupled decay) does θ ← θ(1 − ηω), then θ ← θ − η·m̂/(√v̂ + ε). Hence, exactly,
    Δθ_wd = −ηω θ_prev and Δθ_grad = (θ_next − θ_prev) − Δθ_wd, the Adam step the decayed θ received.
    ``lr`` is the η of that step (after any scheduler); ``weight_decay`` is ω, a float or a tensor broadcastable to
    θ (per-coordinate ω, e.g. 0 for parameter groups without decay). Units: θ units. Exact for one optimizer step
    only: across Δs steps the decay acts on the moving θ, so the endpoint split is a first-order estimate.
    """
    if theta_prev.shape != theta_next.shape:
        raise ShapeMismatchError(f"θ_prev and θ_next differ in shape: {tuple(theta_prev.shape)} vs "
                                 f"{tuple(theta_next.shape)}")
    delta_wd = -lr * weight_decay * theta_prev
    delta_grad = (theta_next - theta_prev) - delta_wd
    return delta_grad, delta_wd


def split_fractions(delta_grad: Tensor, delta_wd: Tensor, v: Tensor | np.ndarray) -> tuple[Any, Any]:
    """(f_grad, f_wd) with f_x = |⟨Δθ_x, v⟩| / (|⟨Δθ_grad, v⟩| + |⟨Δθ_wd, v⟩|) ∈ [0, 1] (theory reference §6.16 [P]).

    ``v``: (P,) → two floats; (k × P) → two float64 arrays (k,). All vectors in the same flat coordinates
    (restrict full-layout vectors with ``group_coordinates``). f_grad + f_wd = 1 where defined; NaN where both
    projections vanish (the fraction is undefined there).
    """
    V = torch.as_tensor(v, device=delta_grad.device)
    single = V.dim() == 1
    V = (V.unsqueeze(0) if single else V).double()
    if V.shape[-1] != delta_grad.numel() or delta_wd.numel() != delta_grad.numel():
        raise ShapeMismatchError(f"split_fractions: v has {V.shape[-1]} coordinates, Δθ_grad {delta_grad.numel()}, "
                                 f"Δθ_wd {delta_wd.numel()}")
    a = (V @ delta_grad.reshape(-1).double()).abs().cpu().numpy()
    b = (V @ delta_wd.reshape(-1).double()).abs().cpu().numpy()
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        f_grad, f_wd = np.where(total > 0, a / total, np.nan), np.where(total > 0, b / total, np.nan)
    return (float(f_grad[0]), float(f_wd[0])) if single else (f_grad, f_wd)


def group_coordinates(flat: Tensor, layout: ParamLayout, group: str) -> Tensor:
    """The group's coordinates of a full flat vector of ``layout`` (its atoms concatenated in order), e.g. to
    restrict ``layout.gather`` snapshots to the coordinates of ``right_vectors(group, k)``."""
    if flat.dim() != 1 or flat.numel() != layout.P:
        raise ShapeMismatchError(f"expected a flat vector of length {layout.P}, got shape {tuple(flat.shape)}")
    if group not in layout.groups:
        raise KeyError(f"unknown group {group!r}; groups are {list(layout.groups)}")
    parts = [flat[layout.atoms[i].start: layout.atoms[i].end] for i in layout.groups[group]]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
