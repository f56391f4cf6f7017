"""numerics.compile: compiled sympy agrees with sympy's own evaluation, in numpy and torch, gradients included."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.compile import compile_expr
from numerics.errors import SpectralEdgeError
from theory import adiabatic, gap_flow, loss_decomposition, normal_form, signal_flow
from theory import symbols as S
from theory.symbols import G, W, d, eta, h, omega, t

ARGS = (d, h, G, eta, omega, W, t)
# Shapes the theory formulas use: Abs, sqrt, exp, log, rational powers, Max, Piecewise-free products.
EXPRS = {
    "flow": -eta * (h + omega) * d + eta * W * sp.Abs(G) ** 2 / d,
    "fixed_point": sp.Abs(G) * sp.sqrt(W / (h + omega)),
    "closed_form": G**2 * W / (h + omega) + (d**2 - G**2 * W / (h + omega)) * sp.exp(-2 * eta * (h + omega) * t),
    "mixed": sp.log(d) * sp.Rational(1, 3) + d ** sp.Rational(3, 2) - sp.Max(G, 0) * sp.exp(-t),
}

positive = st.floats(0.1, 5.0)
real = st.floats(-3.0, 3.0)
point = st.tuples(positive, positive, real, positive, st.floats(0.0, 2.0), st.integers(2, 20), st.floats(0.0, 3.0))


def sympy_value(expr: sp.Expr, values: tuple[float, ...]) -> float:
    return float(expr.subs(dict(zip(ARGS, values, strict=True))).evalf(30))


@settings(max_examples=12)
@given(point)
@pytest.mark.parametrize("name", sorted(EXPRS))
def test_numpy_and_torch_match_sympy_evaluation(name: str, values: tuple[float, ...]) -> None:
    expr = EXPRS[name]
    expected = sympy_value(expr, values)
    got_np = compile_expr(expr, ARGS, "numpy")(*values)
    assert isinstance(got_np, np.ndarray) and got_np.dtype == np.float64
    assert got_np == pytest.approx(expected, rel=1e-10, abs=1e-12)
    got_t = compile_expr(expr, ARGS, "torch")(*values)
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float64
    assert got_t.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@settings(max_examples=8)
@given(point)
@pytest.mark.parametrize("name", ["flow", "fixed_point", "closed_form"])
def test_torch_gradients_match_sympy_diff(name: str, values: tuple[float, ...]) -> None:
    expr = EXPRS[name]
    xs = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in values]
    compile_expr(expr, ARGS, "torch")(*xs).backward()
    for sym, x in zip(ARGS, xs, strict=True):
        expected = sympy_value(sp.diff(expr, sym), values)
        grad = 0.0 if x.grad is None else x.grad.item()  # None: the expression does not depend on this symbol
        assert grad == pytest.approx(expected, rel=1e-9, abs=1e-10), sym


def test_numpy_broadcasts_including_constants() -> None:
    f = compile_expr([EXPRS["flow"], sp.Integer(0), eta * W], ARGS, "numpy")
    dd = np.linspace(0.5, 2.0, 4)
    out = f(dd, np.array([[0.1], [0.2], [0.3]]), 1.0, 0.01, 0.1, 10, 0.0)
    assert out.shape == (3, 3, 4)
    assert np.all(out[1] == 0.0) and np.allclose(out[2], 0.1)
    # integer inputs are promoted: d**-1 must not raise "integers to negative integer powers"
    assert compile_expr(1 / d, [d], "numpy")(np.array([1, 2, 4])) == pytest.approx([1.0, 0.5, 0.25])


def test_torch_outputs_stack_keep_autograd_and_dtype() -> None:
    dd = torch.linspace(0.5, 2.0, 5, dtype=torch.float32, requires_grad=True)
    f = compile_expr([EXPRS["flow"], sp.Integer(0)], ARGS, "torch")
    out = f(dd, 0.2, 1.0, 0.01, 0.1, 10, 0.0)
    assert out.shape == (2, 5) and out.dtype == torch.float32 and out.requires_grad
    out[0].sum().backward()
    expected = -0.01 * 0.3 - 0.01 * 10 * 1.0 / dd.detach() ** 2
    assert torch.allclose(dd.grad, expected)


def test_mapping_gives_dict_and_max_is_elementwise_in_torch() -> None:
    f = compile_expr({"pos": sp.Max(G, 0), "neg": sp.Min(G, 0)}, [G], "torch")
    out = f(torch.tensor([-1.0, 2.0], dtype=torch.float64))
    assert set(out) == {"pos", "neg"}
    assert out["pos"].tolist() == [0.0, 2.0] and out["neg"].tolist() == [-1.0, 0.0]
    out_np = compile_expr({"pos": sp.Max(G, 0)}, [G], "numpy")(np.array([-1.0, 2.0]))
    assert out_np["pos"].tolist() == [0.0, 2.0]


def test_cache_returns_the_same_callable() -> None:
    f1 = compile_expr(EXPRS["flow"], ARGS, "numpy")
    rebuilt = -eta * (h + omega) * d + eta * W * sp.Abs(G) ** 2 / d
    assert compile_expr(rebuilt, list(ARGS), "numpy") is f1
    assert compile_expr(EXPRS["flow"], ARGS, "torch") is not f1
    assert compile_expr(EXPRS["flow"], ARGS[::-1], "numpy") is not f1
    # Same name, other assumptions: another symbol, another function.
    x_pos, x_any = sp.Symbol("x", positive=True), sp.Symbol("x")
    assert compile_expr(sp.Abs(x_pos), [x_pos], "numpy") is not compile_expr(sp.Abs(x_any), [x_any], "numpy")
    m1 = compile_expr({"a": d, "b": h}, [d, h], "numpy")
    assert compile_expr({"a": d, "b": h}, [d, h], "numpy") is m1
    assert compile_expr({"b": d, "a": h}, [d, h], "numpy") is not m1


def test_errors_name_the_problem() -> None:
    with pytest.raises(SpectralEdgeError, match="free symbols"):
        compile_expr(d + h, [d], "numpy")
    with pytest.raises(SpectralEdgeError, match="backend"):
        compile_expr(d, [d], "jax")  # type: ignore[arg-type]
    with pytest.raises(SpectralEdgeError, match="repeated"):
        compile_expr(d, [d, d], "numpy")
    with pytest.raises(SpectralEdgeError, match="takes 2 arguments"):
        compile_expr(d + h, [d, h], "numpy")(1.0)


# --- the theory exports the predictors compile --------------------------------------------------------------------

THEORY = {
    **{f"gap_flow.{k}": (e, gap_flow.GAP_FLOW_ARGS) for k, e in gap_flow.GAP_FLOW_TERMS.items()},
    "gap_flow.GAP_FLOW_RHS": (gap_flow.GAP_FLOW_RHS, gap_flow.GAP_FLOW_ARGS),
    "signal_flow.FLOW_RHS": (signal_flow.FLOW_RHS, signal_flow.FLOW_ARGS),
    "signal_flow.FIXED_POINT": (signal_flow.FIXED_POINT, signal_flow.FLOW_ARGS),
    "signal_flow.closed_form": (signal_flow.closed_form_d_squared(S.d0), (S.d0, *signal_flow.FLOW_ARGS[1:], S.t)),
    "normal_form.NORMAL_FORM_RHS": (normal_form.NORMAL_FORM_RHS, normal_form.NORMAL_FORM_ARGS),
    "normal_form.G_STAR": (normal_form.G_STAR, normal_form.NORMAL_FORM_ARGS),
    "normal_form.G_PLUS": (normal_form.G_PLUS, normal_form.NORMAL_FORM_ARGS),
    "normal_form.C_AT_COLLAPSE": (normal_form.C_AT_COLLAPSE, normal_form.C_ARGS),
    "normal_form.KAPPA": (normal_form.KAPPA, normal_form.KAPPA_ARGS),
    "adiabatic.A_DELTA_G": (adiabatic.A_DELTA_G, adiabatic.ARGS),
    "adiabatic.A_KDOT": (adiabatic.A_KDOT, (S.Kdot_norm, *adiabatic.ARGS[1:])),
    "adiabatic.ETA_EFFECTIVE": (adiabatic.ETA_EFFECTIVE, (S.eta, S.Delta_s)),
    "loss_decomposition.MODE_LOSS_CONTRIBUTION": (loss_decomposition.MODE_LOSS_CONTRIBUTION,
                                                  loss_decomposition.MODE_LOSS_ARGS),
}
SIGNED = {S.G, S.G1, S.G2, S.G_tr, S.G_val, S.c}  # symbols whose sign matters (Abs, G²); the rest drawn positive


def draw(args: tuple[sp.Symbol, ...], seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(rng.uniform(-2.0, 2.0)) if a in SIGNED else float(rng.uniform(0.2, 3.0)) for a in args]


@settings(max_examples=5)
@given(st.integers(0, 2**32 - 1))
@pytest.mark.parametrize("name", sorted(THEORY))
def test_theory_exports_compile_to_sympy_values_and_derivatives(name: str, seed: int) -> None:
    expr, args = THEORY[name]
    values = draw(args, seed)
    at = dict(zip(args, values, strict=True))
    expected = float(expr.subs(at).evalf(30))
    assert float(compile_expr(expr, args, "numpy")(*values)) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    out = compile_expr(expr, args, "torch")(*xs)
    assert out.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    out.backward()
    for a, x in zip(args, xs, strict=True):
        grad = 0.0 if x.grad is None else x.grad.item()
        assert grad == pytest.approx(float(sp.diff(expr, a).subs(at).evalf(30)), rel=1e-9, abs=1e-10), a
