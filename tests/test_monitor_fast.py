"""The monitor's fast capture (issue 16): one eigendecomposition per window shared by the record's spectrum and every
α variant, one validation of the extended Gram, and records built and written by a background thread.

The trajectory it writes is compared, line for line (so every float bit for bit), with the records of the
monitor as it was before (``_ReferenceMonitor``: the previous capture and record code, verbatim), run on the same
training steps; training itself is bitwise unchanged."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from numerics.errors import NonFiniteUpdateError, SpectralEdgeError, ZeroWindowError
from numerics.monitor import SpectralMonitor
from numerics.spectrum import GramEigh, spectrum_from_gram
from numerics.stability import ConsecutiveWindows, delta_C_norm, delta_G_norm
from numerics.stability import alpha as alpha_of
from theory import registry

ALL_ALPHAS = ("dk_deltaC", "dk_deltaG", "dk_dlambda", "rot", "half")


class _ReferenceMonitor(SpectralMonitor):
    """The monitor's capture and record code before issue 16 (verbatim): synchronous, one ``spectrum_from_gram``
    per record and per α variant, ``alpha(G_ext, name)`` one by one, ``ParamLayout.gather`` and ``isfinite``."""

    def _on_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.step += 1
        if self.step % self.every == 0:
            self.capture()

    @torch.no_grad()
    def capture(self) -> list[dict[str, Any]]:
        self.layout.gather(self._cur)
        if not bool(torch.isfinite(self._cur).all()):
            return self._reject(self._cur, NonFiniteUpdateError(f"the update at step {self.step} has NaN/Inf"))
        delta = torch.sub(self._cur, self._prev, out=self._prev)
        try:
            self.gram.push(delta if delta.dtype == self.gram.dtype else delta.to(self.gram.dtype))
        except NonFiniteUpdateError as exc:
            torch.sub(self._cur, self._prev, out=self._prev)
            return self._reject(delta, exc)
        self._prev, self._cur = self._cur, self._prev
        return self._record_all_reference()

    def _record_all_reference(self) -> list[dict[str, Any]]:
        out = []
        for group in self.layout.groups:
            rec = self._spectrum_record_reference(group)
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

    def _spectrum_record_reference(self, group: str) -> dict[str, Any] | None:
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
            except SpectralEdgeError:
                pass
        if alphas:
            rec["alpha"] = alphas
        return rec


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(6, 8)
        self.mlp = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.tanh(self.q_proj(x)))


GROUPS = {"all": "*", "attn": ["q_proj.weight", "q_proj.bias"]}


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    g = torch.Generator().manual_seed(seed + 1)
    data = [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(64)]
    return model, opt, data


def _train(model, opt, data, steps, *, monitors=(), zero_lr=range(0)):
    """``steps`` AdamW steps; lr = 0 (δ = 0 exactly) on the steps in ``zero_lr``; an eval record every 7 steps."""
    lr = opt.param_groups[0]["lr"]
    for s in range(steps):
        opt.param_groups[0]["lr"] = 0.0 if s in zero_lr else lr
        x, y = data[s % len(data)]
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if (s + 1) % 7 == 0:
            for m in monitors:
                m.log(s + 1, loss=0.25, acc=[0.5, 1.0])
        if (s + 1) % 19 == 0:
            for m in monitors:
                m.event("marker", note="x")


def _lines(path) -> list[str]:
    return path.read_text().splitlines()[1:]  # the records; the header carries the same provenance and meta


@pytest.mark.parametrize("alphas", [("dk_deltaC", "rot"), ALL_ALPHAS])
@pytest.mark.parametrize("window", [3, 6])
def test_written_records_are_identical_to_the_reference(tmp_path, alphas, window):
    """60 steps at Δs = 1 (a stretch of exactly zero updates in the middle: degenerate and rank-deficient windows,
    +inf ratios, NaN α), two groups: the background monitor, the synchronous one (a callback attached and
    ``background=False``) and the reference write the same lines, and keep the same records."""
    model, opt, data = _setup()
    kw = {"window": window, "every": 1, "groups": GROUPS, "alphas": alphas}
    ref = _ReferenceMonitor(model, opt, path=tmp_path / "ref.jsonl", **kw)
    fast = SpectralMonitor(model, opt, path=tmp_path / "fast.jsonl", background=True, **kw)
    seen: list[tuple[int, str]] = []
    with_cb = SpectralMonitor(model, opt, path=tmp_path / "cb.jsonl", callbacks=[lambda r: seen.append(r["step"])],
                              **kw)
    sync = SpectralMonitor(model, opt, path=tmp_path / "sync.jsonl", background=False, **kw)
    late = SpectralMonitor(model, opt, path=tmp_path / "late.jsonl", flush_every=1000, **kw)  # built at reads only
    # batches of 7 captures handed to the worker during training (60 steps: 8 of them, then the rest at close)
    batched = SpectralMonitor(model, opt, path=tmp_path / "batched.jsonl", background=True, flush_every=7, **kw)
    monitors = (ref, fast, with_cb, sync, late, batched)
    _train(model, opt, data, 60, monitors=monitors, zero_lr=range(20, 30))
    for m in monitors:
        m.close()
    expected = _lines(tmp_path / "ref.jsonl")
    kinds = [json.loads(line) for line in expected]
    assert sum(r["type"] == "spectrum" for r in kinds) == 2 * 59  # every step from w = 2 on, both groups
    assert any("degenerate" in r for r in kinds) and any(r.get("R") is None and "R" in r for r in kinds)
    assert sum("alpha" in r for r in kinds) > 50
    for name in ("fast", "cb", "sync", "late", "batched"):
        got = _lines(tmp_path / f"{name}.jsonl")
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert a == b
    for m in (fast, with_cb, sync, late, batched):  # records kept in memory: the same, in the same order
        assert [json.dumps(r) for r in m.records] == [json.dumps(r) for r in ref.records]
        assert {g: json.dumps(r) for g, r in m.latest.items()} == {g: json.dumps(r) for g, r in ref.latest.items()}
    assert len(seen) == 2 * 59


def test_training_is_bitwise_unchanged():
    m1, o1, data = _setup()
    _train(m1, o1, data, 40)
    m2, o2, _ = _setup()
    mon = SpectralMonitor(m2, o2, window=4, every=1, groups=GROUPS, alphas=ALL_ALPHAS)
    _train(m2, o2, data, 40, monitors=(mon,))
    mon.close()
    assert len(mon.records) > 0
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_latest_and_records_hold_the_record_of_the_step_just_captured():
    model, opt, data = _setup()
    mon = SpectralMonitor(model, opt, window=4, every=1, groups=GROUPS, background=True)
    for s in range(12):
        x, y = data[s]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if s >= 1:
            assert mon.latest["all"]["step"] == s + 1 and mon.latest["attn"]["step"] == s + 1
            assert mon.records[-1]["step"] == s + 1
    mon.close()


def test_with_a_callback_records_are_built_in_the_training_thread_at_the_step():
    model, opt, data = _setup()
    calls: list[tuple[int, bool]] = []
    mon = SpectralMonitor(model, opt, window=3, every=1,
                          callbacks=[lambda r: calls.append((r["step"], threading.current_thread() is main))])
    main = threading.current_thread()
    for s in range(6):
        x, y = data[s]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        assert not s or calls[-1] == (s + 1, True)  # called during this very step, in this thread
    assert mon._worker is None  # nothing was deferred
    mon.close()


class _Boom(RuntimeError):
    pass


def _failing_at(mon: SpectralMonitor, step: int) -> None:
    """The "attn" record of the capture at ``step`` (Δs = 1, two groups) and of any later one raises while it is
    built (whichever way: batched or one by one)."""
    build = mon._build

    def build_or_fail(entries):
        for s, rec in build(entries):
            if s >= step and rec["group"] == "attn":
                raise _Boom(f"record of {rec['group']} failed")
            yield s, rec

    mon._build = build_or_fail


def test_an_error_in_the_background_surfaces_at_the_next_step(tmp_path):
    model, opt, data = _setup()
    path = tmp_path / "run.jsonl"
    # flush_every=1: each capture's batch goes to the worker at its own step
    mon = SpectralMonitor(model, opt, window=3, every=1, groups=GROUPS, path=path, background=True, flush_every=1)
    _failing_at(mon, 5)

    def step(s):
        x, y = data[s]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for s in range(5):
        step(s)  # the capture at step 5 fails in the background ...
    mon._worker._jobs.join()  # (let the worker get there: an error surfaces at the first call after it happened)
    with pytest.raises(_Boom, match="record of attn failed"):
        step(5)  # ... and the error is raised by the next step, before it is counted
    assert mon.step == 5
    mon.event("interrupted", error="boom")  # what a training loop's handler does; the error was taken once
    mon.close()
    recs = [json.loads(line) for line in _lines(path)]
    spectra = [(r["step"], r["group"]) for r in recs if r["type"] == "spectrum"]
    # as in the synchronous path: the failing capture wrote the groups before the failing one, nothing after
    assert spectra[-2:] == [(4, "attn"), (5, "all")]
    assert [r["type"] for r in recs[-2:]] == ["interrupted", "end"]


@pytest.mark.parametrize("call", ["close", "sync", "latest", "records", "log", "state_dict"])
def test_an_error_in_the_background_surfaces_at_the_next_call(tmp_path, call):
    model, opt, data = _setup()
    mon = SpectralMonitor(model, opt, window=3, every=1, path=tmp_path / "run.jsonl", background=True)
    build = mon._build

    def fail(entries):
        for s, rec in build(entries):
            if rec["w"] >= 3:  # the captures from step 3 on (the record of step 2 has w = 2)
                raise _Boom("late failure")
            yield s, rec

    mon._build = fail
    for s in range(3):
        x, y = data[s]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with pytest.raises(_Boom):
        if call in ("latest", "records"):
            getattr(mon, call)
        elif call == "log":
            mon.log(loss=1.0)
        else:
            getattr(mon, call)()
    if call != "close":
        assert mon.latest["all"]["step"] == 2  # taken once: the monitor goes on
        mon.close()
    assert mon._writer is None  # the file was closed even though close() raised


def test_capture_and_checkpoint_wait_for_pending_records(tmp_path):
    model, opt, data = _setup()
    path = tmp_path / "run.jsonl"
    mon = SpectralMonitor(model, opt, window=3, every=1, path=path, background=True)
    for s in range(6):
        x, y = data[s]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    mon.sync()  # the harness's call before a checkpoint: every record so far is in the file
    steps = [json.loads(line)["step"] for line in _lines(path)]
    assert steps == [2, 3, 4, 5, 6]
    state = mon.state_dict()
    assert state["step"] == 6
    out = mon.capture()  # the public capture returns its records, built
    assert [r["step"] for r in out] == [6] and out[0]["w"] == 3
    mon.close()


# --- ConsecutiveWindows: the shared decompositions give alpha(G_ext, name), value for value and raise for raise -----


def _windows(rng: np.random.Generator, w: int, kind: str) -> np.ndarray:
    X = rng.standard_normal((w + 1, 50)).astype(np.float32)
    if kind == "rank1":
        X = np.outer(rng.standard_normal(w + 1), rng.standard_normal(50)).astype(np.float32)
    elif kind == "zero_prev":
        X[:-1] = 0.0
    elif kind == "zero_now":
        X[1:] = 0.0
    elif kind == "repeated":
        X[2] = X[1]
    return (X.astype(np.float64) @ X.T.astype(np.float64)).astype(np.float32).astype(np.float64)


def _outcome(fn, *args):
    try:
        return "ok", np.asarray(fn(*args))
    except SpectralEdgeError as exc:
        return type(exc).__name__, None


@pytest.mark.parametrize("kind", ["generic", "rank1", "zero_prev", "zero_now", "repeated"])
@pytest.mark.parametrize("w", [3, 4, 6])
def test_shared_alpha_equals_the_registry_variant(kind, w):
    rng = np.random.default_rng(w)
    for _ in range(5):
        G_ext = _windows(rng, w, kind)
        for handed in ("none", "both"):
            now = GramEigh.of(G_ext[1:, 1:]) if handed == "both" else None
            prev = GramEigh.of(G_ext[:-1, :-1]) if handed == "both" else None
            pair = ConsecutiveWindows(G_ext, now=now, prev=prev)
            assert pair.dC_norm == delta_C_norm(G_ext) and pair.dG_norm == delta_G_norm(G_ext)
            for d in registry.variants("alpha"):
                want, got = _outcome(alpha_of, G_ext, d.name), _outcome(pair.alpha, d.name)
                assert got[0] == want[0]
                if want[1] is not None:
                    np.testing.assert_array_equal(got[1], want[1])  # bitwise (NaN where NaN)


def test_a_handed_decomposition_of_another_matrix_is_not_used():
    rng = np.random.default_rng(0)
    G_ext = _windows(rng, 4, "generic")
    other = GramEigh.of(_windows(rng, 4, "generic")[1:, 1:])
    pair = ConsecutiveWindows(G_ext, now=other, prev=other)
    np.testing.assert_array_equal(pair.alpha("rot"), alpha_of(G_ext, "rot"))
    np.testing.assert_array_equal(pair.alpha("dk_deltaC"), alpha_of(G_ext, "dk_deltaC"))


def test_gram_eigh_spectrum_equals_spectrum_from_gram():
    rng = np.random.default_rng(1)
    G = _windows(rng, 5, "repeated")[1:, 1:]
    eig = GramEigh.of(G)
    for kw in ({}, {"P": 50}, {"P": 50, "kstar": "var95"}, {"dot_dtype": "float64"}):
        a, b = eig.spectrum(**kw).to_dict(), spectrum_from_gram(G, **kw).to_dict()
        assert json.dumps(a) == json.dumps(b)


def test_json_list_is_the_per_element_conversion():
    from numerics.spectrum import _json_float, _json_list

    for a in (np.array([3.0, -0.0, 1e-300, 2.5]), np.array([np.inf, 1.0, np.nan, -np.inf, 0.0])):
        want = [_json_float(float(x)) for x in a]
        assert json.dumps(_json_list(a)) == json.dumps(want)
        assert [type(v) for v in _json_list(a)] == [type(v) for v in want]
