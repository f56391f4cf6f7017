"""Multi-task modular arithmetic: one shared trunk, one linear head per operation, the loss summed over heads.

Source: [P] multitask-grokking (``modadd_modmul/train_multitask.py``, ``tri_task/``): the trunk is the mod-p model of
:mod:`verify.tasks.modular` (2 tokens, learned positions, pre-norm blocks, final LayerNorm, read at position 0) and
each task gets its own ``nn.Linear(d, p)`` head — 302,914 parameters for ``dual`` (add, mul) and 315,427 for ``tri``
(add, mul, x²+y²) at p = 97 (the author's "~303k / ~315k": 290,401 + 12,513 per extra head). Every task is asked on
the same inputs, a, b ∈ 1..p−1 (the author's pairs; 0 is left out for all tasks, as mul needs it), split once by the
data stream; the loss is Σ_task CE.

``evaluate`` returns, per split, ``acc`` = the *minimum* of the task accuracies (so the harness's grok step and early
stop mean "every task", the author's multi-task grok criterion), ``loss`` = Σ_task CE, and per task ``acc_<op>`` and
``loss_<op>`` (eval records ``test_acc_add``, ``test_acc_mul``, ...), from which each task's own grokking step is read.
Departure from the author, as in :mod:`verify.tasks.modular`: the split has its own generator (the author's moved with
the model seed).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn

from verify.tasks.base import eval_mode
from verify.tasks.common import AttentionGramTask, build_initialised
from verify.tasks.modular import OPS, ModelConfig, ModularTransformer
from verify.tasks.presets import derive

__all__ = ["MULTITASK", "PRESETS", "RECOMMENDED", "MultiTaskConfig", "MultiTaskModular", "MultiTaskTransformer",
           "multitask_pairs", "task_metric"]


def multitask_pairs(p: int, ops: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Inputs ``[a, b]`` for a, b ∈ 1..p−1 (shape (N, 2), N = (p−1)², lexicographic) and the labels of every op,
    shape (N, n_ops): ``labels[:, i] = ops[i](a, b) mod p``."""
    unknown = [op for op in ops if op not in OPS]
    if unknown or not ops:
        raise ValueError(f"unknown or no ops {unknown or list(ops)}; expected some of {sorted(OPS)}")
    r = torch.arange(1, p, dtype=torch.int64)
    a, b = (t.reshape(-1) for t in torch.meshgrid(r, r, indexing="ij"))
    labels = torch.stack([torch.remainder(OPS[op](a, b), p) for op in ops], dim=1)
    return torch.stack([a, b], dim=1), labels


def task_metric(op: str, metric: str = "acc", split: str = "test") -> str:
    """The eval-record key of one task's metric: ``test_acc_add``."""
    return f"{split}_{metric}_{op}"


class MultiTaskTransformer(ModularTransformer):
    """The modular trunk with one head per op: ``heads.<op>.{weight,bias}`` instead of ``head.*``; forward returns
    logits of shape (B, n_ops, p)."""

    def __init__(self, cfg: ModelConfig, ops: tuple[str, ...]) -> None:
        super().__init__(cfg)
        del self.head
        self.ops = tuple(ops)
        self.heads = nn.ModuleDict({op: nn.Linear(cfg.d_model, cfg.p) for op in self.ops})

    def forward(self, x: Tensor) -> Tensor:
        h = self.tok_emb(x) + self.pos_emb
        for block in self.layers:
            h = block(h)
        z = self.ln_f(h)[:, 0]
        return torch.stack([self.heads[op](z) for op in self.ops], dim=1)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """:meth:`ModularTransformer.reset_parameters` with the heads, in ``ops`` order, drawn where its one head is
        (``nn.Linear``'s default U(±1/√fan_in)), all from ``generator``."""
        self._reset(generator, heads=[self.heads[op] for op in self.ops])


