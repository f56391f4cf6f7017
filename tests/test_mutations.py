"""Mutation tests of every registered derivation: changing any one step must make ``check()`` fail.

For each step of each registered derivation (``theory.derivation.derivation_names()``), every mutation of
``theory.derivation.mutations`` (the right side doubled, its sign flipped, a fresh symbol added; a sign relation
reversed or loosened) must break the step, and so the derivation. A step that survives checks nothing: rewrite it
so that its residual depends on what it claims. Nothing is skipped silently: every step in ``theory/`` is written
with both sides (or as a sign relation), and the only unmutated steps are definitions (``definition=True``, a
fresh symbol named by its right side), which ``check()`` does not count as evidence either.
"""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import theory  # noqa: F401 - registers every derivation
from theory.derivation import (
    MUTATION_KINDS,
    DerivationError,
    Step,
    all_derivations,
    build_derivation,
    derivation_names,
    mutations,
)

#: Derivation names, known without building any (collection stays cheap in every pytest-xdist worker).
NAMES = derivation_names()


@pytest.mark.parametrize("name", NAMES)
def test_the_derivation_holds_and_has_a_checked_step(name: str) -> None:
    dv = build_derivation(name)
    assert dv.check(), name
    assert any(not s.definition for s in dv.steps), f"{name} has only definitions: it derives nothing"


@pytest.mark.parametrize("name", NAMES)
def test_every_mutation_of_every_step_breaks_the_derivation(name: str) -> None:
    dv = build_derivation(name)
    for index, step in enumerate(dv.steps):
        where = f"{name}[{index}]: step {step.claim!r}"
        if step.definition:  # a name, not a claim: it must look like one (Step refuses anything else)
            assert isinstance(step.lhs, sp.Symbol) and step.lhs not in sp.sympify(step.rhs).free_symbols, where
            assert "definition" in step.claim.lower() or ":=" in step.claim, where
            continue
        assert step.relation is not None or (step.lhs is not None and step.rhs is not None), (
            f"{where} has only a residual; write it as lhs = rhs or as a relation"
        )
        muts = mutations(step)
        assert set(muts) == set(MUTATION_KINDS), where
        survivors = [kind for kind, m in muts.items() if m.holds()]
        assert not survivors, f"{where} survives {survivors}: it is vacuous"
        for kind, m in muts.items():
            steps = list(dv.steps)
            steps[index] = m
            with pytest.raises(DerivationError):
                dataclasses.replace(dv, steps=tuple(steps)).check()
                pytest.fail(f"{where}: the derivation still checks with the step mutated ({kind})")


def test_every_registered_derivation_is_tested() -> None:
    assert NAMES == sorted(all_derivations()) and len(NAMES) >= 20  # the names are those the registry builds


def test_definition_flag_is_only_for_names() -> None:
    x, y = sp.symbols("x y")
    with pytest.raises(ValueError, match="definition"):
        Step("definition: x + y := 2", lhs=x + y, rhs=2, definition=True)
    with pytest.raises(ValueError, match="definition"):
        Step("definition: x := x + 1", lhs=x, rhs=x + 1, definition=True)
    assert Step("definition: y := x²", lhs=y, rhs=x**2, definition=True).holds()


def test_a_vacuous_step_is_caught() -> None:
    # The shape of the old loss-decomposition α step: 0 for any f(α), so doubling f survives only if f ≡ 0.
    a = sp.Symbol("alpha")
    f = sp.Function("f")(a)
    tautology = Step("f(α) − f(α) = 0", lhs=f - f, rhs=0)
    assert tautology.holds()
    assert any(m.holds() for m in mutations(tautology).values())


# --- the cheap refutation in front of the symbolic zero test -------------------------------------------------------


def test_the_probe_refutes_false_identities_and_never_true_ones() -> None:
    from theory.derivation import _nonzero_at_a_point

    x, y = sp.symbols("x y")
    p, n = sp.Symbol("p", positive=True), sp.Symbol("n", negative=True)
    k = sp.Symbol("k", integer=True, positive=True)
    f = sp.Function("f")
    assert _nonzero_at_a_point((x + 1) ** 2 - x**2 - 2 * x)  # ≡ 1
    assert _nonzero_at_a_point(sp.sqrt(p**2) + p)  # ≡ 2p > 0
    assert _nonzero_at_a_point(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1 + sp.Rational(1, 10**6))
    for zero in (
        (x + y) ** 3 - sp.expand((x + y) ** 3),
        sp.sqrt(p**2) - p,  # needs p > 0: the probe must respect it
        sp.sqrt(n**2) + n,  # needs n < 0
        sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1,  # zero only up to rounding: 30 digits keep it below 1e-12
        sp.exp(sp.log(p)) - p,
        (-1) ** (2 * k) - 1,
        f(x) - f(x) + 0 * y,
        1 / (x - x + 1) - 1,
    ):
        assert not _nonzero_at_a_point(zero), zero
    assert not _nonzero_at_a_point(f(x) + 1)  # an undefined function proves nothing


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=6), st.integers(1, 9))
def test_the_probe_on_expanded_polynomials(coeffs: list[int], shift: int) -> None:
    """A polynomial minus its own expansion is never refuted; adding a nonzero constant always is."""
    from theory.derivation import _nonzero_at_a_point

    x, y = sp.symbols("x y")
    poly = sum(c * (x + i * y) ** (i + 1) for i, c in enumerate(coeffs))
    residual = poly - sp.expand(poly)
    assert not _nonzero_at_a_point(residual)
    assert _nonzero_at_a_point(residual + shift)
