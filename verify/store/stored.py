"""Stored-run directories ``verify/runs/<name>``: manifests, schema and status checks, regeneration commands."""

from __future__ import annotations

import gzip
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numerics.errors import TrajectoryError
from numerics.trajectory import SCHEMA_VERSION, Trajectory
from verify.store.runs import RUNS_ROOT, SUFFIXES, Run, load_run

__all__ = ["RunSet", "StoredRunError", "load_stored", "manifest", "regeneration_command", "run_dir", "run_files",
           "runs_with", "stored", "stored_dirs"]


class StoredRunError(TrajectoryError):
    """A stored run is missing or stale; the message names the file and the regenerating command."""


# --- stored-run directories (verify/runs/<name>) ------------------------------------------------------------------

#: Fallback commands for run directories whose files carry no command line of their own.
_KNOWN_COMMANDS: dict[str, str] = {
    "modular": "spectral-edge sweep modular --preset demo --set streams=plain --out verify/runs/modular --jobs 2",
    "dyck": "spectral-edge sweep dyck --preset author --set max_steps=4000 --set monitor.every=50 "
            "--set defect.every=100 --out verify/runs/dyck --jobs 2",
}

#: Run-list manifests, in order of preference: the sweep writes ``sweep.json``; the GPT-2/backbone driver writes
#: ``runs.json`` in the same form (``runs``: [{file, final_step, ...}]).
_MANIFESTS = ("sweep.json", "runs.json")


def run_dir(name: str | os.PathLike[str]) -> Path:
    """``verify/runs/<name>`` for a bare name, else the path itself."""
    p = Path(name)
    return p if p.is_absolute() or len(p.parts) > 1 else RUNS_ROOT / p


def _display(path: Path) -> str:
    """A path relative to the repository (``verify/runs/...``) when it lies under it, else as given."""
    try:
        return str(path.resolve().relative_to(RUNS_ROOT.parent.parent))
    except ValueError:
        return str(path)


#: Study modules that were once run as scripts (``python -m verify.li2 run …``, recorded as ``/…/verify/li2.py``) and
#: whose commands now live in the console script (issue 12: no study has a command line of its own).
_MOVED_COMMANDS: dict[str, list[str]] = {
    "verify.li2": ["spectral-edge", "li2"],
    "verify.studies.li2": ["spectral-edge", "li2"],
    "verify.backbone": ["spectral-edge", "store-runs"],
    "verify.studies.backbone": ["spectral-edge", "store-runs"],
}


def _argv_command(argv: Sequence[str]) -> str:
    """A recorded ``sys.argv`` as a command a reader can paste: the console script by its name, a study module run
    as a script by its ``spectral-edge`` command (``_MOVED_COMMANDS``: ``/…/verify/li2.py run`` → ``spectral-edge
    li2 run``), another module of this repository run as a script (``/…/verify/cli.py``) as ``python -m
    verify.cli``."""
    args = list(argv)
    if args and Path(args[0]).name == "spectral-edge":
        args[0] = "spectral-edge"
    elif args and args[0].endswith(".py"):
        path = Path(args[0])
        package = [path.parent.parent.name, path.parent.name] if path.parent.name == "studies" else [path.parent.name]
        module = ".".join([*package, path.stem])
        if module in _MOVED_COMMANDS:
            args[0:1] = _MOVED_COMMANDS[module]
        elif path.parent.name in ("verify", "numerics", "theory", "benchmarks"):
            args[0:1] = ["python", "-m", f"{path.parent.name}.{path.stem}"]
    return " ".join(shlex.quote(a) for a in args)


def _manifest_path(directory: Path) -> Path | None:
    return next((directory / m for m in _MANIFESTS if (directory / m).exists()), None)


def manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run list a directory is checked against (``sweep.json`` or ``runs.json``), or None."""
    d = run_dir(directory)
    path = _manifest_path(d)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoredRunError(f"{_display(path)} is not a readable sweep manifest ({exc}); regenerate the directory "
                             f"with: {_KNOWN_COMMANDS.get(d.name, 'the sweep that wrote it')}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise StoredRunError(f"{_display(path)} has no 'runs' list; regenerate the directory with: "
                             f"{_KNOWN_COMMANDS.get(d.name, 'the sweep that wrote it')}")
    return data


def _driver_argv(directory: Path) -> list[str] | None:
    """The argv in ``manifest.json`` (written by drivers other than the sweep)."""
    path = directory / "manifest.json"
    try:
        argv = json.loads(path.read_text()).get("provenance", {}).get("argv") if path.exists() else None
    except (OSError, ValueError, AttributeError):
        return None
    return list(argv) if isinstance(argv, list) and argv else None


def _stored_files(directory: Path) -> list[Path]:
    """The stored (compressed) trajectory files of a directory; a plain ``.jsonl`` is a run still being written."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(SUFFIXES[0]))


def _first_header(directory: Path) -> dict[str, Any] | None:
    """The header line of the first readable stored trajectory file (only line 1 is read)."""
    for f in _stored_files(directory):
        try:
            with gzip.open(f, "rt", encoding="utf-8") as fh:
                header = json.loads(fh.readline())
        except (OSError, EOFError, ValueError):
            continue
        if isinstance(header, dict):
            return header
    return None


