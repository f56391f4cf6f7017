"""Running an entry: ``run_theorem`` drives a check with hypothesis and reports the shrunk counterexample;
``select`` picks entries by id or prefix, ``run_catalogue`` runs them at a profile."""

from __future__ import annotations

import importlib
import math
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import UnsatisfiedAssumption

from verify.theorems.registry import CATALOGUE, COUNTEREXAMPLES, HOLDS, Theorem, Violation

__all__ = ["HUNT_EXAMPLES", "PROFILES", "TheoremResult", "examples_for", "run_catalogue", "run_theorem", "select"]

#: Examples per theorem for each profile.
PROFILES: dict[str, int] = {"quick": 50, "thorough": 1000}

#: Budget of a search for an expected counterexample (it stops at the first one found).
HUNT_EXAMPLES: int = 5000


@dataclass
class TheoremResult:
    """Outcome of ``run_theorem``. ``example`` is the raw shrunk counterexample (not in ``to_dict``)."""

    id: str
    statement: str
    source: str
    expected: str
    verdict: str
    examples: int
    rejected: int
    counterexamples: int
    shrink_calls: int
    time_s: float
    statistical: bool = False
    counterexample: dict[str, Any] | None = None
    reason: str = ""
    example: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "example"}
        d["time_s"] = round(self.time_s, 4)
        return d


def _missing(requires: Iterable[str]) -> str | None:
    for name in requires:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken install raising anything at import
            return f"requires {name} ({type(exc).__name__}: {exc})"
    return None


def _jsonable(x: Any, depth: int = 0) -> Any:
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist(), depth)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if hasattr(x, "_asdict"):
        return {k: _jsonable(v, depth + 1) for k, v in x._asdict().items()}
    if isinstance(x, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return repr(x)


# No "explain" phase: it traces coverage (slow) to annotate a failure we report ourselves.
_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def _seed_for(theorem_id: str, seed: int) -> int:
    return zlib.crc32(f"{theorem_id}:{seed}".encode())


def run_theorem(thm: Theorem, max_examples: int, *, seed: int = 0) -> TheoremResult:
    """Run ``thm`` through hypothesis with ``max_examples`` (``HUNT_EXAMPLES`` at least when a counterexample is
    expected). Seeded by (theorem id, ``seed``); reproducible for a given hypothesis version and set of imported
    modules (hypothesis mixes literal constants of the loaded source modules into its draws).

    The check is wrapped in a ``@given`` test under ``settings(max_examples, database=None, deadline=None,
    report_multiple_bugs=False, no explain phase, every health check suppressed)`` and ``hypothesis.seed``; the
    exception hypothesis raises after shrinking is caught, and the last failing call (its replay of the minimal
    example) is the reported counterexample. An exception other than ``Violation`` is a crash of the code under
    test: FAIL with its message.
    """
    base = dict(id=thm.id, statement=thm.statement, source=thm.source, expected=thm.expected,
                statistical=thm.statistical)
    missing = _missing(thm.requires)
    if missing is not None:
        return TheoremResult(**base, verdict="SKIP", examples=0, rejected=0, counterexamples=0, shrink_calls=0,
                             time_s=0.0, reason=missing)
    n = max(max_examples, HUNT_EXAMPLES) if thm.expected == COUNTEREXAMPLES else max_examples
    state: dict[str, Any] = {"tried": 0, "rejected": 0, "shrink": 0, "failure": None}

    def test(example: Any) -> None:
        before = state["failure"] is None
        if before:
            state["tried"] += 1
        else:
            state["shrink"] += 1
        try:
            thm.check(example)
        except UnsatisfiedAssumption:
            if before:
                state["rejected"] += 1
            raise
        except Exception as exc:
            state["failure"] = (example, exc)
            raise

    test.__name__ = test.__qualname__ = "check_" + thm.id.replace(".", "_")
    run = hypothesis.seed(_seed_for(thm.id, seed))(
        settings(
            max_examples=n,
            database=None,
            deadline=None,
            derandomize=False,
            report_multiple_bugs=False,
            verbosity=Verbosity.normal,  # nothing is printed; "Failing test case" becomes an exception note
            phases=_PHASES,
            suppress_health_check=list(HealthCheck),
        )(given(thm.strategy)(test))
    )
    t0 = time.perf_counter()
    raised: BaseException | None = None
    try:
        run()
    except Exception as exc:  # the shrunk failure, re-raised by hypothesis; or hypothesis's own error
        raised = exc
    elapsed = time.perf_counter() - t0
    examples = state["tried"] - state["rejected"]
    common = dict(**base, examples=examples, rejected=state["rejected"], shrink_calls=state["shrink"],
                  time_s=elapsed)
    failure = state["failure"]
    if failure is None:
        if raised is not None:
            return TheoremResult(**common, verdict="FAIL", counterexamples=0,
                                 reason=f"hypothesis error: {type(raised).__name__}: {raised}")
        if thm.expected == HOLDS:
            return TheoremResult(**common, verdict="PASS", counterexamples=0)
        return TheoremResult(**common, verdict="FAIL", counterexamples=0,
                             reason=f"expected a counterexample, none in {examples} examples")
    example, exc = failure
    notes = [line for line in getattr(raised, "__notes__", []) if line.strip()]
    falsifying = "\n".join(n for n in notes if n.startswith("Failing test case"))
    cex = {"message": str(exc), "details": _jsonable(getattr(exc, "details", {})), "example": _jsonable(example),
           "falsifying": falsifying}
    if not isinstance(exc, Violation):
        return TheoremResult(**common, verdict="FAIL", counterexamples=0, counterexample=cex, example=example,
                             reason=f"the check crashed: {type(exc).__name__}: {exc}")
    verdict = "PASS" if thm.expected == COUNTEREXAMPLES else "FAIL"
    reason = "counterexample found, as expected" if verdict == "PASS" else "counterexample to a statement that holds"
    return TheoremResult(**common, verdict=verdict, counterexamples=1, counterexample=cex, example=example,
                         reason=reason)


def select(only: Iterable[str] | None = None) -> list[Theorem]:
    """Catalogue entries in order; ``only`` picks ids or id prefixes (``davis_kahan`` → every ``davis_kahan.*``).

    Raises ``KeyError`` naming the unknown ones.
    """
    if not only:
        return list(CATALOGUE.values())
    wanted = list(only)
    unknown = [w for w in wanted if w not in CATALOGUE and not any(k.startswith(w + ".") for k in CATALOGUE)]
    if unknown:
        raise KeyError(f"unknown theorem ids {unknown}; known: {', '.join(CATALOGUE)}")
    return [t for k, t in CATALOGUE.items() if any(k == w or k.startswith(w + ".") for w in wanted)]


def examples_for(profile: str | int) -> int:
    if isinstance(profile, int) and not isinstance(profile, bool):
        if profile < 1:
            raise ValueError(f"a numeric profile is examples per theorem, ≥ 1; got {profile}")
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} (or an int)")
    return PROFILES[profile]


def run_catalogue(
    profile: str | int = "quick",
    only: Iterable[str] | None = None,
    *,
    seed: int = 0,
    on_result: Callable[[TheoremResult], None] | None = None,
) -> list[TheoremResult]:
    """Run the selected theorems at ``profile`` ("quick", "thorough" or examples per theorem); ``on_result`` is
    called after each one (e.g. to print progress)."""
    n = examples_for(profile)
    results = []
    for thm in select(only):
        r = run_theorem(thm, n, seed=seed)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results
