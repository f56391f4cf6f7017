"""RollingGram: streaming Gram vs the explicitly stacked window, extended Gram, groups, errors, resume."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from numerics.errors import (
    NonFiniteUpdateError,
    ShapeMismatchError,
    SpectralEdgeError,
    WindowTooSmallError,
    ZeroWindowError,
)
from numerics.gram import RollingGram

U32 = 2.0**-24  # unit roundoff of float32


def _rel_err(A: np.ndarray, B: np.ndarray) -> float:
    scale = max(np.abs(B).max(), np.finfo(float).tiny)
    return float(np.abs(A - B).max() / scale)


@st.composite
def streams(draw):
    W = draw(st.integers(2, 8))
    sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=4))
    n = draw(st.integers(1, 3 * W + 4))
    seed = draw(st.integers(0, 2**32 - 1))
    scales = draw(st.sampled_from(["unit", "mixed"]))
    return W, sizes, n, seed, scales


@given(streams())
def test_streaming_gram_equals_stacked_window_float64(case):
    W, sizes, n, seed, scales = case
    rng = np.random.default_rng(seed)
    P = sum(sizes)
    g = RollingGram(W, sizes, dtype=torch.float64)
    rows = []
    for t in range(n):
        # "mixed": norms spanning 8 decades, so a relative-to-max tolerance would hide errors in small rows.
        scale = 1.0 if scales == "unit" else 10.0 ** rng.uniform(-4, 4)
        delta = rng.standard_normal(P) * scale
        rows.append(delta)
        g.push(torch.from_numpy(delta))
        X = np.array(rows[-W:])
        assert g.w == min(W, t + 1) == X.shape[0]
        G_ref = X @ X.T
        norms = np.linalg.norm(X, axis=1)
        # Each entry is a single dot product: error ≤ ~P·u·‖a‖‖b‖ entrywise; 1e-10 is far above that.
        assert np.all(np.abs(g.gram() - G_ref) <= 1e-10 * np.outer(norms, norms))
        E = g.extended_gram()
        if t >= W:
            Xe = np.array(rows[-W - 1:])
            ne = np.linalg.norm(Xe, axis=1)
            assert np.all(np.abs(E - Xe @ Xe.T) <= 1e-10 * np.outer(ne, ne))
        else:
            assert E is None
    sv = np.linalg.svd(np.array(rows[-W:]), compute_uv=False)  # min(w, P) values; G has w − min(w, P) extra zeros
    sigma = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(g.gram()))[::-1], 0, None))
    # σ from λ = σ² loses half the digits near zero, hence the absolute term.
    assert np.allclose(sigma[: len(sv)], sv, rtol=1e-7, atol=1e-7 * sv[0])
    assert np.all(sigma[len(sv):] <= 1e-7 * sv[0])


def test_long_stream_does_not_drift():
    # Entries are computed once from stored rows, never accumulated, so error stays at one-dot-product level.
    rng = np.random.default_rng(7)
    W, sizes = 10, [50, 120, 30]
    g = RollingGram(W, sizes, {"all": [0, 1, 2], "mid": [1]}, dtype=torch.float64)
    rows = []
    for t in range(600):
        delta = rng.standard_normal(sum(sizes)) * (1 + 0.5 * np.sin(t / 17))
        rows.append(delta)
        g.push(torch.from_numpy(delta))
    X = np.array(rows[-W:])
    assert _rel_err(g.gram(), X @ X.T) < 1e-13
    assert _rel_err(g.gram("mid"), X[:, 50:170] @ X[:, 50:170].T) < 1e-13
    assert _rel_err(g.gram(), g.recompute()) < 1e-13
    assert g.n_pushed == 600 and g.w == W


def test_float32_storage_within_rounding_bound():
    """float32 storage: rows rounded once (≤ u each) and each atom dot accumulated in float32 (≤ γ_n‖a‖‖b‖).

    Rigorous bound per entry (Higham, Thm 3.5, plus Cauchy–Schwarz over atoms):
    |Ĝ_ab − ⟨a,b⟩| ≤ (γ_n + 2u + u²)·‖a‖‖b‖ with n the largest atom, γ_n = nu/(1−nu), u = 2⁻²⁴.
    Against the float64 Gram of the *stored* (already rounded) rows only the γ_n term remains.
    """
    rng = np.random.default_rng(3)
    W, sizes = 6, [1500, 700, 300]
    n = max(sizes)
    gamma = n * U32 / (1 - n * U32)
    g = RollingGram(W, sizes, dtype=torch.float32)
    rows = []
    for _ in range(3 * W):
        delta = rng.standard_normal(sum(sizes)) * 10.0 ** rng.uniform(-3, 3)
        rows.append(delta)
        g.push(torch.from_numpy(delta).float())
    X = np.array(rows[-W:])
    norms = np.linalg.norm(X, axis=1)
    bound = np.outer(norms, norms)
    assert np.all(np.abs(g.gram() - X @ X.T) <= (gamma + 2 * U32 + U32**2) * bound)
    assert np.all(np.abs(g.gram() - g.recompute()) <= gamma * bound)
    # In practice blocked BLAS sums do far better than the worst case.
    assert _rel_err(g.gram(), g.recompute()) < 1e-5


def test_groups_partition_sums_to_all_and_overlaps():
    rng = np.random.default_rng(11)
    sizes = [7, 13, 4, 9]
    groups = {"all": [0, 1, 2, 3], "a": [0, 2], "b": [1, 3], "overlap": [1, 2]}
    g = RollingGram(5, sizes, groups, dtype=torch.float64)
    for _ in range(9):
        g.push(torch.from_numpy(rng.standard_normal(sum(sizes))))
    assert _rel_err(g.gram("a") + g.gram("b"), g.gram("all")) < 1e-14
    assert _rel_err(g.extended_gram("a") + g.extended_gram("b"), g.extended_gram("all")) < 1e-14
    X = g.window().numpy()
    cols = np.r_[7:20, 20:24]
    assert _rel_err(g.gram("overlap"), X[:, cols] @ X[:, cols].T) < 1e-14
    assert np.array_equal(g.window("overlap").numpy(), X[:, cols])
    assert g.group_dims() == {"all": 33, "a": 11, "b": 22, "overlap": 17}


def test_adaptive_start_and_time_order():
    g = RollingGram(3, 4, dtype=torch.float64)
    assert g.w == 0 and g.gram().shape == (0, 0) and g.extended_gram() is None
    for t in range(1, 8):
        g.push(torch.full((4,), float(t), dtype=torch.float64))
        assert g.w == min(3, t)
        first = max(1, t - 2)
        expected = np.arange(first, t + 1, dtype=float)
        # G_ab = 4·a·b for constant rows a, b: the order of rows is visible in the Gram.
        assert np.array_equal(g.gram(), 4 * np.outer(expected, expected))
        assert np.array_equal(g.window()[:, 0].numpy(), expected)
        E = g.extended_gram()
        if t > 3:
            ext = np.arange(t - 3, t + 1, dtype=float)
            assert np.array_equal(E, 4 * np.outer(ext, ext))
        else:
            assert E is None


@pytest.mark.parametrize("W", [-1, 0, 1])
def test_window_too_small(W):
    with pytest.raises(WindowTooSmallError, match=f"W={W}"):
        RollingGram(W, 10)


def test_bad_construction():
    with pytest.raises(ShapeMismatchError, match="belong to no group"):
        RollingGram(3, [2, 3], {"x": [0]})
    with pytest.raises(ShapeMismatchError, match="atom indices"):
        RollingGram(3, [2, 3], {"x": [0, 5]})
    with pytest.raises(ShapeMismatchError):
        RollingGram(3, [-1])
    assert issubclass(ShapeMismatchError, SpectralEdgeError)


def test_shape_dtype_device_mismatch_names_expected_and_got():
    g = RollingGram(3, [4, 2], dtype=torch.float32)
    with pytest.raises(ShapeMismatchError, match=r"expected \(6,\) got \(5,\)"):
        g.push(torch.zeros(5))
    with pytest.raises(ShapeMismatchError, match=r"expected \(6,\) got \(2, 3\)"):
        g.push(torch.zeros(2, 3))
    with pytest.raises(ShapeMismatchError, match=r"dtype expected torch\.float32 got torch\.float64"):
        g.push(torch.zeros(6, dtype=torch.float64))
    with pytest.raises(ShapeMismatchError, match=r"must be a torch\.Tensor"):
        g.push(np.zeros(6, dtype=np.float32))
    meta = RollingGram(3, 6, device="meta")  # a second device without a GPU
    with pytest.raises(ShapeMismatchError, match="device expected meta got cpu"):
        meta.push(torch.zeros(6))
    assert g.n_pushed == 0


def _snapshot(g: RollingGram) -> dict:
    sd = g.state_dict()
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in sd.items()}


def _same_state(a: dict, b: dict) -> bool:
    """Same window: every field equal, the buffer compared on its live rows (the spare slot is scratch: a rejected
    δ is written there and never read)."""
    for k in a:
        x, y = a[k], b[k]
        if k == "buffer":
            x, y = x[a["order"]], y[b["order"]]
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif isinstance(x, dict):
            if x.keys() != y.keys() or not all(
                torch.equal(x[i], y[i]) if isinstance(x[i], torch.Tensor) else x[i] == y[i] for i in x
            ):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("n_before", [0, 2, 5])
def test_non_finite_delta_rejected_state_unchanged(dtype, bad, n_before):
    rng = np.random.default_rng(n_before)
    sizes = [5, 8, 3]
    groups = {"all": [0, 1, 2], "first": [0], "rest": [1, 2]}
    g = RollingGram(4, sizes, groups, dtype=dtype)
    ref = RollingGram(4, sizes, groups, dtype=dtype)
    stream = [torch.from_numpy(rng.standard_normal(16)).to(dtype) for _ in range(n_before + 3)]
    for d in stream[:n_before]:
        g.push(d)
        ref.push(d)
    before = _snapshot(g)
    for pos in (0, 6, 15):  # first atom, middle atom, last entry of the last atom
        bad_delta = stream[n_before].clone()
        bad_delta[pos] = bad
        with pytest.raises(NonFiniteUpdateError, match="window unchanged"):
            g.push(bad_delta)
        assert _same_state(before, g.state_dict())
    for d in stream[n_before:]:  # the stream goes on as if the bad updates never came
        g.push(d)
        ref.push(d)
    assert np.array_equal(g.gram(), ref.gram())
    assert torch.equal(g.window(), ref.window())


def test_overflowing_norm_rejected():
    g = RollingGram(3, 4, dtype=torch.float32)
    g.push(torch.full((4,), 1e18))
    with pytest.raises(NonFiniteUpdateError, match="overflows"):
        g.push(torch.full((4,), 1e19))  # entries finite, but ⟨δ,δ⟩ = 4e38 > float32 max
    assert g.n_pushed == 1


def test_state_dict_resume_is_bitwise():
    rng = np.random.default_rng(5)
    sizes, groups = [30, 17, 9], {"all": [0, 1, 2], "x": [1]}
    stream = [torch.from_numpy(rng.standard_normal(56)).float() for _ in range(23)]
    full = RollingGram(6, sizes, groups)
    for d in stream:
        full.push(d)

    first = RollingGram(6, sizes, groups)
    for d in stream[:11]:
        first.push(d)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = RollingGram(6, sizes, groups)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert resumed.n_pushed == 11 and resumed.w == 6
    assert np.array_equal(resumed.extended_gram("x"), first.extended_gram("x"))
    for d in stream[11:]:
        resumed.push(d)
    for grp in groups:
        assert np.array_equal(resumed.gram(grp), full.gram(grp))
        assert np.array_equal(resumed.extended_gram(grp), full.extended_gram(grp))
    assert torch.equal(resumed.window(), full.window())
    assert _same_state(resumed.state_dict(), full.state_dict())


def _version1_state(g: RollingGram, stream: list[torch.Tensor]) -> dict:
    """The state a version-1 window (W slots written round-robin, no spare) would hold after ``stream``: rebuilt from
    the stream itself and from float64 dots, not from ``g``'s own state (only its configuration is read)."""
    W, n = g.W, len(stream)
    head = n % W
    slots = list(range(n)) if n < W else [(head + i) % W for i in range(W)]  # time order → slot
    live = stream[-min(W, n):]
    buf = torch.zeros((W, g.P), dtype=g.dtype)
    grams = {}
    for name, atoms in g.groups.items():
        cols = np.concatenate([np.arange(*g._slices[a]) for a in atoms])
        G = np.zeros((W, W))
        for i, si in enumerate(slots):
            for j, sj in enumerate(slots):
                G[si, sj] = float(live[i][cols].double() @ live[j][cols].double())
        grams[name] = torch.from_numpy(G)
    for i, si in enumerate(slots):
        buf[si] = live[i]
    return {"version": 1, "window": W, "atom_sizes": list(g.atom_sizes), "groups": dict(g.groups), "buffer": buf,
            "head": head, "n_pushed": n, "gram": grams, "extended_gram": None}