def regeneration_command(directory: str | os.PathLike[str]) -> str:
    """The command that (re)writes the runs of ``directory``: the argv recorded in its ``sweep.json``, else in its
    ``manifest.json``, else in the header of its first trajectory file, else the known command for
    ``verify/runs/<name>``.

    Runs written before the seeding streams existed (their config has no ``streams`` key) seeded every generator
    with the run seed; ``--set streams=plain`` repeats that, so the command gets it appended.
    """
    d = run_dir(directory)
    if d.is_dir():
        listing = manifest(d)
        header = _first_header(d) or {}
        argv = ((listing or {}).get("provenance") or {}).get("argv") or _driver_argv(d) \
            or (header.get("provenance") or {}).get("argv")
        if argv:
            argv = list(argv)
            config = (header.get("provenance") or {}).get("config")
            if isinstance(config, dict) and "streams" not in config and "streams=plain" not in argv:
                argv += ["--set", "streams=plain"]
            return _argv_command(argv)
    if d.name in _KNOWN_COMMANDS:
        return _KNOWN_COMMANDS[d.name]
    return f"the sweep or train command that writes {_display(d)} (see `spectral-edge sweep --help`)"


def stored(name: str | os.PathLike[str]) -> bool:
    """Whether ``verify/runs/<name>`` exists and holds at least one stored (compressed) trajectory file."""
    d = run_dir(name)
    return d.is_dir() and bool(_stored_files(d))


def stored_dirs() -> list[str]:
    """Names of the run directories under ``RUNS_ROOT`` that hold stored runs."""
    return sorted(p.name for p in RUNS_ROOT.iterdir() if p.is_dir() and stored(p.name)) if RUNS_ROOT.is_dir() else []


def run_files(name: str | os.PathLike[str]) -> list[Path]:
    """The stored trajectory files of a run directory, checked against its manifest when it has one.

    Raises ``StoredRunError`` for a missing or empty directory and for a file listed in the manifest that is
    missing. Listed files come first (manifest order), then the others (by name): a sweep's manifest lists the runs
    of its invocations, and a directory may be filled by several.
    """
    d = run_dir(name)
    cmd = regeneration_command(d)
    if not d.is_dir():
        raise StoredRunError(f"stored runs missing: directory {_display(d)} does not exist; regenerate with: {cmd}")
    files = _stored_files(d)
    listing = manifest(d)
    if listing is not None:
        listed = [str(r.get("file")) for r in listing["runs"]]
        present = {f.name for f in files}
        for name_ in listed:
            if name_ not in present:
                raise StoredRunError(f"stored run missing: {_display(d / name_)} (listed in "
                                     f"{_display(_manifest_path(d) or d)}); regenerate with: {cmd}")
        files = [d / n for n in listed] + [f for f in files if f.name not in set(listed)]
    if not files:
        raise StoredRunError(f"stored runs missing: {_display(d)} holds no trajectory files; regenerate with: {cmd}")
    return files


@dataclass(frozen=True)
class RunSet:
    """The checked runs of one stored directory: ``Run`` by run id, the regenerating command, the manifest."""

    directory: Path
    runs: dict[str, Run]
    command: str
    manifest: dict[str, Any] | None

    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self.runs.values()]

    @property
    def trajectories(self) -> dict[str, Trajectory]:
        return {rid: r.trajectory for rid, r in self.runs.items()}

    def __len__(self) -> int:
        return len(self.runs)


def load_stored(name: str | os.PathLike[str], *, finished: bool = True) -> RunSet:
    """Read every stored run of ``verify/runs/<name>`` (or a directory path) and check it is current.

    Beyond ``run_files``: each file must be readable with this package's schema version, finished when
    ``finished``, and agree with its manifest entry's ``final_step``. Every failure raises ``StoredRunError`` naming
    the file and the command that regenerates it.
    """
    d = run_dir(name)
    files = run_files(d)
    cmd = regeneration_command(d)
    listing = manifest(d)
    entries = {str(r.get("file")): r for r in (listing or {}).get("runs", [])}
    runs: dict[str, Run] = {}
    for f in files:
        try:
            run = load_run(f)
        except TrajectoryError as exc:
            raise StoredRunError(f"stored run unreadable: {exc}; delete {_display(f)} and regenerate with: "
                                 f"{cmd}") from exc
        version = run.trajectory.header.get("version")
        if version != SCHEMA_VERSION:
            raise StoredRunError(f"stale stored run: {_display(f)} has trajectory schema version {version!r}, this "
                                 f"package writes {SCHEMA_VERSION}; delete it and regenerate with: {cmd}")
        if finished and not run.finished:
            raise StoredRunError(f"stale stored run: {_display(f)} is {run.status.value} (no final 'end' record); "
                                 f"delete it and regenerate with: {cmd}")
        expected = entries.get(f.name, {}).get("final_step")
        if run.final_step is not None and expected is not None and run.final_step != int(expected):
            raise StoredRunError(f"stale stored run: {_display(f)} ends at step {run.final_step} but "
                                 f"{_display(_manifest_path(d) or d)} records final_step {expected}; delete it and "
                                 f"regenerate with: {cmd}")
        runs[run.id] = run
    return RunSet(directory=d, runs=runs, command=cmd, manifest=listing)


def runs_with(record_type: str) -> tuple[dict[str, Run], list[str]]:
    """Every stored run, in any directory, that has records of ``record_type`` (e.g. ``"probe"``), and one line
    per directory that could not be used (missing or stale files, with the message) so a page can print it."""
    found: dict[str, Run] = {}
    skipped: list[str] = []
    for d in stored_dirs():
        try:
            runset = load_stored(d)
        except StoredRunError as exc:
            skipped.append(f"{d}: {exc}")
            continue
        for rid, run in runset.runs.items():
            if run.trajectory.of_type(record_type):
                found[f"{d}/{rid}"] = run
    return found, skipped
