"""The intervention plug-in protocol: how a study acts on training (causal tests) without the loop knowing it.

Mirrors the measurement protocol (``verify.harness.measurement``). An intervention is a class registered under a name
(``verify.plugins.register_intervention("causal", "verify.studies.causal:SubspaceIntervention")``, done by
``verify/studies/__init__.py``). The name is also the key of its section in a run config (``RunConfig.causal``),
validated by the class's ``Config`` (a pydantic model derived from ``verify.harness.config.InterventionConfig``:
``enabled = False`` is off, the default). For every run whose section is on, the loop builds one instance with
``cls(section, run_config)`` and calls it at its named points (s = completed optimizer steps):

- ``at_setup(ctx)`` once, after the data, model, optimizer, monitor and measurements exist and before a checkpoint
  is restored (draw what is fixed for the run from the intervention's own stream here);
- ``on_gradient(ctx, step)`` in every training step, after ``loss.backward()`` and BEFORE gradient clipping, with
  ``step`` = s (the gradient in ``p.grad`` is ∇L(θ_s) of the batch of update s → s + 1). It may rewrite ``p.grad``.
  Before clipping because that is where the author applies it ([P] their hook runs right after ``backward()``),
  and because the intervention is defined on the loss gradient: clipping then bounds the *intervened* gradient as
  it bounds any gradient, so a projection never lets a clipped-away norm back in, and the clip statistics of an
  intervened run describe what the optimizer really received;
- ``after_step(ctx, step)`` after ``optimizer.step()`` (and after the monitor's post-hook capture), ``step`` = s + 1:
  where perturbations of θ itself (kicks, noise) go; it may write the parameters in place (under ``no_grad``);
- ``observe(ctx, step)`` right after ``after_step``, same ``step``: update the intervention's own state (a
  trajectory tracker, the monitor's window, a basis), never the model;
- ``state_dict()`` / ``load_state_dict(state)`` at every checkpoint and resume, so a resumed run intervenes
  bitwise as an uninterrupted one.

``on_gradient``, ``after_step`` and ``observe`` return the records to write (a list of dicts, usually empty): each
becomes a trajectory record of type ``record_type`` at the loop's current step and an entry of
``History.measurements[name]``. Keep them sparse (the studies write one every ``log_every`` steps).

Randomness. Every call runs inside ``torch.random.fork_rng`` (the global CPU RNG and the device's CUDA RNG are
restored afterwards), and an intervention draws only from its own stream (``run_config.generator("intervention")``,
a sub-stream of the diagnostics seed independent of ``diag`` and ``probe``), never the data, init or batch streams:
a switched-on intervention changes θ only through what it does to the gradient or to θ, never through the batches
training sees. With no intervention switched on, the loop does nothing more than before (bitwise the same run).
Source: [R] (our protocol); the interventions themselves are the author's ([P]), see ``verify.studies.causal``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from verify.harness.measurement import RunContext
from verify.plugins import INTERVENTIONS, register_intervention, resolve

if TYPE_CHECKING:  # annotations only: the protocol module itself needs no torch or pydantic
    from pydantic import BaseModel

__all__ = [
    "POINTS",
    "BaseIntervention",
    "Intervention",
    "config_classes",
    "intervention_class",
    "intervention_names",
    "register_intervention",
]

#: The named points of the loop, as the protocol's method names (module docstring).
POINTS = ("at_setup", "on_gradient", "after_step", "observe", "state_dict", "load_state_dict")


@runtime_checkable
class Intervention(Protocol):
    """A study's intervention (module docstring). ``Config`` is its run-config section (``enabled`` switches it
    on); ``record_type`` the type of its trajectory records."""

    Config: ClassVar[type[BaseModel]]
    record_type: ClassVar[str]

    def at_setup(self, ctx: RunContext) -> None: ...

    def on_gradient(self, ctx: RunContext, step: int) -> list[dict[str, Any]]: ...

    def after_step(self, ctx: RunContext, step: int) -> list[dict[str, Any]]: ...

    def observe(self, ctx: RunContext, step: int) -> list[dict[str, Any]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BaseIntervention:
    """Defaults of the protocol: keeps its section as ``config`` and the run config as ``run_config``; every hook
    does nothing and writes no record; no state (override what differs)."""

    record_type: ClassVar[str] = "intervention"

    def __init__(self, config: Any, run_config: Any) -> None:
        self.config = config
        self.run_config = run_config

    def at_setup(self, ctx: RunContext) -> None:
        """Nothing to prepare."""

    def on_gradient(self, ctx: RunContext, step: int) -> list[dict[str, Any]]:
        return []

    def after_step(self, ctx: RunContext, step: int) -> list[dict[str, Any]]:
        return []

    def observe(self, ctx: RunContext, step: int) -> list[dict[str, Any]]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """No state to restore."""


def intervention_names() -> list[str]:
    """Registered intervention names, in registration order (the order they are called at a point)."""
    return list(INTERVENTIONS)


def intervention_class(name: str) -> type:
    """The class registered as ``name`` (imported now); ``KeyError`` naming the known ones otherwise."""
    if name not in INTERVENTIONS:
        raise KeyError(f"unknown intervention {name!r}; registered: {', '.join(INTERVENTIONS) or 'none'}")
    INTERVENTIONS[name] = cls = resolve(INTERVENTIONS[name])
    return cls


def config_classes() -> dict[str, type[BaseModel]]:
    """Intervention name → its run-config section class, for every registered intervention."""
    return {name: intervention_class(name).Config for name in INTERVENTIONS}
