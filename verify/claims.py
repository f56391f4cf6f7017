"""The claims kernel: the row type, the one provider contract, the provider registry and the writers.

A claims row states one quantitative claim of the thesis, its source tag, the claimed and the measured value with
its spread, and a verdict PASS / FAIL / INCONCLUSIVE with the reason. A FAIL is a result, reported with the
measured number; a row the runs cannot test is INCONCLUSIVE with the reason.

**The provider contract** (one signature for every provider)::

    def claim_rows(runs_root: Path) -> list[ClaimRow]

``runs_root`` is the stored-run root (``verify/runs``; one sub-directory per sweep); the provider reads its own runs
under it through the run store (``verify.store``) and never raises for missing runs: it returns INCONCLUSIVE rows
naming what is missing. Providers are registered by name with ``register_claims(name, "module:function")``
(``verify.plugins``; imported lazily); the studies register theirs in ``verify/studies/__init__.py``, one line
each. ``check_provider`` states the contract as code and ``tests/test_claims_contract.py`` runs every registered
provider through it.

A row may carry ``plot``, a callable drawing its figure on a ``matplotlib.figure.Figure`` (``draw`` builds one from
a ``verify.figures`` function); ``write_claims`` then writes one PNG per such row and records its file name in the
row's ``figure`` field.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from numerics.atomic import atomic_write_text
from verify.criteria import CriterionError, criterion
from verify.plugins import CLAIM_PROVIDERS, register_claims, resolve
from verify.report import markdown_table
from verify.stats import wilson_interval
from verify.store import RUNS_ROOT

__all__ = [
    "CLAIM_PROVIDERS",
    "PLACEHOLDER_KEY",
    "REQUIRE_CONTROLS",
    "RUNS_ROOT",
    "VERDICTS",
    "ClaimRow",
    "ProviderError",
    "all_claims",
    "check_provider",
    "draw",
    "from_json",
    "inconclusive",
    "rate",
    "register_claims",
    "resolve_provider",
    "summary",
    "to_json",
    "to_markdown",
    "write_claims",
]

VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")

#: ``details`` key of a placeholder row: the name of the provider that measures the claim (``all_claims`` drops the
#: placeholder when that provider is among those it runs and did not fail).
PLACEHOLDER_KEY = "placeholder_for"

#: ``check_provider`` requires every PASS row to carry a non-empty ``control``, ``null`` and ``criterion``
#: (issue 13: a PASS shows what its statistic is on the controls and on a null, under a criterion fixed in advance).
REQUIRE_CONTROLS = True


@dataclass
class ClaimRow:
    """One row of the claims table."""

    claim: str
    source: str
    version: str
    claimed: str
    measured: str
    verdict: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    #: The same statistic on the controls (no weight decay; weight-decay runs of ops that never grok), with its
    #: interval; "n/a: <why>" where the claim has no control.
    control: str | None = None
    #: The same statistic on a null of the same shape (random windows of the same W, P and norm profile; a
    #: time-shuffled window), with its interval; "n/a: <why>" where no null applies.
    null: str | None = None
    #: Id of the row's pass/fail criterion in ``verify/criteria.toml`` (``verify.criteria``).
    criterion: str | None = None
    #: File name of the row's figure, set by ``write_claims`` when ``plot`` is given.
    figure: str | None = None
    #: Draws the row's figure on a ``matplotlib.figure.Figure`` (not serialised).
    plot: Callable[[Any], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def inconclusive(claim: str, source: str, version: str, claimed: str, why: str) -> ClaimRow:
    """An INCONCLUSIVE row: the claim cannot be measured on these runs, for the reason ``why``."""
    return ClaimRow(claim, source, version, claimed, "not measurable on these runs", "INCONCLUSIVE", why)


def draw(name: str, *args: Any, **kw: Any) -> Callable[[Any], None]:
    """A row's ``plot``: ``verify.figures.<name>(fig, *args, **kw)`` (matplotlib is imported when drawn)."""
    def plot(fig: Any) -> None:
        from verify import figures  # local: matplotlib only when a figure is written

        getattr(figures, name)(fig, *args, **kw)

    return plot


