"""Stored runs for the book's pages: load a run directory under ``verify/runs/`` and refuse missing or stale files.

A page that plots a stored run must never draw a silently empty figure. Every failure raises
``StoredRunError`` (a ``TrajectoryError``) whose message names the offending file and the exact command that
regenerates it. A directory is checked against its run list ``sweep.json`` (``verify.sweep`` writes it; ``runs.json`` of
the GPT-2/backbone driver has the same form) when it has one:

- *missing*: the directory, or a file listed in ``sweep.json``, does not exist, or the directory holds no run;
- *stale*: a file whose schema version is not the one this package writes (``numerics.trajectory.SCHEMA_VERSION``),
  an unreadable or corrupt file, a run without an ``end`` record (unfinished), or a run whose last step disagrees
  with the ``final_step`` that ``sweep.json`` recorded for it.

Files that ``sweep.json`` does not list are read too: a sweep's manifest lists the runs of its last invocation, and
a directory may be filled by several invocations.

The regeneration command is the sweep's own command line (``provenance.argv`` of ``sweep.json``, else of the
trajectory header): a sweep skips finished runs, so re-running it rebuilds exactly the missing files; a stale
file has to be deleted first, and the message says so.
"""

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
from numerics.trajectory import SCHEMA_VERSION, Trajectory, read_trajectory

__all__ = [
    "RUNS_ROOT",
    "RunSet",
    "StoredRunError",
    "derivation_markdown",
    "escape_markdown",
    "latex",
    "load_runs",
    "markdown_table",
    "regeneration_command",
    "run_dir",
    "run_files",
    "runs_with",
    "stored",
    "stored_dirs",
]

#: Where the stored runs live (shipped with the package as package data).
RUNS_ROOT: Path = Path(__file__).resolve().parent / "runs"

#: Fallback commands for run directories whose files carry no command line of their own.
_KNOWN_COMMANDS: dict[str, str] = {
    "modular": "spectral-edge sweep modular --preset demo --set streams=plain --out verify/runs/modular --jobs 2",
    "dyck": "spectral-edge sweep dyck --preset author --set max_steps=4000 --set monitor.every=50 "
            "--set defect.every=100 --out verify/runs/dyck --jobs 2",
}

#: Stored (finished, committed) runs are compressed; a plain ``.jsonl`` is a run still being written (git-ignored).
_SUFFIXES = (".jsonl.gz",)


class StoredRunError(TrajectoryError):
    """A stored run the book needs is missing or stale; the message names the file and the regenerating command."""


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


def _argv_command(argv: Sequence[str]) -> str:
    """A recorded ``sys.argv`` as a command a reader can paste: the console script by its name, a module of this
    repository run as a script (``/…/verify/li2.py``) as ``python -m verify.li2``."""
    args = list(argv)
    if args and Path(args[0]).name == "spectral-edge":
        args[0] = "spectral-edge"
    elif args and args[0].endswith(".py"):
        path = Path(args[0])
        if path.parent.name in ("verify", "numerics", "theory", "benchmarks"):
            args[0:1] = ["python", "-m", f"{path.parent.name}.{path.stem}"]
    return " ".join(shlex.quote(a) for a in args)


#: Run-list manifests, in order of preference: ``verify.sweep`` writes ``sweep.json``; the GPT-2/backbone driver
#: (``python -m verify.backbone``) writes ``runs.json`` in the same form (``runs``: [{file, final_step, ...}]).
_MANIFESTS = ("sweep.json", "runs.json")


def _manifest_path(directory: Path) -> Path | None:
    return next((directory / m for m in _MANIFESTS if (directory / m).exists()), None)


def _manifest(directory: Path) -> dict[str, Any] | None:
    """The run list the directory is checked against (``sweep.json`` or ``runs.json``), or None."""
    path = _manifest_path(directory)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoredRunError(f"{_display(path)} is not a readable sweep manifest ({exc}); regenerate the directory "
                             f"with: {_KNOWN_COMMANDS.get(directory.name, 'the sweep that wrote it')}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise StoredRunError(f"{_display(path)} has no 'runs' list; regenerate the directory with: "
                             f"{_KNOWN_COMMANDS.get(directory.name, 'the sweep that wrote it')}")
    return data


