"""GPT-2 language modelling on the offline public-domain corpus, written out nanoGPT-style.

Sources: Radford et al. 2019 (GPT-2: pre-LayerNorm blocks, GELU MLP 4×, learned positions, tied input/output
embedding, init N(0, 0.02) with the residual projections scaled by 1/√(2·n_layer)); Karpathy's nanoGPT
``model.py`` (layout and the 124M configuration: 124,439,808 parameters with the tied head); the author's
TS-51M / GPT-2 settings ([P] mini_gpt, the SED and backbone scripts); the offline public-domain corpus and
the official GPT-2 BPE files (built by :mod:`verify.corpus`, ``python -m verify.corpus``; see the README). Departures
from nanoGPT, on purpose:

* attention has separate ``q_proj``/``k_proj``/``v_proj``/``o_proj`` linears (not a fused ``c_attn``), so W_Q, W_K,
  W_V, W_O are selectable by name; the parameter count is unchanged;
* no dropout (it would draw from the global RNG; nanoGPT's default is 0 as well);
* the tied output head is ``F.linear(h, wte.weight)``: one parameter, nothing to re-tie after ``to_empty``;
* every parameter is drawn from an explicit generator (``build_initialised``: the global RNG is left as it was).

There is no grokking in GPT-2: ``acc`` is next-token accuracy, reported because the harness expects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from verify import corpus as lm_corpus
from verify.tasks.base import eval_mode
from verify.tasks.common import AttentionGramTask, build_initialised, chunks
from verify.tasks.layers import Attention, attention_weight_names

__all__ = [
    "GPT2",
    "PRESETS",
    "RECOMMENDED",
    "GPT2Config",
    "GPT2Model",
    "GPT2Task",
    "ModelConfig",
    "attention_weight_names",
    "build_model",
    "hidden_matrix_names",
    "no_decay_names",
]


# ---------------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelConfig:
    """GPT-2 architecture; the defaults are the 124M model (nanoGPT ``GPTConfig``, ``bias=True``)."""

    vocab_size: int = lm_corpus.N_VOCAB
    n_ctx: int = 1024
    n_layer: int = 12
    n_head: int = 12
    d_model: int = 768

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"n_head={self.n_head} must divide d_model={self.d_model}")


class MLP(nn.Module):
    """d → 4d → d with tanh-approximated GELU (GPT-2's ``gelu``)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.c_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-LN residual block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), causal=True)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    """Token + position embeddings → ``n_layer`` blocks → final LN → tied head; returns logits (B, T, vocab).

    Parameter names: ``wte.weight``, ``wpe.weight``, ``blocks.{i}.ln_{1,2}.*``,
    ``blocks.{i}.attn.{q,k,v,o}_proj.{weight,bias}``, ``blocks.{i}.mlp.{c_fc,c_proj}.*``, ``ln_f.*``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        if T > self.cfg.n_ctx:
            raise ValueError(f"sequence length {T} exceeds the context n_ctx={self.cfg.n_ctx}")
        h = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            h = block(h)
        return F.linear(self.ln_f(h), self.wte.weight)  # tied lm_head

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """GPT-2 init from ``generator`` alone: every Linear and Embedding weight N(0, 0.02), the residual
        projections (``attn.o_proj``, ``mlp.c_proj``) N(0, 0.02/√(2·n_layer)); biases 0; LayerNorm (1, 0)."""
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02, generator=generator)
            elif isinstance(module, nn.Linear):
                std = residual_std if name.endswith(("attn.o_proj", "mlp.c_proj")) else 0.02
                nn.init.normal_(module.weight, 0.0, std, generator=generator)
                nn.init.zeros_(module.bias)


def build_model(cfg: ModelConfig, generator: torch.Generator, device: str | torch.device = "cpu") -> GPT2Model:
    """Build on the CPU (the global RNG left as it was), initialise from ``generator``, then move to ``device`` (so
    the init is the same on every device): ``build_initialised``."""
    return build_initialised(lambda: GPT2Model(cfg), generator, device)


def hidden_matrix_names(model: nn.Module) -> list[str]:
    """The 2-D weights inside the blocks (attention and MLP): Muon's parameter group. Embeddings (and with them
    the tied head), positions, LayerNorms and biases go to AdamW (Jordan et al. 2024, Muon; ``torch.optim.Muon``
    accepts 2-D parameters only)."""
    return [name for name, p in model.named_parameters() if name.startswith("blocks.") and p.ndim == 2]


