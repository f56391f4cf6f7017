"""Linear-Centroid (LCH) coupling of spectral-edge directions: gradient SED vs update SED (issue 8, part 2).

Source: [P] Xu, gradient-SED note (arXiv 2604.25143; grokking-integrability ``gradient_sed/``), spec
theory reference §1.8 and §5. For a unit direction v in the attention-weight coordinates θ_attn:

    μ_x(θ)  = ∇_emb ℓ_y(θ; x)                                      single-logit centroid, x = (a, b), y its label
    A(v, t) = (1/|X|) Σ_x ‖[μ_x(θ_t + εv) − μ_x(θ_t − εv)] / (2ε)‖²     ε = 0.005·‖θ_attn,t‖, |X| = 1024
    R_k(t)  = A(v_k, t) / median_j A(r_j, t)                          r_j: 20 Gaussian directions, normalised

Units: μ_x is a logit per unit embedding (shape T×d per example); A is in (logit / embedding / θ)², R_k is a ratio.
ε v moves the attention weights only (W_Q, W_K, W_V, W_O of every layer; biases, embeddings, norms, MLPs and
head untouched). "emb" = tok_emb(x) + pos_emb, the input of the first block; the gradient with respect to the
embedding module's output is the same tensor, because the positional term is added.

Two estimators of v_k [P]:

* **update SED**: top-K right singular vectors of the rolling window of W parameter updates δ = θ_s − θ_{s−Δs}
  of the attention group — the spectral monitor's window (``numerics.monitor.SpectralMonitor.gram``);
* **gradient SED**: top-K right singular vectors of the rolling window of the last W loss gradients
  g(τ) = ∇_{θ_attn} L(θ_τ; B) on one fixed batch B (|B| = 512), pushed every ``grad_every`` = 25 steps into the
  same streaming Gram (``numerics.gram.RollingGram``; :class:`GradientWindow`). W = 20, K = 3 (``lch.window``, set
  apart from the monitor's window; W = 1 [R]: v_1 = g/‖g‖, the window's only direction, no Gram).

Reconstructions [R] (where the author's scripts are silent or buggy): both windows *trail* the checkpoint (the
author's scripts slice ``deltas[t:t+W]`` / ``grads[t:t+W]``, a window of the future); the gradient batch B is drawn
from the training split (the author draws pairs from the whole table, test pairs included); the probe set X is
drawn with replacement from train ∪ test pairs as the author's uniform (a, b); every draw (B, X, r_j) comes from
one diagnostics stream of its own (:func:`lch_generator`), so turning the measurement on changes neither the
training run nor the other diagnostics (tested bitwise). Centroids are taken in eval mode (the author's
``model.eval()``); the finite difference is checked against the exact directional derivative (``torch.func.jvp``)
in the tests.

The measurement is wired into the one training loop by ``RunConfig.lch`` (``verify.harness.config.LCHConfig``); each
measurement is a trajectory record of type ``lch``. The claims rows read the stored runs in ``verify/runs/lch`` and
``verify/runs/lch-window`` (helper module ``verify.studies.lch_claims``; :func:`claim_rows` is this study's provider).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.func import functional_call

from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    WindowTooSmallError,
    ZeroWindowError,
)
from numerics.gram import RollingGram
from numerics.layout import ParamLayout
from numerics.probes import measurement_mode
from numerics.spectrum import right_vectors, spectrum_from_gram
from verify.harness.config import CadenceConfig, StrictInt
from verify.harness.measurement import BaseMeasurement, RunContext
from verify.studies.lch_claims import claim_rows
from verify.studies.modes import mode_record

__all__ = [
    "GradientWindow",
    "LCHConfig",
    "LCHMeasurement",
    "LCHProbe",
    "centred_directions",
    "centroid_response",
    "centroids",
    "claim_rows",
    "coupling",
    "lch_generator",
    "lch_seed",
    "unit_directions",
]


# SeedSequence spawn key of the LCH diagnostics stream: a child (3, 8) of the "diag" stream (index 3 of
# verify.harness.config.STREAMS), so it is independent of the diag generator the defect and probes read.
_LCH_SPAWN_KEY = (3, 8)


def lch_seed(diag_seed: int, scheme: str = "derived") -> int:
    """Seed of the LCH diagnostics stream for a run's ``diag_seed`` (``plain``: ``diag_seed + 8``)."""
    if scheme == "plain":
        return int(diag_seed) + 8
    state = np.random.SeedSequence(int(diag_seed), spawn_key=_LCH_SPAWN_KEY).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def lch_generator(diag_seed: int, scheme: str = "derived") -> torch.Generator:
    """A fresh CPU generator of the LCH stream: the gradient batch, the probe set and the random directions."""
    return torch.Generator().manual_seed(lch_seed(diag_seed, scheme))


