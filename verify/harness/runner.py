"""Glue between a run config, the training loop and the spectral monitor: one trajectory file per run.

A run ``NAME`` (``run_label``, e.g. ``modular-add-p97-wd1-s42``) writes ``NAME.jsonl``; with ``checkpoint_every`` it
also keeps ``NAME.ckpt.pt`` next to it until it finishes. ``resume=True`` continues both from the checkpoint.

Nothing lost, nothing mixed: a writer holds ``NAME.lock`` (``fcntl.flock``, with its pid) for the run's life, so a
second writer gets an error naming the file and the holder; the header records ``config_sha`` and a resume (or a
sweep) that finds a stored run of another config says what differs; ``overwrite`` checks the device first and
writes the new run beside the old one (``NAME.jsonl.new``), which it replaces only at the new run's first
checkpoint (or its end).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from numerics.errors import SpectralEdgeError
from numerics.layout import per_layer_groups
from numerics.monitor import SpectralMonitor
from numerics.provenance import provenance
from numerics.trajectory import read_trajectory
from verify.harness.checkpoint import config_diff, with_added_defaults
from verify.harness.config import RunConfig, config_sha, load_config, make_run_config, preset
from verify.harness.loop import MonitorFactory, RunResult, run_label, train
from verify.store import checkpoint_path, is_finished, run_id
from verify.tasks import get_entry, get_task

__all__ = [
    "ConfigMismatch",
    "RunFinished",
    "RunLocked",
    "base_config",
    "check_device",
    "checkpoint_path",
    "is_finished",
    "lock_path",
    "monitor_groups",
    "parse_sets",
    "parse_value",
    "run_lock",
    "run_name",
    "run_task",
    "spectral_monitor_factory",
    "stored_config_diff",
    "train_with_monitor",
]


def monitor_groups(model: nn.Module, names: Sequence[str], task: str = "modular") -> dict[str, Any]:
    """Group selectors by name: ``all`` (every trainable parameter), ``attn`` (the task's attention weights
    W_Q, W_K, W_V, W_O, as the author's grokking experiments use), ``layers`` (one group per transformer layer),
    ``task`` (the task's ``monitor_groups(model)``: name → parameter names)."""
    groups: dict[str, Any] = {}
    for name in names:
        if name == "all":
            groups["all"] = "*"
        elif name == "attn":
            groups["attn"] = get_task(task).attention_weight_names(model)
        elif name == "layers":
            groups.update(per_layer_groups(model))
        elif name == "task":  # the task's own named groups (e.g. li2: the first-layer W only)
            groups.update(get_task(task).monitor_groups(model))
        else:
            raise SpectralEdgeError(f"unknown monitor group {name!r}; choose from all, attn, layers, task")
    return groups


def spectral_monitor_factory(path: str | Path, device: str | torch.device = "cpu", *,
                             resume: bool = False) -> MonitorFactory:
    """A ``monitor_factory`` for :func:`verify.harness.loop.train` that records to ``path`` with full provenance
    (and ``config_sha``, the hash of the run config); ``resume``: continue the run in ``path``."""

    def make(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: RunConfig) -> SpectralMonitor:
        seeds = {k: getattr(cfg, k) for k in ("data_seed", "init_seed", "batch_seed", "diag_seed")}
        return SpectralMonitor(
            model,
            optimizer,
            window=cfg.monitor.window,
            every=cfg.monitor.every,
            groups=monitor_groups(model, cfg.monitor.groups, cfg.task),
            path=path,
            provenance={**provenance(cfg.model_dump(mode="json"), seeds, device), "config_sha": config_sha(cfg)},
            meta={"task": cfg.task, "grok_threshold": cfg.grok_threshold, "optimizer": cfg.optimizer,
                  "streams": cfg.streams},
            kstar=cfg.monitor.kstar,
            storage_dtype=getattr(torch, cfg.monitor.storage_dtype),
            keep_records=False,
            **({"resume": True} if resume else {}),
        )

    return make


def run_name(cfg: RunConfig) -> str:
    """A file stem that names the condition (``modular-{op}-p{p}-wd{wd:g}-s{seed}`` for modular arithmetic)."""
    return run_label(cfg)


class RunFinished(SpectralEdgeError):
    """Resume was asked for a run whose trajectory is complete (nothing to do)."""


class RunLocked(SpectralEdgeError):
    """Another live process writes this run (it holds ``NAME.lock``)."""


class ConfigMismatch(SpectralEdgeError):
    """A stored run was made with another config than the one asked to reuse it."""


# --- one writer per run: NAME.lock ---------------------------------------------------------------------------------


def lock_path(trajectory: str | os.PathLike[str]) -> Path:
    """``NAME.lock`` next to ``NAME.jsonl`` (or ``NAME.jsonl.gz``)."""
    p = Path(trajectory)
    return p.with_name(run_id(p) + ".lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(trajectory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``NAME.lock`` (an exclusive ``flock``, the holder's pid inside) while the block runs; raises
    :class:`RunLocked` naming the file and the holder's pid when a live process holds it. The kernel drops the lock
    of a dead process, so a stale lock file (a killed run's) is simply taken over."""
    p = Path(trajectory)
    lp = lock_path(p)
    lp.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            note = ""
            if holder.isdigit() and not _pid_alive(int(holder)):
                note = " (that pid has exited: a process it started may still hold the lock)"
            raise RunLocked(f"{p} is being written by another process (pid {holder or 'unknown'}{note}); lock file "
                            f"{lp}. Wait for it to finish or stop it; two writers would mix their records") from None
        try:  # a holder that released between our open and flock has unlinked that file: lock the current one
            same = os.fstat(fd).st_ino == os.stat(lp).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lp
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(lp).st_ino:
                lp.unlink()
        os.close(fd)


# --- checks before anything is written -----------------------------------------------------------------------------


def check_device(device: str | torch.device) -> torch.device:
    """The torch device of ``device``, or a :class:`SpectralEdgeError` when it does not exist on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise SpectralEdgeError(f"--device {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SpectralEdgeError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SpectralEdgeError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise SpectralEdgeError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return dev


def stored_config_diff(path: str | os.PathLike[str], cfg: RunConfig) -> list[str]:
    """What differs between the config a stored run recorded and ``cfg`` (dotted keys, ``stored`` vs ``now``);
    [] when they agree. Runs recorded with ``config_sha`` are compared exactly, except that a field added to the
    config since takes its default (``with_added_defaults``: a new study's section, off); older ones (no hash) on the
    keys both configs have."""
    prov = read_trajectory(path).provenance
    stored, sha = prov.get("config"), prov.get("config_sha")
    mine = config_sha(cfg)
    if sha == mine:
        return []
    now = cfg.model_dump(mode="json")
    if not isinstance(stored, dict):
        return [] if sha is None else [f"config_sha: {sha} (stored) vs {mine} (now)"]
    filled = with_added_defaults(stored, cfg)
    diff = config_diff(filled, now, labels=("stored", "now"))
    if sha is None:  # recorded before config_sha: fields added to the config since are not a difference
        return [d for d in diff if "'<absent>'" not in d]
    if not diff and len(filled) > len(stored):  # equal once the fields added since take their defaults
        return []
    return diff or [f"config_sha: {sha} (stored) vs {mine} (now)"]


def _mismatch(path: Path, diff: list[str], doing: str, how: str) -> ConfigMismatch:
    return ConfigMismatch(f"cannot {doing} {path}: it was made with a different config: {'; '.join(diff)}. {how}")


def train_with_monitor(
    cfg: RunConfig, path: str | Path, *, device: str = "cpu", progress: bool = True, overwrite: bool = False,
    resume: bool = False, lock: bool = True, **train_kwargs: Any,
) -> RunResult:
    """Train ``cfg`` with the spectral monitor writing ``path``.

    Refuses to append to an existing file unless ``resume`` (continue it from ``NAME.ckpt.pt``; a missing
    checkpoint, a finished run or a run of another config is an error) or ``overwrite`` (start over: the new run is
    written beside the old one and replaces it, and any old checkpoint, at its first checkpoint or at its end; the
    old run stays if the new one fails before). The device is checked first, and ``NAME.lock`` is held throughout
    (``lock=False``: the caller holds it).
    """
    path = Path(path)
    if resume and overwrite:
        raise SpectralEdgeError("resume and overwrite exclude each other")
    check_device(device)
    with run_lock(path) if lock else contextlib.nullcontext():
        return _train_locked(cfg, path, device, progress, overwrite, resume, train_kwargs)


def _new_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def _train_locked(cfg: RunConfig, path: Path, device: str, progress: bool, overwrite: bool, resume: bool,
                  train_kwargs: dict[str, Any]) -> RunResult:
    ckpt = checkpoint_path(path)
    new, new_ckpt = _new_path(path), checkpoint_path(_new_path(path))
    if resume:
        if not path.exists():
            raise SpectralEdgeError(f"cannot resume: trajectory {path} does not exist")
        if new_ckpt.exists() and not new.exists():  # an overwrite killed after it replaced the old run
            os.replace(new_ckpt, ckpt)
        diff = stored_config_diff(path, cfg)
        if diff:
            raise _mismatch(path, diff, "resume", "To start it over with this config pass --overwrite "
                            "(overwrite=True) instead of --resume.")
        if is_finished(path):
            raise RunFinished(f"cannot resume: {path} is a finished run (it has an end record, no checkpoint)")
        return train(cfg, monitor_factory=spectral_monitor_factory(path, device, resume=True), progress=progress,
                     device=device, checkpoint=ckpt, resume=True, **train_kwargs)
    if not path.exists():
        return train(cfg, monitor_factory=spectral_monitor_factory(path, device), progress=progress, device=device,
                     checkpoint=ckpt, resume=False, **train_kwargs)
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it, or resume=True "
                              "(--resume) to continue it")
    return _overwrite(cfg, path, device, progress, train_kwargs)


def _overwrite(cfg: RunConfig, path: Path, device: str, progress: bool, train_kwargs: dict[str, Any]) -> RunResult:
    """Write the new run to ``NAME.jsonl.new`` (checkpoints ``NAME.jsonl.new.ckpt.pt``); at its first checkpoint
    (seen after the next step) or its end it replaces ``NAME.jsonl`` (the old checkpoint goes), and each later
    checkpoint is moved to ``NAME.ckpt.pt`` after the step that follows it."""
    ckpt = checkpoint_path(path)
    new, new_ckpt = _new_path(path), checkpoint_path(_new_path(path))
    new.unlink(missing_ok=True)  # leftovers of an overwrite killed before it replaced the old run
    new_ckpt.unlink(missing_ok=True)
    promoted = False
    user_callback = train_kwargs.pop("step_callback", None)

    def promote() -> None:
        nonlocal promoted
        if not promoted:
            ckpt.unlink(missing_ok=True)  # the old run's checkpoint
            os.replace(new, path)  # the writer's open file moves with it
            promoted = True
        if new_ckpt.exists():
            os.replace(new_ckpt, ckpt)

    def on_step(step: int) -> None:
        if new_ckpt.exists():
            promote()
        if user_callback is not None:
            user_callback(step)

    try:
        result = train(cfg, monitor_factory=spectral_monitor_factory(new, device), progress=progress, device=device,
                       checkpoint=new_ckpt, resume=False, step_callback=on_step, **train_kwargs)
    except BaseException:
        if promoted:
            if new_ckpt.exists():
                os.replace(new_ckpt, ckpt)
        else:  # the old run stays as it was
            new.unlink(missing_ok=True)
            new_ckpt.unlink(missing_ok=True)
        raise
    promote()
    ckpt.unlink(missing_ok=True)  # the new run is complete: no checkpoint (its own or the old one's) stays
    return result


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string, e.g. op=mul


def parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    """``["lr=3e-4", "monitor.every=50", "op=mul"]`` → ``{"lr": 3e-4, "monitor": {"every": 50}, "op": "mul"}``
    (values parsed as JSON when they are JSON, else kept as strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpectralEdgeError(f"--set expects KEY=VALUE, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = parse_value(value)
    return out


def base_config(
    task: str, *, config: Path | None = None, preset_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The run config of a command line: ``--config FILE`` or ``--preset P`` (default: the task's default preset),
    then flat ``overrides``; nested overrides (``monitor: {every: 50}``) update that sub-config key by key."""
    try:
        entry = get_entry(task)
    except KeyError as exc:
        raise SpectralEdgeError(str(exc.args[0])) from None
    if config is not None and preset_name is not None:
        raise SpectralEdgeError("give --config or --preset, not both")
    if config is not None:
        base = load_config(config, task)
    else:
        name = preset_name or entry.default_preset
        try:
            base = preset(name, task) if name is not None else make_run_config(task, {})
        except KeyError as exc:
            raise SpectralEdgeError(str(exc.args[0])) from None
    if overrides:
        dumped = base.model_dump()
        nested = {k: {**dumped[k], **v} if isinstance(v, Mapping) and isinstance(dumped.get(k), Mapping) else v
                  for k, v in overrides.items()}
        base = base.with_overrides(**nested)
    return base


def run_task(
    task: str,
    *,
    config: Path | None = None,
    preset: str | None = None,
    out: Path = Path("out/train"),
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    weight_decay: float | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Validate every config first, then train once per seed; yields the trajectory paths. With ``resume``, runs
    that already finished are skipped (reported through ``log``), so the same command can be repeated."""
    extra = dict(overrides or {})
    if weight_decay is not None:
        extra["weight_decay"] = weight_decay
    base = base_config(task, config=config, preset_name=preset, overrides=extra)
    cfgs = [base.with_seed(s) for s in seeds] if seeds else [base]
    check_device(device)
    paths = [out / f"{run_name(cfg)}.jsonl" for cfg in cfgs]
    if resume:  # a stored run of another config is never taken for this one's (nor resumed)
        for cfg, path in zip(cfgs, paths, strict=True):
            if path.exists():
                diff = stored_config_diff(path, cfg)
                if diff:
                    raise _mismatch(path, diff, "resume", "To start it over with this config pass --overwrite "
                                    "instead of --resume.")
    out.mkdir(parents=True, exist_ok=True)
    for cfg, path in zip(cfgs, paths, strict=True):
        if resume and is_finished(path):
            if log is not None:
                log(f"{path}: already finished")
        else:
            train_with_monitor(cfg, path, device=device, progress=progress, overwrite=overwrite, resume=resume)
        yield path