def rate(k: int, n: int) -> str:
    """``k/n (p %, 95 % Wilson [lo, hi])`` — a firing count with its interval, for ``control`` / ``null``."""
    if n < 1:
        return f"{k}/{n}"
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} ({100 * k / n:.0f} %, 95 % Wilson [{max(100 * lo, 0.0):.0f}, {min(100 * hi, 100.0):.0f}] %)"


# --- writers -------------------------------------------------------------------------------------------------------


def criterion_label(row: ClaimRow) -> str:
    """The row's criterion as the table shows it: its id and date, marked when fixed after the data were seen."""
    if row.criterion is None:
        return "—"
    c = criterion(row.criterion)
    return f"{c.id} ({c.label()})" + (" **post hoc**" if c.post_hoc else "")


def to_markdown(rows: Sequence[ClaimRow]) -> str:
    """Markdown table of the rows (``verify.report.markdown_table``), one line per row."""
    return markdown_table(["claim", "source", "version", "claimed", "measured", "control", "null", "verdict",
                           "reason", "criterion"],
                          [[r.claim, r.source, r.version, r.claimed, r.measured, r.control or "—", r.null or "—",
                            f"**{r.verdict}**", r.reason, criterion_label(r)] for r in rows]) + "\n"


def summary(rows: Sequence[ClaimRow]) -> str:
    """One line: rows per verdict, and the rows whose criterion was fixed after its data were seen (post hoc)."""
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    post = [f"{r.claim} ({r.criterion})" for r in rows
            if r.criterion is not None and getattr(_criterion_or_none(r.criterion), "post_hoc", False)]
    line = f"{len(rows)} rows: " + ", ".join(f"{n} {v}" for v, n in counts.items())
    none = sum(r.criterion is None for r in rows)
    line += f"; {none} without a criterion" if none else ""
    return line + (f"; criterion post hoc ({len(post)}): " + "; ".join(post) if post else "; no criterion post hoc")


def _criterion_or_none(cid: str) -> Any:
    try:
        return criterion(cid)
    except CriterionError:
        return None


