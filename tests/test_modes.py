"""Functional modes (verify.studies.modes): planted single Fourier modes give concentration 1, brute-force DFT twins,
the discrete log, the finite-difference logit change against the exact derivative, and the claims rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.trajectory import TrajectoryWriter
from theory import registry
from verify.studies.modes import (
    all_inputs,
    claim_rows,
    concentration_1d,
    concentration_2d,
    discrete_log,
    dlog_grid,
    logit_change,
    mode_record,
    primitive_root,
    standard_grid,
)
from verify.tasks.modular import ModularConfig, attention_weight_names, init_model

PRIMES = [5, 7, 11, 13, 23, 97]


def _mode(n: int, wa: int, wb: int, phase: float = 0.0, amp: float = 1.0) -> np.ndarray:
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return amp * np.cos(2 * np.pi * (wa * a + wb * b) / n + phase)


def _same_mode(got: list[int], wa: int, wb: int, n: int) -> bool:
    return {tuple(np.mod(got, n))} <= {(wa % n, wb % n), ((-wa) % n, (-wb) % n)}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(PRIMES), st.integers(0, 200), st.integers(0, 200), st.floats(0, 2 * np.pi),
       st.floats(0.1, 10), st.floats(-5, 5))
def test_one_real_fourier_mode_has_concentration_one(n, wa, wb, phase, amp, const):
    wa, wb = wa % n, wb % n
    if wa == wb == 0:
        wa = 1
    r = concentration_2d(_mode(n, wa, wb, phase, amp) + const)
    assert r.concentration == pytest.approx(1.0, abs=1e-9)
    assert _same_mode(r.mode, wa, wb, n)
    assert r.mode[0] > 0 or (r.mode[0] == 0 and r.mode[1] > 0)


def test_two_modes_split_by_their_power_and_channels_add():
    n = 11
    f = _mode(n, 2, 3, amp=math.sqrt(0.7)) + _mode(n, 5, 0, 0.3, amp=math.sqrt(0.3))
    r = concentration_2d(f)
    assert r.concentration == pytest.approx(0.7, abs=1e-9) and _same_mode(r.mode, 2, 3, n)
    assert r.top[1][1] == pytest.approx(0.3, abs=1e-9)
    stacked = np.stack([_mode(n, 1, 1), 2 * _mode(n, 1, 1, 1.0), _mode(n, 4, 2)], axis=2)  # powers 1 + 4 : 1
    assert concentration_2d(stacked).concentration == pytest.approx(5 / 6, abs=1e-9)


def test_concentration_matches_a_brute_force_dft():
    rng = np.random.default_rng(0)
    n = 5
    f = rng.normal(size=(n, n))
    F = np.array([[sum(f[a, b] * np.exp(-2j * np.pi * (wa * a + wb * b) / n) for a in range(n) for b in range(n))
                   for wb in range(n)] for wa in range(n)])
    P = np.abs(F) ** 2
    pairs = {}
    for wa in range(n):
        for wb in range(n):
            if (wa, wb) != (0, 0):
                key = min((wa, wb), ((-wa) % n, (-wb) % n))
                pairs[key] = pairs.get(key, 0.0) + P[wa, wb]
    want = max(pairs.values()) / (P.sum() - P[0, 0])
    r = concentration_2d(f)
    assert r.concentration == pytest.approx(want, rel=1e-10)
    assert r.dc_fraction == pytest.approx(P[0, 0] / P.sum(), rel=1e-10)


def test_even_period_self_conjugate_modes_count_once():
    n = 8  # (4, 0) is its own conjugate
    r = concentration_2d(_mode(n, 4, 0, 0.2) + _mode(n, 1, 2, amp=0.5))
    a, b = np.cos(0.2) ** 2 * n * n, 0.25 * n * n / 2  # |F(4,0)|² ∝ (n²cos φ)², pair (1,2) ∝ 2·(n²·0.5/2)²
    assert r.concentration == pytest.approx(a / (a + b), rel=1e-9) and r.mode == [4, 0]


def test_white_noise_is_not_concentrated():
    f = np.random.default_rng(1).normal(size=(97, 97))
    assert concentration_2d(f).concentration < 0.01


@pytest.mark.parametrize("bad", [np.zeros((4, 5)), np.ones((6, 6)), np.full((3, 3), np.nan), np.zeros(5)])
def test_bad_grids_are_errors(bad):
    with pytest.raises((ShapeMismatchError, SpectralEdgeError)):
        concentration_2d(bad)


@pytest.mark.parametrize("p", PRIMES)
def test_discrete_log_inverts_the_primitive_root(p):
    g = primitive_root(p)
    assert len({pow(g, i, p) for i in range(p - 1)}) == p - 1  # g generates Z_p^*
    assert all(pow(g, i, p) != 1 for i in range(1, p - 1))
    assert g == min(h for h in range(2, p) if len({pow(h, i, p) for i in range(p - 1)}) == p - 1)
    dl = discrete_log(p)
    assert all(pow(g, int(dl[a]), p) == a for a in range(1, p)) and dl[0] == -1


def test_non_prime_modulus_has_no_discrete_log():
    with pytest.raises(SpectralEdgeError, match="not prime"):
        primitive_root(91)


@pytest.mark.parametrize("p", [23, 97])
def test_multiplicative_mode_is_single_in_the_dlog_basis_only(p):
    """f(a, b) = cos(2πω(dlog a + dlog b)/(p−1)) is one mode on (Z_p^*)² re-indexed by dlog, diffuse in Z_p²."""
    dl = discrete_log(p)
    x = all_inputs(p).numpy()
    w = 5
    vals = np.where((x[:, 0] > 0) & (x[:, 1] > 0), np.cos(2 * np.pi * w * (dl[x[:, 0]] + dl[x[:, 1]]) / (p - 1)), 0.0)
    d = concentration_2d(dlog_grid(vals, p))
    s = concentration_2d(standard_grid(vals, p))
    assert d.concentration == pytest.approx(1.0, abs=1e-9) and _same_mode(d.mode, w, w, p - 1)
    assert s.concentration < 0.2 and d.concentration / s.concentration > 5


def test_grids_index_pairs_as_documented():
    p = 7
    x = all_inputs(p).numpy()
    vals = x[:, 0] * 100 + x[:, 1]
    G = standard_grid(vals, p)
    assert G[3, 5] == 305
    g = primitive_root(p)
    D = dlog_grid(vals, p)
    assert D[2, 4] == pow(g, 2, p) * 100 + pow(g, 4, p)
    with pytest.raises(ShapeMismatchError):
        standard_grid(vals[:-1], p)


def test_author_1d_profile_of_a_grouped_cosine():
    p = 13
    q = np.arange(p * 4) % p
    s = 2.0 + np.cos(2 * np.pi * 3 * q / p)
    r = concentration_1d(s, q, p)
    assert r.concentration == pytest.approx(1.0, abs=1e-12) and r.mode == [3]


def test_registry_holds_both_definitions():
    names = {d.name: d for d in registry.variants("functional_mode")}
    assert names["logit_2d"].default and not names["residual_1d"].default
    assert names["residual_1d"].source.startswith("[P]") and names["logit_2d"].source.startswith("[R]")


# --- on a model ---------------------------------------------------------------------------------------------------


def _model(p: int = 7):
    cfg = ModularConfig(p=p, n_layers=1, d_model=16, n_heads=2, d_ff=32, op="mul")
    return cfg, init_model(cfg.architecture(), torch.Generator().manual_seed(0))


def test_logit_change_matches_the_exact_directional_derivative():
    cfg, model = _model()
    names = attention_weight_names(model)
    params = {n: p.detach() for n, p in model.named_parameters() if n in names}
    v = torch.randn(sum(p.numel() for p in params.values()), generator=torch.Generator().manual_seed(1))
    tangents, off = {}, 0
    for n, p in params.items():
        tangents[n] = (v / v.norm())[off:off + p.numel()].view(p.shape)
        off += p.numel()
    x = all_inputs(cfg.p)
    model.eval()
    with sdpa_kernel(SDPBackend.MATH):
        _, dz = jvp(lambda ps: functional_call(model, ps, (x,), strict=False), (params,), (tangents,))
    exact = (dz - dz.mean(dim=1, keepdim=True)).detach().double().numpy()
    norm = math.sqrt(sum(float(p.pow(2).sum()) for p in params.values()))
    got = logit_change(model, names, v, 0.005 * norm, x)
    assert np.allclose(got, exact, rtol=1e-2, atol=1e-3 * np.abs(exact).max())
    assert np.allclose(got.sum(axis=1), 0.0, atol=1e-6)  # class-centred


def test_mode_record_on_a_small_model_has_every_definition_and_basis():
    cfg, model = _model()
    names = attention_weight_names(model)
    P = sum(p.numel() for n, p in model.named_parameters() if n in names)
    rec = mode_record(model, cfg, names, torch.ones(P), 0.01)
    for defn in ("logit_2d", "residual_1d"):
        for basis in ("standard", "dlog"):
            assert 0.0 < rec[defn][basis]["concentration"] <= 1.0
    assert rec["logit_2d"]["standard"]["n"] == 7 and rec["logit_2d"]["dlog"]["n"] == 6


def test_bad_direction_is_an_error():
    _, model = _model()
    names = attention_weight_names(model)
    with pytest.raises(ShapeMismatchError):
        logit_change(model, names, torch.ones(3), 0.01, all_inputs(7))
    with pytest.raises(SpectralEdgeError):
        logit_change(model, names, torch.ones(sum(p.numel() for n, p in model.named_parameters() if n in names)),
                     -1.0, all_inputs(7))


# --- claims -------------------------------------------------------------------------------------------------------


def _store(root, op, seed, std, dlog):
    d = root / "lch"
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"task_config": {"op": op, "p": 97}, "init_seed": seed, "weight_decay": 1.0, "grok_threshold": 0.95}

    def res(c):
        return {"concentration": c, "mode": [3, 3], "dc_fraction": 0.0, "n": 97, "top": []}

    modes = {"logit_2d": {"standard": res(std), "dlog": res(dlog)},
             "residual_1d": {"standard": res(std), "dlog": res(dlog)}}
    with TrajectoryWriter(d / f"modular-{op}-p97-wd1-s{seed}.jsonl", provenance={"config": cfg}) as w:
        w.write("eval", 100, test_acc=0.99)
        w.write("lch", 100, group="attn", R_grad=[1.0], R_update=[1.0], modes=modes)
        w.write("end", 300)


def test_mode_claims_pass_fail_and_inconclusive(tmp_path):
    assert {r.verdict for r in claim_rows(tmp_path)} == {"INCONCLUSIVE"}
    for s in (1, 2, 3):
        _store(tmp_path, "add", s, 0.8, 0.1)
        _store(tmp_path, "mul", s, 0.1, 0.7)
    # gain 7 ≥ 2.95 but below the function-of-the-output null (≈ 93×): the gain row FAILs (issue 13)
    rows = claim_rows(tmp_path)
    assert [r.verdict for r in rows] == ["PASS", "PASS", "FAIL", "INCONCLUSIVE"]
    assert "null is not beaten" in rows[2].reason and rows[2].criterion == "modes.mul_gain"
    for s in (1, 2, 3):
        _store(tmp_path, "mul", s, 0.005, 0.7)  # gain 140: above the null's 97.5th percentile
    assert [r.verdict for r in claim_rows(tmp_path)] == ["PASS", "PASS", "PASS", "INCONCLUSIVE"]
    for s in (4, 5, 6, 7):
        _store(tmp_path, "add", s, 0.2, 0.1)
        _store(tmp_path, "mul", s, 0.3, 0.4)
    rows = claim_rows(tmp_path)
    assert [r.verdict for r in rows] == ["FAIL", "FAIL", "FAIL", "INCONCLUSIVE"]
    assert "0.2" in rows[0].measured
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    rows[0].plot(fig)
    assert len(fig.axes) == 1
