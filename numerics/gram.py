"""Streaming update Gram: the last W updates in a ring buffer and their W×W Gram per group, updated in O(W·P).

Definitions (theory reference §1.2): the trajectory matrix X(t) ∈ ℝ^{w×P} has rows δ_{t−w+1}, …, δ_t (oldest first) and
the Gram is G(t) = X Xᵀ, G_ab = ⟨δ_a, δ_b⟩ — uncentred and unnormalised [P: the SED code builds a raw dot-product
matrix over all deltas and slides W×W principal submatrices]. Its eigenvalues are λ_j = σ_j² (eigenvalue units);
the singular values σ_j of X are in the units of δ. Adaptive start: w = min(W, number of updates pushed) [P].

Why incremental: a push changes one row of X, so only one row/column of G is new. Those W dots (with every stored
row, *including* the one about to be evicted, which gives the extended (W+1)×(W+1) Gram of consecutive windows
for free) and ⟨δ, δ⟩ cost one read of the buffer: O(W·P), versus O(W²·P) to rebuild G (`recompute`). No entry is
ever accumulated across pushes — each G_ab is computed once, from the stored rows — so the Gram does not drift
over long streams.

Ring layout: W + 1 slots, the w live rows plus one spare. A push writes δ_t into the spare slot (callers that form
δ themselves write it there directly: `next_row` then `commit`, so δ is written once and never copied), and one
matrix–vector product over all W + 1 slots gives ⟨δ_t, row⟩ for every live row, the row about to be evicted and
δ_t itself. The evicted slot becomes the next spare. A rejected δ_t (NaN/Inf) only ever touched the spare, so the
window is unchanged. Memory: (W + 1)·P stored numbers.

Groups: the flat vector is a concatenation of *atoms* (see `numerics.layout`); a group is a set of atoms and
G_group = Σ_{atom ∈ group} X_atom X_atomᵀ. Per atom one `torch.mv` over the strided column block (no copy);
atom dots (in the accumulation dtype `dot_dtype`) are summed into group dots in float64.

Half-precision storage (bfloat16, float16): the dots are accumulated in float32 (`dot_dtype`), never by a
half-precision matrix–vector product (torch's CPU bf16 `mv` runs ~30× slower than float32 and rounds each dot to
bf16). Column chunks of the stored rows and of δ are upcast to float32 (exactly) into a reused scratch of
(W+1)·C floats, C = `_UPCAST_BYTES`/(4·(W+1)) columns (128 KiB on CPU: L2-resident, and each op stays below
torch's parallel grain so no OpenMP region is entered per chunk; 64 MiB on CUDA), multiplied in float32, and the
per-chunk dots summed in float64. Cost: the same (W+1)·P reads (of 2-byte entries) plus
(W+1)·P upcast writes/reads of the cache-sized scratch; extra memory (W+1)·C·4 bytes whatever P. The Gram is that
of the stored (rounded) rows up to float32 accumulation: dot_dtype = float32, as for float32 storage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from numerics.distributed import all_reduce_sum, check_same_across_ranks
from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    WindowTooSmallError,
    ZeroWindowError,
)

__all__ = ["RollingGram"]

_STATE_VERSION = 2  # 2: W + 1 ring slots and a spare; version-1 states (W slots and a head) still load
_UPCAST_BYTES = {"cpu": 1 << 17, "cuda": 1 << 26}  # float32 scratch per chunk of half-precision columns


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the dots of rows stored in ``dtype`` are accumulated in: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class RollingGram:
    """Ring buffer of the last W updates δ_t ∈ ℝ^P and, per group, the W×W Gram G = X Xᵀ in float64.

    Args:
        window: W ≥ 2, the number of updates kept (theory reference §1.2: W = 10 by default in the thesis).
        atom_sizes: sizes of the contiguous atoms the flat vector is made of (`ParamLayout.atom_sizes`), or one int.
        groups: {group name: atom indices}; default {"all": every atom}. Every atom must be in some group.
        dtype, device: storage of the ring buffer ((W+1)·P numbers: W rows and a spare); the Grams are always
            float64 on the host. Dots are accumulated in `dot_dtype` (float64 for float64 storage, float32 for
            float32, bfloat16, float16).
        process_group: a torch.distributed group; when given, each rank pushes its own column shard and the dots
            are summed over ranks, so G is the global Gram (see `numerics.distributed`).
    """

    def __init__(
        self,
        window: int,
        atom_sizes: Sequence[int] | int,
        groups: Mapping[str, Sequence[int]] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        process_group: object | None = None,
    ) -> None:
        if int(window) < 2:
            raise WindowTooSmallError(f"window W must be ≥ 2 (a 1-row window has no spectral gap), got W={window}")
        sizes = [int(atom_sizes)] if isinstance(atom_sizes, int) else [int(s) for s in atom_sizes]
        if not sizes or any(s < 0 for s in sizes):
            raise ShapeMismatchError(f"atom sizes must be a non-empty list of sizes ≥ 0, got {sizes}")
        groups = {"all": list(range(len(sizes)))} if groups is None else {g: list(a) for g, a in groups.items()}
        for g, idx in groups.items():
            bad = [i for i in idx if not 0 <= i < len(sizes)]
            if not idx or bad or len(set(idx)) != len(idx):
                raise ShapeMismatchError(f"group {g!r} must list distinct atom indices in [0, {len(sizes)}), got {idx}")
        orphans = sorted(set(range(len(sizes))) - {i for idx in groups.values() for i in idx})
        if orphans:
            # Their columns would be stored and never used, and NaNs in them would go unnoticed.
            raise ShapeMismatchError(f"atoms {orphans} belong to no group")

        self.W: int = int(window)
        self.atom_sizes: list[int] = sizes
        self.groups: dict[str, list[int]] = groups
        self.dtype: torch.dtype = dtype
        self.dot_dtype: torch.dtype = _accumulation_dtype(dtype)
        """Precision the dots are accumulated in (the ``dot_dtype`` of `numerics.spectrum.psd_tolerance`)."""
        self.process_group = process_group
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self._slices: list[tuple[int, int]] = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        self.P: int = int(bounds[-1])
        """Local length of δ (this rank's shard when distributed)."""

        # Zero rows make the not-yet-filled slots contribute exact zeros to the dots of early pushes.
        self._X = torch.zeros((self.W + 1, self.P), dtype=dtype, device=device)
        self.device: torch.device = self._X.device
        self._upcast_cols = max(1, _UPCAST_BYTES.get(self.device.type, 1 << 26) // (4 * (self.W + 1)))
        self._scratch: Tensor | None = None  # (W+1) × C float32, half-precision storage only
        self._group_names = list(groups)
        membership = np.zeros((len(groups), len(sizes)))
        for gi, g in enumerate(self._group_names):
            membership[gi, groups[g]] = 1.0
        self._membership = torch.as_tensor(membership, dtype=torch.float64, device=self.device)
        self._membership_np = membership
        self._host_sum = self.device.type == "cpu" and process_group is None
        # per-capture objects made once: the atoms' column blocks of the ring and the dots' destination
        self._col_blocks = [self._X[:, s:e] for s, e in self._slices]
        self._atom_dots = torch.empty((len(self._slices), self.W + 1), dtype=self.dot_dtype, device=self.device)
        self._rows = self._X.unbind(0)
        self._row_atoms = [[row[s:e] for s, e in self._slices] for row in self._rows]  # per slot, its atoms' views
        self._dot_slots = [self._atom_dots[:, j].unbind(0) for j in range(self.W + 1)]  # per slot, ⟨δ,δ⟩'s cells

        self._order: list[int] = []  # slots of the live rows, oldest → newest
        self._spare = 0  # the slot the next push writes
        self._n_pushed = 0
        self._group_index = {g: i for i, g in enumerate(self._group_names)}
        # Every group's Gram of all W + 1 slots in one array (groups × (W+1) × (W+1), slot order, not time order), so
        # that the per-push host work and the monitor's per-capture copy are one numpy operation whatever the number
        # of groups. Entries of the spare slot are stale until it is written.
        self._G = np.zeros((len(groups), self.W + 1, self.W + 1))
        self._G_ext: np.ndarray | None = None  # groups × (W+1) × (W+1), time order, when the last push evicted a row

        local_dims = {g: sum(sizes[i] for i in idx) for g, idx in groups.items()}
        if process_group is not None:
            check_same_across_ranks({"W": self.W, "n_groups": len(groups), "n_atoms": len(sizes)},
                                    process_group, self.device)
            dims = torch.tensor([local_dims[g] for g in self._group_names], dtype=torch.float64, device=self.device)
            all_reduce_sum(dims, process_group)
            self._global_dims = {g: int(d) for g, d in zip(self._group_names, dims.tolist(), strict=True)}
        else:
            self._global_dims = local_dims

    # --- counters ----------------------------------------------------------------------------------------------

    @property
    def w(self) -> int:
        """Current window length min(W, n_pushed) (adaptive start)."""
        return min(self.W, self._n_pushed)

    @property
    def n_pushed(self) -> int:
        return self._n_pushed

    def group_dims(self) -> dict[str, int]:
        """{group: P_g}, summed over ranks when distributed (the P of Marchenko–Pastur edges, theory reference §1.7)."""
        return dict(self._global_dims)

    def _time_order(self) -> list[int]:
        """Slot indices oldest → newest."""
        return list(self._order)

    # --- the update --------------------------------------------------------------------------------------------

    def _check_delta(self, delta: Tensor) -> None:
        if not isinstance(delta, Tensor):
            raise ShapeMismatchError(f"δ must be a torch.Tensor, got {type(delta).__name__}")
        problems = []
        if delta.dim() != 1 or delta.numel() != self.P:
            problems.append(f"shape expected ({self.P},) got {tuple(delta.shape)}")
        if delta.dtype != self.dtype:
            problems.append(f"dtype expected {self.dtype} got {delta.dtype}")
        if delta.device != self.device:
            problems.append(f"device expected {self.device} got {delta.device}")
        if problems:
            raise ShapeMismatchError("update δ does not match the window: " + "; ".join(problems))

    def next_row(self) -> Tensor:
        """The spare slot's row (a length-P view of the ring buffer, storage dtype and device): write δ_t into it,
        then call :meth:`commit`. Saves the copy `push` makes; writing it changes nothing until `commit`."""
        return self._rows[self._spare]

    @torch.no_grad()
    def push(self, delta: Tensor) -> None:
        """Append δ_t (flat, length P, the window's dtype and device), evicting δ_{t−W} once w = W.

        Copies δ_t into the spare slot and commits it (:meth:`commit`); a rejected δ_t leaves the window as it was.
        """
        self._check_delta(delta)
        self._rows[self._spare].copy_(delta)
        self.commit()

    @torch.no_grad()
    def commit(self) -> None:
        """Append the row written into :meth:`next_row` as δ_t, evicting δ_{t−W} once w = W.

        Reads the buffer once: per atom `mv(X[:, s:e], δ[s:e])` over all W + 1 slots gives ⟨δ_t, row⟩ for the
        live rows (the oldest included) and ⟨δ_t, δ_t⟩. A NaN/Inf in δ — or an overflowing dot — shows up in these
        dots, so it is detected without an extra pass over P; the window is then left exactly as it was (δ_t
        only ever occupied the spare slot) and NonFiniteUpdateError is raised.

        Cost: (W+1)·P reads for the dots, no write, O(n_groups·W²) host work, and one device→host transfer of
        n_groups·(W+1) float64 (it synchronises a CUDA stream: the NaN check must raise before the window moves).
        Half-precision storage: the same reads through a float32 scratch of (W+1)·C floats (module docstring).
        """
        W, slot = self.W, self._spare
        delta = self._rows[slot]
        if self.dot_dtype != self.dtype:
            atom_dots = self._upcast_dots(delta)
        else:
            atom_dots = self._atom_dots
            for part, row_dots, col_block, own in zip(self._row_atoms[slot], atom_dots, self._col_blocks,
                                                      self._dot_slots[slot], strict=True):
                torch.mv(col_block, part, out=row_dots)
                # ⟨δ, δ⟩ by `dot`, as the diagonal of every earlier window was (gemv rounds a row by its position)
                torch.dot(part, part, out=own)
        if self._host_sum:  # CPU, one process: the atom → group sums in numpy (no further torch dispatch)
            dots = np.matmul(self._membership_np, atom_dots.numpy(), dtype=np.float64)
        else:
            group_dots = self._membership @ atom_dots.to(torch.float64)
            all_reduce_sum(group_dots, self.process_group)
            dots = group_dots.cpu().numpy()  # the one device→host transfer: n_groups·(W+1) numbers, slot order

        if not math.isfinite(dots.sum()):  # NaN/Inf anywhere (float64 sums of float32-range dots cannot overflow)
            g = next(i for i in range(len(dots)) if not np.isfinite(dots[i]).all())
            diag = dots[g, slot]
            what = ("δ contains NaN/Inf (or ⟨δ,δ⟩ overflows the storage dtype)" if not np.isfinite(diag)
                    else "a dot of δ with a stored row overflowed")
            live = dots[g, self._order]
            raise NonFiniteUpdateError(
                f"{what} (group {self._group_names[g]!r}: ⟨δ,δ⟩ = {diag}, dots with stored rows {live}); "
                f"update #{self._n_pushed + 1} rejected, window unchanged"
            )

        G = self._G
        G[:, slot, :] = dots
        G[:, :, slot] = dots
        order = self._order
        if len(order) == W:
            # [δ_{t−W}, …, δ_{t−1}, δ_t]: the old window (evicted row first) bordered by the new dots, every group
            idx = np.asarray([*order, slot])
            self._G_ext = G[:, idx[:, None], idx[None, :]]
            self._spare = order.pop(0)
        else:
            self._G_ext = None
            self._spare = len(order) + 1  # slots fill in order 0, 1, …, W while the window grows
        order.append(slot)
        self._n_pushed += 1

    def _upcast_dots(self, delta: Tensor) -> Tensor:
        """Per-atom ⟨δ, row_j⟩ for every slot j (δ's own slot gives ⟨δ, δ⟩; n_atoms × (W+1), float64) for
        half-precision storage.

        Column chunks of X (δ is one of its rows) are copied into the float32 scratch (exact upcast) and multiplied
        by the chunk of δ there: float32 accumulation within a chunk, float64 across chunks. No half-precision
        product is run.
        """
        W, C, slot = self.W, self._upcast_cols, self._spare
        if self._scratch is None:
            self._scratch = torch.empty((W + 1, min(C, max(self.P, 1))), dtype=torch.float32, device=self.device)
        buf = self._scratch
        n_chunks = [-(-(e - s) // C) for s, e in self._slices]
        parts = torch.zeros((sum(n_chunks), W + 1), dtype=torch.float32, device=self.device)
        j = 0
        for s, e in self._slices:
            for c0 in range(s, e, C):
                c1 = min(c0 + C, e)
                chunk = buf[:, : c1 - c0]
                chunk.copy_(self._X[:, c0:c1])
                torch.mv(chunk, chunk[slot], out=parts[j])
                j += 1
        # per-chunk float32 dots summed in float64, atom by atom
        owner = torch.repeat_interleave(torch.arange(len(n_chunks), device=self.device),
                                        torch.as_tensor(n_chunks, device=self.device))
        out = torch.zeros((len(self._slices), W + 1), dtype=torch.float64, device=self.device)
        return out.index_add_(0, owner, parts.to(torch.float64))

    # --- read-out ----------------------------------------------------------------------------------------------

    def _group(self, group: str) -> str:
        if group not in self._group_index:
            raise KeyError(f"unknown group {group!r}; groups are {self._group_names}")
        return group

    def gram(self, group: str = "all") -> np.ndarray:
        """G = X Xᵀ of the current window, w×w float64, rows/columns in time order (oldest → newest)."""
        order = self._time_order()
        return self._G[self._group_index[self._group(group)]][np.ix_(order, order)]

    def grams(self) -> np.ndarray:
        """Every group's ``gram`` at once: groups × w × w (groups in construction order), a new array."""
        order = np.asarray(self._time_order(), dtype=np.intp)
        return self._G[:, order[:, None], order[None, :]]

    def extended_grams(self) -> np.ndarray | None:
        """Every group's ``extended_gram`` at once: groups × (W+1) × (W+1) (a copy), or None (no eviction yet)."""
        return None if self._G_ext is None else self._G_ext.copy()

    def extended_gram(self, group: str = "all") -> np.ndarray | None:
        """(W+1)×(W+1) Gram of [δ_{t−W}, …, δ_t] (time order) if the last push evicted a row, else None.

        Its leading W×W block is the previous window's Gram and its trailing block the current one's; α-rot and
        ‖ΔC‖_F = (‖δ_t‖⁴ + ‖δ_{t−W}‖⁴ − 2⟨δ_t, δ_{t−W}⟩²)^{1/2} (theory reference §6.6) are read from it.
        """
        gi = self._group_index[self._group(group)]
        if self._G_ext is None:
            return None
        return self._G_ext[gi].copy()

    def _columns(self, group: str | None) -> list[tuple[int, int]]:
        if group is None:
            return [(0, self.P)]
        return [self._slices[i] for i in self.groups[self._group(group)]]

    def window(self, group: str | None = None) -> Tensor:
        """The w stored updates as rows in time order, restricted to `group`'s columns (all columns if None).

        A new (w × P_g) tensor on the buffer's device (rows are gathered out of ring order).
        """
        idx = torch.as_tensor(self._time_order(), dtype=torch.long, device=self.device)
        cols = self._columns(group)
        if len(cols) == 1:
            s, e = cols[0]
            return self._X[idx, s:e]
        return torch.cat([self._X[idx, s:e] for s, e in cols], dim=1)

    def recompute(self, group: str = "all") -> np.ndarray:
        """Brute-force oracle: X Xᵀ of the stored window from scratch, O(w²·P), in time order.

        Computed in float64 per atom (one copy of an atom block at a time), so it is also the reference for the
        storage rounding of the streaming path; reduced over ranks when distributed.
        """
        idx = torch.as_tensor(self._time_order(), dtype=torch.long, device=self.device)
        w = len(idx)
        G = torch.zeros((w, w), dtype=torch.float64, device=self.device)
        for s, e in self._columns(group):
            block = self._X[idx, s:e].to(torch.float64)
            G += block @ block.T
        all_reduce_sum(G, self.process_group)
        return G.cpu().numpy()

    def spectrum(self, group: str = "all", **kw: Any) -> Any:
        """`numerics.spectrum.spectrum_from_gram(self.gram(group), P=P_group, **kw)` of the current window.

        The PSD check's default (float32 dots, n = P_group terms) bounds the round-off of every storage dtype:
        this window accumulates in `dot_dtype` (float32 unless float64) over at most one atom per sum. Pass
        ``dot_dtype="float64"`` for the strict check of a float64 window.
        """
        from numerics.spectrum import spectrum_from_gram  # lazy: spectrum is a sibling with its own dependencies

        return spectrum_from_gram(self.gram(group), P=self._global_dims[self._group(group)], **kw)

    @torch.no_grad()
    def right_vectors(self, group: str = "all", k: int = 1) -> Tensor:
        """Top-k right singular vectors v_j = Xᵀu_j/σ_j of the group's window, as a (k × P_g) tensor on the device.

        u_j, σ_j = √λ_j come from the float64 eigendecomposition of G (descending). The product reads the ring
        buffer in slot order (u permuted to match), so no time-ordered copy of X is made; it runs in `dot_dtype`
        (half-precision storage: over float32 column chunks) and is returned in the storage dtype. Distributed:
        each rank gets its own shard of v_j (u and σ are global).
        """
        w = self.w
        if not 1 <= k <= w:
            raise WindowTooSmallError(f"right_vectors needs 1 ≤ k ≤ w, got k={k} with w={w}")
        lam, u = np.linalg.eigh(self.gram(group))
        lam, u = lam[::-1][:k], u[:, ::-1][:, :k]
        if lam[0] <= 0.0:
            raise ZeroWindowError(f"all updates in the window are zero (λ₁ = {lam[0]}): v_j undefined")
        tiny = lam[0] * w * np.finfo(np.float64).eps
        if lam[-1] <= tiny:
            j = int(np.argmax(lam <= tiny)) + 1
            raise ZeroWindowError(f"window has rank < {j}: λ_{j} = {lam[j - 1]} ≤ {tiny}, v_{j} undefined")
        u_slot = np.zeros((self.W + 1, k))  # the spare slot gets coefficient 0
        u_slot[self._time_order()] = u / np.sqrt(lam)  # fold 1/σ_j into u: v_j = Xᵀ(u_j/σ_j)
        coef = torch.as_tensor(u_slot, dtype=self.dot_dtype, device=self.device)
        if self.dot_dtype == self.dtype:
            return torch.cat([(self._X[:, s:e].T @ coef).T for s, e in self._columns(group)], dim=1)
        # half-precision storage: float32 products over upcast column chunks (no half-precision matmul), cast back
        C = self._upcast_cols
        parts = [(coef.T @ self._X[:, c0:min(c0 + C, e)].to(self.dot_dtype)).to(self.dtype)
                 for s, e in self._columns(group) for c0 in range(s, e, C)]
        return torch.cat(parts, dim=1) if parts else torch.empty((k, 0), dtype=self.dtype, device=self.device)

    # --- persistence -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the *same* window after a restart (torch.save-able, weights_only-safe).

        Like `nn.Module.state_dict`, "buffer" is a reference to the live ring buffer ((W+1) × P), not a copy (a copy
        would double its memory); save it before the next push.
        """
        ext = self._G_ext
        return {
            "version": _STATE_VERSION,
            "window": self.W,
            "atom_sizes": list(self.atom_sizes),
            "groups": {g: list(a) for g, a in self.groups.items()},
            "buffer": self._X,
            "order": list(self._order),
            "spare": self._spare,
            "n_pushed": self._n_pushed,
            "gram": {g: torch.from_numpy(self._G[i].copy()) for i, g in enumerate(self._group_names)},
            "extended_gram": None if ext is None else {g: torch.from_numpy(ext[i].copy())
                                                       for i, g in enumerate(self._group_names)},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict` into a window built with the same W, atoms and groups (else ShapeMismatchError).

        A version-1 state (W slots written round-robin from ``head``, no spare) is laid into slots 0..W−1 with the
        spare at slot W; the window, its Grams and every later dot are the same as if it had never been saved.
        """
        version = state.get("version")
        if version not in (1, _STATE_VERSION):
            raise SpectralEdgeError(f"unsupported RollingGram state version {version!r}")
        mine = (self.W, self.atom_sizes, self.groups)
        theirs = (int(state["window"]), list(state["atom_sizes"]), {g: list(a) for g, a in state["groups"].items()})
        if mine != theirs:
            raise ShapeMismatchError(f"state is for (W, atom_sizes, groups) = {theirs}, this window is {mine}")
        buf = state["buffer"]
        rows = self.W if version == 1 else self.W + 1
        if tuple(buf.shape) != (rows, self.P) or buf.dtype != self.dtype:
            # A cast on load would silently change the stored rows, and with them every later dot.
            raise ShapeMismatchError(f"state buffer is {tuple(buf.shape)} {buf.dtype}, this window stores "
                                     f"{(rows, self.P)} {self.dtype}")
        n_pushed = int(state["n_pushed"])
        grams = [state["gram"][g].numpy().astype(np.float64) for g in self._group_names]
        if version == 1:
            self._X[: self.W].copy_(buf)
            self._X[self.W].zero_()
            head, w = int(state["head"]), min(self.W, n_pushed)
            self._order = list(range(w)) if n_pushed < self.W else [(head + i) % self.W for i in range(self.W)]
            self._spare = w if n_pushed < self.W else self.W
            self._G = np.zeros((len(grams), self.W + 1, self.W + 1))
            self._G[:, : self.W, : self.W] = np.stack(grams)
        else:
            self._X.copy_(buf)  # stays in this window's dtype/device
            self._order = [int(i) for i in state["order"]]
            self._spare = int(state["spare"])
            self._G = np.stack(grams)
        self._n_pushed = n_pushed
        ext = state["extended_gram"]
        self._G_ext = None if ext is None else np.stack([ext[g].numpy().astype(np.float64)
                                                         for g in self._group_names])

    def __repr__(self) -> str:
        return (f"RollingGram(W={self.W}, w={self.w}, P={self.P}, atoms={len(self.atom_sizes)}, "
                f"groups={self._group_names}, dtype={self.dtype}, device={self.device})")