@pytest.mark.parametrize("n_before", [3, 6, 9])
def test_version1_state_loads_into_the_spare_slot_ring(n_before):
    """A checkpoint written before the ring had its spare slot (state version 1) resumes the same window."""
    rng = np.random.default_rng(n_before)
    sizes, groups = [7, 5], {"all": [0, 1], "b": [1]}
    stream = [torch.from_numpy(rng.standard_normal(12)) for _ in range(n_before + 8)]
    twin = RollingGram(6, sizes, groups, dtype=torch.float64)
    for d in stream[:n_before]:
        twin.push(d)
    resumed = RollingGram(6, sizes, groups, dtype=torch.float64)
    resumed.load_state_dict(_version1_state(resumed, stream[:n_before]))
    assert resumed.n_pushed == n_before and resumed.w == min(6, n_before)
    assert torch.equal(resumed.window(), twin.window())
    for grp in groups:
        np.testing.assert_allclose(resumed.gram(grp), twin.gram(grp), rtol=1e-12, atol=1e-12)
    for d in stream[n_before:]:
        resumed.push(d)
        twin.push(d)
    assert torch.equal(resumed.window(), twin.window())
    for grp in groups:
        np.testing.assert_allclose(resumed.gram(grp), resumed.recompute(grp), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(resumed.extended_gram(grp), twin.extended_gram(grp), rtol=1e-12, atol=1e-12)


def test_writing_the_next_row_and_committing_equals_push():
    rng = np.random.default_rng(11)
    stream = [torch.from_numpy(rng.standard_normal(40)).float() for _ in range(9)]
    pushed, direct = RollingGram(4, [25, 15]), RollingGram(4, [25, 15])
    for d in stream:
        pushed.push(d)
        torch.mul(d, 1.0, out=direct.next_row())  # the caller forms δ in the spare row itself
        direct.commit()
        assert np.array_equal(direct.gram(), pushed.gram()) and torch.equal(direct.window(), pushed.window())
    row = direct.next_row()
    row.fill_(float("nan"))  # a rejected row: the window and its Gram do not move
    before = (direct.gram().copy(), direct.window().clone())
    with pytest.raises(NonFiniteUpdateError, match="window unchanged"):
        direct.commit()
    assert np.array_equal(direct.gram(), before[0]) and torch.equal(direct.window(), before[1])
    assert direct.n_pushed == 9


def test_load_state_dict_rejects_other_configuration():
    g = RollingGram(4, [3, 3])
    g.push(torch.ones(6))
    with pytest.raises(ShapeMismatchError, match="atom_sizes"):
        RollingGram(4, [2, 4]).load_state_dict(g.state_dict())
    with pytest.raises(ShapeMismatchError):
        RollingGram(5, [3, 3]).load_state_dict(g.state_dict())
    with pytest.raises(ShapeMismatchError, match="float64"):
        RollingGram(4, [3, 3], dtype=torch.float64).load_state_dict(g.state_dict())


def test_right_vectors_match_svd():
    rng = np.random.default_rng(9)
    sizes = [40, 25]
    g = RollingGram(5, sizes, {"all": [0, 1], "b": [1]}, dtype=torch.float64)
    for _ in range(8):  # wraps the ring, so slot order ≠ time order
        g.push(torch.from_numpy(rng.standard_normal(65)))
    for grp, cols in (("all", slice(0, 65)), ("b", slice(40, 65))):
        X = g.window().numpy()[:, cols]
        _, s, Vt = np.linalg.svd(X, full_matrices=False)
        V = g.right_vectors(grp, 3).numpy()
        assert V.shape == (3, X.shape[1])
        assert np.allclose(V @ V.T, np.eye(3), atol=1e-10)
        for j in range(3):
            assert abs(abs(V[j] @ Vt[j]) - 1) < 1e-10
        assert np.allclose(np.abs(X @ V.T), s[:3] * np.abs(np.linalg.svd(X)[0][:, :3]), atol=1e-9)


def test_right_vectors_errors():
    g = RollingGram(3, 5)
    g.push(torch.zeros(5))
    g.push(torch.zeros(5))
    with pytest.raises(ZeroWindowError):
        g.right_vectors("all", 1)
    with pytest.raises(WindowTooSmallError):
        g.right_vectors("all", 3)
    g.push(torch.ones(5))
    with pytest.raises(ZeroWindowError, match="rank"):
        g.right_vectors("all", 2)
    with pytest.raises(KeyError, match="groups are"):
        g.gram("attn")


def test_spectrum_delegates_with_group_dimension(monkeypatch):
    calls = {}

    def fake_spectrum_from_gram(G, *, P=None, **kw):
        calls.update(G=G, P=P, kw=kw)
        return "spectrum"

    monkeypatch.setitem(sys.modules, "numerics.spectrum",
                        types.SimpleNamespace(spectrum_from_gram=fake_spectrum_from_gram))
    g = RollingGram(3, [4, 6], {"all": [0, 1], "b": [1]}, dtype=torch.float64)
    g.push(torch.arange(10.0, dtype=torch.float64))
    g.push(torch.ones(10, dtype=torch.float64))
    assert g.spectrum("b", kstar="var95") == "spectrum"
    assert calls["P"] == 6 and calls["kw"] == {"kstar": "var95"}
    assert np.array_equal(calls["G"], g.gram("b"))


def test_spectrum_with_the_real_spectrum_module():
    spectrum = pytest.importorskip("numerics.spectrum")
    rng = np.random.default_rng(4)
    g = RollingGram(5, [20, 10], {"all": [0, 1], "b": [1]}, dtype=torch.float64)
    for _ in range(7):
        g.push(torch.from_numpy(rng.standard_normal(30)))
    spec = g.spectrum("all")
    assert isinstance(spec, spectrum.Spectrum)
    lam = np.sort(np.linalg.eigvalsh(g.recompute()))[::-1]
    assert np.allclose(spec.lam, lam, rtol=1e-10)
