"""Predictors: the theory's formulas evaluated on measured per-checkpoint inputs (d, h, G, ‖ΔG‖, α, …).

Every formula comes from a sympy export of ``theory/`` through ``numerics.compile.compile_expr``; nothing is re-typed
here. Inputs are measurements: d_j = σ_j from the window spectrum (σ units, ``numerics.spectrum``), h_j = v_jᵀHv_j
and G_j = ⟨∇L, v_j⟩ from ``numerics.probes``, ‖ΔG‖_F from the extended Gram (σ² units), α_j from
``numerics.stability``.

Units of time [theory reference §7.2, S]: the theory's t counts optimizer steps and η is the per-step learning rate.
Checkpoint data are differences over Δs steps, so every predictor takes ``delta_s`` and uses η_eff = η·Δs
(``theory.adiabatic.effective_eta``, a quasi-static approximation); rates are then per checkpoint interval and
integration times are in checkpoint intervals. ``delta_s=1`` is the per-step reading.

Units of d and the two variants of the flow [theory reference §0.1 errata 2, 3; registry quantities ``mode_flow``,
``normal_form_kappa``]: d = σ (singular values of the window, σ units; λ = σ² are Gram eigenvalues).
``variant="corrected"`` (the default) is the unit-consistent flow σ̇ = −η(h+ω)σ + η²W G²/σ, its fixed point
σ* = |G|·√(ηW/(h+ω)), Thm 14.2 with η²W in Term 3, and κ = η(h̄+ω) + η²W(G₁²+G₂²)/(2d̄²).
``variant="quoted"`` is the published (F), ḋ = −η(h+ω)d + ηW G²/d with d = σ, whose two terms scale differently
under a change of parameter or loss units, and the quoted κ = η(h̄+ω). Both stay available so that the runs can
decide between them.

Mode indexing: arrays d, h, G carry modes on their last axis, mode j = 1 at index 0 (descending σ); k* is
1-indexed as everywhere in the package (``theory.kstar``), so the gap pair (k*, k*+1) is indices (k*−1, k*).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.integrate import solve_ivp

from numerics.compile import Backend, compile_expr
from numerics.errors import ShapeMismatchError, SpectralEdgeError
from theory import adiabatic as _adiabatic
from theory import gap_flow as _gap_flow
from theory import loss_decomposition as _loss
from theory import normal_form as _normal_form
from theory import signal_flow as _signal_flow
from theory import symbols as S

__all__ = [
    "FLOW_VARIANT_NAMES",
    "GapIntegration",
    "ModeIntegration",
    "adiabatic",
    "closed_form_d_squared",
    "eta_A",
    "integrate_gap",
    "integrate_modes",
    "integrate_normal_form",
    "mode_fixed_point",
    "mode_loss_contributions",
    "normal_form_equilibrium",
    "normal_form_kappa",
    "normal_form_prediction",
    "predict_gap_rate",
    "predict_mode_rates",
]

Array = Any  # numpy array-like or torch tensor, per the backend
Variant = Literal["corrected", "quoted"]

#: The flow variants every (F)-based predictor accepts; "corrected" is the default (errata 2).
FLOW_VARIANT_NAMES: tuple[str, ...] = ("corrected", "quoted")


# --- helpers -------------------------------------------------------------------------------------------------------


def _eta_eff(eta: Any, delta_s: Any, backend: Backend = "numpy") -> Any:
    """η_eff = η·Δs (``theory.adiabatic``, theory reference §7.2 [S]).

    Scalars go through ``effective_eta`` (which checks η > 0, Δs ≥ 1); arrays and tensors (e.g. an η that carries
    autograd) through the compiled ``ETA_EFFECTIVE``, so no float() conversion breaks broadcasting or gradients.
    """
    if np.ndim(eta) == 0 and np.ndim(delta_s) == 0 and not isinstance(eta, torch.Tensor) \
            and not isinstance(delta_s, torch.Tensor):
        try:
            return _adiabatic.effective_eta(eta, delta_s)
        except ValueError as exc:
            raise SpectralEdgeError(str(exc)) from exc
    return compile_expr(_adiabatic.ETA_EFFECTIVE, (S.eta, S.Delta_s), backend)(eta, delta_s)


def _check_variant(variant: str) -> str:
    if variant not in FLOW_VARIANT_NAMES:
        raise SpectralEdgeError(f"variant must be one of {FLOW_VARIANT_NAMES}, got {variant!r}")
    return variant


def _flow_expr(variant: str) -> Any:
    return _signal_flow.FLOW_VARIANTS[_check_variant(variant)][0]


def _pair(x: Array, kstar: Any, what: str) -> tuple[Array, Array]:
    """(x_{k*}, x_{k*+1}) along the last axis, k* 1-indexed (an int or an integer array of the leading shape)."""
    n = x.shape[-1]
    if isinstance(x, torch.Tensor):
        k = torch.as_tensor(kstar, device=x.device)
        if k.is_floating_point() or k.is_complex():
            raise SpectralEdgeError(f"k* must be an integer (1-indexed), got {kstar!r}")
        if torch.any(k < 1) or torch.any(k + 1 > n):
            raise SpectralEdgeError(f"k* must be in [1, {n - 1}] for {n} modes of {what}, got {kstar}")
        if k.dim() == 0:
            return x[..., k - 1], x[..., k]
        idx = (k - 1).unsqueeze(-1).expand(*x.shape[:-1], 1)
        return x.gather(-1, idx).squeeze(-1), x.gather(-1, idx + 1).squeeze(-1)
    k = np.asarray(kstar)
    if not np.issubdtype(k.dtype, np.integer):
        raise SpectralEdgeError(f"k* must be an integer (1-indexed), got {kstar!r}")
    if np.any(k < 1) or np.any(k + 1 > n):
        raise SpectralEdgeError(f"k* must be in [1, {n - 1}] for {n} modes of {what}, got {kstar}")
    if k.ndim == 0:
        return x[..., int(k) - 1], x[..., int(k)]
    idx = np.broadcast_to((k - 1)[..., None], (*x.shape[:-1], 1))
    return np.take_along_axis(x, idx, -1)[..., 0], np.take_along_axis(x, idx + 1, -1)[..., 0]


def _require_positive(what: str, x: Array) -> None:
    """Formulas that divide by d, or need a stable mode (h + ω > 0), reject the inputs that break them."""
    bad = bool(torch.any(x <= 0)) if isinstance(x, torch.Tensor) else bool(np.any(np.asarray(x) <= 0))
    if bad:
        raise SpectralEdgeError(f"{what} must be > 0 everywhere, got {x!r}")


def _as_modes(backend: Backend, **arrays: Any) -> dict[str, Array]:
    """Convert to float64 numpy (or tensors for torch) and check that the mode axes agree."""
    if backend == "torch":
        out = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=torch.float64)
               for k, v in arrays.items()}
    else:
        out = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    if any(len(s) == 0 for s in shapes.values()) or len({s[-1] for s in shapes.values()}) != 1:
        raise ShapeMismatchError(f"per-mode inputs need the same number of modes on their last axis, got {shapes}")
    return out


# --- rates ---------------------------------------------------------------------------------------------------------


def predict_mode_rates(d: Array, h: Array, G: Array, eta: Any, omega: Any, W: Any, delta_s: Any = 1,
                       backend: Backend = "numpy", variant: Variant = "corrected") -> Array:
    """σ̇_j for every mode under the flow (F).

    ``variant="corrected"`` (default, [R] errata 2): σ̇ = −η(h+ω)σ + η²W G²/σ
    (``theory.signal_flow.FLOW_RHS_CORRECTED``); ``"quoted"`` ([C] theory reference §3.3): ḋ = −η(h+ω)d + ηW G²/d
    (``FLOW_RHS``). d in σ units; the rate is in σ per checkpoint interval with η → η·Δs (per optimizer step for
    Δs = 1).
    """
    m = _as_modes(backend, d=d, h=h, G=G)
    _require_positive("d (signal strengths σ_j; the flow divides by d)", m["d"])
    f = compile_expr(_flow_expr(variant), _signal_flow.FLOW_ARGS, backend)
    return f(m["d"], m["h"], m["G"], _eta_eff(eta, delta_s, backend), omega, W)


def predict_gap_rate(d: Array, h: Array, G: Array, kstar: Any, eta: Any, omega: Any, W: Any, delta_s: Any = 1,
                     backend: Backend = "numpy", variant: Variant = "corrected") -> dict[str, Array]:
    """Predicted dg/dt at the gap (k*, k*+1) and its three terms (Thm 14.2, ``theory.gap_flow``, theory reference §3.4
    [C]).

        ġ = −η(h₁−h₂)d̄ − η(h̄+ω)g + η²W(G₁²/d₁ − G₂²/d₂),   1 = k*, 2 = k*+1     (variant="corrected", default)
        ġ = −η(h₁−h₂)d̄ − η(h̄+ω)g + ηW(G₁²/d₁ − G₂²/d₂)                       (variant="quoted", [C])

    The corrected Term 3 carries η²W in σ units (theory reference §0.1 errata 2, [R]; ``GAP_FLOW_TERMS_CORRECTED``).

    ``d, h, G``: per-mode arrays (modes on the last axis, leading axes e.g. checkpoints), ``kstar`` 1-indexed (int,
    or one per leading index). η → η_eff = η·Δs: with checkpoint data every rate is σ per checkpoint interval.
    Returns {"rate", "curvature_asymmetry", "damping", "gradient_driving", "g", "eta_eff"}; "rate" is the sum of
    the three terms and equals ḋ_{k*} − ḋ_{k*+1} of ``predict_mode_rates`` (same variant) exactly.
    """
    m = _as_modes(backend, d=d, h=h, G=G)
    _require_positive("d (signal strengths σ_j; the gap flow divides by d)", m["d"])
    (d1, d2), (h1, h2), (G1, G2) = (_pair(m[k], kstar, k) for k in ("d", "h", "G"))
    terms, rhs = _gap_flow.GAP_FLOW_VARIANTS[_check_variant(variant)]
    exprs = {**terms, "rate": rhs}
    eta_eff = _eta_eff(eta, delta_s, backend)
    out = compile_expr(exprs, _gap_flow.GAP_FLOW_ARGS, backend)(d1, d2, h1, h2, G1, G2, eta_eff, omega, W)
    return {**out, "g": d1 - d2, "eta_eff": eta_eff}


# --- forward integration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeIntegration:
    """d_j(t) under (F) from a measured state: ``t`` (n_t,) in checkpoint intervals (steps for Δs = 1), ``d``
    (n_modes, n_t) in σ units. ``success``/``message`` from ``solve_ivp``; ``t`` ends early if a mode hit 0."""

    t: np.ndarray
    d: np.ndarray
    success: bool
    message: str


@dataclass(frozen=True)
class GapIntegration:
    """The gap pair under (F): g(t) = d_{k*} − d_{k*+1} and d̄(t) (σ units), ``t`` in checkpoint intervals.

    ``crossing_time``: the first t with g = 0 (a level crossing, k* relabels; (F) has no level repulsion), else
    None. The integration stops there.
    """

    t: np.ndarray
    g: np.ndarray
    d_bar: np.ndarray
    crossing_time: float | None
    success: bool
    message: str


def _solve(rhs: Any, y0: np.ndarray, t_span: tuple[float, float], t_eval: Sequence[float] | None, events: Any,
           method: str, rtol: float, atol: float) -> Any:
    sol = solve_ivp(rhs, t_span, y0, t_eval=None if t_eval is None else np.asarray(t_eval, dtype=np.float64),
                    events=events, method=method, rtol=rtol, atol=atol)
    # a terminal event before the first t_eval point leaves solve_ivp's y an empty list: keep it (n_state, 0)
    sol.t = np.asarray(sol.t, dtype=np.float64)
    sol.y = np.asarray(sol.y, dtype=np.float64).reshape(len(y0), -1)
    return sol


def integrate_modes(d0: Array, h: Array, G: Array, eta: float, omega: float, W: float,
                    t_span: tuple[float, float], *, t_eval: Sequence[float] | None = None, delta_s: float = 1,
                    method: str = "RK45", rtol: float = 1e-9, atol: float = 1e-12,
                    variant: Variant = "corrected") -> ModeIntegration:
    """Integrate (F) from d(t₀) = d0 with h, G frozen at their measured values.

    ``variant="corrected"`` (default, errata 2 [R]): σ̇ = −η(h+ω)σ + η²W G²/σ; ``"quoted"`` [C]:
    ḋ = −η(h+ω)d + ηW G²/d. ``scipy.integrate.solve_ivp`` on the compiled flow (theory reference §3.3); η → η·Δs, so
    ``t_span``/``t_eval`` are in checkpoint intervals (optimizer steps for Δs = 1). d in σ units. The closed form
    of the squared flow (``theory.signal_flow.closed_form_d_squared``) is the check (tests).
    """
    m = _as_modes("numpy", d=d0, h=h, G=G)
    if any(v.ndim != 1 for v in m.values()):
        raise ShapeMismatchError("integrate_modes takes 1-D per-mode arrays d0, h, G (one state)")
    if np.any(m["d"] <= 0):
        raise SpectralEdgeError(f"signal strengths must be > 0 (singular values), got d0 = {m['d']}")
    f = compile_expr(_flow_expr(variant), _signal_flow.FLOW_ARGS, "numpy")
    eta_eff = float(_eta_eff(eta, delta_s))

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        return f(y, m["h"], m["G"], eta_eff, omega, W)

    def hits_zero(_t: float, y: np.ndarray) -> float:
        return float(np.min(y))  # (F) is singular at d = 0: stop rather than step through it

    hits_zero.terminal = True  # type: ignore[attr-defined]
    sol = _solve(rhs, m["d"], t_span, t_eval, hits_zero, method, rtol, atol)
    return ModeIntegration(t=sol.t, d=sol.y, success=bool(sol.success), message=str(sol.message))


def integrate_gap(d: Array, h: Array, G: Array, kstar: int, eta: float, omega: float, W: float,
                  t_span: tuple[float, float], *, t_eval: Sequence[float] | None = None, delta_s: float = 1,
                  method: str = "RK45", rtol: float = 1e-9, atol: float = 1e-12,
                  variant: Variant = "corrected") -> GapIntegration:
    """Forward-integrate the gap flow (Thm 14.2) from a measured spectrum: the pair (k*, k*+1) under (F).

    ``variant="corrected"`` (default): the corrected flow with η²W in the driving term (errata 2 [R]);
    ``"quoted"``: the published (F) [C].

    Thm 14.2 is not closed in g (it involves d̄), and it is *exactly* ḋ_{k*} − ḋ_{k*+1} of (F) (theory reference §3.4
    [R]), so the pair's two modes are integrated under (F) and g = d₁ − d₂, d̄ = (d₁ + d₂)/2 reported. h, G are
    frozen at their measured values; η → η·Δs (t in checkpoint intervals). Stops at a level crossing (g = 0).
    """
    m = _as_modes("numpy", d=d, h=h, G=G)
    if any(v.ndim != 1 for v in m.values()):
        raise ShapeMismatchError("integrate_gap takes 1-D per-mode arrays d, h, G (one spectrum)")
    pair = {k: np.array(_pair(v, int(kstar), k)) for k, v in m.items()}
    if pair["d"][0] <= pair["d"][1] or pair["d"][1] <= 0:
        raise SpectralEdgeError(f"need d_k* > d_k*+1 > 0 at the start, got {pair['d']}")
    f = compile_expr(_flow_expr(variant), _signal_flow.FLOW_ARGS, "numpy")
    eta_eff = float(_eta_eff(eta, delta_s))

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        return f(y, pair["h"], pair["G"], eta_eff, omega, W)

    def crossing(_t: float, y: np.ndarray) -> float:
        return float(y[0] - y[1])

    crossing.terminal = True  # type: ignore[attr-defined]
    crossing.direction = -1  # type: ignore[attr-defined]
    sol = _solve(rhs, pair["d"], t_span, t_eval, crossing, method, rtol, atol)
    hit = sol.t_events[0]
    return GapIntegration(t=sol.t, g=sol.y[0] - sol.y[1], d_bar=(sol.y[0] + sol.y[1]) / 2,
                          crossing_time=float(hit[0]) if len(hit) else None, success=bool(sol.success),
                          message=str(sol.message))


# --- near-collapse normal form -------------------------------------------------------------------------------------


def normal_form_prediction(d: Array, h: Array, G: Array, kstar: int, eta: float, omega: float, W: float,
                           rho: float = 0.0, delta_s: float = 1, variant: Variant = "corrected") -> dict[str, Any]:
    """Coefficients, equilibrium and regime of ġ = c − κg + ρ/g at the gap (Prop 14.4, ``theory.normal_form``).

    ``variant="corrected"`` (default, errata 2–3 [R]): c = ``C_AT_COLLAPSE_CORRECTED`` (η²W in the driving part),
    κ = ``KAPPA_CORRECTED`` = η(h̄+ω) + η²W(G₁²+G₂²)/(2d̄²) (−∂ġ/∂g at g = 0, fixed d̄); ``"quoted"`` [C]:
    c = ``C_AT_COLLAPSE``, κ = ``KAPPA_QUOTED`` = η(h̄+ω). c in σ per interval, κ per interval, ρ ≥ 0 the
    level-repulsion strength (σ² per interval; measured elsewhere, ``theory.dyson``). Returns {"c", "kappa",
    "rho", "g_star" (``G_STAR`` = c/κ, meaningful for c > 0), "g_plus" (``G_PLUS``), "regime"
    (``classify_normal_form``), "g", "variant"}; η → η·Δs. Source: [C] statement, [R] normal form (theory reference
    §3.5).
    """
    _check_variant(variant)
    m = _as_modes("numpy", d=d, h=h, G=G)
    (d1, d2), (h1, h2), (G1, G2) = (_pair(m[k], int(kstar), k) for k in ("d", "h", "G"))
    eta_eff = _eta_eff(eta, delta_s)
    c_expr = _normal_form.C_AT_COLLAPSE_CORRECTED if variant == "corrected" else _normal_form.C_AT_COLLAPSE
    c_val = float(compile_expr(c_expr, _normal_form.C_ARGS, "numpy")(d1, d2, h1, h2, G1, G2, eta_eff, omega, W))
    kappa_val = float(normal_form_kappa((h1 + h2) / 2, omega, G1, G2, (d1 + d2) / 2, eta, W, variant=variant,
                                        delta_s=delta_s))
    g_now = float(d1 - d2)
    eq = compile_expr({"g_star": _normal_form.G_STAR, "g_plus": _normal_form.G_PLUS}, _normal_form.NORMAL_FORM_ARGS,
                      "numpy")(g_now, c_val, kappa_val, rho)
    try:
        regime = _normal_form.classify_normal_form(c_val, kappa_val, rho)
    except ValueError as exc:  # κ ≤ 0 (no damping) or the marginal c = ρ = 0: no regime, say why
        regime = f"undefined: {exc}"
    return {"c": c_val, "kappa": kappa_val, "rho": float(rho), "g_star": float(eq["g_star"]),
            "g_plus": float(eq["g_plus"]), "regime": regime, "g": g_now, "variant": variant}


def normal_form_kappa(hbar: Array, omega: Any, G1: Array, G2: Array, dbar: Array, eta: Any, W: Any,
                      variant: Variant = "corrected", *, delta_s: Any = 1) -> np.ndarray:
    """κ of the near-collapse normal form ġ = c − κg + ρ/g, vectorised (registry quantity ``normal_form_kappa``).

    ``variant="corrected"`` (default; theory reference §0.1 errata 3 with the η² of errata 2, [R];
    ``KAPPA_CORRECTED``)::

        κ = −∂ġ/∂g |_{g=0, d̄ fixed} = η(h̄+ω) + η²W(G₁²+G₂²)/(2d̄²)   ≈ 2η(h̄+ω) near the fixed points

    ``variant="quoted"`` ([C] Prop 14.4; ``KAPPA_QUOTED``): κ = η(h̄+ω) (G₁, G₂, d̄, W unused). Units: h̄, ω
    curvature, G gradient projections, d̄ = (d₁+d₂)/2 in σ units; κ is a rate per optimizer step, per checkpoint
    interval with η → η·Δs (``delta_s``). Inputs broadcast; d̄ must be > 0 for the corrected form.
    """
    expr = _normal_form.KAPPA_PAIR_VARIANTS[_check_variant(variant)]
    if variant == "corrected":
        _require_positive("d̄ (mean signal strength of the gap pair, σ units)", np.asarray(dbar, dtype=np.float64))
    f = compile_expr(expr, _normal_form.KAPPA_PAIR_ARGS, "numpy")
    return f(hbar, omega, G1, G2, dbar, _eta_eff(eta, delta_s), W)


def normal_form_equilibrium(c: Array, kappa: Array) -> np.ndarray:
    """g* = c/κ, the ρ = 0 equilibrium of ġ = c − κg (``theory.normal_form.G_STAR``, [C] Prop 14.4), vectorised.

    σ units when c is σ per interval and κ per interval. Pass κ from ``normal_form_kappa``: the corrected κ gives
    the corrected g* (errata 3); the quoted g* = c/(η(h̄+ω)) is c over the quoted κ, about twice too large near the
    fixed points. NaN where κ ≤ 0 (no damped equilibrium); meaningful as a gap only for c > 0.
    """
    cv, kv = np.asarray(c, dtype=np.float64), np.asarray(kappa, dtype=np.float64)
    out = compile_expr(_normal_form.G_STAR, (S.c, S.kappa), "numpy")(cv, np.where(kv > 0, kv, np.nan))
    return np.where(kv > 0, out, np.nan)


def mode_fixed_point(G: Array, h: Array, omega: Any, eta: Any, W: Any, variant: Variant = "corrected", *,
                     delta_s: Any = 1) -> np.ndarray:
    """Per-mode fixed point of the flow (F), σ units, vectorised over modes (registry quantity ``mode_flow``).

    ``variant="corrected"`` (default; theory reference §0.1 errata 2, [R];
    ``theory.signal_flow.FIXED_POINT_CORRECTED``)::

        σ_j* = |G_j|·√(ηW/(h_j+ω))        fixed point of σ̇ = −η(h+ω)σ + η²W G²/σ

    ``variant="quoted"`` ([C] §3.3, (F) with d = σ and ηW·G²/d; ``FIXED_POINT``): d_j* = |G_j|·√(W/(h_j+ω)),
    which does not depend on η. η → η·Δs (``delta_s``) for checkpoint windows, matching the rates. NaN where
    h_j + ω ≤ 0 (no stable fixed point). Returns float64 of the broadcast shape of G and h.
    """
    expr = _signal_flow.FLOW_VARIANTS[_check_variant(variant)][2]
    Gv, hv = np.asarray(G, dtype=np.float64), np.asarray(h, dtype=np.float64)
    damping = hv + np.asarray(omega, dtype=np.float64)
    stable = damping > 0
    h_safe = np.where(stable, hv, 1.0 - np.asarray(omega, dtype=np.float64))  # any value with h + ω > 0
    out = compile_expr(expr, (S.G, S.h, S.omega, S.eta, S.W), "numpy")(Gv, h_safe, omega, _eta_eff(eta, delta_s), W)
    return np.where(stable, out, np.nan)


def integrate_normal_form(g0: float, c: float, kappa: float, rho: float, t_span: tuple[float, float], *,
                          t_eval: Sequence[float] | None = None, method: str = "RK45", rtol: float = 1e-9,
                          atol: float = 1e-12) -> GapIntegration:
    """Integrate ġ = c − κg + ρ/g (``theory.normal_form.NORMAL_FORM_RHS``, theory reference §3.5 [R]) from
    g(t₀) = g0 > 0.

    c, κ, ρ in the units of ``normal_form_prediction`` (t in the same intervals). Stops if g reaches 0
    (finite-time collapse for ρ = 0, c < 0); ``d_bar`` is NaN (the normal form does not track it).
    """
    if g0 <= 0:
        raise SpectralEdgeError(f"the normal form starts from a positive gap, got g0 = {g0}")
    f = compile_expr(_normal_form.NORMAL_FORM_RHS, _normal_form.NORMAL_FORM_ARGS, "numpy")

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        return np.atleast_1d(f(y[0], c, kappa, rho))

    def collapse(_t: float, y: np.ndarray) -> float:
        return float(y[0])

    collapse.terminal = True  # type: ignore[attr-defined]
    collapse.direction = -1  # type: ignore[attr-defined]
    sol = _solve(rhs, np.array([float(g0)]), t_span, t_eval, collapse, method, rtol, atol)
    hit = sol.t_events[0]
    return GapIntegration(t=sol.t, g=sol.y[0], d_bar=np.full_like(sol.t, np.nan),
                          crossing_time=float(hit[0]) if len(hit) else None, success=bool(sol.success),
                          message=str(sol.message))


# --- adiabatic parameter -------------------------------------------------------------------------------------------


def adiabatic(dG_norm: Array, g: Array, eta: Any, delta_s: Any = 1, form: Literal["deltaG", "kdot"] = "deltaG", *,
              thresholds: tuple[float, float] = (0.1, 10.0),
              on_zero_gap: Literal["raise", "inf"] = "raise",
              time_base: Literal["per_checkpoint", "per_step"] = "per_checkpoint") -> tuple[Any, Any]:
    """(A, regime) with A = ‖ΔG‖_F/(η g²) (``form="deltaG"``, ``theory.adiabatic.A_DELTA_G``, the default) or
    A = ‖K̇‖/(η g²) (``form="kdot"``, ``A_KDOT``; then the first argument is ‖K̇‖), theory reference §1.6 [A].

    Units: ‖ΔG‖_F in σ² (Gram) units, g in σ units, η per optimizer step. A carries 1/η (theory reference §0.1
    errata 4), so its value and regime depend on the time base (registry quantity ``adiabatic_time_base``):
    ``time_base="per_checkpoint"`` (default) uses η → η·Δs, A per checkpoint interval of ``delta_s`` optimizer
    steps (the window shift; this divides A by Δs); ``"per_step"`` uses η as given, the literal formula applied to
    checkpoint data (``delta_s`` is then ignored). The unit-free number is ηA = ``eta_A(dG_norm, g)``; report it
    beside A. ``regime`` is
    ``theory.adiabatic.regime`` per element: "plateau" (A < low), "transition", "forgetting" (A > high), with
    ``thresholds = (low, high)`` ([S], default one decade either side of 1). Scalars give (float, str); arrays
    broadcast and give (float64 array, object array of str). g = 0 (a collapsed gap) makes A undefined: it raises
    by default; ``on_zero_gap="inf"`` returns A = inf there (0 if the norm is 0 too), as
    ``theory.adiabatic.a_delta_g`` does, for scans over whole trajectories.
    """
    forms = {"deltaG": (_adiabatic.A_DELTA_G, _adiabatic.ARGS),
             "kdot": (_adiabatic.A_KDOT, (S.Kdot_norm, *_adiabatic.ARGS[1:]))}
    if form not in forms:
        raise SpectralEdgeError(f"form must be 'deltaG' or 'kdot', got {form!r}")
    expr, args = forms[form]
    if time_base not in ("per_checkpoint", "per_step"):
        raise SpectralEdgeError(f"time_base must be 'per_checkpoint' or 'per_step', got {time_base!r}")
    if time_base == "per_step":
        delta_s = 1
    norm, gap = np.asarray(dG_norm, dtype=np.float64), np.asarray(g, dtype=np.float64)
    if np.any(norm < 0) or np.any(gap < 0):
        raise SpectralEdgeError(f"the norm and g must be ≥ 0, got norm={dG_norm!r}, g={g!r}")
    if on_zero_gap not in ("raise", "inf"):
        raise SpectralEdgeError(f"on_zero_gap must be 'raise' or 'inf', got {on_zero_gap!r}")
    if on_zero_gap == "raise" and np.any(gap == 0):
        where = np.argwhere(gap == 0).tolist() if gap.ndim else "the scalar input"
        raise SpectralEdgeError(f"g = 0 (collapsed gap) at {where}: A = norm/(η g²) is undefined; "
                                "pass on_zero_gap='inf' to get A = inf there")
    values = {args[0]: norm, S.eta: _eta_eff(eta, delta_s), S.g: gap}
    with np.errstate(divide="ignore", invalid="ignore"):  # g = 0 is a legitimate (collapsed) measurement
        A = compile_expr(expr, args, "numpy")(*(values[a] for a in args))
    A = np.where((gap == 0) & (norm == 0), 0.0, A)
    low, high = thresholds
    if A.ndim == 0:
        return float(A), _adiabatic.regime(float(A), low, high)
    return A, np.vectorize(lambda a: _adiabatic.regime(a, low, high), otypes=[object])(A)


def eta_A(dG_F: Array, g: Array) -> Any:
    """ηA = ‖ΔG‖_F/g², the unit-free adiabatic number per window shift (theory reference §0.1 errata 4, [R]).

    ``theory.adiabatic.ETA_A``. ‖ΔG‖_F in σ² (Gram) units and g in σ units, so ηA is dimensionless and free of the
    η and Δs conventions (it is what enters 1 − α_{k*} = (ηA)²g²/(4d̄²)). Scalars give a float; arrays broadcast.
    g = 0 gives inf (0 if ‖ΔG‖_F = 0 too); negative inputs raise.
    """
    norm, gap = np.asarray(dG_F, dtype=np.float64), np.asarray(g, dtype=np.float64)
    if np.any(norm < 0) or np.any(gap < 0):
        raise SpectralEdgeError(f"‖ΔG‖_F and g must be ≥ 0, got {dG_F!r}, {g!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = compile_expr(_adiabatic.ETA_A, (S.dG_norm, S.g), "numpy")(norm, gap)
    out = np.where((gap == 0) & (norm == 0), 0.0, np.where(gap == 0, np.inf, out))
    return float(out) if out.ndim == 0 else out


# --- loss decomposition --------------------------------------------------------------------------------------------


def mode_loss_contributions(alpha: Array, G_tr: Array, G_val: Array, eta: Any, W: Any, delta_s: Any = 1,
                            backend: Backend = "numpy") -> Array:
    """Per-mode first-order validation-loss change −ηW·α_j·G_j^tr·G_j^val (theory reference §3.7 [P operational, R
    derivation]).

    ``theory.loss_decomposition.MODE_LOSS_CONTRIBUTION`` evaluated per mode (per-mode arrays, modes on the last
    axis). Negative = mode j reduces the validation loss. Units: loss per window (η → η·Δs for checkpoint
    windows). The exact constant and the cross terms are [S].
    """
    m = _as_modes(backend, alpha=alpha, G_tr=G_tr, G_val=G_val)
    values = {S.alpha: m["alpha"], S.G_tr: m["G_tr"], S.G_val: m["G_val"], S.eta: _eta_eff(eta, delta_s, backend),
              S.W: W}
    f = compile_expr(_loss.MODE_LOSS_CONTRIBUTION, _loss.MODE_LOSS_ARGS, backend)
    return f(*(values[a] for a in _loss.MODE_LOSS_ARGS))


# --- closed form ---------------------------------------------------------------------------------------------------


def closed_form_d_squared(d0: Array, h: Array, G: Array, eta: float, omega: float, W: float, t: Array,
                          delta_s: float = 1, variant: Variant = "corrected") -> np.ndarray:
    """d²(t) = d*² + (d0² − d*²)e^{−2η(h+ω)t} (``theory.signal_flow.closed_form_d_squared``, theory reference §3.3 [R]).

    d*² = ηW G²/(h+ω) for ``variant="corrected"`` (default, errata 2), W G²/(h+ω) for ``"quoted"``.
    σ² units; t in checkpoint intervals with η → η·Δs. Broadcasts (e.g. d0, h, G (n,) with t (n_t, 1)).
    Needs h + ω > 0 (a stable mode: the fixed point d*² = W G²/(h+ω) exists only then).
    """
    _require_positive("h + ω (the fixed point needs a stable mode)", np.asarray(h, dtype=np.float64) + omega)
    f = compile_expr(_closed_form_expr(_check_variant(variant)), (S.d0, *_signal_flow.FLOW_ARGS[1:], S.t), "numpy")
    return f(d0, h, G, _eta_eff(eta, delta_s), omega, W, t)


@functools.cache
def _closed_form_expr(variant: str) -> Any:
    # Built once per variant, so compile_expr's identity fast path applies on every call.
    return _signal_flow.closed_form_d_squared(S.d0, variant=variant)
