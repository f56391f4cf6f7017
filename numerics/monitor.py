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
checkpoint differences, theory reference §1.1) and pushes it into a :class:`~numerics.gram.RollingGram`;
the first snapshot θ_{s_0} is taken when the monitor is attached.

**Non-interference.** The monitor only reads parameters (under ``torch.no_grad``), draws no random numbers
and does not touch gradients or optimizer state, so a run is bitwise identical with and without it
(tested). Its own state (ring buffer, last snapshot, step count) is in :meth:`state_dict`, so a resumed run
continues the same window.

**Steps.** The monitor counts optimizer steps itself (``step``); ``log(step, ...)`` with another number (gradient
accumulation counting micro-batches, an eval counter in epochs) warns once, naming both (``strict_steps=True``:
raises).

**Non-finite updates.** δ_t is pushed only when every dot is finite, and the snapshot θ_{s_{t−1}} advances only
after the push is accepted, so after a rejected update the next capture differences against the last accepted
snapshot. ``on_nonfinite="raise"`` (default) raises ``NonFiniteUpdateError``; ``"skip"`` writes a ``nonfinite``
record per affected group and training goes on.

**Precision.** The snapshot is float32 for float32/bfloat16/float16 parameters (bf16 and fp16 upcast exactly) and
float64 when any selected parameter is float64 or the storage is float64: every parameter keeps (at least) its own
precision, whatever the first parameter's dtype.

