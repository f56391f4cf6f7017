"""theory: the thesis's definitions and equations (sympy, numpy; never torch).

Importing the package registers the k* variants in the definitions registry.
It also registers d_crit and the Krylov-bound variants, and the spectral-statistics derivations
(``theory.bbp``, ``theory.davis_kahan``, ``theory.hierarchy``, ``theory.ntk``), the dynamics derivations
(``theory.signal_flow``, ``theory.gap_flow``, ``theory.normal_form``, ``theory.dyson``, ``theory.loss_decomposition``)
and the adiabatic-parameter variants (``theory.adiabatic``).
"""

from theory import adiabatic as _adiabatic  # noqa: F401 - registers the A and regime variants, A ↔ α derivations
from theory import bbp as _bbp  # noqa: F401 - registers the d_crit variants and the BBP derivations
from theory import commutator as _commutator  # noqa: F401 - registers the commutator-defect derivation (errata 1)
from theory import davis_kahan as _davis_kahan  # noqa: F401 - registers the Davis–Kahan derivations
from theory import dyson as _dyson  # noqa: F401 - registers the second-order perturbation derivations
from theory import gap_flow as _gap_flow  # noqa: F401 - registers the Thm 14.2 derivations
from theory import hierarchy as _hierarchy  # noqa: F401 - registers the inverted-hierarchy derivation
from theory import jl as _jl  # noqa: F401 - registers the JL gap-error variants and derivation (errata 5)
from theory import kstar as _kstar  # noqa: F401 - registers the k* variants
from theory import li2 as _li2  # noqa: F401 - registers the Li2 weight-decay variants, Theorem-6 derivation
from theory import loss_decomposition as _loss_decomposition  # noqa: F401 - registers the Test-8 derivations
from theory import normal_form as _normal_form  # noqa: F401 - registers the Prop 14.4 normal-form derivations
from theory import ntk as _ntk  # noqa: F401 - registers the Krylov-bound variants
from theory import registry
from theory import signal_flow as _signal_flow  # noqa: F401 - registers the (F) / Eq. (38) derivations

__all__ = ["registry"]
