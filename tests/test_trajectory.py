"""Trajectory files: round trip, crash safety, and clear errors for bad files."""

from __future__ import annotations

import contextlib
import json
import math
import re

import numpy as np
import pytest

from numerics.atomic import atomic_path, atomic_write_text
from numerics.errors import TrajectoryError
from numerics.trajectory import SCHEMA, TrajectoryWriter, read_trajectory


def _write_run(path, n=5):
    with TrajectoryWriter(path, provenance={"seeds": {"init": 1}}, meta={"window": 3}) as w:
        for s in range(1, n + 1):
            w.write("spectrum", s * 10, group="all", sigma=np.array([3.0, 2.0, 1.0]), R=math.inf)
            w.write("eval", s * 10, test_acc=s / n)
    return path


def test_round_trip(tmp_path):
    t = read_trajectory(_write_run(tmp_path / "run.jsonl"))
    assert t.provenance["seeds"] == {"init": 1}
    assert t.meta == {"window": 3}
    assert t.groups() == ["all"]
    steps, acc = t.series("eval", "test_acc")
    np.testing.assert_array_equal(steps, [10, 20, 30, 40, 50])
    np.testing.assert_allclose(acc, [0.2, 0.4, 0.6, 0.8, 1.0])
    assert t.spectra("all")[0]["sigma"] == [3.0, 2.0, 1.0]
    assert math.isinf(t.spectra("all")[0]["R"])  # non-finite values survive the round trip
    assert not t.truncated


@pytest.mark.parametrize("cut", [2, 7, 20])
def test_killed_run_is_readable_up_to_last_complete_record(tmp_path, cut):
    path = _write_run(tmp_path / "run.jsonl")
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # the process died in the middle of writing the last record
    with pytest.warns(UserWarning, match="partial last record"):
        t = read_trajectory(path)
    assert t.truncated
    assert len(t.evals()) == 4 and len(t.spectra()) == 5


def test_lost_final_newline_keeps_the_complete_record(tmp_path):
    path = _write_run(tmp_path / "run.jsonl")
    path.write_bytes(path.read_bytes()[:-1])
    t = read_trajectory(path)
    assert len(t.evals()) == 5 and not t.truncated


def test_append_after_crash_continues_cleanly(tmp_path):
    path = _write_run(tmp_path / "run.jsonl")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.warns(UserWarning):
        w = TrajectoryWriter(path)
    w.write("resume", 50)
    w.write("eval", 50, test_acc=0.99)
    w.close()
    t = read_trajectory(path)
    assert not t.truncated
    assert t.evals()[-1]["test_acc"] == 0.99  # the re-run step replaces the killed one
    assert len(t.of_type("resume")) == 1


def test_missing_file(tmp_path):
    with pytest.raises(TrajectoryError, match="not found"):
        read_trajectory(tmp_path / "nope.jsonl")


