"""Monitor benchmark on the author's mod-97 model (290,401 parameters, batch 512, AdamW).

(3) overhead of the SpectralMonitor per training step at Δs = 1 and Δs = 100 (targets < 5 % and < 0.5 %), beside
the dots-only floor (the W + 1 dots of one push, nothing else);
(4) the streaming monitor vs the author's offline method (save every snapshot with ``torch.save``, then form the
deltas and ``numpy.linalg.svd`` each window) in time and disk.

The machine may be loaded (other training processes), so every ratio is a median over repeated blocks measured in
this run. At Δs = 1 each block alternates plain and monitored steps (the monitor's hook attached for every other
step) for one flush period (``flush_every`` = FLUSH monitored steps: each block pays one batched record build). The
default monitor builds that batch on its worker thread, so its overhead is the direct timing, the median over blocks
of Σ(monitored step)/Σ(plain step) − 1 (it sees the worker's competition for the GIL and the cores, the monitor's
cache effects on the step, and all of the load's noise); the synchronous monitor (``background=False``) is printed
beside it, as Σ(time in the hook)/Σ(plain step) and directly. At Δs = 100 it is (median push + one batched flush /
FLUSH) / (100 · plain step).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from numerics.monitor import SpectralMonitor
from verify.harness.config import preset
from verify.harness.runner import monitor_groups
from verify.tasks.modular import build_model, make_dataset

STEPS = 40
BLOCKS = 9  # Δs = 1: blocks of FLUSH plain + FLUSH monitored steps, alternated
FLUSH = 32  # the monitor's flush_every: one batched record build per block
SNAPSHOTS = 40  # for the offline comparison: 40 checkpoints, W = 10 → 30 full windows


def _setup():
    cfg = preset("mod97")
    tc = cfg.task_config
    x, y, _, _ = make_dataset(tc.p, tc.op, tc.train_fraction, cfg.data_seed)
    model = build_model(tc.architecture(), cfg.init_seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(len(y), (cfg.batch_size,), generator=gen) for _ in range(8)]

    def step(i: int) -> None:
        idx = batches[i % len(batches)]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return cfg, model, opt, step


@torch.no_grad()
def _dots_only(mon: SpectralMonitor) -> float:
    """Seconds for the dots of one push alone (⟨δ, row⟩ for the W + 1 ring rows and ⟨δ, δ⟩, per atom, in the storage
    dtype): the memory-bound floor of a capture, without snapshot, δ or any record work."""
    gram = mon.gram
    delta = gram._X[0].clone()
    out = torch.empty((len(gram._slices), gram.W + 1), dtype=gram._X.dtype)
    t0 = time.perf_counter()
    for a, (s, e) in enumerate(gram._slices):
        torch.mv(gram._X[:, s:e], delta[s:e], out=out[a])
        torch.dot(delta[s:e], delta[s:e], out=out[a, 0])
    return time.perf_counter() - t0


def _timed_steps(step, n: int, offset: int = 0) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        step(offset + i)
        out.append(time.perf_counter() - t0)
    return out


class _TimedHook:
    """The monitor's optimizer hook, attached for one step at a time and timed (seconds per call)."""

    def __init__(self, mon: SpectralMonitor, opt: torch.optim.Optimizer) -> None:
        mon.detach()
        self.mon, self.opt, self.times = mon, opt, []

    def __call__(self, optimizer, args, kwargs) -> None:
        t0 = time.perf_counter()
        self.mon._on_step(optimizer, args, kwargs)
        self.times.append(time.perf_counter() - t0)

    def step(self, step, i: int) -> float:
        handle = self.opt.register_step_post_hook(self)
        try:
            t0 = time.perf_counter()
            step(i)
            return time.perf_counter() - t0
        finally:
            handle.remove()


def _every1(step, model, opt, groups, tmp_path: Path, background: bool = False
            ) -> tuple[list[float], list[float], int]:
    """Per block: (Σ hook / Σ plain, Σ monitored step / Σ plain − 1); and the number of records written.
    ``background``: the batches are built on the monitor's worker thread (the hook only captures), so the direct
    timing is the one that counts (it sees the worker's competition for the GIL and the cores)."""
    mon = SpectralMonitor(model, opt, window=10, every=1, groups=groups, path=tmp_path / "e1.jsonl",
                          keep_records=False, flush_every=FLUSH, background=background, overwrite=True)
    hook = _TimedHook(mon, opt)
    for i in range(12):  # fill the window first
        hook.step(step, i)
    hooked, direct = [], []
    for block in range(BLOCKS):
        hook.times.clear()
        plain, monitored = 0.0, 0.0
        for i in range(FLUSH):
            plain += _timed_steps(step, 1, offset=block * FLUSH + i)[0]
            monitored += hook.step(step, block * FLUSH + i)
        hooked.append(sum(hook.times) / plain)
        direct.append(monitored / plain - 1)
    mon.close()
    n = sum(1 for _ in open(tmp_path / "e1.jsonl")) - 2  # header and end
    return hooked, direct, n


