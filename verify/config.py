"""Run configurations (pydantic v2), validated in full before any training starts.

Source: [P] grokking-integrability ``grok_sweep.py`` ``SweepConfig`` (author-experiments.md §1.2), with the
reproducibility fixes of §9: four separate seeds (data split / init / batch order / diagnostics), no absolute paths,
no hard-coded constants. Unknown keys are errors (``extra="forbid"``) so a typo in a JSON config cannot silently
fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from theory import registry
from verify.tasks.modular import ModelConfig

__all__ = [
    "PRESETS",
    "EarlyStop",
    "ModularConfig",
    "MonitorConfig",
    "Op",
    "load_config",
    "preset",
    "save_config",
]

Op = Literal["add", "sub", "mul", "x2_y2", "x2_xy_y2", "x3_xy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EarlyStop(_Strict):
    """Stop once test accuracy ≥ ``acc`` on ``patience`` consecutive evals ([P] ``grok_sweep.py``: 0.98 × 3)."""

    acc: float = Field(0.98, gt=0.0, le=1.0)
    patience: int = Field(3, ge=1)


class MonitorConfig(_Strict):
    """Settings of the spectral monitor: window W, cadence Δs (optimizer steps), parameter groups, k* variant."""

    window: int = Field(10, ge=2, description="W: number of updates δ in the rolling window")
    every: int = Field(100, ge=1, description="Δs: optimizer steps between snapshots; δ_t = θ_t − θ_{t−Δs}")
    groups: list[Literal["all", "attn", "layers"]] = Field(default_factory=lambda: ["all", "attn"], min_length=1)
    kstar: str = Field("argmax", min_length=1, description="name of a registered k* variant (theory.kstar)")

    @field_validator("kstar")
    @classmethod
    def _registered_kstar(cls, name: str) -> str:
        known = [d.name for d in registry.variants("kstar")]
        if name not in known:
            raise ValueError(f"unknown k* definition {name!r}; registered: {', '.join(known)}")
        return name


class ModularConfig(_Strict):
    """One modular-arithmetic training run: task, model, optimiser, schedule, seeds, monitor."""

    # task
    p: int = Field(97, ge=3, description="modulus = vocabulary size = number of classes")
    op: Op = "add"
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    # model
    n_layers: int = Field(2, ge=1)
    d_model: int = Field(128, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(256, ge=1)
    # optimiser (AdamW)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = Field(512, ge=1)
    grad_clip: float | None = Field(1.0, gt=0.0, description="max global grad norm; None disables clipping")
    # schedule
    max_steps: int = Field(20_000, ge=1)
    eval_every: int = Field(100, ge=1)
    grok_threshold: float = Field(0.95, gt=0.0, le=1.0, description="grok step = first eval with test acc ≥ this")
    early_stop: EarlyStop | None = Field(default_factory=EarlyStop, description="None: always run max_steps")
    # independent RNG streams
    data_seed: int = Field(0, ge=0)
    init_seed: int = Field(0, ge=0)
    batch_seed: int = Field(0, ge=0)
    diag_seed: int = Field(0, ge=0)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)

    @field_validator("n_heads")
    @classmethod
    def _heads_divide_width(cls, n_heads: int, info: ValidationInfo) -> int:
        d_model = info.data.get("d_model")  # absent if d_model itself failed validation
        if d_model is not None and d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        return n_heads

    @field_validator("betas")
    @classmethod
    def _betas_in_unit_interval(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        return betas

    @model_validator(mode="after")
    def _split_nonempty(self) -> ModularConfig:
        n = (self.p - 1) ** 2 if self.op == "mul" else self.p**2
        n_train = int(self.train_fraction * n)
        if not 0 < n_train < n:
            raise ValueError(f"train_fraction={self.train_fraction} leaves {n_train} of {n} pairs for training")
        return self

    def architecture(self) -> ModelConfig:
        """The model part of this config as a ``verify.tasks.modular.ModelConfig``."""
        return ModelConfig(p=self.p, n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
                           d_ff=self.d_ff)

    def with_seed(self, seed: int) -> ModularConfig:
        """A copy with all four seeds set to ``seed`` (the usual "seed s" of a sweep)."""
        return self.model_copy(update=dict(data_seed=seed, init_seed=seed, batch_seed=seed, diag_seed=seed))

    def with_overrides(self, **overrides: object) -> ModularConfig:
        """A validated copy with ``overrides`` applied (``model_copy(update=...)`` would skip validation)."""
        return ModularConfig.model_validate({**self.model_dump(), **overrides})


def save_config(config: ModularConfig, path: str | Path) -> Path:
    """Write ``config`` as indented JSON; returns the path."""
    path = Path(path)
    path.write_text(config.model_dump_json(indent=2) + "\n")
    return path


def load_config(path: str | Path) -> ModularConfig:
    """Read and validate a JSON config (raises ``pydantic.ValidationError`` naming the bad field)."""
    return ModularConfig.model_validate_json(Path(path).read_text())


PRESETS: dict[str, ModularConfig] = {
    # The author's full setup ([P] grok_sweep.py SweepConfig; author-experiments.md §1.2; 290,401 parameters).
    # Measured (2 CPU cores, 16 ms/step): grok step 3000 / 3200 / 2900 for seeds 0 / 1 / 2 at wd 1 (~50 s each).
    "mod97": ModularConfig(),
    # CI-sized (ecosystem-offline.md, last section; 57,851 parameters). Measured, seeds 0 / 1 / 2, 6-8 ms/step:
    # wd 1 groks at step 1300 / 1100 / 1200 (2 threads; 1200 / 1100 / 1200 on 1) after memorising by step 300
    # (~10 s with early stop); wd 0 memorises and test acc stays <= 0.018 through 3000 steps (10,000 for seed 0).
    "tiny": ModularConfig(
        p=59, n_layers=1, d_model=64, n_heads=4, d_ff=256, lr=3e-3, max_steps=3000,
        monitor=MonitorConfig(window=10, every=50),
    ),
    # `make demo`: the author's exact setup capped at 6,000 steps so the no-wd control ends too. Measured: wd 0
    # test acc <= 0.045 through 6000 steps for seeds 0 / 1 / 2 (~100 s each); wd 1 as mod97 (~50 s).
    "demo": ModularConfig(max_steps=6000),
}


def preset(name: str, **overrides: object) -> ModularConfig:
    """A named preset (``mod97``, ``tiny``, ...) with optional validated overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name].with_overrides(**overrides) if overrides else PRESETS[name].model_copy(deep=True)
