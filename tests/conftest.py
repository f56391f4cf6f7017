"""Shared test configuration: hypothesis profiles and seeded RNG fixtures."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from verify.claims import ClaimRow, all_claims

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


@pytest.fixture(scope="session")
def _stored_claims() -> tuple[ClaimRow, ...]:
    """``all_claims(strict=True)`` on the stored runs, computed fresh once per test session (about 10 CPU-s)."""
    return tuple(all_claims(strict=True))


@pytest.fixture
def stored_claims(_stored_claims: tuple[ClaimRow, ...]) -> list[ClaimRow]:
    """The session's ``all_claims(strict=True)`` rows, each a shallow copy, so one test's edits never reach another."""
    return [copy.copy(r) for r in _stored_claims]
