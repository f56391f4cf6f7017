"""A derivation that checks itself: a statement, the steps that lead to it, and a sympy check of each step.

Each step claims an identity ``lhs = rhs`` (its residual ``lhs − rhs`` must simplify to zero) or a sign
``relation`` that sympy must prove from the symbols' assumptions. A derivation is *verified* when every step
holds; ``check()`` raises naming the first step that does not. The book renders ``statement`` with
:meth:`Derivation.latex`; no formula is typed twice.

Steps must not be vacuous. ``mutations(step)`` gives mutated copies of a step (the right side doubled, sign
flipped, shifted by a fresh symbol; a sign relation reversed), each of which must make ``check()`` fail
(``tests/test_mutations.py`` runs them on every registered derivation): a step that survives a mutation checks
nothing (e.g. ``0 = 0`` after substitution, or a residual that is 0 whatever the claimed quantity is). A step that
only *names* something (``definition=True``, ``lhs`` a bare symbol not in ``rhs``) is not checked and not mutated;
modelling assumptions go into ``Derivation.assumptions``, never into a step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sympy as sp

__all__ = [
    "DEFINITION_MARK",
    "MUTATION_KINDS",
    "Derivation",
    "DerivationError",
    "Step",
    "all_derivations",
    "build_derivation",
    "derivation",
    "derivation_names",
    "mutations",
    "sign_residual",
]


class DerivationError(AssertionError):
    """A step of a derivation does not simplify to zero."""


@dataclass(frozen=True)
class Step:
    """One claimed identity ``lhs = rhs`` (residual lhs − rhs must simplify to 0), or a sign ``relation``.

    Build it as ``Step(claim, lhs=…, rhs=…)``, ``Step(claim, relation=x < 0)`` or, for a name,
    ``Step(claim, lhs=Symbol, rhs=…, definition=True)``. ``residual`` is derived (a sign relation gives 0 when
    sympy proves it and 1 otherwise); passing only a residual is kept for callers outside ``theory/`` but cannot
    be mutation-tested.
    """

    claim: str
    residual: sp.Expr = None  # type: ignore[assignment]
    lhs: sp.Basic | None = None
    rhs: sp.Basic | None = None
    relation: sp.Basic | None = None
    definition: bool = False

    def __post_init__(self) -> None:
        if self.relation is not None:
            object.__setattr__(self, "residual", sign_residual(self.relation))
        elif self.lhs is not None and self.rhs is not None:
            object.__setattr__(self, "residual", _sympify(self.lhs) - _sympify(self.rhs))
        elif self.residual is None:
            raise ValueError(f"step {self.claim!r} needs lhs and rhs, a relation, or a residual")
        if self.definition and not (isinstance(self.lhs, sp.Symbol) and self.rhs is not None
                                    and self.lhs not in _sympify(self.rhs).free_symbols):
            raise ValueError(f"definition step {self.claim!r} must name a fresh symbol: lhs a Symbol not in rhs")

    def holds(self) -> bool:
        """True if the step is a definition, or its residual simplifies to 0."""
        return self.definition or _simplifies_to_zero(self.residual)


def _sympify(x: Any) -> Any:
    return x if isinstance(x, sp.MatrixBase) else sp.sympify(x)


def sign_residual(relation: sp.Basic) -> sp.Expr:
    """A residual for a *sign* claim: 0 when sympy can prove ``relation`` from the symbols' assumptions, 1 otherwise.

    Lets an inequality sit in a :class:`Step` without weakening the check: an undecidable relation leaves
    ``Piecewise((0, rel), (1, True))``, which is not 0.
    """
    return sp.Piecewise((0, relation), (1, True))


MUTATION_KINDS: tuple[str, ...] = ("scale", "sign", "shift")

#: What ``Derivation.residuals`` shows for a definition step (it names something; there is nothing to check).
DEFINITION_MARK = sp.Symbol(r"\text{(definition, not checked)}")


def mutations(step: Step) -> dict[str, Step]:
    """Mutated copies of ``step``, one per kind in ``MUTATION_KINDS``; each must make the step fail.

    * ``scale``: rhs → 2·rhs (lhs → 2·lhs when rhs is 0);
    * ``sign``: rhs → −rhs (lhs → −lhs when rhs is 0); for a relation ``a < b``: ``−(a − b) < 0``, the reversed
      claim;
    * ``shift``: rhs → rhs + ε, ε a fresh symbol (for a relation: its residual + ε; its ``scale`` adds a fresh
      real x to the left side, which sympy must then fail to prove).

    A residual-only or definition step has no mutations (``{}``); the mutation test treats a residual-only step
    inside ``theory/`` as an error.
    """
    eps = sp.Dummy("epsilon_mut")
    if step.definition:
        return {}
    if step.relation is not None:
        rel = step.relation
        flipped = rel.func(-(rel.lhs - rel.rhs), 0)
        return {
            "scale": Step(step.claim, relation=rel.func(rel.lhs + sp.Dummy("x_mut", real=True), rel.rhs)),
            "sign": Step(step.claim, relation=flipped),
            "shift": Step(step.claim, residual=step.residual + eps),
        }
    if step.lhs is None or step.rhs is None:
        return {}
    lhs, rhs = _sympify(step.lhs), _sympify(step.rhs)
    if isinstance(rhs, sp.MatrixBase):
        eps = eps * sp.ones(*rhs.shape)  # type: ignore[assignment]
    rhs_zero = rhs == 0 if not isinstance(rhs, sp.MatrixBase) else rhs.is_zero_matrix
    if rhs_zero:
        return {
            "scale": Step(step.claim, lhs=2 * lhs, rhs=rhs),
            "sign": Step(step.claim, lhs=-lhs, rhs=rhs),
            "shift": Step(step.claim, lhs=lhs, rhs=rhs + eps),
        }
    return {
        "scale": Step(step.claim, lhs=lhs, rhs=2 * rhs),
        "sign": Step(step.claim, lhs=lhs, rhs=-rhs),
        "shift": Step(step.claim, lhs=lhs, rhs=rhs + eps),
    }


def _simplifies_to_zero(expr: Any) -> bool:
    """Whether sympy proves ``expr`` ≡ 0: first a cheap refutation (``_nonzero_at_a_point``), then simplify, expand,
    together and factor in turn. The refutation matters for false steps (every mutation is one): they would otherwise
    run all four, and ``factor`` of a large multivariate residual (Wang's algorithm, with random evaluation points)
    can take minutes."""
    if isinstance(expr, sp.MatrixBase):
        return all(_simplifies_to_zero(e) for e in expr)
    if _nonzero_at_a_point(expr):
        return False
    for attempt in (sp.simplify, sp.expand, sp.together, sp.factor):
        if attempt(expr) == 0:
            return True
    return False


_PROBE_POINTS = 3


def _nonzero_at_a_point(expr: Any) -> bool:
    """True only if ``expr`` is certainly not identically 0: at one of a few fixed rational points, each symbol given
    a value that satisfies every assumption it carries (positive, integer, …), it evaluates to a nonzero number —
    exactly (a nonzero rational), or to more than 1e-12 in 30-digit arithmetic. Anything else (an undefined
    function, a value outside a symbol's assumptions, a pole, an unevaluated piece) proves nothing: False."""
    expr = sp.sympify(expr)
    rng = random.Random(1729)  # fixed points: the check is deterministic
    symbols = sorted(expr.free_symbols, key=lambda x: (x.name, x.dummy_index if isinstance(x, sp.Dummy) else 0))
    for _ in range(_PROBE_POINTS):
        point = {}
        for x in symbols:
            value = _admissible_value(x, rng)
            if value is None:
                return False
            point[x] = value
        if _nonzero_number(expr.xreplace(point)):
            return True
    return False


def _admissible_value(x: sp.Symbol, rng: random.Random) -> sp.Rational | None:
    """A rational value satisfying every assumption of ``x`` (None if none of the candidates does)."""
    q = sp.Rational(rng.randint(1, 89), rng.randint(2, 11))
    n = sp.Integer(rng.randint(2, 9))
    for value in (q, -q, n, -n):
        if all(getattr(value, f"is_{k}") == want for k, want in x.assumptions0.items() if hasattr(value, f"is_{k}")):
            return value
    return None


def _nonzero_number(value: sp.Basic) -> bool:
    if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or not value.is_number:
        return False
    if value.is_Rational:
        return value != 0
    try:
        re, im = sp.N(value, 30).as_real_imag()
    except (TypeError, ValueError, ArithmeticError):
        return False
    if not (re.is_Number and im.is_Number and re.is_finite and im.is_finite):
        return False
    return bool(abs(re) > 1e-12 or abs(im) > 1e-12)


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
        """Each step's residual after simplification, one per step (all zero when the derivation holds); a
        definition step, which claims nothing, shows the marker symbol ``DEFINITION_MARK`` instead."""
        out: list[sp.Expr] = []
        for s in self.steps:
            if s.definition:
                out.append(DEFINITION_MARK)
                continue
            r = sp.simplify(s.residual)
            out.append(sp.S.Zero if isinstance(r, sp.MatrixBase) and r.is_zero_matrix else r)
        return out

    def check(self) -> bool:
        """True if every step holds; otherwise raise ``DerivationError`` naming the step."""
        for s in self.steps:
            if not s.holds():
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
    return {name: build_derivation(name) for name in _DERIVATIONS}


def derivation_names() -> list[str]:
    """The registered names, sorted, with nothing built (building all of them takes seconds of sympy)."""
    return sorted(_DERIVATIONS)


@cache
def build_derivation(name: str) -> Derivation:
    """The registered derivation ``name``, built alone, once per process (a frozen ``Derivation``; building takes up
    to a second of sympy); ``KeyError`` naming the registered ones otherwise."""
    try:
        build = _DERIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown derivation {name!r}; registered: {', '.join(sorted(_DERIVATIONS))}") from None
    return build()
