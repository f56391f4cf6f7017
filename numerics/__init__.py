"""numerics: the streaming spectral engine (torch on CPU or GPU; W×W linear algebra in float64 numpy).

Importing the package registers its definition variants (α_j, d_crit) in ``theory.registry`` next to the k*
variants of ``theory.kstar``.
"""

from numerics import stability as _stability  # noqa: F401 - registers the α_j variants
from numerics.backbone import BackboneTracker, backbone_from_gram
from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    TrajectoryError,
    WindowTooSmallError,
    ZeroWindowError,
)
from numerics.gram import RollingGram
from numerics.layout import ParamLayout, attention_selector, per_layer_groups
from numerics.monitor import SpectralMonitor
from numerics.sketch import JLSketch
from numerics.spectrum import Spectrum, right_vectors, spectrum_from_gram, spectrum_from_updates
from numerics.trajectory import Trajectory, TrajectoryWriter, read_trajectory

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