class MultiTaskConfig(BaseModel):
    """Task and model of one multi-task run (defaults: the author's dual task at p = 97, the mod-97 trunk)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    p: int = Field(97, ge=3, description="modulus = vocabulary size = classes per head")
    ops: tuple[str, ...] = Field(("add", "mul"), description="one head per op, in this order (modular OPS names)")
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    n_layers: int = Field(2, ge=1)
    d_model: int = Field(128, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(256, ge=1)

    @field_validator("ops")
    @classmethod
    def _known_distinct_ops(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [op for op in ops if op not in OPS]
        if unknown or not ops or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be distinct names from {sorted(OPS)}; got {list(ops)}")
        return ops

    @model_validator(mode="after")
    def _shapes(self) -> MultiTaskConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        n = (self.p - 1) ** 2
        if not 0 < int(self.train_fraction * n) < n:
            raise ValueError(f"train_fraction={self.train_fraction} leaves no train or no test pair of {n}")
        return self

    def architecture(self) -> ModelConfig:
        return ModelConfig(p=self.p, n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
                           d_ff=self.d_ff)


class MultiTaskModular(AttentionGramTask):
    """The multi-task workload (implements :class:`verify.tasks.base.Task`). Data ``{"train": (x, Y), "test": (x, Y)}``
    with ``Y`` of shape (N, n_ops); batches drawn with replacement from the data's own generator."""

    name = "multitask"
    config_class = MultiTaskConfig

    def make_data(self, config: BaseModel, generator: torch.Generator) -> dict[str, Any]:
        cfg = MultiTaskConfig.model_validate(config)
        x, y = multitask_pairs(cfg.p, cfg.ops)
        perm = torch.randperm(len(x), generator=generator)
        n_train = int(cfg.train_fraction * len(x))
        tr, te = perm[:n_train], perm[n_train:]
        return {"train": (x[tr], y[tr]), "test": (x[te], y[te]), "ops": cfg.ops}

    def build_model(self, config: BaseModel, generator: torch.Generator, device: torch.device | str) -> nn.Module:
        cfg = MultiTaskConfig.model_validate(config)
        return build_initialised(lambda: MultiTaskTransformer(cfg.architecture(), cfg.ops), generator, device)

    def sample_batch(self, data: dict[str, Any], batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = data["train"]
        idx = torch.randint(len(x), (batch_size,), generator=generator)
        return x[idx], y[idx]

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Σ_task CE(logits_task, y_task) (the author's summed loss)."""
        x, y = batch
        logits = model(x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / len(y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        """Per task ``acc_<op>``, ``loss_<op>`` (mean CE); ``acc`` = min over tasks, ``loss`` = Σ over tasks."""
        device = next(model.parameters()).device
        x, y = (t.to(device) for t in data[split])
        with eval_mode(model):
            logits = model(x)
        out: dict[str, float] = {}
        for i, op in enumerate(data["ops"]):
            out[f"acc_{op}"] = (logits[:, i].argmax(-1) == y[:, i]).float().mean().item()
            out[f"loss_{op}"] = F.cross_entropy(logits[:, i], y[:, i]).item()
        out["acc"] = min(out[f"acc_{op}"] for op in data["ops"])
        out["loss"] = sum(out[f"loss_{op}"] for op in data["ops"])
        return out

    def run_label(self, config: BaseModel) -> str:
        """``{op+op...}-p{p}``: run files are ``multitask-add+mul-p97-wd1-s42.jsonl.gz``."""
        cfg = MultiTaskConfig.model_validate(config)
        return f"{'+'.join(cfg.ops)}-p{cfg.p}-d{cfg.d_model}" if cfg.d_model != 128 else f"{'+'.join(cfg.ops)}-p{cfg.p}"


MULTITASK = MultiTaskModular()

_TRI = ("add", "mul", "x2_y2")
_SMALL = {"p": 59, "n_layers": 1, "d_model": 64, "n_heads": 4, "d_ff": 256}  # the modular ``tiny`` trunk
PRESETS: dict[str, dict[str, Any]] = {
    # The author's setups ([P] multitask-grokking): 302,914 (dual) and 315,427 (tri) parameters at p = 97.
    "dual": {},
    "tri": {"ops": _TRI},
    # The stored CPU runs (verify/runs/multitask/): the modular `tiny` trunk at p = 59 with two or three heads.
    "cpu-dual": dict(_SMALL),
    "cpu-tri": {**_SMALL, "ops": _TRI},
    "tiny": {"p": 13, "n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64},
}
# The author's run settings: AdamW lr 1e-3, β₂ 0.98, batch 512, clip 1, eval every 100, stop when every task has test
# acc ≥ 0.98 three evals running (RunConfig's defaults are the mod-97 ones, which are these).
_AUTHOR: dict[str, Any] = {"max_steps": 300_000, "monitor": {"window": 10, "every": 100, "groups": ["all", "attn"]}}
_CPU: dict[str, Any] = {"lr": 3e-3, "max_steps": 12_000, "eval_every": 50, "grok_threshold": 0.95,
                        "monitor": {"window": 10, "every": 50, "groups": ["all", "attn"]},
                        "defect": {"every": 100}, "norms": {"every": 50}}
RECOMMENDED: dict[str, dict[str, Any]] = {
    "dual": derive(_AUTHOR),
    "tri": derive(_AUTHOR),
    "cpu-dual": derive(_CPU),
    # The trajectory geometry (verify.studies.geometry) on the tri-task runs, every 200 steps: 20 Hessian-vector
    # products on a batch of 256 in float32 cost about 3 s per record on 2 cores (float64 at 512: about 8 s).
    "cpu-tri": derive(_CPU, geometry={"every": 200, "batch_size": 256, "hessian_dtype": "float32"}),
    "tiny": derive(_CPU, max_steps=60, eval_every=10, monitor={"every": 10, "window": 4}, defect=None,
                   norms={"every": 10}, geometry={"every": 10}),
}
