"""Two gloo processes each push a column shard of the same stream: the all-reduced Gram is the global Gram."""

from __future__ import annotations

import datetime
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from numerics.distributed import all_reduce_sum, shard_bounds
from numerics.errors import NonFiniteUpdateError
from numerics.gram import RollingGram

WORLD = 2
W = 4
SIZES = [9, 14, 5]  # odd sizes: uneven shards
GROUPS = {"all": [0, 1, 2], "a": [0, 2], "b": [1]}
N_PUSH = 11


def _stream() -> list[np.ndarray]:
    rng = np.random.default_rng(2024)
    return [rng.standard_normal(sum(SIZES)) for _ in range(N_PUSH)]


def _shard(delta: np.ndarray, rank: int) -> tuple[np.ndarray, list[int]]:
    """This rank's columns of every atom, concatenated atom by atom (its local atoms)."""
    starts = np.concatenate([[0], np.cumsum(SIZES)])
    parts = [delta[starts[i] + lo: starts[i] + hi] for i, (lo, hi) in enumerate(shard_bounds(SIZES, rank, WORLD))]
    return np.concatenate(parts), [len(p) for p in parts]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        stream = _stream()
        local_sizes = _shard(stream[0], rank)[1]
        g = RollingGram(W, local_sizes, GROUPS, dtype=torch.float64, process_group=dist.group.WORLD)
        result = {"dims": np.array([g.group_dims()[k] for k in GROUPS])}
        for t, delta in enumerate(stream):
            if t == 7:  # a NaN on rank 1 only: both ranks must reject together and stay in step
                bad = torch.from_numpy(_shard(delta, rank)[0]).clone()
                if rank == 1:
                    bad[0] = float("nan")
                try:
                    g.push(bad)
                    result["nan_raised"] = np.array(0)
                except NonFiniteUpdateError:
                    result["nan_raised"] = np.array(1)
            g.push(torch.from_numpy(_shard(delta, rank)[0]))
        for k in GROUPS:
            result[f"gram_{k}"] = g.gram(k)
            result[f"ext_{k}"] = g.extended_gram(k)
            result[f"recompute_{k}"] = g.recompute(k)
        result["n_pushed"] = np.array(g.n_pushed)
        v = g.right_vectors("all", 2)  # this rank's shard of v_1, v_2
        result["v_local_norm2"] = all_reduce_sum((v * v).sum(dim=1), dist.group.WORLD).numpy()
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **result)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_process_gloo_gram_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)

    single = RollingGram(W, SIZES, GROUPS, dtype=torch.float64)
    for delta in _stream():
        single.push(torch.from_numpy(delta))
    results = [np.load(tmp_path / f"rank{r}.npz") for r in range(WORLD)]
    for res in results:
        assert res["nan_raised"] == 1 and res["n_pushed"] == N_PUSH
        assert list(res["dims"]) == [28, 14, 14]
        for k in GROUPS:
            scale = np.abs(single.gram(k)).max()
            # Shard sums differ from one long dot only by float64 summation order.
            assert np.abs(res[f"gram_{k}"] - single.gram(k)).max() <= 1e-13 * scale
            assert np.abs(res[f"ext_{k}"] - single.extended_gram(k)).max() <= 1e-13 * scale
            assert np.abs(res[f"recompute_{k}"] - single.gram(k)).max() <= 1e-13 * scale
        assert np.allclose(res["v_local_norm2"], 1.0, atol=1e-12)  # shards of unit vectors
    assert np.array_equal(results[0]["gram_all"], results[1]["gram_all"])  # every rank holds the same Gram
