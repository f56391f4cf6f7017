"""The training loop for modular arithmetic: config in, history (and optional monitor trajectory) out.

Source: [P] grokking-integrability ``grok_sweep.py`` (AdamW, clipping, batches drawn with replacement, eval every
100 steps, early stop at test acc ≥ 0.98 × 3), rewritten nanoGPT-style with four independent RNG streams
(author-experiments.md §9): the data split, the model init, the batch order and a diagnostics stream reserved for
measurements. No global RNG is read, so a monitor may draw whatever it likes (from ``diag_generator``, or even the
global RNG) without changing the trajectory: the same seeds give the same loss curve at any measurement cadence.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from verify.config import ModularConfig, save_config
from verify.tasks.modular import build_model, make_dataset

__all__ = ["History", "Monitor", "MonitorFactory", "RunResult", "diag_generator", "evaluate", "train"]


class Monitor(Protocol):
    """What ``train`` needs from a monitor (e.g. ``numerics.monitor.SpectralMonitor``)."""

    def log(self, step: int, **scalars: float) -> None: ...

    def close(self) -> None: ...


MonitorFactory = Callable[[nn.Module, torch.optim.Optimizer, ModularConfig], Monitor]


@dataclass
class History:
    """Evaluation records; ``steps[i]`` counts completed optimizer steps (0 = at init)."""

    steps: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    """Outcome of one run. ``grok_step``: first eval step with test acc ≥ ``config.grok_threshold`` (None: never)."""

    config: ModularConfig
    history: History
    grok_step: int | None
    final_step: int
    wall_s: float
    n_params: int
    model: nn.Module = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record (config, history, grok step, wall time) without the model."""
        return {"config": self.config.model_dump(mode="json"), "history": asdict(self.history),
                "grok_step": self.grok_step, "final_step": self.final_step, "wall_s": self.wall_s,
                "n_params": self.n_params}


def diag_generator(config: ModularConfig) -> torch.Generator:
    """The diagnostics stream: a fresh generator seeded by ``diag_seed``, for measurements only (e.g. the batches
    of a commutator defect). Training never reads it."""
    return torch.Generator().manual_seed(config.diag_seed)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the full set, in eval mode; restores the previous train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        logits = model(x)
        return (logits.argmax(-1) == y).float().mean().item(), F.cross_entropy(logits, y).item()
    finally:
        model.train(was_training)


def train(
    config: ModularConfig,
    out_dir: str | Path | None = None,
    *,
    monitor_factory: MonitorFactory | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> RunResult:
    """Train one run of ``config``; evaluate every ``eval_every`` steps; stop at ``max_steps`` or early stop.

    ``monitor_factory(model, optimizer, config)`` is called once, after the optimizer exists; the monitor may
    register optimizer hooks, gets ``monitor.log(step, train_acc=..., test_acc=..., train_loss=..., test_loss=...)``
    at every eval, and ``close()`` at the end (also on error). ``optimizer.global_step`` holds the number of
    completed optimizer steps (it is already incremented when step-post hooks run).
    If ``out_dir`` is given, writes ``config.json``, ``result.json`` and ``model.safetensors`` there.
    """
    cfg = config
    t0 = time.perf_counter()
    # stream 1: data split (data_seed only)
    train_x, train_y, test_x, test_y = (t.to(device) for t in make_dataset(cfg.p, cfg.op, cfg.train_fraction,
                                                                           cfg.data_seed))
    # stream 2: model init (init_seed only; the global RNG is not touched)
    model = build_model(cfg.architecture(), cfg.init_seed, device)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    optimizer.global_step = 0  # type: ignore[attr-defined]
    # stream 3: batch order (batch_seed only); CPU generator so the order does not depend on the device
    batch_gen = torch.Generator().manual_seed(cfg.batch_seed)
    # stream 4 (diag_seed) belongs to the monitor: see diag_generator(). Training never draws from it.
    monitor = monitor_factory(model, optimizer, cfg) if monitor_factory is not None else None

    history = History()
    grok_step: int | None = None
    streak = 0  # consecutive evals at or above early_stop.acc
    step = 0
    bar = tqdm(total=cfg.max_steps, disable=not progress, desc=f"{cfg.op} p={cfg.p} wd={cfg.weight_decay}")
    try:
        model.train()
        while True:
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                tr_acc, tr_loss = evaluate(model, train_x, train_y)
                te_acc, te_loss = evaluate(model, test_x, test_y)
                for name, value in (("train_acc", tr_acc), ("test_acc", te_acc), ("train_loss", tr_loss),
                                    ("test_loss", te_loss)):
                    getattr(history, name).append(value)
                history.steps.append(step)
                if monitor is not None:
                    monitor.log(step, train_acc=tr_acc, test_acc=te_acc, train_loss=tr_loss, test_loss=te_loss)
                if grok_step is None and te_acc >= cfg.grok_threshold:
                    grok_step = step
                streak = streak + 1 if cfg.early_stop is not None and te_acc >= cfg.early_stop.acc else 0
                bar.set_postfix(train=f"{tr_acc:.3f}", test=f"{te_acc:.3f}", loss=f"{tr_loss:.3g}", refresh=False)
                if cfg.early_stop is not None and streak >= cfg.early_stop.patience:
                    break
            if step == cfg.max_steps:
                break

            idx = torch.randint(len(train_y), (cfg.batch_size,), generator=batch_gen).to(device)  # with replacement
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            step += 1
            optimizer.global_step = step  # type: ignore[attr-defined]  # visible to step-post hooks
            optimizer.step()
            bar.update(1)
    finally:
        bar.close()
        if monitor is not None:
            monitor.close()

    result = RunResult(config=cfg, history=history, grok_step=grok_step, final_step=step,
                       wall_s=time.perf_counter() - t0, n_params=n_params, model=model)
    if out_dir is not None:
        _save(result, Path(out_dir))
    return result


def _save(result: RunResult, out: Path) -> None:
    from safetensors.torch import save_file  # local import: only needed when writing a run

    out.mkdir(parents=True, exist_ok=True)
    save_config(result.config, out / "config.json")
    (out / "result.json").write_text(json.dumps(result.summary(), indent=1) + "\n")
    save_file({k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()},
              str(out / "model.safetensors"))
