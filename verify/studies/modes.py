"""Functional modes: the function change along a spectral-edge direction, in the Fourier basis of Z_p² (issue 8,
part 4).

Claim ([P] Xu, "Spectral Edge Dynamics Reveal Functional Modes of Learning", arXiv 2604.06256; theory reference §5):
each edge direction induces a single Fourier mode for addition (ω ≈ 25–26) and, for multiplication, a single mode
(ω = 29) in the discrete-log basis, with a 5.9× concentration gain over the standard basis.

Default definition (``functional_mode:logit_2d``, [R]). Along a unit direction v of the attention weights, with
ε = 0.005·‖θ_attn‖ (as the LCH coupling, ``verify.studies.lch``):

    Δf(a, b) = [z(a, b; θ + εv) − z(a, b; θ − εv)] / (2ε) ∈ ℝ^p,     z = logits − mean_c logits

over every input pair (a, b) ∈ Z_p² — the whole logit vector, centred over classes because the softmax is
invariant along the all-ones direction (the correct-class logit alone is nearly constant over (a, b) for a Fourier
circuit, ℓ_{a+b}(a, b) = Σ_ω α_ω, so it would hide the mode). Units: logit per unit θ. Its 2-D DFT per class,
F_c(ω_a, ω_b) = Σ_{a,b} Δf_c(a, b) e^{−2πi(ω_a a + ω_b b)/n}, gives the power P(ω) = Σ_c |F_c(ω)|²; a real mode is
the conjugate pair {ω, −ω} (powers added). The **concentration** is the largest single-mode power fraction,
max_{ω ≠ 0} P({ω, −ω}) / Σ_{ω ≠ 0} P(ω) (the constant mode ω = 0 is left out as in the author's spectra, which
start at frequency 1; its share is reported as ``dc_fraction``). A function that is one real Fourier mode has
concentration 1; white noise has ≈ 2/n².

Bases: ``standard`` indexes (a, b) ∈ Z_p² (n = p; for multiplication too — the model is defined on token 0);
``dlog`` re-indexes a = g^i, b = g^j (i, j ∈ Z_{p−1}, g the smallest primitive root; n = p − 1) over (Z_p^*)², in
which a·b becomes i + j. The **gain** is concentration(dlog) / concentration(standard).

Variant ``functional_mode:residual_1d`` ([P] ``fourier_functional_view.py``, ``fourier_dlog_mul.py``): the
one-sided residual-stream change s(a, b) = ‖h(a, b; θ + εv) − h(a, b; θ)‖² (h: position 0 before the final
LayerNorm), averaged per output value q = op(a, b) (or per dlog(q)), 1-D DFT over frequencies 1..n//2, power of
the top frequency over the total. It is quadratic in εv and sees only the output-grouped mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from theory.registry import register
from verify.claims import ClaimRow, rate
from verify.stats import fmt, fmt_list
from verify.store import LCHRecord
from verify.studies.lch_claims import load_lch_runs
from verify.tasks.modular import OPS

__all__ = [
    "CLAIMED_MUL_GAIN",
    "ModeRecord",
    "ModeResult",
    "all_inputs",
    "claim_rows",
    "concentration_1d",
    "concentration_2d",
    "discrete_log",
    "dlog_grid",
    "logit_change",
    "mode_record",
    "primitive_root",
    "residual_change",
    "standard_grid",
]

#: Claimed concentration gain of the discrete-log over the standard basis for multiplication ([P] 2604.06256).
CLAIMED_MUL_GAIN = 5.9
#: "A single mode": the top mode carries at least this share of the non-constant power (fixed a priori, [R]).
SINGLE_MODE_SHARE = 0.5
#: The two definitions :func:`mode_record` measures (module docstring).
DEFINITIONS = ("logit_2d", "residual_1d")


# --- number theory ---------------------------------------------------------------------------------------------


#: a list of values for a claims row, "—" when there is none
_listed = partial(fmt_list, empty="—")


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % q for q in range(2, int(p**0.5) + 1))


@lru_cache(maxsize=16)
def primitive_root(p: int) -> int:
    """The smallest generator g of the multiplicative group Z_p^* (p prime)."""
    if not _is_prime(p):
        raise SpectralEdgeError(f"p = {p} is not prime: Z_p^* is not cyclic, no discrete log")
    factors = {q for q in range(2, p) if (p - 1) % q == 0 and _is_prime(q)}
    for g in range(2 if p > 2 else 1, p):
        if all(pow(g, (p - 1) // q, p) != 1 for q in factors):
            return g
    raise SpectralEdgeError(f"no primitive root mod {p}")  # unreachable for prime p


@lru_cache(maxsize=16)
def discrete_log(p: int) -> np.ndarray:
    """dlog[a] = i with g^i ≡ a (mod p) for a = 1..p−1 (g = ``primitive_root(p)``); dlog[0] = −1."""
    g = primitive_root(p)
    out = np.full(p, -1, dtype=np.int64)
    x = 1
    for i in range(p - 1):
        out[x] = i
        x = x * g % p
    out.flags.writeable = False
    return out


def all_inputs(p: int) -> Tensor:
    """Every pair (a, b) ∈ Z_p² as a (p², 2) int64 tensor, row a·p + b (lexicographic)."""
    r = torch.arange(p, dtype=torch.int64)
    a, b = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def standard_grid(values: np.ndarray, p: int) -> np.ndarray:
    """Rows of ``values`` in ``all_inputs(p)`` order → a (p, p, …) grid indexed by (a, b)."""
    values = np.asarray(values)
    if values.shape[0] != p * p:
        raise ShapeMismatchError(f"expected {p * p} rows (all pairs of Z_{p}), got {values.shape[0]}")
    return values.reshape(p, p, *values.shape[1:])


def dlog_grid(values: np.ndarray, p: int) -> np.ndarray:
    """Rows in ``all_inputs(p)`` order → a (p−1, p−1, …) grid G[i, j] = values at (a, b) = (g^i, g^j)."""
    grid = standard_grid(values, p)
    g = primitive_root(p)
    powers = np.array([pow(g, i, p) for i in range(p - 1)])
    return grid[np.ix_(powers, powers)]


# --- the function change ----------------------------------------------------------------------------------------


def _shift(model: nn.Module, names: Sequence[str], v: Tensor, step: float) -> dict[str, Tensor]:
    named = dict(model.named_parameters())
    missing = [n for n in names if n not in named]
    if missing:
        raise SpectralEdgeError(f"parameters {missing} are not in the model")
    P = sum(named[n].numel() for n in names)
    if v.dim() != 1 or v.numel() != P:
        raise ShapeMismatchError(f"direction must be a flat vector of length {P}, got shape {tuple(v.shape)}")
    norm = float(v.norm())
    if not np.isfinite(norm) or norm == 0.0:
        raise SpectralEdgeError(f"direction has norm {norm}; need a finite non-zero vector")
    u = v / norm
    out, offset = {}, 0
    for n in names:
        p = named[n]
        out[n] = p.detach() + step * u[offset:offset + p.numel()].view(p.shape).to(p.device, p.dtype)
        offset += p.numel()
    return out


@torch.no_grad()
def _forward(model: nn.Module, params: dict[str, Tensor], x: Tensor, chunk: int = 4096) -> Tensor:
    was = model.training
    model.eval()
    try:
        return torch.cat([functional_call(model, params, (x[s:s + chunk],), strict=False)
                          for s in range(0, x.shape[0], chunk)])
    finally:
        model.train(was)


def logit_change(model: nn.Module, names: Sequence[str], v: Tensor, eps: float, x: Tensor) -> np.ndarray:
    """Δf(x) = [z(x; θ + εv) − z(x; θ − εv)] / (2ε) with class-centred logits z, v normalised; (N, C) float64."""
    if not (np.isfinite(eps) and eps > 0):
        raise SpectralEdgeError(f"ε must be finite and > 0, got {eps}")
    zp = _forward(model, _shift(model, names, v, eps), x).double()
    zm = _forward(model, _shift(model, names, v, -eps), x).double()
    d = (zp - zm) / (2.0 * eps)
    return (d - d.mean(dim=1, keepdim=True)).cpu().numpy()


def residual_change(model: nn.Module, names: Sequence[str], v: Tensor, eps: float, x: Tensor, *,
                    module: str = "ln_f") -> np.ndarray:
    """h(x; θ + εv) − h(x; θ): the input of ``module`` (final LayerNorm) at position 0 ([P] one-sided); (N, d)."""
    target = dict(model.named_modules()).get(module)
    if target is None:
        raise SpectralEdgeError(f"the model has no module {module!r} to read the residual stream from")
    got: list[Tensor] = []
    handle = target.register_forward_pre_hook(lambda _m, args: got.append(args[0]))
    try:
        _forward(model, {}, x, chunk=x.shape[0])
        h0 = got[-1]
        _forward(model, _shift(model, names, v, eps), x, chunk=x.shape[0])
        h1 = got[-1]
    finally:
        handle.remove()
    h0 = h0[:, 0] if h0.dim() == 3 else h0
    h1 = h1[:, 0] if h1.dim() == 3 else h1
    return (h1 - h0).double().cpu().numpy()


# --- concentration -------------------------------------------------------------------------------------------------


@dataclass
class ModeResult:
    """Concentration of one function in one basis: ``mode`` (ω in (−n/2, n/2], one of the pair ±ω), its power
    fraction ``concentration``, the constant share ``dc_fraction``, the period ``n`` and the ``top`` modes."""

    concentration: float
    mode: list[int]
    dc_fraction: float
    n: int
    top: list[tuple[list[int], float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sym(w: int, n: int) -> int:
    return w if w <= n // 2 else w - n


@register("functional_mode", "logit_2d", source="[R] 2-D DFT over Z_p² of the class-centred logit change "
          "(issue 8; author's 1-D grouped variant is residual_1d)", version="2604.06256", default=True)
def concentration_2d(grid: np.ndarray, top: int = 5) -> ModeResult:
    """Largest single real-mode power fraction of a real function on Z_n² (``grid`` (n, n) or (n, n, C); power
    summed over C), the conjugate pair {ω, −ω} counted as one mode, the constant mode excluded from the total."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim not in (2, 3) or g.shape[0] != g.shape[1] or g.shape[0] < 2:
        raise ShapeMismatchError(f"grid must be (n, n) or (n, n, C) with n ≥ 2, got {g.shape}")
    if not np.isfinite(g).all():
        raise SpectralEdgeError("function values contain NaN/Inf")
    n = g.shape[0]
    P = np.abs(np.fft.fft2(g, axes=(0, 1))) ** 2
    P = P.sum(axis=2) if P.ndim == 3 else P
    total = float(P.sum())
    nondc = total - float(P[0, 0])
    if nondc <= 0.0 or nondc <= 1e-24 * max(total, 1e-300):
        raise SpectralEdgeError("the function is constant over the grid: no non-constant mode")
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ni, nj = (-i) % n, (-j) % n
    canonical = (i < ni) | ((i == ni) & (j <= nj))  # one index per conjugate pair
    self_conj = (i == ni) & (j == nj)
    folded = np.where(self_conj, P, P + P[ni, nj])
    folded[0, 0] = 0.0
    folded = np.where(canonical, folded, 0.0)
    order = np.argsort(folded, axis=None)[::-1][:top]
    tops = [([_sym(int(a), n), _sym(int(b), n)], float(folded.flat[k] / nondc))
            for k in order for a, b in [np.unravel_index(k, folded.shape)]]
    mode, frac = tops[0]
    if mode[0] < 0 or (mode[0] == 0 and mode[1] < 0):  # report the member of the pair with ω_a > 0 (or ω_a = 0 < ω_b)
        mode = [-mode[0], -mode[1]]
    return ModeResult(frac, mode, float(P[0, 0] / total), n, tops)


