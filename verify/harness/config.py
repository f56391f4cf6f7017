"""Run configurations (pydantic v2), validated in full before any training starts.

A :class:`RunConfig` is the harness's part (optimiser, schedule, seeds, monitor, checkpoints), plus ``task`` (a
registered workload name, ``verify.tasks``) and ``task_config`` (that task's own pydantic model, validated by
``task.config_class``), plus one section per registered study measurement (``defect``, ``probes``, ``backbone``,
``lch``: validated by the study's ``Config``, a :class:`CadenceConfig`; the harness names none of them), plus one
section per registered intervention (``causal``: an :class:`InterventionConfig`, off unless ``enabled``). Source: [P]
grokking-integrability ``grok_sweep.py`` ``SweepConfig``, with reproducibility fixes of our own: four separate seeds
(data split / init / batch order / diagnostics) turned into four independent streams, no absolute paths, no hard-coded
constants. Unknown keys are errors (sections are ``extra="forbid"``; unknown top-level keys are refused by name) so a
typo in a JSON config cannot silently fall back to a default.

Flat dictionaries are accepted wherever a config is built from user input (``make_run_config``, ``preset``,
``with_overrides``, ``load_config``): keys that are ``RunConfig`` fields go to the run, the others to the task config
(``{"p": 59, "lr": 3e-3}``); a nested ``{"task": ..., "task_config": {...}, ...}`` works too. Runs stored before issue 5
(flat modular configs in their provenance) load unchanged (add ``"streams": "plain"`` to repeat them bitwise).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

from numerics.atomic import atomic_write_text
from theory import registry
from verify.harness.intervention import config_classes as intervention_config_classes
from verify.harness.intervention import intervention_class
from verify.harness.measurement import config_classes, measurement_class
from verify.tasks import get_entry

__all__ = [
    "STREAMS",
    "SUB_STREAMS",
    "CadenceConfig",
    "EarlyStop",
    "InterventionConfig",
    "MonitorConfig",
    "RunConfig",
    "StrictConfig",
    "StrictInt",
    "config_sha",
    "load_config",
    "make_run_config",
    "preset",
    "preset_names",
    "save_config",
    "stream_generator",
    "stream_seed",
]

STREAMS = ("data", "init", "batch", "diag")
#: Measurement sub-streams without a seed field of their own: stream → the seed field it derives from. ``probe``
#: (the fixed probe batches) is independent of ``diag`` (commutator-defect pairs), so switching one measurement on
#: never moves the other's draws. ``intervention`` (the draws of a causal intervention: random control bases, kick
#: and noise directions, commutator batches) is likewise its own sub-stream: an intervention never reads ``diag``.
SUB_STREAMS = {"probe": "diag", "intervention": "diag"}

#: An int field that takes ints only: 2.7 (or 2.0) and true are validation errors naming the field, never 2 or 1
#: (a JSON config's integers are ints, so configs loaded from files are unaffected).
StrictInt = Annotated[int, Strict()]


class StrictConfig(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CadenceConfig(StrictConfig):
    """A measurement cadence ``every`` in optimizer steps; 0 and None both mean off (stored as None)."""

    every: StrictInt | None = Field(None, ge=0, description="steps between measurements; 0 or None: off")

    @field_validator("every")
    @classmethod
    def _zero_is_off(cls, every: int | None) -> int | None:
        return every or None


class InterventionConfig(StrictConfig):
    """Base of an intervention's section (``verify.harness.intervention``): off unless ``enabled`` is true."""

    enabled: bool = Field(False, description="switch the intervention on (off by default: training unchanged)")


class EarlyStop(StrictConfig):
    """Stop once test accuracy ≥ ``acc`` on ``patience`` consecutive evals ([P] ``grok_sweep.py``: 0.98 × 3)."""

    acc: float = Field(0.98, gt=0.0, le=1.0)
    patience: StrictInt = Field(3, ge=1)