def _plain(x: Any) -> Any:
    """numpy scalars and arrays, tuples → plain JSON values, recursively."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    return x


def to_json(rows: Sequence[ClaimRow]) -> str:
    """JSON (list of row dicts; ``plot`` left out)."""
    def as_dict(r: ClaimRow) -> dict[str, Any]:
        d = asdict(replace(r, plot=None))
        d.pop("plot")
        c = _criterion_or_none(r.criterion) if r.criterion is not None else None
        d["criterion_fixed"] = None if c is None else str(c.fixed)
        d["criterion_data_seen"] = None if c is None or c.data_seen is None else str(c.data_seen)
        d["criterion_post_hoc"] = None if c is None else c.post_hoc
        return _plain(d)

    return json.dumps([as_dict(r) for r in rows], indent=1, allow_nan=True)


def from_json(text: str) -> list[ClaimRow]:
    """The rows of ``to_json``'s output (``plot`` is None; the ``criterion_*`` keys, derived from ``criterion``, are
    dropped). ``to_json(from_json(to_json(rows))) == to_json(rows)``."""
    names = {f.name for f in fields(ClaimRow)} - {"plot"}
    data = json.loads(text)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError("claims JSON must be a list of row objects (verify.claims.to_json)")
    return [ClaimRow(**{k: v for k, v in d.items() if k in names}) for d in data]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "row"


def write_claims(rows: Sequence[ClaimRow], out_dir: str | os.PathLike[str], *,
                 figures: bool = True) -> tuple[Path, Path]:
    """Write ``claims.md``, ``claims.json`` and, with ``figures``, one PNG per row that has a ``plot``
    (``NN-<claim slug>.png``, named in the row's ``figure`` field), all atomically (``numerics.atomic``)."""
    from verify.figures import claim_figure  # local: matplotlib only when figures are written

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if figures:
        for i, r in enumerate(rows):
            if r.plot is not None:
                name = f"{i + 1:02d}-{_slug(r.claim)}.png"
                claim_figure(r.plot, out / name, title=r.claim, verdict=r.verdict)
                r.figure = name
    return atomic_write_text(out / "claims.md", to_markdown(rows)), atomic_write_text(out / "claims.json",
                                                                                       to_json(rows))


# --- the provider registry -----------------------------------------------------------------------------------------

Provider = Callable[[Path], list[ClaimRow]]

class ProviderError(TypeError):
    """A registered provider breaks the contract (module docstring); the message names it."""


def resolve_provider(name: str) -> Provider:
    """The provider callable registered as ``name`` (its module imported now)."""
    return resolve(CLAIM_PROVIDERS[name])


def check_provider(name: str, runs_root: str | os.PathLike[str] = RUNS_ROOT) -> list[ClaimRow]:
    """Run provider ``name`` on ``runs_root`` through the contract; raise ``ProviderError`` naming it on a breach.

    The contract: one positional parameter ``runs_root`` (more are allowed only with defaults); the result is a
    list of ``ClaimRow`` with a verdict in ``VERDICTS`` and a non-empty claim, measured value and reason; a row's
    ``criterion``, when given, exists in ``verify/criteria.toml``; with ``REQUIRE_CONTROLS``, every PASS row has a
    non-empty ``control``, ``null`` and ``criterion`` ("n/a: <why>" is a value); every ``details`` and the whole
    row serialise to JSON.
    """
    fn = resolve_provider(name)
    where = f"claims provider {name!r} ({CLAIM_PROVIDERS[name]})"
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not positional or len(required) > 1 or (required and required[0] is not positional[0]):
        raise ProviderError(f"{where}: the signature must be claim_rows(runs_root: Path) -> list[ClaimRow], got "
                            f"{fn.__name__}{inspect.signature(fn)}")
    rows = fn(Path(runs_root))
    if not isinstance(rows, list):
        raise ProviderError(f"{where} returned {type(rows).__name__}, not a list of ClaimRow")
    for r in rows:
        if not isinstance(r, ClaimRow):
            raise ProviderError(f"{where} returned {type(r).__name__}, not ClaimRow")
        if not (r.claim and r.measured and r.reason):
            raise ProviderError(f"{where}: row {r.claim!r} has an empty claim, measured value or reason")
        if REQUIRE_CONTROLS and r.verdict == "PASS":
            missing = [f for f in ("control", "null", "criterion") if not (getattr(r, f) or "").strip()]
            if missing:
                raise ProviderError(f"{where}: PASS row {r.claim!r} has no {', '.join(missing)} (a PASS shows its "
                                    "control, its null (or 'n/a: <why>') and its criterion id)")
        if r.criterion is not None:
            try:
                criterion(r.criterion)
            except CriterionError as exc:
                raise ProviderError(f"{where}: row {r.claim!r}: {exc}") from exc
        try:
            to_json([r])
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"{where}: row {r.claim!r} does not serialise to JSON ({exc})") from exc
    return rows


def all_claims(runs_root: str | os.PathLike[str] = RUNS_ROOT, *, only: Sequence[str] | None = None,
               strict: bool = False, rows_of: Callable[[str, Path], list[ClaimRow]] = check_provider,
               ) -> list[ClaimRow]:
    """Every provider's rows (``CLAIM_PROVIDERS`` order), each given ``runs_root``; ``only`` selects providers.

    A provider that cannot be imported, raises or breaks the contract gives one INCONCLUSIVE row naming it and the
    error (one broken module never hides the others); with ``strict`` the error propagates instead. Placeholder rows
    (``details[PLACEHOLDER_KEY]`` = a provider name) are dropped when that provider ran. ``rows_of(name, runs_root)``
    gives one provider's rows: ``check_provider``, or a cache in front of it (``verify.book_data.cached_rows``) that
    raises whatever ``check_provider`` raises.
    """
    root = Path(runs_root)
    names = list(CLAIM_PROVIDERS) if only is None else list(only)
    unknown = [n for n in names if n not in CLAIM_PROVIDERS]
    if unknown:
        raise ValueError(f"unknown claims provider(s) {unknown}; known: {list(CLAIM_PROVIDERS)}")
    rows: list[ClaimRow] = []
    ran: set[str] = set()
    for name in names:
        try:
            rows.extend(rows_of(name, root))
            ran.add(name)
        except Exception as exc:
            if strict:
                raise
            rows.append(ClaimRow(f"rows of provider {name!r}", str(CLAIM_PROVIDERS[name]), "—", "—",
                                 "provider failed", "INCONCLUSIVE", f"{type(exc).__name__}: {exc}"))
    return [r for r in rows if r.details.get(PLACEHOLDER_KEY) not in ran]