@register("functional_mode", "residual_1d", source="[P] grokking-integrability spectral/functional_modes "
          "fourier_functional_view.py / fourier_dlog_mul.py", version="2604.06256")
def concentration_1d(signal: np.ndarray, groups: np.ndarray, period: int, top: int = 5) -> ModeResult:
    """The author's profile: mean of ``signal`` per group value q ∈ Z_period, DFT power at frequencies
    1..period//2 (cos and sin parts), concentration = top power / their sum."""
    s, q = np.asarray(signal, float), np.asarray(groups, np.int64) % period
    if s.shape != q.shape:
        raise ShapeMismatchError(f"signal {s.shape} and groups {q.shape} differ")
    counts = np.bincount(q, minlength=period).astype(float)
    means = np.bincount(q, weights=s, minlength=period) / np.maximum(counts, 1.0)
    freqs = np.arange(1, period // 2 + 1)
    phase = np.outer(np.arange(period), freqs) * (2 * np.pi / period)
    power = (means @ np.cos(phase) / period) ** 2 + (means @ np.sin(phase) / period) ** 2
    tot = float(power.sum())
    if tot <= 0.0:
        raise SpectralEdgeError("the grouped profile is constant: no non-constant frequency")
    order = np.argsort(power)[::-1][:top]
    dc = float(means.mean() ** 2)
    return ModeResult(float(power[order[0]] / tot), [int(freqs[order[0]])], dc / (dc + tot), period,
                      [([int(freqs[k])], float(power[k] / tot)) for k in order])


def _op_values(op: str, a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return torch.remainder(OPS[op](torch.as_tensor(a), torch.as_tensor(b)), p).numpy()


def mode_record(model: nn.Module, task_config: Any, names: Sequence[str], v: Tensor, eps: float) -> dict[str, Any]:
    """Both definitions in both bases along ``v`` for a modular-arithmetic model (``task_config``: p, op)."""
    p, op = int(task_config.p), str(task_config.op)
    x = all_inputs(p).to(next(model.parameters()).device)
    df = logit_change(model, names, v, eps, x)
    rec: dict[str, Any] = {"eps": eps, "p": p, "op": op}
    rec["logit_2d"] = {"standard": concentration_2d(standard_grid(df, p)).to_dict()}
    if _is_prime(p):
        rec["logit_2d"]["dlog"] = concentration_2d(dlog_grid(df, p)).to_dict()
    dh = residual_change(model, names, v, eps, x)
    s = (dh**2).sum(axis=1)
    a, b = x[:, 0].cpu().numpy(), x[:, 1].cpu().numpy()
    q = _op_values(op, a, b, p)
    keep = (a > 0) & (b > 0) if op == "mul" else np.ones_like(a, bool)  # the author's mul table is (Z_p^*)²
    rec["residual_1d"] = {"standard": concentration_1d(s[keep], q[keep], p).to_dict()}
    if _is_prime(p):
        nz = keep & (q > 0)
        rec["residual_1d"]["dlog"] = concentration_1d(s[nz], discrete_log(p)[q[nz]], p - 1).to_dict()
    return rec


# --- claims -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeRecord:
    """A stored :func:`mode_record` (an ``lch`` record's ``modes``, ``modes_v`` entries or ``modes_centred``), typed:
    per definition (``logit_2d``, ``residual_1d``) and basis (``standard``, ``dlog``) its :class:`ModeResult`;
    ``stored`` is the record as stored (what a row's details quote)."""

    results: dict[str, dict[str, ModeResult]]
    stored: dict[str, Any]

    @classmethod
    def from_stored(cls, rec: dict[str, Any]) -> ModeRecord:
        results = {defn: {basis: ModeResult(**res) for basis, res in rec[defn].items()}
                   for defn in DEFINITIONS if defn in rec}
        return cls(results, rec)

    def result(self, defn: str, basis: str) -> ModeResult | None:
        return self.results.get(defn, {}).get(basis)


def _final_modes(records: Sequence[LCHRecord], key: str = "modes") -> ModeRecord | None:
    """The mode record ``key`` (``modes``: update v₁; ``modes_centred``: centred-window v₁) of the last measurement
    that has one."""
    recs = [m for r in records if (m := r.get(key))]
    return ModeRecord.from_stored(recs[-1]) if recs else None


def _grokked_modes(root: Path) -> tuple[dict[str, list[tuple[str, ModeRecord]]], dict[str, ModeRecord]]:
    """Per op, (run id, final modes) of the stored LCH runs under ``root`` that grokked
    (``verify.studies.lch_claims.LCHRun``); and run id → final centred-window modes."""
    per_op: dict[str, list[tuple[str, ModeRecord]]] = {}
    centred: dict[str, ModeRecord] = {}
    for r in load_lch_runs(root):
        m = _final_modes(r.records)
        if m is not None and r.grok_step is not None:
            per_op.setdefault(r.op, []).append((r.name, m))
            c = _final_modes(r.records, "modes_centred")
            if c is not None:
                centred[r.name] = c
    return per_op, centred


def _conc(m: ModeRecord | None, defn: str, basis: str) -> float:
    r = m.result(defn, basis) if m is not None else None
    return r.concentration if r is not None else np.nan


def draw_concentrations(fig: Any, per_op: dict[str, list[tuple[str, ModeRecord]]],
                        centred: dict[str, ModeRecord]) -> None:
    """Top-mode share per grokked run (logit_2d) in the standard and discrete-log bases, along the update v₁ (bars)
    and the centred-window v₁ (dots); the single-mode line at 0.5."""
    ax = fig.subplots()
    labels, std, dl, cstd, cdl = [], [], [], [], []
    for op in sorted(per_op):
        for name, m in per_op[op]:
            labels.append(name.removeprefix("modular-").replace("-p97-wd1", ""))
            std.append(_conc(m, "logit_2d", "standard"))
            dl.append(_conc(m, "logit_2d", "dlog"))
            c = centred.get(name)
            cstd.append(_conc(c, "logit_2d", "standard"))
            cdl.append(_conc(c, "logit_2d", "dlog"))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, std, 0.4, label="standard basis (update v₁)")
    ax.bar(x + 0.2, dl, 0.4, label="discrete-log basis (update v₁)")
    ax.plot(x - 0.2, cstd, "k^", ms=4, label="standard (centred-window v₁)")
    ax.plot(x + 0.2, cdl, "kv", ms=4, label="dlog (centred-window v₁)")
    ax.axhline(SINGLE_MODE_SHARE, color="k", ls=":", lw=0.8)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("top-mode share of the non-constant power")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)


