"""The dependency direction theory → numerics → verify, checked on the import graph."""

from __future__ import annotations

import subprocess
import sys


def test_theory_never_imports_torch():
    code = "import sys, theory; from theory.derivation import all_derivations; all_derivations(); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_numerics_does_not_import_verify():
    code = "import sys, numerics; print(any(m == 'verify' or m.startswith('verify.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
