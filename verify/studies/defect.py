"""The commutator defect: how much two SGD steps on different batches fail to commute (companion early warning).

Source: [P] grokking-integrability ``grok_commutator_analysis.commutator_defect`` (arXiv 2602.16746;
theory reference §1.8). For two independent training batches A and B and a fixed η:

    θ_AB = θ₀ − ηg_A(θ₀) − ηg_B(θ₀ − ηg_A(θ₀)),   θ_BA likewise,   D = ‖θ_AB − θ_BA‖ / (‖ηg_A(θ₀)‖·‖ηg_B(θ₀)‖ + 1e-12)

with raw loss gradients (no optimizer state, clipping or weight decay), all trainable parameters, train mode, and
the median over K pairs reported (with p25/p75/p90). η = 1e-3 (modular). ``adaptive_eta`` is the dyck_scan variant
([P] dyck_scan): if min(η‖g_A‖, η‖g_B‖) < 1e-6 then η ← min(1e-6 / min(‖g_A‖, ‖g_B‖), 1).

Implementation notes. The gradients are taken with ``torch.func.functional_call`` at copies of the parameters, so
the model is never modified (its ``.grad`` neither). θ_AB − θ_BA is evaluated as
η[(g_A(θ_B) − g_A(θ₀)) − (g_B(θ_A) − g_B(θ₀))], algebraically identical, but θ₀ (|θ| ≫ |δ|) never enters a
difference, so float32 rounding of θ does not swamp δ. On a quadratic loss δ = η²(H_B g_A − H_A g_B) exactly (spec
§6.15; tested). Batches come from the caller's generator: the harness passes the diagnostics stream.

The onset detectors (registry quantity ``defect_onset``) take the defect series and return the onset step.

As a harness measurement (``DefectMeasurement``, run-config section ``defect``): every ``defect.every`` steps, K
batch pairs drawn from the run's diagnostics stream ``diag`` (its state is checkpointed), one ``defect`` record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.func import functional_call

from numerics.probes import LossFn, LossModule, measurement_mode
from theory.registry import get, register
from verify.harness.config import CadenceConfig, StrictInt
from verify.harness.measurement import BaseMeasurement, RunContext
from verify.tasks.base import to_device

__all__ = [
    "DefectConfig",
    "DefectMeasurement",
    "DefectResult",
    "commutator_defect",
    "defect_delta",
    "defect_pair",
    "onset_ratio",
    "onset_step",
    "onset_sustained",
]


def _grad(wrapper: LossModule, theta: dict[str, Tensor], batch: Any) -> dict[str, Tensor]:
    leaves = {n: t.detach().requires_grad_(True) for n, t in theta.items()}
    loss = functional_call(wrapper, {f"model.{n}": t for n, t in leaves.items()}, (batch,))
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {n: torch.zeros_like(t) if g is None else g for (n, t), g in zip(leaves.items(), grads, strict=True)}


def _norm(xs: dict[str, Tensor]) -> float:
    return float(torch.sqrt(sum((x.double() ** 2).sum() for x in xs.values())))


def _axpy(theta: dict[str, Tensor], a: float, g: dict[str, Tensor]) -> dict[str, Tensor]:
    return {n: theta[n] + a * g[n] for n in theta}


def defect_delta(
    model: nn.Module,
    loss_fn: LossFn,
    batch_a: Any,
    batch_b: Any,
    *,
    eta: float = 1e-3,
    adaptive_eta: bool = False,
    eta_floor: float = 1e-6,
    train_mode: bool = True,
) -> tuple[dict[str, Tensor], float, float, float]:
    """(δ = θ_AB − θ_BA per parameter name, ‖g_A(θ₀)‖, ‖g_B(θ₀)‖, the η used). The model is not modified."""
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    wrapper = LossModule(model, loss_fn)
    with measurement_mode(model, train_mode):
        ga0, gb0 = _grad(wrapper, theta0, batch_a), _grad(wrapper, theta0, batch_b)
        na, nb = _norm(ga0), _norm(gb0)
        if adaptive_eta and min(eta * na, eta * nb) < eta_floor:  # dyck_scan commutator_analysis.py
            smallest = min(na, nb)
            eta = min(eta_floor / smallest, 1.0) if smallest > 0 else 1.0
        gb_at_a = _grad(wrapper, _axpy(theta0, -eta, ga0), batch_b)  # g_B(θ₀ − ηg_A)
        ga_at_b = _grad(wrapper, _axpy(theta0, -eta, gb0), batch_a)  # g_A(θ₀ − ηg_B)
    delta = {n: eta * ((ga_at_b[n] - ga0[n]) - (gb_at_a[n] - gb0[n])) for n in theta0}
    return delta, na, nb, float(eta)


def defect_pair(model: nn.Module, loss_fn: LossFn, batch_a: Any, batch_b: Any, *, eta: float = 1e-3,
                adaptive_eta: bool = False, eta_floor: float = 1e-6, train_mode: bool = True,
                eps: float = 1e-12) -> tuple[float, float]:
    """(D, η used) for one batch pair: ‖θ_AB − θ_BA‖ / (‖ηg_A‖‖ηg_B‖ + eps) (``eps`` = 1e-12 as the author)."""
    delta, na, nb, eta = defect_delta(model, loss_fn, batch_a, batch_b, eta=eta, adaptive_eta=adaptive_eta,
                                      eta_floor=eta_floor, train_mode=train_mode)
    return _norm(delta) / (eta * na * eta * nb + eps), eta


@dataclass
class DefectResult:
    """D for each of the K pairs and the η used for each; ``record()`` is what the trajectory stores."""

    values: list[float]
    etas: list[float]

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    def record(self) -> dict[str, Any]:
        q25, q75, q90 = (float(q) for q in np.percentile(self.values, [25, 75, 90]))
        return {"D": self.median, "q25": q25, "q75": q75, "q90": q90, "pairs": len(self.values),
                "values": list(self.values), "eta": list(self.etas)}


def commutator_defect(model: nn.Module, loss_fn: LossFn, pairs: Sequence[tuple[Any, Any]], *, eta: float = 1e-3,
                      adaptive_eta: bool = False, eta_floor: float = 1e-6, train_mode: bool = True) -> DefectResult:
    """D over K batch ``pairs`` (the median is the reported value)."""
    if not pairs:
        raise ValueError("commutator_defect needs at least one batch pair")
    out = [defect_pair(model, loss_fn, a, b, eta=eta, adaptive_eta=adaptive_eta, eta_floor=eta_floor,
                       train_mode=train_mode) for a, b in pairs]
    return DefectResult(values=[d for d, _ in out], etas=[e for _, e in out])


# --- onset detectors -------------------------------------------------------------------------------------------


def onset_ratio(steps: Sequence[int], defect: Sequence[float], *, factor: float = 10.0, floor: float = 20.0,
                n_baseline: int = 3, min_baseline: float = 0.1, start: int = 2) -> int | None:
    """First step (record index ≥ ``start``) with D > ``factor``·baseline and D > ``floor``, baseline =
    max(median of the first ``n_baseline`` records, ``min_baseline``) ([P] ``find_spike_step``)."""
    d = np.asarray(defect, dtype=float)
    if len(d) != len(steps):
        raise ValueError(f"steps and defect values differ in length: {len(steps)} vs {len(d)}")
    if len(d) <= start:
        return None
    baseline = max(float(np.median(d[:n_baseline])), min_baseline)
    hits = np.nonzero((d > factor * baseline) & (d > floor))[0]
    hits = hits[hits >= start]
    return int(steps[hits[0]]) if len(hits) else None


def onset_sustained(steps: Sequence[int], defect: Sequence[float], *, n_baseline: int = 10, k_sigma: float = 3.0,
                    sustain: int = 2) -> int | None:
    """First step after the baseline window at which D > mean + ``k_sigma``·std of the first ``n_baseline`` records
    for ``sustain`` consecutive records (the first of them). std with ddof = 0 [R: the spec does not say]."""
    d = np.asarray(defect, dtype=float)
    if len(d) != len(steps):
        raise ValueError(f"steps and defect values differ in length: {len(steps)} vs {len(d)}")
    if len(d) < n_baseline + sustain:
        return None
    base = d[:n_baseline]
    above = d > base.mean() + k_sigma * base.std()
    for i in range(n_baseline, len(d) - sustain + 1):
        if above[i : i + sustain].all():
            return int(steps[i])
    return None


@register("defect_onset", "10x&>20", source="[P] grokking-integrability find_spike_step",
          version="2602.16746", default=True)
def _onset_10x_20(steps: Sequence[int], defect: Sequence[float]) -> int | None:
    """D > 10 × max(median of the first 3, 0.1) and D > 20, from the 3rd record on.

    Default: the detector behind the published lead times (modular arithmetic, Dyck, SCAN).
    """
    return onset_ratio(steps, defect)


@register("defect_onset", "10x&>5", source="[P] grokking-integrability slow-regime script",
          version="2602.16746")
def _onset_10x_5(steps: Sequence[int], defect: Sequence[float]) -> int | None:
    """As ``10x&>20`` with the absolute threshold 5 of the slow-regime (lr 5e-5) analysis."""
    return onset_ratio(steps, defect, floor=5.0)


@register("defect_onset", "mean+3sd,x2", source="[P] companion config (theory reference §1.8)",
          version="2602.16746")
def _onset_3sd(steps: Sequence[int], defect: Sequence[float]) -> int | None:
    """D above mean + 3σ of the first 10 records on 2 consecutive records (reported at the first)."""
    return onset_sustained(steps, defect)


def onset_step(steps: Sequence[int], defect: Sequence[float], definition: str | None = None) -> int | None:
    """The defect onset under the named definition (default ``10x&>20``)."""
    return get("defect_onset", definition)(steps, defect)


# --- measurement (harness plug-in) ---------------------------------------------------------------------------------


class DefectConfig(CadenceConfig):
    """Commutator defect ([P] grokking-integrability, dyck_scan) every ``every`` steps (0/None: off).

    Defaults are the author's modular-arithmetic ones: K = 5 batch pairs, η = 1e-3, train mode, batches of the
    training batch size (512). ``adaptive_eta``: the dyck_scan variant (η raised when η‖g‖ < ``eta_floor``).
    """

    pairs: StrictInt = Field(5, ge=1, description="K: batch pairs per measurement (the median is reported)")
    batch_size: StrictInt | None = Field(None, ge=1, description="None: the training batch size")
    eta: float = Field(1e-3, gt=0.0)
    adaptive_eta: bool = False
    eta_floor: float = Field(1e-6, gt=0.0, description="adaptive η: min(η‖g_A‖, η‖g_B‖) is raised to this")
    train_mode: bool = Field(True, description="forward in train mode, as the author")


class DefectMeasurement(BaseMeasurement):
    """The commutator defect as a harness measurement: K batch pairs from the diagnostics stream ``diag`` per
    measurement (the only reader of that stream), one ``defect`` record (``DefectResult.record``)."""

    Config = DefectConfig
    record_type = "defect"

    def __init__(self, config: DefectConfig, run_config: Any) -> None:
        super().__init__(config, run_config)
        self.batch_size = config.batch_size or run_config.batch_size
        self.gen = run_config.generator("diag")

    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]:
        d = self.config

        def draw() -> Any:
            return to_device(ctx.task.sample_batch(ctx.data, self.batch_size, self.gen), ctx.device)

        pairs = [(draw(), draw()) for _ in range(d.pairs)]
        result = commutator_defect(ctx.model, ctx.task.loss, pairs, eta=d.eta, adaptive_eta=d.adaptive_eta,
                                   eta_floor=d.eta_floor, train_mode=d.train_mode)
        return [result.record()]

    def state_dict(self) -> dict[str, Any]:
        return {"diag": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["diag"])
