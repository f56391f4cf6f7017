"""``SpectralMonitor``: the rolling update-Gram spectra of a live torch training run.

Attach it in a few lines::

    monitor = SpectralMonitor(model, optimizer, window=10, every=100, groups={"all": "*", "attn": attn_names},
                              path="run.jsonl")
    for step in range(n):           # the training loop is unchanged
        ...; optimizer.step()
    monitor.close()

**Capture point.** The monitor is an ``optimizer.register_step_post_hook``: it reads the parameters right after
``optimizer.step()`` returns, i.e. after the full update *including* decoupled weight decay (PyTorch's AdamW
applies θ ← θ − ηωθ inside ``step``), after any gradient clipping done before ``step``, and before an LR
scheduler's ``step``. Every ``every`` = Δs optimizer steps it forms δ_t = θ_{s_t} − θ_{s_{t−1}} (the author's
checkpoint differences, spectral-edge-math §1.1) and pushes it into a :class:`~numerics.gram.RollingGram`;
the first snapshot θ_{s_0} is taken when the monitor is attached.

**Non-interference.** The monitor only reads parameters (under ``torch.no_grad``), draws no random numbers
and does not touch gradients or optimizer state, so a run is bitwise identical with and without it
(tested). Its own state (ring buffer, last snapshot, step count) is in :meth:`state_dict`, so a resumed run
continues the same window.

Per capture and per group it writes one ``spectrum`` record: the window's σ_j, λ_j, ratios, k*, R, g, g₂₃,
PC1 fraction, k95, drift speed, the Marchenko–Pastur/BBP numbers, and the α_j variants that consecutive
windows allow (α-DK with ‖ΔC‖_F, α-DK with ‖ΔG‖_F, α-rot, α-half), each under its registry name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from numerics.errors import SpectralEdgeError, ZeroWindowError
from numerics.gram import RollingGram
from numerics.layout import ParamLayout
from numerics.sketch import JLSketch
from numerics.spectrum import spectrum_from_gram
from numerics.stability import alpha as alpha_of
from numerics.stability import delta_C_norm, delta_G_norm
from numerics.trajectory import TrajectoryWriter
from theory import registry

__all__ = ["SpectralMonitor"]

GroupSpec = Callable[[str, torch.Tensor], bool] | Sequence[str] | str
RecordCallback = Callable[[dict[str, Any]], None]

# α variants recorded live by default: the registry default and the rotation between consecutive windows. Every
# other variant is recomputable from the stored Gram (``gram`` in each record), so nothing is lost by leaving it out.
DEFAULT_ALPHAS = ("dk_deltaC", "rot")


def _normalise_groups(model: torch.nn.Module, groups: Mapping[str, GroupSpec] | None) -> dict[str, Any] | None:
    if groups is None:
        return None
    out: dict[str, Any] = {}
    for name, spec in groups.items():
        if isinstance(spec, str):
            if spec != "*":
                raise SpectralEdgeError(f"group {name!r}: a string selector must be '*' (all params), got {spec!r}")
            out[name] = lambda n, p: p.requires_grad
        else:
            out[name] = spec
    return out


class SpectralMonitor:
    """Record rolling-window update-Gram spectra of ``model`` every ``every`` steps of ``optimizer``.

    Args:
        model, optimizer: the training pair; the hook goes on ``optimizer``.
        window: W, the number of updates per window (≥ 2); adaptive start w = min(W, #updates).
        every: Δs, optimizer steps between snapshots (δ_t spans Δs steps).
        groups: name → selector (``"*"``, a list of parameter names, or a predicate ``(name, param) -> bool``);
            default ``{"all": "*"}``. All groups come from one pass over the stored updates.
        path: trajectory file to append to (None: keep records in memory only, see ``records``).
        provenance, meta: written to the trajectory header.
        kstar: registry name of the k* definition (default ``"argmax"``).
        sketch_dim: if given, store a seeded JL sketch of dimension d (e.g. 10W) per atom instead of P floats.
        sketch_seed: seed of the sketch (a diagnostics stream: it never touches the training RNG).
        storage_dtype: dtype of the stored updates (float32 default; bfloat16 halves memory, see docs).
        process_group: torch.distributed group whose ranks hold shards of the parameters.
        callbacks: called with each spectrum record (online predictors hook in here).
        alphas: α_j variants (registry names) computed live; default ``("dk_deltaC", "rot")``. The record also
            stores the (extended) Gram, from which every variant can be recomputed offline.
        keep_records: keep records in memory (``records``) even when writing a file.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        window: int = 10,
        every: int = 100,
        groups: Mapping[str, GroupSpec] | None = None,
        path: str | os.PathLike[str] | None = None,
        provenance: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        kstar: str = "argmax",
        sketch_dim: int | None = None,
        sketch_seed: int = 0,
        storage_dtype: torch.dtype = torch.float32,
        process_group: Any = None,
        callbacks: Sequence[RecordCallback] = (),
        keep_records: bool = True,
        alphas: Sequence[str] = DEFAULT_ALPHAS,
    ) -> None:
        if every < 1:
            raise SpectralEdgeError(f"every (Δs) must be a positive number of steps, got {every}")
        self.model, self.optimizer = model, optimizer
        self.window, self.every, self.kstar = int(window), int(every), kstar
        self.alphas = tuple(alphas)
        for name in self.alphas:
            registry.get("alpha", name)  # unknown names fail here, not at the first capture
        self.layout = ParamLayout.from_model(model, _normalise_groups(model, groups))
        first = next((p for p in model.parameters() if p.requires_grad), None)
        device = first.device if first is not None else torch.device("cpu")
        self.sketch = JLSketch(sketch_dim, sketch_seed) if sketch_dim else None
        atom_sizes = list(self.layout.atom_sizes)
        self._row_sizes = [sketch_dim] * len(atom_sizes) if sketch_dim else atom_sizes
        self.gram = RollingGram(
            self.window,
            self._row_sizes,
            self.layout.groups,
            dtype=storage_dtype,
            device=device,
            process_group=process_group,
        )
        # Snapshots keep the parameters' precision even when updates are stored in bfloat16: rounding θ to
        # bf16 before differencing would swamp δ (|δ| ≪ |θ|).
        snap_dtype = first.dtype if first is not None else torch.float32
        self._scratch = torch.empty(self.layout.P if sketch_dim else 0, dtype=snap_dtype, device=device)
        self._prev = torch.empty(sum(self._row_sizes), dtype=snap_dtype, device=device)
        self._cur = torch.empty_like(self._prev)
        self._take_snapshot(self._prev)
        self.step = 0
        #: group → the last spectrum record written (what measurements read instead of recomputing the spectrum)
        self.latest: dict[str, dict[str, Any]] = {}
        self.callbacks = list(callbacks)
        self.keep_records = keep_records
        self.records: list[dict[str, Any]] = []
        self._writer: TrajectoryWriter | None = None
        if path is not None:
            header_meta = {
                "window": self.window,
                "every": self.every,
                "kstar": kstar,
                "groups": {
                    g: {"P": d, "params": self.layout.param_names(g)} for g, d in self.layout.group_dims().items()
                },
                "storage_dtype": str(storage_dtype).replace("torch.", ""),
                "sketch_dim": sketch_dim,
                "sketch_seed": sketch_seed if sketch_dim else None,
                "capture_point": "optimizer step post-hook (after the update incl. decoupled weight decay)",
                **dict(meta or {}),
            }
            self._writer = TrajectoryWriter(path, provenance=provenance, meta=header_meta)
        self._handle: Any = optimizer.register_step_post_hook(self._on_step)

    # -- capture ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _take_snapshot(self, out: torch.Tensor) -> None:
        """θ (or its per-atom sketch Φθ) into ``out``."""
        if self.sketch is None:
            self.layout.gather(out)
            return
        self.layout.gather(self._scratch)
        d = self.sketch.dim
        for i, (start, end) in enumerate(self.layout.atom_slices):
            out[i * d : (i + 1) * d] = self.sketch.apply(self._scratch[start:end], atom=i)

    def _on_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.step += 1
        if self.step % self.every == 0:
            self.capture()

    @torch.no_grad()
    def capture(self) -> list[dict[str, Any]]:
        """Take a snapshot now, push δ_t = θ_now − θ_prev, and record the spectra of every group."""
        self._take_snapshot(self._cur)
        # δ overwrites the old snapshot in place, then the buffers swap roles: two P-sized buffers in all.
        delta = torch.sub(self._cur, self._prev, out=self._prev)
        self.gram.push(delta if delta.dtype == self.gram.dtype else delta.to(self.gram.dtype))
        self._prev, self._cur = self._cur, self._prev
        return self._record_all()

    def _record_all(self) -> list[dict[str, Any]]:
        out = []
        for group in self.layout.groups:
            rec = self._spectrum_record(group)
            if rec is None:
                continue
            if self._writer is not None:
                self._writer.write("spectrum", self.step, **rec)
            full = {"type": "spectrum", "step": self.step, **rec}
            self.latest[group] = full
            if self.keep_records:
                self.records.append(full)
            for cb in self.callbacks:
                cb(full)
            out.append(full)
        return out

    def _spectrum_record(self, group: str) -> dict[str, Any] | None:
        w = self.gram.w
        if w < 2:
            return None
        rec: dict[str, Any] = {"group": group, "w": w}
        try:
            spec = spectrum_from_gram(self.gram.gram(group), P=self.layout.group_dims()[group], kstar=self.kstar)
        except ZeroWindowError as exc:
            rec["degenerate"] = str(exc)
            return rec
        rec.update(spec.to_dict())
        g_ext = self.gram.extended_gram(group)
        # The raw Gram (extended to the previous window when there is one) makes the record self-contained:
        # any spectral quantity or α variant can be recomputed from the file later.
        rec["gram"] = (g_ext if g_ext is not None else spec.G).tolist()
        rec["gram_extended"] = g_ext is not None
        alphas: dict[str, list[float]] = {}
        if g_ext is not None:
            rec["dC_norm"] = float(delta_C_norm(g_ext))
            rec["dG_norm"] = float(delta_G_norm(g_ext))
        for name in self.alphas:
            source = g_ext if name != "half" else spec.G
            if source is None:
                continue
            try:
                alphas[name] = np.asarray(alpha_of(source, name)).tolist()
            except SpectralEdgeError:  # e.g. α-half needs w ≥ 4
                pass
        if alphas:
            rec["alpha"] = alphas
        return rec

    # -- user API --------------------------------------------------------------------------------------------
    def log(self, step: int | None = None, **scalars: Any) -> None:
        """Append an ``eval`` record (accuracies, losses, ...) at ``step`` (default: the monitor's step)."""
        s = self.step if step is None else int(step)
        if self._writer is not None:
            self._writer.write("eval", s, **scalars)
        if self.keep_records:
            self.records.append({"type": "eval", "step": s, **scalars})

    def event(self, kind: str, step: int | None = None, **fields: Any) -> None:
        """Append a free-form record (``resume``, ``grokked``, a detector firing, ...)."""
        s = self.step if step is None else int(step)
        if self._writer is not None:
            self._writer.write(kind, s, **fields)
        if self.keep_records:
            self.records.append({"type": kind, "step": s, **fields})

    def detach(self) -> None:
        """Remove the optimizer hook; the monitor stops observing."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def close(self, **fields: Any) -> None:
        """Detach, write an ``end`` record and close the trajectory file."""
        self.detach()
        if self._writer is not None:
            self._writer.write("end", self.step, **fields)
            self._writer.close()
            self._writer = None

    def __enter__(self) -> SpectralMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same window after a restart."""
        return {"step": self.step, "prev": self._prev.clone(), "gram": self.gram.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["prev"].shape != self._prev.shape:
            raise SpectralEdgeError(
                f"monitor state holds {state['prev'].numel()} snapshot entries, this model needs {self._prev.numel()}"
            )
        self.step = int(state["step"])
        self._prev.copy_(state["prev"])
        self.gram.load_state_dict(state["gram"])
        # the last records again, from the restored window (its Gram is all they depend on); nothing is written
        self.latest = {g: {"type": "spectrum", "step": self.step, **rec} for g in self.layout.groups
                       if (rec := self._spectrum_record(g)) is not None}
        self.event("resume")
