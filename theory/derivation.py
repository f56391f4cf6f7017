"""A derivation that checks itself: a statement, the steps that lead to it, and a sympy check of each step.

Each step is an expression that must simplify to zero (``lhs − rhs`` of the identity the step claims). A
derivation is *verified* when every step's residual simplifies to 0; ``check()`` raises naming the first step
that does not. The book renders ``statement`` with :meth:`Derivation.latex`; no formula is typed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sympy as sp

__all__ = ["Derivation", "DerivationError", "Step", "all_derivations", "derivation"]


class DerivationError(AssertionError):
    """A step of a derivation does not simplify to zero."""


@dataclass(frozen=True)
class Step:
    """One claimed identity: ``residual`` (= lhs − rhs) must simplify to 0."""

    claim: str
    residual: sp.Expr


def _simplifies_to_zero(expr: sp.Expr) -> bool:
    for attempt in (sp.simplify, sp.expand, sp.together, sp.factor):
        if attempt(expr) == 0:
            return True
    return False


@dataclass(frozen=True)
class Derivation:
    """A named statement with its source tag, assumptions and checkable steps."""

    name: str
    statement: sp.Basic
    source: str
    steps: Sequence[Step] = field(default_factory=tuple)
    assumptions: str = ""
    notes: str = ""

    def residuals(self) -> list[sp.Expr]:
        """Each step's residual after simplification (all zero when the derivation holds)."""
        return [sp.simplify(s.residual) for s in self.steps]

    def check(self) -> bool:
        """True if every step simplifies to zero; otherwise raise ``DerivationError`` naming the step."""
        for s in self.steps:
            if not _simplifies_to_zero(s.residual):
                raise DerivationError(f"{self.name}: step {s.claim!r} leaves residual {sp.simplify(s.residual)}")
        return True

    def latex(self) -> str:
        """LaTeX of the statement, from the sympy object."""
        return sp.latex(self.statement)


_DERIVATIONS: dict[str, Callable[[], Derivation]] = {}


def derivation(name: str) -> Callable[[Callable[[], Derivation]], Callable[[], Derivation]]:
    """Decorator registering a zero-argument builder of a :class:`Derivation` under ``name``."""

    def deco(fn: Callable[[], Derivation]) -> Callable[[], Derivation]:
        if name in _DERIVATIONS:
            raise ValueError(f"derivation {name!r} registered twice")
        _DERIVATIONS[name] = fn
        return fn

    return deco


def all_derivations() -> dict[str, Derivation]:
    """Every registered derivation, built (import the theory modules first: ``import theory``)."""
    return {name: build() for name, build in _DERIVATIONS.items()}
