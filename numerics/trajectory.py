"""Trajectory files: append-only JSON Lines with a versioned schema header.

Layout of a file::

    {"schema": "spectral-edge/trajectory", "version": 1, "provenance": {...}, "meta": {...}}   <- header, line 1
    {"type": "spectrum", "step": 100, "group": "all", "sigma": [...], "kstar": 1, ...}         <- records
    {"type": "eval", "step": 100, "train_acc": 0.41, "test_acc": 0.02, ...}
    {"type": "end", "step": 3000, ...}

Why JSON Lines: each record is one ``write`` of one line followed by a flush, so a run (process) killed at any
moment leaves a file that is readable up to its last complete record; the reader drops a partial
last line and says so (``Trajectory.truncated``). Records are small (W numbers per group per checkpoint), so
text costs little and stays diffable. Non-finite floats are written as the JSON extensions ``NaN``/``Infinity``
that Python's ``json`` reads back (a rank-deficient window has an infinite ratio r_j).

A resumed run appends to the same file after a ``{"type": "resume"}`` record; for the same ``(type, step,
group)`` the reader keeps the last record written, so steps re-run after a resume replace the killed run's ones.
"""

from __future__ import annotations

import gzip
import json
import os
import time
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from numerics.atomic import atomic_write_bytes
from numerics.errors import TrajectoryError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Trajectory", "TrajectoryWriter", "compress_trajectory", "read_trajectory"]

try:  # parses the floats of a record about 5x faster than the standard library, to the same values
    from orjson import JSONDecodeError as _FastJSONError
    from orjson import loads as _fast_loads
except ImportError:  # a dependency, but optional here: the standard library reads the same files
    _fast_loads = None

SCHEMA = "spectral-edge/trajectory"
SCHEMA_VERSION = 1


