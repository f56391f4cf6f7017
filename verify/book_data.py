"""Rendering helpers for the book's pages: derivations and LaTeX, and the onset tables of the workload chapters.

Pages read stored runs through the run store (``verify.store.load_stored``: a missing or stale file raises
``StoredRunError`` naming the file and the command that regenerates it) and write tables with
``verify.report.markdown_table``. The helpers here return plain Markdown strings; the pages wrap them in
``IPython.display.Markdown``.

``book_claims`` gives the pages the claims rows (``verify.claims.all_claims``) computed once per set of inputs: each
provider's rows and figures are cached on disk under a key that hashes every stored-run file, every file of the
packages the providers run (``theory/``, ``numerics/``, ``verify/``) and the library versions, so the claims page and
the applications page of one build (and a second build with unchanged inputs) compute them once.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from verify.claims import CLAIM_PROVIDERS, ClaimRow, all_claims, check_provider, from_json, write_claims
from verify.report import markdown_table
from verify.stats import fmt
from verify.store import RUNS_ROOT, RunData, StoredRunError

__all__ = ["CACHE_ENV", "LATEX_NAMES", "book_claims", "cached_rows", "claims_cache_dir", "derivation_markdown",
           "heldout_markdown", "inputs_digest", "latex", "onset_markdown", "scratch_dir", "store_rows"]


def scratch_dir(prefix: str) -> Path:
    """A fresh folder under the system's temp directory for a page's figures and live runs, removed when the
    process (the page's kernel) exits: figures are embedded in the page when displayed, so nothing is read from it
    afterwards, and repeated builds leave no folders behind."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


# --- derivations --------------------------------------------------------------------------------------------------

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
    import sympy as sp  # local: sympy costs ~1 s to import; only the derivation pages need it

    names = {s: LATEX_NAMES[s.name] for s in getattr(expr, "free_symbols", set()) if s.name in LATEX_NAMES}
    return sp.latex(expr, symbol_names=names)


def derivation_markdown(name: str) -> str:
    """A registered derivation as MyST Markdown: statement (``Derivation.latex``), source, assumptions, and each step
    with its residual after ``sympy.simplify`` (0 when the step holds). Raises ``DerivationError`` if a step fails,
    so a page can never show a derivation that does not check."""
    # local: importing theory registers every derivation and imports sympy (~1 s); only the derivation pages need it
    import theory  # noqa: F401 - registers every derivation
    from theory.derivation import build_derivation  # local: as above

    d = build_derivation(name)  # this one only: a page shows a few of the registry's derivations
    d.check()
    lines = [f"**`{d.name}`** ({d.source})", "", "$$", latex(d.statement), "$$", ""]
    if d.assumptions:
        lines += [f"*Assumptions:* {d.assumptions}.", ""]
    lines.append(markdown_table(["step", "residual (lhs − rhs) after simplification"],
                                [[step.claim, f"${latex(res)}$"] for step, res in zip(d.steps, d.residuals(),
                                                                                      strict=True)]))
    if d.notes:
        lines += ["", f"*Note:* {d.notes}."]
    return "\n".join(lines)


# --- onset prediction on a run set (the workload chapters) ---------------------------------------------------------


def _dash(x: Any) -> str:
    return fmt(x, missing="—")


def onset_markdown(runs: Sequence[RunData], detectors: Sequence[Any] | None = None) -> str:
    """Per run, predicted vs observed onset with frozen detectors (``verify.studies.onset.predict``): one table row
    per run with its kind (positive / control), observed grokking step, and per signal the step it fired at and the lead
    (observed − predicted; a control that fires is a false positive)."""
    from verify.studies.onset import default_detectors, predict  # local: only the workload chapters need them

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
        rows.append([r.id, kind, _dash(r.grok_step), *cells])
    return markdown_table(header, rows)


def heldout_markdown(runs: Sequence[RunData], calibration_seeds: Sequence[int] = (42,)) -> tuple[str, dict[str, Any]]:
    """Calibrate every detector family on the runs of ``calibration_seeds`` and score them on the other seeds only
    (``verify.studies.onset.calibrate`` / ``evaluate``; the same split as ``spectral-edge predict
    --calibration-seeds``). Returns a Markdown table and the ``evaluate`` report. Raises ``StoredRunError`` when a
    split is empty."""
    from verify.studies.onset import FAMILIES, calibrate, evaluate, split_runs  # local: as onset_markdown

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
        rows.append([sig, params, _dash(e["precision"]), _dash(e["recall"]), _dash(e["fpr"]),
                     f"{e['tp']}/{e['late']}/{e['fn']}", f"{e['fp']}/{e['tn']}", _dash(e["lead_median"])])
    table = markdown_table(["signal", "fitted on seeds " + ", ".join(map(str, calibration_seeds)), "precision",
                            "recall", "false-positive rate", "tp/late/fn", "fp/tn", "median lead"], rows)
    return table, report


# --- the claims rows of a build, computed once per set of inputs ----------------------------------------------------

#: Environment variable naming the claims cache directory; unset, ``DEFAULT_CLAIMS_CACHE``.
CACHE_ENV = "SPECTRAL_EDGE_CLAIMS_CACHE"
_REPO = Path(__file__).resolve().parents[1]
#: Under the book's build directory: written by the build, removed with it, never part of the repository.
DEFAULT_CLAIMS_CACHE = _REPO / "book" / "_build" / "claims-cache"
#: The code the rows depend on: every file of these packages (the providers, the store, the statistics, the
#: criteria, the theory), the stored runs excepted (they are hashed as the runs).
SOURCE_DIRS = tuple(_REPO / p for p in ("theory", "numerics", "verify"))
#: Libraries whose version is part of the key (a new numpy may move a number).
_LIBRARIES = ("numpy", "scipy", "torch", "matplotlib")
#: Bumped when the layout of a cache entry changes.
CACHE_FORMAT = 1
#: A training checkpoint beside its run (``verify.store.checkpoint_path``).
CHECKPOINT_SUFFIX = ".ckpt.pt"


def _files(root: Path, exclude: Path | None = None) -> Iterable[Path]:
    """Every regular file under ``root`` (sorted; byte-code caches and the ``exclude`` subtree skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and (exclude is None or here / d != exclude))
        for f in sorted(filenames):
            if not f.endswith(".pyc") and (here / f).is_file():
                yield here / f


@cache
def _versions() -> str:
    out = [f"format {CACHE_FORMAT}", f"python {platform.python_version()}"]
    for lib in _LIBRARIES:
        try:
            out.append(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            out.append(f"{lib} absent")
    return "; ".join(out)


def inputs_digest(runs_root: str | os.PathLike[str] = RUNS_ROOT) -> str:
    """sha256 (hex) of the claims rows' inputs: the path and bytes of every file under ``runs_root`` and under
    ``SOURCE_DIRS`` (the runs root excluded there), the Python and ``_LIBRARIES`` versions and ``CACHE_FORMAT``.

    A training checkpoint (``*.ckpt.pt``) counts by its path only: the store reads whether it exists (a waiting
    checkpoint makes its run interrupted), never its bytes, and a run in progress rewrites hundreds of MB of it."""
    root = Path(runs_root).resolve()
    h = hashlib.sha256(f"{_versions()}; runs root {root}\n".encode())
    trees = [(root, None)] + [(d, root) for d in SOURCE_DIRS]
    for tree, exclude in trees:
        for f in (_files(tree, exclude) if tree.is_dir() else ()):
            h.update(f"{f.relative_to(tree.parent)}\0".encode())
            h.update(b"present" if f.name.endswith(CHECKPOINT_SUFFIX) else _file_sha256(f))
    return h.hexdigest()


def _file_sha256(f: Path) -> bytes:
    try:
        return hashlib.sha256(f.read_bytes()).digest()
    except FileNotFoundError:  # removed since the walk listed it (a lock file of a finishing run): its own value
        return b"vanished"


def claims_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$SPECTRAL_EDGE_CLAIMS_CACHE``, else ``DEFAULT_CLAIMS_CACHE``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CLAIMS_CACHE)


def _cacheable(target: object) -> bool:
    """A provider registered as ``"module:function"`` whose module is a file under ``SOURCE_DIRS`` (so its code is
    hashed); a callable registered directly (a test's scratch provider) is computed every time."""
    if not isinstance(target, str):
        return False
    parts = target.partition(":")[0].split(".")
    where = _REPO.joinpath(*parts)
    return parts[0] in {d.name for d in SOURCE_DIRS} and (where.with_suffix(".py").is_file()
                                                          or (where / "__init__.py").is_file())


def _entry_key(name: str, target: str, digest: str) -> str:
    return hashlib.sha256(json.dumps([name, target, digest]).encode()).hexdigest()[:32]


def _read_entry(entry: Path) -> list[ClaimRow]:
    """The rows stored in ``entry``; each ``figure`` is the absolute path of its PNG."""
    rows = from_json((entry / "claims.json").read_text(encoding="utf-8"))
    for r in rows:
        if r.figure is not None:
            r.figure = str(entry / r.figure)
    return rows


def _write_entry(name: str, rows: Sequence[ClaimRow], cache: Path, entry: Path | None) -> list[ClaimRow]:
    """Draw the rows' figures and write them (``write_claims``) into a temporary directory of ``cache``, renamed
    whole to ``entry`` (atomic; an entry another process stored first is kept: same key, same rows), or to an
    ``.unkeyed-*`` directory when ``entry`` is None. The rows are copied first (``write_claims`` sets ``figure``)."""
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        write_claims([copy.copy(r) for r in rows], tmp, figures=True)
        if entry is None:
            entry = Path(tempfile.mkdtemp(prefix=f".unkeyed-{name}-", dir=cache))
            os.replace(tmp, entry)
        else:
            try:
                os.rename(tmp, entry)
            except OSError:  # another process stored the same entry first; its rows are these rows
                pass
        return _read_entry(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def store_rows(name: str, rows: Sequence[ClaimRow], runs_root: str | os.PathLike[str] = RUNS_ROOT,
               cache_dir: str | os.PathLike[str] | None = None, *, digest: str) -> list[ClaimRow]:
    """Store ``rows``, which ``check_provider(name, runs_root)`` returned on inputs whose ``inputs_digest`` was
    ``digest`` before *and* after the computation (the caller checks), as the cache entry ``cached_rows`` reads;
    returns them as read back. For a caller that computed the rows already (the test session)."""
    target = CLAIM_PROVIDERS[name]
    cache = claims_cache_dir(cache_dir)
    entry = cache / _entry_key(name, str(target), digest) if _cacheable(target) else None
    return _write_entry(name, rows, cache, entry)


def cached_rows(name: str, runs_root: str | os.PathLike[str] = RUNS_ROOT,
                cache_dir: str | os.PathLike[str] | None = None, *, digest: str | None = None) -> list[ClaimRow]:
    """``check_provider(name, runs_root)`` through the claims cache (``claims_cache_dir``): read from the entry keyed
    by ``(name, its target, inputs_digest(runs_root))`` when there is one, else computed, its figures drawn
    (``write_claims``) and the entry written. Rows come back as ``verify.claims.from_json`` makes them (no
    ``plot``; ``figure`` is the absolute path of the row's PNG), the same on a hit and on a miss.

    A provider that raises or breaks the contract raises here and writes nothing, so the cache never turns a
    failure into rows. An entry is a directory written whole under a temporary name and renamed into place (atomic);
    it is stored only when the inputs' digest is the same after the computation as before (a run file appended
    meanwhile is not attributed to the old inputs). ``digest``: ``inputs_digest(runs_root)`` when the caller has it.
    """
    target = CLAIM_PROVIDERS[name]
    if not _cacheable(target):
        return check_provider(name, runs_root)
    cache = claims_cache_dir(cache_dir)
    digest = digest or inputs_digest(runs_root)
    entry = cache / _entry_key(name, str(target), digest)
    if (entry / "claims.json").is_file():
        return _read_entry(entry)
    rows = check_provider(name, runs_root)
    # the inputs moved while we computed: rows of no one key, returned but never read back as a hit
    return _write_entry(name, rows, cache, entry if inputs_digest(runs_root) == digest else None)


def book_claims(runs_root: str | os.PathLike[str] = RUNS_ROOT, *, only: Sequence[str] | None = None,
                strict: bool = True, cache_dir: str | os.PathLike[str] | None = None) -> list[ClaimRow]:
    """``verify.claims.all_claims(runs_root, only=only, strict=strict)`` with each provider's rows through
    ``cached_rows``: the pages of one build share one computation. Strict by default: a provider that fails breaks
    the page instead of hiding its rows. A row's ``figure`` is the absolute path of its PNG."""
    digest = inputs_digest(runs_root)  # once for all the providers (it reads every run file)
    return all_claims(runs_root, only=only, strict=strict,
                      rows_of=lambda name, root: cached_rows(name, root, cache_dir, digest=digest))
