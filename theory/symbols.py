"""Shared sympy symbols, named as in the theory reference (book), so every derivation speaks the same language.

Units: d (signal strength) and g (gap) are singular values, σ units; λ = σ² are Gram eigenvalues; h is a loss
curvature v_jᵀHv_j; G = ⟨∇L, v_j⟩ a gradient projection; η the learning rate per optimizer step (per checkpoint
interval use η·Δs, see ``theory.adiabatic``); ω the decoupled weight decay; W the window length; t the time in
optimizer steps.
"""

from __future__ import annotations

import sympy as sp

t = sp.Symbol("t", real=True, nonnegative=True)
eta = sp.Symbol("eta", positive=True)  # learning rate η
omega = sp.Symbol("omega", nonnegative=True)  # weight decay ω
W = sp.Symbol("W", positive=True, integer=True)  # window length

# One mode j
d = sp.Symbol("d", positive=True)  # signal strength d_j (σ units)
h = sp.Symbol("h", real=True)  # curvature h_j = v_jᵀ H v_j
G = sp.Symbol("G", real=True)  # gradient projection G_j = ⟨∇L, v_j⟩

# The gap pair (k*, k*+1)
d1, d2 = sp.symbols("d_1 d_2", positive=True)  # d_{k*}, d_{k*+1}
h1, h2 = sp.symbols("h_1 h_2", real=True)  # h_{k*}, h_{k*+1}
G1, G2 = sp.symbols("G_1 G_2", real=True)  # G_{k*}, G_{k*+1}
g = sp.Symbol("g", positive=True)  # gap g = d_{k*} − d_{k*+1} (σ units)
d_bar = sp.Symbol("dbar", positive=True)  # d̄ = (d_{k*} + d_{k*+1})/2
h_bar = sp.Symbol("hbar", real=True)  # h̄ = (h_{k*} + h_{k*+1})/2

# Near-collapse normal form ġ = c − κ g + ρ/g
c = sp.Symbol("c", real=True)
kappa = sp.Symbol("kappa", positive=True)
rho = sp.Symbol("rho", nonnegative=True)

# Perturbation / adiabatic
A = sp.Symbol("A", nonnegative=True)  # adiabatic parameter
dG_norm = sp.Symbol("DeltaG_F", nonnegative=True)  # ‖ΔG‖_F (σ² units)
Kdot_norm = sp.Symbol("Kdot", nonnegative=True)  # ‖K̇‖ (NTK change rate)
alpha = sp.Symbol("alpha", nonnegative=True)  # stability coefficient α_j
gap_lambda = sp.Symbol("gap_lambda", positive=True)  # gap_j in λ units
Delta_s = sp.Symbol("Delta_s", positive=True, integer=True)  # optimizer steps per checkpoint interval

# Initial values (signal-strength flow, normal form)
d0 = sp.Symbol("d_0", positive=True)  # d_j(0) (σ units)
g0 = sp.Symbol("g_0", positive=True)  # g(0) (σ units)

# Eq. (38) quantities the sources never define ([S], theory reference §1.5)
S_mode = sp.Symbol("S", real=True)  # "conservative mode coupling" S_j
N_mode = sp.Symbol("N", real=True)  # noise / injection factor N_j
G_eff = sp.Symbol("G_eff", real=True)  # effective gradient projection G^eff_j

# Train / validation gradient projections G_j^tr, G_j^val (loss decomposition, theory reference §3.7)
G_tr = sp.Symbol("G_tr", real=True)
G_val = sp.Symbol("G_val", real=True)

# Gram eigenvalues of the gap pair (λ = σ² units) and a perturbation size
lam1, lam2 = sp.symbols("lambda_1 lambda_2", positive=True)  # λ_{k*}, λ_{k*+1}
epsilon = sp.Symbol("epsilon", real=True)  # perturbation parameter ε in G + εE
