"""Shared test configuration: hypothesis profiles and seeded RNG fixtures."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from verify.book_data import cached_rows, inputs_digest
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
    (``tests/test_book.py``, ``verify.book_data.store_rows``) instead of computing them again. Under pytest-xdist
    the other workers read the rows worker gw0 computed for the build from that cache (``_rows_of_gw0``) instead of
    computing them too; read back, a row's ``plot`` is None and its ``figure`` the PNG gw0 drew."""
    if not _PROVIDER_ROWS:
        shared = _rows_of_gw0()
        if shared is None:
            before = inputs_digest(RUNS_ROOT)
            rows = {name: tuple(check_provider(name, RUNS_ROOT)) for name in CLAIM_PROVIDERS}
            shared = (before if inputs_digest(RUNS_ROOT) == before else None, rows)
        _PROVIDER_ROWS.append(shared)
    return _PROVIDER_ROWS[0]


_ROWS_MARKER = "rows.json"  # in the shared build folder: {"digest": ...} once gw0 stored its rows (null: it did not)
_ROWS_WAIT_S = 1800.0


def _rows_of_gw0() -> tuple[str, dict[str, tuple[ClaimRow, ...]]] | None:
    """In a pytest-xdist worker other than gw0, when gw0 starts the book build (``pytest_collection_finish``): wait
    for gw0 to store the session's rows in the build's claims cache and read them back; None (compute them here)
    when there is no such build, gw0 stored none, or the run files changed since."""
    work, worker = os.environ.get(_BOOK_WORK_ENV), os.environ.get("PYTEST_XDIST_WORKER")
    if not (work and worker and worker != "gw0" and any(_BOOK_TEST_COLLECTED)):
        return None
    marker, deadline = Path(work) / _ROWS_MARKER, time.monotonic() + _ROWS_WAIT_S
    while not marker.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)
    digest = json.loads(marker.read_text())["digest"]
    if digest is None or inputs_digest(RUNS_ROOT) != digest:
        return None
    cache = Path(work) / "claims-cache"
    return digest, {name: tuple(cached_rows(name, RUNS_ROOT, cache, digest=digest)) for name in CLAIM_PROVIDERS}


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


#: Whether this process collected the book-build test (its worker gw0 then stores the session's rows for the others).
_BOOK_TEST_COLLECTED: list[bool] = []

#: The session's shared book-build folder (``tests/test_book.py``: ``WORK_ENV``), made by the controlling process.
_BOOK_WORK: list[str] = []
_BOOK_WORK_ENV = "SPECTRAL_EDGE_BOOK_WORK"  # = tests.test_book.WORK_ENV (not imported: that module loads late)


def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process (the only one, or pytest-xdist's controller before its workers start): a fresh
    shared folder for the session's one book build, named in the environment the workers inherit. In a worker:
    one intra-op torch thread, since the workers already fill the cores."""
    if hasattr(config, "workerinput"):
        torch.set_num_threads(1)
        return
    _BOOK_WORK.append(tempfile.mkdtemp(prefix="spectral-edge-book-"))
    os.environ[_BOOK_WORK_ENV] = _BOOK_WORK[0]


#: Test files in the order pytest-xdist should hand them out (``--dist loadfile`` sends files in collection order):
#: the longest first, so that the end of the session is not one long file on one worker while the other idles; the
#: files that read the session's claims rows after them (by then gw0 has stored the rows); the book's file last (its
#: test only waits for the build started at collection). Measured with ``--durations`` on 2026-12-03; an ordering
#: only: a file not named here keeps its place between the two groups.
_FIRST = ("test_train.py", "test_gpukit.py", "test_workloads_live.py", "test_faults.py", "test_adapters.py",
          "test_cli.py", "test_mutations.py", "test_layering.py")
_LAST = ("test_claims.py", "test_claims_cache.py", "test_claims_contract.py", "test_claims_golden.py",
         "test_criteria.py", "test_predictors_study.py", "test_book.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in _FIRST:
            return 0, _FIRST.index(name)
        if name in _LAST:
            return 2, _LAST.index(name)
        return 1, 0

    items.sort(key=rank)  # stable: each file keeps its own order, the other files their collection order


@pytest.hookimpl(trylast=True)  # after pytest-xdist reports the collection, so scheduling does not wait for the rows
def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the book's build as soon as the suite knows it will check it (``tests/test_book.py``,
    ``start_book_build``), after the session's claims rows exist (``provider_rows``, stored in the build's claims
    cache): it then runs on one core beside the rest of the suite. Under pytest-xdist every worker collects every
    test; the first worker (gw0) starts the build, and the test waits for it on whichever worker runs it."""
    book = next((item for item in session.items if item.name == "test_book_builds_and_renders"), None)
    _BOOK_TEST_COLLECTED.append(book is not None and not session.config.option.collectonly)
    if not _BOOK_TEST_COLLECTED[0] or os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    digest = None
    try:
        digest, rows = provider_rows()
        book.module.start_book_build(None, digest, rows)
    finally:  # the other workers wait for this marker (null: compute the rows yourselves)
        work = os.environ.get(_BOOK_WORK_ENV)
        if work:
            tmp = Path(work) / f"{_ROWS_MARKER}.tmp"
            tmp.write_text(json.dumps({"digest": digest}))
            tmp.replace(Path(work) / _ROWS_MARKER)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Kill a book build that no test waited for (a run stopped early by ``-x`` or a failure) and remove the
    session's build folder (controlling process only)."""
    for work in _BOOK_WORK:
        pid, result = Path(work) / "pid", Path(work) / "result.json"
        if pid.exists() and not result.exists():
            try:
                os.killpg(int(pid.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError, PermissionError):
                pass
        shutil.rmtree(work, ignore_errors=True)