class MonitorConfig(StrictConfig):
    """Settings of the spectral monitor: window W, cadence Δs (optimizer steps), parameter groups, k* variant."""

    window: StrictInt = Field(10, ge=2, description="W: number of updates δ in the rolling window")
    every: StrictInt = Field(100, ge=1, description="Δs: optimizer steps between snapshots; δ_t = θ_t − θ_{t−Δs}")
    groups: list[Literal["all", "attn", "layers", "task"]] = Field(default_factory=lambda: ["all", "attn"],
                                                                   min_length=1)
    kstar: str = Field("argmax", min_length=1, description="name of a registered k* variant (theory.kstar)")
    storage_dtype: Literal["float32", "bfloat16", "float64"] = Field(
        "float32", description="dtype of the stored updates and their dots; float64 when λ_3/λ_1 nears float32 "
        "rounding (li2)")

    @field_validator("kstar")
    @classmethod
    def _registered_kstar(cls, name: str) -> str:
        known = [d.name for d in registry.variants("kstar")]
        if name not in known:
            raise ValueError(f"unknown k* definition {name!r}; registered: {', '.join(known)}")
        return name


class RunConfig(BaseModel):
    """One training run: task (+ its config), optimiser, schedule, seeds, monitor, measurements, checkpoints.

    Defaults are the author's modular-arithmetic settings ([P] ``grok_sweep.py``). Each registered study's section
    (``verify/studies/__init__.py``) is an extra field of the study's name, so ``cfg.probes.every`` reads as before
    and a dump keeps the nested form every stored run's provenance has.
    """

    # extras are the study sections, checked by _validate_study_sections (anything else is an error there)
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    task: str = Field("modular", description="registered workload name (verify.tasks)")
    task_config: Any = Field(None, description="the task's own config (validated by task.config_class)")
    # optimiser
    optimizer: Literal["adamw", "adam", "sgd", "muon"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1.0, ge=0.0, description="decoupled (AdamW, Muon); L2 in the gradient (Adam, SGD)")
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW / Adam, and the AdamW part of muon")
    eps: float = Field(1e-8, gt=0.0, description="AdamW / Adam epsilon")
    momentum: float | None = Field(None, ge=0.0, lt=1.0, description="SGD (default 0) and Muon (default 0.95)")
    muon_lr: float | None = Field(None, gt=0.0, description="Muon's lr for the matrices; None: lr")
    muon_adjust_lr: Literal["original", "match_rms_adamw"] = Field(
        "match_rms_adamw", description="torch.optim.Muon adjust_lr_fn; match_rms_adamw reuses AdamW's lr and wd")
    muon_exclude: list[str] = Field(default_factory=lambda: ["*head*"],
                                    description="fnmatch patterns of 2-D weights kept on AdamW (output heads)")
    warmup_steps: StrictInt = Field(0, ge=0, description="linear lr warmup over the first steps (nanoGPT)")
    lr_decay: Literal["constant", "cosine"] = Field("constant", description="after warmup: constant or cosine")
    min_lr_frac: float = Field(0.1, ge=0.0, le=1.0, description="cosine: final lr as a fraction of lr")
    batch_size: StrictInt = Field(512, ge=1)
    grad_clip: float | None = Field(1.0, gt=0.0, description="max global grad norm; None disables clipping")
    # schedule
    max_steps: StrictInt = Field(20_000, ge=1)
    eval_every: StrictInt = Field(100, ge=1)
    grok_threshold: float = Field(0.95, gt=0.0, le=1.0, description="grok step = first eval with test acc ≥ this")
    early_stop: EarlyStop | None = Field(default_factory=EarlyStop, description="None: always run max_steps")
    # independent RNG streams
    data_seed: StrictInt = Field(0, ge=0)
    init_seed: StrictInt = Field(0, ge=0)
    batch_seed: StrictInt = Field(0, ge=0)
    diag_seed: StrictInt = Field(0, ge=0)
    streams: Literal["derived", "plain"] = Field(
        "derived", description="derived: each generator seeded from (seed, stream name), independent even for equal "
        "seeds; plain: seeded with the seed itself (runs made before issue 5)")
    # the spectral monitor (the trajectory writer); each study's section (defect, probes, ...) is an extra field
    # named by the study and validated by its measurement's Config (``_validate_study_sections``)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    checkpoint_every: StrictInt | None = Field(None, ge=0, description="steps between checkpoints; 0 or None: off")

    @model_validator(mode="before")
    @classmethod
    def _validate_task_config(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        name = data.get("task", "modular")
        try:
            config_class = get_entry(name).task.config_class  # type: ignore[union-attr]
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        clash = set(config_class.model_fields) & set(cls.model_fields)
        if clash:
            raise ValueError(f"task {name!r}: config fields {sorted(clash)} clash with RunConfig fields")
        tc = data.get("task_config")
        if not isinstance(tc, config_class):
            tc = config_class.model_validate(tc or {})
        return {**data, "task_config": tc}

    @field_validator("checkpoint_every")
    @classmethod
    def _zero_is_off(cls, every: int | None) -> int | None:
        return every or None

    @field_validator("betas")
    @classmethod
    def _betas_in_unit_interval(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        return betas

    @model_validator(mode="before")
    @classmethod
    def _validate_study_sections(cls, data: Any) -> Any:
        """Every registered measurement's section, validated by its ``Config`` (absent: its defaults, off); any
        other key that is not a field is an ``extra_forbidden`` error at that key (as pydantic's own)."""
        if not isinstance(data, Mapping):
            return data
        sections = {**config_classes(), **intervention_config_classes()}
        errors = [InitErrorDetails(type="extra_forbidden", loc=(k,), input=v) for k, v in data.items()
                  if k not in cls.model_fields and k not in sections]
        out = dict(data)
        for name, section in sections.items():
            value = out.get(name)
            if isinstance(value, section):
                continue
            try:
                out[name] = section.model_validate(value or {})
            except ValidationError as exc:  # located under the section: ("lch", "window")
                errors += [InitErrorDetails(type=e["type"], loc=(name, *e["loc"]), input=e["input"],
                                            **({"ctx": e["ctx"]} if "ctx" in e else {})) for e in exc.errors()]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        for name in config_classes():
            check = getattr(measurement_class(name), "check_run_config", None)
            if check is not None and getattr(self, name).every is not None:
                check(self)  # cross-field rules of a study (e.g. probes.k ≤ the monitor window); ValueError
        for name in intervention_config_classes():
            check = getattr(intervention_class(name), "check_run_config", None)
            if check is not None and getattr(self, name).enabled:
                check(self)
        if self.optimizer != "muon" and self.muon_lr is not None:
            raise ValueError(f"muon_lr is set but optimizer is {self.optimizer!r}")
        return self

    def section(self, name: str) -> Any:
        """The config section of study ``name`` (``cfg.section("probes")`` is ``cfg.probes``)."""
        return getattr(self, name)

    # -- helpers -----------------------------------------------------------------------------------------------
    def with_seed(self, seed: int) -> RunConfig:
        """A copy with all four seeds set to ``seed`` (the usual "seed s" of a sweep; the streams stay independent)."""
        return self.model_copy(update=dict(data_seed=seed, init_seed=seed, batch_seed=seed, diag_seed=seed))

    def with_overrides(self, **overrides: Any) -> RunConfig:
        """A validated copy with flat ``overrides`` (run or task fields); ``model_copy`` would skip validation."""
        return make_run_config(self.task, _merge(self.model_dump(), _route(self.task, overrides)))

    def seed(self, stream: str) -> int:
        """The seed of ``stream`` (one of ``STREAMS`` or ``SUB_STREAMS``) as used for its generator."""
        return stream_seed(getattr(self, f"{SUB_STREAMS.get(stream, stream)}_seed"), stream, self.streams)

    def generator(self, stream: str) -> torch.Generator:
        """A fresh CPU generator of ``stream`` (``data``, ``init``, ``batch``, ``diag``, ``probe``,
        ``intervention``)."""
        return torch.Generator().manual_seed(self.seed(stream))


def config_sha(config: RunConfig) -> str:
    """SHA-256 of the config's canonical JSON (``model_dump(mode="json")``, sorted keys, no spaces): recorded in
    a trajectory's header (``provenance.config_sha``) so that a sweep or a resume can tell whether a stored run was
    made with the config it is asked to reuse."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def stream_seed(seed: int, stream: str, scheme: str = "derived") -> int:
    """The generator seed of ``stream`` for the user-facing ``seed``.

    ``derived``: ``numpy.random.SeedSequence(seed, spawn_key=(i,))`` for the stream's index i in ``STREAMS`` (plus
    ``global`` = 4, the global RNG of dropout-like ops, then ``SUB_STREAMS``), so equal seeds still give statistically
    independent streams (the author's bug was one RNG shared by training and measurement). ``plain``: ``seed``
    itself (so ``probe`` then equals ``diag``, the probe batches of the time).
    """
    if scheme == "plain":
        return int(seed)
    index = (*STREAMS, "global", *SUB_STREAMS).index(stream)  # appended: existing streams keep their seeds
    state = np.random.SeedSequence(int(seed), spawn_key=(index,)).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def stream_generator(seed: int, stream: str, scheme: str = "derived") -> torch.Generator:
    """``torch.Generator().manual_seed(stream_seed(seed, stream, scheme))`` (CPU: independent of the device)."""
    return torch.Generator().manual_seed(stream_seed(seed, stream, scheme))


# --- building configs from flat or nested dicts ---------------------------------------------------------------


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``; ``task_config`` is merged key by key, every other key replaced."""
    out = dict(base)
    for k, v in extra.items():
        if k == "task_config" and isinstance(out.get(k), Mapping) and isinstance(v, Mapping):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _route(task: str, flat: Mapping[str, Any]) -> dict[str, Any]:
    """Split flat keys into run fields and ``task_config`` fields (unknown keys stay top-level: an error later)."""
    entry = get_entry(task)
    task_fields = set(entry.task.config_class.model_fields)  # type: ignore[union-attr]
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if k in task_fields and k not in RunConfig.model_fields:
            out.setdefault("task_config", {})[k] = v
        elif k == "task_config" and isinstance(v, BaseModel):
            out[k] = v.model_dump()
        else:
            out[k] = v
    return out


def make_run_config(task: str | None, data: Mapping[str, Any] | None = None) -> RunConfig:
    """Validate a flat or nested config dict for ``task`` (``data["task"]`` must agree if present)."""
    data = dict(data or {})
    named = data.pop("task", None)
    if task is not None and named is not None and named != task:
        raise ValueError(f"config is for task {named!r}, not {task!r}")
    task = task or named
    if task is None:
        raise ValueError("config names no task (add \"task\": ...)")
    try:
        routed = _route(task, data)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return RunConfig.model_validate({"task": task, **routed})


def preset_names(task: str = "modular") -> list[str]:
    return get_entry(task).preset_names()


def preset(name: str, task: str = "modular", **overrides: Any) -> RunConfig:
    """Preset ``name`` of ``task`` (``mod97``, ``tiny``, ``demo`` for modular), with validated flat overrides.

    A preset merges the task module's ``RECOMMENDED[name]`` (run settings) and ``PRESETS[name]`` (task config).
    """
    entry = get_entry(task)
    if name not in entry.preset_names():
        raise KeyError(f"unknown preset {name!r} for task {task!r}; expected one of {entry.preset_names()}")
    base = {**entry.recommended.get(name, {}), "task_config": dict(entry.presets.get(name, {}))}
    return make_run_config(task, _merge(_route(task, base), _route(task, overrides)))


def save_config(config: RunConfig, path: str | Path) -> Path:
    """Write ``config`` as indented JSON (nested form), atomically; returns the path."""
    return atomic_write_text(path, config.model_dump_json(indent=2) + "\n")


def load_config(path: str | Path, task: str | None = None) -> RunConfig:
    """Read and validate a JSON config, flat or nested (raises ``pydantic.ValidationError`` naming the bad field).

    A file without a ``task`` key is for ``task`` (default ``modular``: the flat configs stored before issue 5).
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds one JSON object")
    return make_run_config(task if task is not None or "task" in data else "modular", data)
