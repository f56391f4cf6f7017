"""Johnson–Lindenstrauss sketch of flat parameter vectors: Φ = Z·S/√d ∈ ℝ^{d×P}, a kept Gaussian panel Z ∈ ℝ^{d×M}
reached through a seeded sign-and-shift map S; E[ΦᵀΦ] = I, so sketched Grams are unbiased.

The JL variant of the spectral engine replaces δ by Φδ with d = 10W (theory reference §1.2 computation notes, §6.17):
the Gram becomes X ΦᵀΦ Xᵀ, an unbiased estimate of X Xᵀ because E[ΦᵀΦ] = I. The monitor sketches each atom of θ_t
to d numbers, so the sketched update is Φθ_t − Φθ_{t−1} = Φδ_t (linearity) and the `RollingGram` holds W rows of
n_atoms·d numbers instead of W rows of P.

The projection. Z has i.i.d. N(0, 1) entries (drawn once, in float32, kept in float64 on the vector's device) and M
columns (default M = max(2¹⁴, 128·d), capped at 2²⁵/d; ``chunk`` sets d·M). Column j = k·M + i of an atom (block
k = j // M, position i = j mod M) is mapped to

    Φ[:, k·M + i] = ε_k · D_i · Z[:, (i + r_k) mod M] / √d,

with D ∈ {±1}^M one sign per position (shared) and, per (atom, block), a shift r_k ∈ [0, M) and a sign ε_k ∈ {±1}.
So Φx = Z·y/√d with y = Σ_k ε_k · roll(D ∘ x_k, r_k) ∈ ℝ^M: the blocks of x are sign-flipped, shifted and summed
(a CountSketch-like hash of P coordinates into M buckets) and only then multiplied by the Gaussian panel.

* An atom with P_atom ≤ M (one block) gets distinct columns of Z: its Φ has exactly i.i.d. N(0, 1/d) entries —
  the Gaussian sketch of the theory reference, and of `verify.theorems.jl` (Davidson–Szarek band).
* P_atom > M: block k collides with block k' only through the independent signs ε_kε_{k'}, so E[SᵀS] = I and
  E[ΦᵀΦ] = E[SᵀZᵀZS]/d = I still (Z independent of S). Given S, Φ is Gaussian on y = Sx, so the error adds the
  hash's own relative variance: Var⟨Φa, Φb⟩ ≈ (‖a‖²‖b‖² + ⟨a,b⟩²)·(1/d + 1/M) for vectors spread over many
  coordinates (exact for one block: 1/M → 0). Every error curve below is multiplied by √(1 + d/M) ≤ 1.004 at the
  default M ≥ 128·d: the gap-ratio error √(2/(πd)) becomes √(2/(πd))·√(1 + d/M) (8.0 % → 8.02 % at d = 100).
* Atoms share Z and D but not (r_k, ε_k): cross-atom error terms have mean 0 and relative size O(1/M + 1/P_atom).

Cost per `apply` of an atom of P_a entries (float32 or float64 input), d = sketch dimension:
    P_a ≤ M: one (d × P_a) float64 matrix–vector product with a slice of Z (no copy): d·P_a multiply-adds.
    P_a > M: ⌈P_a/M⌉ fused multiply-adds of M entries into a 2M float64 buffer (one pass over x), then one
             d × M product: P_a + d·M. At P = 10⁷, d = 100 (`make bench`, loaded 2-core CPU): 37 ms per
             capture (12 ms on one idle thread), 0.66× an exact float32 W = 10 push (57 ms there), against 8.5 s
             for the previous design, which drew all d·P Gaussians (3.4 ns each) at every capture.
Memory: Z in float64, d·M·8 bytes (13 MB at d = 100), materialised lazily in panels of ≤ 4096 columns (a model of
small atoms touches only the panels it needs), D (M float64), per atom ⌈P_a/M⌉ shifts and signs, and a 2M
float64 (rows: n·2M) work buffer per call. Nothing of size d·P is ever formed.

Error (exact second moments, one block). For fixed a, b ∈ ℝ^P and Φ with i.i.d. N(0, 1/d) entries, write
Φa = (ξ_i), Φb = (η_i) with (ξ_i, η_i) i.i.d. centred Gaussian pairs, E[ξ²] = ‖a‖²/d, E[η²] = ‖b‖²/d,
E[ξη] = ⟨a,b⟩/d. Isserlis' theorem gives E[ξ²η²] = E[ξ²]E[η²] + 2E[ξη]², so Var(ξη) = (‖a‖²‖b‖² + ⟨a,b⟩²)/d², and
summing the d terms

    E⟨Φa, Φb⟩ = ⟨a, b⟩,        Var⟨Φa, Φb⟩ = (‖a‖²‖b‖² + ⟨a, b⟩²) / d.

So a diagonal Gram entry ‖Φa‖² has relative standard deviation √(2/d) (14 % at d = 100 = 10W for W = 10) and
an off-diagonal one has absolute std ‖a‖‖b‖·√((1 + cos²∠(a,b))/d).

Gap-ratio error. For signal directions, R̂/R ≈ ‖Φv_k‖/‖Φv_{k+1}‖ with v_k ⊥ v_{k+1}, i.e. a ratio of independent
√(χ²_d/d), so log R̂ − log R has standard deviation 1/√d and E|R̂/R − 1| ≈ √(2/(πd)): 8.0 % at d = 10W for W = 10,
5.6 % for W = 20. Measured (tests/test_sketch.py, 300 full-rank windows, k* = 2, R = 4): 7.9 % at W = 10 and 5.7 %
at W = 20: the spec's "≤ 5.7 % at d = 10W" (§6.17) holds at W = 20 (d = 200), not at W = 10 (d = 100 gives 8 %;
that target needs d ≈ 200 whatever W). tests/test_sketch_fast.py checks the multi-block case against
√(2/(πd))·√(1 + d/M).
Caveat: when σ_{k*+1} is the edge of an isotropic noise bulk, the sketch inflates the bulk (Marchenko–Pastur edge
∝ 1 + √(w/d) instead of 1 + √(w/P)) and R̂ is biased *low* — measured mean R̂/R = 0.86 at W = 10, d = 100.

Reproducibility. Z's panel c is drawn by a CPU `torch.Generator` seeded with a 64-bit hash of (seed, "Z", c) and then
moved to the vector's device; D, r_k and ε_k come from SplitMix64 of hashes of (seed, atom, k) computed in numpy.
Hence the same (seed, d, M) gives the same Φ bit for bit on every call, in every process and on every device
(CPU and CUDA sketches agree up to the rounding of the products) — a resumed run sketches with the same Φ.
M is part of Φ's identity: change ``chunk`` and Φ changes. (This Φ differs from the one of earlier versions,
which drew all d·P entries afresh at every call: do not resume a sketched run written by such a version.)

Precision. The hash sum y and the product Z·y are accumulated in float64 and the sketch is returned in float64: a
caller that differences sketches of θ (whose norm may exceed that of δ by orders of magnitude) must keep Φθ in
float64, or the rounding of Φθ (relative 2⁻²⁴ of ‖θ‖ in float32) swamps Φδ when ‖δ‖/‖θ‖ approaches 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from numerics.errors import ShapeMismatchError, SpectralEdgeError

__all__ = ["JLSketch", "default_sketch_dim"]

_PANEL = 4096  # columns of Z drawn (and cached) at once
_MAX_PANEL_ENTRIES = 1 << 25  # default cap on d·M (256 MB of float64)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def default_sketch_dim(window: int) -> int:
    """d = 10W, the sketch dimension of the author's JL variant (theory reference §1.2)."""
    return 10 * int(window)


