"""Modular arithmetic mod p and the author's 2-token transformer, written out nanoGPT-style.

Source: [P] grokking-integrability ``grok_sweep.py`` (``SweepConfig``, the dataset builder and the
``nn.TransformerEncoder`` model). Two deliberate departures:

* the train/test split comes from its own generator seeded by ``data_seed`` (the author shuffles with
  ``random.Random(seed)``, so the split moved with the model seed);
* attention uses separate ``q_proj``/``k_proj``/``v_proj``/``o_proj`` linears instead of the fused ``in_proj_weight``,
  so the attention-weight group (W_Q, W_K, W_V, W_O) is selectable by parameter name. The parameter count and the
  initialisation distributions are those of ``nn.TransformerEncoder`` (290,401 parameters at p = 97, d = 128,
  2 layers, d_ff = 256).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from torch import Tensor, nn

from verify.tasks.common import AttentionGramTask, build_initialised, split_metrics
from verify.tasks.layers import ATTN_PROJ, Attention, Block, attention_weight_names

__all__ = [
    "MODULAR",
    "OPS",
    "PRESETS",
    "RECOMMENDED",
    "Attention",
    "Block",
    "ModelConfig",
    "ModularConfig",
    "ModularTask",
    "ModularTransformer",
    "all_pairs",
    "attention_weight_names",
    "build_model",
    "init_model",
    "make_dataset",
    "split_dataset",
]

# a, b are int64 tensors; the result is reduced mod p by ``all_pairs``.
OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "x2_y2": lambda a, b: a**2 + b**2,
    "x2_xy_y2": lambda a, b: a**2 + a * b + b**2,
    "x3_xy": lambda a, b: a**3 + a * b,
}


def all_pairs(p: int, op: str) -> tuple[Tensor, Tensor]:
    """Every input ``[a, b]`` (shape (N, 2), int64) and its label ``op(a, b) mod p`` (shape (N,)).

    N = p² for every op except ``mul``, which the author restricts to a, b ∈ 1..p−1 (N = (p−1)²) so that the
    table is the multiplicative group. Rows are in lexicographic (a, b) order; the split shuffles them.
    """
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(OPS)}")
    if p < 2:
        raise ValueError(f"p must be >= 2, got {p}")
    lo = 1 if op == "mul" else 0
    r = torch.arange(lo, p, dtype=torch.int64)
    a, b = torch.meshgrid(r, r, indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    y = torch.remainder(OPS[op](a, b), p)  # remainder, not fmod: sub must land in 0..p−1
    return torch.stack([a, b], dim=1), y


def split_dataset(
    p: int, op: str, train_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split the full table into ``(train_x, train_y, test_x, test_y)`` by one ``randperm`` from ``generator``
    (the data stream). ``n_train = int(train_fraction * N)`` as the author."""
    x, y = all_pairs(p, op)
    n = len(y)
    n_train = int(train_fraction * n)
    if not 0 < n_train < n:
        raise ValueError(f"train_fraction={train_fraction} leaves {n_train} of {n} pairs for training; need 1..{n - 1}")
    perm = torch.randperm(n, generator=generator)
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


