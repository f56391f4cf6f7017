"""Provenance recorded with every run and every output: config, seeds, versions, git commit, device, time."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "package_versions", "provenance"]

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
