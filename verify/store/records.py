"""Typed views of trajectory records (schema ``numerics.trajectory``): frozen dataclasses built from the stored
dicts, so no code outside the run store indexes a record by key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BackboneRecord", "DefectRecord", "EvalRecord", "LCHRecord", "NormRecord", "ProbeRecord",
           "SpectrumRecord"]


# --- typed records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpectrumRecord:
    """One monitor capture of one group (``numerics.monitor``): σ_j (σ units), λ_j = σ_j², k*, R = σ_{k*}/σ_{k*+1}
    (None: +inf, an exact rank drop), g = σ_{k*} − σ_{k*+1}, g₂₃ = λ₂ − λ₃ (λ = σ² units), the window Gram
    (extended by the previous window's row when ``gram_extended``), ‖ΔG‖_F, ‖ΔC‖_F, the α_j variants, the
    Marchenko–Pastur / BBP numbers. ``degenerate`` holds the reason when the window was all zero (then the spectral
    fields are None)."""

    step: int
    group: str
    w: int
    sigma: list[float] | None = None
    lam: list[float] | None = None
    kstar: int | None = None
    R: float | None = None
    g: float | None = None
    g23: float | None = None
    gap: list[float] | None = None
    ratios: list[float | None] | None = None
    gram: list[list[float]] | None = None
    gram_extended: bool = False
    dG_norm: float | None = None
    dC_norm: float | None = None
    alpha: dict[str, list[float]] = field(default_factory=dict)
    bbp_ratio: float | None = None
    mp_bulk_edges: list[float] | None = None
    d_crit: float | None = None
    nu: float | None = None
    P: int | None = None
    pc1_frac: float | None = None
    k95: int | None = None
    drift_speed: float | None = None
    d_bar: float | None = None
    definitions: dict[str, Any] = field(default_factory=dict)
    degenerate: str | None = None

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> SpectrumRecord:
        names = cls.__dataclass_fields__
        kw = {k: v for k, v in r.items() if k in names}
        kw["alpha"] = dict(r.get("alpha") or {})
        kw["definitions"] = dict(r.get("definitions") or {})
        kw["gram_extended"] = bool(r.get("gram_extended", False))
        kw.setdefault("w", len(r.get("sigma") or ()))
        return cls(**kw)

    @property
    def has_spectrum(self) -> bool:
        return self.sigma is not None

    @property
    def R_value(self) -> float:
        """R as a float: +inf where the record stores None (an exact rank drop in the window)."""
        return float("inf") if self.R is None else float(self.R)

    @property
    def window_gram(self) -> np.ndarray | None:
        """The current window's W×W Gram (λ units), without the extended row of the previous window."""
        if self.gram is None:
            return None
        G = np.asarray(self.gram, dtype=float)
        return G[1:, 1:] if self.gram_extended else G

    def value(self, name: str) -> Any:
        """A scalar field by name (``g23``, ``R``, ``bbp_ratio``, …), for code that is generic over signals."""
        if name not in self.__dataclass_fields__:
            raise KeyError(f"spectrum records have no field {name!r}")
        return getattr(self, name)


@dataclass(frozen=True)
class _FieldsRecord:
    """A record kept as its fields (everything but ``type`` and ``step``), read by name through ``get``."""

    step: int
    fields: dict[str, Any]

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> _FieldsRecord:
        return cls(int(r["step"]), {k: v for k, v in r.items() if k not in ("type", "step")})

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True)
class EvalRecord(_FieldsRecord):
    """One evaluation: ``metrics`` maps ``{split}_{name}`` (``train_acc``, ``test_loss``, task extras) to values."""

    @property
    def metrics(self) -> dict[str, float]:
        return self.fields

    @property
    def test_acc(self) -> float | None:
        return self.fields.get("test_acc")

    @property
    def train_acc(self) -> float | None:
        return self.fields.get("train_acc")


@dataclass(frozen=True)
class DefectRecord:
    """One commutator-defect measurement (``verify.studies.defect``): the median D over ``pairs`` batch pairs."""

    step: int
    D: float
    values: list[float] = field(default_factory=list)
    eta: float | None = None
    pairs: int | None = None

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> DefectRecord:
        return cls(int(r["step"]), float(r["D"]), list(r.get("values") or []), r.get("eta"), r.get("pairs"))


@dataclass(frozen=True)
class ProbeRecord:
    """Predictor inputs along the window's v_j (``verify.studies.probes``): curvature h_j, gradients G_j on the
    fixed train and val batches, and with ablation the Δloss of projecting v_j out and the coefficient ⟨θ, v_j⟩."""

    step: int
    group: str
    k: int
    h: list[float]
    G_train: list[float]
    G_val: list[float]
    modes: list[int]
    dloss_ablate: list[float] | None = None
    theta_proj: list[float] | None = None

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> ProbeRecord:
        h = list(r.get("h") or [])
        modes = list(r.get("modes") or range(1, len(h) + 1))  # 1-indexed modes probed; default 1..k
        return cls(int(r["step"]), str(r.get("group")), int(r.get("k", len(h))), h, list(r.get("G_train") or []),
                   list(r.get("G_val") or []), modes, r.get("dloss_ablate"), r.get("theta_proj"))


@dataclass(frozen=True)
class BackboneRecord:
    """One backbone checkpoint (``numerics.backbone``): the Gram row ⟨D_i, D_t⟩ of cumulative displacements and the
    PCA numbers derived at capture."""

    step: int
    group: str
    fields: dict[str, Any]

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> BackboneRecord:
        return cls(int(r["step"]), str(r.get("group")), {k: v for k, v in r.items() if k not in ("type", "step",
                                                                                                  "group")})

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True)
class LCHRecord(_FieldsRecord):
    """One Linear-Centroid coupling measurement (``verify.studies.lch``): R_k for the gradient-SED and update-SED
    directions, the random baseline, and (where measured) the functional modes."""

    def R(self, key: str) -> list[float] | None:
        """R_k of ``key`` (``grad`` or ``update``); None when not measured at this step."""
        return self.fields.get(f"R_{key}") or None

    @property
    def window(self) -> int | None:
        return self.fields.get("window")


@dataclass(frozen=True)
class NormRecord:
    """One weight-norm measurement (``verify.studies.norms``): ‖θ‖₂ over all trainable parameters and, where the run
    had a spectral monitor, ‖θ_g‖₂ per monitor group."""

    step: int
    norm: float
    groups: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> NormRecord:
        return cls(int(r["step"]), float(r["norm"]), {str(k): float(v) for k, v in (r.get("groups") or {}).items()})
