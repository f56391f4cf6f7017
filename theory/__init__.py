"""theory: the thesis's definitions and equations (sympy, numpy; never torch).

Importing the package registers the k* variants in the definitions registry.
"""

from theory import kstar as _kstar  # noqa: F401 - registers the k* variants
from theory import registry

__all__ = ["registry"]