def make_dataset(p: int, op: str, train_fraction: float, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`split_dataset` with a private ``torch.Generator().manual_seed(seed)``, so the split is independent of
    model initialisation and batch order."""
    return split_dataset(p, op, train_fraction, torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the modular-arithmetic transformer ([P] ``grok_sweep.py`` ``SweepConfig``)."""

    p: int = 97  # vocabulary size = number of classes (tokens are the residues 0..p−1; no "=" token)
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 256
    seq_len: int = 2  # [a, b]

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")


class ModularTransformer(nn.Module):
    """Token embedding + learned positions → pre-norm blocks → final LayerNorm → linear head read at position 0.

    Parameter names: ``tok_emb.weight``, ``pos_emb``, ``layers.{i}.attn.{q,k,v,o}_proj.{weight,bias}``,
    ``layers.{i}.ln{1,2}.*``, ``layers.{i}.mlp.{0,2}.*``, ``ln_f.*``, ``head.*``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.p, cfg.d_model)
        self.pos_emb = nn.Parameter(torch.empty(cfg.seq_len, cfg.d_model))
        self.layers = nn.ModuleList(Block(cfg.d_model, cfg.n_heads, cfg.d_ff) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.p)

    def forward(self, x: Tensor) -> Tensor:
        h = self.tok_emb(x) + self.pos_emb
        for block in self.layers:
            h = block(h)
        return self.head(self.ln_f(h)[:, 0])  # logits (B, p), read at position 0 as the author

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every parameter from ``generator`` alone (the global RNG is never used when one is given).

        The distributions are the ones PyTorch gives the author's ``nn.TransformerEncoder``:
        embedding N(0, 1); positions randn/√d (author); Q/K/V xavier-uniform over the fused 3d×d ``in_proj``,
        i.e. U(±√(6/4d)), with zero bias; O ``nn.Linear`` default weight with zero bias (as ``MultiheadAttention``);
        MLP and head ``nn.Linear`` defaults U(±1/√fan_in); LayerNorm (1, 0).
        """
        self._reset(generator, heads=[self.head])

    def _reset(self, generator: torch.Generator | None, heads: list[nn.Linear]) -> None:
        """The init of :meth:`reset_parameters` with ``heads`` drawn (in order) where the one head is drawn: the
        multi-task model reuses it with a head per task."""
        g = generator
        d = self.cfg.d_model
        nn.init.normal_(self.tok_emb.weight, generator=g)
        self.pos_emb.copy_(torch.randn(self.pos_emb.shape, generator=g) / math.sqrt(d))
        qkv_bound = math.sqrt(6.0 / (d + 3 * d))
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, Attention):
                for name in ATTN_PROJ:
                    lin: nn.Linear = getattr(module, name)
                    if name == "o_proj":
                        _linear_default(lin, g)
                    else:
                        nn.init.uniform_(lin.weight, -qkv_bound, qkv_bound, generator=g)
                    nn.init.zeros_(lin.bias)
        for lin in [*heads, *(m for blk in self.layers for m in blk.mlp if isinstance(m, nn.Linear))]:
            _linear_default(lin, g)
            bound = 1.0 / math.sqrt(lin.in_features)
            nn.init.uniform_(lin.bias, -bound, bound, generator=g)


def _linear_default(lin: nn.Linear, g: torch.Generator | None) -> None:
    """``nn.Linear.reset_parameters`` weight init (kaiming-uniform, a = √5, i.e. U(±1/√fan_in)) from ``g``."""
    nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=g)


def init_model(cfg: ModelConfig, generator: torch.Generator, device: str | torch.device = "cpu") -> ModularTransformer:
    """Build the model and initialise every parameter from ``generator`` (the init stream).

    PyTorch's default init runs with the global RNG's state restored afterwards, so the global stream is not
    touched; all values come from the generator (on CPU, then moved, so the init is device-independent).
    """
    return build_initialised(lambda: ModularTransformer(cfg), generator, device)


def build_model(cfg: ModelConfig, seed: int, device: str | torch.device = "cpu") -> ModularTransformer:
    """:func:`init_model` from ``torch.Generator().manual_seed(seed)``."""
    return init_model(cfg, torch.Generator().manual_seed(seed), device)


# --- the Task --------------------------------------------------------------------------------------------------

Op = Literal["add", "sub", "mul", "x2_y2", "x2_xy_y2", "x3_xy"]


