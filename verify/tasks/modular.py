"""Modular arithmetic mod p and the author's 2-token transformer, written out nanoGPT-style.

Source: [P] grokking-integrability ``grok_sweep.py`` (``SweepConfig``, the dataset builder and the
``nn.TransformerEncoder`` model); see ``shared/reference/author-experiments.md`` §1.2. Two deliberate departures:

* the train/test split comes from its own generator seeded by ``data_seed`` (the author shuffles with
  ``random.Random(seed)``, so the split moved with the model seed; §1.4);
* attention uses separate ``q_proj``/``k_proj``/``v_proj``/``o_proj`` linears instead of the fused ``in_proj_weight``,
  so the attention-weight group (W_Q, W_K, W_V, W_O) is selectable by parameter name. The parameter count and the
  initialisation distributions are those of ``nn.TransformerEncoder`` (290,401 parameters at p = 97, d = 128,
  2 layers, d_ff = 256).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OPS",
    "Attention",
    "Block",
    "ModelConfig",
    "ModularTransformer",
    "all_pairs",
    "attention_weight_names",
    "build_model",
    "make_dataset",
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

ATTN_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")


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


def make_dataset(p: int, op: str, train_fraction: float, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split the full table into ``(train_x, train_y, test_x, test_y)``.

    The permutation comes from a private ``torch.Generator`` seeded by ``seed`` (the data seed), so the split is
    independent of model initialisation and batch order. ``n_train = int(train_fraction * N)`` as the author.
    """
    x, y = all_pairs(p, op)
    n = len(y)
    n_train = int(train_fraction * n)
    if not 0 < n_train < n:
        raise ValueError(f"train_fraction={train_fraction} leaves {n_train} of {n} pairs for training; need 1..{n - 1}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


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


class Attention(nn.Module):
    """Bidirectional multi-head self-attention with separate Q/K/V/O projections (all with bias)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        # (B, T, C) -> (B, heads, T, head_dim)
        q, k, v = (proj(x).view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for proj in
                   (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(q, k, v)  # no causal mask: both tokens see each other
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm encoder layer: x + attn(LN(x)), then x + MLP(LN(x)); GELU, dropout 0."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


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
        for lin in [self.head, *(m for blk in self.layers for m in blk.mlp if isinstance(m, nn.Linear))]:
            _linear_default(lin, g)
            bound = 1.0 / math.sqrt(lin.in_features)
            nn.init.uniform_(lin.bias, -bound, bound, generator=g)


def _linear_default(lin: nn.Linear, g: torch.Generator | None) -> None:
    """``nn.Linear.reset_parameters`` weight init (kaiming-uniform, a = √5, i.e. U(±1/√fan_in)) from ``g``."""
    nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=g)


def build_model(cfg: ModelConfig, seed: int, device: str | torch.device = "cpu") -> ModularTransformer:
    """Build the model and initialise it from ``torch.Generator().manual_seed(seed)`` (the init stream).

    Modules are constructed on the meta device, so PyTorch's default init never runs and the global RNG is not
    touched; all values come from the seeded generator (on CPU, then moved, so the init is device-independent).
    """
    with torch.device("meta"):
        model = ModularTransformer(cfg)
    model.to_empty(device="cpu")
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model.to(device)


def attention_weight_names(model: nn.Module) -> list[str]:
    """Names of the attention weight matrices W_Q, W_K, W_V, W_O of every layer (biases excluded), in model order.

    This is the δ-scope of the author's Gram / trajectory PCA ([P] grokking-integrability, dyck_scan).
    """
    suffixes = tuple(f".{proj}.weight" for proj in ATTN_PROJ)
    return [name for name, _ in model.named_parameters() if name.endswith(suffixes)]
