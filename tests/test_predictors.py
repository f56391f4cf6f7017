"""numerics.predictors: gap-rate bookkeeping, forward integration against closed forms, A and its regimes,
mode loss contributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from numerics.compile import compile_expr
from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.predictors import (
    adiabatic,
    closed_form_d_squared,
    eta_A,
    integrate_gap,
    integrate_modes,
    integrate_normal_form,
    mode_fixed_point,
    mode_loss_contributions,
    normal_form_equilibrium,
    normal_form_kappa,
    normal_form_prediction,
    predict_gap_rate,
    predict_mode_rates,
)
from theory import normal_form
from theory import symbols as S

modes = st.integers(3, 8)


def random_state(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = np.sort(rng.uniform(0.1, 5.0, n))[::-1].copy()
    return d, rng.uniform(-0.5, 2.0, n), rng.normal(0.0, 1.0, n)


@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1), modes, st.floats(1e-3, 0.1), st.floats(0.0, 1.0), st.integers(2, 20),
       st.integers(1, 50))
def test_gap_rate_terms_sum_to_rhs_and_equal_difference_of_mode_flows(seed: int, n: int, eta: float, omega: float,
                                                                       W: int, delta_s: int) -> None:
    d, h, G = random_state(seed, n)
    kstar = 1 + seed % (n - 1)
    out = predict_gap_rate(d, h, G, kstar, eta, omega, W, delta_s)
    terms = out["curvature_asymmetry"] + out["damping"] + out["gradient_driving"]
    assert out["rate"] == pytest.approx(terms, rel=1e-12, abs=1e-12)
    rates = predict_mode_rates(d, h, G, eta, omega, W, delta_s)
    assert out["rate"] == pytest.approx(rates[kstar - 1] - rates[kstar], rel=1e-9, abs=1e-12)
    assert out["g"] == d[kstar - 1] - d[kstar]
    assert out["eta_eff"] == pytest.approx(eta * delta_s)
    # torch backend: same numbers, and autograd reaches the measured inputs
    dt = torch.tensor(d, requires_grad=True)
    out_t = predict_gap_rate(dt, h, G, kstar, eta, omega, W, delta_s, backend="torch")
    assert out_t["rate"].item() == pytest.approx(float(out["rate"]), rel=1e-12, abs=1e-14)
    out_t["rate"].backward()
    assert dt.grad is not None and torch.count_nonzero(dt.grad) <= 2  # only the pair enters


def test_gap_rate_batched_over_checkpoints_with_one_kstar_each() -> None:
    d = np.stack([random_state(s, 5)[0] for s in range(4)])
    h = np.full((4, 5), 0.3)
    G = np.linspace(0.1, 1.0, 20).reshape(4, 5)
    kstar = np.array([1, 2, 3, 4])
    out = predict_gap_rate(d, h, G, kstar, 0.01, 0.1, 10, delta_s=100)
    assert out["rate"].shape == (4,)
    for i, k in enumerate(kstar):
        single = predict_gap_rate(d[i], h[i], G[i], int(k), 0.01, 0.1, 10, delta_s=100)
        assert out["rate"][i] == pytest.approx(float(single["rate"]))
    out_t = predict_gap_rate(torch.tensor(d), torch.tensor(h), torch.tensor(G), torch.tensor(kstar), 0.01, 0.1, 10,
                             delta_s=100, backend="torch")
    assert np.allclose(out_t["rate"].numpy(), out["rate"])


def test_predictors_reject_bad_kstar_and_shapes() -> None:
    d, h, G = random_state(0, 4)
    with pytest.raises(SpectralEdgeError, match="k\\*"):
        predict_gap_rate(d, h, G, 4, 0.01, 0.1, 10)
    with pytest.raises(SpectralEdgeError, match="k\\*"):
        predict_gap_rate(d, h, G, 0, 0.01, 0.1, 10)
    with pytest.raises(ShapeMismatchError):
        predict_gap_rate(d, h[:3], G, 1, 0.01, 0.1, 10)
    with pytest.raises(SpectralEdgeError, match="Δs"):
        predict_gap_rate(d, h, G, 1, 0.01, 0.1, 10, delta_s=0)


# --- integration ---------------------------------------------------------------------------------------------------


@settings(max_examples=10)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_integrate_modes_matches_closed_form_of_squared_flow(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    d0 = rng.uniform(0.2, 3.0, n)
    h, omega = rng.uniform(-0.2, 2.0, n), 0.5  # h + ω > 0: the decaying branch, the one measured in practice
    G = rng.normal(0.0, 1.0, n)
    eta, W, delta_s = 0.05, 10, 4
    t_eval = np.linspace(0.0, 20.0, 11)
    sol = integrate_modes(d0, h, G, eta, omega, W, (0.0, 20.0), t_eval=t_eval, delta_s=delta_s)
    assert sol.success and sol.d.shape == (n, 11)
    expected = closed_form_d_squared(d0, h, G, eta, omega, W, t_eval[None, :].T, delta_s=delta_s).T
    assert sol.d**2 == pytest.approx(expected, rel=1e-6)
    # the Δs convention is η·Δs, nothing else
    same = integrate_modes(d0, h, G, eta * delta_s, omega, W, (0.0, 20.0), t_eval=t_eval)
    assert np.allclose(same.d, sol.d, rtol=1e-7)


def test_integrate_gap_is_the_pair_of_mode_flows_and_finds_the_crossing() -> None:
    # Mode k*+1 is driven hard (|G₂| ≫ |G₁|): its fixed point lies above mode k*'s, so the levels cross under (F).
    d, h, G = np.array([3.0, 2.0, 1.0, 0.5]), np.array([0.5, 0.5, 0.5, 0.5]), np.array([0.2, 0.2, 2.0, 0.1])
    eta, omega, W, kstar = 0.1, 0.0, 4, 2
    gap = integrate_gap(d, h, G, kstar, eta, omega, W, (0.0, 200.0))
    assert gap.crossing_time is not None and gap.g[-1] == pytest.approx(0.0, abs=1e-6)
    pair_sq = [lambda t, j=j: closed_form_d_squared(d[j], h[j], G[j], eta, omega, W, t) for j in (1, 2)]
    t_cross = brentq(lambda t: np.sqrt(pair_sq[0](t)) - np.sqrt(pair_sq[1](t)), 0.0, 200.0, xtol=1e-12)
    assert gap.crossing_time == pytest.approx(t_cross, rel=1e-6)
    t_eval = np.linspace(0.0, 0.9 * t_cross, 7)
    gap = integrate_gap(d, h, G, kstar, eta, omega, W, (0.0, 0.9 * t_cross), t_eval=t_eval)
    both = integrate_modes(d[1:3], h[1:3], G[1:3], eta, omega, W, (0.0, 0.9 * t_cross), t_eval=t_eval)
    assert gap.crossing_time is None
    assert np.allclose(gap.g, both.d[0] - both.d[1], rtol=1e-7) and np.allclose(gap.d_bar, both.d.mean(0))
    # the initial slope is the predicted gap rate
    rate = predict_gap_rate(d, h, G, kstar, eta, omega, W)["rate"]
    fine = integrate_gap(d, h, G, kstar, eta, omega, W, (0.0, 1e-4), t_eval=[0.0, 1e-4])
    assert (fine.g[1] - fine.g[0]) / 1e-4 == pytest.approx(float(rate), rel=1e-3)
    # levels that cross before the first requested time: the crossing is reported, no evaluation point exists
    late = integrate_gap(d, h, G, kstar, eta, omega, W, (0.0, 200.0), t_eval=[1.5 * t_cross, 200.0])
    assert late.crossing_time == pytest.approx(t_cross, rel=1e-6)
    assert late.t.shape == (0,) and late.g.shape == (0,) and late.d_bar.shape == (0,)


def test_normal_form_prediction_and_integration() -> None:
    d, h, G = np.array([2.0, 1.9, 0.3]), np.array([0.4, 0.2, 0.1]), np.array([1.0, 0.5, 0.1])
    eta, omega, W = 0.1, 0.2, 10
    pred = normal_form_prediction(d, h, G, 1, eta, omega, W, rho=0.01, variant="quoted")
    dbar = 1.95
    assert pred["c"] == pytest.approx(-eta * 0.2 * dbar + eta * W * (1.0 - 0.25) / dbar)
    assert pred["kappa"] == pytest.approx(eta * (0.3 + omega))
    assert pred["regime"] == "viable gap" and pred["g_plus"] > pred["g_star"] > 0
    sol = integrate_normal_form(0.1, pred["c"], pred["kappa"], pred["rho"], (0.0, 400.0))
    assert sol.crossing_time is None and sol.g[-1] == pytest.approx(pred["g_plus"], rel=1e-5)
    # c < 0: level repulsion holds the gap at g₊ > 0; without it the gap closes at COLLAPSE_TIME
    c, kappa = -0.05, 0.05
    held = integrate_normal_form(1.0, c, kappa, 0.01, (0.0, 600.0))
    g_plus = compile_expr(normal_form.G_PLUS, normal_form.NORMAL_FORM_ARGS, "numpy")(0.0, c, kappa, 0.01)
    assert held.crossing_time is None and held.g[-1] == pytest.approx(float(g_plus), rel=1e-5)
    closed = integrate_normal_form(1.0, c, kappa, 0.0, (0.0, 600.0))
    t_star = compile_expr(normal_form.COLLAPSE_TIME, (S.g0, S.c, S.kappa), "numpy")(1.0, c, kappa)
    assert closed.crossing_time == pytest.approx(float(t_star), rel=1e-6)
    no_repulsion = normal_form_prediction(d, h, G, 1, eta, omega, W, rho=0.0, variant="quoted")
    assert no_repulsion["g_plus"] == pytest.approx(no_repulsion["g_star"], rel=1e-12)


# --- adiabatic parameter -------------------------------------------------------------------------------------------


def test_adiabatic_hand_cases() -> None:
    A, regime = adiabatic(1.0, 1.0, 0.01)
    assert isinstance(A, float) and isinstance(regime, str)
    assert A == pytest.approx(100.0) and regime == "forgetting"
    A, regime = adiabatic(1e-3, 1.0, 0.1)
    assert float(A) == pytest.approx(0.01) and regime == "plateau"
    A, regime = adiabatic(0.5, 0.5, 2.0)
    assert float(A) == pytest.approx(1.0) and regime == "transition"
    # η → η·Δs divides A by Δs; the K̇ form has the same structure
    A, regime = adiabatic(1.0, 1.0, 0.01, delta_s=100)
    assert float(A) == pytest.approx(1.0) and regime == "transition"
    assert float(adiabatic(1.0, 2.0, 0.01, form="kdot")[0]) == pytest.approx(25.0)
    # arrays broadcast; a collapsed gap is infinitely non-adiabatic unless nothing changed
    A, regime = adiabatic(np.array([0.0, 1.0, 1e-4]), np.array([0.0, 0.0, 1.0]), 0.1, on_zero_gap="inf")
    assert A[0] == 0.0 and np.isinf(A[1]) and A[2] == pytest.approx(1e-3)
    assert list(regime) == ["plateau", "forgetting", "plateau"]
    assert adiabatic(1.0, 1.0, 0.2, thresholds=(1.0, 100.0))[1] == "transition"
    with pytest.raises(SpectralEdgeError):
        adiabatic(-1.0, 1.0, 0.1)
    with pytest.raises(SpectralEdgeError, match="form"):
        adiabatic(1.0, 1.0, 0.1, form="ntk")  # type: ignore[arg-type]


# --- loss decomposition --------------------------------------------------------------------------------------------


def test_mode_loss_contributions() -> None:
    alpha, G_tr, G_val = np.array([1.0, 0.5, 0.0]), np.array([0.2, -0.4, 3.0]), np.array([0.5, 0.5, 1.0])
    out = mode_loss_contributions(alpha, G_tr, G_val, 0.01, 10)
    assert out == pytest.approx(-0.01 * 10 * alpha * G_tr * G_val)
    assert mode_loss_contributions(alpha, G_tr, G_val, 0.01, 10, delta_s=5) == pytest.approx(5 * out)
    out_t = mode_loss_contributions(torch.tensor(alpha), torch.tensor(G_tr), torch.tensor(G_val), 0.01, 10,
                                    backend="torch")
    assert np.allclose(out_t.numpy(), out)


# --- bad input -------------------------------------------------------------------------------------------------------


def test_bad_inputs_get_clear_errors():
    import pytest as _pytest

    from numerics import predictors as pr
    from numerics.errors import ShapeMismatchError, SpectralEdgeError

    d, h, G = np.array([3.0, 1.0, 0.5]), np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.2, 0.1])
    with _pytest.raises(SpectralEdgeError, match=r"d .* must be > 0"):
        pr.predict_gap_rate(np.array([3.0, 0.0, 0.5]), h, G, 1, 1e-3, 0.1, 10)
    with _pytest.raises(ShapeMismatchError, match="same number of modes"):
        pr.predict_gap_rate(d, h[:2], G, 1, 1e-3, 0.1, 10)
    with _pytest.raises(SpectralEdgeError, match=r"k\* must be in"):
        pr.predict_gap_rate(d, h, G, 3, 1e-3, 0.1, 10)
    with _pytest.raises(SpectralEdgeError, match=r"h \+ ω"):
        pr.closed_form_d_squared(1.0, -0.5, 0.1, 1e-3, 0.1, 10, 5.0)
    with _pytest.raises(SpectralEdgeError, match="g = 0"):
        pr.adiabatic(0.3, 0.0, 1e-3)
    A, regime = pr.adiabatic(0.3, 0.0, 1e-3, on_zero_gap="inf")
    assert A == np.inf and regime == "forgetting"
    with _pytest.raises(SpectralEdgeError, match="form must be"):
        pr.adiabatic(0.3, 1.0, 1e-3, form="rhs")


# --- corrected vs quoted forms (theory reference §0.1 errata 2–4)
# ---------------------------------------------------------------


@pytest.mark.parametrize("variant", ["corrected", "quoted"])
def test_mode_fixed_point_is_the_root_of_its_flow_and_matches_sympy(variant: str) -> None:
    from theory import signal_flow

    G, h = np.array([1.0, -2.0, 0.3, 1.5]), np.array([0.5, 1.2, 0.05, -0.4])
    eta, omega, W, delta_s = 0.02, 0.1, 10, 5
    fp = mode_fixed_point(G, h, omega, eta, W, variant, delta_s=delta_s)
    assert np.isnan(fp[3]) and np.all(np.isfinite(fp[:3]))  # h + ω ≤ 0: no fixed point
    expr = signal_flow.FLOW_VARIANTS[variant][2]
    for j in range(3):
        rate = lambda s, j=j: float(predict_mode_rates([s], [h[j]], [G[j]], eta, omega, W, delta_s,  # noqa: E731
                                                       variant=variant)[0])
        assert brentq(rate, 1e-6, 1e3, xtol=1e-14) == pytest.approx(fp[j], rel=1e-9)
        twin = expr.subs({S.G: G[j], S.h: h[j], S.omega: omega, S.eta: eta * delta_s, S.W: W})
        assert float(twin) == pytest.approx(fp[j], rel=1e-12)


def test_corrected_fixed_point_is_sqrt_eta_times_quoted_and_broadcasts() -> None:
    rng = np.random.default_rng(3)
    G, h = rng.normal(size=(4, 6)), rng.uniform(0.1, 2.0, (4, 6))
    corrected = mode_fixed_point(G, h, 0.0, 0.01, 20)
    assert corrected.shape == (4, 6)
    assert corrected == pytest.approx(np.abs(G) * np.sqrt(0.01 * 20 / h), rel=1e-12)
    assert corrected == pytest.approx(np.sqrt(0.01) * mode_fixed_point(G, h, 0.0, 0.01, 20, "quoted"), rel=1e-12)
    with pytest.raises(SpectralEdgeError, match="variant"):
        mode_fixed_point(G, h, 0.0, 0.01, 20, "published")  # type: ignore[arg-type]


def test_gap_rate_variants_differ_only_in_the_driving_term() -> None:
    d, h, G = np.array([3.0, 2.0, 1.0]), np.array([0.5, 0.3, 0.1]), np.array([1.0, 0.7, 0.2])
    eta, omega, W, ds = 0.01, 0.1, 8, 10
    c, q = (predict_gap_rate(d, h, G, 1, eta, omega, W, ds, variant=v) for v in ("corrected", "quoted"))
    assert c["damping"] == q["damping"] and c["curvature_asymmetry"] == q["curvature_asymmetry"]
    assert c["gradient_driving"] == pytest.approx(eta * ds * q["gradient_driving"], rel=1e-12)
    assert predict_gap_rate(d, h, G, 1, eta, omega, W, ds)["rate"] == c["rate"]  # the default is corrected


def test_normal_form_kappa_is_minus_the_gap_slope_at_collapse() -> None:
    hbar, omega, G1, G2, dbar, eta, W = 0.4, 0.1, 0.9, 0.6, 1.3, 0.03, 12
    for variant in ("corrected", "quoted"):
        def gdot(g: float, variant: str = variant) -> float:
            d = np.array([dbar + g / 2, dbar - g / 2])
            return float(predict_gap_rate(d, [hbar, hbar], [G1, G2], 1, eta, omega, W, variant=variant)["rate"])

        slope = -(gdot(1e-5) - gdot(-1e-5)) / 2e-5
        kappa = float(normal_form_kappa(hbar, omega, G1, G2, dbar, eta, W, variant))
        if variant == "corrected":
            assert kappa == pytest.approx(slope, rel=1e-7)
            assert kappa == pytest.approx(eta * (hbar + omega) + eta**2 * W * (G1**2 + G2**2) / (2 * dbar**2))
        else:
            assert kappa == pytest.approx(eta * (hbar + omega), rel=1e-12) and kappa < slope  # misses a term


def test_corrected_kappa_is_the_relaxation_rate_near_the_fixed_points() -> None:
    # Equal curvature and gradients: both modes share σ* and κ = 2η(h+ω) exactly; the pair flow relaxes a small
    # gap at that rate, and the quoted κ = η(h+ω) is half of it (errata 3).
    h, omega, G, eta, W = 0.5, 0.1, 1.0, 0.05, 10
    s_star = float(mode_fixed_point(G, h, omega, eta, W))
    kappa = float(normal_form_kappa(h, omega, G, G, s_star, eta, W))
    assert kappa == pytest.approx(2 * eta * (h + omega), rel=1e-12)
    assert float(normal_form_kappa(h, omega, G, G, s_star, eta, W, "quoted")) == pytest.approx(kappa / 2)
    g0, t1 = 1e-4, 20.0
    d = np.array([s_star + g0 / 2, s_star - g0 / 2, 0.1])
    sol = integrate_gap(d, [h] * 3, [G, G, 0.1], 1, eta, omega, W, (0.0, t1), t_eval=[0.0, t1], rtol=1e-12,
                        atol=1e-15)
    assert -np.log(sol.g[-1] / sol.g[0]) / t1 == pytest.approx(kappa, rel=1e-3)


def test_normal_form_equilibrium_and_prediction_variants() -> None:
    assert normal_form_equilibrium([0.2, 0.2, 0.2], [0.5, 0.0, -1.0]) == pytest.approx([0.4, np.nan, np.nan],
                                                                                      nan_ok=True)
    d, h, G = np.array([2.0, 1.9, 0.3]), np.array([0.4, 0.2, 0.1]), np.array([1.0, 0.5, 0.1])
    eta, omega, W = 0.1, 0.2, 10
    c, q = (normal_form_prediction(d, h, G, 1, eta, omega, W, variant=v) for v in ("corrected", "quoted"))
    dbar = 1.95
    assert c["c"] == pytest.approx(-eta * 0.2 * dbar + eta**2 * W * (1.0 - 0.25) / dbar)
    assert c["kappa"] == pytest.approx(float(normal_form_kappa(0.3, omega, 1.0, 0.5, dbar, eta, W)))
    assert c["g_star"] == pytest.approx(float(normal_form_equilibrium(c["c"], c["kappa"])))
    assert q["kappa"] == pytest.approx(eta * (0.3 + omega)) and c["variant"] == "corrected"


def test_eta_A_is_unit_free_and_the_time_base_is_explicit() -> None:
    dG, g, eta = 0.6, 0.5, 0.01
    # the same trajectory with the loss ×10 and η ÷10: ΔG and g unchanged, A ×10, ηA unchanged (errata 4)
    A1, _ = adiabatic(dG, g, eta)
    A2, _ = adiabatic(dG, g, eta / 10)
    assert A2 == pytest.approx(10 * A1) and eta_A(dG, g) == pytest.approx(eta * A1) == pytest.approx(eta / 10 * A2)
    # per checkpoint interval: η → η·Δs; per step: η as given, Δs ignored
    A_ck, _ = adiabatic(dG, g, eta, 50)
    A_st, _ = adiabatic(dG, g, eta, 50, time_base="per_step")
    assert A_ck == pytest.approx(A1 / 50) and A_st == pytest.approx(A1)
    assert eta_A([0.0, 1.0, 1.0], [0.0, 0.0, 2.0]) == pytest.approx([0.0, np.inf, 0.25])
    with pytest.raises(SpectralEdgeError):
        adiabatic(dG, g, eta, time_base="per_epoch")  # type: ignore[arg-type]
    with pytest.raises(SpectralEdgeError):
        eta_A(-1.0, 1.0)
