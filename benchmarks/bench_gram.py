"""Streaming-Gram benchmark: incremental push vs from-scratch Gram, push bandwidth vs a plain copy, JL sketch cost.

Run: `.venv/bin/python -m benchmarks.bench_gram` (about half a minute on a 2-core CPU; uses CUDA when available).
Each comparison is measured within one run and printed as a `RATIO` line, so the numbers are comparable even on
a loaded machine, where absolute times are not.

Reference (spec companion, ecosystem-offline.md, 2-core CI machine): at P = 10⁷, W = 10, float32, `X @ δ` reads
11·P floats at ~32 GB/s, `copy_` moves ~10 GB/s, a from-scratch `X @ X.T` takes ~165 ms.
"""

from __future__ import annotations

import math
import statistics
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

    X = gram._X  # the ring buffer itself: the from-scratch Gram a non-incremental monitor would build
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
    """Seconds to sketch one P-vector to d numbers (dominated by drawing d·P Gaussians)."""
    sketch = JLSketch(d, seed=0)
    x = torch.randn(P, device=device)
    return _median_time(lambda: sketch.apply(x), device, 3)


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
    P_cost = 10**6 if device.type == "cpu" else 10**7
    t_apply = bench_jl_cost(d, P_cost, device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the error simulation is thousands of tiny ops: threads only add barrier waits
    try:
        err = bench_jl_error(W, trials=150)
    finally:
        torch.set_num_threads(threads)
    per_entry = t_apply / (d * P_cost)
    print(f"JL d=10W={d}: sketching P={P_cost:.0e} takes {t_apply * 1e3:.1f} ms ({per_entry * 1e9:.2f} ns per Phi "
          f"entry, so ~{per_entry * d * P:.1f} s per sketch at P={P:.0e} vs {r['push'] * 1e3:.0f} ms per exact push)")
    print(f"JL mean gap-ratio error at d=10W: {err * 100:.1f}% (first-order theory sqrt(2/(pi d)) = "
          f"{math.sqrt(2 / (math.pi * d)) * 100:.1f}%)")
    print(f"RATIO JL gap-ratio error / spec target 5.7%: {err / 0.057:.2f}")
    r_mean, r_max, s_max = bench_bf16_error(W, 200_000, trials=10)
    print(f"bfloat16 storage (half the memory): R error mean {r_mean * 100:.2f}%, max {r_max * 100:.2f}%; "
          f"worst sigma_j error {s_max * 100:.1f}% (the smallest sigma_j, near the bf16 rounding floor)")


if __name__ == "__main__":
    main()
