"""The one definitions registry.

Every quantity whose definition drifts between the thesis, its companion papers and the author's code (k*, α_j,
A, d_crit, g₂₃, the grokking step, ...) is registered here under ``(quantity, name)`` with its source tag
([A] abstract, [C] companion, [P] paper/code, [R] reconstruction, [S] silent; see
the book's theory reference) and the paper version it comes from. Exactly one variant per quantity is the default,
and the reason is argued in that variant's docstring. Results record the names of the definitions that produced
them, so a number can always be traced to its definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Definition", "DefinitionError", "default_name", "get", "quantities", "register", "table", "variants"]


class DefinitionError(KeyError):
    """An unknown quantity or variant name, or a registry conflict."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Definition:
    """One named variant of a quantity's definition."""

    quantity: str
    name: str
    fn: Callable[..., Any]
    source: str
    version: str
    default: bool
    doc: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


_REGISTRY: dict[str, dict[str, Definition]] = {}


def register(
    quantity: str, name: str, *, source: str, version: str = "", default: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` as variant ``name`` of ``quantity``.

    ``source`` carries the tag and where it comes from, e.g. ``"[A] thesis abstract"``; ``version`` the paper
    version(s), e.g. ``"v1-v3"``. Registering a name twice or a second default raises ``DefinitionError``.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        bucket = _REGISTRY.setdefault(quantity, {})
        if name in bucket:
            raise DefinitionError(f"definition {quantity}:{name} is registered twice")
        if default and any(d.default for d in bucket.values()):
            other = next(d.name for d in bucket.values() if d.default)
            raise DefinitionError(f"{quantity} already has default {other!r}; cannot make {name!r} default")
        doc = (fn.__doc__ or "").strip()
        bucket[name] = Definition(quantity, name, fn, source, version, default, doc)
        return fn

    return decorator


def _bucket(quantity: str) -> dict[str, Definition]:
    if quantity not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise DefinitionError(f"unknown quantity {quantity!r}; registered quantities: {known}")
    return _REGISTRY[quantity]


def get(quantity: str, name: str | None = None) -> Definition:
    """The variant ``name`` of ``quantity``; ``None`` gives the default variant."""
    bucket = _bucket(quantity)
    if name is None:
        for d in bucket.values():
            if d.default:
                return d
        raise DefinitionError(f"quantity {quantity!r} has no default definition")
    if name not in bucket:
        raise DefinitionError(f"unknown {quantity} definition {name!r}; choose one of: {', '.join(bucket)}")
    return bucket[name]


def default_name(quantity: str) -> str:
    """Name of the default variant of ``quantity``."""
    return get(quantity).name


def variants(quantity: str) -> list[Definition]:
    """All registered variants of ``quantity``, default first."""
    return sorted(_bucket(quantity).values(), key=lambda d: (not d.default, d.name))


def quantities() -> list[str]:
    """Names of all quantities with at least one registered definition."""
    return sorted(_REGISTRY)


def table() -> list[dict[str, str]]:
    """One row per definition (quantity, name, default, source, version, first docstring line)."""
    rows = []
    for q in quantities():
        for d in variants(q):
            first = d.doc.splitlines()[0] if d.doc else ""
            rows.append(
                {
                    "quantity": q,
                    "name": d.name,
                    "default": "yes" if d.default else "",
                    "source": d.source,
                    "version": d.version,
                    "summary": first,
                }
            )
    return rows
