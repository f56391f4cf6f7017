"""Streaming-Gram benchmark: incremental push vs from-scratch Gram, push bandwidth vs a plain copy, JL sketch cost,
bfloat16 vs float32 storage (time and peak memory of a push).

Run: `.venv/bin/python -m benchmarks.bench_gram` (about half a minute on a 2-core CPU; uses CUDA when available).
Each comparison is measured within one run and printed as a `RATIO` line, so the numbers are comparable even on
a loaded machine, where absolute times are not.

Reference (spec companion, ecosystem-offline.md, 2-core CI machine): at P = 10⁷, W = 10, float32, `X @ δ` reads
11·P floats at ~32 GB/s, `copy_` moves ~10 GB/s, a from-scratch `X @ X.T` takes ~165 ms.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from numerics.gram import RollingGram
from numerics.sketch import JLSketch, default_sketch_dim


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_push(P: int, W: int, device: torch.device, repeats: int) -> dict[str, float]:
    gen = torch.Generator(device=device).manual_seed(0)
    deltas = [torch.randn(P, generator=gen, device=device) for _ in range(3)]
    gram = RollingGram(W, P, device=device)
    for t in range(W + 1):  # full ring, evicting: the steady-state push
        gram.push(deltas[t % 3])
    counter = iter(range(10**9))
    t_push = _median_time(lambda: gram.push(deltas[next(counter) % 3]), device, repeats)

    X = gram._X[: gram.W]  # W rows of the ring buffer (a view): the from-scratch Gram a non-incremental monitor builds
    t_xxt = _median_time(lambda: X @ X.T, device, max(3, repeats // 2))
    t_oracle = _median_time(gram.recompute, device, 2, warmup=0)

    n_bytes = (W + 1) * P * 4  # what push must read: W stored rows + δ
    src = torch.empty((W + 1) * P, device=device).normal_(generator=gen)
    dst = torch.empty_like(src)
    t_copy = _median_time(lambda: dst.copy_(src), device, repeats)
    return {"push": t_push, "xxt": t_xxt, "oracle": t_oracle, "copy": t_copy, "bytes": n_bytes}


def _gap_ratio(G: np.ndarray) -> float:
    lam = np.sort(np.linalg.eigvalsh(G))[::-1]
    s = np.sqrt(np.clip(lam, 0, None))
    r = s[:-1] / s[1:]
    return float(r.max())


def bench_jl_cost(d: int, P: int, device: torch.device) -> float:
    """Seconds per capture to sketch one P-vector to d numbers (kept d×M panel, one hash pass over x)."""
    sketch = JLSketch(d, seed=0)
    x = torch.randn(P, device=device)
    return _median_time(lambda: sketch.apply(x), device, 5)


def bench_jl_regenerate(d: int, P: int, device: torch.device) -> float:
    """Seconds per capture of the previous design, which drew all d·P Gaussians at every capture and multiplied
    them (measured here on P columns in blocks of 2²⁰ entries, as it did)."""
    gen = torch.Generator(device=device)
    x = torch.randn(P, device=device)
    cols = max(1, (1 << 20) // d)

    def old() -> torch.Tensor:
        out = torch.zeros(d, dtype=torch.float64, device=device)
        for b, s in enumerate(range(0, P, cols)):
            gen.manual_seed(b)
            Z = torch.randn((d, min(cols, P - s)), generator=gen, device=device)
            out += (x[s : s + cols] @ Z.T).double()
        return out

    return _median_time(old, device, 2, warmup=0)


_MEM_PROBE = r"""
import resource, sys, time, torch
from numerics.gram import RollingGram


def hwm():  # peak RSS of this process's address space in bytes (VmHWM: reset at exec, unlike ru_maxrss)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

torch.set_num_threads(int(sys.argv[4]))
W, P, dtype, old = 10, int(sys.argv[1]), getattr(torch, sys.argv[2]), sys.argv[3] == "old"
g = RollingGram(W, P, dtype=dtype)
rows = [torch.randn(P).to(dtype) for _ in range(2)]
X = g._X
before = hwm()
t0 = time.perf_counter()
if old:  # the previous half-precision path: a bf16 torch.mv over the ring buffer
    torch.mv(X, rows[0]); torch.dot(rows[0], rows[0])
else:
    g.push(rows[0])
