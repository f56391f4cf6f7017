"""Tian's Li₂ workload: modular addition learned by a 2-layer MLP Ŷ = σ(XW)V (arXiv 2509.21519), the setup of the
author's Li₂ bridge (arXiv 2605.08119; theory reference §5, the Li₂ rows).

* Data [P]: all M² pairs (a, b) with label (a + b) mod M; X = [e_a; e_b] ∈ {0, 1}^{2M} (the one-hot "identity
  embedding" of both tokens, concatenated); n = 2016 training pairs at M = 71 (40% of 71²), drawn by one
  ``randperm`` from the data stream; the other M² − n pairs are the test split.
* Model [P]: W ∈ ℝ^{2M×K} (the first layer, the Gram group), V ∈ ℝ^{K×M}, no biases, σ(x) = x² (``relu``: the
  ReLU variant). Initialisation [P]: ``nn.Linear``'s default, U(±1/√fan_in), i.e. U(±1/√(2M)) for W and U(±1/√K)
  for V, drawn from the init stream. XW is computed as the row gather W[a] + W[M + b], which equals the one-hot
  product exactly (each row of X has two ones) and costs n·K additions instead of n·2M·K multiply-adds.
* Loss [P] (Tian's code as the bridge script copies it): per-sample squared error between the class-centred output
  and the centred one-hot target, summed over the M classes and averaged over the samples,
  L = (1/n) Σ_i ‖P₁^⊥ŷ_i − (e_{y_i} − 1/M)‖², P₁^⊥ = I − 11ᵀ/M. The scale matters: Adam's L2 term ηW is added to
  this gradient.
* Training [P]: full-batch Adam (β = (0.9, 0.999), ε = 1e-8), lr 1e-3, weight decay η as Adam's L2 term
  (``optimizer="adam"``, ``theory.li2`` registry quantity ``li2_weight_decay``); one full-batch step = one epoch;
  400 epochs; no gradient clipping, no early stop. Accuracy = argmax of ŷ.

The spectral monitor sees only W (the task's ``monitor_groups``: group ``first_layer``, P = 2MK = 290,816 at
M = 71, K = 2048), window W = 20, every epoch, updates stored in float64: after the lock-in λ₃/λ₁ falls to
~1e-7, where float32 dot products (relative error ~1e-7) make the Gram indefinite.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from theory import registry
from theory.li2 import LI2_WEIGHT_DECAY  # noqa: F401 - registers the weight-decay variants
from verify.tasks.common import sample_rows, split_metrics
from verify.tasks.presets import derive

__all__ = ["LI2", "PRESETS", "RECOMMENDED", "Li2Config", "Li2MLP", "Li2Task", "centred_mse", "li2_split"]

GROUP = "first_layer"


def li2_split(M: int, n_train: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All pairs (a, b) ∈ [0, M)², label (a + b) mod M, split by one ``randperm`` of ``generator``:
    ``(train_x, train_y, test_x, test_y)`` with ``train_x`` of shape (n_train, 2), int64."""
    if not 0 < n_train < M * M:
        raise ValueError(f"n_train={n_train} must lie in 1..{M * M - 1} for M={M}")
    r = torch.arange(M, dtype=torch.int64)
    a, b = torch.meshgrid(r, r, indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    y = (x[:, 0] + x[:, 1]) % M
    perm = torch.randperm(M * M, generator=generator)
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


class Li2MLP(nn.Module):
    """Ŷ = σ(XW)V with X = [e_a; e_b]; parameters ``W`` (2M × K) and ``V`` (K × M); σ = x² or ReLU."""

    def __init__(self, M: int, K: int, activation: str = "square") -> None:
        super().__init__()
        if activation not in ("square", "relu"):
            raise ValueError(f"activation must be 'square' or 'relu', got {activation!r}")
        self.M, self.K, self.activation = M, K, activation
        self.W = nn.Parameter(torch.empty(2 * M, K))
        self.V = nn.Parameter(torch.empty(K, M))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """U(±1/√(2M)) for W, U(±1/√K) for V: ``nn.Linear``'s default (kaiming-uniform, a = √5) [P]."""
        bw, bv = 1.0 / math.sqrt(2 * self.M), 1.0 / math.sqrt(self.K)
        self.W.copy_(torch.rand(self.W.shape, generator=generator) * (2 * bw) - bw)
        self.V.copy_(torch.rand(self.V.shape, generator=generator) * (2 * bv) - bv)

    def hidden(self, x: Tensor) -> Tensor:
        """F = σ(XW) ∈ ℝ^{n×K}: XW = W[a] + W[M + b] (the one-hot product, exactly)."""
        pre = self.W.index_select(0, x[:, 0]) + self.W.index_select(0, self.M + x[:, 1])  # faster than W[idx]
        return pre * pre if self.activation == "square" else torch.relu(pre)

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden(x) @ self.V


def centred_mse(out: Tensor, y: Tensor, M: int) -> Tensor:
    """L = (1/n) Σ_i ‖P₁^⊥ŷ_i − (e_{y_i} − 1/M)‖² (sum over classes, mean over samples) [P]."""
    out_c = out - out.mean(dim=1, keepdim=True)
    target = torch.nn.functional.one_hot(y, M).to(out.dtype) - 1.0 / M
    return (out_c - target).pow(2).sum(dim=1).mean()


class Li2Config(BaseModel):
    """Task and model of one Li₂ run (defaults: the bridge's setup, M = 71, K = 2048, n = 2016, σ = x²)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    M: int = Field(71, ge=3, description="modulus = number of classes")
    K: int = Field(2048, ge=1, description="hidden width")
    n_train: int = Field(2016, ge=1, description="training pairs (2016 = 40% of 71²)")
    activation: Literal["square", "relu"] = "square"

    @model_validator(mode="after")
    def _split_nonempty(self) -> Li2Config:
        if not self.n_train < self.M**2:
            raise ValueError(f"n_train={self.n_train} leaves no test pairs for M={self.M} (M² = {self.M ** 2})")
        return self


class Li2Task:
    """The Li₂ workload as a :class:`verify.tasks.base.Task`. Data ``{"train": (x, y), "test": (x, y)}``; a batch
    is the whole training set when ``batch_size ≥ n`` (the setup: full batch), else a subset without replacement."""

    name = "li2"
    config_class = Li2Config

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        cfg = Li2Config.model_validate(config)
        x, y, xt, yt = li2_split(cfg.M, cfg.n_train, generator)
        return {"train": (x, y), "test": (xt, yt), "M": cfg.M}

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        cfg = Li2Config.model_validate(config)
        model = Li2MLP(cfg.M, cfg.K, cfg.activation)
        model.reset_parameters(generator)  # on the CPU from the init stream: device-independent
        return model.to(device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return sample_rows(data, batch_size, generator)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return centred_mse(model(x), y, model.M)  # type: ignore[arg-type]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """``acc`` (argmax of ŷ) and the centred-MSE ``loss`` on the whole split."""
        return split_metrics(model, data, split, lambda out, y: centred_mse(out, y, model.M))  # type: ignore[arg-type]

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        """No attention: the author's Gram group of this workload is the first-layer W (``monitor_groups``)."""
        return ["W"]

    def monitor_groups(self, model: nn.Module) -> dict[str, list[str]]:
        """``{"first_layer": ["W"]}``: the δ-scope of the Li₂ bridge ([P] first-layer ΔW only, P = 2MK)."""
        return {GROUP: ["W"]}

    def run_label(self, config: BaseModel) -> str:
        """``{act}-M{M}-K{K}``: files ``li2-sq-M71-K2048-wd0.0002-s0.jsonl.gz``."""
        cfg = Li2Config.model_validate(config)
        return f"{'sq' if cfg.activation == 'square' else 'relu'}-M{cfg.M}-K{cfg.K}"


LI2 = Li2Task()

_OPTIMIZER = registry.get("li2_weight_decay")()  # "adam": η as Adam's L2 term, the bridge script's choice [P]

# The setup's run settings: full-batch Adam, no clipping, no early stop, eval and monitor every epoch (W = 20).
_SETUP: dict[str, Any] = {
    "optimizer": _OPTIMIZER, "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 2e-4,
    "batch_size": 2016, "grad_clip": None, "max_steps": 400, "eval_every": 2, "early_stop": None,
    "grok_threshold": 0.95, "monitor": {"window": 20, "every": 1, "groups": ["task"], "storage_dtype": "float64"},
    "defect": {"every": 0}, "probes": {"every": 0},
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # M = 71, K = 2048, n = 2016, σ = x²
    "relu": {"activation": "relu"},
    "control": {},  # the same with weight decay 0 (RECOMMENDED)
    "tiny": {"M": 23, "K": 256, "n_train": 211},
}
RECOMMENDED: dict[str, dict[str, Any]] = {
    "paper": derive(_SETUP),
    "relu": derive(_SETUP),
    "control": derive(_SETUP, weight_decay=0.0),
    "tiny": derive(_SETUP, batch_size=211),
}
