"""Dyck-1 depth prediction and the author's causal transformer, written out nanoGPT-style.

Source: [P] dyck_scan ``dyck/grok_sweep.py`` (``gen_balanced_parentheses``, ``build_depth_dataset``,
``split_dataset``, ``DyckTransformerLM``, ``DyckSweepConfig``); see ``shared/reference/author-experiments.md`` §2.2.

The task: a balanced-parentheses string (``(`` = 0, ``)`` = 1, pad = 2) and, at every position, the stack depth after
that token (13 classes, 0..12; padding targets −100 are ignored). A fixed pool of 5,050 sequences is split 50 train /
5,000 test; the metric ``acc`` is per-token accuracy on the test split. Departures from the author, all deliberate:

* the data come from the harness's data stream: one integer drawn from it seeds the author's generator (Python
  ``random.Random``, same draw order) and the split permutation. ``fixed_data_seed`` bypasses the stream and runs the
  author's procedure with that seed, so ``fixed_data_seed=0`` rebuilds the author's ``DATA_SEED = 0`` data set (same
  for every run, as the author's), given the same CPython ``random`` and ``torch.randperm`` streams;
* attention uses separate ``q_proj``/``k_proj``/``v_proj``/``o_proj`` linears (the Gram group is selectable by name);
  parameter count (273,421) and init distributions are those of the author's ``nn.TransformerEncoder``, except that
  every layer is drawn independently (``nn.TransformerEncoder`` deep-copies one layer, so the author's two layers start
  identical);
* the author's out-of-distribution eval (ctx 48, ≤ 20 pairs) is left out: its depths can exceed the 13 classes.

The attention building blocks (:class:`Attention`, :class:`Block`) are shared with ``verify.tasks.scan``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from verify.tasks.base import eval_mode
from verify.tasks.layers import Attention

__all__ = [
    "ATTN_PROJ",
    "CLOSE",
    "DYCK",
    "IGNORE",
    "OPEN",
    "PAD",
    "PRESETS",
    "RECOMMENDED",
    "Attention",
    "Block",
    "DyckConfig",
    "DyckTask",
    "DyckTransformer",
    "attention_weight_names",
    "dyck_sequence",
    "init_attention",
    "init_linear",
    "make_dataset",
    "uniform_",
]

OPEN, CLOSE, PAD = 0, 1, 2  # vocabulary of [P] dyck/grok_sweep.py
VOCAB_SIZE = 3
IGNORE = -100  # target of padding positions (ignored by the loss and the metrics)
ATTN_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")


class DyckConfig(BaseModel):
    """Task and model of one Dyck-1 run (defaults: the author's ``DyckSweepConfig``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # task
    n_sequences: int = Field(5050, ge=2, description="size of the fixed pool (train + test)")
    n_train: int = Field(50, ge=1, description="training sequences; the rest of the pool is the test split")
    max_pairs: int = Field(12, ge=1, description="n_pairs ~ U{1..max_pairs}; depth classes 0..max_pairs")
    ctx_len: int = Field(24, ge=2, description="sequences are truncated to this length")
    p_open: float = Field(0.55, gt=0.0, lt=1.0, description="P(open) when both moves are legal")
    fixed_data_seed: int | None = Field(None, ge=0, description="None: seed from the data stream; int: the "
                                        "author's procedure with this seed (0 = the author's data set)")
    # model
    n_layers: int = Field(2, ge=1)
    d_model: int = Field(128, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(256, ge=1)
    n_positions: int = Field(48, ge=1, description="learned positional embedding rows (author: 48 for OOD eval)")

    @model_validator(mode="after")
    def _consistent(self) -> DyckConfig:
        if self.n_train >= self.n_sequences:
            raise ValueError(f"n_train={self.n_train} leaves no test sequences out of n_sequences={self.n_sequences}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        if self.ctx_len > self.n_positions:
            raise ValueError(f"ctx_len={self.ctx_len} exceeds n_positions={self.n_positions}")
        return self

    @property
    def n_classes(self) -> int:
        """Depth classes 0..max_pairs (13 for the author's 12 pairs)."""
        return self.max_pairs + 1


# --- data --------------------------------------------------------------------------------------------------------


def dyck_sequence(max_pairs: int, p_open: float, rng: random.Random) -> list[int]:
    """One balanced string, built as [P] ``gen_balanced_parentheses`` (the same draws from ``rng``, in order):
    ``n_pairs ~ U{1..max_pairs}``; left to right, open with probability ``p_open`` when both moves are legal."""
    n_pairs = rng.randint(1, max_pairs)
    seq: list[int] = []
    opened = depth = 0
    for _ in range(2 * n_pairs):
        can_open, can_close = opened < n_pairs, depth > 0
        if can_open and (not can_close or rng.random() < p_open):  # rng is drawn only when both moves are legal
            seq.append(OPEN)
            opened, depth = opened + 1, depth + 1
        else:
            seq.append(CLOSE)
            depth -= 1
    return seq


def make_dataset(cfg: DyckConfig, seed: int) -> dict[str, tuple[Tensor, Tensor]]:
    """The fixed pool and its split: ``{"train": (x, y), "test": (x, y)}``, int64 of shape (N, ctx_len).

    As [P] ``build_depth_dataset`` + ``split_dataset``: sequences from ``random.Random(seed)``, truncated to
    ``ctx_len`` and padded with ``PAD``; ``y`` = depth after each token (``IGNORE`` on padding); the pool is permuted
    by ``torch.randperm`` seeded with ``seed`` and the first ``n_train`` rows are the training split.
    """
    rng = random.Random(seed)
    x = torch.full((cfg.n_sequences, cfg.ctx_len), PAD, dtype=torch.int64)
    y = torch.full((cfg.n_sequences, cfg.ctx_len), IGNORE, dtype=torch.int64)
    for i in range(cfg.n_sequences):
        seq = torch.tensor(dyck_sequence(cfg.max_pairs, cfg.p_open, rng)[: cfg.ctx_len])
        x[i, : len(seq)] = seq
        y[i, : len(seq)] = torch.cumsum(1 - 2 * seq, 0)  # "(" → +1, ")" → −1
    perm = torch.randperm(cfg.n_sequences, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[: cfg.n_train], perm[cfg.n_train :]
    return {"train": (x[tr], y[tr]), "test": (x[te], y[te])}


# --- model -------------------------------------------------------------------------------------------------------


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


class DyckTransformer(nn.Module):
    """Token + learned positional embedding → causal pre-norm blocks → LayerNorm → per-position depth head.

    Parameter names: ``tok_emb.weight``, ``pos_emb``, ``layers.{i}.attn.{q,k,v,o}_proj.{weight,bias}``,
    ``layers.{i}.ln{1,2}.*``, ``layers.{i}.mlp.{0,2}.*``, ``ln_f.*``, ``head.*``. No padding mask is needed: padding
    only ever follows the real tokens, and the causal mask hides later keys.
    """

    def __init__(self, cfg: DyckConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(VOCAB_SIZE, cfg.d_model)
        self.pos_emb = nn.Parameter(torch.empty(cfg.n_positions, cfg.d_model))
        self.layers = nn.ModuleList(Block(cfg.d_model, cfg.n_heads, cfg.d_ff) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, T, n_classes) for tokens ``x`` (B, T)."""
        h = self.tok_emb(x) + self.pos_emb[: x.shape[1]]
        for block in self.layers:
            h = block(h, causal=True)
        return self.head(self.ln_f(h))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every parameter from ``generator`` alone, with the distributions PyTorch gives the author's
        ``nn.TransformerEncoderLayer`` stack: embeddings N(0, 1) (both ``nn.Embedding``); Q/K/V xavier-uniform over
        the fused 3d×d ``in_proj``, U(±√(6/4d)), zero bias; O ``nn.Linear`` default weight, zero bias; MLP and head
        ``nn.Linear`` defaults U(±1/√fan_in); LayerNorm (1, 0)."""
        g = generator
        nn.init.normal_(self.tok_emb.weight, generator=g)
        nn.init.normal_(self.pos_emb, generator=g)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, Attention):
                init_attention(module, g, o_bound=1.0 / math.sqrt(module.o_proj.in_features))
        for lin in [*(m for blk in self.layers for m in blk.mlp if isinstance(m, nn.Linear)), self.head]:
            init_linear(lin, g)


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
    the δ-scope of the author's Gram spectra ([P] dyck_scan ``spectral/thesis_table7_replication.py``)."""
    suffixes = tuple(f".{proj}.weight" for proj in ATTN_PROJ)
    return [name for name, _ in model.named_parameters() if name.endswith(suffixes)]


# --- the Task ----------------------------------------------------------------------------------------------------


class DyckTask:
    """Dyck-1 depth prediction as a :class:`verify.tasks.base.Task`. Batches are ``(x, y)`` int64 pairs."""

    name = "dyck"
    config_class = DyckConfig

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        """``{"train": (x, y), "test": (x, y)}``; one draw from ``generator`` unless ``fixed_data_seed`` is set."""
        cfg = DyckConfig.model_validate(config)
        seed = cfg.fixed_data_seed
        if seed is None:
            seed = int(torch.randint(2**62, (), generator=generator))
        return make_dataset(cfg, seed)

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        """Built on the meta device (PyTorch's default init never runs, the global RNG is untouched), initialised
        on the CPU from ``generator``, then moved to ``device``."""
        cfg = DyckConfig.model_validate(config)
        with torch.device("meta"):
            model = DyckTransformer(cfg)
        model.to_empty(device="cpu")
        model.reset_parameters(generator)
        return model.to(device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``batch_size`` training sequences drawn uniformly with replacement (as the author)."""
        x, y = data["train"]
        idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
        return x[idx], y[idx]

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Mean cross-entropy over the non-padding tokens of the batch."""
        x, y = batch
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str, chunk: int = 1024) -> dict[str, float]:
        """On a whole split: ``acc`` (per-token accuracy, the author's grokking metric), ``loss`` (token-mean CE),
        ``seq_acc`` (fraction of sequences right at every token). Eval mode; the previous mode is restored."""
        x, y = data[split]
        with eval_mode(model):
            device = next(model.parameters()).device
            loss_sum, correct, tokens, seq_ok = 0.0, 0, 0, 0
            for i in range(0, len(x), chunk):
                xb, yb = x[i : i + chunk].to(device), y[i : i + chunk].to(device)
                logits = model(xb)
                mask = yb != IGNORE
                hit = (logits.argmax(-1) == yb) & mask
                loss_sum += F.cross_entropy(logits.flatten(0, 1), yb.flatten(), ignore_index=IGNORE,
                                            reduction="sum").item()
                correct += int(hit.sum())
                tokens += int(mask.sum())
                seq_ok += int((hit | ~mask).all(1).sum())
        return {"acc": correct / tokens, "loss": loss_sum / tokens, "seq_acc": seq_ok / len(x)}

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        return attention_weight_names(model)

    def run_label(self, config: BaseModel) -> str:
        """``d{d_model}-l{n_layers}``: run files are ``dyck-d128-l2-wd{wd:g}-s{seed}.jsonl(.gz)`` for the author."""
        cfg = DyckConfig.model_validate(config)
        return f"d{cfg.d_model}-l{cfg.n_layers}"


DYCK = DyckTask()

# Task-config overrides (fields of DyckConfig).
PRESETS: dict[str, dict[str, Any]] = {
    # The author's setup ([P] dyck/grok_sweep.py DyckSweepConfig): 273,421 parameters, p_attn = 131,072.
    "author": {},
    # CPU/CI-sized: 1 layer, d 64 (37,709 parameters), 50 train / 1,000 test sequences of the same generator.
    # Measured with RECOMMENDED["tiny"] (plain AdamW loop, 1 thread, ~13 ms/step): wd 1 reaches test acc >= 0.99 at
    # step 300 / 200 / 200 / 200 for seeds 0 / 1 / 3 / 4 (seed 2: 0.975 at 1500); wd 0 memorises by step 200 and
    # stays at 0.93-0.965 through 1500 steps for all five seeds. Per-token accuracy starts high (~0.9 once the easy
    # tokens are learnt), so the grok threshold for this preset is 0.99, not the author's 0.95.
    "tiny": {"n_sequences": 1050, "n_layers": 1, "d_model": 64, "d_ff": 128},
}

# Run settings for the harness (optimiser, schedule, monitor), named as in verify.config; not validated here.
# [P] dyck/grok_sweep.py: AdamW, batch 50 drawn *with replacement* from the 50 training sequences, clip 1.0, eval
# every 100 steps, early stop at test acc >= 0.99 on 10 consecutive evals; attention weights logged every 200 steps
# (wd-0 controls: every 500, 10k steps; the dense retrain for the Gram analysis, s42 wd 1: every 50). The Gram
# replication ([P] spectral/thesis_table7_replication.py) uses W = 3 and grok step = first test acc >= 0.95; the
# lifecycle scripts use W = 5.
RECOMMENDED: dict[str, dict[str, Any]] = {
    "author": {
        "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.98), "weight_decay": 1.0, "batch_size": 50,
        "grad_clip": 1.0, "max_steps": 20_000, "eval_every": 100, "grok_threshold": 0.95,
        "early_stop": {"acc": 0.99, "patience": 10}, "monitor": {"window": 3, "every": 200, "groups": ["attn"]},
    },
    "author_control": {
        "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.98), "weight_decay": 0.0, "batch_size": 50,
        "grad_clip": 1.0, "max_steps": 10_000, "eval_every": 100, "grok_threshold": 0.95,
        "early_stop": {"acc": 0.99, "patience": 10}, "monitor": {"window": 3, "every": 500, "groups": ["attn"]},
    },
    "author_dense": {
        "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.98), "weight_decay": 1.0, "batch_size": 50,
        "grad_clip": 1.0, "max_steps": 20_000, "eval_every": 100, "grok_threshold": 0.95,
        "early_stop": {"acc": 0.99, "patience": 10}, "monitor": {"window": 5, "every": 50, "groups": ["attn"]},
    },
    "tiny": {
        "optimizer": "adamw", "lr": 3e-3, "betas": (0.9, 0.98), "weight_decay": 1.0, "batch_size": 50,
        "grad_clip": 1.0, "max_steps": 1500, "eval_every": 100, "grok_threshold": 0.99,
        "early_stop": {"acc": 0.99, "patience": 3}, "monitor": {"window": 3, "every": 25, "groups": ["attn"]},
    },
}