def _driver_argv(directory: Path) -> list[str] | None:
    """The argv in ``manifest.json`` (written by drivers other than the sweep, e.g. ``python -m verify.li2``)."""
    path = directory / "manifest.json"
    try:
        argv = json.loads(path.read_text()).get("provenance", {}).get("argv") if path.exists() else None
    except (OSError, ValueError, AttributeError):
        return None
    return list(argv) if isinstance(argv, list) and argv else None


def _trajectory_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))


def _first_header(directory: Path) -> dict[str, Any] | None:
    """The header line of the first readable trajectory file (only line 1 is read)."""
    for f in _trajectory_files(directory):
        try:
            opener = gzip.open if f.name.endswith(".gz") else open
            with opener(f, "rt", encoding="utf-8") as fh:
                header = json.loads(fh.readline())
        except (OSError, EOFError, ValueError):
            continue
        if isinstance(header, dict):
            return header
    return None


def regeneration_command(directory: str | os.PathLike[str]) -> str:
    """The command that (re)writes the runs of ``directory``: the argv recorded in its ``sweep.json``, else in the
    header of its first trajectory file, else the known command for ``verify/runs/<name>``.

    Runs written before the seeding streams existed (their config has no ``streams`` key) seeded every generator
    with the run seed; ``--set streams=plain`` repeats that (``verify.config``), so the command gets it appended.
    """
    d = run_dir(directory)
    if d.is_dir():
        manifest = _manifest(d)
        header = _first_header(d) or {}
        argv = ((manifest or {}).get("provenance") or {}).get("argv") or _driver_argv(d) \
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
    return d.is_dir() and bool(_trajectory_files(d))


def stored_dirs() -> list[str]:
    """Names of the run directories under ``RUNS_ROOT`` that hold stored runs."""
    return sorted(p.name for p in RUNS_ROOT.iterdir() if p.is_dir() and stored(p.name)) if RUNS_ROOT.is_dir() else []


def runs_with(record_type: str) -> tuple[dict[str, Trajectory], list[str]]:
    """Every stored run, in any directory, that has records of ``record_type`` (e.g. ``"probe"``), and one line
    per directory that could not be used (missing or stale files, with the message) so a page can print it."""
    found: dict[str, Trajectory] = {}
    skipped: list[str] = []
    for d in stored_dirs():
        try:
            runset = load_runs(d)
        except StoredRunError as exc:
            skipped.append(f"{d}: {exc}")
            continue
        for rid, t in runset.runs.items():
            if t.of_type(record_type):
                found[f"{d}/{rid}"] = t
    return found, skipped


def run_files(name: str | os.PathLike[str]) -> list[Path]:
    """The trajectory files of a run directory, checked against its ``sweep.json`` when it has one.

    Raises ``StoredRunError`` for a missing or empty directory and for a file listed in the manifest that is
    missing. Listed files come first (manifest order), then the others (by name).
    """
    d = run_dir(name)
    cmd = regeneration_command(d)
    if not d.is_dir():
        raise StoredRunError(f"stored runs missing: directory {_display(d)} does not exist; regenerate with: {cmd}")
    files = _trajectory_files(d)
    manifest = _manifest(d)
    if manifest is not None:
        listed = [str(r.get("file")) for r in manifest["runs"]]
        present = {f.name for f in files}
        for name_ in listed:
            if name_ not in present:
                raise StoredRunError(f"stored run missing: {_display(d / name_)} (listed in "
                                     f"{_display(_manifest_path(d) or d)}); regenerate with: {cmd}")
        # Files the manifest does not list stay in: a sweep's manifest lists the runs of its last invocation only,
        # and a directory may be filled by several invocations (one grid each).
        files = [d / n for n in listed] + [f for f in files if f.name not in set(listed)]
    if not files:
        raise StoredRunError(f"stored runs missing: {_display(d)} holds no trajectory files; regenerate with: {cmd}")
    return files


@dataclass(frozen=True)
class RunSet:
    """The checked runs of one directory: trajectories by run id (file name without suffix), and provenance."""

    directory: Path
    runs: dict[str, Trajectory]
    command: str
    manifest: dict[str, Any] | None

    @property
    def paths(self) -> list[Path]:
        return [t.path for t in self.runs.values()]

    def __len__(self) -> int:
        return len(self.runs)


