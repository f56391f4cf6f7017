"""The theorem catalogue: theory reference §6's property-testable statements, run with hypothesis against the package's
code.

Each ``Theorem`` has an id, a one-line statement, a source tag (the theory reference's tags: [A] abstract,
[C] companion, [P] paper/code, [R] reconstruction, plus the §), what we expect (``"holds"`` or
``"has counterexamples"``), a hypothesis strategy from ``verify.strategies`` and a check. The check computes the
statement's two sides with the package's functions (``numerics.spectrum``, ``numerics.stability``,
``numerics.gram``, ``numerics.sketch``, ``numerics.probes``, ``theory.*``) and raises ``Violation`` with the
measured values when the statement fails on the example.

``run_theorem`` drives the check with ``hypothesis.given`` under explicit settings (no example database, a seed
derived from the theorem id, every health check off) and catches the failure: hypothesis shrinks a falsifying
example and replays the smallest one last, so the last failing call is the minimal counterexample. A result
reports the examples tried (valid ones, up to the first counterexample), the counterexamples found (0 or 1:
hypothesis stops at the first and shrinks it), the shrunk counterexample, the time, and the verdict: PASS when
the outcome is the expected one (no counterexample for "holds", one for "has counterexamples"), FAIL otherwise,
SKIP when a required module (torch) cannot be imported.

Profiles: ``quick`` runs 50 examples per theorem (the catalogue takes ~10 s on one core), ``thorough`` 1000;
a search for an expected counterexample runs up to ``HUNT_EXAMPLES`` examples whatever the profile, and stops
at the first. Statistical statements (BBP, JL, α-half on isotropic noise) are checked per random instance with a
tolerance whose per-instance failure probability is stated in the statement (≤ 1e-6).

``theorems_command`` is the body of ``spectral-edge theorems``.

The package: ``registry`` (``Theorem``, the ``theorem`` decorator, ``CATALOGUE``), ``common`` (what the checks
share), one module per topic below (importing it registers its entries; the import order below is the catalogue's
order), ``run`` (``run_theorem``, ``select``, ``run_catalogue``) and ``report`` (reports, ``theorems_command``).
"""

from __future__ import annotations

# The topic modules in catalogue order (§6.1 → §6.20, then Li₂): importing one registers its entries, so the order of
# these names is the order of CATALOGUE, of select() and of every report (isort must not sort them).
# isort: off
from verify.theorems import (  # noqa: F401 - imported to register their entries
    spectra,
    weyl,
    interlacing,
    davis_kahan,
    loss_decomposition,
    ntk,
    dyson,
    bbp,
    commutator,
    adamw,
    jl,
    tian,
    alpha,
    li2,
)
# isort: on

from verify.theorems.registry import CATALOGUE, COUNTEREXAMPLES, HOLDS, Theorem, Violation, require, theorem
from verify.theorems.report import report_json, report_text, theorems_command
from verify.theorems.run import HUNT_EXAMPLES, PROFILES, TheoremResult, run_catalogue, run_theorem, select

__all__ = [
    "CATALOGUE",
    "COUNTEREXAMPLES",
    "HOLDS",
    "HUNT_EXAMPLES",
    "PROFILES",
    "Theorem",
    "TheoremResult",
    "Violation",
    "report_json",
    "report_text",
    "require",
    "run_catalogue",
    "run_theorem",
    "select",
    "theorem",
    "theorems_command",
]