def main() -> None:
    cfg, model, opt, step = _setup()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"mod-97 model: {n_params} parameters, batch {cfg.batch_size}, torch threads {torch.get_num_threads()}")
    _timed_steps(step, 3)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        groups = monitor_groups(model, ["all", "attn"])
        # (3a) one capture, isolated: the push (snapshot, δ into the spare row, dots, Gram copy: what the hook does per
        # capture) and the batched build of FLUSH captures' records (spectra, α, JSON, file), per capture
        mon = SpectralMonitor(model, opt, window=10, every=10**9, groups=groups, path=tmp_path / "cap.jsonl",
                              keep_records=False, flush_every=10**9)
        pushes, flushes, floor, plain_a = [], [], [], []
        for i in range(12):
            step(i)
            mon.capture()
        for _ in range(2):
            for i in range(FLUSH):
                plain_a += _timed_steps(step, 1, offset=i)
                t0 = time.perf_counter()
                mon._capture(hook=True)
                pushes.append(time.perf_counter() - t0)
                floor.append(_dots_only(mon))
            t0 = time.perf_counter()
            mon._flush()
            flushes.append((time.perf_counter() - t0) / FLUSH)
        mon.close()
        t_push, t_records = statistics.median(pushes), statistics.median(flushes)
        t_floor, t_plain_a = statistics.median(floor), statistics.median(plain_a)
        t_capture = t_push + t_records
        # (3a') the same capture with a JL sketch (d = 10W) and with bfloat16 storage
        variants = {}
        for label, kw in (("sketch d=100", {"sketch_dim": 100}), ("bfloat16", {"storage_dtype": torch.bfloat16})):
            mv = SpectralMonitor(model, opt, window=10, every=10**9, groups=groups, keep_records=False, **kw)
            times = []
            for i in range(20):
                step(i)
                t0 = time.perf_counter()
                mv.capture()
                times.append(time.perf_counter() - t0)
            mv.close()
            variants[label] = statistics.median(times[10:])
        # (3b) Δs = 1 as a user attaches it (file written, records built every FLUSH captures), interleaved: the
        # default monitor (batches built on its worker thread) and the synchronous one (background=False)
        bg_hooked, bg_direct, n_written = _every1(step, model, opt, groups, tmp_path, background=True)
        hooked, direct, _ = _every1(step, model, opt, groups, tmp_path, background=False)
        t_plain = t_plain_a
        print(f"plain step {t_plain * 1e3:.1f} ms; per capture: push (snapshot, δ into the spare row, dots) "
              f"{t_push * 1e3:.2f} ms, records (2 groups, batched over {FLUSH} captures, spectra + alphas + JSON + "
              f"file) {t_records * 1e3:.2f} ms; dots alone {t_floor * 1e3:.2f} ms")
        print(f"RATIO monitor overhead per step, every=1: {statistics.median(bg_direct):+.3f} (the default monitor, "
              f"its records built on its worker thread: median over {BLOCKS} interleaved blocks of Σ monitored step / "
              f"Σ plain step − 1, blocks {min(bg_direct):+.3f}..{max(bg_direct):+.3f}, time in the hook "
              f"{statistics.median(bg_hooked):+.3f}; synchronous records (background=False): time in the hook "
              f"{statistics.median(hooked):+.3f}, direct {statistics.median(direct):+.3f}; isolated capture / step "
              f"{t_capture / t_plain:.3f} = push {t_push / t_plain:.3f} + records {t_records / t_plain:.3f}; "
              f"dots-only floor {t_floor / t_plain:.3f}; {n_written} records written; target < 0.05)")
        print(f"RATIO monitor overhead per step, every=100: {t_capture / (100 * t_plain):.4f} (push + batched records "
              f"per capture / 100 steps; dots-only floor {t_floor / (100 * t_plain):.4f}; target < 0.005)")
        print("RATIO capture time vs exact float32 capture (one capture, records built at once): "
              + ", ".join(f"{k} {v / t_capture:.2f}" for k, v in variants.items()))

        # (4) offline (author): torch.save every snapshot, then deltas + SVD per window
        snap_dir = tmp_path / "snaps"
        snap_dir.mkdir()
        attn = groups["attn"]
        params = dict(model.named_parameters())
        t0 = time.perf_counter()
        for i in range(SNAPSHOTS):
            step(i)
            torch.save({n: params[n].detach().clone() for n in attn}, snap_dir / f"{i:04d}.pt")
        t_offline_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        flat = [torch.cat([v.flatten() for v in torch.load(f, weights_only=True).values()]).numpy()
                for f in sorted(snap_dir.glob("*.pt"))]
        deltas = np.diff(np.stack(flat), axis=0)
        for end in range(10, len(deltas) + 1):
            np.linalg.svd(deltas[end - 10 : end], full_matrices=False)
        t_offline_analysis = time.perf_counter() - t0
        disk_offline = sum(f.stat().st_size for f in snap_dir.glob("*.pt"))

        mon = SpectralMonitor(model, opt, window=10, every=1, groups={"attn": attn}, path=tmp_path / "stream.jsonl",
                              keep_records=False)
        t0 = time.perf_counter()
        for i in range(SNAPSHOTS):
            step(i)
        t_stream = time.perf_counter() - t0
        mon.close()
        disk_stream = (tmp_path / "stream.jsonl").stat().st_size
        t_steps = SNAPSHOTS * t_plain
        extra_offline = t_offline_train - t_steps + t_offline_analysis
        extra_stream = t_stream - t_steps
        print(f"offline: {SNAPSHOTS} snapshots of {sum(params[n].numel() for n in attn)} attention weights, "
              f"{disk_offline / 1e6:.1f} MB on disk, save+analysis overhead {extra_offline:.2f} s; "
              f"streaming: {disk_stream / 1e3:.1f} kB, overhead {extra_stream:.2f} s")
        print(f"RATIO disk offline / streaming: {disk_offline / disk_stream:.0f}x")
        print(f"RATIO analysis time offline (save + load + SVD) / streaming (captures): "
              f"{extra_offline / max(extra_stream, 1e-9):.1f}x (noisy: both are differences of step timings)")


if __name__ == "__main__":
    main()