#: Draws of the function-of-the-output null (:func:`output_null`), fixed seed.
NULL_DRAWS, NULL_SEED = 20, 0


@lru_cache(maxsize=8)
def output_null(op: str, p: int = 97, n: int = NULL_DRAWS, seed: int = NULL_SEED) -> dict[str, np.ndarray]:
    """The structural null of the mode rows: Δf(a, b) = h(op(a, b)) for a random Gaussian h: Z_p → ℝ^p (centred
    over classes), a function that depends on (a, b) only through the output and has no preferred frequency.
    Returns the ``logit_2d`` concentrations in the ``standard`` and ``dlog`` bases and their ``gain``, ``n`` draws."""
    rng = np.random.default_rng(seed)
    x = all_inputs(p).numpy()
    q = _op_values(op, x[:, 0], x[:, 1], p)
    std, dl = [], []
    for _ in range(n):
        h = rng.standard_normal((p, p))
        df = (h - h.mean(axis=1, keepdims=True))[q]
        std.append(concentration_2d(standard_grid(df, p)).concentration)
        dl.append(concentration_2d(dlog_grid(df, p)).concentration)
    s, d = np.asarray(std), np.asarray(dl)
    return {"standard": s, "dlog": d, "gain": d / s}


def _q95(x: np.ndarray) -> str:
    q = np.percentile(x, [2.5, 50, 97.5])
    return f"{fmt(q[1])} [95 % {fmt(q[0])}, {fmt(q[2])}]"


