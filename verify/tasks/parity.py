"""Sparse parity (Barak et al. 2022, arXiv 2207.08799; the grokking setup of Merrill, Tsilivis & Shukla 2023,
arXiv 2303.11873): a 2-layer ReLU MLP learns y = Π_{i∈S} x_i of k secret bits out of n.

* Data: x ∈ {±1}^n drawn uniformly (n = 40), the secret S ⊂ {0..n−1}, |S| = k = 3, one ``randperm`` of the data
  stream; label c = (1 − Π_{i∈S} x_i)/2 ∈ {0, 1} (class 1 ⇔ odd number of −1s among the secret bits). A fixed
  training set of ``n_train`` samples and a test set of ``n_test`` (2000) samples, all drawn from the data stream
  (the two sets are independent draws; with n = 40 they overlap with probability ~ n_train·n_test/2⁴⁰ ≈ 0).
* Model: x → ReLU(W₁x + b₁) → W₂h + b₂ ∈ ℝ², width 512 (``width``), biases; initialisation ``nn.Linear``'s
  default U(±1/√fan_in) for weights and biases, drawn from the init stream.
* Loss: cross-entropy on the 2 classes; ``acc`` = argmax accuracy on the split.
* Training (preset ``cpu``): AdamW, lr 1e-3, β = (0.9, 0.98), decoupled weight decay on every parameter, minibatches
  of 128 drawn without replacement from the training set, no clipping, 8000 steps. With n_train = 2000 the network
  fits the training set in ~1000 steps (21k parameters memorise 2000 labels) while test accuracy stays near chance;
  the k-sparse feature is found later ("hidden progress", Barak et al.) and test accuracy crosses 0.95 after
  ~2500–4000 steps. Weight decay drives the switch from the memorising to the sparse circuit (Merrill et al.): with
  wd = 0 test accuracy only creeps up (0.62–0.75 at 8000 steps); with too little data (n_train = 1000) the
  memorising circuit stays cheaper and no run generalises, with or without weight decay; with more (n_train = 3000)
  even wd = 0 generalises — grokking brought on by the amount of data as well as by the regulariser
  (``verify/runs/parity/README.md``).

Why: a grokking workload whose delay comes from a feature-learning search (the statistical-query hardness n^k)
rather than from weight-norm dynamics alone, for leave-one-workload-out tests of a grokking-onset forecaster.

The spectral monitor's task group ``first_layer`` is W₁ (where the sparse feature appears); the ``cpu`` preset also
monitors ``all``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from verify.tasks.common import build_initialised, sample_rows, split_metrics
from verify.tasks.presets import derive

__all__ = ["PARITY", "PRESETS", "RECOMMENDED", "ParityConfig", "ParityMLP", "ParityTask", "parity_data",
           "parity_labels"]

GROUP = "first_layer"


class ParityConfig(BaseModel):
    """Task and model of one sparse-parity run (defaults: n = 40, k = 3, 2000 training samples, width 512)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_bits: int = Field(40, ge=1, description="n: input bits")
    k: int = Field(3, ge=1, description="k: secret bits whose product is the label")
    n_train: int = Field(2000, ge=1, description="fixed training samples")
    n_test: int = Field(2000, ge=1, description="test samples")
    width: int = Field(512, ge=1, description="hidden width of the 2-layer ReLU MLP")

    @model_validator(mode="after")
    def _k_fits(self) -> ParityConfig:
        if self.k > self.n_bits:
            raise ValueError(f"k={self.k} secret bits do not fit in n_bits={self.n_bits}")
        return self


def parity_labels(x: Tensor, secret: Tensor) -> Tensor:
    """c = (1 − Π_{i∈S} x_i)/2 as int64 class indices, for x ∈ {±1}^{N×n}."""
    prod = x.index_select(1, secret).prod(dim=1)
    return ((1 - prod) / 2).round().to(torch.int64)


def parity_data(cfg: ParityConfig, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(secret, train_x, train_y, test_x, test_y)`` from ``generator``: the secret first (sorted), then the training
    inputs, then the test inputs; x float32 in {±1}."""
    secret = torch.randperm(cfg.n_bits, generator=generator)[: cfg.k].sort().values
    x = torch.randint(0, 2, (cfg.n_train + cfg.n_test, cfg.n_bits), generator=generator).to(torch.float32) * 2 - 1
    y = parity_labels(x, secret)
    return secret, x[: cfg.n_train], y[: cfg.n_train], x[cfg.n_train :], y[cfg.n_train :]


class ParityMLP(nn.Module):
    """x → ReLU(W₁x + b₁) → W₂h + b₂ (parameters ``fc1.weight``, ``fc1.bias``, ``fc2.weight``, ``fc2.bias``)."""

    def __init__(self, n_bits: int, width: int, classes: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_bits, width)
        self.fc2 = nn.Linear(width, classes)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """``nn.Linear``'s default, U(±1/√fan_in) for weight and bias, drawn from ``generator``."""
        for layer in (self.fc1, self.fc2):
            bound = 1.0 / math.sqrt(layer.in_features)
            for p in (layer.weight, layer.bias):
                p.copy_(torch.rand(p.shape, generator=generator) * (2 * bound) - bound)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class ParityTask:
    """Sparse parity as a :class:`verify.tasks.base.Task`. Data ``{"train": (x, y), "test": (x, y), "secret": S}``;
    a batch is the whole training set when ``batch_size ≥ n_train``, else a subset without replacement."""

    name = "parity"
    config_class = ParityConfig

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        cfg = ParityConfig.model_validate(config)
        secret, x, y, xt, yt = parity_data(cfg, generator)
        return {"train": (x, y), "test": (xt, yt), "secret": secret}

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        cfg = ParityConfig.model_validate(config)
        return build_initialised(lambda: ParityMLP(cfg.n_bits, cfg.width), generator, device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return sample_rows(data, batch_size, generator)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """``acc`` (argmax) and the cross-entropy ``loss`` on the whole split."""
        return split_metrics(model, data, split, F.cross_entropy)

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        """No attention weights: the task's Gram group is ``first_layer`` (``monitor_groups``)."""
        return []

    def monitor_groups(self, model: nn.Module) -> dict[str, list[str]]:
        """``{"first_layer": ["fc1.weight"]}``: W₁, where the k-sparse feature forms."""
        return {GROUP: ["fc1.weight"]}

    def run_label(self, config: BaseModel) -> str:
        """``n{n}k{k}-N{n_train}``: files ``parity-n40k3-N1000-wd1-s42.jsonl.gz``."""
        cfg = ParityConfig.model_validate(config)
        return f"n{cfg.n_bits}k{cfg.k}-N{cfg.n_train}"


PARITY = ParityTask()

# Minibatch AdamW, no clipping, no early stop; eval, monitor (W = 10) and weight norm every 50 steps.
_CPU: dict[str, Any] = {
    "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.98), "weight_decay": 1.0, "batch_size": 128,
    "grad_clip": None, "max_steps": 8000, "eval_every": 50, "early_stop": None, "grok_threshold": 0.95,
    "monitor": {"window": 10, "every": 50, "groups": ["all", "task"]}, "norms": {"every": 50},
}

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},  # n = 40, k = 3, n_train = 2000, width 512
    "tiny": {"n_bits": 10, "k": 2, "n_train": 200, "n_test": 200, "width": 32},
}
RECOMMENDED: dict[str, dict[str, Any]] = {
    "cpu": derive(_CPU),
    "tiny": derive(_CPU, max_steps=60, eval_every=10, monitor={"every": 10, "window": 4}, norms={"every": 10}),
}
