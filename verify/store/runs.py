"""Runs: identity, status, discovery, and the ``Run`` / ``RunData`` views (module docstring of ``verify.store``)."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from numerics.errors import TrajectoryError
from numerics.trajectory import Trajectory, read_trajectory
from verify.grokking import first_crossing
from verify.grokking import grok_step as _grok_step
from verify.store.records import (
    BackboneRecord,
    DefectRecord,
    EvalRecord,
    LCHRecord,
    NormRecord,
    ProbeRecord,
    SpectrumRecord,
)

__all__ = ["RUNS_ROOT", "SUFFIXES", "Run", "RunData", "RunStatus", "checkpoint_path", "find_runs", "is_finished",
           "load_run", "load_rundata", "load_runs", "recorded_weight_decay", "run_id", "run_status"]

#: Where the stored runs live (shipped with the package as package data); one sub-directory per sweep.
RUNS_ROOT: Path = Path(__file__).resolve().parent.parent / "runs"

#: Trajectory file suffixes, in order of preference for one run id (stored and compressed first).
SUFFIXES = (".jsonl.gz", ".jsonl")


# --- identity and status ------------------------------------------------------------------------------------------


def run_id(path: str | os.PathLike[str]) -> str:
    """A run's identity: its file name without ``.jsonl``/``.jsonl.gz`` (e.g. ``modular-add-p97-wd1-s42``)."""
    name = Path(path).name
    for suffix in (".gz", ".jsonl"):
        name = name.removesuffix(suffix)
    return name


def checkpoint_path(trajectory: str | os.PathLike[str]) -> Path:
    """``NAME.ckpt.pt`` next to ``NAME.jsonl`` (or ``NAME.jsonl.gz``)."""
    p = Path(trajectory)
    return p.with_name(run_id(p) + ".ckpt.pt")


class RunStatus(str, enum.Enum):
    """The one meaning of a run's state (module docstring)."""

    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    UNFINISHED = "unfinished"


def run_status(t: Trajectory) -> RunStatus:
    """``finished`` / ``interrupted`` / ``unfinished`` of a parsed trajectory (a waiting checkpoint beside its file
    makes a run interrupted)."""
    ends = [int(r["step"]) for r in t.of_type("end")]
    stops = [int(r["step"]) for r in t.of_type("interrupted")]
    if not ends:
        return RunStatus.UNFINISHED
    if checkpoint_path(t.path).exists() or max(stops, default=-1) >= max(ends):
        return RunStatus.INTERRUPTED
    return RunStatus.FINISHED


def is_finished(path: str | os.PathLike[str]) -> bool:
    """True if the file exists and holds a finished run (``run_status``)."""
    p = Path(path)
    return p.exists() and run_status(read_trajectory(p)) is RunStatus.FINISHED


def find_runs(paths: Iterable[str | os.PathLike[str]], *, missing_ok: bool = False) -> dict[str, Path]:
    """Run id → file for trajectory files and directories (a directory: its ``*.jsonl.gz`` and ``*.jsonl``, not
    recursive), in file-name order. A run stored both ways counts once, compressed first. A missing path raises
    ``TrajectoryError`` unless ``missing_ok``."""
    files: dict[str, Path] = {}
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(SUFFIXES))
        elif p.exists():
            found = [p]
        elif missing_ok:
            continue
        else:
            raise TrajectoryError(f"trajectory file or directory not found: {p}")
        for f in sorted(found, key=lambda f: not f.name.endswith(".gz")):
            files.setdefault(run_id(f), f)
    return dict(sorted(files.items(), key=lambda kv: kv[1].name))  # file-name order, as the runs were listed


# --- one run --------------------------------------------------------------------------------------------------------


def _find_key(tree: Any, key: str) -> Any:
    """First value of ``key`` in a nested dict (flat or nested run configs both store ``lr``/``weight_decay``;
    lists, e.g. an optimiser's parameter groups, are searched in order)."""
    if isinstance(tree, Mapping):
        if key in tree:
            return tree[key]
        children: Iterable[Any] = tree.values()
    elif isinstance(tree, list | tuple):
        children = tree
    else:
        return None
    for v in children:
        found = _find_key(v, key)
        if found is not None:
            return found
    return None


def recorded_weight_decay(run: Run, key: str | None = None) -> float | None:
    """The weight decay a run recorded: ``key`` (a dotted path from the provenance root such as
    ``config.optim.wd``, else a key searched for anywhere in the provenance) or, by default, the config's
    ``weight_decay``, else the first ``weight_decay`` anywhere in the provenance (an optimiser's hyper-parameters).
    None when nothing is recorded; a value that is not a number raises ``TrajectoryError`` naming the run."""
    value: Any
    if key is None:
        value = run.setting("weight_decay")
        if value is None:
            value = _find_key(run.provenance, "weight_decay")
    elif "." in key:
        value = run.provenance
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    else:
        value = _find_key(run.provenance, key)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TrajectoryError(f"{run.path}: weight decay {key or 'weight_decay'} = {value!r} is not a number; "
                              "name the key that holds it with --weight-decay-key") from None


