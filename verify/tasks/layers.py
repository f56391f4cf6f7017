"""Layers shared by the workloads' transformers (each model stays a short readable module of its own)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Attention"]


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
