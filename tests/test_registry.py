"""The definitions registry: one default per quantity, clear errors for unknown names and conflicts."""

from __future__ import annotations

import pytest

import numerics  # noqa: F401 - registers α, d_crit
import theory  # noqa: F401 - registers k*, A, Krylov bound
import verify.grokking  # noqa: F401 - registers the grokking step
from theory import registry
from theory.registry import DefinitionError


def test_every_quantity_has_exactly_one_default_with_a_source_tag():
    expected = {"kstar", "alpha", "d_crit", "adiabatic", "adiabatic_regime", "krylov_bound", "grok_step"}
    assert expected <= set(registry.quantities())
    for q in registry.quantities():
        defaults = [d for d in registry.variants(q) if d.default]
        assert len(defaults) == 1, q
        for d in registry.variants(q):
            assert d.source.startswith(("[A]", "[C]", "[P]", "[R]", "[S]", "[T]")), (q, d.name, d.source)
            assert d.doc, (q, d.name)


def test_unknown_names_are_clear_errors():
    with pytest.raises(DefinitionError, match="unknown quantity 'kstr'"):
        registry.get("kstr")
    with pytest.raises(DefinitionError, match=r"unknown kstar definition 'median'.*argmax"):
        registry.get("kstar", "median")


def test_conflicts_are_refused():
    with pytest.raises(DefinitionError, match="registered twice"):
        registry.register("kstar", "argmax", source="[R] test")(lambda s: 1)
    with pytest.raises(DefinitionError, match="already has default"):
        registry.register("kstar", "another", source="[R] test", default=True)(lambda s: 1)


def test_table_lists_every_variant():
    rows = registry.table()
    assert {(r["quantity"], r["name"]) for r in rows} == {
        (q, d.name) for q in registry.quantities() for d in registry.variants(q)
    }
