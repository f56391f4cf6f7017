"""Omnigrok-style grokking by large initialisation (Liu, Michaud & Tegmark 2022, arXiv 2210.01117, their MNIST
setup) on scikit-learn's bundled 8×8 handwritten digits, a non-algorithmic dataset.

* Data: ``sklearn.datasets.load_digits`` (1797 images of 8×8 pixels with values 0..16, 10 classes; shipped inside
  the scikit-learn wheel, so it works offline; optional extra ``digits``), pixels scaled to x = v/16 ∈ [0, 1]⁶⁴.
  One ``randperm`` of the data stream splits it: the first ``n_train`` images train, the next ``n_test`` (default:
  all the rest) test.
* Model: 64 → 200 → 200 → 10 ReLU MLP with biases (``hidden``); initialisation ``nn.Linear``'s default,
  U(±1/√fan_in) for weights and biases, drawn from the init stream, then every parameter multiplied by
  ``init_scale`` α (Omnigrok: α ≈ 8 puts the initial weight norm far outside the "Goldilocks zone").
* Loss: Omnigrok's MSE on one-hot targets, L = (1/N) Σ_i ‖f(x_i) − e_{y_i}‖² (sum over the 10 classes, mean over
  samples); ``acc`` = argmax accuracy.
* Training (preset ``cpu``): 500 training images, the other 1297 test; AdamW, lr 1e-3, β = (0.9, 0.98), decoupled
  weight decay 0.2 on every parameter, minibatches of 100 without replacement, no clipping, 8000 steps. With α = 8
  the network memorises the training set in ~1000 steps (a lazy, kernel-like fit with poor test accuracy); weight
  decay then shrinks ‖θ‖ exponentially (rate ≈ lr·wd = 2e-4 per step) and test accuracy rises as the norm nears
  the Goldilocks zone, crossing 0.95 after ~4000–6000 steps. Controls: wd = 0 keeps the norm large and test
  accuracy near 0.2; α = 1 (the standard init) generalises at once (≈ 0.97 within a few hundred steps). On 1000
  training images α = 8 generalises almost as fast as it memorises (no clear delay), hence 500.

Why: grokking whose delay is set by the weight norm (initialisation scale × weight decay) on a non-algorithmic
dataset, for leave-one-workload-out tests of a grokking-onset forecaster (with the ``norms`` study as the
weight-norm baseline).

The spectral monitor's task group ``weights`` is the three weight matrices; the ``cpu`` preset also monitors ``all``.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn

from verify.tasks.common import build_initialised, sample_rows, split_metrics
from verify.tasks.presets import derive

__all__ = ["DIGITS", "N_DIGITS", "PRESETS", "RECOMMENDED", "DigitsConfig", "DigitsMLP", "DigitsTask", "load_digits",
           "onehot_mse"]

GROUP = "weights"
N_DIGITS = 1797  # images in scikit-learn's digits data set


@lru_cache(maxsize=1)
def load_digits() -> tuple[Tensor, Tensor]:
    """``(x, y)``: all 1797 images as float32 pixels / 16 (shape (1797, 64)) and int64 labels, in scikit-learn's
    order. Needs scikit-learn (``pip install 'spectral-edge[digits]'``)."""
    try:  # scikit-learn is an optional extra: imported only when the digits workload is used
        from sklearn.datasets import load_digits as sk_load_digits  # optional extra (digits)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digits workload needs scikit-learn: pip install 'spectral-edge[digits]'") from exc
    d = sk_load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(d.target, dtype=torch.int64)
    return x, y


class DigitsConfig(BaseModel):
    """Task and model of one digits run (defaults: 500 training images, the rest test, 64-200-200-10, α = 8)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_train: int = Field(500, ge=10, description="training images (fixed split from the data stream)")
    n_test: int | None = Field(None, ge=1, description="test images; None: all the images not in training")
    hidden: list[int] = Field(default_factory=lambda: [200, 200], min_length=1, description="hidden widths")
    init_scale: float = Field(8.0, gt=0.0, description="α: every parameter multiplied by α after the default init")

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: list[int]) -> list[int]:
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be ≥ 1, got {hidden}")
        return hidden

    @model_validator(mode="after")
    def _split_fits(self) -> DigitsConfig:
        if self.n_train >= N_DIGITS:
            raise ValueError(f"n_train={self.n_train} leaves no test images (the data set has {N_DIGITS})")
        if self.n_test is not None and self.n_train + self.n_test > N_DIGITS:
            raise ValueError(f"n_train + n_test = {self.n_train + self.n_test} exceeds the {N_DIGITS} images")
        return self