def _key(*words: int) -> int:
    # SeedSequence hashes the tuple, so neighbouring keys get unrelated 64-bit seeds.
    return int(np.random.SeedSequence(tuple(int(w) for w in words)).generate_state(1, dtype=np.uint64)[0])


def _splitmix64(key: int, n: int) -> np.ndarray:
    """n 64-bit outputs of SplitMix64 started at ``key`` (counter-based: output i depends on key + i only)."""
    with np.errstate(over="ignore"):
        z = (np.uint64(key) + np.uint64(0x9E3779B97F4A7C15) * np.arange(1, n + 1, dtype=np.uint64)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def _signs(bits: np.ndarray) -> np.ndarray:
    """±1.0 from the top bit of each 64-bit word."""
    return np.where((bits >> np.uint64(63)) == 1, -1.0, 1.0)


class JLSketch:
    """Seeded JL projection Φ_atom = Z·S_atom/√d (module docstring): unbiased, O(P_atom + d·M) per `apply`.

    Args:
        dim: d, the sketch dimension (`default_sketch_dim(W)` = 10W).
        seed: non-negative integer; with d and M it fixes every entry of Φ.
        chunk: d·M, the number of entries of the kept Gaussian panel Z (M = max(1, chunk // d) columns, the hash
            width); default M = max(2¹⁴, 128·d), capped at 2²⁵/d. Part of Φ's identity: change it and Φ changes.
            Atoms of at most M entries are sketched by exactly Gaussian Φ; larger ones pay an error factor
            √(1 + d/M).
    """

    def __init__(self, dim: int, seed: int, *, chunk: int | None = None) -> None:
        if int(dim) < 1:
            raise SpectralEdgeError(f"sketch dimension d must be ≥ 1, got d={dim}")
        if int(seed) < 0:
            raise SpectralEdgeError(f"seed must be a non-negative integer, got {seed}")
        self.dim = int(dim)
        self.seed = int(seed)
        if chunk is None:
            M = min(max(1 << 14, 128 * self.dim), max(1, _MAX_PANEL_ENTRIES // self.dim))
        else:
            if int(chunk) < 1:
                raise SpectralEdgeError(f"chunk (entries of the Gaussian panel) must be ≥ 1, got {chunk}")
            M = max(1, int(chunk) // self.dim)
        self.columns_per_block: int = M
        """M: columns of Z, the hash width and the block length along an atom."""
        self.chunk = self.dim * M
        self._scale = 1.0 / math.sqrt(self.dim)
        self._panels: dict[tuple[torch.device, int], Tensor] = {}
        self._D: dict[torch.device, Tensor] = {}
        self._blocks: dict[tuple[int, int], tuple[list[int], list[float]]] = {}

    # --- the random ingredients (all deterministic functions of seed, d, M) ----------------------------------

    def _panel(self, c: int, device: torch.device) -> Tensor:
        """Columns [c·_PANEL, …) of Z (d × ≤ _PANEL, float64, N(0, 1) entries drawn in float32), cached per device."""
        key = (device, c)
        Zp = self._panels.get(key)
        if Zp is None:
            width = min(_PANEL, self.columns_per_block - c * _PANEL)
            gen = torch.Generator().manual_seed(_key(self.seed, 0x5A, c))
            Zp = torch.randn((self.dim, width), generator=gen, dtype=torch.float32).to(device, torch.float64)
            self._panels[key] = Zp
        return Zp

    def _signs_D(self, device: torch.device) -> Tensor:
        D = self._D.get(device)
        if D is None:
            D = torch.from_numpy(_signs(_splitmix64(_key(self.seed, 0xD1), self.columns_per_block))).to(device)
            self._D[device] = D
        return D

    def _shifts(self, atom: int, n_blocks: int) -> tuple[list[int], list[float]]:
        """(r_k, ε_k) for the blocks k < n_blocks of ``atom`` (cached; block k's values do not depend on n_blocks)."""
        got = self._blocks.get((atom, 0))
        if got is None or len(got[0]) < n_blocks:
            bits = _splitmix64(_key(self.seed, 0xB1, atom), max(n_blocks, 1))
            shifts = (bits % np.uint64(self.columns_per_block)).astype(np.int64).tolist()
            signs = _signs(_splitmix64(_key(self.seed, 0xE5, atom), max(n_blocks, 1))).tolist()
            got = self._blocks[(atom, 0)] = (shifts, signs)
        return got

    def _z_times(self, y: Tensor, col0: int, col1: int) -> Tensor:
        """y @ Z[:, col0:col1]ᵀ for rows y (n × (col1 − col0), float64), looping over the cached panels."""
        out = torch.zeros((y.shape[0], self.dim), dtype=torch.float64, device=y.device)
        c = col0
        while c < col1:
            p, off = divmod(c, _PANEL)
            Zp = self._panel(p, y.device)
            stop = min(col1, p * _PANEL + Zp.shape[1])
            out.addmm_(y[:, c - col0 : stop - col0], Zp[:, off : off + stop - c].T)
            c = stop
        return out

    # --- the sketch ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def apply(self, x: Tensor, atom: int = 0) -> Tensor:
        """Φ_atom x: x of shape (P_atom,) → (d,), or rows (n, P_atom) → (n, d); float64, on x's device.

        Cost: d·P_atom multiply-adds if P_atom ≤ M, else one pass over x plus d·M (module docstring).
        """
        if x.dim() not in (1, 2):
            raise ShapeMismatchError(f"sketch input must be (P,) or (n, P), got shape {tuple(x.shape)}")
        rows = x if x.dim() == 2 else x.unsqueeze(0)
        n, P = rows.shape
        M, device = self.columns_per_block, x.device
        D = self._signs_D(device)
        n_blocks = -(-P // M)
        shifts, signs = self._shifts(atom, n_blocks)
        if n_blocks <= 1:
            out = torch.zeros((n, self.dim), dtype=torch.float64, device=device)
            if P:
                r, y = shifts[0], rows.to(torch.float64) * (signs[0] * D[:P])
                head = min(P, M - r)  # columns r … r+head−1, then the wrap-around 0 … P−head−1
                out += self._z_times(y[:, :head], r, r + head)
                if head < P:
                    out += self._z_times(y[:, head:], 0, P - head)
        else:
            buf = torch.zeros((n, 2 * M), dtype=torch.float64, device=device)
            for k in range(n_blocks):
                s, e, r = k * M, min(P, (k + 1) * M), shifts[k]
                buf[:, r : r + e - s].addcmul_(rows[:, s:e], D[: e - s], value=signs[k])
            y = buf[:, :M] + buf[:, M:]
            out = self._z_times(y, 0, M)
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
        """Materialise Φ_atom (d × n, float64) — for tests and small n only (d·n entries)."""
        device = torch.device(device)
        M = self.columns_per_block
        shifts, signs = self._shifts(atom, max(1, -(-n // M)))
        j = np.arange(n)
        k, i = j // M, j % M
        cols = (i + np.asarray(shifts, dtype=np.int64)[k]) % M
        sign = np.asarray(signs)[k] * self._signs_D(torch.device("cpu")).numpy()[i]
        Phi = torch.empty((self.dim, n), dtype=torch.float64, device=device)
        for p in np.unique(cols // _PANEL).tolist():
            at = np.flatnonzero(cols // _PANEL == p)
            src = torch.as_tensor(cols[at] - p * _PANEL, device=device)
            Phi[:, torch.as_tensor(at, device=device)] = (self._panel(p, device)[:, src]
                                                          * torch.as_tensor(sign[at], device=device))
        return Phi * self._scale

    def memory_bytes(self) -> int:
        """Bytes held by the cached panels of Z and the sign vectors D (all devices)."""
        return sum(t.numel() * t.element_size() for t in (*self._panels.values(), *self._D.values()))

    def __repr__(self) -> str:
        return f"JLSketch(d={self.dim}, seed={self.seed}, M={self.columns_per_block})"