# --- centroids and their response -----------------------------------------------------------------------------


def _eval(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Eval mode and grad enabled inside; every submodule's mode restored on exit (the commutator defect's)."""
    return measurement_mode(model, False)


def _embedding_module(model: nn.Module, name: str) -> nn.Module:
    module = dict(model.named_modules()).get(name)
    if module is None:
        raise SpectralEdgeError(f"the model has no embedding module {name!r} (μ_x = ∇_emb ℓ_y needs the input "
                                f"embedding); modules: {[n for n, _ in model.named_children()]}")
    return module


def centroids(model: nn.Module, x: Tensor, y: Tensor, params: dict[str, Tensor] | None = None, *,
              embedding: str = "tok_emb", chunk: int = 1024) -> Tensor:
    """μ_x = ∇_emb ℓ_y for every row of ``x`` (labels ``y``), as an (N, T·d) float32 tensor (logit / embedding unit).

    ``params`` overrides some parameters (``torch.func.functional_call``; the model itself is never modified).
    Computed in eval mode; ℓ_y is the raw logit of the label (not the log-probability) [P].
    """
    if x.shape[0] != y.shape[0]:
        raise ShapeMismatchError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
    module = _embedding_module(model, embedding)
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    out = []
    try:
        with _eval(model):
            for s in range(0, x.shape[0], chunk):
                captured.clear()
                xs, ys = x[s:s + chunk], y[s:s + chunk]
                logits = functional_call(model, params or {}, (xs,), strict=False) if params else model(xs)
                scalar = logits.gather(1, ys[:, None]).sum()  # Σ_x ℓ_y: rows do not interact in eval mode
                (g,) = torch.autograd.grad(scalar, captured[0])
                out.append(g.detach().reshape(g.shape[0], -1))
    finally:
        handle.remove()
    return torch.cat(out)


def _named(model: nn.Module, names: Sequence[str]) -> list[Tensor]:
    named = dict(model.named_parameters())
    missing = [n for n in names if n not in named]
    if missing:
        raise SpectralEdgeError(f"parameters {missing} are not in the model")
    return [named[n] for n in names]


def _shifted(params: Sequence[Tensor], names: Sequence[str], v: Tensor, step: float) -> dict[str, Tensor]:
    """{name: p + step·v[slice]} for the flat direction v in the order of ``names``."""
    out, offset = {}, 0
    for n, p in zip(names, params, strict=True):
        out[n] = p.detach() + step * v[offset:offset + p.numel()].view(p.shape).to(p.dtype)
        offset += p.numel()
    return out


def _check_direction(v: Tensor, params: Sequence[Tensor]) -> Tensor:
    P = sum(p.numel() for p in params)
    if v.dim() != 1 or v.numel() != P:
        raise ShapeMismatchError(f"direction must be a flat vector of length {P}, got shape {tuple(v.shape)}")
    norm = float(v.norm())
    if not math.isfinite(norm) or norm == 0.0:
        raise SpectralEdgeError(f"direction has norm {norm}; need a finite non-zero vector")
    return v / norm  # A(v) scales as ‖v‖²: the definition is for unit v


def centroid_response(model: nn.Module, names: Sequence[str], v: Tensor, eps: float, x: Tensor, y: Tensor, *,
                      embedding: str = "tok_emb") -> float:
    """A(v) = mean_x ‖[μ_x(θ + εv) − μ_x(θ − εv)] / (2ε)‖² for the unit direction v/‖v‖ over ``names``."""
    if not (math.isfinite(eps) and eps > 0):
        raise SpectralEdgeError(f"ε must be finite and > 0, got {eps}")
    params = _named(model, names)
    u = _check_direction(v.to(params[0].device), params)
    mu_p = centroids(model, x, y, _shifted(params, names, u, eps), embedding=embedding).double()
    mu_m = centroids(model, x, y, _shifted(params, names, u, -eps), embedding=embedding).double()
    return float((((mu_p - mu_m) / (2.0 * eps)) ** 2).sum(dim=1).mean())


def unit_directions(n: int, P: int, generator: torch.Generator) -> Tensor:
    """n Gaussian directions in ℝ^P, each normalised to unit length (rows), from ``generator`` only."""
    r = torch.randn((n, P), generator=generator, dtype=torch.float32)
    return r / r.norm(dim=1, keepdim=True)


def coupling(model: nn.Module, names: Sequence[str], directions: dict[str, Tensor | None], x: Tensor, y: Tensor,
             random_dirs: Tensor, *, eps_rel: float = 0.005, embedding: str = "tok_emb") -> dict[str, Any]:
    """A and R_k of every set of directions (rows) against the median A of ``random_dirs`` at the current θ.

    ε = eps_rel·‖θ_attn‖ (the parameters ``names``). Returns ``eps``, ``theta_norm``, ``A_rand`` (one per random
    direction), ``A_rand_median`` and per set ``A_<set>`` / ``R_<set>`` (None for a set given as None).
    """
    params = _named(model, names)
    theta_norm = float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in params)))
    eps = eps_rel * theta_norm
    a_rand = [centroid_response(model, names, r, eps, x, y, embedding=embedding) for r in random_dirs]
    med = float(np.median(a_rand))
    rec: dict[str, Any] = {"eps": eps, "theta_norm": theta_norm, "A_rand": a_rand, "A_rand_median": med}
    for key, V in directions.items():
        if V is None:
            rec[f"A_{key}"] = rec[f"R_{key}"] = None
            continue
        a = [centroid_response(model, names, v, eps, x, y, embedding=embedding) for v in V]
        rec[f"A_{key}"] = a
        rec[f"R_{key}"] = [ak / med if med > 0 else math.inf for ak in a]
    return rec


# --- the gradient window ----------------------------------------------------------------------------------------


class GradientWindow:
    """The rolling window of the last W gradients g(τ) = ∇_{θ_group} L(θ_τ; B) on one fixed batch B.

    W ≥ 2: the gradients go through the same streaming Gram as the updates (``numerics.gram.RollingGram``, group
    ``group``); :meth:`directions` are its top-k right singular vectors v_j = Xᵀu_j/σ_j (unit, in the order of
    :attr:`names`). ``torch.autograd.grad`` is used, so ``.grad`` of the model is never touched.

    W = 1 [R] (the note reports R_1 at W = 1 but does not define its direction): the one-row window X = gᵀ has the
    single right singular vector v_1 = g/‖g‖, σ_1 = ‖g‖, and no v_2, v_3, … — so :meth:`directions` gives that one
    row for any k ≥ 1. No Gram is built (RollingGram rightly refuses W < 2: a 1-row window has no spectral gap, and
    none is needed here); the latest gradient alone is kept.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], window: int, batch: Any, loss_fn: Any,
                 group: str = "attn") -> None:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise WindowTooSmallError(f"the gradient window W must be an integer ≥ 1, got W = {window!r}")
        self.group, self.W = group, int(window)
        self.layout = ParamLayout.from_model(model, {group: list(names)})
        self.names: list[str] = self.layout.param_names(group)
        first = _named(model, self.names)[0]
        self.gram: RollingGram | None = None
        self._latest: Tensor | None = None  # W = 1: the window's only row
        if self.W >= 2:
            self.gram = RollingGram(self.W, self.layout.atom_sizes, self.layout.groups, dtype=torch.float32,
                                    device=first.device)
        self.batch, self.loss_fn = batch, loss_fn

    @property
    def w(self) -> int:
        """Rows in the window now (≤ W)."""
        if self.gram is not None:
            return self.gram.w
        return 0 if self._latest is None else 1

    def gradient(self, model: nn.Module) -> Tensor:
        """g = ∇_{θ_group} L(θ; B), flat in the order of :attr:`names` (eval mode, as the centroids)."""
        params = _named(model, self.names)
        with _eval(model):
            grads = torch.autograd.grad(self.loss_fn(model, self.batch), params)
        return torch.cat([g.reshape(-1) for g in grads]).to(torch.float32)

    def push(self, model: nn.Module) -> None:
        g = self.gradient(model)
        if self.gram is not None:
            self.gram.push(g)
            return
        if not bool(torch.isfinite(g).all()):
            raise NonFiniteUpdateError("the gradient g(τ) has NaN/Inf entries; the W = 1 window is left as it was")
        self._latest = g.detach().clone()

    def directions(self, k: int) -> Tensor:
        """Top-k right singular vectors (k × P_group); raises WindowTooSmallError / ZeroWindowError when undefined.

        W = 1: the single row g/‖g‖ (1 × P_group) for any k ≥ 1 [R].
        """
        if self.gram is not None:
            return self.gram.right_vectors(self.group, k)
        if k < 1:
            raise WindowTooSmallError(f"directions needs k ≥ 1, got k = {k}")
        if self._latest is None:
            raise WindowTooSmallError("the W = 1 gradient window is empty: no gradient pushed yet")
        norm = float(self._latest.double().norm())
        if norm == 0.0:
            raise ZeroWindowError("the gradient in the W = 1 window is zero: v_1 = g/‖g‖ undefined")
        return (self._latest / norm)[None]

    def state_dict(self) -> dict[str, Any]:
        """The window's rows: the Gram's state (W ≥ 2) or the one latest gradient (W = 1)."""
        if self.gram is not None:
            return {"gram": self.gram.state_dict()}
        return {"latest": None if self._latest is None else self._latest.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.gram is not None:
            self.gram.load_state_dict(state["gram"])
        else:
            self._latest = state["latest"]

    def sigma(self) -> list[float]:
        if self.gram is not None:
            return self.gram.spectrum(self.group).sigma.tolist()
        return [] if self._latest is None else [float(self._latest.double().norm())]


def _cross_entropy(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


class LCHProbe:
    """The LCH measurement inside :func:`verify.harness.loop.train` (``RunConfig.lch``).

    Every ``grad_every`` steps it pushes g(τ) into the gradient window; every ``every`` steps (and at the final
    step) it measures R_k for the gradient-SED and the update-SED directions against the same random directions,
    plus the functional modes along the update-SED v₁ (``verify.studies.modes``; at the final step or at every
    measurement, ``modes``). Needs a task with ``(x, y)`` data splits and an embedding module (modular arithmetic).
    """

    def __init__(self, cfg: Any, model: nn.Module, task: Any, data: dict[str, Any], monitor: Any,
                 device: torch.device) -> None:
        lc = cfg.lch
        self.cfg, self.lc, self.task = cfg, lc, task
        if not (hasattr(monitor, "gram") and hasattr(monitor, "layout")) or lc.group not in monitor.layout.groups:
            raise SpectralEdgeError(f"lch needs the spectral monitor with group {lc.group!r} (the update-SED v_k come "
                                    "from its window); pass a monitor_factory with that group or set lch.every = 0")
        if getattr(monitor, "sketch", None) is not None:
            raise SpectralEdgeError("lch needs v_k in parameter coordinates; the monitor stores JL sketches")
        try:
            (xtr, ytr), (xte, yte) = data["train"], data["test"]
        except (KeyError, TypeError, ValueError):
            raise SpectralEdgeError("lch needs a task whose data are {'train': (x, y), 'test': (x, y)}") from None
        self.monitor = monitor
        self.names = monitor.layout.param_names(lc.group)
        gen = lch_generator(cfg.diag_seed, cfg.streams)
        bi = torch.randint(len(ytr), (lc.grad_batch,), generator=gen)
        x_all, y_all = torch.cat([xtr, xte]), torch.cat([ytr, yte])
        pi = torch.randint(len(y_all), (lc.n_probe,), generator=gen)
        self.x, self.y = x_all[pi].to(device), y_all[pi].to(device)
        batch = (xtr[bi].to(device), ytr[bi].to(device))
        self.window = GradientWindow(model, self.names, lc.window, batch, task.loss, lc.group)
        self.gen = gen
        self.P = sum(p.numel() for p in _named(model, self.names))

    def state_dict(self) -> dict[str, Any]:
        """The stream's state and the gradient window (the probe set is redrawn from the stream's seed)."""
        return {"gen": self.gen.get_state(), "window": self.window.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.window.load_state_dict(state["window"])

    def _update_directions(self) -> Tensor | None:
        try:
            return self.monitor.gram.right_vectors(self.lc.group, self.lc.k)
        except (WindowTooSmallError, ZeroWindowError):
            return None

    def _gradient_directions(self) -> Tensor | None:
        try:
            return self.window.directions(self.lc.k)
        except (WindowTooSmallError, ZeroWindowError):
            return None

    def measure(self, model: nn.Module, step: int, *, final: bool = False) -> dict[str, Any] | None:
        """Push / measure as due at ``step``; the record of a measurement, else None."""
        lc = self.lc
        if step % lc.grad_every == 0:
            self.window.push(model)
        if not (step % lc.every == 0 or final):
            return None
        V_grad, V_upd = self._gradient_directions(), self._update_directions()
        if V_grad is None and V_upd is None:
            return None
        rand = unit_directions(lc.n_random, self.P, self.gen).to(self.x.device)
        rec = coupling(model, self.names, {"grad": V_grad, "update": V_upd}, self.x, self.y, rand,
                       eps_rel=lc.eps_rel, embedding=lc.embedding)
        rec.update(group=lc.group, k=lc.k, window=lc.window, w_grad=self.window.w,
                   w_update=self.monitor.gram.w, sigma_grad=self.window.sigma(), final=final)
        if V_upd is not None and (lc.modes == "all" or (lc.modes == "final" and final)):
            def modes(v: Tensor) -> dict[str, Any]:
                return mode_record(model, self.cfg.task_config, self.names, v, rec["eps"])

            rec["modes"] = modes(V_upd[0])  # the default: v₁ of the monitor's (uncentred) update window
            rec["modes_v"] = [modes(v) for v in V_upd[1:]]  # v₂ … v_K
            try:  # [P] the functional-modes scripts' window_svd: v₁ of the column-centred update window
                rec["modes_centred"] = modes(centred_directions(self.monitor.gram, lc.group, 1)[0])
            except (WindowTooSmallError, ZeroWindowError):
                pass
        return rec


def centred_directions(gram: RollingGram, group: str, k: int) -> Tensor:
    """Top-k right singular vectors (k × P_group) of the column-centred window X − 1x̄ᵀ ([P] the functional-modes
    scripts' ``window_svd``: ``X -= X.mean(0)`` before the SVD). Its Gram C G C (C = I − 11ᵀ/w) comes from the
    streaming Gram; only the final product Xᵀ(Cu_j)/σ_j reads the stored window."""
    w = gram.w
    if w < 2:
        raise WindowTooSmallError(f"a centred window needs w ≥ 2 updates, got w = {w}")
    C = np.eye(w) - np.full((w, w), 1.0 / w)
    spec = spectrum_from_gram(C @ gram.gram(group) @ C, P=gram.group_dims()[group])
    X = gram.window(group)
    Xc = X - X.mean(dim=0, keepdim=True)
    return right_vectors(Xc, spec, k).T.contiguous()


# --- measurement (harness plug-in) ---------------------------------------------------------------------------------


class LCHConfig(CadenceConfig):
    """Linear-Centroid coupling (theory reference §1.8, [P] 2604.25143) every ``every`` steps (0/None: off): R_k =
    A(v_k)/median_j
    A(r_j) for the gradient-SED and the monitor's update-SED directions of ``group``, plus the functional modes along
    the update-SED v₁. Draws come from their own diagnostics stream."""

    grad_every: StrictInt = Field(25, ge=1, description="steps between pushes of the fixed-batch gradient g(τ)")
    window: StrictInt = Field(20, ge=1, description="W of the gradient window (the gradient-SED v_k; independent of "
                        "monitor.window, which gives the update-SED v_k); W = 1: v_1 = g/‖g‖ only [R]")
    k: StrictInt = Field(3, ge=1, description="K: directions v_1..v_K per estimator")
    n_random: StrictInt = Field(20, ge=1, description="Gaussian random directions of the baseline")
    n_probe: StrictInt = Field(1024, ge=1, description="|X|: probe inputs of the centroids")
    grad_batch: StrictInt = Field(512, ge=1, description="|B|: the fixed gradient batch (training split)")
    eps_rel: float = Field(0.005, gt=0.0, description="ε = eps_rel·‖θ_group‖")
    group: Literal["attn"] = "attn"
    embedding: str = Field("tok_emb", min_length=1, description="module whose output is 'emb' in ∇_emb ℓ_y")
    modes: Literal["off", "final", "all"] = Field("final", description="functional modes at the final / every "
                                                  "measurement")


class LCHMeasurement(BaseMeasurement):
    """``LCHProbe`` as a harness measurement: called at every step (it pushes g(τ) every ``grad_every`` steps and
    measures every ``every`` steps and at the final step); its gradient window and stream are checkpointed."""

    Config = LCHConfig
    record_type = "lch"

    @staticmethod
    def check_run_config(cfg: Any) -> None:
        """The update-SED group must be monitored, and K directions must exist in each window."""
        lc, m = cfg.lch, cfg.monitor
        if lc.group not in m.groups:
            raise ValueError(f"lch.group={lc.group!r} must be a monitor group (update-SED directions come from its "
                             f"window); monitor.groups = {m.groups}")
        # a W = 1 gradient window has exactly one direction (g/‖g‖) whatever k: only W ≥ 2 must hold k of them
        if lc.k > (m.window if lc.window == 1 else min(lc.window, m.window)):
            raise ValueError(f"lch.k={lc.k} exceeds a window (lch.window={lc.window}, monitor.window={m.window})")

    def at_setup(self, ctx: RunContext) -> None:
        self.probe = LCHProbe(self.run_config, ctx.model, ctx.task, ctx.data, ctx.monitor, ctx.device)

    def due(self, step: int) -> bool:
        return True  # LCHProbe.measure decides: a push every grad_every, a measurement every `every` and at the end

    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]:
        rec = self.probe.measure(ctx.model, step, final=final)
        return [] if rec is None else [rec]

    def state_dict(self) -> dict[str, Any]:
        return self.probe.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.probe.load_state_dict(state)
