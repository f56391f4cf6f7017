"""The monitor's batched records: ``_BatchSpectra`` (one stacked ``eigh``, vectorised derived quantities) against the
one-by-one record builder (``SpectralMonitor._build_record``, itself checked against the verbatim pre-issue-16 code in
tests/test_monitor_fast.py), JSON line for JSON line; flush points; the capture's thread count."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from numerics.monitor import SpectralMonitor, _BatchSpectra


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(6, 8)
        self.mlp = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.tanh(self.q_proj(x)))


GROUPS = {"all": "*", "attn": ["q_proj.weight", "q_proj.bias"]}


def _monitor(window: int, **kw) -> SpectralMonitor:
    torch.manual_seed(0)
    model = TinyNet()
    return SpectralMonitor(model, torch.optim.SGD(model.parameters(), lr=0.1), window=window, every=1,
                           groups=GROUPS, **kw)


def _extended_grams(rng: np.random.Generator, w: int, kind: str, n: int = 40, P: int = 500) -> np.ndarray:
    """n extended Grams of w + 1 float32 rows (dots rounded to float32 as the streaming Gram's are), of a kind."""
    out = []
    for _ in range(n):
        scale = np.exp(rng.uniform(-6, 2, size=(w + 1, 1))) if kind == "spread" else 1.0
        X = (rng.standard_normal((w + 1, P)) * scale).astype(np.float32)
        if kind == "rank_drop":
            X[2] = X[1]
        elif kind == "zero_prev":
            X[0] = 0.0
        elif kind == "low_rank":
            X = (rng.standard_normal((w + 1, 2)) @ rng.standard_normal((2, P))).astype(np.float32)
        X64 = X.astype(np.float64)
        out.append((X64 @ X64.T).astype(np.float32).astype(np.float64))
    return np.stack(out)


@pytest.mark.parametrize("kstar", ["argmax", "var95"])
@pytest.mark.parametrize("kind", ["generic", "spread", "rank_drop", "zero_prev", "low_rank"])
@pytest.mark.parametrize("w", [3, 4, 10, 11])
def test_batched_record_equals_the_one_by_one_record(w, kind, kstar):
    mon = _monitor(w, kstar=kstar)
    E = _extended_grams(np.random.default_rng(w), w, kind)
    P = mon._group_P["all"]
    batch = _BatchSpectra(E, [P] * len(E), kstar)
    for r in range(len(E)):
        want = mon._build_record("all", w, E[r, 1:, 1:], E[r])
        if batch.fast[r]:  # (the others are built by _build_record itself)
            assert json.dumps(batch.record(r, "all", w, mon.alphas)) == json.dumps(want)
    covered = sum(batch.fast)
    if kind in ("generic", "spread"):
        assert covered == len(E)  # the common case is batched (the test would not see the batch otherwise)
    if kind in ("zero_prev", "low_rank"):  # an exact zero / round-off eigenvalues: left to the one-by-one path
        assert covered < len(E)


@pytest.mark.parametrize("w", [3, 10])
def test_build_of_mixed_entries_equals_the_one_by_one_records(w):
    """A stream of captures mixing covered and uncovered windows, two groups: ``_build`` yields the records the
    one-by-one builder gives, in order (the uncovered ones get the previous window's decomposition right)."""
    rng = np.random.default_rng(5)
    kinds = ["generic", "rank_drop", "generic", "zero_prev", "spread", "generic"]
    entries = []
    for step, kind in enumerate(kinds * 3, start=1):
        grams = np.stack([_extended_grams(rng, w, kind, n=1)[0] for _ in GROUPS])
        entries.append((step, w, grams, True))
    entries.insert(0, (0, w, entries[0][2][:, 1:, 1:].copy(), False))  # a window before the first eviction
    batched, single = _monitor(w), _monitor(w)
    got = [json.dumps({"step": s, **rec}) for s, rec in batched._build(entries)]
    want = [json.dumps({"step": step, **single._build_record(g, ww, grams[gi][1:, 1:] if ext else grams[gi],
                                                               grams[gi] if ext else None)})
            for step, ww, grams, ext in entries for gi, g in enumerate(GROUPS)]
    assert got == want


def _train(model, opt, steps, monitors=()):
    g = torch.Generator().manual_seed(1)
    for s in range(steps):
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if (s + 1) % 9 == 0:
            for m in monitors:
                m.log(s + 1, loss=0.5)


def test_flush_points_give_the_same_file_and_latest(tmp_path):
    """flush_every = 1, 4 and 1000: the same lines; ``latest`` and ``records`` are current whenever they are read."""
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    mons = [SpectralMonitor(model, opt, window=4, every=1, groups=GROUPS, path=tmp_path / f"{k}.jsonl",
                            flush_every=k) for k in (1, 4, 1000)]
    for _ in range(5):
        _train(model, opt, 7, mons)
        steps = [{g: r["step"] for g, r in m.latest.items()} for m in mons]
        assert steps[0] == steps[1] == steps[2] == {"all": mons[0].step, "attn": mons[0].step}
        assert mons[2].records[-1]["step"] == mons[2].step
    for m in mons:
        m.close()
    lines = [(tmp_path / f"{k}.jsonl").read_text().splitlines()[1:] for k in (1, 4, 1000)]
    assert lines[0] == lines[1] == lines[2] and len(lines[0]) > 60


def test_an_error_while_building_a_batch_surfaces_at_the_flush(tmp_path):
    mon = _monitor(3, path=tmp_path / "run.jsonl", flush_every=1000)
    build = mon._build

    def fail_at_step_4(entries):
        for s, rec in build(entries):
            if s == 4:
                raise RuntimeError("boom at 4")
            yield s, rec

    mon._build = fail_at_step_4
    _train(mon.model, mon.optimizer, 6)  # nothing built yet: the records are pending
    with pytest.raises(RuntimeError, match="boom at 4"):
        mon.sync()
    mon.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "run.jsonl").read_text().splitlines()[1:]]
    assert steps == [2, 2, 3, 3, 6]  # the records before the failing one, then "end"


def test_the_capture_runs_with_capture_threads_and_restores_the_count():
    seen = []
    mon = _monitor(3, capture_threads=1)
    commit = mon.gram.commit

    def spy():
        seen.append(torch.get_num_threads())
        commit()

    mon.gram.commit = spy
    before = torch.get_num_threads()
    _train(mon.model, mon.optimizer, 3)
    assert seen == [1, 1, 1] and torch.get_num_threads() == before
    mon.close()
    with pytest.raises(Exception, match="capture_threads"):
        _monitor(3, capture_threads=0)
    with pytest.raises(Exception, match="flush_every"):
        _monitor(3, flush_every=0)
