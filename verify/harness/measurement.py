"""The measurement plug-in protocol: how a study measures during training without the loop knowing it.

A measurement is a class registered under a name (``verify.plugins.register_measurement("probes",
"verify.studies.probes:ProbeMeasurement")``, done by ``verify/studies/__init__.py``). The name is also the key of
its section in a run config (``RunConfig.probes``), validated by the class's ``Config`` (a pydantic model; ``every``
= 0 or None is off). For every run whose section is on, the loop builds one instance with ``cls(section,
run_config)`` and calls it at its named points:

- ``at_setup(ctx)`` once, after the data, model, optimizer and monitor exist and before a checkpoint is restored
  (draw fixed batches here from ``ctx.generator(...)``: a diagnostics stream, never a training one);
- ``due(step)`` / ``measure(ctx, step, final=...)`` at the top of the loop, after the eval at ``step`` (completed
  optimizer steps): ``measure`` returns the records to write (each becomes a trajectory record of type
  ``record_type`` and an entry of ``History.measurements[name]``); ``final`` is True at the run's last step;
- ``state_dict()`` / ``load_state_dict(state)`` at every checkpoint and resume, so a resumed run measures bitwise
  as an uninterrupted one.

Every call runs inside ``torch.random.fork_rng``: nothing a measurement draws reaches the training RNG. A
measurement may read the monitor's current window through ``ctx.monitor`` (``numerics.monitor.SpectralMonitor``:
``gram``, ``layout``, ``latest``), and never writes the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from verify.plugins import MEASUREMENTS, register_measurement, resolve

if TYPE_CHECKING:  # annotations only: the protocol module itself needs no torch
    import torch
    from pydantic import BaseModel
    from torch import nn

__all__ = [
    "POINTS",
    "BaseMeasurement",
    "Measurement",
    "RunContext",
    "config_classes",
    "measurement_class",
    "measurement_names",
    "register_measurement",
]

#: The named points of the loop, as the protocol's method names (module docstring): once after setup, at each due
#: step, at every checkpoint, at a resume.
POINTS = ("at_setup", "measure", "state_dict", "load_state_dict")


@dataclass
class RunContext:
    """What a measurement sees of a run: its config, task, data, model, optimizer, device and monitor."""

    cfg: Any  # verify.harness.config.RunConfig
    task: Any  # verify.tasks.base.Task
    data: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    monitor: Any = None  # numerics.monitor.SpectralMonitor, or a user's monitor, or None

    def generator(self, stream: str) -> torch.Generator:
        """A fresh CPU generator of ``stream`` of this run (``RunConfig.generator``)."""
        return self.cfg.generator(stream)


@runtime_checkable
class Measurement(Protocol):
    """A study's measurement (module docstring). ``Config`` is its run-config section; ``record_type`` the type of
    its trajectory records."""

    Config: ClassVar[type[BaseModel]]
    record_type: ClassVar[str]

    def at_setup(self, ctx: RunContext) -> None: ...

    def due(self, step: int) -> bool: ...

    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BaseMeasurement:
    """Defaults of the protocol for a study's measurement: keeps its section as ``config`` and the run config as
    ``run_config``; due every ``config.every`` steps; nothing at setup; no state (override what differs)."""

    def __init__(self, config: Any, run_config: Any) -> None:
        self.config = config
        self.run_config = run_config

    def at_setup(self, ctx: RunContext) -> None:
        """Nothing to prepare."""

    def due(self, step: int) -> bool:
        return step % self.config.every == 0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """No state to restore."""


def measurement_names() -> list[str]:
    """Registered measurement names, in registration order (the order they run at a step)."""
    return list(MEASUREMENTS)


def measurement_class(name: str) -> type:
    """The class registered as ``name`` (imported now); ``KeyError`` naming the known ones otherwise."""
    if name not in MEASUREMENTS:
        raise KeyError(f"unknown measurement {name!r}; registered: {', '.join(MEASUREMENTS) or 'none'}")
    MEASUREMENTS[name] = cls = resolve(MEASUREMENTS[name])
    return cls


def config_classes() -> dict[str, type[BaseModel]]:
    """Measurement name → its run-config section class, for every registered measurement."""
    return {name: measurement_class(name).Config for name in MEASUREMENTS}