**Files and provenance.** With ``path`` the header carries provenance recorded by the monitor itself (package
versions, the working directory's git commit, device, the optimiser's class and per-group hyper-parameters, and
``config = {lr, weight_decay, optimizer}`` unless the caller passes a ``config``), merged with the caller's. An
existing non-empty file is refused unless ``resume=True`` (continue it: call :meth:`load_state_dict` before the
next optimizer step; the header's window, Δs and groups must match) or ``overwrite=True`` (replace it).

Per capture and per group it writes one ``spectrum`` record: the window's σ_j, λ_j, ratios, k*, R, g, g₂₃,
PC1 fraction, k95, drift speed, the Marchenko–Pastur/BBP numbers, and the α_j variants that consecutive
windows allow (α-DK with ‖ΔC‖_F, α-DK with ‖ΔG‖_F, α-rot, α-half), each under its registry name.

**Cost per capture.** On the training thread, with ``capture_threads`` torch threads (1 on CPU: the passes are
memory-bound, and a parallel region on a loaded machine stalls): the snapshot (one ``torch._foreach_copy_`` into
views made once), δ = θ_now − θ_prev written straight into the window's spare row (exact updates in the snapshot's
dtype; no row copy, and no finiteness pass: a NaN/Inf shows up in the dots and leaves θ_prev and the window as they
were), the push (W + 1 dots per atom, one numpy update of every group's Gram) and one copy of the groups' extended
Grams, queued. **Records are built in batches** at flush
points — every ``flush_every`` captures, and whenever anything reads or writes after them (``latest``, ``records``,
``log``, ``event``, ``sync``, ``state_dict``, ``load_state_dict``, ``capture``, a rejected update, ``close``), and
at every capture when a callback is attached (callbacks see each record at its step) — so every read sees every
record of the steps taken so far, and the file holds the same records in the same order. A batch decomposes all
its windows in one stacked ``eigh`` and computes the derived quantities and α variants vectorised
(``_BatchSpectra``); windows it does not cover (adaptive start, clipped or zero eigenvalues, α variants other than
dk_deltaC and rot) go through the one-window builder. Both give the same records, byte for byte (tested, and
against the verbatim earlier monitor). By default (``background=True``) the batches the optimizer hook flushes are
built on the monitor's worker thread, so the training thread only captures; ``background=False`` builds them on the
training thread at the flushing step.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import queue
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from numerics.errors import NonFiniteUpdateError, SpectralEdgeError, ZeroWindowError
from numerics.gram import RollingGram
from numerics.layout import ParamLayout, Selector
from numerics.provenance import merge_provenance, run_provenance
from numerics.sketch import JLSketch
from numerics.spectrum import GramEigh, _json_float
from numerics.stability import ConsecutiveWindows, _delta_C, _delta_G
from numerics.stability import alpha as alpha_of
from numerics.trajectory import TrajectoryWriter, read_trajectory
from theory import bbp, registry
from theory import kstar as kstar_defs

__all__ = ["SpectralMonitor", "StepMismatchWarning", "spectrum_record"]

_EPS = float(np.finfo(np.float64).eps)

GroupSpec = Selector
RecordCallback = Callable[[dict[str, Any]], None]

# α variants recorded live by default: the registry default and the rotation between consecutive windows. Every
# other variant is recomputable from the stored Gram (``gram`` in each record), so nothing is lost by leaving it out.
DEFAULT_ALPHAS = ("dk_deltaC", "rot")


class StepMismatchWarning(UserWarning):
    """``log(step)`` was given a step in other units than the monitor's optimizer-step count."""


class _RecordWorker:
    """One daemon thread that runs the monitor's deferred record jobs in submission order.

    A job that raises keeps its exception in ``error``; jobs after it are skipped (as if training had stopped at the
    failing capture, which it does in the synchronous path) until the training thread takes the error with
    :meth:`drain`, which waits for the queue to empty first.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job()
            except BaseException as exc:  # handed to the training thread at its next call into the monitor
                self.error = exc
            finally:
                job = None  # drop the job (and what it holds) before waiting for the next one
                self._jobs.task_done()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def drain(self) -> BaseException | None:
        """Wait until every submitted job has run (or been skipped); return and clear the error, if any."""
        if threading.current_thread() is not self._thread:  # else: a finaliser run by this thread's own collection
            self._jobs.join()
        exc, self.error = self.error, None
        return exc

    def stop(self) -> BaseException | None:
        """Drain, then end the thread; returns the error not yet taken."""
        exc = self.drain()
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        return exc


def _stop_worker(worker: _RecordWorker) -> None:
    """Finaliser of a monitor that was never closed (garbage collected, or the interpreter exits): its pending
    records are still written, and an error no call took is reported rather than lost."""
    exc = worker.stop()
    if exc is not None:
        warnings.warn(f"SpectralMonitor: building or writing a record failed in the background and the monitor was "
                      f"not called again: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=1)


def _snapshot_dtype(params: Sequence[torch.Tensor], storage_dtype: torch.dtype) -> torch.dtype:
    """float64 when the storage or any selected parameter is float64, else float32 (bf16/fp16 upcast exactly)."""
    if storage_dtype == torch.float64 or any(p.dtype == torch.float64 for p in params):
        return torch.float64
    return torch.float32


class _BatchSpectra:
    """The spectrum records of many full windows at once, from their extended Grams E (M × (W+1) × (W+1)).

    One stacked ``eigh`` decomposes every current window E[1:, 1:] and every previous window E[:-1, :-1]; the
    record's quantities are then computed for all M windows by the same elementwise operations and per-row
    reductions that ``GramEigh.spectrum(...).to_dict()`` and ``ConsecutiveWindows`` apply to one window (a stacked
    ``eigh`` runs the same LAPACK call per matrix; a reduction along a contiguous last axis sums each row as the
    one-window reduction sums it), and the order-sensitive scalar steps (‖ΔC‖_F, ‖ΔG‖_F, the α-rot ``einsum``, k*
    definitions other than ``argmax``, d_crit) run per window through the very functions the one-window path calls.

    ``fast[r]`` marks the windows covered: both windows with every eigenvalue at or above the zero floor w·eps·λ₁
    (no clipping, no exact zero, no +inf ratio or NaN α). The others go through ``SpectralMonitor._build_record``.
    Raises ``SpectralEdgeError`` when a Gram fails ``as_gram``'s checks (the caller then builds every record one by
    one, which raises at that record).
    """

    ALPHAS = frozenset({"dk_deltaC", "rot"})

    def __init__(self, E: np.ndarray, P: Sequence[int], kstar: str) -> None:
        M, m, _ = E.shape
        w = m - 1
        self.w, self.P, self.kstar = w, [int(p) for p in P], kstar
        self.kstar_fn = registry.get("kstar", kstar)
        self.dcrit_name = registry.default_name("d_crit")
        self.dcrit_fn = registry.get("d_crit", None)
        G = np.ascontiguousarray(E[:, 1:, 1:])
        for what, X in (("G_ext", E), ("G", G)):
            self._check(X, what)
        A_ext = (E + E.swapaxes(1, 2)) / 2  # as_gram(G_ext), per matrix
        B = np.ascontiguousarray(A_ext[:, :-1, :-1])
        self._check(B, "G")
        both = np.concatenate([(G + G.swapaxes(1, 2)) / 2, (B + B.swapaxes(1, 2)) / 2])  # as_gram(now), as_gram(prev)
        lam_a, U_a = np.linalg.eigh(both)
        self.A, self.A_ext, self.lam_a, self.U_a, self.E = both[:M], A_ext, lam_a, U_a, E
        lam = np.ascontiguousarray(lam_a[:, ::-1])  # descending, as _spectrum_from_eigh
        top, low = lam[:, 0], lam[:, -1]
        floor = (w * _EPS) * np.maximum(top, 0.0)
        covered = (top > 0) & (low >= floor)  # nothing clipped or zeroed: the cleaned λ are the raw ones
        self.fast = (covered[:M] & covered[M:]).tolist()
        U = U_a[:, :, ::-1]
        idx = np.argmax(np.abs(U), axis=1)  # sign fix: each u_j's largest-|entry| (first on ties) positive
        signs = np.where(np.take_along_axis(U, idx[:, None, :], axis=1)[:, 0, :] < 0, -1.0, 1.0)
        self.u = np.ascontiguousarray(U * signs[:, None, :])
        lam_n = lam[:M]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # uncovered rows: λ < 0, zeros
            sigma = np.sqrt(lam)
            sig_n = sigma[:M]
            ratios = sig_n[:, :-1] / sig_n[:, 1:]
            if self.kstar_fn.fn is kstar_defs.argmax:
                k = np.argmax(ratios, axis=1) + 1
            else:  # another definition: its own function, window by window (uncovered rows may not satisfy it)
                k = np.array([int(self.kstar_fn(s)) if f else 1 for s, f in zip(sig_n, self.fast, strict=True)])
            rows = np.arange(M)
            R = ratios[rows, k - 1]
            g = sig_n[rows, k - 1] - sig_n[rows, k]
            d_bar = (sig_n[rows, k - 1] + sig_n[rows, k]) / 2
            d = np.abs(lam_n[:, :, None] - lam_n[:, None, :])
            d[:, np.arange(w), np.arange(w)] = np.inf
            gap = d.min(axis=2)
            pc1 = lam_n[:, 0] / lam_n.sum(axis=1)
            s2 = sig_n**2
            k95 = np.minimum((np.cumsum(s2 / s2.sum(axis=1)[:, None], axis=1) < 0.95).sum(axis=1) + 1, w)
            g_sum = self.A.reshape(M, -1).sum(axis=1)
            tail = lam_n[:, w // 2 :].sum(axis=1) / (w - w // 2)  # mean of the bottom half (noise_scale_nu)
            self.gap_min = np.minimum(gap, lam_n)
            self.den_rot = sigma[M:] * sig_n
        self.sigma_l, self.lam_l = sig_n.tolist(), lam_n.tolist()
        self.ratios_l, self.gap_l = ratios.tolist(), gap.tolist()
        self.k_l, self.R_l, self.g_l, self.dbar_l = k.tolist(), R.tolist(), g.tolist(), d_bar.tolist()
        self.g23_l = (lam_n[:, 1] - lam_n[:, 2]).tolist()
        self.pc1_l, self.k95_l, self.gsum_l, self.tail_l = pc1.tolist(), k95.tolist(), g_sum.tolist(), tail.tolist()
        self.sig_last = sig_n[:, -1].tolist()

    @staticmethod
    def _check(X: np.ndarray, what: str) -> None:
        """``as_gram``'s refusals, for every matrix of a stack (the message is ``as_gram``'s, for the first one)."""
        from numerics.spectrum import as_gram  # local: used on the failure paths only, for as_gram's own message

        finite = np.isfinite(X).all(axis=(1, 2))
        if not finite.all():
            as_gram(X[int(np.argmin(finite))], what=what)  # raises NonFiniteUpdateError
        asym = np.abs(X - X.swapaxes(1, 2)).max(axis=(1, 2)) > 1e-10 * np.abs(X).max(axis=(1, 2))
        if asym.any():
            as_gram(X[int(np.argmax(asym))], what=what)  # raises ShapeMismatchError
        if not finite.all() or asym.any():  # (as_gram agrees with the checks above, so this is not reached)
            raise SpectralEdgeError(f"{what} refused by the batched checks")

    def eigh(self, r: int) -> GramEigh:
        """The current window's decomposition of row ``r``, as ``GramEigh.of`` makes it (the next record's prev)."""
        return GramEigh(A=self.A[r], lam=self.lam_a[r], U=self.U_a[r])

    def record(self, r: int, group: str, w: int, alphas: Sequence[str]) -> dict[str, Any]:
        """Row ``r``'s record, key for key and value for value ``SpectralMonitor._build_record``'s."""
        P = self.P[r]
        nu = float(math.sqrt(max(self.tail_l[r], 0.0) / P))
        dc = float(self.dcrit_fn(nu, P, w))
        rec: dict[str, Any] = {
            "group": group, "w": w, "sigma": self.sigma_l[r], "lam": self.lam_l[r], "ratios": self.ratios_l[r],
            "kstar": self.k_l[r], "R": _json_float(self.R_l[r]), "g": self.g_l[r], "d_bar": self.dbar_l[r],
            "g23": self.g23_l[r], "gap": self.gap_l[r], "pc1_frac": self.pc1_l[r], "k95": self.k95_l[r],
            "drift_speed": math.sqrt(max(self.gsum_l[r], 0.0)) / w,
            "definitions": {"kstar": self.kstar, "d_crit": self.dcrit_name},
            "P": P, "nu": nu, "mp_bulk_edges": [float(e) for e in bbp.mp_bulk_edges(nu, P, w)], "d_crit": dc,
            "bbp_ratio": _json_float(float(self.sig_last[r] / dc) if dc > 0 else math.inf),
            "gram": self.E[r].tolist(), "gram_extended": True,
        }
        A_ext = self.A_ext[r]
        dC = _delta_C(A_ext)
        rec["dC_norm"] = dC
        rec["dG_norm"] = _delta_G(A_ext)
        out: dict[str, list[float]] = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for name in alphas:
                if name == "dk_deltaC":  # stability._dk_alpha(‖ΔC‖_F, min(gap, λ), C = 1)
                    gm = self.gap_min[r]
                    a = 1.0 - 1.0 * dC**2 / gm**2
                    a = np.where(gm == 0, 1.0 if dC == 0 else 0.0, a)
                    out[name] = np.maximum(0.0, a).tolist()
                elif name == "rot":  # stability._overlap(prev, now, A_ext[:-1, 1:], w)
                    M = len(self.A)
                    num = np.einsum("ij,ik,kj->j", self.u[M + r][:, :w], A_ext[:-1, 1:], self.u[r][:, :w])
                    den = self.den_rot[r]
                    out[name] = np.where(den > 0, np.minimum(np.abs(num) / den, 1.0), np.nan).tolist()
        if out:
            rec["alpha"] = out
        return rec


def spectrum_record(group: str, w: int, G: np.ndarray, g_ext: np.ndarray | None, *, P: int, kstar: str,
                    alphas: Sequence[str], eigh_last: dict[str, GramEigh]) -> dict[str, Any]:
    """The ``spectrum`` record of a window of ``w`` updates with Gram ``G`` (extended Gram ``g_ext`` or None), as the
    monitor and the ensemble (``verify.harness.ensemble``) write it: the window's spectrum
    (``GramEigh.spectrum(P, kstar).to_dict()``), the Gram itself, ‖ΔC‖_F, ‖ΔG‖_F and the α variants of consecutive
    windows. ``eigh_last`` (group → the previous record's decomposition) is updated."""
    # One eigendecomposition of G serves the spectrum and every α variant (``ConsecutiveWindows``); the previous
    # window's comes from the previous record of the group: the values are those of ``spectrum_from_gram`` and
    # ``stability.alpha`` called one by one.
    rec: dict[str, Any] = {"group": group, "w": w}
    eig = GramEigh.of(G)
    prev, eigh_last[group] = eigh_last.get(group), eig
    try:
        spec = eig.spectrum(P=P, kstar=kstar)
    except ZeroWindowError as exc:
        rec["degenerate"] = str(exc)
        return rec
    rec.update(spec.to_dict())
    rec["gram"] = (g_ext if g_ext is not None else spec.G).tolist()
    rec["gram_extended"] = g_ext is not None
    out: dict[str, list[float]] = {}
    pair = None
    if g_ext is not None:
        pair = ConsecutiveWindows(g_ext, now=eig, prev=prev)
        rec["dC_norm"] = float(pair.dC_norm)
        rec["dG_norm"] = float(pair.dG_norm)
    for name in alphas:
        if name != "half" and pair is None:
            continue
        try:
            value = alpha_of(spec.G, name) if name == "half" else pair.alpha(name)  # type: ignore[union-attr]
            out[name] = np.asarray(value).tolist()
        except SpectralEdgeError:  # e.g. α-half needs w ≥ 4
            pass
    if out:
        rec["alpha"] = out
    return rec


class SpectralMonitor:
    """Record rolling-window update-Gram spectra of ``model`` every ``every`` steps of ``optimizer``.

    Args:
        model, optimizer: the training pair; the hook goes on ``optimizer``.
        window: W, the number of updates per window (≥ 2); adaptive start w = min(W, #updates).
        every: Δs, optimizer steps between snapshots (δ_t spans Δs steps).
        groups: name → selector: a glob (``"*"``, ``"*attn*weight"``), a compiled regex or ``"re:<pattern>"``, a
            list of parameter names, or a predicate ``(name, param) -> bool``; names without the ``_orig_mod.`` /
            ``module.`` wrapper prefixes. Default ``{"all": "*"}``. All groups come from one pass over the updates.
        path: trajectory file to write (None: keep records in memory only, see ``records``). An existing
            non-empty file is refused unless ``resume`` or ``overwrite``.
        provenance, meta: written to the trajectory header; ``provenance`` is merged over what the monitor
            records itself (versions, git commit of the working directory, device, optimiser, config).
        resume: continue the run already in ``path`` (call :meth:`load_state_dict` before the next step).
        overwrite: replace an existing ``path``.
        on_nonfinite: ``"raise"`` (default) or ``"skip"`` (write a ``nonfinite`` record, keep window and
            snapshot as they were, go on).
        strict_steps: raise instead of warning when ``log(step)`` disagrees with the optimizer-step count.
        kstar: registry name of the k* definition (default ``"argmax"``).
        sketch_dim: if given, store a seeded JL sketch of dimension d (e.g. 10W) per atom instead of P floats.
        sketch_seed: seed of the sketch (a diagnostics stream: it never touches the training RNG).
        storage_dtype: dtype of the stored updates (float32 default; bfloat16 halves memory, see docs).
        process_group: torch.distributed group whose ranks hold shards of the parameters.
        callbacks: called with each spectrum record (online predictors hook in here); a callback with an
            ``on_eval`` method also gets each eval record (``log``), one with ``on_record`` each other record
            (``event``).
        alphas: α_j variants (registry names) computed live; default ``("dk_deltaC", "rot")``. The record also
            stores the (extended) Gram, from which every variant can be recomputed offline.
        keep_records: keep records in memory (``records``) even when writing a file.
        background: build the batches of records that the optimizer hook flushes (every ``flush_every``
            captures) on a background thread, one batch per job, so the training thread only captures (default
            True; only when no callback is attached). The worker uses a core the step leaves idle: on the mod-97
            model on 2 CPU cores the overhead at Δs = 1 is about 0.03 of a step with it and 0.05 without
            (``make bench`` measures both); where no core is idle it costs what the synchronous build costs.
            ``latest``, ``records``, ``log``, ``event``, ``sync``, ``state_dict``, ``load_state_dict``, ``capture``
            and ``close`` first wait for the pending records; an error raised while building or writing one is
            raised in the training thread by the next of these calls or the next optimizer step (the records after
            it are not written, as when the step itself raises).
        flush_every: K, the number of captures whose records are built together (no callback);
            an error while building one is raised at the flush (the K-th capture's step, or the call that flushed),
            after the records before it are written.
        capture_threads: torch threads for the capture's passes over P on CPU (default 1; None: leave torch's
            setting); the count is restored after each capture. The values do not depend on it.
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
        resume: bool = False,
        overwrite: bool = False,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        strict_steps: bool = False,
        background: bool = True,
        flush_every: int = 64,
        capture_threads: int | None = 1,
    ) -> None:
        if every < 1:
            raise SpectralEdgeError(f"every (Δs) must be a positive number of steps, got {every}")
        if int(flush_every) < 1:
            raise SpectralEdgeError(f"flush_every must be a positive number of captures, got {flush_every}")
        if capture_threads is not None and int(capture_threads) < 1:
            raise SpectralEdgeError(f"capture_threads must be None or ≥ 1, got {capture_threads}")
        if on_nonfinite not in ("raise", "skip"):
            raise SpectralEdgeError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        if resume and overwrite:
            raise SpectralEdgeError("resume=True and overwrite=True exclude each other: continue the file or "
                                    "replace it")
        self.on_nonfinite, self.strict_steps = on_nonfinite, bool(strict_steps)
        self._warned_steps = False
        self._awaiting_state = False  # resume=True on an existing file: load_state_dict must come first
        self.model, self.optimizer = model, optimizer
        self.window, self.every, self.kstar = int(window), int(every), kstar
        self.alphas = tuple(alphas)
        for name in self.alphas:
            registry.get("alpha", name)  # unknown names fail here, not at the first capture
        self.layout = ParamLayout.from_model(model, groups)
        params = self.layout.parameters()
        device = params[0].device if params else torch.device("cpu")
        self.sketch = JLSketch(sketch_dim, sketch_seed) if sketch_dim else None
        atom_sizes = list(self.layout.atom_sizes)
        self._row_sizes = [sketch_dim] * len(atom_sizes) if sketch_dim else atom_sizes
        bounds = np.concatenate([[0], np.cumsum(self._row_sizes)]).astype(int).tolist()
        self._row_slices = list(itertools.pairwise(bounds))
        self.gram = RollingGram(
            self.window,
            self._row_sizes,
            self.layout.groups,
            dtype=storage_dtype,
            device=device,
            process_group=process_group,
        )
        # Snapshots keep every parameter's precision even when updates are stored in bfloat16: rounding θ to bf16
        # before differencing would swamp δ (|δ| ≪ |θ|); a bf16 parameter is upcast exactly, a float64 one kept.
        snap_dtype = _snapshot_dtype(params, storage_dtype)
        self._scratch = torch.empty(self.layout.P if sketch_dim else 0, dtype=snap_dtype, device=device)
        # A sketch Φθ is kept in float64 (rows of n_atoms·d entries): Φ(θ_now) − Φ(θ_prev) = Φδ cancels |θ|/|δ| ≫ 1,
        # and float32 would leave an error of ~6e-8·|θ|/|δ| in Φδ.
        self._prev = torch.empty(sum(self._row_sizes), dtype=torch.float64 if sketch_dim else snap_dtype,
                                 device=device)
        self._cur = torch.empty_like(self._prev)
        # Sketched rows are short, so δ gets its own buffer; an exact δ is formed in ``_cur`` and θ re-gathered.
        self._delta = torch.empty_like(self._prev) if sketch_dim else None
        # Exact updates stored in the snapshot's dtype: δ = θ_now − θ_prev is formed in the window's spare row (one
        # write of P numbers, no copy, and no finiteness pass: a rejected δ never touched θ_prev or the window).
        self._direct = sketch_dim is None and snap_dtype == storage_dtype
        # gather destinations: per snapshot buffer, one view per parameter (as ParamLayout.gather makes them)
        self._params = params
        self._gather_views = {id(buf): [v for _, v in self.layout.views(buf)]
                              for buf in (self._prev, self._cur, self._scratch) if buf.numel() == self.layout.P}
        # one torch._foreach_copy_ for the whole snapshot when every parameter has the snapshot's dtype and device
        self._foreach_gather = bool(params) and hasattr(torch, "_foreach_copy_") and all(
            p.dtype == snap_dtype and p.device == device for p in params)
        self.flush_every = int(flush_every)
        self.capture_threads = None if capture_threads is None or device.type != "cpu" else int(capture_threads)
        # captures whose records are not built yet: (step, w, groups × m × m Grams, extended?) in capture order
        self._pending: list[tuple[int, int, np.ndarray, bool]] = []
        self._group_P = self.layout.group_dims()
        # group → the eigendecomposition of the window of its last record: the next record's previous window
        self._eigh_last: dict[str, GramEigh] = {}
        self._take_snapshot(self._prev)
        self.step = 0
        self._latest: dict[str, dict[str, Any]] = {}
        self.callbacks = list(callbacks)
        self.keep_records = keep_records
        self.background = bool(background)
        self._worker: _RecordWorker | None = None
        self._finalizer: weakref.finalize | None = None
        self._records: list[dict[str, Any]] = []
        self._writer: TrajectoryWriter | None = None
        self.provenance: dict[str, Any] = dict(provenance or {})
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
            self.provenance = merge_provenance(run_provenance(optimizer, device), provenance)
            self._writer = self._open(Path(path), header_meta, resume=resume, overwrite=overwrite)
        self._handle: Any = optimizer.register_step_post_hook(self._on_step)

    def _open(self, path: Path, header_meta: dict[str, Any], *, resume: bool, overwrite: bool) -> TrajectoryWriter:
        """The trajectory writer, after the append policy: an existing run is continued or replaced, never mixed."""
        if path.exists() and path.stat().st_size > 0:
            if overwrite:
                path.unlink()
            elif not resume:
                raise SpectralEdgeError(
                    f"{path} already holds a trajectory; appending would mix this run's records with another run's "
                    "under that run's header. Pass resume=True to continue that run (then load_state_dict with its "
                    "checkpointed monitor state before the next step), overwrite=True to replace it, or another path")
            else:
                self._check_resumable(path, header_meta)
                self._awaiting_state = True
        return TrajectoryWriter(path, provenance=self.provenance, meta=header_meta)

    @staticmethod
    def _check_resumable(path: Path, header_meta: Mapping[str, Any]) -> None:
        old = read_trajectory(path).meta
        diffs = []
        for key in ("window", "every", "kstar", "sketch_dim"):
            if key in old and old[key] != header_meta[key]:
                diffs.append(f"{key}: file {old[key]!r}, now {header_meta[key]!r}")
        old_groups = {g: v.get("P") for g, v in (old.get("groups") or {}).items()}
        new_groups = {g: v["P"] for g, v in header_meta["groups"].items()}
        if old.get("groups") is not None and old_groups != new_groups:
            diffs.append(f"groups (name: P): file {old_groups}, now {new_groups}")
        if diffs:
            raise SpectralEdgeError(f"cannot resume {path}: it was written by a monitor with other settings ("
                                    + "; ".join(diffs) + "); pass overwrite=True to replace it, or another path")

    # -- capture ---------------------------------------------------------------------------------------------
    def _gather(self, out: torch.Tensor) -> None:
        """``self.layout.gather(out)`` through the views made once per buffer (one ``torch._foreach_copy_``, or one
        ``copy_`` per parameter when dtypes differ)."""
        views = self._gather_views.get(id(out))
        if views is None:
            self.layout.gather(out)
        elif self._foreach_gather:
            torch._foreach_copy_(views, self._params)
        else:
            for view, param in zip(views, self._params, strict=True):
                view.copy_(param)

    @contextlib.contextmanager
    def _capture_threads(self) -> Iterator[None]:
        """Run the capture's passes over P with ``capture_threads`` torch threads (CPU only), then restore the count.

        Why: each pass (snapshot, δ, dots) is memory-bound and one core streams a small model's
        P floats in ~0.1 ms, while a torch parallel region on a loaded machine waits for a descheduled worker thread
        (measured here: ~30 ms per region with 2 threads and 3 busy processes, 0.07 ms with one thread). The values
        are the same with any thread count (copies and elementwise differences; the dots are BLAS ``gemv``/``dot``).
        """
        n = self.capture_threads
        before = torch.get_num_threads() if n is not None else None
        if before is None or before == n:
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @torch.no_grad()
    def _take_snapshot(self, out: torch.Tensor) -> None:
        """θ (or its per-atom sketch Φθ) into ``out``."""
        if self.sketch is None:
            self._gather(out)
            return
        self._gather(self._scratch)
        d = self.sketch.dim
        for i, (start, end) in enumerate(self.layout.atom_slices):
            out[i * d : (i + 1) * d] = self.sketch.apply(self._scratch[start:end], atom=i)

    def _on_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._worker is not None and self._worker.error is not None:
            self._settle()  # a record of an earlier capture failed in the background: raise it here
        if self._awaiting_state:
            raise SpectralEdgeError("resume=True: call load_state_dict(<the checkpoint's monitor state>) before "
                                    "training continues; without it the step count restarts at 0 and the new records "
                                    "would mix with the file's")
        self.step += 1
        if self.step % self.every == 0:
            if self._capture(hook=True) is not None and (self.callbacks or len(self._pending) >= self.flush_every):
                if self.background and not self.callbacks:  # the batch goes to the worker, in capture order
                    entries, self._pending = self._pending, []
                    self._submit(lambda: self._emit(self._build(entries), ()))
                else:
                    self._settle_and_flush()  # (after any background records: a callback may have been added since)

    def _settle(self) -> None:
        """Wait for the records built in the background; raise the error one of them raised, if any."""
        if self._worker is not None:
            exc = self._worker.drain()
            if exc is not None:
                raise exc

    def _settle_and_flush(self) -> None:
        """Every record of the captures so far built and written (background ones first, then the pending ones)."""
        self._settle()
        self._flush()

    def _submit(self, job: Callable[[], None]) -> None:
        if self._worker is None:
            self._worker = _RecordWorker(f"SpectralMonitor-records-{id(self):x}")
            self._finalizer = weakref.finalize(self, _stop_worker, self._worker)
        self._worker.submit(job)

    @torch.no_grad()
    def capture(self) -> list[dict[str, Any]]:
        """Take a snapshot now, push δ_t = θ_now − θ_prev, and record the spectra of every group.

        The snapshot advances only if the window accepts δ_t; a non-finite δ_t leaves window and snapshot as they
        were and raises ``NonFiniteUpdateError`` (``on_nonfinite="raise"``) or writes ``nonfinite`` records
        (``"skip"``) and returns ``[]``. The records of this capture (and of every capture still pending) are
        built and written before it returns; it returns this capture's.
        """
        self._settle_and_flush()
        entry = self._capture(hook=False)
        built = self._flush()
        return built[-len(self.layout.groups):] if entry is not None else []

    @torch.no_grad()
    def _capture(self, *, hook: bool) -> tuple[int, int, np.ndarray, bool] | None:
        """Snapshot, δ and push; the capture's record inputs are queued (``_pending``: built at the next flush, on
        the background worker when the hook flushes with ``background`` and no callback). Returns the queued entry,
        or None (rejected update, or w < 2: no record)."""
        with self._capture_threads():
            self._take_snapshot(self._cur)
            if self._direct:  # δ written once, straight into the window's spare row; θ_prev is never touched
                delta = torch.sub(self._cur, self._prev, out=self.gram.next_row())
            elif self._delta is not None:  # sketch: small rows, δ in its own buffer, θ_now kept in _cur
                delta = torch.sub(self._cur, self._prev, out=self._delta)
            elif not self._all_finite(self._cur):  # θ_prev is finite, so δ is non-finite iff θ_now is
                self._reject(self._cur, NonFiniteUpdateError(
                    f"the update at step {self.step} has NaN/Inf entries; the window and the snapshot are left as "
                    "they were"))
                return None
            else:  # exact, other storage dtype: δ overwrites θ_prev in place (no second snapshot)
                delta = torch.sub(self._cur, self._prev, out=self._prev)
            try:
                if self._direct:
                    self.gram.commit()
                else:
                    self.gram.push(delta if delta.dtype == self.gram.dtype else delta.to(self.gram.dtype))
            except NonFiniteUpdateError as exc:
                if delta is self._prev:  # δ overwrote θ_prev: rebuild θ_prev = θ_now − δ before rejecting
                    torch.sub(self._cur, self._prev, out=self._prev)
                self._reject(delta, exc)
                return None
        self._prev, self._cur = self._cur, self._prev
        w = self.gram.w
        if w < 2:  # w = 1 has no ratio: no record yet
            return None
        # what the records depend on, copied now (groups × (W+1) × (W+1) numbers): the window moves on before they
        # are built. When the push evicted a row, the window's Gram is the extended one's trailing block.
        ext = self.gram.extended_grams()
        entry = (self.step, w, ext if ext is not None else self.gram.grams(), ext is not None)
        self._pending.append(entry)
        return entry

    def _flush(self) -> list[dict[str, Any]]:
        """Build and write the records of the pending captures, in capture order; returns them."""
        if not self._pending:
            return []
        entries, self._pending = self._pending, []
        return self._emit(self._build(entries), self.callbacks)

    @staticmethod
    def _all_finite(x: torch.Tensor) -> bool:
        """Whether every entry of ``x`` is finite: one sum (NaN/Inf anywhere make it non-finite), and the entrywise
        check only when the sum is not finite (it may overflow with finite entries)."""
        return math.isfinite(float(x.sum())) or bool(torch.isfinite(x).all())

    def _reject(self, values: torch.Tensor, exc: NonFiniteUpdateError) -> list[dict[str, Any]]:
        """A rejected update: raise (``on_nonfinite="raise"``) or write ``nonfinite`` records and go on."""
        if self.on_nonfinite == "raise":
            self._settle_and_flush()  # the records of the captures before this one are written before it is raised
            raise exc
        self._record_nonfinite(values, exc)
        return []

    def _record_nonfinite(self, delta: torch.Tensor, exc: NonFiniteUpdateError) -> None:
        """One ``nonfinite`` record per group whose δ holds NaN/Inf (every group if only a dot overflowed)."""
        bad = [g for g, atoms in self.layout.groups.items()
               if not all(bool(torch.isfinite(delta[s:e]).all()) for s, e in (self._row_slices[i] for i in atoms))]
        self._settle_and_flush()
        for group in bad or list(self.layout.groups):
            rec = {"group": group, "action": "skipped", "error": str(exc)}
            if self._writer is not None:
                self._writer.write("nonfinite", self.step, **rec)
            if self.keep_records:
                self._records.append({"type": "nonfinite", "step": self.step, **rec})

    def _emit(self, built: Iterator[tuple[int, dict[str, Any]]],
              callbacks: Sequence[RecordCallback]) -> list[dict[str, Any]]:
        """Write, keep and hand to the callbacks each (step, record) as it is built; runs in the training thread or
        the worker (then with no callbacks), so it touches ``_latest`` / ``_records``, never the waiting properties.
        A record that fails to build stops it there: the ones before it are written, none after."""
        out = []
        for step, rec in built:
            if self._writer is not None:
                self._writer.write("spectrum", step, **rec)
            full = {"type": "spectrum", "step": step, **rec}
            self._latest[rec["group"]] = full
            if self.keep_records:
                self._records.append(full)
            for cb in callbacks:
                cb(full)
            out.append(full)
        return out

    def _build(self, entries: Sequence[tuple[int, int, np.ndarray, bool]]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(step, spectrum record) of every group of every entry, in order: the windows that ``_BatchSpectra``
        covers (full, extended, every eigenvalue above the zero floor, α variants among dk_deltaC and rot) from
        one stacked decomposition and vectorised derived quantities, the others by ``_build_record``; the values
        are the same either way (tests/test_monitor_batched.py)."""
        groups = list(self.layout.groups)
        rows = [(i, gi) for i, e in enumerate(entries) if e[3] and e[1] >= 3 for gi in range(len(groups))]
        batch: _BatchSpectra | None = None
        if rows and set(self.alphas) <= _BatchSpectra.ALPHAS:
            E = np.stack([entries[i][2][gi] for i, gi in rows])
            P = [self._group_P[groups[gi]] for _, gi in rows]
            try:
                batch = _BatchSpectra(E, P, self.kstar)
            except SpectralEdgeError:  # a Gram the checks refuse: every record the one-by-one way, which raises there
                batch = None
        row_of = {key: r for r, key in enumerate(rows)} if batch is not None else {}
        last_fast: dict[str, int] = {}  # group → batch row of its last record built from the batch
        for i, (step, w, grams, extended) in enumerate(entries):
            for gi, group in enumerate(groups):
                r = row_of.get((i, gi))
                if batch is not None and r is not None and batch.fast[r]:
                    last_fast[group] = r
                    yield step, batch.record(r, group, w, self.alphas)
                    continue
                if group in last_fast and batch is not None:  # the previous window's decomposition, for α-rot
                    self._eigh_last[group] = batch.eigh(last_fast.pop(group))
                G = grams[gi][1:, 1:] if extended else grams[gi]
                yield step, self._build_record(group, w, G, grams[gi] if extended else None)
        for group, r in last_fast.items():
            if batch is not None:
                self._eigh_last[group] = batch.eigh(r)

    def _spectrum_record(self, group: str) -> dict[str, Any] | None:
        """The record of ``group``'s current window (None while w < 2)."""
        w = self.gram.w
        if w < 2:
            return None
        return self._build_record(group, w, self.gram.gram(group), self.gram.extended_gram(group))

    def _build_record(self, group: str, w: int, G: np.ndarray, g_ext: np.ndarray | None) -> dict[str, Any]:
        """The spectrum record of a window of ``w`` updates with Gram ``G`` (extended Gram ``g_ext`` or None):
        :func:`spectrum_record` with this monitor's P, k* definition, α variants and previous decompositions."""
        return spectrum_record(group, w, G, g_ext, P=self._group_P[group], kstar=self.kstar, alphas=self.alphas,
                               eigh_last=self._eigh_last)

    # -- user API --------------------------------------------------------------------------------------------
    @property
    def latest(self) -> dict[str, dict[str, Any]]:
        """group → the last spectrum record written (what measurements read instead of recomputing the spectrum);
        waits for records still being built in the background, so it holds the record of the last capture."""
        self._settle_and_flush()
        return self._latest

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records kept in memory (``keep_records``), in order; waits for those still being built."""
        self._settle_and_flush()
        return self._records

    def log(self, step: int | None = None, **scalars: Any) -> None:
        """Append an ``eval`` record (accuracies, losses, ...) at ``step`` (default: the monitor's step).

        ``step`` should count optimizer steps, as the monitor does: another number warns once (``strict_steps``:
        raises) naming both, and the record keeps the number given.
        """
        s = self.step if step is None else int(step)
        if s != self.step:
            self._step_mismatch(s)
        self._settle_and_flush()  # after the spectrum records of the steps before it, in the file as in ``records``
        if self._writer is not None:
            self._writer.write("eval", s, **scalars)
        rec = {"type": "eval", "step": s, **scalars}
        if self.keep_records:
            self._records.append(rec)
        for cb in self.callbacks:  # callbacks that forecast from the curves too (verify.studies.forecast)
            if hasattr(cb, "on_eval"):
                cb.on_eval(rec)

    def _step_mismatch(self, given: int) -> None:
        msg = (f"log(step={given}) but the monitor has counted {self.step} optimizer steps: the eval record and the "
               "spectra would be in different step units (gradient accumulation? an eval or epoch counter? a "
               "0-based loop index logged after optimizer.step()?). Log the number of optimizer steps taken, or "
               "call log() without a step to use the monitor's count")
        if self.strict_steps:
            raise SpectralEdgeError(msg)
        if not self._warned_steps:
            self._warned_steps = True
            warnings.warn(msg + " (warned once)", StepMismatchWarning, stacklevel=3)

    def event(self, kind: str, step: int | None = None, **fields: Any) -> None:
        """Append a free-form record (``resume``, ``grokked``, a detector firing, ...)."""
        s = self.step if step is None else int(step)
        self._settle_and_flush()
        if self._writer is not None:
            self._writer.write(kind, s, **fields)
        rec = {"type": kind, "step": s, **fields}
        if self.keep_records:
            self._records.append(rec)
        for cb in self.callbacks:
            if hasattr(cb, "on_record"):
                cb.on_record(rec)

    def detach(self) -> None:
        """Remove the optimizer hook; the monitor stops observing."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def sync(self) -> None:
        """Wait for the records being built, then fsync the trajectory file (the harness calls it before every
        checkpoint)."""
        self._settle_and_flush()
        if self._writer is not None:
            self._writer.sync()

    def close(self, **fields: Any) -> None:
        """Detach, write an ``end`` record and close the trajectory file (no ``end`` for a ``resume=True`` monitor
        whose state was never restored: the file is the earlier run's, and this one recorded nothing).

        The records still being built are written first and the background thread ends; an error one of them
        raised is raised after the file is closed."""
        self.detach()
        exc = None
        if self._worker is not None:
            exc = self._worker.stop()
            if self._finalizer is not None:
                self._finalizer.detach()
            self._worker = None
        if exc is None:
            try:
                self._flush()
            except BaseException as flush_exc:  # the file is still closed; the error is raised after
                exc = flush_exc
        self._pending = []
        if self._writer is not None:
            if not self._awaiting_state:  # a resume that never restored its state added nothing to end
                self._writer.write("end", self.step, **fields)
            self._writer.close()
            self._writer = None
        if exc is not None:
            raise exc

    def __enter__(self) -> SpectralMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same window after a restart (after the pending records are written)."""
        self._settle_and_flush()
        return {"step": self.step, "prev": self._prev.clone(), "gram": self.gram.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._settle_and_flush()
        if state["prev"].shape != self._prev.shape:
            raise SpectralEdgeError(
                f"monitor state holds {state['prev'].numel()} snapshot entries, this model needs {self._prev.numel()}"
            )
        self.step = int(state["step"])
        self._prev.copy_(state["prev"])  # an older state's snapshot in the parameters' dtype is upcast exactly
        self._awaiting_state = False
        self.gram.load_state_dict(state["gram"])
        # the last records again, from the restored window (its Gram is all they depend on); nothing is written
        self._latest = {g: {"type": "spectrum", "step": self.step, **rec} for g in self.layout.groups
                        if (rec := self._spectrum_record(g)) is not None}
        self.event("resume")