@dataclass
class Run:
    """One trajectory file: its header (config, seeds, meta), status and typed records."""

    trajectory: Trajectory

    @property
    def path(self) -> Path:
        return self.trajectory.path

    @property
    def id(self) -> str:
        return run_id(self.path)

    @cached_property
    def status(self) -> RunStatus:
        return run_status(self.trajectory)

    @property
    def finished(self) -> bool:
        return self.status is RunStatus.FINISHED

    @property
    def has_end(self) -> bool:
        """An ``end`` record exists (finished or interrupted after closing)."""
        return bool(self.trajectory.of_type("end"))

    @property
    def config(self) -> dict[str, Any]:
        """The run config of the provenance (nested ``RunConfig`` dump; flat for runs stored before issue 5)."""
        return self.trajectory.provenance.get("config") or {}

    @property
    def task_config(self) -> dict[str, Any]:
        return self.config.get("task_config") or {}

    @property
    def seeds(self) -> dict[str, Any]:
        return self.trajectory.provenance.get("seeds") or {}

    @property
    def seed(self) -> int | None:
        return self.seeds.get("init_seed", self.seeds.get("data_seed"))

    @property
    def meta(self) -> dict[str, Any]:
        return self.trajectory.meta

    @property
    def provenance(self) -> dict[str, Any]:
        return self.trajectory.provenance

    def setting(self, key: str) -> Any:
        """A config value found anywhere in the (flat or nested) config: ``lr``, ``weight_decay``, ``op``, …"""
        return _find_key(self.config, key)

    @property
    def task(self) -> str | None:
        return self.config.get("task") or self.meta.get("task")

    @property
    def delta_s(self) -> int:
        """Δs: the monitor cadence (meta ``every``; 1 when absent)."""
        return int(self.meta.get("every", 1) or 1)

    def groups(self) -> list[str]:
        return self.trajectory.groups()

    @cached_property
    def _spectra(self) -> dict[str, tuple[SpectrumRecord, ...]]:
        """Typed spectrum records per group, built once per run (``spectra`` is called repeatedly on one run)."""
        return {}

    def spectra(self, group: str, *, with_spectrum: bool = True) -> list[SpectrumRecord]:
        """Spectrum records of ``group`` in step order (``with_spectrum``: degenerate windows left out)."""
        recs = self._spectra.get(group)
        if recs is None:
            recs = self._spectra[group] = tuple(SpectrumRecord.from_record(r) for r in self.trajectory.spectra(group))
        return [r for r in recs if r.has_spectrum] if with_spectrum else list(recs)

    def evals(self) -> list[EvalRecord]:
        return [EvalRecord.from_record(r) for r in self.trajectory.evals()]

    def eval_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one eval metric; NaN where missing."""
        return self.trajectory.series("eval", name)

    def defects(self) -> list[DefectRecord]:
        return [DefectRecord.from_record(r) for r in self.trajectory.of_type("defect")]

    def norms(self) -> list[NormRecord]:
        return [NormRecord.from_record(r) for r in self.trajectory.of_type("norm")]

    def probes(self, group: str | None = None) -> list[ProbeRecord]:
        return [ProbeRecord.from_record(r) for r in self.trajectory.of_type("probe", group)]

    def backbone(self, group: str | None = None) -> list[BackboneRecord]:
        return [BackboneRecord.from_record(r) for r in self.trajectory.of_type("backbone", group)]

    def lch(self) -> list[LCHRecord]:
        return [LCHRecord.from_record(r) for r in self.trajectory.of_type("lch")]

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Free-form records of one type (``onset``, ``resumed``, ``li2_repulsion``, …) as stored."""
        return self.trajectory.of_type(kind)

    @property
    def final_step(self) -> int | None:
        ends = self.trajectory.of_type("end")
        return int(ends[-1]["step"]) if ends else None

    @property
    def end_fields(self) -> dict[str, Any]:
        """The fields of the last ``end`` record (e.g. ``wall_s``), {} when none."""
        ends = self.trajectory.of_type("end")
        return {k: v for k, v in ends[-1].items() if k not in ("type", "step")} if ends else {}

    def grok_step(self, definition: str | None = None) -> int | None:
        """The observed grokking step (``verify.grokking``; default ``first>=0.95``); None = did not grok."""
        steps, acc = self.eval_series("test_acc")
        return _grok_step(steps, acc, definition) if len(steps) else None

    def recorded_grok_step(self) -> int | None:
        """The grokking step by the run's own rule, as its harness reported it: the first eval with test accuracy ≥
        the ``grok_threshold`` the run recorded (0.95 when it recorded none; e.g. 0.99 for the Dyck ``tiny`` preset).
        ``grok_step()`` is the study-wide definition instead, the same for every run."""
        steps, acc = self.eval_series("test_acc")
        return first_crossing(steps, acc, float(self.meta.get("grok_threshold", 0.95))) if len(steps) else None


