"""``SpectralEdgeLightningCallback``: the spectral monitor in a PyTorch Lightning ``Trainer`` (extra ``lightning``).

::

    from numerics.adapters.lightning import SpectralEdgeLightningCallback

    trainer = lightning.Trainer(max_steps=2000,
                                callbacks=[SpectralEdgeLightningCallback(window=10, every=50, path="run.jsonl")])
    trainer.fit(module, train_loader, val_loader)

The monitor is attached at ``on_train_start`` (Lightning has set up ``trainer.optimizers`` by then) to
``pl_module`` and ``trainer.optimizers[0]``. Steps are optimizer steps (``trainer.global_step``). The metrics in
``trainer.callback_metrics`` after each validation epoch (sanity checks excepted) become ``eval`` records;
``rename`` maps their names (e.g. ``{"val_acc": "test_acc"}`` for ``predict``). ``on_fit_end`` closes the
trajectory with an ``end`` record; an exception writes an ``interrupted`` record first, so the run is not
counted as finished. Only global rank 0 writes a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

try:  # the unified package first, the standalone one (same API) otherwise
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on what is installed
    import pytorch_lightning as pl

from numerics.adapters import MonitorSettings, numeric_metrics
from numerics.monitor import SpectralMonitor

__all__ = ["SpectralEdgeLightningCallback"]


class SpectralEdgeLightningCallback(pl.Callback):
    """Attach a :class:`~numerics.monitor.SpectralMonitor` to the LightningModule and its first optimizer.

    Args:
        window, every, groups, path: as for ``SpectralMonitor`` (W, Δs, parameter groups, trajectory file).
        rename: metric name → name in the trajectory.
        optimizer_index: which of ``trainer.optimizers`` to watch (default the first).
        **monitor_options: any other ``SpectralMonitor`` keyword (``provenance``, ``meta``, ``sketch_dim``, …).
    """

    def __init__(self, window: int = 10, every: int = 100, groups: Mapping[str, Any] | None = None,
                 path: str | os.PathLike[str] | None = None, *, rename: Mapping[str, str] | None = None,
                 optimizer_index: int = 0, **monitor_options: Any) -> None:
        super().__init__()
        self.settings = MonitorSettings(window, every, groups, path, dict(monitor_options))
        self.rename = dict(rename or {})
        self.optimizer_index = optimizer_index
        self.monitor: SpectralMonitor | None = None
        self._closed = False

    def _attach(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is not None or not trainer.optimizers:
            return
        settings = self.settings
        if trainer.global_rank != 0:
            settings = MonitorSettings(settings.window, settings.every, settings.groups, None, settings.options)
        meta = {"adapter": "lightning", "start_step": int(trainer.global_step),
                "accumulate_grad_batches": int(getattr(trainer, "accumulate_grad_batches", 1) or 1)}
        self.monitor = settings.attach(pl_module, trainer.optimizers[self.optimizer_index], meta)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._attach(trainer, pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._attach(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is None or self._closed or trainer.sanity_checking:
            return
        values = numeric_metrics(trainer.callback_metrics, self.rename)
        if values:
            self.monitor.log(int(trainer.global_step), **values)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.event("interrupted", int(trainer.global_step), reason=type(exception).__name__)
            self._close()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def _close(self) -> None:
        if self.monitor is not None and not self._closed:
            self.monitor.close()
            self._closed = True
