"""``SpectralEdgeCallback``: the spectral monitor in a Hugging Face ``transformers.Trainer`` (extra ``hf``).

::

    from numerics.adapters.huggingface import SpectralEdgeCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                      callbacks=[SpectralEdgeCallback(window=10, every=50, path="run.jsonl")])
    trainer.train()          # the trajectory: spectrum records every 50 optimizer steps, eval records, end

The monitor is attached when the Trainer has its optimizer: at ``on_train_begin`` (the Trainer creates the
optimizer lazily, just before it), else at the first ``on_step_begin``. Steps are optimizer steps (the Trainer's
``state.global_step``, after gradient accumulation), the unit the monitor counts. Evaluation metrics
(``on_evaluate``) and training logs (``on_log``: ``loss`` → ``train_loss``) become ``eval`` records at
``state.global_step``; ``rename`` maps metric names (e.g. ``{"eval_accuracy": "test_acc"}`` for ``predict``).
``on_train_end`` closes the trajectory with an ``end`` record. Only the main process (``state.is_world_process_zero``)
writes a file. The monitor only reads parameters, so training is unchanged (tested).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

from numerics.adapters import MonitorSettings, numeric_metrics
from numerics.monitor import SpectralMonitor

__all__ = ["SpectralEdgeCallback"]

# training-log names → eval-record names (the rest keep their names); Trainer bookkeeping left out
_TRAIN_LOG_NAMES = {"loss": "train_loss", "learning_rate": "lr"}
_DROP = ("epoch", "total_flos", "step", "num_input_tokens_seen")
_SPEED = ("_runtime", "_per_second")  # throughput numbers: wall-clock, not training


class SpectralEdgeCallback(TrainerCallback):
    """Attach a :class:`~numerics.monitor.SpectralMonitor` to the Trainer's model and optimizer.

    Args:
        window, every, groups, path: as for ``SpectralMonitor`` (W, Δs, parameter groups, trajectory file).
        rename: metric name → name in the trajectory (applied after ``loss`` → ``train_loss``).
        log_training: also write the Trainer's training logs (loss, lr, grad norm) as eval records.
        **monitor_options: any other ``SpectralMonitor`` keyword (``provenance``, ``meta``, ``sketch_dim``, …).

    After training, ``callback.monitor`` is the (closed) monitor; its ``records`` hold what was written.
    """

    def __init__(self, window: int = 10, every: int = 100, groups: Mapping[str, Any] | None = None,
                 path: str | os.PathLike[str] | None = None, *, rename: Mapping[str, str] | None = None,
                 log_training: bool = True, **monitor_options: Any) -> None:
        self.settings = MonitorSettings(window, every, groups, path, dict(monitor_options))
        self.rename = dict(rename or {})
        self.log_training = log_training
        self.monitor: SpectralMonitor | None = None
        self._closed = False
        self._pending_step: int | None = None
        self._pending: dict[str, float] = {}

    def _attach(self, args: Any, state: Any, kwargs: Mapping[str, Any]) -> None:
        if self.monitor is not None or self._closed:
            return
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if model is None or optimizer is None:
            return  # not yet: the Trainer creates its optimizer lazily
        settings = self.settings
        if not state.is_world_process_zero:
            settings = MonitorSettings(settings.window, settings.every, settings.groups, None, settings.options)
        meta = {"adapter": "huggingface", "start_step": int(state.global_step),
                "gradient_accumulation_steps": int(getattr(args, "gradient_accumulation_steps", 1) or 1)}
        self.monitor = settings.attach(model, optimizer, meta)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._attach(args, state, kwargs)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._attach(args, state, kwargs)
        self._flush()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        if metrics:
            self._add(state, {k: v for k, v in metrics.items() if not k.endswith(_SPEED)})

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        # a training log carries ``loss``; evaluation logs come through on_evaluate, and the summary log at the end
        # of training (train_runtime, train_loss averaged over the run, …) is bookkeeping, not a metric
        if not logs or not self.log_training or "loss" not in logs:
            return
        self._add(state, {_TRAIN_LOG_NAMES.get(k, k): v for k, v in logs.items() if not k.endswith(_SPEED)})

    # One eval record per step: readers keep one record per (type, step), so the training log and the evaluation
    # of a step are merged and written when the next step begins (or training ends).
    def _add(self, state: Any, metrics: Mapping[str, Any]) -> None:
        if self.monitor is None or self._closed:  # e.g. trainer.evaluate() after training: the file is closed
            return
        step = int(state.global_step)
        if self._pending_step is not None and self._pending_step != step:
            self._flush()
        self._pending_step = step
        self._pending.update(numeric_metrics(metrics, self.rename, drop=_DROP))

    def _flush(self) -> None:
        if self.monitor is not None and self._pending_step is not None and self._pending:
            self.monitor.log(self._pending_step, **self._pending)
        self._pending_step, self._pending = None, {}

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is not None and not self._closed:
            self._flush()
            self.monitor.close()
            self._closed = True
