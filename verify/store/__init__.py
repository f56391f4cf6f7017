"""The one run store: what a run is, how it is found, read, checked and viewed.

Every study, the claims, the book and the command line read runs through this module, so a run means the same
thing everywhere:

- **identity** — ``run_id(path)``: the file name without ``.jsonl`` / ``.jsonl.gz`` (``modular-add-p97-wd1-s42``).
  A run stored both ways counts once: the compressed file (a finished, stored run) wins over a plain one (a run
  still being written, git-ignored).
- **status** — ``finished``: its last ``end`` record comes after its last ``interrupted`` record and no checkpoint
  ``NAME.ckpt.pt`` waits beside it; ``interrupted``: it has an ``interrupted`` record at or after its last ``end``,
  or a checkpoint waits; ``unfinished``: no ``end`` record at all (a run being written, or killed hard).
- **typed records** — ``SpectrumRecord``, ``EvalRecord``, ``DefectRecord``, ``ProbeRecord``, ``BackboneRecord``,
  ``LCHRecord``, ``NormRecord``: frozen views of the trajectory records (schema ``numerics.trajectory``); nothing
  outside this module indexes a record dict by key.
- **run views** — ``Run`` (one file: header, config, seeds, status, typed records) and ``RunData`` (one run seen
  through one parameter group: what the detectors and the spectral claims read).
- **stored-run directories** — ``load_stored(name)`` reads ``verify/runs/<name>`` and refuses a missing, stale or
  unfinished file with ``StoredRunError`` naming the file and the command that regenerates it (its manifest
  ``sweep.json`` / ``runs.json`` lists the runs and their final steps).

Modules: ``records`` (the typed records), ``runs`` (identity, status, discovery, ``Run``, ``RunData``),
``stored`` (stored-run directories). Import from the package: ``from verify.store import load_runs``.

Costs: reading a run parses its whole file once (``numerics.trajectory.read_trajectory``; a stored mod-97 run is
~1 MB of JSON); every view is built from that parse, never from a second read.
"""

from verify.store.records import (
    BackboneRecord,
    DefectRecord,
    EvalRecord,
    LCHRecord,
    NormRecord,
    ProbeRecord,
    SpectrumRecord,
)
from verify.store.runs import (
    RUNS_ROOT,
    SUFFIXES,
    Run,
    RunData,
    RunStatus,
    checkpoint_path,
    find_runs,
    is_finished,
    load_run,
    load_rundata,
    load_runs,
    run_id,
    run_status,
)
from verify.store.stored import (
    RunSet,
    StoredRunError,
    load_stored,
    manifest,
    regeneration_command,
    run_dir,
    run_files,
    runs_with,
    stored,
    stored_dirs,
)

__all__ = [
    "RUNS_ROOT",
    "SUFFIXES",
    "BackboneRecord",
    "DefectRecord",
    "EvalRecord",
    "LCHRecord",
    "NormRecord",
    "ProbeRecord",
    "Run",
    "RunData",
    "RunSet",
    "RunStatus",
    "SpectrumRecord",
    "StoredRunError",
    "checkpoint_path",
    "find_runs",
    "is_finished",
    "load_run",
    "load_rundata",
    "load_runs",
    "load_stored",
    "manifest",
    "regeneration_command",
    "run_dir",
    "run_files",
    "run_id",
    "run_status",
    "runs_with",
    "stored",
    "stored_dirs",
]
