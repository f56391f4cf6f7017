"""Export trajectories to a table: one row per record, for pandas, polars, DuckDB, R or a spreadsheet.

``spectral-edge export RUN... --out FILE.csv|FILE.parquet`` (``export_runs``). Runs are read through the run store
(``verify.store.load_runs``, unfinished runs included; ``status`` says which). Every row starts with the run
columns ``run, status, weight_decay, seed`` and ``record, step, group``; then

- ``spectrum`` rows (default): ``w, kstar, R, g, g23`` (R = +inf where the window has an exact rank drop), the
  window's ``P, pc1_frac, k95, drift_speed, bbp_ratio, d_crit, dG_norm, dC_norm, degenerate`` and
  ``sigma_1 … sigma_W`` (σ units, descending; empty where a window has fewer than W values);
- ``eval`` rows: one column per metric (``train_acc``, ``test_loss``, …);
- any other record type (``--records defect``, ``onset``, …): its scalar fields.

CSV is always available; Parquet needs ``pyarrow`` (extra ``parquet``: ``pip install 'spectral-edge[parquet]'``).
The file is written atomically (``numerics.atomic``): a reader never sees half a table.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from numerics.atomic import atomic_path
from numerics.errors import SpectralEdgeError
from verify.store import Run, load_runs

__all__ = ["FORMATS", "ExportError", "export_rows", "export_runs", "table_columns", "write_table"]

FORMATS = {".csv": "csv", ".parquet": "parquet"}
RUN_COLUMNS = ("run", "status", "weight_decay", "seed", "record", "step", "group")
SPECTRUM_COLUMNS = ("w", "kstar", "R", "g", "g23", "P", "pc1_frac", "k95", "drift_speed", "bbp_ratio", "d_crit",
                    "dG_norm", "dC_norm", "degenerate")


class ExportError(SpectralEdgeError):
    """An export that cannot be written as asked (unknown format, Parquet without pyarrow, nothing to export)."""


def _run_fields(run: Run) -> dict[str, Any]:
    return {"run": run.id, "status": run.status.value, "weight_decay": run.setting("weight_decay"),
            "seed": run.seed}


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def export_rows(runs: Iterable[Run], records: Sequence[str] = ("spectrum",),
                groups: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``runs``: per run, per record type in ``records``, per record in step order (spectrum records of
    ``groups`` only when given, every group otherwise)."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        base = _run_fields(run)
        for kind in records:
            if kind == "spectrum":
                for group in groups or run.groups():
                    for rec in run.spectra(group, with_spectrum=False):
                        row = {**base, "record": kind, "step": rec.step, "group": rec.group}
                        row.update({c: rec.value(c) for c in SPECTRUM_COLUMNS})
                        row["R"] = rec.R_value if rec.has_spectrum else None
                        row.update({f"sigma_{j}": s for j, s in enumerate(rec.sigma or (), start=1)})
                        rows.append(row)
            elif kind == "eval":
                for ev in run.evals():
                    rows.append({**base, "record": kind, "step": ev.step, "group": None,
                                 **{k: v for k, v in ev.metrics.items() if _scalar(v)}})
            else:
                for ev in run.events(kind):
                    if groups and ev.get("group") not in (None, *groups):
                        continue
                    fields = {k: v for k, v in ev.items() if k not in ("type", "step", "group") and _scalar(v)}
                    rows.append({**base, "record": kind, "step": int(ev["step"]), "group": ev.get("group"),
                                 **{k: v for k, v in fields.items() if k not in RUN_COLUMNS}})
    return rows


def table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Column order: the run columns, the spectrum columns, σ_1…σ_W, then every other field as first seen."""
    seen: dict[str, None] = dict.fromkeys(RUN_COLUMNS)
    if any(r["record"] == "spectrum" for r in rows):
        seen.update(dict.fromkeys(SPECTRUM_COLUMNS))
        width = max((int(k.removeprefix("sigma_")) for r in rows for k in r if k.startswith("sigma_")), default=0)
        seen.update(dict.fromkeys(f"sigma_{j}" for j in range(1, width + 1)))
    for r in rows:
        seen.update(dict.fromkeys(r))
    return list(seen)


def _format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise ExportError(f"unknown export format {fmt!r}; choose csv or parquet")
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ExportError(f"{path}: cannot tell the format from the suffix {path.suffix or '(none)'!r}; "
                          f"name the file .csv or .parquet") from None


def _arrow_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Any:
    try:
        import pyarrow as pa  # local: optional (extra ``parquet``), ~100 MB; CSV export works without it
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install 'spectral-edge[parquet]' (or pip install "
                          "pyarrow), or write a .csv file") from None
    arrays = {}
    for c in columns:
        vals = [r.get(c) for r in rows]
        present = [v for v in vals if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            typ = pa.bool_()
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            typ = pa.int64()
        elif present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            typ = pa.float64()
        elif present:
            typ, vals = pa.string(), [None if v is None else str(v) for v in vals]
        else:
            typ = pa.float64() if c.startswith("sigma_") or c in SPECTRUM_COLUMNS else pa.string()
        arrays[c] = pa.array(vals, type=typ)
    return pa.table(arrays)


def write_table(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write ``rows`` to ``out`` (format from the suffix unless ``fmt``) atomically; returns the path."""
    path = Path(out)
    fmt = _format(path, fmt)
    columns = table_columns(rows)
    if fmt == "parquet":
        table = _arrow_table(rows, columns)  # before the file is touched: a missing pyarrow leaves nothing behind
        import pyarrow.parquet as pq  # local: optional, as above

        with atomic_path(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
        return path
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="", extrasaction="raise")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(v) for k, v in r.items()})
    return path


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def export_runs(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                records: Sequence[str] = ("spectrum",), groups: Sequence[str] | None = None,
                fmt: str | None = None) -> tuple[Path, int]:
    """Export the runs of ``paths`` (files or directories) to ``out``; returns (path, number of rows)."""
    path, paths = Path(out), list(paths)
    _format(path, fmt)  # an unusable name fails before any run is read
    runs = load_runs(paths, finished_only=False)
    if not runs:
        raise ExportError(f"no trajectory files (.jsonl, .jsonl.gz) in {', '.join(map(str, paths))}")
    if groups:
        known = sorted({g for r in runs for g in r.groups()})
        missing = [g for g in groups if g not in known]
        if missing:
            raise ExportError(f"no spectrum records of group(s) {', '.join(missing)}; the runs have: "
                              f"{', '.join(known) or '(none)'}")
    rows = export_rows(runs, records, groups)
    if not rows:
        raise ExportError(f"no {', '.join(records)} records in {len(runs)} run(s)")
    return write_table(rows, path, fmt), len(rows)
