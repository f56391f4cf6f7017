"""The plug-in registries: study measurements and claims providers, by name, as lazy ``"module:attr"`` targets.

Kept free of heavy imports (standard library only) so that ``import verify`` can register every study
(``verify/studies/__init__.py``) without loading torch or any study module. The harness reads the measurement
registry (``verify.harness.measurement``), the claims kernel the provider registry (``verify.claims``); neither
names a study.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["CLAIM_PROVIDERS", "MEASUREMENTS", "register_claims", "register_measurement", "resolve"]

#: measurement name (= its run-config section) → ``"module:Class"`` or the class; registration order = run order.
MEASUREMENTS: dict[str, str | type] = {}

#: provider name → ``"module:function"`` or the callable; registration order = claims-table order.
CLAIM_PROVIDERS: dict[str, str | Callable[..., Any]] = {}


def _check(kind: str, name: str, target: object) -> None:
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"{kind} {name!r}: expected 'module:attr', got {target!r}")


def register_measurement(name: str, target: str | type) -> None:
    """Register measurement ``name`` as ``"module:Class"`` (imported when first used) or a class."""
    _check("measurement", name, target)
    MEASUREMENTS[name] = target


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
