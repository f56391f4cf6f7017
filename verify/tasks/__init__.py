"""The task registry: workload name → :class:`verify.tasks.base.Task`, its presets, imported on first use.

A workload module ``verify/tasks/<name>.py`` defines one task object (``name``, ``config_class``, ``make_data``,
``build_model``, ``sample_batch``, ``loss``, ``evaluate``, ``attention_weight_names``; see ``base.py``) and, at
module level, optionally

* ``PRESETS: dict[str, dict]`` — task-config overrides per preset name (fields of ``config_class``);
* ``RECOMMENDED: dict[str, dict]`` — run settings per preset name (fields of ``verify.harness.config.RunConfig``:
  ``optimizer``, ``lr``, ``batch_size``, ``max_steps``, ``monitor``, ``defect``, ...).

``verify.harness.config.preset(name, task=...)`` merges the two entries of that name (either may be missing). Optional
methods of the task object, used when present:

* ``run_label(config) -> str``: the middle of run file names (``{task}-{label}-wd{wd:g}-s{seed}``; modular:
  ``add-p97``);
* ``no_decay_names(model) -> list[str]``: parameters trained without weight decay (e.g. biases and norms).

Conventions the harness relies on: ``sample_batch`` draws from ``data["train"]`` (the fixed validation batch of the
probes is drawn by passing ``{**data, "train": data["val"]}``, or ``data["test"]`` when there is no ``"val"``), and
``evaluate`` is called for the splits ``"train"`` and ``"test"``. The task's config fields must not reuse a
``RunConfig`` field name (checked on first use), so flat override dicts (``{"p": 59, "lr": 3e-3}``) route
unambiguously.

To add a workload, register it below with the import path of its task object; the module is imported only when
the task is first used (the CLI stays fast, and a broken module breaks only its own task).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from verify.tasks.base import Task

__all__ = ["TaskEntry", "get_entry", "get_task", "register_task", "task_names"]


@dataclass
class TaskEntry:
    """A registered task: its import target and, once loaded, the task object and its presets."""

    name: str
    target: str | Task  # "package.module:ATTRIBUTE", or the task object itself
    default_preset: str | None = None
    task: Task | None = None
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    recommended: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self) -> TaskEntry:
        if self.task is not None:
            return self
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            module = importlib.import_module(module_name)
            obj = getattr(module, attr)
            self.presets = dict(getattr(module, "PRESETS", {}) or {}) | self.presets
            self.recommended = dict(getattr(module, "RECOMMENDED", {}) or {}) | self.recommended
        else:
            obj = self.target
        if not isinstance(obj, Task):
            raise TypeError(f"task {self.name!r}: {self.target!r} does not implement verify.tasks.base.Task")
        if obj.name != self.name:
            raise ValueError(f"task registered as {self.name!r} calls itself {obj.name!r}")
        self.task = obj
        return self

    def preset_names(self) -> list[str]:
        return sorted(set(self.presets) | set(self.recommended))


_REGISTRY: dict[str, TaskEntry] = {}


def register_task(
    name: str,
    target: str | Task,
    *,
    default_preset: str | None = None,
    presets: Mapping[str, dict[str, Any]] | None = None,
    recommended: Mapping[str, dict[str, Any]] | None = None,
    replace: bool = False,
) -> None:
    """Register a workload under ``name``: ``target`` is ``"module:ATTR"`` (lazy) or a task object.

    ``presets`` / ``recommended`` add to (and override) the module's ``PRESETS`` / ``RECOMMENDED``;
    ``default_preset`` is what ``spectral-edge train NAME`` uses without ``--preset`` or ``--config``.
    Registering a name twice is an error unless ``replace=True`` (tests register throwaway tasks).
    """
    if name in _REGISTRY and not replace:
        raise ValueError(f"task {name!r} is already registered")
    _REGISTRY[name] = TaskEntry(name, target, default_preset, presets=dict(presets or {}),
                                recommended=dict(recommended or {}))


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> TaskEntry:
    """The loaded registry entry of ``name`` (raises ``KeyError`` listing the registered tasks)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; available: {', '.join(task_names())}")
    return _REGISTRY[name].load()


def get_task(name: str) -> Task:
    """The task object registered as ``name``."""
    task = get_entry(name).task
    assert task is not None
    return task


# --- the workloads ---------------------------------------------------------------------------------------------
# One line per workload.
register_task("modular", "verify.tasks.modular:MODULAR", default_preset="mod97")
register_task("dyck", "verify.tasks.dyck:DYCK", default_preset="author")
register_task("scan", "verify.tasks.scan:SCAN", default_preset="author")
register_task("gpt2", "verify.tasks.gpt2:GPT2", default_preset="124M")
register_task("li2", "verify.tasks.li2:LI2", default_preset="paper")
register_task("parity", "verify.tasks.parity:PARITY", default_preset="cpu")
register_task("digits", "verify.tasks.digits:DIGITS", default_preset="cpu")
register_task("multitask", "verify.tasks.multitask:MULTITASK", default_preset="cpu-dual")
