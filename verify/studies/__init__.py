"""The studies: each is one module of this package that owns its measurement (a harness plug-in), its claim rows
(a provider of the claims contract) and its figure. Adding a study is one new module here plus one ``study`` line
below; no harness, store or claims module changes.

The order of the lines is the order of the claims table (``spectral-edge claims``) and the order in which the
measurements run at a step (and so the order of their records in a trajectory file).
"""

from __future__ import annotations

from verify.plugins import register_claims, register_intervention, register_measurement

__all__ = ["study"]


def study(name: str, *, measurement: str | None = None, intervention: str | None = None,
          claims: bool = False) -> None:
    """Register study ``name`` (module ``verify.studies.<name>``): its measurement or intervention class (the config
    key of a run is ``name``) and, with ``claims``, its provider ``claim_rows(runs_root)``. Nothing is imported until
    used."""
    module = f"verify.studies.{name}"
    if measurement is not None:
        register_measurement(name, f"{module}:{measurement}")
    if intervention is not None:
        register_intervention(name, f"{module}:{intervention}")
    if claims:
        register_claims(name, f"{module}:claim_rows")


study("spectral", claims=True)
study("defect", measurement="DefectMeasurement")
study("probes", measurement="ProbeMeasurement", claims=True)
study("predictors", claims=True)
study("onset", claims=True)
study("li2", claims=True)
study("backbone", measurement="BackboneMeasurement", claims=True)
study("lch", measurement="LCHMeasurement", claims=True)
study("modes", claims=True)
study("norms", measurement="NormMeasurement")
study("forecast", claims=True)
study("multitask", claims=True)
study("geometry", measurement="GeometryMeasurement", claims=True)
study("edge", measurement="EdgeMeasurement", claims=True)
study("causal", intervention="SubspaceIntervention", claims=True)
