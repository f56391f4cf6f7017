"""The claims cache of the book (``verify.book_data.cached_rows`` / ``book_claims``): one computation per set of
inputs, a changed input (a run file's bytes, a provider's code, its registration) misses, a failure is never cached,
and the rows read back are the rows computed (``verify.claims.from_json`` is ``to_json``'s inverse); and a page's
scratch folder (``scratch_dir``) does not outlive its kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from verify import book_data
from verify.book_data import (
    CACHE_ENV,
    DEFAULT_CLAIMS_CACHE,
    book_claims,
    cached_rows,
    claims_cache_dir,
    inputs_digest,
    store_rows,
)
from verify.claims import CLAIM_PROVIDERS, ClaimRow, all_claims, from_json, to_json

#: A registered name whose target is a module under verify/ (so it is cacheable); the computation itself is the
#: counting fake below, never the real provider.
NAME = "cache-probe"
PNG = b"\x89PNG\r\n\x1a\n"


class Counting:
    """A stand-in for ``check_provider``: counts its calls, returns two rows (the first with a figure when ``figure``)
    or raises;
    ``during`` runs inside the computation (to change an input meanwhile)."""

    def __init__(self) -> None:
        self.calls = 0
        self.figure = False  # drawing costs ~1 s: only the test of the figures draws one
        self.fail: Exception | None = None
        self.during: Any = None

    def __call__(self, name: str, runs_root: Any) -> list[ClaimRow]:
        self.calls += 1
        if self.during is not None:
            self.during()
        if self.fail is not None:
            raise self.fail

        def plot(fig: Any) -> None:
            fig.add_subplot().plot([0, 1], [0, self.calls])

        return [ClaimRow("drawn", "[S]", "—", "x", f"call {self.calls}", "FAIL", "r", {"a": (1, 2.5)},
                         plot=plot if self.figure else None),
                ClaimRow("plain", "[S]", "—", "x", "y", "INCONCLUSIVE", "r")]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Counting:
    fake = Counting()
    monkeypatch.setitem(CLAIM_PROVIDERS, NAME, "verify.studies.onset:claim_rows")
    monkeypatch.setattr(book_data, "check_provider", fake)
    src = tmp_path / "src" / "verify"  # the hashed code: a copy of the provider's module only, edited by the tests
    src.mkdir(parents=True)
    (src / "provider.py").write_text("def claim_rows(root):\n    return []\n")
    monkeypatch.setattr(book_data, "SOURCE_DIRS", (src,))
    (tmp_path / "runs" / "sweep").mkdir(parents=True)
    (tmp_path / "runs" / "sweep" / "a.jsonl.gz").write_bytes(b"run bytes 1")
    return fake


def _rows(tmp_path: Path) -> list[ClaimRow]:
    return cached_rows(NAME, tmp_path / "runs", tmp_path / "cache")


def test_a_second_call_reads_the_rows_and_figures_instead_of_recomputing(probe: Counting, tmp_path: Path) -> None:
    probe.figure = True
    first = _rows(tmp_path)
    second = _rows(tmp_path)
    assert probe.calls == 1
    assert to_json(first) == to_json(second)
    assert [r.claim for r in second] == ["drawn", "plain"] and second[0].measured == "call 1"
    assert second[0].details == {"a": [1, 2.5]} and all(r.plot is None for r in second)
    assert Path(second[0].figure).read_bytes()[:8] == PNG and second[1].figure is None
    # one entry, written whole: no temporary directory left beside it
    assert [p.name.startswith(".") for p in (tmp_path / "cache").iterdir()] == [False]


def test_changed_run_bytes_miss(probe: Counting, tmp_path: Path) -> None:
    _rows(tmp_path)
    (tmp_path / "runs" / "sweep" / "a.jsonl.gz").write_bytes(b"run bytes 2")  # same size, other bytes
    assert _rows(tmp_path)[0].measured == "call 2"
    (tmp_path / "runs" / "sweep" / "b.jsonl.gz").write_bytes(b"another run")
    assert _rows(tmp_path)[0].measured == "call 3"
    assert _rows(tmp_path)[0].measured == "call 3" and probe.calls == 3


def test_a_checkpoint_counts_by_its_presence_only(probe: Counting, tmp_path: Path) -> None:
    ckpt = tmp_path / "runs" / "sweep" / "a.ckpt.pt"
    ckpt.write_bytes(b"weights 1")
    _rows(tmp_path)
    ckpt.write_bytes(b"weights 2, longer")  # the store reads only whether it exists
    _rows(tmp_path)
    assert probe.calls == 1
    ckpt.unlink()  # the run is no longer interrupted: a different input
    _rows(tmp_path)
    assert probe.calls == 2


def test_changed_code_or_registration_misses(probe: Counting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src" / "verify"
    _rows(tmp_path)
    (src / "provider.py").write_text("def claim_rows(root):\n    return [1]\n")
    _rows(tmp_path)
    assert probe.calls == 2
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "provider.cpython-311.pyc").write_bytes(b"byte code")  # not an input
    _rows(tmp_path)
    assert probe.calls == 2
    monkeypatch.setitem(CLAIM_PROVIDERS, NAME, "verify.studies.lch:claim_rows")  # another function, same name
    _rows(tmp_path)
    assert probe.calls == 3


def test_a_failure_is_raised_every_time_and_never_cached(probe: Counting, tmp_path: Path) -> None:
    probe.fail = RuntimeError("provider broke")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="provider broke"):
            _rows(tmp_path)
        with pytest.raises(RuntimeError, match="provider broke"):
            book_claims(tmp_path / "runs", only=[NAME], strict=True, cache_dir=tmp_path / "cache")
        rows = book_claims(tmp_path / "runs", only=[NAME], strict=False, cache_dir=tmp_path / "cache")
        assert [(r.verdict, r.measured) for r in rows] == [("INCONCLUSIVE", "provider failed")]
        assert "provider broke" in rows[0].reason
    assert probe.calls == 6
    assert not list((tmp_path / "cache").glob("*/claims.json"))
    probe.fail = None
    assert _rows(tmp_path)[0].measured == "call 7"


def test_inputs_that_move_during_the_computation_are_not_stored(probe: Counting, tmp_path: Path) -> None:
    probe.during = lambda: (tmp_path / "runs" / "sweep" / "a.jsonl.gz").write_bytes(f"grew {probe.calls}".encode())
    assert _rows(tmp_path)[0].measured == "call 1"  # the rows are returned, but under no key
    assert _rows(tmp_path)[0].measured == "call 2"
    probe.during = None
    assert _rows(tmp_path)[0].measured == "call 3"
    assert _rows(tmp_path)[0].measured == "call 3"


def test_a_provider_registered_as_a_callable_is_computed_every_time(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def provider(runs_root: Path) -> list[ClaimRow]:
        calls.append(runs_root)
        return [ClaimRow("c", "[S]", "—", "x", "y", "INCONCLUSIVE", "r")]

    monkeypatch.setitem(CLAIM_PROVIDERS, NAME, provider)  # its code is not among the hashed sources
    for _ in range(2):
        assert [r.claim for r in cached_rows(NAME, tmp_path, tmp_path / "cache")] == ["c"]
    assert len(calls) == 2


def test_book_claims_equals_all_claims(tmp_path: Path) -> None:
    """Real providers on an empty runs root (INCONCLUSIVE rows, quick): the same JSON as all_claims, hit or miss."""
    names = ["onset", "lch", "backbone"]
    fresh = json.loads(to_json(all_claims(tmp_path, only=names, strict=True)))
    for _ in range(2):
        assert json.loads(to_json(book_claims(tmp_path, only=names, cache_dir=tmp_path / "cache"))) == fresh


def test_from_json_inverts_to_json(stored_claims: list[ClaimRow]) -> None:
    text = to_json(stored_claims)
    assert to_json(from_json(text)) == text
    with pytest.raises(ValueError, match="list of row objects"):
        from_json('{"claim": "x"}')


def test_the_cache_lives_where_the_build_writes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert claims_cache_dir() == DEFAULT_CLAIMS_CACHE and DEFAULT_CLAIMS_CACHE.parent.name == "_build"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert claims_cache_dir() == tmp_path
    assert claims_cache_dir(tmp_path / "given") == tmp_path / "given"


def test_rows_stored_by_the_test_session_are_read_back(probe: Counting, tmp_path: Path) -> None:
    """``store_rows`` (rows computed elsewhere, on inputs of a known digest) makes the entry ``cached_rows`` reads."""
    probe.figure = True
    computed = probe(NAME, tmp_path / "runs")
    digest = inputs_digest(tmp_path / "runs")
    stored = store_rows(NAME, computed, tmp_path / "runs", tmp_path / "cache", digest=digest)
    assert computed[0].figure is None  # the caller's rows are left as they were
    read = _rows(tmp_path)
    assert probe.calls == 1 and to_json(read) == to_json(stored)
    assert Path(read[0].figure).read_bytes()[:8] == PNG
    other = store_rows(NAME, computed, tmp_path / "runs", tmp_path / "cache", digest="0" * 64)  # another digest
    assert Path(other[0].figure).parent != Path(stored[0].figure).parent  # its own entry
    assert [r.measured for r in other] == [r.measured for r in stored] and probe.calls == 1


def test_a_pages_scratch_dir_is_removed_when_its_kernel_exits(tmp_path: Path) -> None:
    code = ("import sys; from verify.book_data import scratch_dir; p = scratch_dir('page-'); "
            "(p / 'fig.png').write_bytes(b'x'); print(p); sys.stdout.flush()")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    made = Path(out.stdout.strip())
    assert made.parent == tmp_path and made.name.startswith("page-")
    assert not made.exists() and list(tmp_path.iterdir()) == []
