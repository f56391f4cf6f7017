"""Presets written as a base plus the changes from it (as nanoGPT's config files override its defaults)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["derive"]


def derive(base: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A new preset: a deep copy of ``base`` with ``changes`` applied. A dict-valued change updates the base's dict
    under that key rather than replacing it (``monitor={"every": 500}`` keeps the window and the groups); any other
    value, ``None`` included, replaces the base's."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            value = {**out[key], **copy.deepcopy(dict(value))}
        out[key] = copy.deepcopy(value)
    return out
