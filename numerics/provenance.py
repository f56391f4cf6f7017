"""Provenance recorded with every run and every output: config, seeds, versions, git commit, device, time.

``provenance`` is the harness's record (the git commit of this package's checkout); ``run_provenance`` is what the
spectral monitor records by itself for a user's own loop (the git commit of the working directory, the optimiser's
class and per-group hyper-parameters, and a minimal ``config`` with ``lr`` / ``weight_decay`` that the run store
reads); ``merge_provenance`` lays a user's record over it without dropping either.
"""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from numbers import Real
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "merge_provenance", "optimizer_config", "optimizer_description", "package_versions",
           "provenance", "run_provenance"]

_PACKAGES = ("spectral-edge", "torch", "numpy", "scipy", "sympy", "pydantic", "hypothesis")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour a result depends on ('absent' if not installed)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def git_commit(cwd: str | Path | None = None) -> dict[str, Any]:
    """The repository's HEAD commit and whether the work tree had uncommitted changes (None outside a repo)."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent

    def run(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _device_description(device: Any) -> dict[str, Any]:
    desc: dict[str, Any] = {"device": str(device), "machine": platform.machine(), "platform": platform.platform()}
    try:
        import torch  # local: provenance must work (and say so) where torch is absent

        desc["torch_threads"] = torch.get_num_threads()
        if str(device).startswith("cuda") and torch.cuda.is_available():
            desc["gpu"] = torch.cuda.get_device_name(torch.device(device))
            desc["cuda"] = torch.version.cuda
    except ImportError:  # numerics may be used from files without torch installed
        pass
    return desc


def provenance(
    config: dict[str, Any] | None = None, seeds: dict[str, int] | None = None, device: Any = "cpu"
) -> dict[str, Any]:
    """One JSON-serialisable provenance record: what ran, with which seeds, on what, from which code, when."""
    return {
        "config": config or {},
        "seeds": seeds or {},
        "versions": package_versions(),
        "git": git_commit(),
        "device": _device_description(device),
        "argv": list(sys.argv),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _plain(value: Any) -> Any:
    """A hyper-parameter as JSON: numbers and bools as they are, one-element tensors as floats, tuples/lists of
    numbers as lists; anything else (callables, strings, None, tensors of many entries) → None (left out)."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Real):
        return float(value)
    if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:  # a tensor lr (capturable)
        return float(value.item())
    if isinstance(value, tuple | list) and value and all(isinstance(v, Real) for v in value):
        return [v if isinstance(v, bool | int) else float(v) for v in value]
    return None


def optimizer_description(optimizer: Any) -> dict[str, Any]:
    """The optimiser's class and, per parameter group, every hyper-parameter that is a number, a bool or a tuple of
    numbers (lr, initial_lr, weight_decay, betas, momentum, eps, …), with the group's parameter and element counts."""
    groups = []
    for group in getattr(optimizer, "param_groups", []):
        params = list(group.get("params", []))
        desc: dict[str, Any] = {"n_params": len(params),
                                "n_elements": int(sum(p.numel() for p in params if hasattr(p, "numel")))}
        for key, value in group.items():
            if key != "params" and (plain := _plain(value)) is not None:
                desc[key] = plain
        groups.append(desc)
    cls = type(optimizer)
    return {"class": cls.__name__, "module": cls.__module__, "param_groups": groups}


def optimizer_config(optimizer: Any) -> dict[str, Any]:
    """``{"lr", "weight_decay", "optimizer"}`` of the optimiser's main parameter group (the one holding the most
    elements, the first on ties; with one group, that group): the lr before any scheduler (``initial_lr`` when a
    scheduler set it), the class name in lower case. What the run store reads to label a user's run."""
    groups = optimizer_description(optimizer)["param_groups"]
    out: dict[str, Any] = {}
    if groups:
        main = max(groups, key=lambda g: g["n_elements"])  # max keeps the first of equal ones
        lr = main.get("initial_lr", main.get("lr"))
        if isinstance(lr, int | float) and not isinstance(lr, bool):
            out["lr"] = lr
        wd = main.get("weight_decay")
        if isinstance(wd, int | float) and not isinstance(wd, bool):
            out["weight_decay"] = wd
    out["optimizer"] = type(optimizer).__name__.lower()
    return out


def run_provenance(optimizer: Any = None, device: Any = "cpu", cwd: str | Path | None = None) -> dict[str, Any]:
    """What a monitor records for a user's own loop: ``config`` from the optimiser (``optimizer_config``), package
    versions, the git commit of ``cwd`` (default: the working directory; None outside a repository), the device,
    the optimiser (``optimizer_description``), the command line and the time."""
    out: dict[str, Any] = {}
    if optimizer is not None:
        out["config"] = optimizer_config(optimizer)
    out.update({
        "versions": package_versions(),
        "git": {**git_commit(Path.cwd() if cwd is None else cwd), "cwd": str(Path.cwd() if cwd is None else cwd)},
        "device": _device_description(device),
        "argv": list(sys.argv),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    if optimizer is not None:
        out["optimizer"] = optimizer_description(optimizer)
    return out


def merge_provenance(auto: Mapping[str, Any], user: Mapping[str, Any] | None) -> dict[str, Any]:
    """``user`` laid over ``auto``: every key of both is kept; where both hold a mapping the two are merged (the
    user's value wins key by key), otherwise the user's value wins. A user's ``config`` replaces the automatic one
    whole (it is the user's own description of the run)."""
    out = dict(auto)
    for key, value in (user or {}).items():
        mine = out.get(key)
        if key != "config" and isinstance(mine, Mapping) and isinstance(value, Mapping):
            out[key] = merge_provenance(mine, value)
        else:
            out[key] = value
    return out
