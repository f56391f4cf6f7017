"""Linear models (theory reference §6.12): the NTK closed form of the window Gram under gradient descent, and the
Krylov count."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from theory import ntk
from verify.strategies import linear_models
from verify.theorems.common import NUMERICS
from verify.theorems.registry import COUNTEREXAMPLES, require, theorem

# Checks import numerics inside the function: it imports torch (heavy, optional; the entry SKIPs without it).

# ===== §6.12 linear model / NTK ==============================================================================

_NTK_CASES = st.tuples(linear_models(), st.integers(0, 5), st.integers(2, 10))


@theorem(
    "ntk.gram_identity",
    "GD on least squares: the simulated window Gram XXᵀ equals Σ_i a_ia_iᵀ, a_i(s) = −η√κ_i⟨r₀,q_i⟩(1−ηκ_i)^s",
    "[R] §3.2, §6.12 (theory.ntk)",
    _NTK_CASES,
)
def _ntk_gram(case: tuple[Any, int, int]) -> None:
    (J, r0, eta), s0, W = case
    full = ntk.linear_model_updates(J, r0, eta, s0 + W)
    X = full[s0:]
    G_sim = X @ X.T
    G = ntk.ntk_gram(J, r0, eta, s0, W)
    err = float(np.max(np.abs(G - G_sim)))
    # relative to the largest update of the run: a mode with ηκ_i = 1 dies after one step, leaving rounding only
    tol = 1e-9 * max(float(np.max(np.sum(full**2, axis=1))), 1e-300)
    require(err <= tol, "NTK closed form ≠ simulated GD Gram", max_abs_error=err, tol=tol, eta=eta, s0=s0, W=W)


@theorem(
    "ntk.krylov_universal",
    "k* ≤ #{i : ηWκ_i ≥ 1} + 1 in every noiseless linear-model window (a tendency, not a theorem: §6.12)",
    "[C] draft Prop 2.6; [R] §3.2, §6.12",
    _NTK_CASES,
    expected=COUNTEREXAMPLES,
    requires=NUMERICS,
)
def _ntk_krylov(case: tuple[Any, int, int]) -> None:
    from numerics.spectrum import spectrum_from_gram  # local: the catalogue imports without torch (`requires`)

    (J, r0, eta), s0, W = case
    G = ntk.ntk_gram(J, r0, eta, s0, W)
    assume(float(np.trace(G)) > 0)
    k = spectrum_from_gram(G).kstar
    kappa, _ = ntk.ntk_eigenpairs(J)
    bound = ntk.krylov_kstar_bound(kappa, eta, W)
    require(k <= bound, "k* exceeds the Krylov count + 1", kstar=k, bound=bound,
            eta_W_kappa=(eta * W * kappa).tolist())