def _json_default(value: Any) -> Any:
    """numpy / torch scalars and arrays → plain Python, called by ``json`` only for types it does not know (so the
    common case, lists of Python floats, costs no Python-level traversal)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch tensor, without importing torch here
        return value.detach().cpu().tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a trajectory record")


class TrajectoryWriter:
    """Append records to a trajectory file; writes the header when the file is new or empty.

    Every record is flushed to the operating system at once, which is all a killed *process* needs. Against a crash
    of the *machine*, records are also fsync'ed to disk, at most every ``fsync_interval`` seconds (0: after every
    record) and always on ``close``: an fsync costs ~1 ms, which at Δs = 1 would be a visible share of a step.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        provenance: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        fsync_interval: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.fsync_interval = float(fsync_interval)
        self._last_fsync = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            read_trajectory(self.path)  # refuse to append to a foreign or corrupt file
            self._drop_partial_tail()
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")
        if fresh:
            header = {"schema": SCHEMA, "version": SCHEMA_VERSION}
            header["provenance"] = dict(provenance or {})
            header["meta"] = dict(meta or {})
            self._write_line(header)

    def _drop_partial_tail(self) -> None:
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        tail = data[data.rfind(b"\n") + 1 :]
        try:
            json.loads(tail)
        except ValueError:  # a partial record from a killed run: cut it so the next record starts a clean line
            with open(self.path, "r+b") as fh:
                fh.truncate(len(data) - len(tail))
        else:  # a complete record whose newline was lost
            with open(self.path, "ab") as fh:
                fh.write(b"\n")

    def _write_line(self, obj: Mapping[str, Any]) -> None:
        if self._fh is None:
            raise TrajectoryError(f"trajectory writer for {self.path} is closed")
        self._fh.write(json.dumps(obj, separators=(",", ":"), default=_json_default) + "\n")
        self._fh.flush()
        now = time.monotonic()
        if now - self._last_fsync >= self.fsync_interval:
            os.fsync(self._fh.fileno())
            self._last_fsync = now

    def sync(self) -> None:
        """Flush and fsync now (the training loop calls this before it writes a checkpoint, so a checkpoint never
        refers to records that a machine crash could still lose)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._last_fsync = time.monotonic()

    def write(self, record_type: str, step: int, **fields: Any) -> None:
        """Append one record ``{"type": record_type, "step": step, **fields}``."""
        self._write_line({"type": record_type, "step": int(step), **fields})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Trajectory:
    """A parsed trajectory file: header (provenance, meta) and records, deduplicated by (type, step, group)."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]]
    truncated: bool = False
    skipped_lines: list[int] = field(default_factory=list)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def provenance(self) -> dict[str, Any]:
        return self.header.get("provenance", {})

    @property
    def meta(self) -> dict[str, Any]:
        return self.header.get("meta", {})

    def of_type(self, record_type: str, group: str | None = None) -> list[dict[str, Any]]:
        """Records of one type (optionally one group), in step order."""
        out = [r for r in self.records if r.get("type") == record_type and (group is None or r.get("group") == group)]
        return sorted(out, key=lambda r: r["step"])

    def groups(self) -> list[str]:
        return sorted({r["group"] for r in self.records if r.get("type") == "spectrum" and "group" in r})

    def series(self, record_type: str, key: str, group: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one scalar field; records lacking the field or holding None give NaN."""
        recs = self.of_type(record_type, group)
        steps = np.array([r["step"] for r in recs], dtype=np.int64)
        vals = np.array([np.nan if r.get(key) is None else r[key] for r in recs], dtype=np.float64)
        return steps, vals

    def spectra(self, group: str = "all") -> list[dict[str, Any]]:
        return self.of_type("spectrum", group)

    def evals(self) -> list[dict[str, Any]]:
        return self.of_type("eval")


def _dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        last[(r.get("type"), r.get("step"), r.get("group"))] = r  # later (resumed) records win
    return list(last.values())


def _gunzip(p: Path, raw: bytes) -> tuple[bytes, bool]:
    """Decompress (possibly concatenated) gzip members, streaming; returns (data, cut) where ``cut`` says the
    stream ended (or broke) before its end: the data decompressed before the cut is kept."""
    out: list[bytes] = []
    rest = raw
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(d.decompress(rest))
            out.append(d.flush())
        except zlib.error:
            return b"".join(out), True
        if not d.eof:
            return b"".join(out), True
        rest = d.unused_data
    return b"".join(out), False


def _loads(line: str) -> Any:
    """``json.loads(line)``, through orjson when it is installed (the same values: every record of the stored runs
    was checked, 114,729 lines). The standard library reads a line orjson refuses: the ``NaN`` and ``Infinity`` this
    module writes, and a corrupt line, for which it raises ``json.JSONDecodeError``. One difference is left: an
    integer beyond 64 bits, which nothing in this package writes, comes back as the nearest float from orjson."""
    if _fast_loads is not None:
        try:
            return _fast_loads(line)
        except _FastJSONError:
            pass
    return json.loads(line)


def read_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Read and validate a trajectory file.

    Raises ``TrajectoryError`` naming the file for: a missing or empty file, a header that is not ours (a
    foreign file), a schema version that is not a positive integer this package reads. A partial last line (a run
    killed mid-write) and the lost end of a truncated ``.gz`` are dropped with a warning and ``truncated=True``; a
    corrupt line elsewhere is skipped with a warning naming it (``skipped_lines``), keeping the records around it.
    """
    p = Path(path)
    if not p.exists():
        raise TrajectoryError(f"trajectory file not found: {p}")
    cut = False
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TrajectoryError(f"cannot read trajectory file {p}: {exc}") from exc
    if p.suffix == ".gz":  # finished runs are stored compressed (verify/runs/)
        raw, cut = _gunzip(p, raw)
        if cut:
            if b"\n" not in raw:
                raise TrajectoryError(f"cannot read trajectory file {p}: the gzip stream is cut (or corrupt) before "
                                      "the end of its header")
            warnings.warn(f"{p}: the gzip stream is cut (or corrupt); read the records before the cut",
                          stacklevel=2)
            raw = raw[: raw.rfind(b"\n") + 1]  # the records before the cut; a partial last line is dropped
    if not raw.strip():
        raise TrajectoryError(f"trajectory file is empty: {p}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrajectoryError(f"{p} is not a spectral-edge trajectory (not UTF-8 text)") from exc
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines = lines[:-1]
    try:
        header = _loads(lines[0])
    except json.JSONDecodeError as exc:
        if len(lines) == 1 and not complete:
            raise TrajectoryError(f"trajectory file {p} is truncated inside its header") from exc
        raise TrajectoryError(f"{p} is not a spectral-edge trajectory (line 1 is not JSON)") from exc
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise TrajectoryError(f"{p} is not a spectral-edge trajectory (missing schema header {SCHEMA!r})")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TrajectoryError(f"{p} has trajectory schema version {version!r}: not a positive integer (this package "
                              f"reads versions 1 to {SCHEMA_VERSION})")
    if version > SCHEMA_VERSION:
        raise TrajectoryError(f"{p} has trajectory schema version {version!r}; this package reads <= {SCHEMA_VERSION}")
    records: list[dict[str, Any]] = []
    truncated = cut
    skipped: list[int] = []
    body = lines[1:]
    for i, line in enumerate(body, start=2):
        if not line.strip():
            continue
        try:
            rec = _loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) and not complete:
                truncated = True
                warnings.warn(f"{p}: dropped a partial last record (line {i}); the run was interrupted", stacklevel=2)
                break
            skipped.append(i)
            warnings.warn(f"{p}: line {i} is corrupt ({exc.msg}); skipped it, kept the records around it",
                          stacklevel=2)
            continue
        if not isinstance(rec, dict) or "type" not in rec or "step" not in rec:
            skipped.append(i)
            warnings.warn(f"{p}: line {i} is not a trajectory record (needs 'type' and 'step'); skipped it",
                          stacklevel=2)
            continue
        records.append(rec)
    return Trajectory(path=p, header=header, records=_dedupe(records), truncated=truncated, skipped_lines=skipped)


def compress_trajectory(path: str | os.PathLike[str], *, remove: bool = True) -> Path:
    """Validate a finished trajectory, write ``<path>.gz`` atomically, and remove the plain file.

    Stored runs (``verify/runs/``) are kept compressed: the JSON text of spectra compresses about 4x.
    """
    p = Path(path)
    t = read_trajectory(p)
    if t.skipped_lines or t.truncated:  # never archive a corrupt or cut file
        raise TrajectoryError(f"will not archive {p}: " + (f"corrupt lines {t.skipped_lines}" if t.skipped_lines
                                                          else "its last record is cut"))
    target = atomic_write_bytes(p.with_name(p.name + ".gz"), gzip.compress(p.read_bytes(), mtime=0))
    if remove:
        p.unlink()
    return target
