"""Layers shared by the workloads' transformers (each model stays a short readable module of its own): attention,
the pre-norm block, ``nn.Linear`` / ``nn.MultiheadAttention`` initialisation from a generator, and the names of the
attention weights (the author's Gram group)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ATTN_PROJ", "Attention", "Block", "attention_weight_names", "init_attention", "init_linear", "uniform_"]

ATTN_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")


class Attention(nn.Module):
    """Multi-head attention with separate Q/K/V/O projections (all with bias).

    Self-attention, or cross-attention when ``context`` is given. ``causal``: query i sees the keys up to its own
    position (self-attention; with a cache, the new queries are the last positions). ``key_mask`` (B, S) bool: True
    where a key may be attended (False on padding). ``cache`` (a dict the caller owns, for incremental decoding):
    self-attention appends this call's keys and values to the cached ones; cross-attention projects ``context`` on
    the first call and reuses it afterwards.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, context: Tensor | None = None, *, causal: bool = False,
                key_mask: Tensor | None = None, cache: dict[str, Tensor] | None = None) -> Tensor:
        B, T, C = x.shape
        h = self.n_heads
        heads = lambda t: t.view(B, t.shape[1], h, C // h).transpose(1, 2)  # noqa: E731  # (B, heads, len, head_dim)
        q = heads(self.q_proj(x))
        if cache is not None and context is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            kv = x if context is None else context
            k, v = heads(self.k_proj(kv)), heads(self.v_proj(kv))
            if cache is not None:
                if context is None and "k" in cache:
                    k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        S = k.shape[2]
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if causal and (mask is not None or S != T):  # SDPA's is_causal needs S == T and no other mask
            allowed = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            mask, causal = allowed if mask is None else mask & allowed, False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm transformer layer: x + attn(LN(x)), then x + MLP(LN(x)); GELU, dropout 0."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor, *, causal: bool = False, key_mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), causal=causal, key_mask=key_mask)
        return x + self.mlp(self.ln2(x))


def uniform_(t: Tensor, bound: float, g: torch.Generator | None) -> None:
    """U(−bound, bound) in place, from ``g``."""
    nn.init.uniform_(t, -bound, bound, generator=g)


def init_linear(lin: nn.Linear, g: torch.Generator | None, weight_bound: float | None = None) -> None:
    """``nn.Linear`` default init from ``g``: weight U(±1/√fan_in) (or U(±weight_bound)), bias U(±1/√fan_in)."""
    default = 1.0 / math.sqrt(lin.in_features)
    uniform_(lin.weight, default if weight_bound is None else weight_bound, g)
    uniform_(lin.bias, default, g)


def init_attention(attn: Attention, g: torch.Generator | None, o_bound: float) -> None:
    """``nn.MultiheadAttention`` init from ``g``: Q/K/V U(±√(6/4d)) (xavier over the fused in_proj), O U(±o_bound),
    all biases zero."""
    d = attn.q_proj.in_features
    for name in ATTN_PROJ:
        lin: nn.Linear = getattr(attn, name)
        uniform_(lin.weight, o_bound if name == "o_proj" else math.sqrt(6.0 / (4 * d)), g)
        nn.init.zeros_(lin.bias)


def attention_weight_names(model: nn.Module) -> list[str]:
    """Names of every attention weight matrix W_Q, W_K, W_V, W_O (self and cross; biases excluded), in model order:
    the δ-scope of the author's Gram spectra ([P] grokking-integrability, dyck_scan
    ``spectral/thesis_table7_replication.py``)."""
    suffixes = tuple(f".{proj}.weight" for proj in ATTN_PROJ)
    return [name for name, _ in model.named_parameters() if name.endswith(suffixes)]
