"""The weight norm ‖θ‖₂ along training: the baseline early-warning signal of the weight-norm account of grokking.

    norm = ‖θ‖₂ = sqrt(Σ_p Σ_i θ_{p,i}²)     over every trainable parameter p of the model,
    groups[g] = ‖θ_g‖₂                       over the parameters of monitor group g (``ctx.monitor.layout``),

in the parameters' own units (no normalisation by the parameter count), summed in float64 from the current values.

Why: Omnigrok (Liu, Michaud, Tegmark 2022, arXiv 2210.01117) explains grokking as the weight norm shrinking from a
large initialisation into a "Goldilocks zone" where generalising solutions live, and the progress-measures account
(Nanda et al. 2023, arXiv 2301.05217) sees the norm decline under weight decay during the "cleanup" phase before
test accuracy rises. A forecaster of the grokking onset has to beat this trivial signal, so the runs record it.

As a harness measurement (``NormMeasurement``, run-config section ``norms``): every ``norms.every`` steps, one
``norm`` record ``{"norm": ‖θ‖₂, "groups": {g: ‖θ_g‖₂}}`` (``groups`` only when the run has a spectral monitor
exposing its parameter layout). It draws nothing, keeps no state and never writes the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from numerics.layout import clean_name
from verify.harness.config import CadenceConfig
from verify.harness.measurement import BaseMeasurement, RunContext

__all__ = ["NormConfig", "NormMeasurement", "l2_norm", "trainable_parameters"]


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Clean name (wrapper prefixes stripped, as the monitor's layout names them) → trainable parameter."""
    return {clean_name(n): p for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def l2_norm(tensors: Iterable[Tensor]) -> float:
    """sqrt(Σ θ²) over all entries of ``tensors``, accumulated in float64."""
    total = torch.zeros((), dtype=torch.float64)
    for t in tensors:
        total += t.detach().double().pow(2).sum().cpu()
    return float(total.sqrt())


class NormConfig(CadenceConfig):
    """The weight norm ‖θ‖₂ (all trainable parameters, and per monitor group) every ``every`` steps (0/None: off)."""


class NormMeasurement(BaseMeasurement):
    """‖θ‖₂ as a harness measurement: one ``norm`` record per due step (module docstring); stateless."""

    Config = NormConfig
    record_type = "norm"

    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]:
        params = trainable_parameters(ctx.model)
        record: dict[str, Any] = {"norm": l2_norm(params.values())}
        layout = getattr(ctx.monitor, "layout", None)
        if layout is not None:
            record["groups"] = {g: l2_norm(params[n] for n in layout.param_names(g)) for g in layout.groups}
        return [record]