def load_run(path: str | os.PathLike[str] | Trajectory) -> Run:
    """One run from a file (or an already parsed ``Trajectory``)."""
    return Run(path if isinstance(path, Trajectory) else read_trajectory(path))


def load_runs(paths: Iterable[str | os.PathLike[str]], *, finished_only: bool = True,
              missing_ok: bool = False) -> list[Run]:
    """Runs of files and directories (``find_runs``), in run-id order; ``finished_only`` keeps finished runs."""
    runs = [load_run(f) for f in find_runs(paths, missing_ok=missing_ok).values()]
    return [r for r in runs if r.finished or not finished_only]


@dataclass
class RunData:
    """One run seen through one parameter group: what the onset detectors and the spectral claims read.

    ``eta`` is the learning rate from the provenance config (``lr``) and ``delta_s`` the monitor cadence (meta
    ``every``); ``weight_decay`` from the config. Build with ``RunData.from_trajectory`` or ``load_rundata``.
    """

    id: str
    spectra: list[SpectrumRecord]
    defect: list[DefectRecord] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    eta: float | None = None
    delta_s: int = 1
    weight_decay: float | None = None
    task: str = "?"
    seed: int | None = None
    finished: bool = True
    grok_definition: str | None = None
    group: str = "attn"
    #: an explicit label ("positive" or "control") that overrides the one derived from the data (``is_control``).
    label: str | None = None

    @classmethod
    def from_run(cls, run: Run, group: str = "attn", grok_definition: str | None = None, *,
                 weight_decay_key: str | None = None, label: str | None = None) -> RunData:
        """``group`` of ``run``; falls back to ``"all"`` (else the first recorded group) if ``group`` is absent.

        ``weight_decay`` is the config's ``weight_decay`` (else the first ``weight_decay`` anywhere in the
        provenance, e.g. an optimiser's recorded hyper-parameters); ``weight_decay_key`` names another key (a
        dotted path from the provenance root, ``config.wd``, or a key searched for anywhere). ``label``
        ("positive" / "control") overrides the label the data give."""
        groups = run.groups()
        if not groups:
            raise TrajectoryError(f"{run.path}: no spectrum records (is the run empty or not a monitor trajectory?)")
        if label not in (None, "positive", "control"):
            raise ValueError(f"label must be 'positive', 'control' or None, got {label!r}")
        g = group if group in groups else ("all" if "all" in groups else groups[0])
        lr, wd, op = run.setting("lr"), recorded_weight_decay(run, weight_decay_key), run.setting("op")
        if lr is None:
            lr = _find_key(run.provenance, "lr")
        task = str(run.meta.get("task", "?")) + (f"-{op}" if op is not None else "")
        return cls(id=run.id, spectra=run.spectra(g), defect=run.defects(), evals=run.evals(),
                   eta=None if lr is None else float(lr), delta_s=run.delta_s,
                   weight_decay=wd, task=task, seed=run.seed,
                   finished=run.finished, grok_definition=grok_definition, group=g, label=label)

    @classmethod
    def from_trajectory(cls, traj: Trajectory | str | os.PathLike[str], group: str = "attn",
                        grok_definition: str | None = None) -> RunData:
        """``from_run`` of a path or a parsed ``Trajectory``."""
        return cls.from_run(load_run(traj), group, grok_definition)

    @property
    def grok_step(self) -> int | None:
        """Observed grokking step (``verify.grokking.grok_step``, default ``first>=0.95``); None = did not grok."""
        if not self.evals:
            return None
        steps = [r.step for r in self.evals]
        acc = [np.nan if r.test_acc is None else r.test_acc for r in self.evals]
        return _grok_step(steps, acc, self.grok_definition)

    @property
    def is_control(self) -> bool:
        """Control: no weight decay, or never grokked. Positive: grokked with weight decay > 0. An explicit
        ``label`` overrides both."""
        if self.label is not None:
            return self.label == "control"
        return self.grok_step is None or not (self.weight_decay or 0) > 0

    def series(self, name: str) -> tuple[list[int], np.ndarray]:
        """(steps, values) of one scalar spectrum field (None → NaN)."""
        steps = [r.step for r in self.spectra]
        return steps, np.array([np.nan if r.value(name) is None else r.value(name) for r in self.spectra], float)


def load_rundata(paths: Iterable[str | os.PathLike[str]], group: str = "attn", *, finished_only: bool = False,
                 grok_definition: str | None = None) -> list[RunData]:
    """``RunData`` of ``group`` for every run of the files and directories (``find_runs``; a missing path raises
    ``TrajectoryError``); ``finished_only`` drops runs that are not finished."""
    runs = load_runs(paths, finished_only=finished_only)
    return [RunData.from_run(r, group, grok_definition) for r in runs]
