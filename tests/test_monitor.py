"""SpectralMonitor: non-interference, agreement with a brute-force twin, groups, resume, file output."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from numerics.errors import SpectralEdgeError
from numerics.monitor import SpectralMonitor
from numerics.trajectory import read_trajectory


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(6, 8)
        self.mlp = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.tanh(self.q_proj(x)))


def _setup(seed: int = 0, dtype: torch.dtype = torch.float32):
    torch.manual_seed(seed)
    model = TinyNet().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    g = torch.Generator().manual_seed(seed + 1)
    data = [(torch.randn(16, 6, generator=g, dtype=dtype), torch.randint(0, 3, (16,), generator=g)) for _ in range(64)]
    return model, opt, data


def _train(model, opt, data, steps, start=0, snapshots=None, every=1):
    for s in range(start, start + steps):
        x, y = data[s % len(data)]
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if snapshots is not None and (s + 1) % every == 0:
            snapshots.append(torch.cat([p.detach().flatten().double() for p in model.parameters()]))


def test_attaching_does_not_change_training():
    m1, o1, data = _setup()
    _train(m1, o1, data, 40)
    m2, o2, _ = _setup()
    mon = SpectralMonitor(m2, o2, window=4, every=3, groups={"all": "*", "attn": ["q_proj.weight"]})
    _train(m2, o2, data, 40)
    mon.close()
    assert len(mon.records) > 0
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("every", [1, 5])
def test_recorded_spectrum_matches_svd_of_stacked_snapshots(every):
    model, opt, data = _setup(dtype=torch.float64)
    snaps = [torch.cat([p.detach().flatten().double() for p in model.parameters()])]
    mon = SpectralMonitor(model, opt, window=5, every=every, storage_dtype=torch.float64)
    _train(model, opt, data, 8 * every, snapshots=snaps, every=every)
    deltas = torch.stack([b - a for a, b in itertools.pairwise(snaps)]).numpy()
    X = deltas[-5:]
    sigma = np.linalg.svd(X, compute_uv=False)
    last = [r for r in mon.records if r["type"] == "spectrum" and r["group"] == "all"][-1]
    assert last["step"] == 8 * every and last["w"] == 5
    np.testing.assert_allclose(last["sigma"], sigma, rtol=1e-9, atol=1e-12 * sigma[0])
    ratios = sigma[:-1] / sigma[1:]
    assert last["kstar"] == int(np.argmax(ratios)) + 1


def test_adaptive_start_and_group_restriction():
    model, opt, data = _setup(dtype=torch.float64)
    w0 = model.q_proj.weight.detach().clone().flatten()
    mon = SpectralMonitor(model, opt, window=4, every=2, groups={"attn": ["q_proj.weight"]},
                          storage_dtype=torch.float64)
    qs = [w0]
    for k in range(3):
        _train(model, opt, data, 2, start=2 * k)
        qs.append(model.q_proj.weight.detach().clone().flatten())
    recs = [r for r in mon.records if r["type"] == "spectrum"]
    assert [r["w"] for r in recs] == [2, 3]  # w = 1 has no ratio, so the first record comes at w = 2
    X = torch.stack([b - a for a, b in itertools.pairwise(qs)]).numpy()
    np.testing.assert_allclose(recs[-1]["sigma"], np.linalg.svd(X, compute_uv=False), rtol=1e-9)
    assert recs[-1]["P"] == model.q_proj.weight.numel()


def test_resume_continues_the_same_window(tmp_path):
    # uninterrupted reference
    m1, o1, data = _setup()
    ref = SpectralMonitor(m1, o1, window=4, every=2)
    _train(m1, o1, data, 30)
    # interrupted at step 14, state saved and restored into fresh objects
    m2, o2, _ = _setup()
    mon = SpectralMonitor(m2, o2, window=4, every=2)
    _train(m2, o2, data, 14)
    state = {"model": m2.state_dict(), "opt": o2.state_dict(), "mon": mon.state_dict()}
    torch.save(state, tmp_path / "ckpt.pt")
    mon.detach()
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    m3, o3, _ = _setup(seed=99)  # different init: everything must come from the checkpoint
    m3.load_state_dict(state["model"])
    o3.load_state_dict(state["opt"])
    mon3 = SpectralMonitor(m3, o3, window=4, every=2)
    mon3.load_state_dict(state["mon"])
    _train(m3, o3, data, 16, start=14)
    a = [r for r in ref.records if r["type"] == "spectrum" and r["step"] > 14]
    b = [r for r in mon3.records if r["type"] == "spectrum"]
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra["sigma"] == rb["sigma"]  # bitwise


def test_trajectory_file_has_provenance_and_records(tmp_path):
    model, opt, data = _setup()
    path = tmp_path / "run.jsonl"
    mon = SpectralMonitor(model, opt, window=3, every=2, path=path, provenance={"seeds": {"init": 0}},
                          groups={"all": "*", "attn": lambda n, p: n.startswith("q_proj")})
    _train(model, opt, data, 12)
    mon.log(12, test_acc=0.5)
    mon.close()
    t = read_trajectory(path)
    assert t.provenance["seeds"] == {"init": 0}  # the caller's provenance is kept, merged with the monitor's own
    assert t.provenance["config"] == {"lr": 1e-2, "weight_decay": 0.5, "optimizer": "adamw"}
    assert t.meta["window"] == 3 and t.meta["every"] == 2
    assert set(t.groups()) == {"all", "attn"}
    steps, r = t.series("spectrum", "R", "attn")
    assert list(steps) == [4, 6, 8, 10, 12] and np.all(r >= 1)
    assert t.evals()[0]["test_acc"] == 0.5
    assert t.of_type("end")


def test_zero_updates_are_reported_not_divided():
    model, opt, data = _setup()
    for g in opt.param_groups:
        g["lr"] = 0.0
        g["weight_decay"] = 0.0
    mon = SpectralMonitor(model, opt, window=3, every=1)
    _train(model, opt, data, 4)
    recs = [r for r in mon.records if r["type"] == "spectrum"]
    assert recs and all("zero" in r["degenerate"] for r in recs)


def test_sketch_keeps_ratios_close():
    model, opt, data = _setup()
    exact = SpectralMonitor(model, opt, window=4, every=1)
    sk = SpectralMonitor(model, opt, window=4, every=1, sketch_dim=4000, sketch_seed=3)
    _train(model, opt, data, 12)
    e = exact.records[-1]["sigma"]
    s = sk.records[-1]["sigma"]
    np.testing.assert_allclose(s[0], e[0], rtol=0.1)


def test_bfloat16_storage_runs():
    model, opt, data = _setup()
    mon = SpectralMonitor(model, opt, window=3, every=1, storage_dtype=torch.bfloat16)
    _train(model, opt, data, 5)
    assert mon.records[-1]["sigma"][0] > 0


def test_bad_cadence():
    model, opt, _ = _setup()
    with pytest.raises(SpectralEdgeError, match="every"):
        SpectralMonitor(model, opt, every=0)