def no_decay_names(model: nn.Module) -> list[str]:
    """Biases and LayerNorm parameters (every parameter with ndim < 2): no weight decay, as nanoGPT."""
    return [name for name, p in model.named_parameters() if p.ndim < 2]


# ---------------------------------------------------------------------------------------------------- the task


class GPT2Config(BaseModel):
    """Task + model fields of a GPT-2 run (optimiser, schedule, seeds and monitor live in the harness config)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # task
    corpus: Literal["registry", "synthetic"] = Field(
        "registry", description="registry: the cached public-domain corpus (verify.corpus); synthetic: templated "
                                "stories drawn from the data stream (CI, no cache needed)")
    corpus_dir: str | None = Field(None, description="corpus cache; None: verify.corpus.default_cache_dir()")
    synthetic_docs: int = Field(2000, ge=2, description="number of synthetic stories (corpus=synthetic)")
    synthetic_val_every: int = Field(10, ge=2, description="every k-th synthetic story is validation")
    eval_windows: int = Field(64, ge=1, description="fixed, evenly spaced windows per split for evaluate()")
    eval_batch_size: int = Field(8, ge=1)
    # model
    vocab_size: int = Field(lm_corpus.N_VOCAB, ge=lm_corpus.N_VOCAB, description=">= 50,257 (padding is allowed)")
    n_ctx: int = Field(1024, ge=2)
    n_layer: int = Field(12, ge=1)
    n_head: int = Field(12, ge=1)
    d_model: int = Field(768, ge=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> GPT2Config:
        if self.d_model % self.n_head:
            raise ValueError(f"n_head={self.n_head} must divide d_model={self.d_model}")
        return self

    def architecture(self) -> ModelConfig:
        return ModelConfig(vocab_size=self.vocab_size, n_ctx=self.n_ctx, n_layer=self.n_layer, n_head=self.n_head,
                           d_model=self.d_model)

    def with_overrides(self, **overrides: object) -> GPT2Config:
        """A validated copy with ``overrides`` applied."""
        return GPT2Config.model_validate({**self.model_dump(), **overrides})


# Task-config overrides per preset (fields of GPT2Config); "<size>-<optimiser>" presets share their size's model.
_SIZES: dict[str, dict[str, Any]] = {
    # GPT-2 small: 124,439,808 parameters (tied). On a GPU.
    "124M": {},
    # Trains on 2 CPU cores, slowly (6.8M parameters, 6.4M of them the tied 50,257 × 128 embedding; the
    # vocabulary-sized logits and their cross-entropy dominate the step time).
    "small": {"n_layer": 2, "n_head": 4, "d_model": 128, "n_ctx": 128, "eval_batch_size": 16},
    # The stored CPU runs (verify/runs/gpt2/): 2 layers, d 128, context 64 (6,837,888 parameters, 6.4M of them the
    # tied embedding; trunk = 393,216 Linear weights); sized so three optimisers fit the CPU budget.
    "cpu": {"n_layer": 2, "n_head": 4, "d_model": 128, "n_ctx": 64, "eval_windows": 32, "eval_batch_size": 16},
    # The longer CPU runs (verify/runs/gpt2-cpu4/): 4 layers, d 192, context 64 (11,441,472 parameters, 9.6M of
    # them the tied embedding; trunk = 1,769,472 Linear weights). Measured 1.55 s/step for the bare AdamW step on one
    # idle core; d 256 at context 128 took 4.2 s/step, too slow for three optimisers in about two hours each.
    "cpu4": {"n_layer": 4, "n_head": 4, "d_model": 192, "n_ctx": 64, "eval_windows": 32, "eval_batch_size": 16},
    # Tests and CI: synthetic stories from the data stream, no corpus cache (3.3M parameters).
    "tiny": {"corpus": "synthetic", "synthetic_docs": 400, "n_layer": 2, "n_head": 4, "d_model": 64, "n_ctx": 32,
             "eval_windows": 16, "eval_batch_size": 16},
}

# Run settings (fields of verify.harness.config.RunConfig) for the optimiser dependence of k* (issue 5: Muon k* = 1,
# AdamW k* = 2 at comparable validation loss) and the backbone claim (SGD). Matched across optimisers: batch, steps,
# clip, weight decay, eval and monitor cadence; spectra over all parameters, W = 10, Δs = 200 (the author's GPT-2
# analysis, [P] mini_gpt). Muon runs with torch's ``match_rms_adamw`` (Liu et al. 2025, "Muon is Scalable
# for LLM Training"), so it shares AdamW's lr and weight decay; embeddings, positions, LayerNorms and biases stay on
# AdamW (``hidden_matrix_names`` is Muon's group). lr 3e-4 rather than nanoGPT's 6e-4 because RunConfig has no warmup.
# SGD (momentum 0.9, L2 weight decay) is not tuned: sweep lr ∈ {0.03, 0.1, 0.3} on the GPU first.
_MATCHED: dict[str, dict[str, Any]] = {
    # 3000 × 16 × 1024 = 49M tokens ≈ 4.8 passes over the 10.1M-token corpus; 15 snapshots → 6 windows of W = 10.
    "124M": {"batch_size": 16, "max_steps": 3000, "eval_every": 200, "lr": 3e-4,
             "monitor": {"window": 10, "every": 200, "groups": ["all"]}},
    # measured 3.5 s/step on 2 shared CPU cores (load 5): ~1 h; 1000 × 8 × 128 = 1M tokens, 20 snapshots.
    "small": {"batch_size": 8, "max_steps": 1000, "eval_every": 100, "lr": 1e-3,
              "monitor": {"window": 10, "every": 50, "groups": ["all"]}},
    # measured 2.55 s/step (single thread, machine load 7; monitor, tracker and evals included): 300 × 8 × 64 =
    # 154k tokens; Δs = 15: 20 snapshots, 11 full W = 10 windows.
    "cpu": {"batch_size": 8, "max_steps": 300, "eval_every": 50, "lr": 1e-3,
            "monitor": {"window": 10, "every": 15, "groups": ["all"]}},
    # 1000 × 8 × 64 = 512k tokens; Δs = 25: 40 snapshots, 31 full W = 10 windows.
    "cpu4": {"batch_size": 8, "max_steps": 1000, "eval_every": 100, "lr": 1e-3, "checkpoint_every": 200,
             "monitor": {"window": 10, "every": 25, "groups": ["all"]}},
    "tiny": {"batch_size": 4, "max_steps": 200, "eval_every": 50, "lr": 3e-3,
             "monitor": {"window": 5, "every": 10, "groups": ["all"]}},
}
_OPTIMISERS: dict[str, dict[str, Any]] = {
    "adamw": {"optimizer": "adamw", "betas": (0.9, 0.95), "eps": 1e-8},
    "muon": {"optimizer": "muon", "betas": (0.9, 0.95), "eps": 1e-8, "momentum": 0.95,
             "muon_adjust_lr": "match_rms_adamw"},
    "sgd": {"optimizer": "sgd", "momentum": 0.9},
}
_COMMON: dict[str, Any] = {"weight_decay": 0.1, "grad_clip": 1.0, "early_stop": None}
_SGD_LR = {"124M": 0.1, "small": 0.3, "cpu": 0.3, "cpu4": 0.3, "tiny": 0.3}


def _run(size: str, opt: str) -> dict[str, Any]:
    """Matched settings of one size and optimiser; the backbone tracker (trunk, exact) runs at the monitor's
    cadence (issue 8: PC1 share AdamW vs SGD)."""
    run = {**_COMMON, **_MATCHED[size], **_OPTIMISERS[opt]}
    run["backbone"] = {"every": run["monitor"]["every"], "groups": ["trunk"]}
    if opt == "sgd":
        run["lr"] = _SGD_LR[size]
    return run


PRESETS: dict[str, dict[str, Any]] = {
    **_SIZES, **{f"{size}-{opt}": dict(over) for size, over in _SIZES.items() for opt in _OPTIMISERS}}
RECOMMENDED: dict[str, dict[str, Any]] = {
    **{size: _run(size, "adamw") for size in _SIZES},
    **{f"{size}-{opt}": _run(size, opt) for size in _SIZES for opt in _OPTIMISERS},
}


def _windows(tokens: Tensor, starts: Tensor, n_ctx: int) -> tuple[Tensor, Tensor]:
    """(x, y) int64 windows of length ``n_ctx`` at ``starts``; y is x shifted by one token."""
    offsets = starts.to(tokens.device)[:, None] + torch.arange(n_ctx + 1, device=tokens.device)
    w = tokens[offsets].long()
    return w[:, :-1], w[:, 1:]


def _split(tokens: Tensor, n_ctx: int, n_eval: int, name: str) -> dict[str, Tensor]:
    """Tokens of one split plus its fixed evaluation windows (evenly spaced starts, no randomness)."""
    last = len(tokens) - n_ctx - 1  # the last start whose target window fits
    if last < 0:
        raise ValueError(f"the {name} split has {len(tokens)} tokens, fewer than n_ctx + 1 = {n_ctx + 1}")
    starts = torch.linspace(0, last, min(n_eval, last + 1)).round().long().unique()
    eval_x, eval_y = _windows(tokens, starts, n_ctx)
    return {"tokens": tokens, "eval_x": eval_x, "eval_y": eval_y}


class GPT2Task(AttentionGramTask):
    """The GPT-2 workload (implements :class:`verify.tasks.base.Task`).

    ``make_data`` returns ``{"train": split, "test": split, "n_ctx", "eval_batch_size", "corpus": provenance}``;
    a split is ``{"tokens": int32 (N,), "eval_x", "eval_y": int64 (n_eval, n_ctx)}`` and ``test`` is the fixed
    validation slice. Batches are ``(x, y)`` int64 windows of ``n_ctx`` tokens starting anywhere in the training
    tokens.
    """

    name = "gpt2"
    config_class = GPT2Config

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        """Load the token cache (``corpus="registry"``; a missing cache raises ``CorpusNotFoundError`` naming the
        build command) or draw synthetic stories from ``generator`` and tokenise them with the same BPE path."""
        cfg = _check(config)
        if cfg.corpus == "registry":
            loaded = lm_corpus.load_corpus(cfg.corpus_dir)
            train, val = loaded.tensors()
            info = {"kind": "registry", "path": str(loaded.path), "splits": loaded.manifest["splits"],
                    "sources": {k: {f: v.get(f) for f in ("package", "version", "status")}
                                for k, v in loaded.manifest["sources"].items()}}
        else:
            docs = lm_corpus.synthetic_documents(cfg.synthetic_docs, generator)
            tr_docs, val_docs = lm_corpus.split_documents(docs, cfg.synthetic_val_every)
            train, val = (torch.from_numpy(lm_corpus.tokenise(d).astype("int32")) for d in (tr_docs, val_docs))
            info = {"kind": "synthetic", "documents": len(docs), "train_tokens": len(train), "val_tokens": len(val)}
        splits = {"train": _split(train, cfg.n_ctx, cfg.eval_windows, "train"),
                  "test": _split(val, cfg.n_ctx, cfg.eval_windows, "validation")}
        if int(max(train.max(), val.max())) >= cfg.vocab_size:
            raise ValueError(f"corpus has token ids >= vocab_size={cfg.vocab_size}")
        return {**splits, "n_ctx": cfg.n_ctx, "eval_batch_size": cfg.eval_batch_size, "corpus": info}

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        return build_model(_check(config).architecture(), generator, device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``batch_size`` windows with uniformly random starts (with replacement) drawn from ``generator``."""
        tokens, n_ctx = data["train"]["tokens"], data["n_ctx"]
        starts = torch.randint(len(tokens) - n_ctx, (batch_size,), generator=generator)
        return _windows(tokens, starts, n_ctx)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        logits = model(x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """Mean next-token cross-entropy (``loss``), accuracy (``acc``) and perplexity on the split's fixed
        windows, in eval mode (restored afterwards)."""
        windows = (data[split]["eval_x"], data[split]["eval_y"])
        device = next(model.parameters()).device
        total, correct, n = 0.0, 0, 0
        with eval_mode(model):
            for x, y in chunks(windows, data["eval_batch_size"], device):
                logits = model(x).float()
                total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
                correct += int((logits.argmax(-1) == y).sum())
                n += y.numel()
        loss = total / n
        return {"loss": loss, "acc": correct / n, "ppl": math.exp(min(loss, 50.0))}

    def run_label(self, config: BaseModel) -> str:
        """Middle of run file names: the size preset's name (``124M``, ``small``, ``tiny``) when the architecture
        and corpus kind match one, else ``L{n_layer}-d{d_model}-T{n_ctx}`` (+ ``-syn`` for synthetic data)."""
        cfg = _check(config)
        for size, over in _SIZES.items():
            ref = GPT2Config.model_validate(over)
            if (ref.architecture(), ref.corpus) == (cfg.architecture(), cfg.corpus):
                return size
        return f"L{cfg.n_layer}-d{cfg.d_model}-T{cfg.n_ctx}" + ("-syn" if cfg.corpus == "synthetic" else "")


def _check(config: BaseModel) -> GPT2Config:
    if not isinstance(config, GPT2Config):
        raise TypeError(f"expected a GPT2Config, got {type(config).__name__}")
    return config


GPT2 = GPT2Task()
