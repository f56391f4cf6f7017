"""Every registered claims provider honours the one contract (``verify.claims.check_provider``), the way
scikit-learn's estimator checks run every estimator through the same tests; a provider that breaks it fails with a
message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from verify.claims import (
    CLAIM_PROVIDERS,
    VERDICTS,
    ClaimRow,
    ProviderError,
    all_claims,
    check_provider,
    register_claims,
)

EXPECTED = ["spectral", "probes", "predictors", "onset", "li2", "backbone", "lch", "modes"]


def test_every_study_registers_its_provider_in_table_order() -> None:
    assert list(CLAIM_PROVIDERS)[: len(EXPECTED)] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_provider_on_the_stored_runs(name: str, stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> None:
    rows = stored_provider_rows[name]  # check_provider(name, RUNS_ROOT), computed once per session (conftest)
    assert rows and all(r.verdict in VERDICTS for r in rows)


@pytest.mark.parametrize("name", EXPECTED)
def test_provider_without_runs_says_inconclusive_and_does_not_raise(name: str, tmp_path: Path) -> None:
    rows = check_provider(name, tmp_path)  # an empty stored-run root
    assert all(r.verdict == "INCONCLUSIVE" for r in rows), [(r.claim, r.verdict) for r in rows]


@pytest.fixture
def scratch_provider():
    names: list[str] = []

    def add(name: str, fn) -> str:
        register_claims(name, fn)
        names.append(name)
        return name

    yield add
    for n in names:
        CLAIM_PROVIDERS.pop(n, None)


def test_a_provider_with_the_wrong_signature_is_named(scratch_provider) -> None:
    name = scratch_provider("bad-signature", lambda root, group: [])
    with pytest.raises(ProviderError, match=r"bad-signature.*signature"):
        check_provider(name)


def test_a_provider_returning_something_else_is_named(scratch_provider) -> None:
    name = scratch_provider("bad-rows", lambda root: [{"claim": "x"}])
    with pytest.raises(ProviderError, match=r"bad-rows.*not ClaimRow"):
        check_provider(name)


def test_a_row_without_a_reason_is_named(scratch_provider) -> None:
    name = scratch_provider("no-reason", lambda root: [ClaimRow("c", "[A]", "v1", "x", "y", "PASS", "")])
    with pytest.raises(ProviderError, match=r"no-reason.*empty"):
        check_provider(name)


def test_all_claims_turns_a_broken_provider_into_one_named_row(scratch_provider) -> None:
    name = scratch_provider("raises", lambda root: 1 / 0)
    rows = all_claims(only=[name])
    assert len(rows) == 1 and rows[0].verdict == "INCONCLUSIVE" and "raises" in rows[0].claim
    assert "ZeroDivisionError" in rows[0].reason
    with pytest.raises(ZeroDivisionError):
        all_claims(only=[name], strict=True)


def test_a_pass_row_without_control_null_or_criterion_is_named(scratch_provider, monkeypatch) -> None:
    import verify.claims as claims

    bare = ClaimRow("bare pass", "[A]", "v1", "x", "y", "PASS", "because", criterion="li2.detector_fires")
    name = scratch_provider("no-control", lambda root: [bare])
    with pytest.raises(ProviderError, match=r"no-control.*'bare pass'.*no control, null"):
        check_provider(name)
    full = ClaimRow("full pass", "[A]", "v1", "x", "y", "PASS", "because", control="0/15", null="n/a: a count",
                    criterion="li2.detector_fires")
    assert check_provider(scratch_provider("with-control", lambda root: [full])) == [full]
    failing = ClaimRow("a fail", "[A]", "v1", "x", "y", "FAIL", "because")  # only PASS rows need them
    assert check_provider(scratch_provider("fail-row", lambda root: [failing])) == [failing]
    monkeypatch.setattr(claims, "REQUIRE_CONTROLS", False)
    assert check_provider(name) == [bare]


def test_a_row_naming_an_unknown_criterion_is_named(scratch_provider) -> None:
    row = ClaimRow("c", "[A]", "v1", "x", "y", "FAIL", "r", criterion="no.such.criterion")
    name = scratch_provider("bad-criterion", lambda root: [row])
    with pytest.raises(ProviderError, match=r"bad-criterion.*no\.such\.criterion"):
        check_provider(name)