first = time.perf_counter() - t0
peak = hwm()
times = []
for i in range(3):
    t0 = time.perf_counter()
    if old:
        torch.mv(X, rows[i % 2]); torch.dot(rows[i % 2], rows[i % 2])
    else:
        g.push(rows[i % 2])
    times.append(time.perf_counter() - t0)
times.sort()
print(first, times[1], peak - before)
"""


def bench_storage_dtype(P: int, dtype: str, old: bool = False) -> tuple[float, float, float]:
    """(first push s, steady push s, extra peak RSS bytes of the first push) in a fresh process (CPU).

    Peak memory is the high-water RSS (Linux VmHWM, else ru_maxrss) after the first push minus before it: the RSS the
    push adds on top of the window and its inputs, which were all allocated before. (ru_maxrss alone would not do:
    a child inherits its parent's value across fork/exec.)
    """
    out = subprocess.run([sys.executable, "-c", _MEM_PROBE, str(P), dtype, "old" if old else "new",
                          str(torch.get_num_threads())], capture_output=True, text=True, check=True, timeout=120)
    first, steady, extra = (float(v) for v in out.stdout.split())
    return first, steady, max(extra, 0.0)


def bench_storage_dtype_cuda(P: int, dtype: torch.dtype, device: torch.device) -> tuple[float, float, float]:
    """(first push s, steady push s, extra peak allocated bytes of a push) on CUDA (torch allocator statistics)."""
    g = RollingGram(10, P, dtype=dtype, device=device)
    rows = [torch.randn(P, device=device).to(dtype) for _ in range(2)]
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    g.push(rows[0])
    torch.cuda.synchronize(device)
    first = time.perf_counter() - t0
    extra = torch.cuda.max_memory_allocated(device) - base
    counter = iter(range(10**9))
    steady = _median_time(lambda: g.push(rows[next(counter) % 2]), device, 10)
    return first, steady, float(extra)


def bench_jl_error(W: int, trials: int) -> float:
    """Mean |R̂/R − 1| of the gap ratio at d = 10W on full-rank windows with a clear gap at k* = 2."""
    d = default_sketch_dim(W)
    gen = torch.Generator().manual_seed(1)
    P = 3000
    signal = torch.tensor([10.0, 8.0] + [2.0 * 0.8**i for i in range(W - 2)], dtype=torch.float64)
    errs = []
    for t in range(trials):
        U = torch.linalg.qr(torch.randn(W, W, generator=gen, dtype=torch.float64))[0]
        X = (U * signal) @ (torch.randn(P, W, generator=gen, dtype=torch.float64) / math.sqrt(P)).T
        Y = JLSketch(d, seed=10_000 + t).apply(X)
        errs.append(abs(_gap_ratio((Y @ Y.T).numpy()) / _gap_ratio((X @ X.T).numpy()) - 1))
    return float(np.mean(errs))


def bench_bf16_error(W: int, P: int, trials: int) -> tuple[float, float, float]:
    """(mean, max) relative error of R and max relative error of any σ_j when updates are stored in bfloat16."""
    from numerics.spectrum import spectrum_from_gram

    gen = torch.Generator().manual_seed(2)
    errs_r, errs_s = [], []
    signal = torch.tensor([10.0, 8.0] + [2.0 * 0.8**i for i in range(W - 2)], dtype=torch.float64)
    for _ in range(trials):
        U = torch.linalg.qr(torch.randn(W, W, generator=gen, dtype=torch.float64))[0]
        X = 1e-3 * (U * signal) @ (torch.randn(P, W, generator=gen, dtype=torch.float64) / math.sqrt(P)).T
        ref, bf = RollingGram(W, P, dtype=torch.float64), RollingGram(W, P, dtype=torch.bfloat16)
        for row in X:
            ref.push(row)
            bf.push(row.to(torch.bfloat16))
        a, b = spectrum_from_gram(ref.gram()), spectrum_from_gram(bf.gram())
        errs_r.append(abs(b.R / a.R - 1))
        errs_s.append(float(np.max(np.abs(b.sigma / a.sigma - 1))))
    return float(np.mean(errs_r)), float(np.max(errs_r)), float(np.max(errs_s))


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    W, P = 10, 10**7
    print(f"device: {device} ({name}); torch {torch.__version__}; W={W}, P={P:.0e}, float32")

    r = bench_push(P, W, device, repeats=7 if device.type == "cpu" else 50)
    print(f"push (incremental, W+1 dots + row write): {r['push'] * 1e3:.2f} ms")
    print(f"X @ X.T from scratch (float32 GEMM):       {r['xxt'] * 1e3:.2f} ms")
    print(f"recompute() oracle (float64, per atom):    {r['oracle'] * 1e3:.2f} ms")
    print(f"RATIO from-scratch X@X.T / incremental push: {r['xxt'] / r['push']:.1f}x")
    print(f"RATIO recompute() oracle / incremental push: {r['oracle'] / r['push']:.1f}x")
    push_bw, copy_bw = r["bytes"] / r["push"], r["bytes"] / r["copy"]
    print(f"RATIO push bytes/s / copy_ bytes/s: {push_bw / copy_bw:.2f} (target >= 0.5; push reads (W+1)*P*4 = "
          f"{r['bytes'] / 1e9:.2f} GB at {push_bw / 1e9:.1f} GB/s; copy_ of the same bytes {copy_bw / 1e9:.1f} GB/s)")

    d = default_sketch_dim(W)
    t_apply = bench_jl_cost(d, P, device)
    P_old = 10**6 if device.type == "cpu" else 10**7
    t_old = bench_jl_regenerate(d, P_old, device) * P / P_old
    print(f"JL d=10W={d}, P={P:.0e}: sketch per capture {t_apply * 1e3:.1f} ms (kept {d}x"
          f"{JLSketch(d, 0).columns_per_block} float64 panel + one hash pass); previous design (draw all d*P "
          f"Gaussians per capture, timed at P={P_old:.0e}, scaled) {t_old * 1e3:.0f} ms; exact push "
          f"{r['push'] * 1e3:.1f} ms")
    print(f"RATIO JL sketch per capture / exact float32 push: {t_apply / r['push']:.2f} "
          f"(previous design: {t_old / r['push']:.0f}x)")
    print(f"RATIO JL previous design / now, per capture: {t_old / t_apply:.0f}x")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the error simulation is thousands of tiny ops: threads only add barrier waits
    try:
        err = bench_jl_error(W, trials=150)
    finally:
        torch.set_num_threads(threads)
    print(f"JL mean gap-ratio error at d=10W: {err * 100:.1f}% (first-order theory sqrt(2/(pi d)) = "
          f"{math.sqrt(2 / (math.pi * d)) * 100:.1f}%)")
    print(f"RATIO JL gap-ratio error / spec target 5.7%: {err / 0.057:.2f}")
    r_mean, r_max, s_max = bench_bf16_error(W, 200_000, trials=10)
    print(f"bfloat16 storage (half the memory): R error mean {r_mean * 100:.4f}%, max {r_max * 100:.4f}%; "
          f"worst sigma_j error {s_max * 100:.3f}% (the smallest sigma_j, near the bf16 rounding floor)")

    if device.type == "cuda":
        f32 = bench_storage_dtype_cuda(P, torch.float32, device)
        bf = bench_storage_dtype_cuda(P, torch.bfloat16, device)
        old = None
        mem_kind = "peak allocated"
    else:
        f32 = bench_storage_dtype(P, "float32")
        bf = bench_storage_dtype(P, "bfloat16")
        old = bench_storage_dtype(P, "bfloat16", old=True)
        mem_kind = "peak RSS"
    print(f"push at P={P:.0e}, W={W}: float32 {f32[1] * 1e3:.1f} ms (first {f32[0] * 1e3:.1f} ms, "
          f"+{f32[2] / 1e6:.0f} MB {mem_kind}); bfloat16 {bf[1] * 1e3:.1f} ms (first {bf[0] * 1e3:.1f} ms, "
          f"+{bf[2] / 1e6:.0f} MB)"
          + ("" if old is None else f"; previous bf16 path (bf16 torch.mv) {old[1] * 1e3:.0f} ms (first "
                                    f"{old[0] * 1e3:.0f} ms, +{old[2] / 1e6:.0f} MB)"))
    print(f"RATIO bfloat16 / float32 push time: {bf[1] / f32[1]:.2f}"
          + ("" if old is None else f" (previous bf16 path: {old[1] / f32[1]:.0f}x)"))
    print(f"RATIO bfloat16 / float32 extra {mem_kind} of the first push: {bf[2] / 1e6:.1f} MB / {f32[2] / 1e6:.1f} MB"
          + ("" if old is None else f" (previous bf16 path: {old[2] / 1e6:.0f} MB)"))


if __name__ == "__main__":
    main()
