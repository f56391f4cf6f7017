"""The plug-in registries: study measurements, interventions and claims providers, by name, as lazy
``"module:attr"`` targets.

Kept free of heavy imports (standard library only) so that ``import verify`` can register every study
(``verify/studies/__init__.py``) without loading torch or any study module. The harness reads the measurement
registry (``verify.harness.measurement``) and the intervention registry (``verify.harness.intervention``), the
claims kernel the provider registry (``verify.claims``); none names a study. Measurements and interventions share one
name space: a name is the key of the run-config section of the plug-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["CLAIM_PROVIDERS", "INTERVENTIONS", "MEASUREMENTS", "register_claims", "register_intervention",
           "register_measurement", "resolve"]

#: measurement name (= its run-config section) → ``"module:Class"`` or the class; registration order = run order.
MEASUREMENTS: dict[str, str | type] = {}

#: intervention name (= its run-config section) → ``"module:Class"`` or the class; registration order = call order.
INTERVENTIONS: dict[str, str | type] = {}

#: provider name → ``"module:function"`` or the callable; registration order = claims-table order.
CLAIM_PROVIDERS: dict[str, str | Callable[..., Any]] = {}


def _check(kind: str, name: str, target: object) -> None:
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"{kind} {name!r}: expected 'module:attr', got {target!r}")


def register_measurement(name: str, target: str | type) -> None:
    """Register measurement ``name`` as ``"module:Class"`` (imported when first used) or a class."""
    _check("measurement", name, target)
    if name in INTERVENTIONS:
        raise ValueError(f"measurement {name!r}: the name is taken by an intervention (one run-config section each)")
    MEASUREMENTS[name] = target


def register_intervention(name: str, target: str | type) -> None:
    """Register intervention ``name`` as ``"module:Class"`` (imported when first used) or a class."""
    _check("intervention", name, target)
    if name in MEASUREMENTS:
        raise ValueError(f"intervention {name!r}: the name is taken by a measurement (one run-config section each)")
    INTERVENTIONS[name] = target


def register_claims(name: str, provider: str | Callable[..., Any]) -> None:
    """Add (or replace) a claims provider: ``"module:function"`` or a callable of the contract (``verify.claims``)."""
    _check("claims provider", name, provider)
    CLAIM_PROVIDERS[name] = provider


def resolve(target: str | Any) -> Any:
    """The object a lazy target names (its module imported now); anything else is returned as it is."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
