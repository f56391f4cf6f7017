"""The dynamics part of theory/: (F), Thm 14.2, the Prop 14.4 normal form, Dyson perturbation, Test 8, and A.

Symbolic derivations are checked by their own steps; closed forms and regimes are checked against numerical
integration (scipy), perturbation theory against exact eigenvalues, identities against random instances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from theory import adiabatic, dyson, gap_flow, loss_decomposition, normal_form, registry, signal_flow  # registers all
from theory.derivation import Derivation, DerivationError, Step, build_derivation, derivation_names
from theory.kstar import argmax as kstar_argmax
from theory.symbols import G, G_eff, Kdot_norm, N_mode, S_mode, W, c, d, eta, g, g0, h, kappa, omega, rho, t

PREFIXES = ("signal_flow.", "gap_flow.", "normal_form.", "dyson.", "loss_decomposition.", "adiabatic.")
NAMES = [name for name in derivation_names() if name.startswith(PREFIXES)]  # built when a test needs one

EXPECTED = {
    "signal_flow.squared_form",
    "signal_flow.fixed_point",
    "signal_flow.stability",
    "signal_flow.closed_form",
    "signal_flow.eq38_consistency",
    "signal_flow.dimensions",
    "gap_flow.key_identity",
    "gap_flow.thm_14_2",
    "normal_form.equilibria",
    "normal_form.attracting",
    "normal_form.c_at_collapse",
    "normal_form.finite_time_collapse",
    "dyson.second_order",
    "dyson.pair_repulsion",
    "loss_decomposition.window_identity",
    "loss_decomposition.mode_contribution",
    "loss_decomposition.quadratic_remainder",
    "adiabatic.definitions",
    "adiabatic.alpha_identity",
}

FAST = settings(max_examples=12, deadline=None)


# ----- derivations ------------------------------------------------------------------------------------------


def test_all_expected_derivations_are_registered() -> None:
    assert set(NAMES) >= EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_derivation_checks_and_renders(name: str) -> None:
    dv = build_derivation(name)
    assert dv.check()
    assert dv.steps, "a derivation without steps checks nothing"
    assert all(r == 0 for r, s in zip(dv.residuals(), dv.steps, strict=True) if not s.definition)
    assert not isinstance(dv.statement, sp.logic.boolalg.BooleanAtom), "statement evaluated to True/False"
    tex = dv.latex()
    assert isinstance(tex, str) and tex and tex != r"\text{True}"
    assert any(tag in dv.source for tag in ("[A]", "[C]", "[P]", "[R]", "[S]"))


def test_check_fails_on_a_wrong_step() -> None:
    wrong = Derivation(
        name="wrong.squared_form",
        statement=sp.Eq(sp.Symbol("x"), signal_flow.SQUARED_FLOW_RHS),
        source="[R] deliberately wrong",
        steps=(
            Step(
                "d(d²)/dt = d·ḋ (chain rule without the 2)",
                sp.expand(d * signal_flow.FLOW_RHS) - signal_flow.SQUARED_FLOW_RHS,
            ),
        ),
    )
    with pytest.raises(DerivationError, match="chain rule without the 2"):
        wrong.check()


def test_check_fails_when_a_real_step_is_perturbed() -> None:
    dv = build_derivation("gap_flow.thm_14_2")
    broken = Derivation(
        dv.name, dv.statement, dv.source, tuple(Step(s.claim, s.residual + eta * omega) for s in dv.steps)
    )
    with pytest.raises(DerivationError):
        broken.check()


def test_sign_residual_is_not_zero_when_undecidable() -> None:
    assert signal_flow.sign_residual(kappa > 0) == 0
    assert signal_flow.sign_residual(c < 0) != 0  # c is merely real: the sign claim must not pass
    with pytest.raises(DerivationError):
        Derivation("wrong.sign", c < 0, "[R]", (Step("c < 0", signal_flow.sign_residual(c < 0)),)).check()


def test_exports_have_the_names_predictors_compile() -> None:
    assert gap_flow.GAP_FLOW_ARGS == gap_flow.ARGS
    assert set(gap_flow.GAP_FLOW_TERMS) == {"curvature_asymmetry", "damping", "gradient_driving"}
    for expr in [*gap_flow.GAP_FLOW_TERMS.values(), gap_flow.GAP_FLOW_RHS, normal_form.C_AT_COLLAPSE]:
        assert expr.free_symbols <= set(gap_flow.GAP_FLOW_ARGS)
    for expr in (signal_flow.FLOW_RHS, signal_flow.SQUARED_FLOW_RHS, signal_flow.FIXED_POINT):
        assert expr.free_symbols <= set(signal_flow.FLOW_ARGS)
    for expr in (normal_form.NORMAL_FORM_RHS, normal_form.G_STAR, normal_form.G_PLUS):
        assert expr.free_symbols <= set(normal_form.NORMAL_FORM_ARGS)
    assert loss_decomposition.MODE_LOSS_CONTRIBUTION.free_symbols == set(loss_decomposition.MODE_LOSS_ARGS)
    assert adiabatic.A_DELTA_G.free_symbols == set(adiabatic.ARGS)
    assert adiabatic.A_KDOT.free_symbols == set(adiabatic.KDOT_ARGS) and Kdot_norm in adiabatic.KDOT_ARGS


# ----- signal flow (F) --------------------------------------------------------------------------------------


@FAST
@given(
    h_=st.floats(0.05, 3.0),
    om=st.floats(0.0, 1.0),
    G_=st.floats(-2.0, 2.0),
    eta_=st.floats(1e-3, 0.2),
    W_=st.integers(2, 20),
    d0_=st.floats(0.05, 5.0),
)
def test_closed_form_matches_integration_of_F(
    h_: float, om: float, G_: float, eta_: float, W_: int, d0_: float
) -> None:
    for variant in ("corrected", "quoted"):  # errata 2: the corrected flow is the default, (F) as quoted a variant
        flow = signal_flow.FLOW_VARIANTS[variant][0]
        rhs = sp.lambdify(signal_flow.FLOW_ARGS, flow, "math")
        closed = sp.lambdify((t, *signal_flow.FLOW_ARGS),
                             signal_flow.closed_form_d_squared(sp.Float(d0_), variant), "numpy")
        rate = eta_ * (h_ + om)
        ts = np.linspace(0.0, 3.0 / rate, 7)
        sol = solve_ivp(
            lambda _t, y, rhs=rhs: [rhs(y[0], h_, G_, eta_, om, W_)], (0.0, ts[-1]), [d0_], t_eval=ts, rtol=1e-10,
            atol=1e-12,
        )
        assert sol.success
        expected = closed(ts, 1.0, h_, G_, eta_, om, W_)  # d is not in the closed form; any value
        np.testing.assert_allclose(sol.y[0] ** 2, expected, rtol=1e-6, atol=1e-9)


def test_fixed_point_and_rate_numerically(rng: np.random.Generator) -> None:
    rhs = sp.lambdify(signal_flow.FLOW_ARGS, signal_flow.FLOW_RHS, "numpy")
    fp = sp.lambdify(signal_flow.FLOW_ARGS, signal_flow.FIXED_POINT, "numpy")
    rate = sp.lambdify(signal_flow.FLOW_ARGS, signal_flow.LINEAR_RATE, "numpy")
    for _ in range(20):
        args = (1.0, rng.uniform(0.1, 2), rng.uniform(-2, 2), rng.uniform(1e-3, 0.1), rng.uniform(0, 0.5), 10)
        ds = fp(*args)
        assert abs(rhs(ds, *args[1:])) < 1e-12 * max(1.0, ds)
        step = 1e-6 * ds
        slope = (rhs(ds + step, *args[1:]) - rhs(ds - step, *args[1:])) / (2 * step)
        assert slope == pytest.approx(rate(*args), rel=1e-5)


def test_eq38_equals_squared_flow_exactly_under_the_consistency_condition() -> None:
    S_cons = sp.solve(signal_flow.EQ38_CONSISTENCY, S_mode)[0]
    assert sp.simplify(signal_flow.EQ38_RHS.subs(S_mode, S_cons) - signal_flow.SQUARED_FLOW_RHS) == 0
    assert signal_flow.EQ38_INJECTION_RATIO.subs(S_mode, G**2 - 2 * G_eff * N_mode) == eta / 2


# ----- gap flow (Thm 14.2) ----------------------------------------------------------------------------------


def test_gap_flow_terms_sum_to_difference_of_mode_flows(rng: np.random.Generator) -> None:
    terms = {k: sp.lambdify(gap_flow.GAP_FLOW_ARGS, v, "numpy") for k, v in gap_flow.GAP_FLOW_TERMS.items()}
    total = sp.lambdify(gap_flow.GAP_FLOW_ARGS, gap_flow.GAP_FLOW_RHS, "numpy")
    flow = sp.lambdify(signal_flow.FLOW_ARGS, signal_flow.FLOW_RHS, "numpy")
    for _ in range(50):
        d1_, d2_ = np.sort(rng.uniform(0.1, 5, 2))[::-1]
        h1_, h2_, G1_, G2_ = rng.normal(size=4)
        eta_, om, W_ = rng.uniform(1e-3, 0.1), rng.uniform(0, 0.5), int(rng.integers(2, 30))
        args = (d1_, d2_, h1_, h2_, G1_, G2_, eta_, om, W_)
        parts = {k: f(*args) for k, f in terms.items()}
        assert sum(parts.values()) == pytest.approx(total(*args), rel=1e-12, abs=1e-12)
        direct = flow(d1_, h1_, G1_, eta_, om, W_) - flow(d2_, h2_, G2_, eta_, om, W_)
        assert total(*args) == pytest.approx(direct, rel=1e-10, abs=1e-12)
        assert parts["damping"] == pytest.approx(-eta_ * ((h1_ + h2_) / 2 + om) * (d1_ - d2_))


# ----- near-collapse normal form ----------------------------------------------------------------------------

_NF = sp.lambdify(normal_form.NORMAL_FORM_ARGS, normal_form.NORMAL_FORM_RHS, "math")
_GPLUS = sp.lambdify(normal_form.NORMAL_FORM_ARGS, normal_form.G_PLUS, "math")
_TSTAR = sp.lambdify((g0, c, kappa), normal_form.COLLAPSE_TIME, "math")


def _integrate(c_: float, k_: float, r_: float, g0_: float, T: float, **kw: object):  # type: ignore[no-untyped-def]
    return solve_ivp(
        lambda _t, y: [_NF(y[0], c_, k_, r_)], (0.0, T), [g0_], method="LSODA", rtol=1e-9, atol=1e-12, **kw
    )


@FAST
@given(c_=st.floats(-2.0, -0.05), k_=st.floats(0.1, 2.0), r_=st.floats(0.01, 1.0), g0_=st.floats(0.05, 3.0))
def test_avoided_crossing_converges_to_g_plus(c_: float, k_: float, r_: float, g0_: float) -> None:
    sol = _integrate(c_, k_, r_, g0_, 40.0 / k_)
    assert sol.success
    gp = _GPLUS(0.0, c_, k_, r_)
    assert gp > 0 and np.all(sol.y[0] > 0)
    assert sol.y[0, -1] == pytest.approx(gp, rel=1e-5)
    assert normal_form.classify_normal_form(c_, k_, r_) == "avoided crossing"


@FAST
@given(c_=st.floats(0.05, 2.0), k_=st.floats(0.1, 2.0), g0_=st.floats(0.05, 3.0))
def test_viable_gap_converges_to_g_star(c_: float, k_: float, g0_: float) -> None:
    sol = _integrate(c_, k_, 0.0, g0_, 40.0 / k_)
    assert sol.success
    assert sol.y[0, -1] == pytest.approx(c_ / k_, rel=1e-6)
    closed = sp.lambdify((t, g0, c, kappa), normal_form.collapse_solution(g0), "numpy")
    np.testing.assert_allclose(sol.y[0], closed(sol.t, g0_, c_, k_), rtol=1e-6)
    assert normal_form.classify_normal_form(c_, k_, 0.0) == "viable gap"


@FAST
@given(c_=st.floats(-2.0, -0.05), k_=st.floats(0.1, 2.0), g0_=st.floats(0.05, 3.0))
def test_finite_time_collapse_at_t_star(c_: float, k_: float, g0_: float) -> None:
    def hit(_t: float, y: np.ndarray) -> float:
        return float(y[0])

    hit.terminal = True  # type: ignore[attr-defined]
    t_star = _TSTAR(g0_, c_, k_)
    sol = solve_ivp(lambda _t, y: [c_ - k_ * y[0]], (0.0, 2 * t_star + 1), [g0_], events=hit, rtol=1e-11, atol=1e-13)
    assert sol.status == 1 and len(sol.t_events[0]) == 1
    assert sol.t_events[0][0] == pytest.approx(t_star, rel=1e-6)
    assert normal_form.classify_normal_form(c_, k_, 0.0) == "finite-time collapse"


def test_classify_edge_cases() -> None:
    assert normal_form.classify_normal_form(1.0, 1.0, 0.5) == "viable gap"
    assert normal_form.classify_normal_form(0.0, 1.0, 0.5) == "avoided crossing"
    for bad in ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, -0.1), (math.nan, 1.0, 0.0)):
        with pytest.raises(ValueError):
            normal_form.classify_normal_form(*bad)


def test_kappa_effective_doubles_kappa_at_the_F_steady_state(rng: np.random.Generator) -> None:
    # At the (F) fixed point W G_j² = (h_j+ω) d_j²; with d₁ = d₂ = d̄ and equal h the extra slope equals κ.
    f_eff = sp.lambdify(normal_form.C_ARGS, normal_form.KAPPA_EFFECTIVE, "math")
    f_k = sp.lambdify(normal_form.KAPPA_ARGS, normal_form.KAPPA, "math")
    for _ in range(10):
        db, h_, om, eta_, W_ = rng.uniform(0.5, 2), rng.uniform(0.1, 1), rng.uniform(0, 0.3), 0.01, 10
        Gs = db * math.sqrt((h_ + om) / W_)
        assert f_eff(db, db, h_, h_, Gs, Gs, eta_, om, W_) == pytest.approx(2 * f_k(h_, h_, eta_, om))


# ----- Dyson second-order perturbation ----------------------------------------------------------------------


def _sym(rng: np.random.Generator, n: int) -> np.ndarray:
    M = rng.normal(size=(n, n))
    return (M + M.T) / 2


def test_second_order_error_is_cubic(rng: np.random.Generator) -> None:
    for n in (2, 3, 6):
        lam = np.sort(rng.uniform(0, 10, n))[::-1] + np.arange(n)[::-1] * 2.0  # well separated
        Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        Gm = Q @ np.diag(lam) @ Q.T
        E = _sym(rng, n)
        errs = []
        for eps in (2e-2, 1e-2, 5e-3):
            exact = np.linalg.eigvalsh(Gm + eps * E)[::-1]
            errs.append(np.max(np.abs(dyson.second_order_eigenvalues(Gm, E, eps) - exact)))
        assert errs[0] / errs[1] == pytest.approx(8, rel=0.25)
        assert errs[1] / errs[2] == pytest.approx(8, rel=0.25)


def test_second_order_coefficients_by_finite_differences(rng: np.random.Generator) -> None:
    n = 5
    Gm = _sym(rng, n) + np.diag(np.arange(n) * 3.0)
    E = _sym(rng, n)
    step = 1e-3
    lam_p, lam_0, lam_m = (np.linalg.eigvalsh(Gm + s * E)[::-1] for s in (step, 0.0, -step))
    first_fd = (lam_p - lam_m) / (2 * step)
    second_fd = (lam_p - 2 * lam_0 + lam_m) / step**2  # = 2 × the ε² coefficient
    pred_1 = dyson.second_order_eigenvalues(Gm, E, 1.0) - dyson.second_order_eigenvalues(Gm, E, 0.0)
    pred_2 = dyson.second_order_eigenvalues(Gm, E, 1.0) + dyson.second_order_eigenvalues(Gm, E, -1.0) - 2 * lam_0
    a = pred_1 - (pred_2 / 2)  # λ(1) − λ(0) = a + b, (λ(1) + λ(−1) − 2λ(0))/2 = b
    np.testing.assert_allclose(first_fd, a, atol=1e-5)
    np.testing.assert_allclose(second_fd, pred_2, rtol=1e-4, atol=1e-4)


def test_pair_repulsion_on_the_gap(rng: np.random.Generator) -> None:
    Gm = np.diag([5.0, 3.0, 1.0])
    E = np.zeros((3, 3))
    E[0, 1] = E[1, 0] = 1.0
    eps = 1e-3
    exact = np.linalg.eigvalsh(Gm + eps * E)[::-1]
    rep = sp.lambdify(dyson.PAIR_REPULSION_ARGS, dyson.PAIR_REPULSION, "math")
    assert (exact[0] - exact[1]) - 2.0 == pytest.approx(eps**2 * rep(1.0, 5.0, 3.0), rel=1e-5)


def test_second_order_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="repeated"):
        dyson.second_order_eigenvalues(np.eye(3), np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match="symmetric"):
        dyson.second_order_eigenvalues(np.diag([1.0, 2.0]), np.array([[0.0, 1.0], [0.0, 0.0]]), 0.1)


# ----- loss decomposition -----------------------------------------------------------------------------------


@FAST
@given(W_=st.integers(1, 12), P=st.integers(1, 60), seed=st.integers(0, 2**31 - 1))
def test_window_displacement_identity(W_: int, P: int, seed: int) -> None:
    r = np.random.default_rng(seed)
    X, gv = r.normal(size=(W_, P)), r.normal(size=P)
    terms = loss_decomposition.window_displacement_projection(X, gv)
    assert terms.shape == (min(W_, P),)
    assert terms.sum() == pytest.approx(np.ones(W_) @ X @ gv, rel=1e-9, abs=1e-9)


def test_persistent_window_gives_mode_loss_contribution(rng: np.random.Generator) -> None:
    W_, P, eta_ = 10, 50, 0.03
    g_tr, g_val = rng.normal(size=P), rng.normal(size=P)
    X = -eta_ * np.outer(np.ones(W_), g_tr)  # every update −η∇L_tr: a rank-one, perfectly persistent window
    terms = loss_decomposition.window_displacement_projection(X, g_val)
    v1 = np.linalg.svd(X, full_matrices=False)[2][0]
    pred = sp.lambdify(loss_decomposition.MODE_LOSS_ARGS, loss_decomposition.MODE_LOSS_CONTRIBUTION, "math")
    assert terms[0] == pytest.approx(pred(eta_, W_, 1.0, v1 @ g_tr, v1 @ g_val), rel=1e-9)
    assert np.allclose(terms[1:], 0, atol=1e-12)


def test_quadratic_remainder_numerically(rng: np.random.Generator) -> None:
    H = _sym(rng, 5)
    b, th, dth = rng.normal(size=(3, 5))

    def loss(x: np.ndarray) -> float:
        return 0.5 * x @ H @ x + b @ x

    assert loss(th + dth) - loss(th) - (H @ th + b) @ dth == pytest.approx(0.5 * dth @ H @ dth)


# ----- adiabatic parameter ----------------------------------------------------------------------------------


def test_adiabatic_registry() -> None:
    assert registry.default_name("adiabatic") == "deltaG"
    assert {v.name for v in registry.variants("adiabatic")} == {"deltaG", "kdot"}
    assert registry.get("adiabatic")(2.0, 0.5, 2.0) == pytest.approx(2.0 / (0.5 * 4.0))
    assert registry.get("adiabatic", "kdot")(2.0, 0.5, 2.0) == pytest.approx(1.0)
    assert registry.get("adiabatic_regime") is not None
    assert [adiabatic.regime(a) for a in (0.01, 0.1, 1.0, 10.0, 11.0, math.inf)] == [
        "plateau",
        "transition",
        "transition",
        "transition",
        "forgetting",
        "forgetting",
    ]
    assert adiabatic.a_delta_g(0.0, 1.0, 0.0) == 0.0 and adiabatic.a_delta_g(1.0, 1.0, 0.0) == math.inf
    for bad in ((-1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (math.nan, 1.0, 1.0)):
        with pytest.raises(ValueError):
            adiabatic.a_delta_g(*bad)
    with pytest.raises(ValueError):
        adiabatic.regime(-1.0)


def test_effective_eta_divides_A_by_delta_s() -> None:
    e = adiabatic.effective_eta(1e-3, 100)
    assert e == pytest.approx(0.1)
    assert adiabatic.a_delta_g(1.0, e, 2.0) == pytest.approx(adiabatic.a_delta_g(1.0, 1e-3, 2.0) / 100)
    with pytest.raises(ValueError):
        adiabatic.effective_eta(1e-3, 0)


def test_nearest_neighbour_condition() -> None:
    assert adiabatic.nearest_neighbour_is_next(np.array([9.0, 4.0, 1.0]), 1)
    assert adiabatic.nearest_neighbour_is_next(np.array([9.0, 8.0, 1.0]), 2) is False
    assert adiabatic.nearest_neighbour_is_next(np.array([9.0, 4.0, 3.5]), 2)


def test_alpha_identity_on_random_windows(rng: np.random.Generator) -> None:
    one_minus_alpha = sp.lambdify(adiabatic.ALPHA_ARGS, adiabatic.ONE_MINUS_ALPHA, "math")
    checked = 0
    for _ in range(60):
        Wn, P = int(rng.integers(3, 9)), 200
        X = rng.normal(size=(Wn, P)) * np.geomspace(4.0, 0.5, Wn)[:, None]
        lam = np.linalg.eigvalsh(X @ X.T)[::-1]
        sigma = np.sqrt(np.clip(lam, 0, None))
        k = kstar_argmax(sigma)
        if not adiabatic.nearest_neighbour_is_next(lam, k):
            continue
        gap_lam = lam[k - 1] - lam[k]
        dG = _sym(rng, Wn)
        dG *= rng.uniform(0.01, 0.5) * gap_lam / np.linalg.norm(dG)  # ‖ΔG‖_F < gap: α-DK's max(0, ·) inactive
        dG_F = float(np.linalg.norm(dG))
        alpha_dk = 1 - dG_F**2 / gap_lam**2
        eta_ = float(rng.uniform(1e-4, 1e-1))
        g_, dbar = sigma[k - 1] - sigma[k], (sigma[k - 1] + sigma[k]) / 2
        A_ = adiabatic.a_delta_g(dG_F, eta_, g_)
        assert 1 - alpha_dk == pytest.approx(one_minus_alpha(A_, eta_, g_, dbar), rel=1e-9)
        assert gap_lam == pytest.approx(2 * dbar * g_, rel=1e-9)
        checked += 1
    assert checked >= 10


def test_A_is_invariant_under_scaling_the_window(rng: np.random.Generator) -> None:
    X = rng.normal(size=(6, 40))
    dG = _sym(rng, 6)
    s = np.linalg.svd(X, compute_uv=False)
    for scale in (0.1, 3.0):
        s2 = np.linalg.svd(scale * X, compute_uv=False)
        a1 = adiabatic.a_delta_g(np.linalg.norm(dG), 0.01, s[0] - s[1])
        a2 = adiabatic.a_delta_g(np.linalg.norm(scale**2 * dG), 0.01, s2[0] - s2[1])
        assert a1 == pytest.approx(a2, rel=1e-10)


def test_normal_form_symbols_are_the_shared_ones() -> None:
    # predictors substitute by symbol identity: the exports must use theory.symbols, not look-alikes
    assert normal_form.NORMAL_FORM_RHS.free_symbols == {g, c, kappa, rho}
    assert signal_flow.FLOW_RHS.free_symbols == {d, h, G, eta, omega, W}