def _run_id(path: Path) -> str:
    name = path.name
    for s in _SUFFIXES:
        name = name.removesuffix(s)
    return name


def load_runs(name: str | os.PathLike[str], *, finished: bool = True) -> RunSet:
    """Read every run of ``verify/runs/<name>`` (or a directory path) and check it is current.

    Beyond ``run_files``: each file must be readable with this package's schema version, finished (an ``end``
    record) when ``finished``, and agree with its manifest entry's ``final_step``. Every failure raises
    ``StoredRunError`` naming the file and the command that regenerates it.
    """
    d = run_dir(name)
    files = run_files(d)
    cmd = regeneration_command(d)
    manifest = _manifest(d)
    entries = {str(r.get("file")): r for r in (manifest or {}).get("runs", [])}
    runs: dict[str, Trajectory] = {}
    for f in files:
        try:
            t = read_trajectory(f)
        except TrajectoryError as exc:
            raise StoredRunError(f"stored run unreadable: {exc}; delete {_display(f)} and regenerate with: "
                                 f"{cmd}") from exc
        version = t.header.get("version")
        if version != SCHEMA_VERSION:
            raise StoredRunError(f"stale stored run: {_display(f)} has trajectory schema version {version!r}, this "
                                 f"package writes {SCHEMA_VERSION}; delete it and regenerate with: {cmd}")
        ends = t.of_type("end")
        if finished and not ends:
            raise StoredRunError(f"stale stored run: {_display(f)} has no 'end' record (the run did not finish); "
                                 f"delete it and regenerate with: {cmd}")
        expected = entries.get(f.name, {}).get("final_step")
        if ends and expected is not None and int(ends[-1]["step"]) != int(expected):
            raise StoredRunError(f"stale stored run: {_display(f)} ends at step {ends[-1]['step']} but "
                                 f"{_display(_manifest_path(d) or d)} records final_step {expected}; delete it and "
                                 f"regenerate with: {cmd}")
        runs[_run_id(f)] = t
    return RunSet(directory=d, runs=runs, command=cmd, manifest=manifest)


# --- rendering helpers for the pages (plain Markdown strings; the pages wrap them in IPython.display.Markdown) ---


#: How the book prints symbols whose sympy names are ASCII stand-ins (``hbar`` is h̄, not ħ).
LATEX_NAMES: dict[str, str] = {
    "hbar": r"\bar{h}",
    "dbar": r"\bar{d}",
    "DeltaG_F": r"\|\Delta G\|_F",
    "Kdot": r"\|\dot K\|",
    "gap_lambda": r"\mathrm{gap}_\lambda",
    "Delta_s": r"\Delta s",
    "G_tr": r"G^{\mathrm{tr}}",
    "G_val": r"G^{\mathrm{val}}",
    "G_eff": r"G^{\mathrm{eff}}",
    "W_minus_1": r"(W-1)",
    "sigma_W": r"\sigma_W",
    "sigma_noise": r"\sigma_{\mathrm{noise}}",
    "d_crit": r"d_{\mathrm{crit}}",
    "R_BBP": r"R_{\mathrm{BBP}}",
    "theta_j": r"\theta_j",
    "lambda_lin": r"\lambda_{\mathrm{lin}}",
}


def latex(expr: Any) -> str:
    """``sympy.latex`` of ``expr`` with the book's names for the ASCII stand-in symbols (``LATEX_NAMES``)."""
    import sympy as sp

    names = {s: LATEX_NAMES[s.name] for s in getattr(expr, "free_symbols", set()) if s.name in LATEX_NAMES}
    return sp.latex(expr, symbol_names=names)


def derivation_markdown(name: str) -> str:
    """A registered derivation as MyST Markdown: statement (``Derivation.latex``), source, assumptions, and each step
    with its residual after ``sympy.simplify`` (0 when the step holds). Raises ``DerivationError`` if a step fails,
    so a page can never show a derivation that does not check."""
    import theory  # noqa: F401 - registers every derivation
    from theory.derivation import all_derivations

    derivations = all_derivations()
    if name not in derivations:
        raise KeyError(f"unknown derivation {name!r}; registered: {', '.join(sorted(derivations))}")
    d = derivations[name]
    d.check()
    lines = [f"**`{d.name}`** ({d.source})", "", "$$", latex(d.statement), "$$", ""]
    if d.assumptions:
        lines += [f"*Assumptions:* {d.assumptions}.", ""]
    lines += ["| step | residual (lhs − rhs) after simplification |", "|---|---|"]
    for step, res in zip(d.steps, d.residuals(), strict=True):
        claim = step.claim.replace("|", "\\|")
        lines.append(f"| {claim} | ${latex(res)}$ |")
    if d.notes:
        lines += ["", f"*Note:* {d.notes}."]
    return "\n".join(lines)


