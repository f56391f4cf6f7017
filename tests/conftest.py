"""Shared test configuration: hypothesis profiles and seeded RNG fixtures."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from verify.book_data import inputs_digest
from verify.claims import CLAIM_PROVIDERS, RUNS_ROOT, ClaimRow, all_claims, check_provider

# "ci": the default, sized so the whole suite stays well under 15 minutes on 2 cores.
# "thorough": for a local deep check, HYPOTHESIS_PROFILE=thorough make test.
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread: as fast as two for tiny models, and robust when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_PROVIDER_ROWS: list[tuple[str | None, dict[str, tuple[ClaimRow, ...]]]] = []


def provider_rows() -> tuple[str | None, dict[str, tuple[ClaimRow, ...]]]:
    """``check_provider(name, RUNS_ROOT)`` of every registered provider (the contract enforced, a failure raised),
    computed fresh once per test session, and ``inputs_digest(RUNS_ROOT)`` when the inputs were the same before and
    after (None when a run file changed meanwhile): the book's build reads these rows from its claims cache
    (``tests/test_book.py``, ``verify.book_data.store_rows``) instead of computing them again."""
    if not _PROVIDER_ROWS:
        before = inputs_digest(RUNS_ROOT)
        rows = {name: tuple(check_provider(name, RUNS_ROOT)) for name in CLAIM_PROVIDERS}
        _PROVIDER_ROWS.append((before if inputs_digest(RUNS_ROOT) == before else None, rows))
    return _PROVIDER_ROWS[0]


@pytest.fixture(scope="session")
def stored_provider_rows() -> dict[str, tuple[ClaimRow, ...]]:
    """Provider name → its rows on the stored runs (``provider_rows``); shared: do not edit the rows."""
    return provider_rows()[1]


@pytest.fixture(scope="session")
def _stored_claims(stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> tuple[ClaimRow, ...]:
    """``all_claims(strict=True)`` on the stored runs, from the session's provider rows."""
    return tuple(all_claims(RUNS_ROOT, strict=True, rows_of=lambda name, _root: list(stored_provider_rows[name])))


@pytest.fixture
def stored_claims(_stored_claims: tuple[ClaimRow, ...]) -> list[ClaimRow]:
    """The session's ``all_claims(strict=True)`` rows, each a shallow copy, so one test's edits never reach another."""
    return [copy.copy(r) for r in _stored_claims]


#: The background builds started this session (``pytest_collection_finish``), stopped at its end if still running.
_BACKGROUND_BUILDS: list[Any] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the book's build as soon as the suite knows it will check it (``tests/test_book.py``,
    ``BackgroundBuild``), after the session's claims rows exist (``provider_rows``, stored in the build's claims
    cache): it then runs on one core beside the rest of the suite."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        if item.name == "test_book_builds_and_renders":
            _BACKGROUND_BUILDS.append(item.module.start_book_build(*provider_rows()))
            return


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Kill a background book build that no test waited for (a run stopped early by ``-x`` or a failure)."""
    for build in _BACKGROUND_BUILDS:
        build.stop()
