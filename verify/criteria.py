"""Pass/fail criteria, fixed before the data they score, in one versioned file (``verify/criteria.toml``).

Each claims row names its criterion by id (``ClaimRow.criterion``). An entry holds the criterion's ``text``, its
numeric ``params``, the date it was ``fixed``, ``data_seen`` (the date its data were first looked at, where known),
and ``history``: every earlier version as ``{fixed, sha}``. ``sha`` is the first 12 hex digits of the SHA-256 of
the canonical JSON of ``{"text", "params"}``.

Rules (``check_criteria``, run by ``tests/test_criteria.py``): the recorded ``sha`` equals the one recomputed from
``text`` and ``params`` (a criterion cannot change silently); a changed criterion records its previous version in
``history`` and a ``fixed`` date later than every earlier one. A criterion is **post hoc** when it was fixed after
its data were seen (``fixed > data_seen``); ``spectral-edge claims`` marks such rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from its backport
    import tomli as tomllib

__all__ = ["CRITERIA_FILE", "Criterion", "CriterionError", "check_criteria", "criteria", "criterion", "sha"]

CRITERIA_FILE = Path(__file__).resolve().parent / "criteria.toml"


class CriterionError(ValueError):
    """A criterion is missing, or changed without a new date and a history entry; the message names it."""


def sha(text: str, params: dict[str, Any]) -> str:
    """First 12 hex digits of SHA-256 of the canonical JSON of ``{"text": text, "params": params}``."""
    blob = json.dumps({"text": text, "params": params}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Criterion:
    """One pass/fail criterion (module docstring)."""

    id: str
    text: str
    fixed: dt.date
    sha: str
    params: dict[str, Any] = field(default_factory=dict)
    data_seen: dt.date | None = None
    history: tuple[dict[str, Any], ...] = ()

    @property
    def post_hoc(self) -> bool:
        """Fixed after its data were seen."""
        return self.data_seen is not None and self.fixed > self.data_seen

    def label(self) -> str:
        """``fixed 2026-12-02`` or ``fixed 2026-12-02, after the data were seen (2026-11-20)``."""
        return f"fixed {self.fixed}" + (f", after the data were seen ({self.data_seen})" if self.post_hoc else "")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """``[spectral.kstar_attn]`` tables → ``{"spectral.kstar_attn": {...}}`` (a table with ``text`` is an entry)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in tree.items():
        if not isinstance(value, dict):
            continue
        name = f"{prefix}{key}"
        if "text" in value:
            out[name] = value
        else:
            out.update(_flatten(value, name + "."))
    return out


@cache
def criteria(path: Path = CRITERIA_FILE) -> dict[str, Criterion]:
    """Every criterion of the file, by id."""
    with open(path, "rb") as fh:
        tree = tomllib.load(fh)
    out = {}
    for cid, e in _flatten(tree).items():
        out[cid] = Criterion(cid, str(e["text"]), e["fixed"], str(e.get("sha", "")), dict(e.get("params", {})),
                             e.get("data_seen"), tuple(e.get("history", ())))
    return out


def criterion(cid: str) -> Criterion:
    """The criterion ``cid``; ``CriterionError`` naming it when the file has none."""
    found = criteria()
    if cid not in found:
        raise CriterionError(f"no criterion {cid!r} in {CRITERIA_FILE.name}; add it there (text, params, fixed, sha)")
    return found[cid]


def check_criteria(found: dict[str, Criterion] | None = None) -> list[str]:
    """The rule breaches of every criterion (module docstring), one message each naming the criterion."""
    out = []
    for cid, c in (criteria() if found is None else found).items():
        now = sha(c.text, c.params)
        if c.sha != now:
            out.append(f"{cid}: text/params changed (sha {c.sha} recorded, {now} now): record the old version in "
                       f"'history', set 'fixed' to today and 'sha' to {now}")
        for old in c.history:
            if old.get("sha") == c.sha:
                out.append(f"{cid}: history lists the current sha {c.sha}")
            if not old.get("fixed") or old["fixed"] >= c.fixed:
                out.append(f"{cid}: changed without a later date (history {old.get('fixed')}, fixed {c.fixed})")
    return out