def escape_markdown(text: Any) -> str:
    """Plain text safe inside Markdown: ``*``, ``_``, ``$``, backticks, ``<`` and ``[`` are escaped (``k* ≤ 3 …
    k*`` must not turn into emphasis, a ``$`` must not open math)."""
    out = str(text)
    for ch in ("\\", "*", "_", "$", "`", "<", "["):
        out = out.replace(ch, "\\" + ch)
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; cells are str()-ed with '|' escaped (escape free text with ``escape_markdown`` first)."""
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(out)


# --- onset prediction on a run set (the workload chapters) ---------------------------------------------------------


def _cell(x: Any) -> str:
    return "—" if x is None else (f"{x:.3g}" if isinstance(x, float) else str(x))


def onset_markdown(runs: Sequence[Any], detectors: Sequence[Any] | None = None) -> str:
    """Per run, predicted vs observed onset with frozen detectors (``verify.onset.predict``): one table row per run
    with its kind (positive / control), observed grokking step, and per signal the step it fired at and the lead
    (observed − predicted; a control that fires is a false positive)."""
    from verify.onset import default_detectors, predict

    dets = list(detectors) if detectors is not None else default_detectors()
    header = ["run", "kind", "observed grok step", *[f"{d.signal}: fired (lead)" for d in dets]]
    rows = []
    for r in sorted(runs, key=lambda r: r.id):
        p = predict(r, dets)
        kind = "positive" if not p["control"] else ("control (wd 0)" if not (r.weight_decay or 0) > 0
                                                    else "control (no grok)")
        cells = []
        for s in p["signals"]:
            if not s["fired"]:
                cells.append("no" if not s["note"] else f"no ({s['note']})")
            elif p["control"]:
                cells.append(f"{s['predicted_step']} (**false positive**)")
            else:
                cells.append(f"{s['predicted_step']} ({s['lead']})" if s["lead"] > 0
                             else f"{s['predicted_step']} (late: {s['lead']})")
        rows.append([r.id, kind, _cell(r.grok_step), *cells])
    return markdown_table(header, rows)


def heldout_markdown(runs: Sequence[Any], calibration_seeds: Sequence[int] = (42,)) -> tuple[str, dict[str, Any]]:
    """Calibrate every detector family on the runs of ``calibration_seeds`` and score them on the other seeds only
    (``verify.onset.calibrate`` / ``evaluate``; the same split as ``spectral-edge predict --calibration-seeds``).
    Returns a Markdown table and the ``evaluate`` report. Raises ``StoredRunError`` when a split is empty."""
    from verify.onset import FAMILIES, calibrate, evaluate, split_runs

    cal, held = split_runs(list(runs), calibration_seeds)
    if not cal or not held:
        raise StoredRunError(f"cannot split {len(runs)} runs by calibration seeds {list(calibration_seeds)}: "
                             f"{len(cal)} calibration, {len(held)} held-out")
    families = [f for f in FAMILIES if f != "defect" or any(r.defect for r in cal)]
    dets = [calibrate(f, cal) for f in families]
    report = evaluate(dets, held)
    rows = []
    for sig, e in report["signals"].items():
        params = ", ".join(f"{k}={v}" for k, v in e["params"].items())
        rows.append([sig, params, _cell(e["precision"]), _cell(e["recall"]), _cell(e["fpr"]),
                     f"{e['tp']}/{e['late']}/{e['fn']}", f"{e['fp']}/{e['tn']}", _cell(e["lead_median"])])
    table = markdown_table(["signal", "fitted on seeds " + ", ".join(map(str, calibration_seeds)), "precision",
                            "recall", "false-positive rate", "tp/late/fn", "fp/tn", "median lead"], rows)
    return table, report
