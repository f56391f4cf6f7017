"""The AdamW split (theory reference §6.16, torch): a step is its weight-decay part plus the AdamW(ω = 0) step,
exactly."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from verify.theorems.common import SEEDS
from verify.theorems.registry import require, theorem

# The check imports torch and numerics inside the function: torch is heavy and optional (the entry SKIPs without it).

# ===== §6.16 AdamW split (torch) ==============================================================================


@st.composite
def _adamw_cases(draw: st.DrawFn) -> tuple[int, int, float, float, int]:
    return (draw(st.integers(1, 30)), draw(st.integers(1, 4)), 10.0 ** draw(st.floats(-4, -1)),
            draw(st.floats(0.0, 1.0)), draw(SEEDS))


@theorem(
    "adamw.split",
    "PyTorch AdamW: Δθ = Δθ_grad + Δθ_wd with Δθ_wd = −ηωθ_prev exactly and Δθ_grad = the AdamW(ω=0) step; the "
    "fractions |⟨Δθ_x, v⟩|/(|⟨Δθ_grad, v⟩| + |⟨Δθ_wd, v⟩|) lie in [0, 1] and sum to 1",
    "[P] §1.5; [R] §6.16 (numerics.probes.adamw_split)",
    _adamw_cases(),
    requires=("torch", "numerics.probes"),
)
def _adamw(case: tuple[int, int, float, float, int]) -> None:
    import torch  # local: the catalogue imports without torch (`requires`)

    from numerics.probes import adamw_split, split_fractions  # local: the catalogue imports without torch (`requires`)

    P, steps, lr, wd, seed = case
    g = torch.Generator().manual_seed(seed % 2**63)
    theta0 = torch.randn(P, generator=g, dtype=torch.float64)
    p_wd, p_plain = torch.nn.Parameter(theta0.clone()), torch.nn.Parameter(theta0.clone())
    opt_wd = torch.optim.AdamW([p_wd], lr=lr, weight_decay=wd)
    opt_plain = torch.optim.AdamW([p_plain], lr=lr, weight_decay=0.0)
    for step in range(steps):
        grad = torch.randn(P, generator=g, dtype=torch.float64)
        prev_wd, prev_plain = p_wd.detach().clone(), p_plain.detach().clone()
        p_wd.grad, p_plain.grad = grad.clone(), grad.clone()
        opt_wd.step()
        opt_plain.step()
        d_grad, d_wd = adamw_split(prev_wd, p_wd.detach(), lr, wd)
        scale = float(prev_wd.abs().max()) + lr
        err_wd = float((d_wd + lr * wd * prev_wd).abs().max())
        err_grad = float((d_grad - (p_plain.detach() - prev_plain)).abs().max())
        require(err_wd <= 1e-15 * scale and err_grad <= 1e-13 * scale, "AdamW split is not exact", step=step,
                err_wd=err_wd, err_grad=err_grad, lr=lr, wd=wd)
        v = torch.randn(P, generator=g, dtype=torch.float64)
        f_grad, f_wd = split_fractions(d_grad, d_wd, v)
        if not (math.isnan(f_grad) or math.isnan(f_wd)):
            require(0 <= f_grad <= 1 and 0 <= f_wd <= 1 and abs(f_grad + f_wd - 1) <= 1e-12,
                    "split fractions outside [0, 1] or not summing to 1", f_grad=f_grad, f_wd=f_wd)
