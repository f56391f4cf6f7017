"""Johnson–Lindenstrauss sketch of flat parameter vectors: Φ ∈ ℝ^{d×P}, i.i.d. N(0, 1/d), never stored.

The JL variant of the spectral engine replaces δ by Φδ with d = 10W (theory reference §1.2 computation notes, §6.17):
the Gram becomes X ΦᵀΦ Xᵀ, an unbiased estimate of X Xᵀ because E[ΦᵀΦ] = I. The monitor sketches each atom of θ_t
to d numbers, so the sketched update is Φθ_t − Φθ_{t−1} = Φδ_t (linearity) and the `RollingGram` holds W rows of
n_atoms·d numbers instead of W rows of P: memory drops from W·P to about 2·n_atoms·d + one chunk of Φ.

Error (exact second moments). For fixed a, b ∈ ℝ^P and Φ with i.i.d. N(0, 1/d) entries, write Φa = (ξ_i),
Φb = (η_i) with (ξ_i, η_i) i.i.d. centred Gaussian pairs, E[ξ²] = ‖a‖²/d, E[η²] = ‖b‖²/d, E[ξη] = ⟨a,b⟩/d. Isserlis'
theorem gives E[ξ²η²] = E[ξ²]E[η²] + 2E[ξη]², so Var(ξη) = (‖a‖²‖b‖² + ⟨a,b⟩²)/d², and summing the d terms

    E⟨Φa, Φb⟩ = ⟨a, b⟩,        Var⟨Φa, Φb⟩ = (‖a‖²‖b‖² + ⟨a, b⟩²) / d.

So a diagonal Gram entry ‖Φa‖² has relative standard deviation √(2/d) (14 % at d = 100 = 10W for W = 10) and
an off-diagonal one has absolute std ‖a‖‖b‖·√((1 + cos²∠(a,b))/d).

Gap-ratio error. For signal directions, R̂/R ≈ ‖Φv_k‖/‖Φv_{k+1}‖ with v_k ⊥ v_{k+1}, i.e. a ratio of independent
√(χ²_d/d), so log R̂ − log R has standard deviation 1/√d and E|R̂/R − 1| ≈ √(2/(πd)): 8.0 % at d = 10W for W = 10,
5.6 % for W = 20. Measured (tests/test_sketch.py, 300 full-rank windows, k* = 2, R = 4): 7.9 % at W = 10 and 5.7 %
at W = 20: the spec's "≤ 5.7 % at d = 10W" (§6.17) holds at W = 20 (d = 200), not at W = 10 (d = 100 gives 8 %;
that target needs d ≈ 200 whatever W).
Caveat: when σ_{k*+1} is the edge of an isotropic noise bulk, the sketch inflates the bulk (Marchenko–Pastur edge
∝ 1 + √(w/d) instead of 1 + √(w/P)) and R̂ is biased *low* — measured mean R̂/R = 0.86 at W = 10, d = 100.

Reproducibility. Column block c of atom a is drawn from a `torch.Generator` on the vector's device seeded with a
64-bit hash of (seed, a, c); the same (seed, atom, d, chunk, device type) reproduces Φ bit for bit on every call.
CPU and CUDA generators produce different streams, so do not mix devices within one run. Φ is drawn in float32
whatever the input dtype (a float64 input multiplies the same Φ in float64).

Precision. Each block product is accumulated in float64, and the sketch is returned in float64: the monitor
differences sketches of θ, whose norm may exceed that of δ by orders of magnitude, and float32 sketches would
lose those digits to cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from numerics.errors import ShapeMismatchError, SpectralEdgeError

__all__ = ["JLSketch", "default_sketch_dim"]


def default_sketch_dim(window: int) -> int:
    """d = 10W, the sketch dimension of the author's JL variant (theory reference §1.2)."""
    return 10 * int(window)