def test_empty_file(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(TrajectoryError, match="empty"):
        read_trajectory(tmp_path / "e.jsonl")


@pytest.mark.parametrize(
    "content",
    ['{"hello": 1}\n', "step,loss\n1,2\n", json.dumps({"schema": "other/thing", "version": 1}) + "\n"],
)
def test_foreign_file(tmp_path, content):
    (tmp_path / "f.jsonl").write_text(content)
    with pytest.raises(TrajectoryError, match="not a spectral-edge trajectory"):
        read_trajectory(tmp_path / "f.jsonl")


def test_binary_file(tmp_path):
    (tmp_path / "b.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(TrajectoryError, match="not a spectral-edge trajectory"):
        read_trajectory(tmp_path / "b.jsonl")


def test_newer_schema_version(tmp_path):
    (tmp_path / "v.jsonl").write_text(json.dumps({"schema": SCHEMA, "version": 99}) + "\n")
    with pytest.raises(TrajectoryError, match="schema version 99"):
        read_trajectory(tmp_path / "v.jsonl")


def test_corrupt_middle_line_is_skipped_with_a_warning_naming_it(tmp_path):
    path = _write_run(tmp_path / "run.jsonl")
    before = read_trajectory(path)
    lines = path.read_text().splitlines(keepends=True)
    lost = json.loads(lines[3])
    lines[3] = '{"type": "eval", "step": 2\n'
    path.write_text("".join(lines))
    with pytest.warns(UserWarning, match=r"run\.jsonl: line 4 is corrupt"):
        t = read_trajectory(path)
    assert t.skipped_lines == [4] and not t.truncated
    assert len(t.records) == len(before.records) - 1  # every record around the corrupt line is kept
    assert lost not in t.records and all(r in before.records for r in t.records)


@pytest.mark.parametrize("version", [0, -7, True, "1", 1.0, None])
def test_only_positive_integer_schema_versions(tmp_path, version):
    (tmp_path / "v.jsonl").write_text(json.dumps({"schema": SCHEMA, "version": version}) + "\n")
    with pytest.raises(TrajectoryError, match=f"schema version {re.escape(repr(version))}: not a positive integer"):
        read_trajectory(tmp_path / "v.jsonl")


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    from numerics.trajectory import compress_trajectory

    path = _write_run(tmp_path / "run.jsonl", n=200)
    full = read_trajectory(path).records
    n = len(full)
    gz = compress_trajectory(path)
    data = gz.read_bytes()
    gz.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(UserWarning, match="cut"):
        t = read_trajectory(gz)
    assert t.truncated and 0 < len(t.records) < n
    assert t.records == full[: len(t.records)]  # exactly the records before the cut


def test_compress_refuses_a_corrupt_file(tmp_path):
    from numerics.trajectory import compress_trajectory

    path = _write_run(tmp_path / "run.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "garbage\n"
    path.write_text("".join(lines))
    with pytest.warns(UserWarning), pytest.raises(TrajectoryError, match="will not archive"):
        compress_trajectory(path)
    assert path.exists()


def test_writer_sync_fsyncs(tmp_path, monkeypatch):
    import os

    calls = []
    w = TrajectoryWriter(tmp_path / "s.jsonl", fsync_interval=1e9)
    w.write("eval", 1, x=1.0)
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    w.sync()
    assert calls and read_trajectory(tmp_path / "s.jsonl").evals()[0]["x"] == 1.0
    w.close()


def test_truncated_header(tmp_path):
    (tmp_path / "h.jsonl").write_text('{"schema": "spectral-edge/traj')
    with pytest.raises(TrajectoryError, match="truncated inside its header"):
        read_trajectory(tmp_path / "h.jsonl")


def test_writer_refuses_foreign_file(tmp_path):
    (tmp_path / "f.jsonl").write_text("not json\n")
    with pytest.raises(TrajectoryError):
        TrajectoryWriter(tmp_path / "f.jsonl")
    assert (tmp_path / "f.jsonl").read_text() == "not json\n"  # untouched


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "report.md"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temp file left behind


def test_compressed_round_trip_and_corrupt_gzip(tmp_path):
    from numerics.trajectory import compress_trajectory

    gz = compress_trajectory(_write_run(tmp_path / "run.jsonl"))
    assert gz.name == "run.jsonl.gz" and not (tmp_path / "run.jsonl").exists()
    assert len(read_trajectory(gz).evals()) == 5
    gz.write_bytes(gz.read_bytes()[:30])
    with pytest.raises(TrajectoryError, match="cannot read"):
        read_trajectory(gz)


def _same(a, b) -> bool:
    """Equal values of equal types, NaN equal to NaN and the sign of zero compared."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_fast_parser_reads_what_the_standard_library_reads(tmp_path, monkeypatch):
    """orjson (when installed) and the standard library give the same records: on stored runs of every workload
    directory, and on a file with the NaN/Infinity literals and a corrupt line that orjson refuses, subnormal floats,
    -0.0 and the 64-bit integer limits."""
    import numerics.trajectory as trajectory
    from verify.claims import RUNS_ROOT

    pytest.importorskip("orjson")
    odd = tmp_path / "odd.jsonl"
    with TrajectoryWriter(odd, meta={"window": 2}) as w:
        w.write("spectrum", 1, group="all", sigma=[1e-300, 5e-324, 0.1 + 0.2], R=math.inf, g=-0.0, r=[math.nan])
        w.write("eval", 2, test_acc=2.0**0.5, big=2**64 - 1, small=-(2**63))  # 64-bit integers stay exact
    with odd.open("a") as fh:
        fh.write('{"type": "eval", "step": 3, "x": [1, 2\n{"type": "end", "step": 4}\n')
    stored = sorted({f.parent: f for f in RUNS_ROOT.rglob("*.jsonl.gz")}.values())  # one file per directory
    assert len(stored) >= 10
    for path in [odd, *stored]:
        with pytest.warns(UserWarning) if path == odd else contextlib.nullcontext():
            fast = read_trajectory(path)
        monkeypatch.setattr(trajectory, "_fast_loads", None)
        with pytest.warns(UserWarning) if path == odd else contextlib.nullcontext():
            slow = read_trajectory(path)
        monkeypatch.undo()
        assert _same(fast.header, slow.header) and _same(fast.records, slow.records), path
        assert fast.skipped_lines == slow.skipped_lines
    assert read_trajectory.__module__ == "numerics.trajectory" and fast.records  # the loop ran