def claim_rows(runs_root: Path) -> list[ClaimRow]:
    """Functional-mode rows on the stored LCH runs (``runs_root/lch``), at each run's last measurement (post-grok
    for a grokking run; runs that did not grok are left out).

    Criteria, fixed a priori: addition PASS if the median over seeds of the standard-basis concentration (default
    definition ``logit_2d``) is ≥ 0.5 (one mode carries most of the non-constant power); multiplication PASS if the
    median dlog-basis concentration is ≥ 0.5, and a second row PASS if the median gain dlog/standard is ≥ half the
    claimed 5.9× (2.95). The frequency ω is reported but not scored: which frequencies a run uses depends on its
    seed and initialisation (ours are not the author's).

    Null (issue 13): a random function of the output, Δf(a, b) = h(op(a, b)) (:func:`output_null`). The gain row
    PASSes only if its median gain also exceeds the null's 97.5th percentile (criterion ``modes.mul_gain``, changed
    on 2026-12-02 after the runs were seen: post hoc, and stricter).
    """
    root = Path(runs_root) / "lch"
    per_op, centred = _grokked_modes(root)
    src, ver = "P (2604.06256)", "functional-modes paper"

    def plot(fig: Any) -> None:
        draw_concentrations(fig, per_op, centred)

    def conc_c(items: list[tuple[str, ModeRecord]], basis: str) -> list[float]:
        return [r.concentration for n, _ in items if n in centred and (r := centred[n].result("logit_2d", basis))]

    def conc(items: list[tuple[str, ModeRecord]], defn: str, basis: str) -> list[float]:
        return [r.concentration for _, m in items if (r := m.result(defn, basis))]

    def modes_of(items: list[tuple[str, ModeRecord]], defn: str, basis: str) -> list[list[int]]:
        return [r.mode for _, m in items if (r := m.result(defn, basis))]

    def stored(items: list[tuple[str, ModeRecord]]) -> dict[str, dict[str, Any]]:
        return {n: m.stored for n, m in items}

    rows = []
    no_ctrl = "n/a: runs that did not grok have no post-grok direction; no stored weight-decay-0 LCH runs"
    add = per_op.get("add", [])
    claim = "addition: the edge direction v₁ induces a single Fourier mode"
    if not add:
        rows.append(ClaimRow(claim, src, ver, "single mode, ω ≈ 25–26", "—", "INCONCLUSIVE",
                             f"no grokked addition run with modes under {root}", criterion="modes.add_single"))
    else:
        c = conc(add, "logit_2d", "standard")
        med = float(np.median(c))
        c1 = conc(add, "residual_1d", "standard")
        rows.append(ClaimRow(
            claim, src, ver, "single mode, ω ≈ 25–26",
            f"concentration median {fmt(med)} (runs {fmt_list(c)}), modes "
            f"{modes_of(add, 'logit_2d', 'standard')}; centred-window v₁: {_listed(conc_c(add, 'standard'))}; "
            f"author's 1-D variant: {_listed(c1)} at ω {[m[0] for m in modes_of(add, 'residual_1d', 'standard')]}",
            "PASS" if med >= SINGLE_MODE_SHARE else "FAIL",
            f"criterion: median top-mode share of the non-constant power ≥ {SINGLE_MODE_SHARE} (logit_2d, standard "
            f"basis, update-window v₁); ω is seed-specific and not scored", details={"runs": stored(add)}, plot=plot,
            control=no_ctrl,
            null=("random function of a + b (logit_2d, standard basis): top-mode share "
                  f"{_q95(output_null('add')['standard'])}"),
            criterion="modes.add_single"))
    mul = per_op.get("mul", [])
    claim_m = "multiplication: single mode in the discrete-log basis"
    claim_g = "multiplication: concentration gain of the discrete-log over the standard basis"
    if not mul:
        for cl, val in ((claim_m, "single mode, ω = 29"), (claim_g, "5.9×")):
            rows.append(ClaimRow(cl, src, ver, val, "—", "INCONCLUSIVE",
                                 f"no grokked multiplication run with modes under {root}",
                                 criterion="modes.mul_single" if cl == claim_m else "modes.mul_gain"))
    else:
        cd, cs = conc(mul, "logit_2d", "dlog"), conc(mul, "logit_2d", "standard")
        gains = [d / s for d, s in zip(cd, cs, strict=True)]
        cd1, cs1 = conc(mul, "residual_1d", "dlog"), conc(mul, "residual_1d", "standard")
        gains1 = [d / s for d, s in zip(cd1, cs1, strict=True)]
        med = float(np.median(cd))
        rows.append(ClaimRow(
            claim_m, src, ver, "single mode, ω = 29",
            f"dlog concentration median {fmt(med)} (runs {fmt_list(cd)}), modes "
            f"{modes_of(mul, 'logit_2d', 'dlog')}; standard basis {_listed(cs)}; centred-window v₁ dlog "
            f"{_listed(conc_c(mul, 'dlog'))}; author's 1-D variant dlog {_listed(cd1)}",
            "PASS" if med >= SINGLE_MODE_SHARE else "FAIL",
            f"criterion: median dlog-basis top-mode share ≥ {SINGLE_MODE_SHARE} (logit_2d, update-window v₁)",
            details={"runs": stored(mul)}, plot=plot, control=no_ctrl,
            null=("random function of a·b (logit_2d, dlog basis): top-mode share "
                  f"{_q95(output_null('mul')['dlog'])}"),
            criterion="modes.mul_single"))
        gmed = float(np.median(gains))
        null_g = output_null("mul")["gain"]
        hi = float(np.percentile(null_g, 97.5))
        holds, beats = gmed >= CLAIMED_MUL_GAIN / 2, gmed > hi
        rows.append(ClaimRow(
            claim_g, src, ver, "5.9×",
            f"gain median {fmt(gmed)} (runs {fmt_list(gains)}); author's 1-D variant {fmt_list(gains1)}",
            "PASS" if holds and beats else "FAIL",
            f"criterion: median gain (logit_2d) ≥ {CLAIMED_MUL_GAIN / 2:g} (half the claimed 5.9×) and above the "
            "97.5th percentile of the function-of-the-output null; "
            + ("both hold" if holds and beats else
               ("≥ 2.95 holds but the null is not beaten: any function of a·b alone gains more from the dlog basis "
                f"({fmt(float(np.median(null_g)))}×), so the gain marks that Δf depends on a·b, not a single mode"
                if holds else f"median {fmt(gmed)} < {CLAIMED_MUL_GAIN / 2:g}")),
            details={"gains": gains, "gains_residual_1d": gains1, "null_gain": null_g.tolist()},
            control=no_ctrl,
            null=(f"random function of a·b (logit_2d): gain {_q95(null_g)}; runs above its 97.5th percentile: "
                  f"{rate(sum(g > hi for g in gains), len(gains))}"),
            criterion="modes.mul_gain"))
    rows.append(ClaimRow("a²+b²: cross-terms of additive and multiplicative features give 4× R²", src, ver, "4×",
                         "—", "INCONCLUSIVE", "not measured (the feature-regression probe is not implemented)",
                         criterion="modes.a2b2_cross_terms"))
    return rows
