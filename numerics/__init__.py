"""numerics: the streaming spectral engine (torch on CPU or GPU; W×W linear algebra in float64 numpy).

Importing the package registers its definition variants (α_j, d_crit) in ``theory.registry`` next to the k*
variants of ``theory.kstar``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from numerics import stability as _stability  # noqa: F401 - registers the α_j variants
from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    TrajectoryError,
    WindowTooSmallError,
    ZeroWindowError,
)
from numerics.spectrum import Spectrum, right_vectors, spectrum_from_gram, spectrum_from_updates
from numerics.trajectory import Trajectory, TrajectoryWriter, read_trajectory

# The torch-backed names load on first use: reading runs (the run store, the claims, the book's pages, `inspect`)
# needs no torch, and importing it costs about 2 CPU-s per process.
_LAZY = {
    "BackboneTracker": "numerics.backbone", "backbone_from_gram": "numerics.backbone",
    "RollingGram": "numerics.gram", "JLSketch": "numerics.sketch", "SpectralMonitor": "numerics.monitor",
    "ParamLayout": "numerics.layout", "attention_selector": "numerics.layout", "per_layer_groups": "numerics.layout",
}
if TYPE_CHECKING:
    from numerics.backbone import BackboneTracker, backbone_from_gram
    from numerics.gram import RollingGram
    from numerics.layout import ParamLayout, attention_selector, per_layer_groups
    from numerics.monitor import SpectralMonitor
    from numerics.sketch import JLSketch


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'numerics' has no attribute {name!r}")


__all__ = [
    "BackboneTracker",
    "JLSketch",
    "NonFiniteUpdateError",
    "ParamLayout",
    "RollingGram",
    "ShapeMismatchError",
    "SpectralEdgeError",
    "SpectralMonitor",
    "Spectrum",
    "Trajectory",
    "TrajectoryError",
    "TrajectoryWriter",
    "WindowTooSmallError",
    "ZeroWindowError",
    "attention_selector",
    "backbone_from_gram",
    "per_layer_groups",
    "read_trajectory",
    "right_vectors",
    "spectrum_from_gram",
    "spectrum_from_updates",
]
