"""The catalogue itself: a ``Theorem`` entry, the ``theorem`` decorator that registers one, and ``Violation``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = ["CATALOGUE", "COUNTEREXAMPLES", "HOLDS", "Theorem", "Violation", "require", "theorem"]

HOLDS = "holds"
COUNTEREXAMPLES = "has counterexamples"


class Violation(AssertionError):
    """A statement failed on an example; ``details`` holds the measured values (JSON-able scalars and lists)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def require(ok: bool, message: str, **details: Any) -> None:
    """Raise ``Violation(message, **details)`` unless ``ok``."""
    if not ok:
        raise Violation(message, **details)


@dataclass(frozen=True)
class Theorem:
    """One catalogue entry. ``check(example)`` returns None when the statement holds on ``example`` and raises
    ``Violation`` when it fails (``hypothesis.assume`` rejects an example outside the hypotheses).

    ``requires``: modules that must import (else SKIP); ``statistical``: true for a probabilistic statement checked
    per instance with a stated failure probability.
    """

    id: str
    statement: str
    source: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]
    expected: str = HOLDS
    requires: tuple[str, ...] = ()
    statistical: bool = False

    def __post_init__(self) -> None:
        if self.expected not in (HOLDS, COUNTEREXAMPLES):
            raise ValueError(f"expected must be {HOLDS!r} or {COUNTEREXAMPLES!r}, got {self.expected!r}")


#: Every registered entry, in registration order (the order of the topic modules in ``verify.theorems``).
CATALOGUE: dict[str, Theorem] = {}


def theorem(
    id: str,
    statement: str,
    source: str,
    strategy: st.SearchStrategy[Any],
    *,
    expected: str = HOLDS,
    requires: tuple[str, ...] = (),
    statistical: bool = False,
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Decorator: register ``check`` as catalogue entry ``id`` (ids are unique)."""

    def register(check: Callable[[Any], None]) -> Callable[[Any], None]:
        if id in CATALOGUE:
            raise ValueError(f"theorem id {id!r} is already registered")
        CATALOGUE[id] = Theorem(id, statement, source, strategy, check, expected, requires, statistical)
        return check

    return register