class DigitsMLP(nn.Module):
    """64 → hidden… → 10 ReLU MLP (``layers.{i}.weight``, ``layers.{i}.bias``), init scaled by α."""

    def __init__(self, hidden: list[int], init_scale: float, n_in: int = 64, classes: int = 10) -> None:
        super().__init__()
        sizes = [n_in, *hidden, classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.init_scale = init_scale

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """α · U(±1/√fan_in) for every weight and bias (``nn.Linear``'s default scaled), from ``generator``."""
        for layer in self.layers:
            bound = 1.0 / math.sqrt(layer.in_features)
            for p in (layer.weight, layer.bias):
                p.copy_((torch.rand(p.shape, generator=generator) * (2 * bound) - bound) * self.init_scale)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def onehot_mse(out: Tensor, y: Tensor) -> Tensor:
    """L = (1/N) Σ_i ‖out_i − e_{y_i}‖² (sum over classes, mean over samples)."""
    return (out - F.one_hot(y, out.shape[1]).to(out.dtype)).pow(2).sum(dim=1).mean()


class DigitsTask:
    """The digits workload as a :class:`verify.tasks.base.Task`. Data ``{"train": (x, y), "test": (x, y),
    "train_index": ..., "test_index": ...}`` (indices into scikit-learn's order); a batch is the whole training set
    when ``batch_size ≥ n_train``, else a subset without replacement."""

    name = "digits"
    config_class = DigitsConfig

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        cfg = DigitsConfig.model_validate(config)
        x, y = load_digits()
        perm = torch.randperm(len(y), generator=generator)
        n_test = cfg.n_test if cfg.n_test is not None else len(y) - cfg.n_train
        tr, te = perm[: cfg.n_train], perm[cfg.n_train : cfg.n_train + n_test]
        return {"train": (x[tr], y[tr]), "test": (x[te], y[te]), "train_index": tr, "test_index": te}

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        cfg = DigitsConfig.model_validate(config)
        return build_initialised(lambda: DigitsMLP(cfg.hidden, cfg.init_scale), generator, device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return sample_rows(data, batch_size, generator)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return onehot_mse(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """``acc`` (argmax) and the one-hot MSE ``loss`` on the whole split."""
        return split_metrics(model, data, split, onehot_mse)

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        """No attention weights: the task's Gram group is ``weights`` (``monitor_groups``)."""
        return []

    def monitor_groups(self, model: nn.Module) -> dict[str, list[str]]:
        """``{"weights": [...]}``: every weight matrix (the biases left out)."""
        return {GROUP: [n for n, _ in model.named_parameters() if n.endswith("weight")]}

    def run_label(self, config: BaseModel) -> str:
        """``a{α}-N{n_train}``: files ``digits-a8-N1000-wd1-s42.jsonl.gz``."""
        cfg = DigitsConfig.model_validate(config)
        return f"a{cfg.init_scale:g}-N{cfg.n_train}"


DIGITS = DigitsTask()

# Minibatch AdamW, no clipping, no early stop; eval, monitor (W = 10) and weight norm every 50 steps.
_CPU: dict[str, Any] = {
    "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.98), "weight_decay": 0.2, "batch_size": 100,
    "grad_clip": None, "max_steps": 8000, "eval_every": 50, "early_stop": None, "grok_threshold": 0.95,
    "monitor": {"window": 10, "every": 50, "groups": ["all", "task"]}, "norms": {"every": 50},
}

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},  # n_train = 500, α = 8
    "tiny": {"n_train": 100, "n_test": 100, "hidden": [16], "init_scale": 4.0},
}
RECOMMENDED: dict[str, dict[str, Any]] = {
    "cpu": derive(_CPU),
    "tiny": derive(_CPU, max_steps=40, eval_every=10, monitor={"every": 10, "window": 4}, norms={"every": 10}),
}
