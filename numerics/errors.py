"""Errors raised by the spectral engine. Each message names the problem and the offending value."""

from __future__ import annotations

__all__ = [
    "NonFiniteUpdateError",
    "ShapeMismatchError",
    "SpectralEdgeError",
    "TrajectoryError",
    "WindowTooSmallError",
    "ZeroWindowError",
]


class SpectralEdgeError(ValueError):
    """Base class of every error the package raises for bad input."""


class NonFiniteUpdateError(SpectralEdgeError):
    """An update δ_t (or a Gram entry computed from it) contains NaN or Inf."""


class WindowTooSmallError(SpectralEdgeError):
    """A window has fewer rows than the quantity needs (W < 2, w < 3 for g₂₃, w < 4 for α-half)."""


class ShapeMismatchError(SpectralEdgeError):
    """An update's shape, dtype or device differs from the ones the window was built with."""


class ZeroWindowError(SpectralEdgeError):
    """All updates in the window are zero (σ₁ = 0): ratios, k* and gaps are undefined."""


class TrajectoryError(SpectralEdgeError):
    """A trajectory file is missing, unreadable, truncated in its header, foreign, or of another schema."""
