"""Monitor benchmark on the author's mod-97 model (290,401 parameters, batch 512, AdamW).

(3) overhead of the SpectralMonitor per training step at Δs = 1 and Δs = 100 (targets < 5 % and < 0.5 %), beside
the dots-only floor (the W + 1 dots of one push, nothing else);
(4) the streaming monitor vs the author's offline method (save every snapshot with ``torch.save``, then form the
deltas and ``numpy.linalg.svd`` each window) in time and disk.

At Δs = 1 the overhead is the direct interleaved timing (median step with the monitor attached / median plain step
− 1): the records are built on a background thread, so the time of the hook alone would understate it; the
training-thread part and the whole capture (records included) per step are printed beside it. At Δs = 100 it is
the whole capture / (100 · plain step). All medians are taken in this run; absolute times on a loaded machine
vary, ratios much less.
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
BLOCKS = 8  # interleaved plain / Δs = 1 blocks of STEPS // 4 steps each
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
    """Seconds for the dots of one push alone (⟨δ, row⟩ for the W stored rows and ⟨δ, δ⟩, per atom, in the storage
    dtype): the memory-bound floor of a capture, without snapshot, row copy or any record work."""
    gram = mon.gram
    delta = gram._X[0].clone()
    out = torch.empty((len(gram._slices), gram.W + 1), dtype=gram._X.dtype)
    t0 = time.perf_counter()
    for a, (s, e) in enumerate(gram._slices):
        torch.mv(gram._X[:, s:e], delta[s:e], out=out[a, : gram.W])
        torch.dot(delta[s:e], delta[s:e], out=out[a, gram.W])
    return time.perf_counter() - t0


def _timed_steps(step, n: int, offset: int = 0) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        step(offset + i)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    cfg, model, opt, step = _setup()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"mod-97 model: {n_params} parameters, batch {cfg.batch_size}, torch threads {torch.get_num_threads()}")
    _timed_steps(step, 3)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        groups = monitor_groups(model, ["all", "attn"])
        # (3a) capture cost, isolated: the work done once per snapshot, all of it (the public capture() builds and
        # writes the records before it returns), and the part the optimizer hook leaves on the training thread
        # (snapshot, push, Gram copies; the records go to the background thread when no callback is attached)
        mon = SpectralMonitor(model, opt, window=10, every=10**9, groups=groups, path=tmp_path / "cap.jsonl",
                              keep_records=False)
        deferred = hasattr(mon, "_capture") and getattr(mon, "background", False)
        captures, hooks, floor = [], [], []
        for i in range(STEPS):
            step(i)
            t0 = time.perf_counter()
            mon.capture()
            captures.append(time.perf_counter() - t0)
            if deferred and i >= 10:
                step(i)
                t0 = time.perf_counter()
                mon._capture(defer=True)
                hooks.append(time.perf_counter() - t0)
                mon.sync()
            floor.append(_dots_only(mon))
        mon.close()
        t_capture = statistics.median(captures[10:])  # full windows only
        t_hook = statistics.median(hooks) if hooks else t_capture
        t_floor = statistics.median(floor[10:])
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
        # (3b) plain vs Δs = 1, interleaved in blocks so machine-load drift hits both alike; the monitor as a user
        # attaches it (records in the background thread, file written)
        plain, every1 = [], []
        for block in range(BLOCKS):
            plain += _timed_steps(step, STEPS // 4, offset=block * STEPS)
            m1 = SpectralMonitor(model, opt, window=10, every=1, groups=groups,
                                 path=tmp_path / f"e1-{block}.jsonl", keep_records=False)
            _timed_steps(step, 10, offset=block * STEPS)  # fill the window first
            every1 += _timed_steps(step, STEPS // 4, offset=block * STEPS + 10)
            m1.close()
        t_plain, t_every1 = statistics.median(plain), statistics.median(every1)
        print(f"plain step {t_plain * 1e3:.1f} ms; one capture (2 groups, spectra + alphas + record written) "
              f"{t_capture * 1e3:.2f} ms, of which on the training thread {t_hook * 1e3:.2f} ms; dots alone "
              f"{t_floor * 1e3:.2f} ms")
        print(f"RATIO monitor overhead per step, every=1: {t_every1 / t_plain - 1:+.3f} (direct timing; "
              f"training-thread part of a capture / step {t_hook / t_plain:.3f}, whole capture / step "
              f"{t_capture / t_plain:.3f}, dots-only floor {t_floor / t_plain:.3f}; target < 0.05)")
        print(f"RATIO monitor overhead per step, every=100: {t_capture / (100 * t_plain):.4f} (whole capture / 100 "
              f"steps; dots-only floor {t_floor / (100 * t_plain):.4f}; target < 0.005)")
        print("RATIO capture time vs exact float32 capture: "
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
