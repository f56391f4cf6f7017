"""Checkpoints: everything a run needs to continue *bitwise* as if it had never stopped.

A checkpoint holds the run config (as JSON), the step, the model and optimizer state dicts, every training RNG state
(the batch generator, the global CPU RNG and the device's CUDA RNG), the monitor's ``state_dict`` (the rolling window
and last snapshot), every measurement's ``state_dict`` (by measurement name: its own streams, windows, references)
and the loop state (history, grok step, early-stop streak, wall time so far). It is written with ``torch.save`` to a
temporary file that is renamed over the old one (``numerics.atomic``), so a crash mid-write leaves the previous
checkpoint intact. Data and model architecture are rebuilt from the config and the data/init streams; what a
measurement draws once at setup (fixed probe batches, probe sets) is redrawn from its fresh stream before its saved
state is restored, so it is identical too.

Loading never silently starts over: a missing file, a file that is not a checkpoint (corrupt, truncated, foreign)
or one written for a different config raises :class:`CheckpointError` before any training step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from numerics.atomic import atomic_path
from numerics.errors import SpectralEdgeError
from verify.harness.config import RunConfig

__all__ = ["KIND", "VERSION", "CheckpointError", "config_diff", "load_checkpoint", "save_checkpoint",
           "with_added_defaults"]

KIND = "spectral-edge/checkpoint"
VERSION = 1


class CheckpointError(SpectralEdgeError):
    """A checkpoint that cannot be resumed from: missing, corrupt, foreign, newer, or for another config."""


def save_checkpoint(path: str | Path, config: RunConfig, step: int, **state: Any) -> Path:
    """Write ``{kind, version, config, step, **state}`` atomically (``torch.save``); returns the path."""
    payload = {"kind": KIND, "version": VERSION, "config": config.model_dump_json(), "step": int(step), **state}
    with atomic_path(path, suffix=".tmp") as tmp:
        torch.save(payload, tmp)
    return Path(path)


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "",
                labels: tuple[str, str] = ("checkpoint", "now")) -> list[str]:
    """Dotted names of the fields in which two config dicts differ, with both values (``labels`` name them)."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.", labels)
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} ({labels[0]}) vs {vb!r} ({labels[1]})")
    return out


def with_added_defaults(saved: dict[str, Any], config: BaseModel) -> dict[str, Any]:
    """``saved`` (a config dict recorded by a run) with every top-level field that it lacks set to the value the
    current config class gives it when validating ``saved`` (its default, as JSON). Such a field was added to the
    config after the run was made — a new measurement or intervention section, off by default — so the run ran as
    that default says; comparing it as '<absent>' would refuse to resume or reuse every earlier run whenever a study
    is added. ``saved`` comes back unchanged when it no longer validates (the diff then names the differences)."""
    try:
        full = type(config).model_validate(saved).model_dump(mode="json")
    except ValueError:  # pydantic's ValidationError: a field renamed or removed since
        return dict(saved)
    return {**{k: v for k, v in full.items() if k not in saved}, **saved}


def load_checkpoint(path: str | Path, config: RunConfig) -> dict[str, Any]:
    """Read and validate a checkpoint for ``config`` (tensors on the CPU); raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: cannot resume (a resume never starts over; run without "
                              "resume to start from step 0)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises RuntimeError, UnpicklingError, EOFError, ... by the kind of damage
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt, truncated or foreign): {exc}") from exc
    if not isinstance(state, dict) or state.get("kind") != KIND:
        raise CheckpointError(f"{path} is not a spectral-edge checkpoint (no {KIND!r} marker)")
    if not isinstance(state.get("version"), int) or state["version"] > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; this package reads <= "
                              f"{VERSION}")
    saved = with_added_defaults(json.loads(state["config"]), config)
    now = json.loads(config.model_dump_json())
    diff = config_diff(saved, now)
    if diff:
        raise CheckpointError(f"{path} was written for a different config: " + "; ".join(diff))
    return state