class ModularConfig(BaseModel):
    """Task and model of one modular-arithmetic run (defaults: the author's ``SweepConfig``, p = 97).

    Optimiser, schedule, seeds and monitor live in ``verify.harness.config.RunConfig``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    p: int = Field(97, ge=3, description="modulus = vocabulary size = number of classes")
    op: Op = "add"
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    n_layers: int = Field(2, ge=1)
    d_model: int = Field(128, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(256, ge=1)

    @field_validator("n_heads")
    @classmethod
    def _heads_divide_width(cls, n_heads: int, info: ValidationInfo) -> int:
        d_model = info.data.get("d_model")  # absent if d_model itself failed validation
        if d_model is not None and d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        return n_heads

    @model_validator(mode="after")
    def _split_nonempty(self) -> ModularConfig:
        n = (self.p - 1) ** 2 if self.op == "mul" else self.p**2
        n_train = int(self.train_fraction * n)
        if not 0 < n_train < n:
            raise ValueError(f"train_fraction={self.train_fraction} leaves {n_train} of {n} pairs for training")
        return self

    def architecture(self) -> ModelConfig:
        """The model part as a :class:`ModelConfig`."""
        return ModelConfig(p=self.p, n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
                           d_ff=self.d_ff)


class ModularTask(AttentionGramTask):
    """Modular arithmetic as a :class:`verify.tasks.base.Task`. Data ``{"train": (x, y), "test": (x, y)}``; batches
    ``(x, y)`` drawn with replacement ([P] ``grok_sweep.py``); metric ``acc`` = accuracy of the answer token."""

    name = "modular"
    config_class = ModularConfig

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        cfg = ModularConfig.model_validate(config)
        x, y, xt, yt = split_dataset(cfg.p, cfg.op, cfg.train_fraction, generator)
        return {"train": (x, y), "test": (xt, yt)}

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        return init_model(ModularConfig.model_validate(config).architecture(), generator, device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = data["train"]
        idx = torch.randint(len(y), (batch_size,), generator=generator)
        return x[idx], y[idx]

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """``acc`` and mean cross-entropy ``loss`` on the whole split, in eval mode (the previous mode restored)."""
        return split_metrics(model, data, split, F.cross_entropy)

    def run_label(self, config: BaseModel) -> str:
        """``{op}-p{p}``: run files are ``modular-{op}-p{p}-wd{wd:g}-s{seed}.jsonl(.gz)``."""
        cfg = ModularConfig.model_validate(config)
        return f"{cfg.op}-p{cfg.p}"


MODULAR = ModularTask()

# Presets (see verify.tasks.__init__): task-config overrides and run settings, merged by name. Measured numbers: one
# torch thread, derived streams (RunConfig.streams; the "plain" numbers of runs before issue 5 are in git history).
PRESETS: dict[str, dict[str, Any]] = {
    # The author's full setup ([P] grok_sweep.py SweepConfig; 290,401 parameters).
    # Measured: wd 1 groks at step 2400 / 2900 / 2900 for seeds 0 / 1 / 2 after memorising by step 500 (~20 ms/step).
    "mod97": {},
    # CI-sized (measured on a 2-core CPU; 57,851 parameters). Measured, seeds 0 / 1 / 2: wd 1 groks at step
    # 1000 / 1100 / 1200 after memorising by step 300; wd 0 memorises by step 200 and test acc stays <= 0.016 through
    # 3000 steps.
    "tiny": {"p": 59, "n_layers": 1, "d_model": 64, "n_heads": 4, "d_ff": 256},
    # `make demo`: the author's exact setup capped at 6,000 steps so the no-wd control ends too. Measured: wd 0
    # memorises by step 400 and test acc stays <= 0.060 / 0.041 / 0.045 through 6000 steps (seeds 0 / 1 / 2).
    "demo": {},
}
RECOMMENDED: dict[str, dict[str, Any]] = {
    # RunConfig's defaults are the author's: AdamW lr 1e-3, betas (0.9, 0.98), wd 1, batch 512, clip 1, eval every
    # 100, early stop at test acc >= 0.98 x 3, W = 10, Δs = 100 on all parameters and the attention weights.
    "mod97": {},
    "tiny": {"lr": 3e-3, "max_steps": 3000, "monitor": {"window": 10, "every": 50}},
    "demo": {"max_steps": 6000},
}
