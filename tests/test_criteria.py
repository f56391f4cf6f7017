"""The versioned criteria file (``verify/criteria.toml``, ``verify.criteria``): every criterion's recorded sha matches
its text and params, a changed criterion without a new sha and date fails naming it, post hoc is fixed > data_seen,
and every row of every registered claims provider names a criterion that exists."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from verify.claims import CLAIM_PROVIDERS, ClaimRow, summary, to_json
from verify.criteria import Criterion, CriterionError, check_criteria, criteria, criterion, sha

ENTRY = '''
[demo.rule]
text = "{text}"
params = {{ k = 3 }}
fixed = {fixed}
data_seen = 2026-12-01
sha = "{sha}"
{history}
'''


def _write(tmp_path: Path, text: str, fixed: str, recorded: str, history: str = "") -> dict[str, Criterion]:
    p = tmp_path / f"criteria-{len(list(tmp_path.iterdir()))}.toml"  # a new file each time: criteria() caches by path
    p.write_text(ENTRY.format(text=text, fixed=fixed, sha=recorded, history=history))
    return criteria(p)


def test_the_real_file_is_clean() -> None:
    assert check_criteria() == []


def test_a_changed_text_without_a_new_sha_fails_naming_the_criterion(tmp_path: Path) -> None:
    old = sha("PASS iff k <= 3", {"k": 3})
    assert check_criteria(_write(tmp_path, "PASS iff k <= 3", "2026-11-30", old)) == []
    broken = check_criteria(_write(tmp_path, "PASS iff k <= 4", "2026-11-30", old))
    assert len(broken) == 1 and broken[0].startswith("demo.rule:") and "changed" in broken[0]


def test_a_new_sha_without_a_later_date_fails(tmp_path: Path) -> None:
    old, new = sha("PASS iff k <= 3", {"k": 3}), sha("PASS iff k <= 4", {"k": 3})
    same_day = _write(tmp_path, "PASS iff k <= 4", "2026-11-30", new,
                      f'history = [{{ fixed = 2026-11-30, sha = "{old}" }}]')
    assert any("demo.rule" in m and "later date" in m for m in check_criteria(same_day))
    later = _write(tmp_path, "PASS iff k <= 4", "2026-12-02", new,
                   f'history = [{{ fixed = 2026-11-30, sha = "{old}" }}]')
    assert check_criteria(later) == []
    assert later["demo.rule"].post_hoc  # changed after its data were seen


def test_post_hoc_is_fixed_after_the_data_were_seen() -> None:
    day = dt.date(2026, 12, 1)
    c = Criterion("x", "t", day, sha("t", {}), data_seen=day)
    assert not c.post_hoc and "after" not in c.label()
    late = Criterion("x", "t", day + dt.timedelta(days=1), sha("t", {}), data_seen=day)
    assert late.post_hoc and "after the data were seen (2026-12-01)" in late.label()
    assert not Criterion("x", "t", day, sha("t", {})).post_hoc  # data_seen unknown


def test_this_studies_post_hoc_marks() -> None:
    assert criterion("onset.defect_lead").post_hoc  # written a week after the Dyck runs it scores
    assert criterion("modes.mul_gain").post_hoc and criterion("modes.mul_gain").history
    assert not criterion("li2.detector_fires").post_hoc and not criterion("lch.grad_peak").post_hoc


def test_an_unknown_criterion_is_named() -> None:
    with pytest.raises(CriterionError, match=r"no\.such"):
        criterion("no.such")


def test_every_row_of_every_provider_names_an_existing_criterion(stored_claims: list[ClaimRow]) -> None:
    rows = stored_claims  # all_claims(strict=True), computed once per session (conftest)
    missing = [r.claim for r in rows if r.criterion is None]
    assert not missing, f"rows without a criterion: {missing}"
    for r in rows:
        criterion(r.criterion)  # raises naming it


@pytest.mark.parametrize("name", ["onset", "li2", "backbone", "lch", "modes"])
def test_this_studies_rows_show_control_null_and_criterion_in_json(
        name: str, stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> None:
    rows = list(stored_provider_rows[name])  # check_provider(name, RUNS_ROOT), computed once per session (conftest)
    assert all(r.criterion and r.criterion.startswith(f"{name}.") for r in rows)
    for r in rows:
        if r.verdict == "PASS":
            assert r.control and r.null
    d = json.loads(to_json(rows))
    assert {"control", "null", "criterion", "criterion_fixed", "criterion_data_seen",
            "criterion_post_hoc"} <= set(d[0])


def test_summary_counts_verdicts_and_names_post_hoc_rows(
        stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> None:
    rows = list(stored_provider_rows["modes"])  # check_provider("modes", RUNS_ROOT), once per session (conftest)
    line = summary(rows)
    assert line.startswith(f"{len(rows)} rows: ") and "modes.mul_gain" in line and "post hoc" in line
    assert list(CLAIM_PROVIDERS)