def _block_seed(seed: int, atom: int, block: int) -> int:
    # SeedSequence hashes the triple, so neighbouring (atom, block) pairs get unrelated 64-bit seeds.
    return int(np.random.SeedSequence((seed, atom, block)).generate_state(1, dtype=np.uint64)[0])


class JLSketch:
    """Seeded Gaussian projection Φ_atom ∈ ℝ^{d×P_atom}, entries i.i.d. N(0, 1/d), generated in blocks on demand.

    Args:
        dim: d, the sketch dimension (`default_sketch_dim(W)` = 10W).
        seed: non-negative integer; with (atom, block) it fixes every entry of Φ.
        chunk: number of Φ entries generated at once (bounds the temporary to chunk·4 bytes); a block covers
            max(1, chunk // d) columns. Part of Φ's identity: change it and Φ changes.
    """

    def __init__(self, dim: int, seed: int, *, chunk: int = 1 << 20) -> None:
        if int(dim) < 1:
            raise SpectralEdgeError(f"sketch dimension d must be ≥ 1, got d={dim}")
        if int(seed) < 0:
            raise SpectralEdgeError(f"seed must be a non-negative integer, got {seed}")
        self.dim = int(dim)
        self.seed = int(seed)
        self.chunk = int(chunk)
        self.columns_per_block = max(1, self.chunk // self.dim)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._scale = 1.0 / math.sqrt(self.dim)

    def _gaussian_block(self, atom: int, block: int, n_cols: int, device: torch.device) -> Tensor:
        """Z (d × n_cols) with i.i.d. N(0, 1) float32 entries; Φ's block is Z/√d."""
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device)
        gen.manual_seed(_block_seed(self.seed, atom, block))
        return torch.randn((self.dim, n_cols), generator=gen, device=device, dtype=torch.float32)

    @torch.no_grad()
    def apply(self, x: Tensor, atom: int = 0) -> Tensor:
        """Φ_atom x: x of shape (P_atom,) → (d,), or rows (n, P_atom) → (n, d); float64, on x's device."""
        if x.dim() not in (1, 2):
            raise ShapeMismatchError(f"sketch input must be (P,) or (n, P), got shape {tuple(x.shape)}")
        rows = x if x.dim() == 2 else x.unsqueeze(0)
        n = rows.shape[1]
        out = torch.zeros((rows.shape[0], self.dim), dtype=torch.float64, device=x.device)
        compute = torch.float64 if x.dtype == torch.float64 else torch.float32
        step = self.columns_per_block
        for block, start in enumerate(range(0, n, step)):
            stop = min(start + step, n)
            Z = self._gaussian_block(atom, block, stop - start, x.device).to(compute)
            out += (rows[:, start:stop].to(compute) @ Z.T).to(torch.float64)
        out *= self._scale
        return out if x.dim() == 2 else out[0]

    def apply_atoms(self, x: Tensor, atom_slices: Sequence[tuple[int, int]]) -> Tensor:
        """Sketch every atom of a flat vector (`ParamLayout.atom_slices`): concatenation (n_atoms·d,) in float64.

        The result is a flat vector made of n_atoms atoms of size d each, so a `RollingGram(W, [d] * n_atoms,
        layout.groups, dtype=torch.float64)` gives the sketched Gram of every group.
        """
        if x.dim() != 1:
            raise ShapeMismatchError(f"apply_atoms needs a flat vector, got shape {tuple(x.shape)}")
        return torch.cat([self.apply(x[s:e], atom=i) for i, (s, e) in enumerate(atom_slices)])

    def matrix(self, n: int, atom: int = 0, device: torch.device | str = "cpu") -> Tensor:
        """Materialise Φ_atom (d × n, float32) — for tests and small P only."""
        device = torch.device(device)
        step = self.columns_per_block
        blocks = [self._gaussian_block(atom, b, min(step, n - s), device) for b, s in enumerate(range(0, n, step))]
        return torch.cat(blocks, dim=1) * self._scale

    def __repr__(self) -> str:
        return f"JLSketch(d={self.dim}, seed={self.seed}, chunk={self.chunk})"
